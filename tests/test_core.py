"""Core: DSL, shapes, cost model and tables, checked against first-principles integers."""
import json

import networkx as nx
import pytest
import sympy

import cnngraph
from cnngraph import Convention, analyze, zoo
from cnngraph.dsl import (Net, add, batchnorm, block, chunk, concat, conv2d, flatten, linear, maxpool2d, mul, relu,
                          scope, sigmoid, global_avgpool, channel_shuffle, avgpool2d)
from cnngraph.ir.errors import GraphError, ShapeError
from cnngraph.ir.symbols import C, H, W, N, h, w, sym

# The slides' AlexNet table (seed 000), recomputed from first principles:
# name -> (C_out, H_out, memory bytes, params, flop = MACs + pooling operations)
ALEXNET = {
    "conv1": (64, 56, 64 * 56 * 56 * 4, 64 * 3 * 11 * 11 + 64, 64 * 56 * 56 * 3 * 11 * 11),
    "pool1": (64, 27, 64 * 27 * 27 * 4, 0, 64 * 27 * 27 * 9),
    "conv2": (192, 27, 192 * 27 * 27 * 4, 192 * 64 * 25 + 192, 192 * 27 * 27 * 64 * 25),
    "pool2": (192, 13, 192 * 13 * 13 * 4, 0, 192 * 13 * 13 * 9),
    "conv3": (384, 13, 384 * 169 * 4, 384 * 192 * 9 + 384, 384 * 169 * 192 * 9),
    "conv4": (256, 13, 256 * 169 * 4, 256 * 384 * 9 + 256, 256 * 169 * 384 * 9),
    "conv5": (256, 13, 256 * 169 * 4, 256 * 256 * 9 + 256, 256 * 169 * 256 * 9),
    "pool5": (256, 6, 256 * 36 * 4, 0, 256 * 36 * 9),
    "fc6": (4096, None, 4096 * 4, 9216 * 4096 + 4096, 9216 * 4096),
    "fc7": (4096, None, 4096 * 4, 4096 * 4096 + 4096, 4096 * 4096),
    "fc8": (1000, None, 1000 * 4, 4096 * 1000 + 1000, 4096 * 1000),
}


def test_alexnet_table_exact():
    r = analyze(zoo.build("alexnet"))
    for title, (c, hw, mem, params, flop) in ALEXNET.items():
        row = r.row(title)
        assert row.output_shape[0] == c
        if hw is not None:
            assert row.output_shape[1:] == (hw, hw)
        assert (row.memory_bytes, row.params, row.flops) == (mem, params, flop), title
    assert r.row("conv1").macs == 72_855_552  # the slide's worked example
    assert r.row("pool1").ops == 419_904  # "0.4 MFLOP"
    assert r.row("flatten").output_shape == (9216,)
    assert r.total.params == 61_100_840  # torchvision's published count


def test_alexnet_slide_rounding():
    md = analyze(zoo.build("alexnet")).to("markdown")
    assert "| conv1 | 3 | 227 | 64 | 11 | 4 | 2 | 64 | 56 | 784 | 23 | 73 |" in md
    # 64·27·27·9 = 419,904 pooling operations: 0.42 M, not a rounded 0.
    assert "| pool1 | 64 | 56 |  | 3 | 2 | 0 | 64 | 27 | 182 | 0 | 0.42 |" in md
    # The slides print 145 for conv4: 256·13·13·384·9 = 149,520,384 is 150 M.
    assert "| conv4 | 384 | 13 | 256 | 3 | 1 | 1 | 256 | 13 | 169 | 885 | 150 |" in md
    # and 37,749 k params for fc6: 9216·4096 + 4096 = 37,752,832 is 37,753 k.
    assert "| fc6 | 9216 |  | 4096 |  |  |  | 4096 |  | 16 | 37753 | 38 |" in md


def test_lenet5_seed003_table():
    r = analyze(zoo.build("lenet5"))
    shapes = {row.title: row.output_shape for row in r.rows}
    assert shapes["conv1"] == (20, 28, 28) and shapes["pool1"] == (20, 14, 14)
    assert shapes["conv2"] == (50, 14, 14) and shapes["pool2"] == (50, 7, 7)
    assert shapes["flatten"] == (2450,) and shapes["fc1"] == (500,) and shapes["fc2"] == (10,)
    # weight sizes of the seed: 20×1×5×5, 50×20×5×5, 2450×500, 500×10 (+ biases)
    assert [r.row(n).params for n in ("conv1", "conv2", "fc1", "fc2")] == [520, 25050, 1225500, 5010]
    assert r.total.params == 1_256_080


def googlenet_stem(input=(3, 224, 224)):
    net = Net("googlenet_stem")
    x = net.input(*input)
    x = relu(conv2d(x, 64, 7, stride=2, padding=3, name="conv1"))
    x = maxpool2d(x, 3, 2, padding=1, name="pool1")
    x = relu(conv2d(x, 64, 1, name="conv2"))
    x = relu(conv2d(x, 192, 3, padding=1, name="conv3"))
    maxpool2d(x, 3, 2, padding=1, name="pool2")
    return net.graph


def test_googlenet_stem_table():
    r = analyze(googlenet_stem())
    got = [(row.output_shape, row.memory_bytes, row.params, row.flops) for row in r.rows if row.kind in ("conv", "pool")]
    assert got == [
        ((64, 112, 112), 3136 * 1024, 9472, 118_013_952),
        ((64, 56, 56), 784 * 1024, 0, 1_806_336),
        ((64, 56, 56), 784 * 1024, 4160, 12_845_056),
        ((192, 56, 56), 2352 * 1024, 110_784, 346_816_512),
        ((192, 28, 28), 588 * 1024, 0, 1_354_752),
    ]
    # Slide totals: 7.5 MB and 124 K params hold; "418 MFLOP" does not: the rows sum to 481 M.
    assert r.total.memory_bytes == 7644 * 1024
    assert r.total.params == 124_416
    assert r.total.flops == 480_836_608


def test_symbolic_alexnet_matches_numeric():
    sym_r = analyze(zoo.build("alexnet"), input=(3, H, W))
    num_r = analyze(zoo.build("alexnet"))
    assert sym_r.is_symbolic
    for a, b in zip(sym_r.subs({H: 227, W: 227}).rows, num_r.rows):
        assert a.output_shape == b.output_shape
        assert (a.params, a.macs, a.memory_bytes, a.flops) == (b.params, b.macs, b.memory_bytes, b.flops), a.name


def test_symbolic_resnet50_row_by_row():
    sym_r = analyze(zoo.build("resnet50"), input=(3, H, W)).subs({H: 224, W: 224})
    num_r = analyze(zoo.build("resnet50"))
    for a, b in zip(sym_r.rows, num_r.rows):
        assert a.costs == b.costs, a.name


def test_resnet50_macs_polynomial_in_hw():
    r = analyze(zoo.build("resnet50", input=(3, 32 * h, 32 * w)))
    macs = sympy.expand(r.total.macs)
    poly = sympy.Poly(macs, h, w)
    assert poly.monoms() == [(1, 1), (0, 0)]  # a·h·w + b: conv MACs scale with h·w, the fc does not
    assert macs == 83_410_944 * h * w + 2_048_000
    assert macs.subs({h: 7, w: 7}) == 4_089_184_256  # torchvision's ResNet-50 at 224
    assert r.total.params == 25_557_032


def test_totals_function_reevaluates():
    r = analyze(zoo.build("resnet18"), input=(3, H, W))
    f = r.totals_function()
    assert f(H=224, W=224)["macs"] == analyze(zoo.build("resnet18")).total.macs
    assert f(H=320, W=256)["macs"] == analyze(zoo.build("resnet18", input=(3, 320, 256))).total.macs


def test_conventions():
    g = zoo.build("alexnet")
    base = analyze(g)
    two = analyze(g, flops_per_mac=2, count=())
    assert two.total.flops == 2 * base.total.macs
    half = analyze(g, bytes_per_element=2)
    assert half.total.memory_bytes * 2 == base.total.memory_bytes
    batched = analyze(g, batch=N)
    assert sympy.expand(batched.total.macs - N * base.total.macs) == 0
    assert batched.total.params == base.total.params
    acts = analyze(g, count=("pool", "act"))
    relu_ops = sum(r.all_ops for r in base.rows if r.kind == "act")
    assert acts.total.flops == base.total.flops + relu_ops
    assert "2×MAC" in str(Convention.named("flops2"))


def test_groups_and_shares():
    r = analyze(zoo.build("resnet50"))
    stages = r.groups(1)
    assert set(stages) >= {"layer1", "layer2", "layer3", "layer4"}
    assert sum(t.macs for t in stages.values()) == r.total.macs
    assert sum(r.share(row, "macs") for row in r.rows) == pytest.approx(1.0)


def test_batchnorm_buffers():
    r = analyze(zoo.build("resnet18"))
    bn = r.row("bn1")
    assert (bn.params, bn.buffers) == (128, 128)


def test_scopes_and_blocks_name_nodes():
    @block("Res")
    def res(x, c):
        y = relu(batchnorm(conv2d(x, c, 3, padding=1, bias=False, name="conv1"), name="bn1"))
        return relu(add(y, x, name="add"))

    net = Net("t")
    x = net.input(8, 16, 16)
    with scope("layer1", "stage"):
        for i in range(2):
            x = res(x, 8, name=str(i))
    g = net.graph
    assert "layer1.1.conv1" in g
    assert g.nodes["layer1.1.conv1"]["path"] == (("layer1", "stage"), ("1", "Res"))


def test_symbolic_widths_dsl():
    G, c = sym("G"), sym("c")
    net = Net("resnext")
    x = net.input(4 * C, H, W)
    y = conv2d(x, G * c, 1, bias=False)
    y = conv2d(y, G * c, 3, padding=1, groups=G, bias=False)
    y = conv2d(y, 4 * C, 1, bias=False)
    r = analyze(net.graph)
    assert sympy.expand(r.total.macs - (8 * C * c + 9 * c**2) * H * W * G) == 0


def test_merges_and_shuffle():
    net = Net("m")
    x = net.input(64, 8, 8)
    a, b = chunk(x, 2)
    s = sigmoid(linear(flatten(global_avgpool(a)), 32))
    y = concat(mul(a, s), b)
    y = channel_shuffle(y, 2)
    assert y.shape == (64, 8, 8)
    assert avgpool2d(y, 3, 2, padding=1, ceil_mode=True).shape == (64, 5, 5)  # as torch.nn.AvgPool2d
    assert maxpool2d(net.input(1, 7, 7, name="x2"), 2, 2, ceil_mode=True).shape == (1, 4, 4)


# ------------------------------------------------------------------ errors
def err(fn):
    with pytest.raises(cnngraph.CnnGraphError) as e:
        fn()
    return str(e.value)


def test_error_kernel_larger_than_input():
    net = Net()
    x = net.input(3, 5, 5)
    msg = err(lambda: conv2d(x, 8, 7, name="big"))
    assert msg.startswith("big: kernel larger than padded input") and "5" in msg and "7" in msg


def test_error_add_channels():
    net = Net()
    x = net.input(3, 8, 8)
    a, b = conv2d(x, 64, 1, name="a"), conv2d(x, 128, 1, name="b")
    msg = err(lambda: add(a, b, name="sum"))
    assert "sum: add of tensors with different channels" in msg and "64 and 128" in msg


def test_error_groups():
    net = Net()
    x = net.input(64, 8, 8)
    msg = err(lambda: conv2d(x, 64, 3, groups=3, name="g"))
    assert "g: groups must divide in_channels (groups=3, in_channels=64)" == msg


def test_error_nonpositive():
    net = Net()
    assert "input sizes must be positive" in err(lambda: net.input(3, 0, 8))
    x = Net().input(3, 8, 8)
    assert "out_channels must be positive" in err(lambda: conv2d(x, 0, 3))


def test_error_linear_unflattened():
    x = Net().input(3, 8, 8)
    msg = err(lambda: linear(x, 10, name="fc"))
    assert msg.startswith("fc: linear layer needs a flattened vector input") and "3×8×8" in msg


def test_error_cycle_and_dangling():
    g = zoo.build("lenet5")
    h = g.copy()
    h.add_edge("fc2", "conv1")
    h.nodes["conv1"]["inputs"] = ["input", "fc2"]
    assert "cycle" in err(lambda: cnngraph.check(h))
    d = g.copy()
    d.nodes["conv2"]["inputs"] = ["nowhere"]
    assert "dangling input" in err(lambda: cnngraph.check(d))


def test_stride_fit_reported_and_strict():
    net = Net()
    x = net.input(3, 7, 7)
    y = conv2d(x, 4, 3, stride=3, name="s3")  # (7 - 3)/3 + 1 = 2.33: "doesn't fit nicely"
    assert y.shape == (4, 2, 2)
    assert any("s3: stride does not fit" in n for n in net.g.graph["notes"])
    strict = Net(strict=True)
    x = strict.input(3, 7, 7)
    assert "stride does not fit" in err(lambda: conv2d(x, 4, 3, stride=3))


def test_symbolic_error_detected_when_provable():
    x = Net().input(C, H, W)
    y = conv2d(x, C, 3, padding=1)
    assert y.shape == (C, H, W)


# ------------------------------------------------------------------ formats and CLI
def test_formats():
    r = analyze(zoo.build("lenet5"))
    data = json.loads(r.to("json"))
    assert data["total"]["params"] == 1_256_080
    assert data["convention"]["flops_per_mac"] == 1
    row = data["rows"][1]
    assert {"name", "op", "input_shape", "output_shape", "params", "macs", "memory_bytes"} <= set(row)
    assert r.to("csv").splitlines()[0].startswith("Layer,C in")
    assert r"\begin{tabular}" in r.to("latex")
    assert "total" in r.to("text")
    sym_json = json.loads(analyze(zoo.build("lenet5"), input=(1, H, W)).to("json"))
    assert sympy.sympify(sym_json["total"]["macs"]).free_symbols


def test_cli_table(capsys):
    from cnngraph.cli import main

    assert main(["table", "alexnet", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "conv1,3,227,64,11,4,2,64,56,784,23,73" in out
    assert main(["table", "resnet50", "--input", "3,32*h,32*w", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sympy.sympify(data["total"]["macs"]) == sympy.sympify("83410944*h*w + 2048000")
    assert main(["zoo", "--names"]) == 0
    assert "resnet152" in capsys.readouterr().out
    assert main(["table", "nosuchnet"]) == 2


def test_registry_is_single_source():
    from cnngraph.ir import ops

    for name, op in ops.REGISTRY.items():
        assert op.name == name and op.kind and callable(op.shape)


def test_group_totals_table(capsys):
    from cnngraph.cli import main

    assert main(["table", "resnet50", "--groups", "1", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Group,params,MACs,flops,memory (B),share of flops"
    rows = {l.split(",")[0]: l.split(",") for l in lines[1:]}
    assert set(rows) == {"(top)", "layer1", "layer2", "layer3", "layer4", "total"}
    assert sum(int(rows[k][2]) for k in rows if k != "total") == int(rows["total"][2]) == 4_089_184_256


def test_fit_notes_summarized():
    from cnngraph.present.tables import summarize_notes

    # ResNet's stride-2 layers on even sizes only drop a half: one routine line, layers named once.
    lines = summarize_notes(analyze(zoo.build("resnet18")).notes)
    assert len(lines) == 1 and "as intended" in lines[0]
    assert lines[0].endswith("at: conv1, maxpool, layer2.0.conv1, layer2.0.downsample.0, layer3.0.conv1, "
                             "layer3.0.downsample.0, layer4.0.conv1, layer4.0.downsample.0")
    # AlexNet's pool1 gives 27, not 28: the note says the arithmetic, under the row's name.
    r = analyze(zoo.build("alexnet"))
    lines = summarize_notes(r.notes, {row.name: row.title for row in r.rows})
    assert lines == ["stride does not fit the padded input, output size floored: "
                     "pool1: (56 − 3)/2 = 26.5, floored to 26, so 27 outputs"]
    assert "features.2" not in r.to("text") and "pool1: (56 − 3)/2 = 26.5" in r.to("markdown")


def test_small_values_keep_their_precision():
    md = analyze(zoo.build("lenet5")).to("markdown")
    # conv1: 20·25 + 20 = 520 params, 20·28·28·25 = 392,000 MACs; fc2: 10 outputs × 4 B = 0.0391 KB
    assert "| conv1 | 1 | 28 | 20 | 5 | 1 | 2 | 20 | 28 | 61 | 0.52 | 0.392 |" in md
    assert "| fc2 | 500 |  | 10 |  |  |  | 10 |  | 0.0391 | 5.01 | 0.005 |" in md


def test_symbolic_slide_cells_are_decimals():
    from cnngraph.dsl import Net, conv2d
    from cnngraph.ir.symbols import C

    net = Net("one")
    conv2d(net.input(3, 32, 32), C, 3, padding=1)
    md = analyze(net).to("markdown")
    # 27·C + C params = 0.028C thousand; 27·C·32·32 MACs = 0.027648C million, printed 0.0276C
    assert "| 4C | 0.028C | 0.0276C |" in md and "/1000" not in md


