"""``cnngraph compare``: models side by side, numbers from the same analysis as ``table``."""
import json

from cnngraph import analyze, zoo
from cnngraph.cli import main
from cnngraph.present.compare import compare_rows, render


def test_compare_json_matches_the_tables(capsys):
    assert main(["compare", "resnet18", "mobilenet_v2", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    want = {m: analyze(zoo.build(m)).total for m in ("resnet18", "mobilenet_v2")}
    for row in data["models"]:
        t = want[row["name"]]
        assert (row["params"], row["macs"], row["memory_bytes"]) == (t.params, t.macs, t.memory_bytes)
    assert data["models"][0]["params"] == 11689512 and "1 MiB = 2^20 B" in data["memory"]


def test_compare_closed_forms_and_units():
    from cnngraph.ir.symbols import h, w

    rows = compare_rows([analyze(zoo.build("resnet50"), input=(3, 32 * h, 32 * w))])
    assert rows[0]["macs"] == 83410944 * h * w + 2048000
    md = render(rows, "markdown")
    assert "| resnet50 | 3×32h×32w | 25.6 | 0.0834hw + 0.00205 |" in md  # G MACs as decimals
    text = render(compare_rows([analyze(zoo.build("resnet18"))]), "text")
    assert "1.814" in text and "MiB" in text  # 1,814,073,856 MACs; memory stated in MiB


def test_compare_plot(tmp_path, capsys):
    out = tmp_path / "cmp.svg"
    assert main(["compare", "resnet18", "resnet34", "--plot", str(out)]) == 0
    svg = out.read_text()
    assert "resnet34" in svg and "multiply-adds (G)" in svg
