"""ONNX import: the zoo round trip (export -> ONNX Runtime -> import -> same table, same
outputs), models exported by PyTorch from modules written here (counts against forward hooks),
symbolic dims, malformed and hostile files, the command line."""
import io
import json
import warnings

import numpy as np
import pytest
import sympy

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_cases import all_ops_net, hand_model as _model  # noqa: E402
from onnx_cases import ort_run, random_input, rel_err, zoo_case  # noqa: E402
from torch_models import hook_counts  # noqa: E402

from cnngraph import analyze, zoo  # noqa: E402
from cnngraph.compiler import weights
from cnngraph.ir.errors import CnnGraphError  # noqa: E402
from cnngraph.onnx import export, load  # noqa: E402
from cnngraph.ir.symbols import H, W, sym  # noqa: E402
from cnngraph.interop.torch_ref import run  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """PyTorch's thread pool spins against the other processes of a busy 2-core machine
    (0.5 s becomes 17 s for a ResNet-152 forward): one thread, restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def table(g):
    """Each row's name, kind, shapes and costs (the op may change: a uniform adaptive pooling
    exports as an AveragePool and comes back as one, same costs)."""
    rows = json.loads(analyze(g).to("json"))["rows"]
    keep = ("name", "kind", "input_shape", "output_shape", "params", "buffers", "macs", "ops", "all_ops",
            "memory_bytes", "flops")
    return [{k: r[k] for k in keep} for r in rows]


def assert_same_table(g, h):
    """Same rows (the order may differ between equally valid topological orders)."""
    a, b = ({r["name"]: r for r in table(x)} for x in (g, h))
    assert sorted(a) == sorted(b)
    for name, row in a.items():
        assert row == b[name], name


# ---------------------------------------------------------------- the zoo round trip
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_export_runs_and_round_trips(name):
    """Export (checked by onnx.checker), ONNX Runtime = to_torch, import = same table and
    weights, to_torch on the imported graph = ONNX Runtime."""
    g, ws, x, want = zoo_case(name)
    m = export(g, ws)
    got = ort_run(m, x)[0]
    assert got.shape == want.shape
    assert np.all(np.isfinite(want))
    assert rel_err(got, want) < 1e-4
    h = load(m)
    assert_same_table(g, h)
    hw = h.graph["weights"]
    assert set(hw) == set(ws)
    assert all(np.array_equal(hw[k], ws[k]) for k in ws)
    assert rel_err(run(h, hw, *x.values()), want) < 1e-6  # the same computation, op for op


def test_all_ops_round_trip_is_exact():
    """Every op of the registry comes back with its attributes; weights bit for bit."""
    g = all_ops_net()
    ws = weights.init(g, seed=0, random_bn=True)
    h = load(export(g, ws))
    assert set(h.nodes) == set(g.nodes)
    for n in g.nodes:
        assert h.nodes[n]["op"] == g.nodes[n]["op"], n
        assert h.nodes[n]["attrs"] == g.nodes[n]["attrs"], n
        assert h.nodes[n]["inputs"] == g.nodes[n]["inputs"], n
        assert h.nodes[n]["shape"] == g.nodes[n]["shape"], n
    assert set(h.graph["weights"]) == set(ws)
    assert all(np.array_equal(h.graph["weights"][k], v) for k, v in ws.items())
    assert h.graph["outputs"] == g.graph["outputs"]
    assert h.nodes["layer1.0.conv1" if "layer1.0.conv1" in h else "stem.conv_asym"]["path"] == (("stem", "module"),)


def test_symbolic_dims_give_formulas():
    """dim_params N, H, W become symbols: the imported ResNet-18 has the zoo's formulas."""
    gs = zoo.build("resnet18", input=(3, H, W))
    ws = weights.init(zoo.build("resnet18", input=(3, 32, 32)), seed=0)
    h = load(export(gs, ws))
    assert h.graph["batch"] == sym("N")
    assert h.nodes["input"]["shape"] == (3, H, W)
    ra, rb = analyze(gs), analyze(h)
    for f in ("params", "macs", "flops", "memory_bytes"):
        assert sympy.simplify(getattr(ra.total, f) - getattr(rb.total, f)) == 0, f
    assert rb.totals_function()(H=224, W=224)["macs"] == 1_814_073_344
    r224 = analyze(h, input=(3, 224, 224))
    assert r224.total.macs == 1_814_073_344 and r224.total.params == 11_689_512


# ---------------------------------------------------------------- models exported by PyTorch
class VGGish(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(2, ceil_mode=True))
        self.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(32 * 4 * 4, 64), nn.ReLU(inplace=True),
                                        nn.Linear(64, 10), nn.Softmax(dim=1))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


class Basic(nn.Module):
    def __init__(self, cin, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.downsample = None if stride == 1 and cin == c else nn.Sequential(
            nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y += x if self.downsample is None else self.downsample(x)
        return self.relu(y)


class ResNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(Basic(16, 16, 1), Basic(16, 16, 1))
        self.layer2 = nn.Sequential(Basic(16, 32, 2), Basic(32, 32, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Inceptionish(nn.Module):
    """Four branches, concatenated; an auxiliary-free GoogLeNet-style module, GELU, SiLU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 3, 2, 1)
        self.b1 = nn.Conv2d(24, 8, 1)
        self.b2 = nn.Sequential(nn.Conv2d(24, 8, 1), nn.GELU(), nn.Conv2d(8, 12, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(24, 4, 1), nn.SiLU(), nn.Conv2d(4, 6, (1, 5), padding=(0, 2)),
                                nn.Conv2d(6, 6, (5, 1), padding=(2, 0)))
        self.b4 = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), nn.Conv2d(24, 6, 1))
        self.gn = nn.GroupNorm(4, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        x = torch.tanh(self.stem(x))
        x = torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)
        x = torch.sigmoid(self.gn(x))
        return self.head(x.mean([2, 3]))


class Separable(nn.Module):
    """MobileNet/ShuffleNet-style: depthwise 3×3, pointwise 1×1, ReLU6, hard swish, SE with
    view/expand, channel split and shuffle."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False)
        self.dw_bn = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 32, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(32)
        self.se_fc1 = nn.Linear(32, 8)
        self.se_fc2 = nn.Linear(8, 32)
        self.branch = nn.Sequential(nn.Conv2d(16, 16, 1), nn.Hardswish(), nn.Conv2d(16, 16, 3, 1, 2, dilation=2,
                                                                                    groups=4), nn.Hardsigmoid())
        self.fc = nn.Linear(32, 7)

    def forward(self, x):
        x = F.relu6(self.bn(self.conv(x)))
        x = F.relu6(self.dw_bn(self.dw(x)))
        x = F.hardswish(self.pw_bn(self.pw(x)))
        n, c, _, _ = x.shape
        s = F.adaptive_avg_pool2d(x, 1).view(n, c)
        s = torch.sigmoid(self.se_fc2(F.relu(self.se_fc1(s)))).view(n, c, 1, 1)
        x = x * s.expand_as(x)
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def torch_export(model, x, dynamic=("N",), mode="preserve", opset=17):
    axes = {0: "N"}
    if "H" in dynamic:
        axes.update({2: "H", 3: "W"})
    f = io.BytesIO()
    training = {"preserve": torch.onnx.TrainingMode.PRESERVE, "eval": torch.onnx.TrainingMode.EVAL}[mode]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, f, dynamo=False, training=training, opset_version=opset, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": axes, "output": {0: "N"}})
    return f.getvalue()


def _randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                    m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


TORCH_MODELS = {"vggish": (VGGish, 16), "resnetish": (ResNetish, 32), "inceptionish": (Inceptionish, 24),
                "separable": (Separable, 20)}


@pytest.mark.parametrize("name", sorted(TORCH_MODELS))
@pytest.mark.parametrize("opset", [13, 17])
def test_pytorch_exported_models(name, opset):
    """PyTorch's own exporter: counts equal forward hooks', outputs equal PyTorch's."""
    cls, size = TORCH_MODELS[name]
    torch.manual_seed(0)
    model = _randomize_bn(cls())
    x = torch.randn(2, 3, size, size)
    params, macs, y = hook_counts(model, x)
    h = load(torch_export(model, x, opset=opset))
    r = analyze(h)
    assert r.total.params == params
    assert r.total.macs == macs
    assert h.graph["batch"] == sym("N")
    got = run(h, h.graph["weights"], x.numpy())
    assert rel_err(got, y.numpy()) < 1e-4
    sd = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    # state_dict names and values come back (PyTorch passes shared buffers through Identity)
    hw = h.graph["weights"]
    for k, v in sd.items():
        assert k in hw and np.array_equal(hw[k], v), k


def test_pytorch_names_become_module_paths():
    torch.manual_seed(0)
    model = _randomize_bn(ResNetish())
    h = load(torch_export(model, torch.randn(1, 3, 32, 32)))
    ops_by_name = {n: h.nodes[n]["op"] for n in h.nodes}
    for name, op in {"conv1": "conv2d", "bn1": "batchnorm", "relu": "relu", "maxpool": "maxpool2d",
                     "layer1.0.conv1": "conv2d", "layer1.0.relu": "relu", "layer1.0.relu_1": "relu",
                     "layer1.0.add": "add", "layer2.0.downsample.0": "conv2d", "layer2.0.downsample.1": "batchnorm",
                     "avgpool": "adaptive_avgpool2d", "flatten": "flatten", "fc": "linear"}.items():
        assert ops_by_name.get(name) == op, (name, ops_by_name.get(name))
    assert h.nodes["layer2.1.conv2"]["path"] == (("layer2", "module"), ("1", "module"))
    assert set(analyze(h).groups(1)) >= {"layer1", "layer2"}


def test_pytorch_symbolic_height_width():
    """dynamic_axes N, H, W: the imported model has symbolic totals equal to the hook counts
    at every size tried."""
    torch.manual_seed(0)
    model = _randomize_bn(Separable())
    h = load(torch_export(model, torch.randn(1, 3, 20, 20), dynamic=("N", "H")))
    assert h.nodes["input"]["shape"] == (3, H, W)
    f = analyze(h).totals_function()
    for s in (20, 33, 64):
        params, macs, _ = hook_counts(model, torch.randn(1, 3, s, s))
        assert f(H=s, W=s)["macs"] == macs and f(H=s, W=s)["params"] == params


def test_pytorch_eval_mode_fused_batchnorm():
    """EVAL export folds batch norm into the convs: same multiply-adds, same outputs."""
    torch.manual_seed(0)
    model = _randomize_bn(ResNetish())
    x = torch.randn(2, 3, 32, 32)
    params, macs, y = hook_counts(model, x)
    h = load(torch_export(model, x, mode="eval"))
    assert analyze(h).total.macs == macs
    assert not any(h.nodes[n]["op"] == "batchnorm" for n in h.nodes)
    assert h.nodes["layer1.0.conv1"]["attrs"]["bias"]  # named from the ONNX scope, bias from the fold
    assert rel_err(run(h, h.graph["weights"], x.numpy()), y.numpy()) < 1e-4


# ---------------------------------------------------------------- hand-made ONNX files
def test_conv_attributes_auto_pad_and_asymmetric_pads():
    w = np.random.default_rng(0).standard_normal((6, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="same", auto_pad="SAME_UPPER", strides=[2, 2], group=2),
             helper.make_node("Conv", ["a", "w2"], ["b"], name="asym", pads=[0, 1, 2, 1], dilations=[2, 1]),
             helper.make_node("AveragePool", ["b"], ["c"], name="avg", kernel_shape=[2, 2], strides=[2, 2],
                              pads=[1, 0, 0, 1], ceil_mode=1, count_include_pad=1),
             helper.make_node("MaxPool", ["c"], ["y"], name="max", kernel_shape=[2, 2], auto_pad="SAME_LOWER")]
    w2 = np.random.default_rng(1).standard_normal((5, 6, 3, 3)).astype(np.float32)
    m = _model(nodes, [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w2, "w2")],
               inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 7])])
    h = load(m)
    a = h.nodes["same"]["attrs"]
    # SAME_UPPER at 9×7, stride 2, kernel 3: outputs 5×4, total pads 2 and 2, extra at the end
    assert a["padding"] == (1, 1, 1, 1) and a["groups"] == 2 and h.nodes["same"]["shape"] == (6, 5, 4)
    assert h.nodes["asym"]["attrs"]["padding"] == (0, 1, 2, 1) and h.nodes["asym"]["attrs"]["dilation"] == (2, 1)
    assert h.nodes["max"]["attrs"]["padding"] == (1, 1, 0, 0)  # SAME_LOWER: the extra pad goes first
    x = np.random.default_rng(2).standard_normal((1, 4, 9, 7)).astype(np.float32)
    want = ort_run(m, {"x": x})[0]
    assert want.shape[1:] == h.nodes["max"]["shape"]
    assert rel_err(run(h, h.graph["weights"], x), want) < 1e-5


@pytest.mark.parametrize("size", [3, 5])
def test_lrn_matches_onnx_runtime(size):
    m = _model([helper.make_node("LRN", ["x"], ["y"], name="norm", size=size, alpha=1e-2, beta=0.7, bias=2.0)])
    h = load(m)
    assert h.nodes["norm"]["attrs"] == dict(size=size, alpha=0.01, beta=0.7, k=2.0)
    x = np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float32) * 3
    assert rel_err(run(h, h.graph["weights"], x), ort_run(m, {"x": x})[0]) < 1e-5
    even = _model([helper.make_node("LRN", ["x"], ["y"], name="norm4", size=4)])
    with pytest.raises(CnnGraphError, match=r"norm4: LRN with an even size \(4\)"):
        load(even)


@pytest.mark.parametrize("opset", [18, 21])
def test_group_normalization_op(opset):
    """Opset 18 has one scale per group, opset 21 one per channel: both become per channel."""
    C, G = 6, 3
    n = C if opset >= 21 else G
    rng = np.random.default_rng(0)
    scale, bias = rng.random(n).astype(np.float32) + 0.5, rng.random(n).astype(np.float32)
    m = _model([helper.make_node("GroupNormalization", ["x", "gn.weight", "gn.bias"], ["y"], name="gn", num_groups=G)],
               [numpy_helper.from_array(scale, "gn.weight"), numpy_helper.from_array(bias, "gn.bias")],
               inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, 5, 5])], opset=opset)
    m.ir_version = 8 if opset < 21 else 10
    h = load(m)
    assert h.nodes["gn"]["attrs"] == dict(num_groups=G, eps=1e-5, affine=True)
    assert h.graph["weights"]["gn.weight"].shape == (C,)
    x = rng.standard_normal((2, C, 5, 5)).astype(np.float32)
    assert rel_err(run(h, h.graph["weights"], x), ort_run(m, {"x": x})[0]) < 1e-5


def test_matmul_add_and_gemm_forms():
    w = np.random.default_rng(0).standard_normal((12, 5)).astype(np.float32)
    b = np.arange(5, dtype=np.float32)
    w2 = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "head.weight_t"], ["m"], name="mm"),
             helper.make_node("Add", ["m", "head.bias"], ["a"], name="bias_add"),
             helper.make_node("Relu", ["a"], ["r"], name="act"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="gemm", alpha=0.5, beta=2.0)]
    m = _model(nodes, [numpy_helper.from_array(w, "head.weight_t"), numpy_helper.from_array(b, "head.bias"),
                       numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.ones(3, np.float32), "b2")],
               inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 2, 2])])
    h = load(m)
    assert h.nodes["head"]["op"] == "linear" and h.nodes["head"]["attrs"]["bias"]
    assert analyze(h).total.params == 12 * 5 + 5 + 5 * 3 + 3
    x = np.random.default_rng(2).standard_normal((3, 3, 2, 2)).astype(np.float32)
    assert rel_err(run(h, h.graph["weights"], x), ort_run(m, {"x": x})[0]) < 1e-5


def test_pointwise_chains_are_recognised_and_others_refused():
    def chain(nodes, inits=()):
        return _model(nodes, [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits])

    # hard swish spelled x * clip(x + 3, 0, 6) / 6 (older exporters)
    m = chain([helper.make_node("Add", ["x", "three"], ["a"], name="p3"),
               helper.make_node("Clip", ["a", "zero", "six"], ["c"], name="clip"),
               helper.make_node("Div", ["c", "six"], ["d"], name="div"),
               helper.make_node("Mul", ["x", "d"], ["y"], name="hswish")],
              [("three", 3.0), ("zero", 0.0), ("six", 6.0)])
    h = load(m)
    assert h.nodes["hswish"]["op"] == "hardswish"
    m = chain([helper.make_node("Mul", ["x", "half"], ["y"], name="halve")], [("half", 0.5)])
    assert load(m).nodes["halve"]["attrs"] == {"factor": 0.5, "shift": 0.0}
    # constant arithmetic beyond a scale (planned only when nothing else fits): one layer for a run
    m = chain([helper.make_node("Relu", ["x"], ["r"], name="relu"),
               helper.make_node("Mul", ["r", "half"], ["m"], name="mul"),
               helper.make_node("Add", ["m", "one"], ["a"], name="add"),
               helper.make_node("Sub", ["one", "a"], ["y"], name="rsub")], [("half", 0.5), ("one", 1.0)])
    h = load(m)
    assert [(h.nodes[n]["op"], h.nodes[n]["attrs"].get("factor"), h.nodes[n]["attrs"].get("shift")) for n in h][1:] == [
        ("relu", None, None), ("scale", -0.5, 0.0)]
    m = chain([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clamp")], [("lo", -0.25), ("hi", 2.5)])
    assert load(m).nodes["clamp"]["op"] == "clip" and load(m).nodes["clamp"]["attrs"]["low"] == -0.25
    # an activation with a parameter is recognised with its value (the registry's leaky_relu)
    m = chain([helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky", alpha=0.1)])
    assert (load(m).nodes["leaky"]["op"], load(m).nodes["leaky"]["attrs"]["negative_slope"]) == ("leaky_relu", 0.1)
    m = chain([helper.make_node("Softsign", ["x"], ["y"], name="softsign")])
    with pytest.raises(CnnGraphError, match="softsign: the element-wise function computed by softsign is not one of"):
        load(m)
    m = chain([helper.make_node("Gelu", ["x"], ["y"], name="gelu_t", approximate="tanh")], ())
    assert load(_model(m.graph.node, opset=20)).nodes["gelu_t"]["op"] == "gelu_tanh"
    m = chain([helper.make_node("Softplus", ["x"], ["y"], name="softplus")])
    assert (load(m).nodes["softplus"]["op"], load(m).nodes["softplus"]["attrs"]["beta"]) == ("softplus", 1.0)


def test_unsupported_ops_are_listed_with_their_nodes():
    nodes = [helper.make_node("Hardmax", ["x"], ["a"], name="hm1"),
             helper.make_node("Hardmax", ["a"], ["b"], name="hm2"),
             helper.make_node("Conv", ["b", "w"], ["c"], name="conv"),
             helper.make_node("NonZero", ["c"], ["d"], name="nz"),
             helper.make_node("MyOp", ["d"], ["y"], name="custom", domain="com.example")]
    m = _model(nodes, [numpy_helper.from_array(np.ones(4, np.float32), "scales"),
                       numpy_helper.from_array(np.ones((2, 4, 1, 1), np.float32), "w")])
    with pytest.raises(CnnGraphError) as e:
        load(m)
    msg = str(e.value)
    assert "unsupported ONNX op types: Hardmax (hm1, hm2); NonZero (nz); com.example.MyOp (custom)" in msg


# ---------------------------------------------------------------- command line
def test_cli_table_and_export_of_an_onnx_file(tmp_path, capsys):
    from cnngraph.cli import main

    g = zoo.build("resnet18", input=(3, 64, 64))
    ws = weights.init(g, seed=0)
    p = tmp_path / "r18.onnx"
    export(g, ws, p)
    assert main(["table", str(p), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"]["macs"] == analyze(g).total.macs and out["total"]["params"] == 11_689_512
    assert main(["table", str(p), "--input", "3,224,224", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["macs"] == 1_814_073_344
    # re-export an imported model: its own weights travel along
    q = tmp_path / "again.onnx"
    assert main(["export", str(p), "-o", str(q)]) == 0
    capsys.readouterr()
    x = random_input(g)
    assert rel_err(ort_run(onnx.load(str(q)), x)[0], run(g, ws, *x.values())) < 1e-4
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    assert main(["table", str(bad)]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err


def test_consecutive_activations_and_long_chains():
    """gelu(hardswish(x)), 0.5·relu(x), relu6 of a sigmoid: each layer comes back; a chain of
    100 element-wise nodes imports without deep recursion."""
    from cnngraph.dsl import Net, conv2d, gelu, hardswish, relu, relu6, sigmoid

    net = Net("acts")
    x = conv2d(net.input(3, 8, 8), 4, 3, name="conv")
    x = gelu(hardswish(x, name="hs"), name="ge")
    x = relu6(sigmoid(x, name="sig"), name="r6")
    relu(x, name="r")
    g = net.graph
    ws = weights.init(g, seed=0)
    h = load(export(g, ws))
    assert {n: h.nodes[n]["op"] for n in h.nodes} == {n: g.nodes[n]["op"] for n in g.nodes}
    nodes = [helper.make_node("Relu" if i % 2 else "Sigmoid", [f"t{i}" if i else "x"], [f"t{i + 1}" if i < 99 else "y"],
                              name=f"a{i}") for i in range(100)]
    m = _model(nodes)
    h = load(m)
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    assert rel_err(run(h, h.graph["weights"], x), ort_run(m, {"x": x})[0]) < 1e-6
