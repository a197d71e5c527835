"""Small PyTorch modules written the way users write them (functional calls, nested
Sequentials, OrderedDict names, ModuleList loops, slicing, arithmetic with numbers...),
each through both paths: ``from_torch`` and ``torch.onnx.export`` + ONNX import.

Each model is checked for: parameters equal to ``sum(p.numel())`` (ONNX: each layer's
parameters are the file's own tensors), conv + linear MACs equal to forward-hook counts,
the symbolic (3, H, W) formulas evaluating to the numeric tables, and outputs within 1e-4
of PyTorch (and of ONNX Runtime on the ONNX path). Modules cnngraph cannot express are
checked to fail with one clear line naming the module and the reason.
"""
from collections import OrderedDict

import numpy as np
import pytest
import sympy

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
nn = torch.nn
F = torch.nn.functional

from torch_models import hook_counts, matmul_macs, onnx_bytes, ort_run, outputs_of, rel_err  # noqa: E402

from cnngraph import analyze  # noqa: E402
from cnngraph.backends.numba_backend import run as numba_run  # noqa: E402
from cnngraph.compiler import compile  # noqa: E402
from cnngraph.interop.torch_import import TraceError, from_torch  # noqa: E402
from cnngraph.ir.symbols import H, W  # noqa: E402

MODELS: dict = {}
SIZES: dict = {}  # model -> the (H, W) sizes it is checked at, when not the default ones
DEFAULT_SIZES = ((16, 20), (22, 14))


def model(*sizes):
    def reg(f):
        MODELS[f.__name__] = f
        if sizes:
            SIZES[f.__name__] = sizes
        return f

    return reg


# ---------------------------------------------------------------- the corpus
class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


@model()
def functional():
    return Functional()


class ViewHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(8, 4)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.classifier(x.view(x.size(0), -1))


@model()
def view_flatten():
    return ViewHead()


class MeanHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        return self.fc(F.silu(self.conv(x)).mean((2, 3)))


@model()
def spatial_mean():
    return MeanHead()


class Upsampler(nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.out = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x):
        y = self.down(x)
        if self.mode == "nearest":
            y = F.interpolate(y, scale_factor=2, mode="nearest")
        else:
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(y)


@model()
def upsample_nearest():
    return Upsampler("nearest")


@model()
def upsample_bilinear():
    return Upsampler("bilinear")


class InceptionCat(nn.Module):
    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(3, 4, 1)
        self.b3 = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.b5 = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 5, padding=2))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(3, 2, 1))

    def forward(self, x):
        return F.relu(torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1))


@model()
def inception_cat():
    return InceptionCat()


class AddMul(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        return torch.add(a, b) + torch.mul(a, torch.tanh(b))


@model()
def add_mul_branches():
    return AddMul()


@model()
def nested_sequential():
    block = lambda i, o: nn.Sequential(nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o)),
                                       nn.ReLU(inplace=True))
    return nn.Sequential(block(3, 8), nn.Sequential(block(8, 8), nn.MaxPool2d(2)), block(8, 4))


@model()
def ordered_dict_names():
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 8, 3, padding=1)), ("bn1", nn.BatchNorm2d(8)), ("relu1", nn.ReLU()),
        ("pool", nn.AvgPool2d(2)), ("conv2", nn.Conv2d(8, 8, 1)), ("act", nn.Hardswish()),
        ("gap", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("drop", nn.Dropout(0.3)), ("fc", nn.Linear(8, 10)),
    ]))


class Loop(nn.Module):
    def __init__(self, c=8, n=3):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
                                     for _ in range(n)])

    def forward(self, x):
        x = self.stem(x)
        for blk in self.blocks:
            x = x + blk(x)
        return x


@model()
def module_list_loop():
    return Loop()


@model((15, 21), (10, 9))
def pools_exclude_pad_and_ceil():
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.AvgPool2d(3, 2, 1, count_include_pad=False),
                         nn.Conv2d(6, 6, 1), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Conv2d(6, 4, 1))


@model()
def adaptive_max_head():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d((2, 2)), nn.Flatten(),
                         nn.Linear(32, 6))


@model()
def identity_dropout2d():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Identity(), nn.Dropout2d(0.2), nn.GELU(), nn.Dropout(0.1),
                         nn.Conv2d(8, 4, 1))


class SpatialGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        return x * torch.sigmoid(self.gate(x))


@model()
def sigmoid_gate():
    return SpatialGate()


class SplitSlice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 1)
        self.left = nn.Conv2d(6, 6, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        return torch.cat([self.left(x[:, :6]), x[:, 6:]], dim=1)


@model()
def channel_split_slicing():
    return SplitSlice()


class Split(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 1)
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(12, 4, 1)

    def forward(self, x):
        a, b = torch.split(self.conv(x), [4, 12], dim=1)
        return torch.cat((self.a(a), self.b(b)), 1)


@model()
def torch_split():
    return Split()


class Shuffle(nn.Module):
    def __init__(self, groups=2):
        super().__init__()
        self.g = groups
        self.conv = nn.Conv2d(3, 8, 1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.size()
        x = x.view(n, self.g, c // self.g, h, w).permute(0, 2, 1, 3, 4).reshape(n, -1, h, w)
        return self.dw(x)


@model()
def channel_shuffle_permute():
    return Shuffle()


@model()
def silu_gelu_tanh():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 8, 1), nn.GELU(approximate="tanh"),
                         nn.Conv2d(8, 4, 1), nn.Tanh())


@model((19, 23), (12, 16))
def dilation_nonsquare_bias_false():
    return nn.Sequential(nn.Conv2d(3, 8, 3, dilation=2, padding=2, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
                         nn.Conv2d(8, 8, (1, 5), stride=(1, 2), padding=(0, 2)), nn.Conv2d(8, 8, (3, 1), stride=(2, 1)),
                         nn.LeakyReLU(0.2))


@model()
def depthwise_separable():
    return nn.Sequential(nn.Conv2d(3, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12), nn.ReLU6(inplace=True),
                         nn.Conv2d(12, 12, 3, padding=1, groups=12, bias=False), nn.BatchNorm2d(12), nn.ReLU6(),
                         nn.Conv2d(12, 6, 1, bias=False), nn.BatchNorm2d(6))


class SE(nn.Module):
    """The classic squeeze-and-excitation block: pool, view, Linear, view back, expand_as."""

    def __init__(self, c, r=4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c, c // r, bias=False), nn.ReLU(inplace=True), nn.Linear(c // r, c, bias=False),
                                nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


@model()
def squeeze_excitation_linear():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), SE(16), nn.Conv2d(16, 4, 1))


class Res(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.c(x)) * 0.5 + 1.0


@model()
def scalar_arithmetic():
    return nn.Sequential(nn.Conv2d(3, 8, 1), Res(), nn.Sigmoid())


class Arith(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        y = (1 - y) / 4 - 0.25
        y = torch.clamp(y, -0.6, 0.4) * 2
        return -F.hardtanh(y, -0.5, 0.5) + y.clamp(min=0.1)


@model()
def constant_arithmetic_and_clamps():
    return Arith()


@model()
def softplus_hardtanh_instancenorm():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8, affine=True), nn.Softplus(), nn.Conv2d(8, 8, 3),
                         nn.InstanceNorm2d(8), nn.Softplus(beta=2.0), nn.Hardtanh(-0.3, 0.9), nn.GroupNorm(2, 8))


class Interp(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x):
        return F.interpolate(self.c(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


@model()
def interpolate_to_input_size():
    return Interp()


class UNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True))
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec = nn.Sequential(nn.Conv2d(24, 8, 3, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        a = self.enc1(x)
        b = self.enc2(a)
        return torch.sigmoid(self.head(self.dec(torch.cat([self.up(b), a], dim=1))))


@model((16, 20), (24, 12))
def unet_skip_cat():
    return UNetish()


class DenseLayerCat(nn.Module):
    def __init__(self, c, growth):
        super().__init__()
        self.norm = nn.BatchNorm2d(c)
        self.conv = nn.Conv2d(c, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(F.relu(self.norm(x)))], 1)


@model()
def dense_growth():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), DenseLayerCat(8, 4), DenseLayerCat(12, 4),
                         nn.AvgPool2d(2, ceil_mode=True), nn.Conv2d(16, 4, 1))


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ELU())
        self.cls = nn.Conv2d(8, 3, 1)
        self.box = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        f = self.body(x)
        return self.cls(f), self.box(f)


@model()
def two_outputs():
    return TwoHeads()


class ChunkGLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)

    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        return a * torch.sigmoid(b)


@model()
def chunk_gating():
    return ChunkGLU()


@model((16, 24), (8, 12))
def pixel_shuffle_sr():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.PReLU(), nn.Conv2d(16, 12, 3, padding=1), nn.PixelShuffle(2),
                         nn.Conv2d(3, 3, 3, padding=1))


class ReflectPadded(nn.Module):
    """Style-transfer and GAN generators pad by reflection, as a module and functionally."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ReflectionPad2d((1, 2, 2, 1))
        self.conv = nn.Conv2d(3, 8, 3)
        self.out = nn.Conv2d(8, 4, 3)

    def forward(self, x):
        return self.out(F.pad(F.leaky_relu(self.conv(self.pad(x)), 0.1), (1, 1, 1, 1), mode="reflect"))


@model()
def reflection_padding():
    return ReflectPadded()


@model((16, 24), (8, 12))
def pixel_unshuffle():
    return nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12, 8, 3, padding=1), nn.Mish(), nn.PixelShuffle(2))


class Difference(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 1)

    def forward(self, x):
        y = self.a(x) - self.b(x)
        y = y - torch.sigmoid(y)
        return torch.sub(y, torch.relu(y))


@model()
def branch_difference():
    return Difference()


class Bicubic(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode="bicubic", align_corners=False)


@model()
def bicubic_upsampling():
    return Bicubic()


class ValueBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        if y.mean() > 0:  # control flow on a tensor's value: torch.fx cannot trace it
            y = y * 2
        return y


@model()
def control_flow_on_values():
    return ValueBranch()


class ChannelSum(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y * y.sum(1, keepdim=True)


@model()
def channel_sum_attention():
    return ChannelSum()


class MnistNet(nn.Module):
    """The PyTorch examples' MNIST classifier, as written there."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(16 * 6 * 8, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


@model((16, 20),)
def mnist_example_log_softmax():
    return MnistNet()


class SqueezeHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pad = nn.ZeroPad2d((1, 0, 1, 0))
        self.fc = nn.Linear(8, 3)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        y = self.pad(F.pad(self.conv(x), (1, 1, 2, 0)))
        a = F.adaptive_max_pool2d(y, 1).squeeze(-1).squeeze(-1)
        b = torch.mean(y, dim=(2, 3))
        return self.fc(a) + self.fc2(b)


@model()
def squeeze_mean_and_zero_pads():
    return SqueezeHeads()


# What does not convert, and why: (path, name) -> the one-line reason expected. Strict: a
# model that starts working fails here until removed.
KNOWN: dict = {
    ("torch", "bicubic_upsampling"): r"^cannot convert: call_function interpolate: interpolation mode 'bicubic' "
                                     r"\(nearest and bilinear only\)$",
    ("onnx", "bicubic_upsampling"): r"Resize",
    ("torch", "control_flow_on_values"): r"^\(top level\) \(ValueBranch\): torch.fx cannot trace it: ",
    ("torch", "channel_sum_attention"): r"^cannot convert: call_method sum: tensor method .sum\(\) has no cnngraph "
                                        r"equivalent$",
    ("onnx", "channel_sum_attention"): r"ReduceSum",
}


# ---------------------------------------------------------------- the checks
pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


def _build(name):
    torch.manual_seed(0)
    m = MODELS[name]().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 1.5)
    return m


def _x(size, seed=0):
    return np.random.default_rng(seed).standard_normal((2, 3, *size)).astype(np.float32)


def file_tensors(data):
    """The file's float initializers by (size, bytes), 2-D ones also transposed: a Linear
    exported as MatMul stores its weight transposed, a PReLU slope 1×1×1 where PyTorch has 1."""
    import onnx
    from onnx import numpy_helper

    out = set()
    for t in onnx.load_from_string(data).graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            a = numpy_helper.to_array(t).astype(np.float32)
            out.add((a.size, a.tobytes()))
            if a.ndim == 2:
                out.add((a.size, np.ascontiguousarray(a.T).tobytes()))
    return out


# Models whose Linear after a flatten fixes the input size: symbolic H, W is refused, saying so.
FIXED_SIZE = {"mnist_example_log_softmax"}


def check_torch_path(m, sizes, fixed=False):
    from cnngraph.ir.errors import CnnGraphError

    if fixed:
        with pytest.raises(CnnGraphError, match="no input size of this form makes them fit"):
            analyze(from_torch(m, input=(3, H, W)))
        sym = None
    else:
        sym = analyze(from_torch(m, input=(3, H, W))).total
    for size in sizes:
        x = _x(size)
        params, macs, y = hook_counts(m, x)
        g = from_torch(m, input=(3, *size))
        r = analyze(g)
        assert r.total.params == params, (size, r.total.params, params)
        assert matmul_macs(r) == macs, (size, matmul_macs(r), macs)
        for f in ("params", "macs", "memory_bytes", "flops") if sym is not None else ():
            v = sympy.sympify(getattr(sym, f)).subs({H: size[0], W: size[1]})
            assert v == getattr(r.total, f), (size, f, v, getattr(r.total, f))
        got = numba_run(compile(g, g.graph["weights"]), x)
        want = outputs_of(y)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.shape == b.shape and rel_err(a, b) < 1e-4, (size, a.shape, b.shape, rel_err(a, b))


def check_onnx_path(m, size):
    from cnngraph.onnx import load

    x = _x(size, seed=1)
    _, macs, y = hook_counts(m, x)
    data = onnx_bytes(m, x)
    h = load(data)
    r = analyze(h)
    tensors = file_tensors(data)
    per_layer = {}
    for k, v in h.graph["weights"].items():
        assert (v.size, np.asarray(v, np.float32).tobytes()) in tensors, (k, v.shape)
        node, field = k.rsplit(".", 1)
        if r.rows and field in ("weight", "bias"):
            per_layer[node] = per_layer.get(node, 0) + v.size
    for row in r.rows:
        assert row.params == per_layer.get(row.name, 0), (row.name, row.params, per_layer.get(row.name))
    assert matmul_macs(r) == macs, (matmul_macs(r), macs)
    got = numba_run(compile(h, h.graph["weights"]), x)
    ref, want = ort_run(data, x), outputs_of(y)
    assert len(got) == len(want)
    for a, b, c in zip(got, ref, want):
        assert rel_err(a, b) < 1e-4 and rel_err(a, c) < 1e-4, (rel_err(a, b), rel_err(a, c))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_user_module_from_torch(name):
    m = _build(name)
    if ("torch", name) in KNOWN:
        with pytest.raises(TraceError, match=KNOWN["torch", name]) as e:
            from_torch(m, input=(3, H, W))
        assert "\n" not in str(e.value)
        return
    check_torch_path(m, SIZES.get(name, DEFAULT_SIZES), fixed=name in FIXED_SIZE)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_user_module_onnx(name):
    from cnngraph.ir.errors import CnnGraphError

    m = _build(name)
    size = SIZES.get(name, DEFAULT_SIZES)[0]
    if ("onnx", name) in KNOWN:
        with pytest.raises(CnnGraphError, match=KNOWN["onnx", name]) as e:
            check_onnx_path(m, size)
        assert "\n" not in str(e.value)
        return
    check_onnx_path(m, size)


def test_corpus_is_large_enough():
    assert len(MODELS) >= 35


# ---------------------------------------------------------------- the ops these modules needed
def test_block_ops_shapes_and_costs_from_first_principles():
    """PixelShuffle / PixelUnshuffle move values and compute nothing: no MACs, no operations,
    the output written once; sizes stay symbolic."""
    from cnngraph.ir.symbols import h, w

    m = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12, 16, 1), nn.PixelShuffle(2))
    g = from_torch(m, input=(3, 32 * h, 32 * w))
    assert [g.nodes[n]["shape"] for n in ("0", "1", "2")] == [(12, 16 * h, 16 * w), (16, 16 * h, 16 * w),
                                                              (4, 32 * h, 32 * w)]
    rows = {r.name: r for r in analyze(from_torch(m, input=(3, 32, 64))).rows}
    assert (rows["0"].macs, rows["0"].flops, rows["0"].params) == (0, 0, 0)
    assert rows["0"].memory_bytes == 4 * 12 * 16 * 32 and rows["2"].memory_bytes == 4 * 4 * 32 * 64
    assert rows["1"].macs == 16 * 16 * 32 * 12
    with pytest.raises(TraceError, match="space_to_depth needs H divisible by the block"):
        from_torch(m, input=(3, 31, 64))


def test_scale_and_clip_costs():
    """factor·x + shift: two operations per element (one without a shift); a clamp one."""
    g = from_torch(nn.Sequential(Arith()), input=(3, 5, 7))
    rows = {r.name: r for r in analyze(g).rows}
    ops_of = {n: g.nodes[n]["op"] for n in g}
    scales = [n for n, op in ops_of.items() if op == "scale"]
    a = {n: g.nodes[n]["attrs"] for n in scales}
    # (1 − y)/4 − 0.25 is one layer: −0.25·y + 0; × 2 and the negation are one more each
    assert [(a[n]["factor"], a[n]["shift"]) for n in scales] == [(-0.25, 0.0), (2.0, 0.0), (-1.0, 0.0)]
    assert all(rows[n].costs.all_ops == 6 * 5 * 7 for n in scales)
    clips = [n for n, op in ops_of.items() if op == "clip"]
    assert [(g.nodes[n]["attrs"]["low"], g.nodes[n]["attrs"]["high"]) for n in clips] == [(-0.6, 0.4), (-0.5, 0.5),
                                                                                          (0.1, None)]
    assert all(rows[n].costs.all_ops == 6 * 5 * 7 for n in clips)
    g = from_torch(scalar_arithmetic(), input=(3, 5, 7))
    (n,) = [n for n in g if g.nodes[n]["op"] == "scale"]
    assert (g.nodes[n]["attrs"]["factor"], g.nodes[n]["attrs"]["shift"]) == (0.5, 1.0)
    assert {r.name: r for r in analyze(g).rows}[n].costs.all_ops == 2 * 8 * 5 * 7


def test_softplus_threshold_and_gelu_forms():
    g = from_torch(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Softplus(beta=3.0), nn.GELU(approximate="tanh"), nn.GELU()),
                   input=(3, 4, 4))
    assert [(g.nodes[n]["op"], g.nodes[n]["attrs"].get("beta")) for n in ("1", "2", "3")] == [
        ("softplus", 3.0), ("gelu_tanh", None), ("gelu", None)]
    with pytest.raises(TraceError, match=r"^cannot convert: 0 \(Softplus\): Softplus\(threshold=5.0\): below 15"):
        from_torch(nn.Softplus(threshold=5.0), input=(3, 4, 4))
