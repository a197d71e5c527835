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


class _BiasAfter(torch.nn.Module):
    """A bias-free layer and then its bias as a separate per-channel Add (Conv, ConvTranspose, Gemm)."""

    def __init__(self, layer, channels, shape):
        super().__init__()
        self.layer = layer
        self.b = torch.nn.Parameter(torch.linspace(-1.0, 1.0, channels).reshape(shape))

    def forward(self, x):
        return self.layer(x) + self.b


@pytest.mark.parametrize("layer, op", [
    (torch.nn.ConvTranspose2d(16, 8, 3, stride=2, bias=False), "conv_transpose2d"),
    (torch.nn.Conv2d(16, 8, 3, bias=False), "conv2d"),
])
def test_a_following_per_channel_add_is_the_bias_of_a_layer_that_absorbs_norms(layer, op):
    """Every op whose registry entry says ``absorbs_norm`` (its output channels scale and shift
    with its weights) takes a per-output-channel Add as its bias: one node, not two."""
    torch.manual_seed(0)
    m = net(_BiasAfter(layer, 8, (1, 8, 1, 1)))
    check_onnx(m, SIZES)
    g = load(onnx_bytes(m.eval(), sample(8)))
    found = [g.nodes[n]["op"] for n in g.nodes]
    assert found.count(op) == (2 if op == "conv2d" else 1) and "add" not in found, found
    layer_node = [n for n in g.nodes if g.nodes[n]["op"] == op][-1]
    assert g.nodes[layer_node]["attrs"]["bias"] is True
    np.testing.assert_array_equal(np.asarray(g.graph["weights"][f"{layer_node}.bias"]).ravel(),
                                  m[1].b.detach().numpy().ravel())
