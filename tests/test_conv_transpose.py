"""Transposed convolution (``conv_transpose2d``): shapes, parameters and multiply-adds from first
principles and symbolically, against PyTorch's ``nn.ConvTranspose2d`` / ``F.conv_transpose2d``
and ONNX Runtime's ``ConvTranspose`` over many geometries, through from_torch and the ONNX
import (``pads``, ``auto_pad``, ``output_shape``, ``output_padding``), and a U-Net decoder."""
import itertools

import numpy as np
import pytest

from cases import TOL, rel_err
from cnngraph import analyze
from cnngraph.analysis.receptive import receptive_field
from cnngraph.backends import cupy_backend as cb
from cnngraph.backends.numba_backend import run as numba_run
from cnngraph.compiler import compile
from cnngraph.compiler.weights import init
from cnngraph.dsl import Net, conv_transpose2d
from cnngraph.ir.errors import ShapeError
from cnngraph.ir.symbols import H, W, h, w

torch = pytest.importorskip("torch")
nn = torch.nn


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


def _one(cin, hw, cout, k, **kw):
    net = Net("t")
    conv_transpose2d(net.input(cin, *hw), cout, k, name="up", **kw)
    return net.graph


# ---------------------------------------------------------------- counts from first principles
def test_unet_upconv_counts():
    """U-Net's last up-convolution (Ronneberger et al. 2015): 128 → 64 channels, 2×2, stride 2,
    on 196×196: output 392×392, 128·64·4 + 64 parameters, 128·196²·64·4 multiply-adds."""
    r = analyze(_one(128, (196, 196), 64, 2, stride=2))
    row = r.rows[-1]
    assert row.output_shape == (64, 392, 392)
    assert row.params == 32832
    assert row.macs == 1258815488


def test_grouped_padded_counts_and_symbolic_sizes():
    # 8 → 12 channels in 4 groups, 3×3, stride 2, padding 1, output padding 1, on 9×11:
    # (9 − 1)·2 − 2 + 2 + 1 + 1 = 18 rows, (11 − 1)·2 − 2 + 2 + 1 + 1 = 22 columns;
    # weight 8 × 3 × 3 × 3 = 216 + 12 biases; MACs 8·9·11·3·9 = 21384
    row = analyze(_one(8, (9, 11), 12, 3, stride=2, padding=1, output_padding=1, groups=4)).rows[-1]
    assert (row.output_shape, row.params, row.macs) == ((12, 18, 22), 228, 21384)
    g = _one(8, (H, W), 12, 3, stride=2, padding=1, output_padding=1, groups=4)
    assert g.nodes["up"]["shape"] == (12, 2 * H, 2 * W)
    assert analyze(g).total.macs == 216 * H * W
    # asymmetric padding, dilation, a stride per axis: (5 − 1)·3 − 0 − 2 + 1·2 + 2 + 1 = 15,
    # (7 − 1)·2 − 1 − 3 + 2·3 + 1 + 1 = 16
    g = _one(4, (5, 7), 6, (3, 4), stride=(3, 2), padding=(0, 1, 2, 3), output_padding=(2, 1), dilation=(1, 2))
    assert g.nodes["up"]["shape"] == (6, 15, 16)
    g = _one(4, (4 * h, 4 * w), 6, 4, stride=2, padding=1)
    assert g.nodes["up"]["shape"] == (6, 8 * h, 8 * w)
    assert analyze(g).total.macs == 4 * 16 * h * w * 6 * 16


def test_counts_agree_with_fvcore_and_pytorch_flop_counter():
    """The MAC convention: torch.utils.flop_counter (2 FLOPs per MAC) and fvcore count the same."""
    from torch.utils.flop_counter import FlopCounterMode

    fvcore = pytest.importorskip("fvcore.nn")
    for cin, cout, k, s, p, op, d, g in [(8, 12, 3, 2, 1, 1, 1, 4), (16, 8, 4, 2, 1, 0, 1, 1),
                                         (6, 9, (3, 2), (1, 3), (2, 0), (0, 2), (2, 1), 3)]:
        m = nn.ConvTranspose2d(cin, cout, k, s, p, op, g, True, d)
        x = torch.randn(1, cin, 7, 10)
        with FlopCounterMode(display=False) as fc:
            m(x)
        net = Net("t")
        conv_transpose2d(net.input(cin, 7, 10), cout, k, stride=s, padding=p, output_padding=op, groups=g,
                         dilation=d)
        r = analyze(net)
        assert r.total.macs * 2 == fc.get_total_flops()
        assert r.total.macs == fvcore.FlopCountAnalysis(m, x).unsupported_ops_warnings(False).total()
        assert r.total.params == sum(t.numel() for t in m.parameters())


def test_shape_rule_errors():
    with pytest.raises(ShapeError, match="output_padding along H must be smaller than the stride or the dilation"):
        _one(4, (5, 5), 4, 3, stride=2, output_padding=2)
    with pytest.raises(ShapeError, match="groups must divide out_channels"):
        _one(4, (5, 5), 6, 3, groups=4)
    with pytest.raises(ShapeError, match="output size along H is not positive"):
        _one(4, (1, 5), 4, 1, padding=(1, 0, 1, 0))


def test_receptive_field():
    """2×2 stride 2: each output sees one input pixel, half a pixel apart; 3×3 stride 2 sees up to two."""
    f = receptive_field(_one(4, (8, 8), 4, 2, stride=2))
    assert (f.size, f.jump) == ((1, 1), (sympy_half(), sympy_half()))
    f = receptive_field(_one(4, (8, 8), 4, 3, stride=2, padding=1))
    assert (f.size, f.start) == ((2, 2), (0, 0))


def sympy_half():
    import sympy

    return sympy.Rational(1, 2)


# ---------------------------------------------------------------- numerics against PyTorch
GEOMETRIES = [  # cin, cout, kernel, stride, padding, output_padding, dilation, groups, input H×W
    (3, 5, 2, 2, 0, 0, 1, 1, (5, 7)),
    (4, 6, 3, 2, 1, 1, 1, 2, (6, 5)),
    (8, 8, 4, 2, 1, 0, 1, 8, (4, 4)),
    (4, 4, (3, 5), (2, 3), (1, 2), (1, 0), (2, 1), 4, (5, 6)),
    (2, 3, 1, 3, 0, 2, 1, 1, (3, 4)),
    (6, 4, 3, 1, 2, 1, 2, 2, (7, 3)),
    (16, 32, 3, 3, 0, 2, 1, 1, (2, 9)),
    (5, 10, (1, 4), (1, 2), (0, 1), (0, 1), (1, 3), 5, (6, 6)),
]


def _module(cin, cout, k, s, p, op, d, g, seed=0):
    torch.manual_seed(seed)
    m = nn.ConvTranspose2d(cin, cout, k, s, p, op, g, True, d).eval()
    with torch.no_grad():
        m.bias.normal_()
    return m


@pytest.mark.parametrize("geo", GEOMETRIES, ids=[str(i) for i in range(len(GEOMETRIES))])
def test_matches_torch_on_every_backend(geo):
    from cnngraph.interop.torch_import import from_torch

    *args, hw = geo
    m = _module(*args)
    x = np.random.default_rng(1).standard_normal((3, args[0], *hw)).astype(np.float32)
    with torch.no_grad():
        ref = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), m.weight, m.bias, m.stride, m.padding,
                                                   m.output_padding, m.groups, m.dilation).numpy()
    g = from_torch(m, input=(args[0], *hw))
    assert g.nodes["input"]["shape"][1:] == hw and analyze(g).total.params == sum(t.numel() for t in m.parameters())
    plan = compile(g, g.graph["weights"])
    (y,) = numba_run(plan, x)
    assert y.shape == ref.shape and rel_err(y, ref) <= TOL
    for dev in ("shim", "host"):
        (y,) = cb.executor(plan, device=dev, strict=True, workspace_elems=2000).run(x)  # chunks of samples
        assert rel_err(y, ref) <= TOL, dev


def test_output_size_argument_sets_the_output_padding():
    from cnngraph.interop.torch_import import TraceError, from_torch

    class Up(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1)

        def forward(self, x):
            return self.up(x, output_size=(2 * x.shape[2], 2 * x.shape[3]))

    g = from_torch(Up(), input=(4, H, W))
    assert g.nodes["up"]["attrs"]["output_padding"] == (1, 1) and g.nodes["up"]["shape"] == (4, 2 * H, 2 * W)

    class Fixed(Up):
        def forward(self, x):
            return self.up(x, output_size=(10, 10))

    assert from_torch(Fixed(), input=(4, 5, 5)).nodes["up"]["attrs"]["output_padding"] == (1, 1)
    with pytest.raises(TraceError, match="depends on the input size"):
        from_torch(Fixed(), input=(4, H, W))


# ---------------------------------------------------------------- ONNX: export, ORT, import
def _ort(model_bytes, x):
    from torch_models import ort_run

    return ort_run(model_bytes, x)[0]


def test_export_runs_in_onnx_runtime_and_imports_back():
    pytest.importorskip("onnxruntime")
    from cnngraph import onnx as cg_onnx
    from cnngraph.interop.torch_ref import run as torch_run

    for i, (*args, hw) in enumerate(GEOMETRIES):
        net = Net("t")
        cin, cout, k, s, p, op, d, grp = args
        conv_transpose2d(net.input(cin, *hw), cout, k, stride=s, padding=p, output_padding=op, dilation=d,
                         groups=grp, name="up")
        ws = init(net, seed=i, random_bn=True)
        x = np.random.default_rng(i).standard_normal((2, cin, *hw)).astype(np.float32)
        model = cg_onnx.export(net, ws)
        ref = torch_run(net, ws, x)
        assert rel_err(_ort(model.SerializeToString(), x), ref) <= TOL, i
        back = cg_onnx.load(model)
        a, b = back.nodes["up"]["attrs"], net.graph.nodes["up"]["attrs"]
        if max(b["output_padding"]) < min(b["stride"]):
            assert a == b
        else:  # written as less cropping at the end (ONNX Runtime wants output_padding < stride)
            assert back.nodes["up"]["shape"] == net.graph.nodes["up"]["shape"]
        assert rel_err(numba_run(compile(back, back.graph["weights"]), x)[0], ref) <= TOL, i


def _hand_model(cin, cout, hw, **attrs):
    """A one-node ONNX ConvTranspose model with the attributes given (ONNX's names)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    k = attrs["kernel_shape"]
    wt = rng.standard_normal((cin, cout // attrs.get("group", 1), *k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "up.weight", "up.bias"], ["y"], name="up", **attrs)
    graph = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, *hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(wt, "up.weight"), numpy_helper.from_array(b, "up.bias")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 2, 1], output_padding=[1, 0]),
    dict(kernel_shape=[3, 3], strides=[2, 2], output_shape=[10, 11]),
    dict(kernel_shape=[4, 3], strides=[2, 3], output_shape=[9, 13], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_LOWER", dilations=[2, 1]),
    dict(kernel_shape=[2, 2], strides=[1, 1], auto_pad="VALID", group=2),
], ids=["pads", "output_shape", "output_shape_upper", "same_upper", "same_lower_dilated", "valid_groups"])
def test_import_matches_onnx_runtime(attrs):
    pytest.importorskip("onnxruntime")
    from cnngraph import onnx as cg_onnx

    model = _hand_model(4, 6, (5, 6), **attrs)
    x = np.random.default_rng(2).standard_normal((1, 4, 5, 6)).astype(np.float32)
    ref = _ort(model.SerializeToString(), x)
    g = cg_onnx.load(model)
    (y,) = numba_run(compile(g, g.graph["weights"]), x)
    assert y.shape == ref.shape and rel_err(y, ref) <= TOL
    if "output_shape" in attrs:
        assert tuple(g.nodes["up"]["shape"][1:]) == tuple(attrs["output_shape"])


def test_import_symbolic_sizes_with_same_padding():
    """SAME padding of a transposed convolution does not depend on the input size: sizes stay symbolic."""
    from cnngraph import onnx as cg_onnx

    g = cg_onnx.load(_hand_model(4, 6, ("H", "W"), kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"))
    assert g.nodes["up"]["shape"] == (6, 2 * H, 2 * W)
    with pytest.raises(Exception, match="depends on the input size"):
        cg_onnx.load(_hand_model(4, 6, ("H", "W"), kernel_shape=[3, 3], strides=[2, 2], output_shape=[10, 11]))


# ---------------------------------------------------------------- a PyTorch U-Net, both paths
class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Ronneberger et al.'s U-Net, narrower and three levels deep: 2×2 stride-2 up-convolutions
    whose outputs are concatenated with the encoder's skips."""

    def __init__(self, widths=(8, 16, 32, 64), classes=3):
        super().__init__()
        self.inc = DoubleConv(3, widths[0])
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), DoubleConv(a, b)) for a, b in zip(widths, widths[1:]))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(widths, widths[1:]))
        self.convs = nn.ModuleList(DoubleConv(2 * a, a) for a in widths[:-1])
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x):
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up, conv in zip(reversed(self.ups), reversed(self.convs)):
            y = conv(torch.cat([skips.pop(), up(y)], dim=1))
        return self.head(y)


def _unet():
    torch.manual_seed(0)
    m = UNet().eval()
    with torch.no_grad():  # non-trivial batch norms
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return m


def test_torch_unet_from_torch():
    from torch_models import check_from_torch

    g = check_from_torch(_unet(), (32, 48))
    assert [n for n in g if g.nodes[n]["op"] == "conv_transpose2d"] == ["ups.2", "ups.1", "ups.0"]


def test_torch_unet_through_onnx():
    pytest.importorskip("onnxruntime")
    from torch_models import check_onnx

    h = check_onnx(_unet(), (32, 48))
    assert sum(d["op"] == "conv_transpose2d" for _, d in h.nodes(data=True)) == 3


def test_all_geometries_are_distinct():
    """The catalogue above covers strides, paddings, output paddings, dilations and groups."""
    cols = list(zip(*GEOMETRIES))
    for i in (2, 3, 4, 5, 6, 7):
        assert len({str(v) for v in cols[i]}) >= 2
    assert any(c[0] == c[7] for c in GEOMETRIES)  # a depthwise one
    assert not list(itertools.filterfalse(lambda c: c[0] % c[7] == 0 and c[1] % c[7] == 0, GEOMETRIES))


def test_batch_norm_folds_into_the_transposed_convolution():
    """A U-Net decoder's ConvTranspose → BatchNorm → ReLU is one step: the batch norm scales each
    output channel of the weight (axis 1 of every group's block) and the ReLU is its epilogue."""
    from cases import build_case, case_data
    from cnngraph.interop.torch_ref import run as torch_run

    g = build_case("upconv_bn_folded_groups")
    plan, x = case_data(g, seed=4, batch=2)
    assert [(s.op, s.act1) for s in plan.steps] == [("conv_transpose2d", "relu")]
    ws = init(g, seed=4, random_bn=True)
    ref = torch_run(g, ws, x, dtype=torch.float64)
    assert rel_err(numba_run(compile(g, ws), x)[0], ref) <= TOL
    assert rel_err(cb.executor(compile(g, ws), device="shim").run(x)[0], ref) <= TOL


# ---------------------------------------------------------------- random geometries (hypothesis)
def _geometry():
    from hypothesis import strategies as st

    @st.composite
    def draw(d):
        g = d(st.integers(1, 3))
        cin, cout = g * d(st.integers(1, 3)), g * d(st.integers(1, 3))
        k, s, dil = (d(st.integers(1, 4)), d(st.integers(1, 4))), (d(st.integers(1, 3)), d(st.integers(1, 3))), \
            (d(st.integers(1, 2)), d(st.integers(1, 2)))
        p = (d(st.integers(0, 2)), d(st.integers(0, 2)))
        op = tuple(d(st.integers(0, max(a, b) - 1)) for a, b in zip(s, dil))
        hw = (d(st.integers(1, 6)), d(st.integers(1, 6)))
        return cin, cout, k, s, p, op, dil, g, hw

    return draw()


def test_random_geometries_match_torch():
    """Any legal geometry (drawn by hypothesis, sizes PyTorch accepts) against F.conv_transpose2d,
    shape and values, on the Numba backend and the CuPy code path."""
    from hypothesis import HealthCheck, given, settings

    from cnngraph.interop.torch_import import from_torch

    @settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(_geometry())
    def check(geo):
        cin, cout, k, s, p, op, d, g, hw = geo
        if any((L - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1 <= 0 for L, ss, pp, dd, kk, oo in zip(hw, s, p, d, k, op)):
            return  # PyTorch refuses an empty output too
        m = _module(cin, cout, k, s, p, op, d, g)
        x = np.random.default_rng(0).standard_normal((2, cin, *hw)).astype(np.float32)
        with torch.no_grad():
            ref = m(torch.from_numpy(x)).numpy()
        gr = from_torch(m, input=(cin, *hw))
        assert tuple(gr.nodes["0"]["shape"]) == ref.shape[1:]
        plan = compile(gr, gr.graph["weights"])
        assert rel_err(numba_run(plan, x)[0], ref) <= TOL
        assert rel_err(cb.executor(plan, device="shim", strict=True).run(x)[0], ref) <= TOL

    check()
