"""Closed-form formulas: derived from graphs, laid out as the slides write them, and the
design algebra on top. Every expected value is an independent first-principles expression
or an exact integer from the zoo's numeric analysis / torchvision's reference counts."""
import json
from pathlib import Path

import pytest
import sympy

from cnngraph import analyze, formulas, zoo
from cnngraph.ir import printer as present
from cnngraph.cli import main
from cnngraph.ir.errors import CnnGraphError
from cnngraph.formulas import Formula, block, equal_cost, limit, network, ratio, study
from cnngraph.formulas.core import over_count
from cnngraph.ir.symbols import C, G, H, K, W, c, h, k, sym, w

t, r, L = sym("t"), sym("r"), sym("L")
C_in, C_out = sym("C_in"), sym("C_out")
REF = Path(__file__).parent / "reference" / "torchvision"


def same(a, b):
    return sympy.expand(sympy.sympify(getattr(a, "expr", a)) - sympy.sympify(getattr(b, "expr", b))) == 0


# ---------------------------------------------------------------- blocks against first principles
# name -> (cost = conv MACs, params = conv weights (+ biases), memory = elements written, text of the cost)
BLOCKS = {
    "conv": (K**2 * C**2 * H * W, K**2 * C**2, C * H * W, "HWC²K²"),
    "conv3x3": (9 * C**2 * H * W, 9 * C**2, C * H * W, "9HWC²"),
    "conv5x5": (25 * C**2 * H * W, 25 * C**2, C * H * W, "25HWC²"),
    "conv3x3_x2": (18 * C**2 * H * W, 18 * C**2, 2 * C * H * W, "18HWC²"),
    "conv7x7": (49 * C**2 * H * W, 49 * C**2, C * H * W, "49HWC²"),
    "conv3x3_x3": (27 * C**2 * H * W, 27 * C**2, 3 * C * H * W, "27HWC²"),
    # seed 000: C×2H×2W: memory 4HWC, params 9C², FLOPs 36HWC²; 2C×H×W: 2HWC, 36C², 36HWC²
    "vgg_conv_2h": (36 * H * W * C**2, 9 * C**2, 4 * H * W * C, "36HWC²"),
    "vgg_conv_2c": (36 * H * W * C**2, 36 * C**2, 2 * H * W * C, "36HWC²"),
    "grouped_conv": (C_out * C_in * K**2 * H * W / G, C_out * C_in * K**2 / G, C_out * H * W, "HWCᵢₙCₒᵤₜK²/G"),
    "depthwise_conv": (K**2 * C * H * W, K**2 * C, C * H * W, "HWCK²"),
    # conv1 + bn1 + conv2 + bn2 + add written (ReLUs in place)
    "basic": (18 * H * W * C**2, 18 * C**2, 5 * C * H * W, "18HWC²"),
    # 4C→C, C→C, C→4C: 4 + 9 + 4 = 17; memory C + C + C + C + 4C + 4C + 4C
    "bottleneck": (17 * H * W * C**2, 17 * C**2, 16 * C * H * W, "17HWC²"),
    "resnext_grouped": ((8 * C * c + 9 * c**2) * H * W * G, (8 * C * c + 9 * c**2) * G, (4 * G * c + 12 * C) * H * W,
                        "(8Cc + 9c²)HWG"),
    # G pathways: conv1, bn1, conv2, bn2 (c each), conv3 (4C); sum, bn3, add (4C each)
    "resnext_paths": ((8 * C * c + 9 * c**2) * H * W * G, (8 * C * c + 9 * c**2) * G,
                      (4 * c * G + 4 * C * G + 12 * C) * H * W, "(8Cc + 9c²)HWG"),
    "preact": (18 * H * W * C**2, 18 * C**2, 5 * C * H * W, "18HWC²"),
    "standard": (9 * C**2 * H * W, 9 * C**2, 2 * C * H * W, "9HWC²"),
    "separable": ((9 * C + C**2) * H * W, 9 * C + C**2, 4 * C * H * W, "(9C + C²)HW"),
    "inverted_residual": ((9 * C + 2 * C**2) * H * W * t, (9 * C + 2 * C**2) * t, (4 * C * t + 3 * C) * H * W,
                          "(9C + 2C²)HWt"),
    # pool C, fc1 C/r (+ bias), fc2 C (+ bias), sigmoid C, scale CHW
    "se": (2 * C**2 / r, 2 * C**2 / r + C / r + C, C * H * W + 3 * C + C / r, "2C²/r"),
    "dense_layer": ((4 * C * k + 36 * k**2) * H * W, 4 * C * k + 36 * k**2, (2 * C + 9 * k) * H * W, "(4Ck + 36k²)HW"),
    # layer i sees C + (i−1)k channels: Σ HW(4k(C + (i−1)k) + 36k²) over i = 1..L
    "dense_block": (H * W * L * (4 * C * k + 2 * k**2 * (L - 1) + 36 * k**2),
                    L * (4 * C * k + 2 * k**2 * (L - 1) + 36 * k**2), None, "(2k²L + 4Ck + 34k²)HWL"),
}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_formulas_first_principles(name):
    cost, params, memory, text = BLOCKS[name]
    b = block(name)
    assert same(b.cost, cost), (name, b.cost)
    assert same(b.macs, cost)
    assert same(b.params, params), (name, b.params)
    if memory is not None:
        assert same(b.memory, memory), (name, b.memory)
    assert b.cost.text == text
    # JSON strings read back with plain sympy.sympify, then cnngraph's symbols restored
    for f in (b.cost, b.params, b.memory):
        back = sympy.sympify(f.json)
        back = back.subs({s: sym(s.name) for s in back.free_symbols})
        assert same(back, f), (name, f.json)
        assert same(present.parse(f.json), f)
        assert f._repr_latex_() == f"${f.latex}$"


def test_every_block_is_tested_and_listed():
    assert set(BLOCKS) | {"inception"} == set(formulas.names())
    listed = {n for kind, n, _ in formulas.catalogue()}
    assert set(formulas.names()) <= listed and set(formulas.STUDIES) <= listed


def test_slide_texts_and_latex():
    assert block("bottleneck").cost.latex == "17 H W C^{2}"
    assert block("separable").cost.latex == r"\left(9 C + C^{2}\right) H W"
    assert block("vgg_conv_2h").memory.text == "4HWC" and block("vgg_conv_2c").memory.text == "2HWC"
    assert block("conv5x5").params.text == "25C²" and block("conv3x3_x2").params.text == "18C²"
    assert block("conv7x7").params.text == "49C²" and block("conv3x3_x3").params.text == "27C²"
    assert block("resnext_grouped").params.text == "(8Cc + 9c²)G"
    assert block("grouped_conv").cost.latex == r"\frac{H W C_{in} C_{out} K^{2}}{G}"


def test_inception_symbolic_and_table1_3a():
    c1, c3r, c3, c5r, c5, cp = (sym(n) for n in "c_1 c_3r c_3 c_5r c_5 c_p".split())
    b = block("inception")
    assert same(b.cost, H * W * (C * (c1 + c3r + c5r + cp) + 9 * c3r * c3 + 25 * c5r * c5))
    assert b.cost.text == "(Cc₁ + Cc₃ᵣ + Cc₅ᵣ + Ccₚ + 9c₃c₃ᵣ + 25c₅c₅ᵣ)HW"
    assert b.receptive.size == (5, 5)
    # Szegedy et al. 2014, Table 1, inception (3a) on 28×28×192: "128M" operations
    a3 = block("inception", C=192, c_1=64, c_3r=96, c_3=128, c_5r=16, c_5=32, c_p=32, H=28, W=28)
    assert a3.cost(**{}) == 784 * (192 * (64 + 96 + 16 + 32) + 9 * 96 * 128 + 25 * 16 * 32) == 128_049_152


def test_include_adds_other_kinds():
    b = block("basic", include=("norm", "act", "merge"))
    # 2 BN (one op per element), 2 ReLU, 1 add: 5HWC; BN params 2·2C
    assert same(b.cost, 18 * H * W * C**2 + 5 * H * W * C)
    assert same(b.params, 18 * C**2 + 4 * C)
    assert "norm" in b.convention
    assert same(block("se", include=("pool", "merge")).cost, 2 * C**2 / r + 2 * C * H * W)
    with pytest.raises(CnnGraphError, match="unknown kind 'bogus'"):
        block("basic", include=("bogus",))


def test_block_sizes_and_errors():
    assert same(block("conv", K=5).cost, 25 * C**2 * H * W)
    b = block("basic", C=64, H=56, W=56)
    assert b.cost(**{}) == 18 * 56 * 56 * 64**2
    assert block("basic").at(C=64, H=56, W=56) == dict(cost=b.cost(), macs=b.cost(), params=18 * 64**2,
                                                      memory=5 * 64 * 56 * 56)
    with pytest.raises(CnnGraphError, match="unknown block 'nope'"):
        block("nope")
    with pytest.raises(CnnGraphError, match="unknown size 'Q'"):
        block("basic", Q=3)
    with pytest.raises(CnnGraphError, match="no value given for H, W"):
        block("basic").cost(C=3)


# ---------------------------------------------------------------- blocks against the zoo's real networks
def _macs(report, prefix):
    return sum(x.macs for x in report.rows if x.name.startswith(prefix))


def test_blocks_equal_the_zoo_networks_layers():
    r50 = analyze(zoo.build("resnet50"))
    # layer1.1: a stride-1 bottleneck on 256 = 4·64 channels at 56×56
    assert block("bottleneck").cost(C=64, H=56, W=56) == _macs(r50, "layer1.1.")
    assert _macs(r50, "layer3.4.") == block("bottleneck").cost(C=256, H=14, W=14)
    r18 = analyze(zoo.build("resnet18"))
    assert block("basic").cost(C=128, H=28, W=28) == _macs(r18, "layer2.1.")
    # ResNeXt-50 32×4d, layer1.1: G = 32 pathways of width c = 4, both forms
    rx = analyze(zoo.build("resnext50_32x4d"))
    for form in ("resnext_grouped", "resnext_paths"):
        assert block(form).cost(C=64, c=4, G=32, H=56, W=56) == _macs(rx, "layer1.1.") == 219_971_584
    # DenseNet-121 dense block 1: 6 layers, growth 32, on 64 channels at 56×56
    dn = analyze(zoo.build("densenet121"))
    assert block("dense_block").cost(C=64, k=32, L=6, H=56, W=56) == _macs(dn, "features.denseblock1.")
    assert block("dense_block", L=6).cost(C=64, k=32, H=56, W=56) == 1_040_449_536


def test_inverted_residual_matches_zoo_block():
    from cnngraph.dsl import Net
    from cnngraph.zoo.mobile import inverted_residual

    net = Net("ir")
    inverted_residual(net.input(32, 28, 28), 32, 1, 6, name="b")
    numeric = analyze(net.graph).total
    b = block("inverted_residual")
    assert b.cost(C=32, t=6, H=28, W=28) == numeric.macs
    assert block("inverted_residual", include=("norm",)).params(C=32, t=6) == numeric.params


def test_symbolic_counts_interpolated_and_checked():
    paths = block("resnext_paths")
    assert any("interpolate" in n for n in paths.notes)
    for G_ in (2, 5):
        exact = block("resnext_paths", G=G_)
        assert not exact.notes
        assert same(exact.cost, paths.cost.subs(G=G_)) and same(exact.memory, paths.memory.subs(G=G_))
    assert same(block("dense_block", L=4).memory, block("dense_block").memory.subs(L=4))

    def quadratic(m, values=None):  # cost grows as m³, but claimed degree 1: must be caught
        from cnngraph.dsl import Net, conv2d

        v = values or {}
        net = Net("q")
        x = net.input(v.get("C", C), 8, 8)
        for _ in range(m):
            x = conv2d(x, m * v.get("C", C), 1, bias=False)
        return net.graph

    with pytest.raises(CnnGraphError, match="not a polynomial of degree 1"):
        over_count(quadratic, sym("m"), 1)
    m = sym("m")  # C → mC, then m − 1 convs mC → mC, all 1×1 on 8×8: a cubic in m
    assert same(over_count(quadratic, m, 3)["cost"], 64 * m * C**2 + 64 * (m - 1) * m**2 * C**2)


# ---------------------------------------------------------------- design algebra
def test_resnext_equation_and_widths():
    eq = equal_cost(block("resnext_paths").cost, block("bottleneck").cost, "c")
    assert eq.text == "9Gc² + 8GCc − 17C² = 0"
    assert same(eq.lhs, 9 * G * c**2 + 8 * G * C * c - 17 * C**2)
    root = eq.solution()
    for G_, C_ in ((1, 64), (4, 64), (7, 3)):
        x = float(root.subs({G: G_, C: C_}))
        assert abs(9 * G_ * x**2 + 8 * G_ * C_ * x - 17 * C_**2) < 1e-6 * C_**2 and x > 0
    s = study("resnext_widths")
    rows = {int(row[0]): row for row in s.rows}
    # exact roots: c = 32(−8 + √370)/9 for G = 2, ...
    assert sympy.simplify(present.parse(s.data["table"][1]["root"]) - sympy.Rational(32, 9) * (-8 + sympy.sqrt(370))) == 0
    want = {1: (64.0, "exact"), 2: (39.948, "rounded up"), 4: (23.932, "rounded up"), 8: (13.701, "rounded up"),
            32: (3.973, "rounded up")}
    for G_, (value, how) in want.items():
        assert abs(float(rows[G_][2]) - value) < 1e-3 and rows[G_][4] == how and rows[G_][3] == str(
            dict(formulas.algebra.PAPER_RESNEXT)[G_])
        assert rows[G_][5] == "nearest integer"
    assert "9Gc² + 8GCc − 17C² = 0" in s.to("text")
    assert json.loads(s.to("json"))["table"][4]["paper"] == 4


def test_separable_speedup_and_limit():
    q = ratio(block("standard").cost, block("separable").cost)
    assert q.text == "9C/(9 + C)" and same(q, 9 * C / (9 + C))
    assert limit(q, "C") == 9
    s = study("separable_vs_standard")
    assert "9C/(9 + C) → 9 as C → ∞" in s.findings[0]


def test_comparison_studies():
    s = study("5x5_vs_3x3")
    assert s.rows[0] == ["cost", "25HWC²", "18HWC²", "25/18"] and s.rows[-1][1:3] == ["5", "5"]
    s = study("7x7_vs_3x3")
    assert s.rows[1] == ["params", "49C²", "27C²", "49/27"] and s.rows[-1][1:3] == ["7", "7"]
    s = study("vgg_resolution")
    assert s.rows[0][3] == "1" and s.rows[2][1:] == ["4HWC", "2HWC", "2"]
    s = study("basic_vs_bottleneck")
    assert s.rows[0][1:] == ["18HWC²", "17HWC²", "18/17"]
    assert "True" in study("resnext_forms").findings[0]
    for name in formulas.STUDIES:
        if name == "efficientnet_scaling":
            continue
        out = study(name)
        assert out.to("latex").startswith(r"\begin{aligned}")
        json.loads(out.to("json"))


def test_equal_cost_of_identical_formulas_is_an_error():
    with pytest.raises(CnnGraphError, match="identical"):
        equal_cost(block("basic").cost, block("preact").cost, "C")


def test_efficientnet_compound_scaling():
    eff = pytest.importorskip("cnngraph.zoo.efficientnet", reason="EfficientNet B0–B7 not in the zoo yet")
    assert "EFFICIENTNET_SCALING" in dir(eff)
    s = study("efficientnet_scaling")
    assert s.data["law"] == "192027/100000"  # α·β²·γ² = 1.2·1.1²·1.15²
    assert "quadratic in the resolution" in s.findings[1]
    table = {row["variant"]: row for row in s.data["table"]}
    assert table["b0"]["macs"] == json.loads((REF / "efficientnet_b0.json").read_text())["macs"]
    assert table["b7"]["macs"] == json.loads((REF / "efficientnet_b7_600.json").read_text())["macs"]
    ratios = [table[f"b{i}"]["ratio"] for i in range(8)]
    assert ratios == sorted(ratios)
    for row in table.values():  # depth/width rounding make the real growth 0–45 % above d·w²·r²
        assert 1.0 <= row["ratio"] / row["predicted"] < 1.45, row
    # FLOPs grow about 2^φ: within a factor 1.5 of 2^φ for φ implied by the resolution
    for row in table.values():
        assert 1 / 1.5 < row["ratio"] / 2 ** row["phi"] < 1.5, row


# ---------------------------------------------------------------- whole networks
def test_resnet50_closed_form_and_stages():
    nf = network("resnet50")
    assert same(nf.totals["macs"], 83410944 * h * w + 2048000)
    assert nf.totals["macs"].text == "83410944hw + 2048000"
    ref = json.loads((REF / "resnet50.json").read_text())
    assert nf.totals["macs"](h=7, w=7) == ref["macs"] and nf.totals["params"](h=7, w=7) == ref["params"]
    assert all(ok for _, ok in nf.checks) and len(nf.checks) == 2
    assert list(nf.stages) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    for f in ("params", "macs", "flops", "memory_bytes"):
        assert same(sum((sympy.sympify(s[f].expr) for s in nf.stages.values()), sympy.Integer(0)), nf.totals[f])
    assert same(nf.stages["layer1"]["macs"], 13631488 * h * w)
    assert "stage" in nf.to("text") and json.loads(nf.to("json"))["totals"]["macs"] == "83410944*h*w + 2048000"
    assert "| layer1 |" in nf.to("markdown")


def test_width_multiplier_closed_form():
    a = sym("a")
    nf = network("resnet18", width=64 * a)
    assert same(nf.totals["params"], 11157504 * a**2 + 531008 * a + 1000)
    for a_ in (1, 2):
        numeric = analyze(zoo.build("resnet18", width=64 * a_)).total
        assert nf.totals["params"](a=a_) == numeric.params
        assert nf.totals["macs"](a=a_, h=7, w=7) == numeric.macs


@pytest.mark.parametrize("model,size", [("vgg16", 100), ("resnet18", 199), ("alexnet", 227)])
def test_floors_collapsed_stay_exact(model, size):
    nf = network(model, input=(3, H, W))
    numeric = analyze(zoo.build(model, input=(3, size, size))).total
    for f in ("params", "macs", "memory_bytes"):
        assert nf.totals[f](H=size, W=size) == getattr(numeric, f), f
    if model == "vgg16":
        assert "⌊H/32⌋⌊W/32⌋" in nf.totals["macs"].text


def test_adaptive_pool_counts_its_windows_at_every_size():
    """An adaptive pool reads each of its windows (PyTorch's ⌊i·n/o⌋ … ⌈(i+1)·n/o⌉), and
    the symbolic count evaluates to the numeric one at every size. Found by the torchvision
    sweep: AlexNet at 63×63 pools a 1×1 map to 6×6, where the numeric count (largest window
    times outputs) and the symbolic one (C·H·W) disagreed."""
    from cnngraph.dsl import Net, adaptive_avgpool2d, adaptive_maxpool2d, conv2d

    def graph(n, o, op):
        net = Net("a")
        op(conv2d(net.input(3, n, n + 1), 4, 3, stride=2, padding=1, name="conv"), o, name="pool")
        return net.graph

    def windows(n, o):  # summed window sizes, window by window
        return sum(-(-(i + 1) * n // o) - i * n // o for i in range(o))

    for op in (adaptive_avgpool2d, adaptive_maxpool2d):
        for o in ((1, 1), (2, 3), (6, 6), (7, 4)):
            sym = analyze(graph(H, o, op)).rows[-1].costs
            for n in range(1, 30):
                num = analyze(graph(n, o, op)).rows[-1].costs
                m, m1 = (n + 1) // 2, (n + 2) // 2  # the conv's output: ⌈n/2⌉ × ⌈(n+1)/2⌉
                assert num.all_ops == 4 * windows(m, o[0]) * windows(m1, o[1]), (op, o, n)
                assert sympy.sympify(sym.all_ops).xreplace({H: n}) == num.all_ops, (op, o, n)
    conv, pool = analyze(graph(H, (1, 1), adaptive_avgpool2d)).rows[-2:]
    assert sympy.expand(pool.costs.all_ops - sympy.Mul(*conv.output_shape)) == 0  # global: C·H′·W′, nothing more


# ---------------------------------------------------------------- presentation
def test_present_layouts():
    assert present.text(present.slides_form(3 * H * W / 2)) == "3HW/2"
    assert present.text(9 * G * c**2 + 8 * G * C * c - 17 * C**2, unknown=c) == "9Gc² + 8GCc − 17C²"
    assert present.text(-H * W) == "−HW"
    alpha, cin = sym("alpha"), sym("Cin")
    assert present.text(alpha * H) == "Hα"
    assert present.text(cin * H * W) == "H·W·Cin"  # multi-letter names are not juxtaposed
    assert present.latex(present.slides_form(9 * C / (9 + C))) == r"\frac{9 C}{9 + C}"
    floor = sympy.floor(sympy.floor(H / 2 - sympy.Rational(1, 2)) / 2)
    assert present.collapse_floors(floor) == sympy.floor((H - 1) / 4)
    n = sym("N")  # a name sympy.sympify would read as its function N
    assert same(present.parse(present.plain(n * H * W)), n * H * W)
    f = Formula(C * H * W)
    assert f == C * H * W and f != 2 * C * H * W and f(C=2, H=3, W=4) == 24


# ---------------------------------------------------------------- command line
def test_cli_formula_block_and_list(capsys):
    assert main(["formula", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in formulas.names()) and "resnext_widths" in out
    assert main(["formula", "bottleneck"]) == 0
    out = capsys.readouterr().out
    assert "17HWC²" in out and "block.conv2" in out and "9HWC²" in out
    assert main(["formula", "separable", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert same(present.parse(d["cost"]), (9 * C + C**2) * H * W)
    assert main(["formula", "basic", "--format", "latex"]) == 0
    assert "18 H W C^{2}" in capsys.readouterr().out
    assert main(["formula", "conv", "--set", "K=5", "--at", "C=64,H=56,W=56"]) == 0
    assert f"{25 * 64 * 64 * 56 * 56:,}" in capsys.readouterr().out


def test_cli_formula_model_and_study(capsys):
    assert main(["formula", "resnet50", "--input", "3,32*h,32*w"]) == 0
    out = capsys.readouterr().out
    assert "83410944hw + 2048000" in out and "layer3" in out and "4,089,184,256 = 4,089,184,256" in out
    assert main(["formula", "resnet18", "-O", "width=64*a"]) == 0
    assert "11157504a² + 531008a + 1000" in capsys.readouterr().out
    assert main(["formula", "resnext-widths"]) == 0
    assert "rounded up" in capsys.readouterr().out
    assert main(["formula", "nosuchthing"]) == 2
    assert "unknown model 'nosuchthing'" in capsys.readouterr().err


def test_docs_table_matches_the_blocks():
    doc = (Path(__file__).parent.parent / "docs" / "formulas.md").read_text()
    for name in formulas.names():
        b = block(name)
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{name}` |"))
        cells = [x.strip() for x in row.split("|")]
        assert cells[2] == b.cost.text and cells[5] == (b.receptive.label if not b.receptive.whole else "whole"), name
        if name != "inception":
            assert cells[3] == b.params.text and cells[4] == b.memory.text, name


def test_per_layer_rows_add_up_to_the_totals():
    """BN and the residual add write memory: they are rows too, so the rows sum to the block's total."""
    import sympy

    from cnngraph import formulas

    b = formulas.block("bottleneck")
    for field in ("cost", "params", "memory"):
        assert sympy.simplify(sum(getattr(l, field).expr for l in b.layers) - getattr(b, field).expr) == 0
    assert [l.name for l in b.layers][-2:] == ["block.bn3", "block.add"]
