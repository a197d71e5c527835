"""The gallery page's inline HTML: model tables, reconciliation table, diagrams with hover texts, search."""
from pathlib import Path

from cnngraph.present.gallery import markdown_html

ROOT = Path(__file__).resolve().parent.parent


def test_markdown_tables_become_html():
    md = "## Closed form\n\n| stage | macs |\n|---|---:|\n| layer1 | `9437184hw` |\n\n- a **note**\n"
    out = markdown_html(md, "models/")
    assert "<h5>Closed form</h5>" in out
    assert "<table class='layers'><tr><th>stage</th><th>macs</th></tr><tr><td>layer1</td><td><code>9437184hw</code></td></tr></table>" in out
    assert "<li>a <b>note</b></li>" in out


def test_committed_index_has_tables_tooltips_and_search():
    page = (ROOT / "gallery" / "index.html").read_text()
    assert page.count("<object data='models/") == page.count("<section class='model'") > 80
    assert "id=\"search\"" in page and "data-tables" in page
    # ResNet-50's per-stage closed forms and its per-layer table are on the page, not behind a link
    card = page[page.index("id='m-resnet50'"):page.index("id='m-resnet101'")]
    assert "<td>layer3</td>" in card and "83410944hw + 2048000" in card and "<td>fc</td>" in card
    assert page.count("<table class='layers'>") > 87 and "id='reconciliation'" in page
    svg = (ROOT / "gallery" / "models" / "resnet50.svg").read_text()
    assert 'xlink:title="layer1.0.conv1: output 64×56×56, 4.22k params, 12.8M MACs"' in svg
