"""What the commands print for a reader: the zoo list, CSV, reports, init-weights."""
from cnngraph import analyze, zoo
from cnngraph.cli import main


def test_zoo_listing_piped(capsys):
    assert main(["zoo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {l.split()[0]: l for l in lines[2:]}
    assert len(rows) == 87 and all(len(l) > 80 for l in lines[2:5])  # one line per model, not wrapped at 80
    assert "basic blocks" in rows["resnet18"] and "bottleneck" not in rows["resnet18"]
    assert "11.69" in rows["resnet18"] and "1.814" in rows["resnet18"]  # 11,689,512 params, 1.814 G MACs
    order = [l.split()[0] for l in lines[2:]]
    assert order.index("alexnet") < order.index("lenet5") and order.index("resnet18") < order.index("resnet101")


def test_csv_shapes_are_ascii(capsys):
    assert main(["table", "alexnet", "--style", "exact", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "conv1,conv2d,3x227x227,64x56x56,23296," in out and "×" not in out


def test_symbolic_csv_reads_back_and_latex_is_math_mode(capsys):
    """A symbolic CSV cell is the plain syntax sympy reads back (not ``18HWC²``), a symbolic
    shape keeps its separator apart from the sizes' letters, and LaTeX cells are in math mode."""
    import csv
    import io

    from cnngraph.ir import printer

    report = analyze(zoo.build("resnet18", input=("3", "32*h", "32*w")))
    rows = list(csv.reader(io.StringIO(report.to("csv", style="exact"))))
    head = rows[0]
    conv1 = next(r for r in rows if r[0] == "conv1")
    assert conv1[head.index("input")] == "3 x 32*h x 32*w"
    for field in ("params", "macs", "flops", "memory_bytes"):
        row = next(r for r in report.rows if r.name == "conv1")
        col = {"params": "params", "macs": "MACs", "flops": "flops", "memory_bytes": "memory (B)"}[field]
        assert printer.parse(conv1[head.index(col)]) - getattr(row, field) == 0, field
    total = rows[-1]
    assert printer.parse(total[head.index("MACs")]) - report.total.macs == 0
    latex = report.to("latex", style="exact")
    assert "⌊" not in latex and "·" not in latex and "$" in latex
    assert r"2408448 h w" in latex.replace("$", "")  # conv1's MACs, 2,408,448·h·w, in math mode


def test_report_repr_is_short():
    text = repr(analyze(zoo.build("resnet50")))
    assert text == ("<Report 'resnet50': input 3×224×224, 176 layers, params=25557032, macs=4089184256, "
                    "memory_bytes=111812512>")


def test_init_weights(tmp_path, capsys):
    from cnngraph.compiler.weights import count, init, load

    out = tmp_path / "w.safetensors"
    assert main(["init-weights", "resnet18", "-o", str(out)]) == 0
    assert "11,689,512 parameters" in capsys.readouterr().out
    g = zoo.build("resnet18")
    ws = load(out, g)
    assert count(ws, g) == 11689512 and all((ws[k] == v).all() for k, v in init(g, seed=0).items())


def test_plan_formula_simplified(capsys):
    from cnngraph.compiler import compile
    from cnngraph.ir.symbols import h, w

    assert main(["plan", "resnet18", "--input", "3,32*h,32*w"]) == 0
    out = capsys.readouterr().out
    assert "planned arena per sample: 90112hw B" in out and "Max" not in out
    # the same number as the numeric plan at 224×224 (h = w = 7)
    assert compile(zoo.build("resnet18")).memory.planned_bytes == 90112 * 49
