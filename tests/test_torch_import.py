"""from_torch and the CLI on PyTorch modules: torchvision's CNNs through from_torch and
through torch.onnx.export + ONNX import (a sample here; every model with ``-m models``,
``make test-models``), reports of what cannot be traced, the CLI's file.py:function."""
import sys

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

from torch_models import check_from_torch, check_onnx  # noqa: E402

from cnngraph import analyze  # noqa: E402
from cnngraph.cli import main  # noqa: E402
from cnngraph.ir.symbols import H, W  # noqa: E402
from cnngraph.interop.torch_import import TraceError, from_torch  # noqa: E402


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


# torchvision's classification CNNs (vision transformers and MaxViT aside) and its
# segmentation models, with the two input sizes each is checked at (small where it allows).
CLASSIFICATION = [n for n in torchvision.models.list_models(module=torchvision.models)
                  if not n.startswith(("vit_", "swin_", "maxvit"))]
SEGMENTATION = torchvision.models.list_models(module=torchvision.models.segmentation)
SIZES = {"inception_v3": (75, 107), "googlenet": (64, 96), "alexnet": (63, 95)}
SAMPLE = ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1", "googlenet",
          "lraspp_mobilenet_v3_large"]  # a segmentation head (bilinear resizes to the input's size): ~2 s
# through ONNX: LRASPP ~8 s (FCN and DeepLabV3 take minutes: with -m models)
ONNX_SAMPLE = SAMPLE[:2] + ["lraspp_mobilenet_v3_large"]


def build(name):
    torch.manual_seed(0)
    kw = dict(aux_logits=False, init_weights=False) if name in ("googlenet", "inception_v3") else {}
    if name in SEGMENTATION:
        kw = dict(weights_backbone=None)
    return torchvision.models.get_model(name, weights=None, **kw).eval()


# The legacy ONNX exporter writes an adaptive pooling only when its output divides its input:
# AlexNet's and VGG's 6×6 / 7×7 pools need inputs whose last feature map is a multiple of it,
# and neither exporter writes them for a symbolic H, W (the legacy one refuses, "input size not
# accessible"; torch.export specializes the pool to the example's size). Their ONNX files are
# checked at two sizes; their symbolic formulas through from_torch.
ONNX_SIZES = {"alexnet": (224, 415), **{n: (224, 448) for n in CLASSIFICATION if n.startswith("vgg")}}


def sizes(name, onnx=False):
    return (onnx and ONNX_SIZES.get(name)) or SIZES.get(name, (64, 80))


# What does not work yet, and why (strict: a model that starts working fails the test until removed here).
KNOWN: dict = {}
# What cannot be checked, and why (not run).
NOT_RUN_ONNX = {
    # 644 M float32 parameters are 2.6 GB: past protobuf's 2 GiB limit, so the file would need
    # external data, which cnngraph.onnx.load refuses (it reads self-contained files only).
    "regnet_y_128gf": "its ONNX file would exceed protobuf's 2 GiB limit (external data is refused)",
}


def _models(names, sample, not_run=None):
    out = []
    for n in names:
        marks = [] if n in sample else [pytest.mark.models]
        if n in KNOWN:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[n]))
        if n in (not_run or {}):
            marks.append(pytest.mark.xfail(run=False, reason=not_run[n]))
        out.append(pytest.param(n, marks=marks))
    return out


@pytest.mark.parametrize("name", _models(CLASSIFICATION + SEGMENTATION, SAMPLE))
def test_torchvision_from_torch(name):
    g = check_from_torch(build(name), sizes(name))
    assert g.nodes["input"]["shape"] == (3, H, W)


@pytest.mark.parametrize("name", _models(CLASSIFICATION + SEGMENTATION, ONNX_SAMPLE, NOT_RUN_ONNX))
def test_torchvision_onnx(name):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    check_onnx(build(name), sizes(name, onnx=True), symbolic=name not in ONNX_SIZES)


def test_names_are_module_names_and_weights_the_state_dict():
    m = build("resnet18")
    g = from_torch(m)
    for name, op in {"conv1": "conv2d", "bn1": "batchnorm", "relu": "relu", "maxpool": "maxpool2d",
                     "layer1.0.conv1": "conv2d", "layer1.0.relu": "relu", "layer1.0.relu_1": "relu",
                     "layer1.0.add": "add", "layer2.0.downsample.0": "conv2d", "avgpool": "adaptive_avgpool2d",
                     "flatten": "flatten", "fc": "linear"}.items():
        assert g.nodes[name]["op"] == op, name
    sd = {k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    ws = g.graph["weights"]
    assert sorted(ws) == sorted(sd)
    assert all((ws[k] == sd[k].numpy()).all() for k in sd)
    assert g.nodes["layer2.1.conv2"]["path"] == (("layer2", "Sequential"), ("1", "BasicBlock"))
    assert set(analyze(g).groups(1)) >= {"layer1", "layer4"}


def test_symbolic_resnet_formula_reads_like_the_zoo():
    from cnngraph import zoo
    from cnngraph.ir.symbols import h, w

    shape = (3, 32 * h, 32 * w)
    ours = analyze(from_torch(build("resnet50"), input=shape)).total
    theirs = analyze(zoo.build("resnet50", input=shape)).total
    assert ours.macs == theirs.macs and ours.params == theirs.params


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.gate = _Gate()

    def forward(self, x):
        return self.gate(self.conv(x))


class _Gate(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # control flow on a tensor's value: fx cannot trace it
            return x
        return -x


def test_untraceable_module_is_named_with_its_reason():
    with pytest.raises(TraceError, match=r"^gate \(_Gate\): torch.fx cannot trace it: .*control flow"):
        from_torch(_DataDependent())


class _BatchNormAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d: its own forward checks the rank with torch._assert, calls
    F.batch_norm with its buffers, then its activation."""

    def __init__(self, c):
        super().__init__(c)
        self.act = nn.ReLU6()

    def forward(self, x):
        torch._assert(x.ndim == 4, f"expected 4D input (got {x.ndim}D input)")
        x = nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.1,
                                     self.eps)
        return self.act(x)


class _Linear(nn.Linear):
    """timm's Linear: nn.Linear whose forward calls F.linear itself."""

    def forward(self, x):
        return nn.functional.linear(x, self.weight, self.bias)


class _TimmStyle(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = _BatchNormAct(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = _Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.bn(self.conv(x))), 1))


def test_modules_computing_through_functions_of_their_own_buffers():
    """timm's BatchNormAct2d and Linear run F.batch_norm / F.linear on their own parameters
    inside their forward (fx traces into them): a batchnorm and a linear node named after
    the module, its state_dict's names, exact parameters and multiply-adds, and the Numba
    backend within 1e-4 of PyTorch (check_from_torch)."""
    torch.manual_seed(0)
    m = _TimmStyle().eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.5, 0.5)
    g = check_from_torch(m, (16, 24))
    assert (g.nodes["bn"]["op"], g.nodes["fc"]["op"]) == ("batchnorm", "linear")
    assert {"bn.running_mean", "bn.running_var", "bn.weight", "bn.bias", "fc.weight", "fc.bias"} <= set(g.graph["weights"])


def test_unsupported_modules_are_listed_by_name():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU())
    with pytest.raises(TraceError) as e:
        from_torch(m)
    msg = str(e.value)
    assert msg == "cannot convert: 1 (Conv2d): padding_mode='reflect' (only zero padding)"  # ReLU skipped


def test_unused_parameters_are_reported():
    torch.manual_seed(0)
    m = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False).eval()
    g = from_torch(m, input=(3, 96, 96))
    unused = g.graph["unused_params"]
    assert unused and all(k.startswith(("aux1.", "aux2.")) for k in unused)
    assert analyze(g).total.params + sum(unused.values()) == sum(p.numel() for p in m.parameters())


MODEL_FILE = """
import torch.nn as nn

def build(width=8):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
"""


def test_cli_takes_a_function_returning_a_module(tmp_path, capsys):
    f = tmp_path / "mymodel.py"
    f.write_text(MODEL_FILE)
    assert main(["table", f"{f}:build", "-O", "width=16", "--style", "exact", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "432*H*W" in out.replace("·", "*")  # 16 filters of 3x3x3 at every pixel
    assert main(["table", f"{f}:build", "--input", "3,8,8", "--format", "json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)["rows"]
    assert sum(r["params"] for r in rows) == 8 * 27 + 8 + 16 + 8 * 10 + 10  # conv, BN γ β, linear
    assert main(["run", f"{f}:build", "--input", "3,8,8"]) == 0
    assert "output 5: shape 1×10" in capsys.readouterr().out


def test_cli_says_when_torch_is_missing(tmp_path, capsys, monkeypatch):
    f = tmp_path / "mymodel.py"
    f.write_text(MODEL_FILE)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "torch.nn", raising=False)
    assert main(["table", f"{f}:build"]) == 2
    err = capsys.readouterr().err
    assert "imports torch" in err and "not installed" in err and "Traceback" not in err


def test_plain_symbols_give_one_floor_per_stage():
    """⌊H/32 − 1/32⌋, not five nested floors: ResNet-18's MACs have one floor of H per
    stride-2 stage (conv1, maxpool, layer2, layer3, layer4) and none nested."""
    import sympy

    for g in (from_torch(build("resnet18")), _onnx_graph(build("resnet18"))):
        floors = sympy.sympify(analyze(g).total.macs).atoms(sympy.floor)
        assert floors and all(not f.args[0].atoms(sympy.floor) for f in floors)
        assert len({f for f in floors if f.has(H)}) == 5


def _onnx_graph(model):
    pytest.importorskip("onnx")
    import io
    import warnings

    from cnngraph.onnx import load

    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 3, 64, 64), f, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}})
    return load(f.getvalue())


def test_imported_model_on_stride_aligned_input_reads_like_the_zoo():
    from cnngraph import zoo
    from cnngraph.ir.symbols import h, w

    shape = (3, 32 * h, 32 * w)
    want = analyze(zoo.build("resnet50", input=shape)).total
    got = analyze(_onnx_graph(build("resnet50")), input=shape).total
    assert got.macs == want.macs == 83410944 * h * w + 2048000


def test_segmentation_onnx_with_symbolic_sizes_evaluates_to_the_numeric_tables():
    """LRASPP exported with dynamic H, W: its resizes to the input's size stay symbolic, and the
    symbolic totals at 64 and 80 equal the totals of the files exported at those sizes."""
    pytest.importorskip("onnx")
    import io
    import warnings

    import sympy

    from cnngraph.onnx import load
    from torch_models import onnx_bytes, sample

    m = build("lraspp_mobilenet_v3_large")
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, torch.from_numpy(sample(64)), f, dynamo=False, opset_version=17, input_names=["input"],
                          dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}})
    g = load(f.getvalue())
    assert g.nodes[g.graph["inputs"][0]]["shape"] == (3, H, W)
    assert g.nodes[g.graph["outputs"][0]]["shape"][1:] == (H, W)
    total = analyze(g).total
    for s in (64, 80):
        numeric = analyze(load(onnx_bytes(m, sample(s)))).total
        for k in ("params", "macs", "flops", "memory_bytes"):
            assert sympy.sympify(getattr(total, k)).subs({H: s, W: s}) == getattr(numeric, k), (s, k)
