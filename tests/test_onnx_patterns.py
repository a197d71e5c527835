"""Multi-node patterns of real CNNs, as torch.onnx.export writes them, imported as registry
ops: each pattern is timm's own module (small widths), checked as the model sweeps check
(tests/torch_models.py: parameters = the file's tensors per layer, conv+linear MACs =
forward hooks, outputs within 1e-4 of PyTorch and ONNX Runtime), plus the ops it became."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from torch_models import check_onnx, onnx_bytes, sample  # noqa: E402

from cnngraph.onnx import load  # noqa: E402

SIZES = (8, 12)


def ops_of(model, size=8):
    g = load(onnx_bytes(model.eval(), sample(size)))
    return [g.nodes[n]["op"] for n in g.nodes]


def net(*layers):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), *layers).eval()


def test_convnext_block_channels_last():
    """Transpose → LayerNormalization → MatMul → Add → GELU → MatMul → Add → Transpose → Mul(γ):
    a layer norm over channels, two 1×1 convolutions and a layer scale."""
    from timm.models.convnext import ConvNeXtBlock

    m = net(ConvNeXtBlock(16, ls_init_value=0.5))
    check_onnx(m, SIZES)
    found = ops_of(m)
    assert found.count("conv2d") == 4 and "layernorm2d" in found and "gelu" in found and "layer_scale" in found


def test_resnest_split_attention():
    """Reshape to N×radix×C×H×W → ReduceSum; rSoftMax's Reshape/Transpose/Softmax; Mul and
    ReduceSum over radix: channel slices + add, radix_softmax, mul."""
    from timm.layers import SplitAttn

    m = net(SplitAttn(16, 16, radix=2, groups=2, norm_layer=torch.nn.BatchNorm2d))
    check_onnx(m, SIZES)
    found = ops_of(m)
    assert found.count("radix_softmax") == 1 and found.count("slice") == 4 and found.count("add") == 2


def test_selective_kernel_attention():
    """torch.stack of the paths (Unsqueeze + Concat), sum over paths, softmax over paths."""
    from timm.layers import SelectiveKernel

    m = net(SelectiveKernel(16, 16))
    check_onnx(m, SIZES)
    found = ops_of(m)
    assert found.count("radix_softmax") == 1 and found.count("concat") == 1


def test_space_to_depth_and_blur_pool():
    """TResNet's stem (view, permute, view) is one space_to_depth; BlurPool2d's reflect Pad and
    its depthwise Conv by a fixed binomial constant are a reflect pad2d and a blurpool2d, with
    no parameters (the filter is no parameter of the module either)."""
    from timm.layers import BlurPool2d, SpaceToDepth

    torch.manual_seed(0)
    m = torch.nn.Sequential(SpaceToDepth(4), torch.nn.Conv2d(48, 16, 3, padding=1), BlurPool2d(16, 3, 2)).eval()
    check_onnx(m, (16, 24))
    assert ops_of(m, 16) == ["input", "space_to_depth", "conv2d", "pad2d", "blurpool2d"]


def _export(model, x, dynamic_hw):
    import io
    import warnings

    f = io.BytesIO()
    axes = {0: "N", 2: "H", 3: "W"} if dynamic_hw else {0: "N"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.from_numpy(x), f, dynamo=False, input_names=["x"], dynamic_axes={"x": axes})
    return f.getvalue()


def test_tf_same_padding_computed_in_the_graph():
    """timm's Conv2dSame / pad_same: Shape, Cast, Div, Ceil, Sub, Clip, Pad on the input's size.
    At a known size the arithmetic folds to numbers that become the conv's own padding; with
    symbolic H, W it folds to the padding's formula (ceilings of H/stride), whose totals equal
    the numeric imports at odd and even sizes."""
    import sympy
    from timm.layers import create_conv2d

    from cnngraph import analyze
    from cnngraph.ir.symbols import H, W

    torch.manual_seed(0)
    m = torch.nn.Sequential(create_conv2d(3, 8, 3, stride=2, padding="same"),
                            create_conv2d(8, 8, 5, stride=2, padding="same", groups=8)).eval()
    check_onnx(m, (17, 20))
    assert ops_of(m, 17) == ["input", "conv2d", "conv2d"]
    g_sym = load(_export(m, sample(16), dynamic_hw=True))
    total = analyze(g_sym).total
    for h, w in ((17, 20), (16, 16), (9, 31)):
        num = analyze(load(_export(m, np.zeros((1, 3, h, w), np.float32), dynamic_hw=False))).total
        for f in ("macs", "flops", "memory_bytes"):
            assert sympy.sympify(getattr(total, f)).subs({H: h, W: w}) == getattr(num, f), (h, w, f)


def test_eca_conv_along_channels():
    """ECA: ReduceMean → Reshape N×1×C → 1-D Conv → Sigmoid → Reshape N×C×1×1 → Expand → Mul:
    a channel_conv (its Conv1d's weight, MACs = C·k as the forward hook counts) gating the map."""
    from timm.layers import EcaModule

    m = net(EcaModule(16, kernel_size=5))
    check_onnx(m, SIZES)
    found = ops_of(m)
    assert found.count("channel_conv") == 1 and "sigmoid" in found and "mul" in found
