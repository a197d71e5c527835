"""Plots and the gallery: numbers behind the charts, determinism, incremental builds, the
committed gallery being what `cnngraph gallery` writes, and a real browser rendering it."""
import importlib.util
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cnngraph import analyze, zoo
from cnngraph.present import gallery
from cnngraph.present import plots
from cnngraph.ir.errors import CnnGraphError
from cnngraph.present.render import read_stamp
from cnngraph.ir.symbols import H, W

ROOT = Path(__file__).resolve().parent.parent
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def test_bars_are_the_slide_table():
    d = plots.bars_data(analyze(zoo.build("alexnet")))
    assert d["by"] == "layer"
    assert d["labels"] == ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "flatten", "fc6",
                           "fc7", "fc8"]
    i = d["labels"].index("conv1")
    assert d["memory"][i] == 64 * 56 * 56 * 4 / 1024 == 784.0
    assert d["params"][i] == (64 * 3 * 11 * 11 + 64) / 1000
    assert d["flops"][i] == 64 * 56 * 56 * 3 * 11 * 11 / 1e6
    j = d["labels"].index("pool1")
    assert d["flops"][j] == 64 * 27 * 27 * 9 / 1e6 and d["params"][j] == 0  # the slides' 0.4 MFLOP
    assert d["kinds"][:3] == ["conv", "pool", "conv"]


def test_bars_per_block_for_deep_networks():
    r = analyze(zoo.build("resnet152"))
    d = plots.bars_data(r)
    assert d["by"] == "block"
    blocks = [x for x in d["labels"] if x.startswith("layer")]
    assert len(blocks) == 3 + 8 + 36 + 3 and blocks[-1] == "layer4.2"
    assert sum(d["params"]) == pytest.approx(r.total.params / 1000)
    assert sum(d["flops"]) == pytest.approx(r.total.flops / 1e6)
    assert plots.bars_data(r, by="stage")["labels"] == ["conv1", "bn1", "maxpool", "layer1", "layer2", "layer3",
                                                         "layer4", "avgpool", "flatten", "fc"]
    with pytest.raises(CnnGraphError, match="plots need numbers"):
        plots.bars_data(analyze(zoo.build("resnet18"), input=(3, H, W)))


def test_plots_are_deterministic(tmp_path):
    r = analyze(zoo.build("vgg16"))
    for name in ("a.svg", "b.svg", "a.png", "b.png"):
        plots.layer_bars(r, tmp_path / name)
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    svg = (tmp_path / "a.svg").read_text()
    assert read_stamp(svg) == plots.data_key(plots.bars_data(r)) and "<dc:date>" not in svg
    ET.fromstring(svg.split("\n", 1)[1] if svg.startswith("<?xml") else svg)  # well-formed


def test_scatter_merges_equal_models_and_labels_all():
    reports = [analyze(zoo.build(n)) for n in ("alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v2")]
    same = analyze(zoo.build("resnet50"))
    same.name = "resnet50_copy"
    data = plots.scatter_data(reports + [same], {"alexnet": "alexnet"})
    assert len(data["points"]) == 5
    merged = [p for p in data["points"] if len(p["names"]) == 2][0]
    assert merged["names"] == ["resnet50", "resnet50_copy"] and merged["params"] == 25.557032
    fig = plots.draw_scatter(data)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert texts == {"alexnet", "vgg16", "resnet18", "resnet50, resnet50_copy", "mobilenet_v2"}


def test_model_page_holds_table_totals_and_closed_form():
    files, entry = gallery.plan_model("alexnet")
    md = files["models/alexnet.md"].content
    assert "| conv1 | 3 | 227 | 64 | 11 | 4 | 2 | 64 | 56 | 784 | 23 | 73 |" in md
    assert f"| {entry['params']:,} |" in md and entry["params"] == 61_100_840
    assert "![alexnet diagram](alexnet.svg)" in md and "![alexnet costs](alexnet-costs.svg)" in md
    assert "## Closed form" in md
    files, _ = gallery.plan_model("resnet50")
    md = files["models/resnet50.md"].content
    assert "83410944hw + 2048000" in md  # the closed form on 3×32h×32w, checked below at h = w = 7
    assert 83410944 * 49 + 2048000 == analyze(zoo.build("resnet50")).total.macs


@needs_dot
def test_build_is_incremental_and_checked(tmp_path):
    out = tmp_path / "g"
    counts = gallery.build(out, models=["lenet5", "resnet18"], jobs=1)
    has_reconcile = importlib.util.find_spec("cnngraph.zoo.reconcile") is not None
    # 2 × 3 model files + index, README, zoo.svg, design-space.svg (+ reconcile)
    assert counts == dict(written=10 + has_reconcile, unchanged=0, removed=0)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert {"index.html", "README.md", "zoo.svg", "design-space.svg", "models/lenet5.svg", "models/lenet5.md", "models/lenet5-costs.svg",
            "models/resnet18.svg", "models/resnet18.md", "models/resnet18-costs.svg"} <= set(names)
    for p in out.rglob("*.svg"):
        ET.parse(p)  # well-formed XML, as a browser needs
    assert gallery.build(out, models=["lenet5", "resnet18"], jobs=1)["written"] == 0
    problems, notes = gallery.check(out, jobs=1)
    assert problems == [] and len(notes) == len(zoo.names()) - 2
    # An edited diagram, a hand-made file and a missing chart are all reported.
    svg = out / "models" / "resnet18.svg"
    svg.write_text(svg.read_text().replace("cnngraph-source", "cnngraph-source 0"))
    (out / "models" / "extra.svg").write_text("<svg/>")
    (out / "models" / "lenet5-costs.svg").unlink()
    problems, _ = gallery.check(out, jobs=1)
    assert set(problems) >= {"out of date: models/resnet18.svg", "not produced by the command: models/extra.svg",
                             "missing: models/lenet5-costs.svg"}
    html = (out / "index.html").read_text()
    assert html.count("data-check='diagram'") == 2 and "data-images" in html


def test_committed_gallery_is_up_to_date():
    """gallery/ holds exactly what `cnngraph gallery` writes for the models it holds.

    Models added to the zoo since the gallery was generated are listed, not failed: the
    gallery is regenerated with `make gallery` when the zoo is complete.
    """
    out = ROOT / "gallery"
    problems, notes = gallery.check(out)
    if notes:
        print("\n".join(notes))
    assert not problems, "gallery/ is out of date: run `make gallery` and commit gallery/\n" + "\n".join(problems)
    assert len(gallery.committed_models(out)) >= 20


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None
                    and shutil.which("google-chrome") is None,
                    reason="no Chromium: `make browser-check` installs it and runs this check")
def test_browser_renders_every_diagram():
    index = ROOT / "gallery" / "index.html"
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "browser_check.py"), str(index)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    n = len(gallery.committed_models(ROOT / "gallery"))
    assert f"({n} diagrams, " in done.stdout  # every diagram rendered, with its hover texts
    tables = int(done.stdout.split(" inline tables")[0].rsplit(" ", 1)[1])
    assert tables >= n  # every model's tables inline


def test_cli_plot(tmp_path, capsys):
    from cnngraph.cli import main

    svg = tmp_path / "a.svg"
    assert main(["plot", "alexnet", "--count", "none", "-o", str(svg)]) == 0
    assert "multiply-adds (M)" in svg.read_text()  # flop = MACs when nothing else is counted
    assert main(["plot", "alexnet", "-o", str(svg)]) == 0 and "flop (M)" in svg.read_text()
    png = tmp_path / "z.png"
    assert main(["plot", "--compare", "alexnet", "vgg16", "resnet50", "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", "alexnet", "vgg16", "-o", str(svg)]) == 2
    assert "one model" in capsys.readouterr().err
