"""Constant sub-graphs over weights fold at import (issue 17): weight standardisation (a
training-mode BatchNormalization or ReduceMean/Sub/Mul over the weight itself), scaled,
reshaped and transposed weights become the weight the layer uses; a training-mode batch norm
of activations is still refused."""
import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnngraph import analyze  # noqa: E402
from cnngraph.ir.errors import CnnGraphError  # noqa: E402
from cnngraph.onnx import load  # noqa: E402


def run(g, weights, x):
    """The graph on PyTorch (cnngraph.interop.torch_ref): skipped where torch is not installed."""
    pytest.importorskip("torch")
    from cnngraph.interop.torch_ref import run as torch_run

    return torch_run(g, weights, x)


def _ort(model_bytes, x):
    s = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def _model(nodes, inits, opset=17):
    g = helper.make_graph(nodes, "consts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()


def test_hand_made_constant_subgraphs_fold():
    """Conv weight = Reshape(BN_train(Reshape(w))) · gain, transposed from another layout, and
    a linear weight from MatMul of two constants: counts are the conv's, output equals ORT."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    wt = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # stored as kh, kw, cin, cout
    ones, zeros = np.ones(6, np.float32), np.zeros(6, np.float32)
    gain = rng.uniform(0.5, 1.5, (6, 1, 1, 1)).astype(np.float32)
    a, b = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((3, 6 * 4 * 4)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["wt"], ["w"], perm=[3, 2, 0, 1]),
        helper.make_node("Reshape", ["w", "flat"], ["w3"]),
        helper.make_node("BatchNormalization", ["w3", "ones", "zeros", "zeros", "ones"], ["wn", "rm", "rv"], training_mode=1,
                         epsilon=1e-5),
        helper.make_node("Reshape", ["wn", "wshape"], ["w4"]),
        helper.make_node("Mul", ["w4", "gain"], ["w5"]),
        helper.make_node("Conv", ["x", "w5"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("MatMul", ["a", "b"], ["ab"]),
        helper.make_node("Gemm", ["f", "ab"], ["y"], transB=1),
    ]
    inits = {"wt": wt, "flat": np.array([1, 6, -1], np.int64), "wshape": np.array([6, 4, 3, 3], np.int64),
             "ones": ones, "zeros": zeros, "gain": gain, "a": a, "b": b}
    m = _model(nodes, inits)
    g = load(m)
    assert [g.nodes[n]["op"] for n in g.nodes] == ["input", "conv2d", "relu", "flatten", "linear"]
    assert analyze(g).total.params == 6 * 4 * 9 + 5 * 96
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    want = _ort(m, x)
    got = run(g, g.graph["weights"], x)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_training_mode_batchnorm_of_activations_is_still_refused():
    m = _model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], training_mode=1)],
               {k: np.ones(4, np.float32) for k in "sbmv"})
    with pytest.raises(CnnGraphError, match="BatchNormalization in training mode is not supported"):
        load(m)


def test_folding_does_not_amplify_constants():
    """A scaled weight is as large as the weight; a tiny constant expanded to a huge one is not."""
    m = _model([helper.make_node("Expand", ["one", "big"], ["e"]), helper.make_node("Add", ["x", "e"], ["y"])],
               {"one": np.ones(1, np.float32), "big": np.array([1, 4, 1 << 12, 1 << 12], np.int64)})
    with pytest.raises(CnnGraphError, match="elements"):
        load(m)


@pytest.fixture(scope="module")
def torch_mod():
    return pytest.importorskip("torch")


def _nf_model(torch, name):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    m = timm.create_model(name).eval()
    with torch.no_grad():  # non-trivial gains and biases (zero biases are dropped by the dynamo exporter)
        for n, p in m.named_parameters():
            if n.endswith((".gain", ".bias")):
                p.copy_(torch.rand(p.shape) * 0.5 + (0.75 if n.endswith(".gain") else -0.25))
    return m


@pytest.mark.torch
@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_nf_resnet_weight_standardisation_imports_counts_and_runs(torch_mod, dynamo):
    """timm's nf_resnet26 (ScaledStdConv2d: a training-mode batch norm over each weight, times a
    gain), exported in eval mode by both exporters: multiply-adds equal forward hooks', params
    equal torch's minus the gains folded into the weights, outputs equal ONNX Runtime's."""
    torch = torch_mod
    torch.set_num_threads(1)
    m = _nf_model(torch, "nf_resnet26")
    x = torch.randn(2, 3, 64, 64)
    macs = [0]

    def hook(mod, inp, out):
        k = mod.weight[0].numel()  # C_in/groups · kh · kw
        macs[0] += out[0].numel() * k if isinstance(mod, torch.nn.Conv2d) else out[0].numel() * mod.in_features

    hooks = [mod.register_forward_hook(hook) for mod in m.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        m(x[:1])
    for h in hooks:
        h.remove()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(m, (x,), f, dynamo=True, input_names=["input"], output_names=["output"],
                              dynamic_shapes={"x": {0: torch.export.Dim("N")}}, verbose=False)
        else:
            torch.onnx.export(m, x, f, dynamo=False, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    data = f.getvalue()
    g = load(data)
    r = analyze(g)
    gains = sum(p.numel() for n, p in m.named_parameters() if n.endswith(".gain"))
    assert r.total.macs == macs[0]
    assert r.total.params == sum(p.numel() for p in m.parameters()) - gains
    xn = x.numpy()
    want = _ort(data, xn)
    got = run(g, g.graph["weights"], xn)
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
