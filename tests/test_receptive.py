"""Receptive fields: symbolic rules, published values, and PyTorch gradients as the judge."""
import random

import pytest
import sympy

from cnngraph import analyze, zoo
from cnngraph.cli import main
from cnngraph.dsl import Net, add, avgpool2d, concat, conv2d, maxpool2d, relu
from cnngraph.analysis.receptive import Field, column, receptive_field, receptive_fields
from cnngraph.ir.symbols import H, K, W

torch = pytest.importorskip("torch")


def stack(kernels, input=(8, 32, 32)):
    net = Net("stack")
    x = net.input(*input)
    for kk in kernels:
        x = conv2d(x, 8, kk, padding="same" if not isinstance(kk, int) else (kk - 1) // 2)
    return net.graph


def test_stacked_convs_symbolic():
    assert receptive_field(stack([3, 3, 3])) == Field((7, 7), (1, 1), (0, 0))
    assert receptive_field(stack([3, 3])).size == receptive_field(stack([5])).size == (5, 5)
    f = receptive_field(stack([K, K, K], input=(8, H, W)))
    assert sympy.expand(f.size[0] - (3 * K - 2)) == 0 and f.jump == (1, 1) and f.start == (0, 0)


def test_published_receptive_fields():
    # AlexNet pool5 195, VGG-16 pool5 212, ResNet-18 435 and ResNet-50 427 at the last conv
    # (Araujo et al., "Computing receptive fields of CNNs", Distill 2019, and common tables)
    cases = {"alexnet": ("features.12", 195, 32), "vgg16": ("features.30", 212, 32),
             "resnet18": ("layer4.1.conv2", 435, 32), "resnet50": ("layer4.2.conv3", 427, 32)}
    for model, (node, size, jump) in cases.items():
        f = receptive_fields(zoo.build(model))[node]
        assert f.size == (size, size) and f.jump == (jump, jump), model
    f = receptive_field(zoo.build("resnet50"))  # fc after global pooling sees everything
    assert f.whole and f.merged and f.size == (427 + 6 * 32,) * 2


def test_multi_input_takes_max_and_says_so():
    net = Net("branches")
    x = net.input(4, 40, 40)
    a = conv2d(x, 4, 3, padding=1, name="a")
    b = conv2d(conv2d(x, 4, 3, padding=1, name="b1"), 4, 5, padding=2, name="b2")
    y = concat(a, b, name="cat")
    fields = receptive_fields(net.graph)
    assert fields["cat"].size == (7, 7) and fields["cat"].merged and not fields["a"].merged
    assert column(net.graph)["cat"] == "7 (max)" and column(net.graph)["b2"] == "7"


def test_symbolic_merge_gives_max():
    net = Net("sym")
    x = net.input(4, H, W)
    a = conv2d(x, 4, K, padding="same", name="a")
    b = conv2d(x, 4, 3, padding=1, name="b")
    f = receptive_fields(add(a, b, name="add").net.graph)["add"]
    assert f.size[0] == sympy.Max(K, 3)


def test_table_column():
    g = zoo.build("alexnet")
    md = analyze(g).to("markdown", receptive=column(g))
    assert md.splitlines()[2].endswith("| RF |")
    assert "| pool5 | 256 | 13 |  | 3 | 2 | 0 | 256 | 6 | 36 | 0 | 0.0829 | 195 |" in md


def test_cli_receptive(capsys):
    assert main(["receptive", "vgg16"]) == 0
    out = capsys.readouterr().out
    assert "pool5" in out and " 212 " in out
    assert main(["receptive", "basic", "--format", "json"]) == 0
    assert '"RF size": "5"' in capsys.readouterr().out
    assert main(["receptive", "alexnet", "--table", "--format", "markdown"]) == 0
    assert "| RF |" in capsys.readouterr().out


# ---------------------------------------------------------------- PyTorch as the judge
def run_torch(g, x):
    """Evaluate a graph of conv / avg pool / add / concat / relu with all-ones weights."""
    vals = {}
    for n in g.nodes:
        d = g.nodes[n]
        a = d["attrs"]
        ins = [vals[i] for i in d["inputs"]]
        if d["op"] == "input":
            vals[n] = x
        elif d["op"] == "conv2d":
            t, l, b, r = a["padding"]
            y = torch.nn.functional.pad(ins[0], (l, r, t, b))
            wt = torch.ones(a["out_channels"], ins[0].shape[1] // a["groups"], *a["kernel"], dtype=x.dtype)
            vals[n] = torch.nn.functional.conv2d(y, wt, stride=a["stride"], dilation=a["dilation"], groups=a["groups"])
        elif d["op"] == "avgpool2d":
            vals[n] = torch.nn.functional.avg_pool2d(ins[0], a["kernel"], a["stride"], a["padding"][:2])
        elif d["op"] == "add":
            vals[n] = sum(ins)
        elif d["op"] == "concat":
            vals[n] = torch.cat(ins, 1)
        elif d["op"] == "relu":
            vals[n] = ins[0]
    return vals


def random_graph(rng):
    net = Net("random")
    x = net.input(2, 96, 96)
    for i in range(rng.randint(2, 5)):
        kind = rng.choice(["conv", "conv", "pool", "res"])
        if kind == "conv":
            k, s, d = rng.choice([1, 2, 3, 4, 5]), rng.choice([1, 1, 2]), rng.choice([1, 1, 2])
            p = rng.randint(0, (d * (k - 1)) // 2)
            x = conv2d(x, 2, k, stride=s, padding=p, dilation=d, name=f"c{i}")
        elif kind == "pool":
            k = rng.choice([2, 3])
            x = avgpool2d(x, k, rng.choice([1, 2]), padding=rng.randint(0, k // 2), name=f"p{i}")
        else:  # residual: a 3×3 branch added to a 1×1 path
            x = add(conv2d(x, 2, 3, padding=1, name=f"r{i}a"), conv2d(x, 2, 1, name=f"r{i}b"), name=f"r{i}")
    return net.graph


@pytest.mark.parametrize("seed", range(12))
def test_fields_equal_pytorch_gradient_support(seed):
    """Backprop one output unit through all-ones weights: the input pixels with a nonzero
    gradient are exactly the receptive field (for a unit whose field lies inside the image)."""
    g = random_graph(random.Random(seed))
    out = g.graph["outputs"][0]
    f = receptive_fields(g)[out]
    x = torch.zeros(1, 2, 96, 96, dtype=torch.float64, requires_grad=True)
    y = run_torch(g, x)[out]
    Ho, Wo = y.shape[2:]
    assert (Ho, Wo) == g.nodes[out]["shape"][1:]
    i, j = Ho // 2, Wo // 2
    y[0, 0, i, j].backward()
    support = (x.grad[0].abs().sum(0) > 0).nonzero()
    rows, cols = support[:, 0], support[:, 1]
    for axis, idx, got in ((0, i, rows), (1, j, cols)):
        centre = f.start[axis] + idx * f.jump[axis]
        lo, hi = centre - sympy.Rational(f.size[axis] - 1, 2), centre + sympy.Rational(f.size[axis] - 1, 2)
        if lo < 0 or hi > 95:
            pytest.skip("field reaches the border for this random stack")
        assert (int(got.min()), int(got.max())) == (lo, hi), (seed, axis, f)


def test_maxpool_field_like_avgpool():
    for op in (maxpool2d, avgpool2d):
        net = Net("p")
        x = relu(conv2d(net.input(1, 20, 20), 1, 3, padding=1))
        op(x, 3, 2, padding=1, name="pool")
        assert receptive_field(net.graph) == Field((5, 5), (2, 2), (0, 0))  # 3, then 3 + (3 − 1)·1
