"""ONNX export: every op of the registry, checked by onnx.checker and run by ONNX Runtime
against the PyTorch reference; names, symbolic dims, opsets, errors.

The per-model zoo sweep (export, ONNX Runtime vs to_torch, import round trip) is in
test_onnx_import.py so each model is exported once.
"""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from onnx_cases import all_ops_net, ort_run, random_input, registry_ops, rel_err  # noqa: E402

from cnngraph import zoo  # noqa: E402
from cnngraph.compiler import weights
from cnngraph.ir.errors import CnnGraphError  # noqa: E402
from cnngraph.onnx import export  # noqa: E402
from cnngraph.ir.symbols import H, W, sym  # noqa: E402
from cnngraph.interop.torch_ref import run  # noqa: E402

# Ops with no export yet: none today; a new registry op shows up here as a failure.
NOT_EXPORTED = set()


@pytest.fixture(scope="module")
def all_ops():
    g = all_ops_net()
    return g, weights.init(g, seed=0, random_bn=True)


def test_all_ops_net_covers_the_registry(all_ops):
    g, _ = all_ops
    used = {d["op"] for _, d in g.nodes(data=True)}
    assert registry_ops() - used <= NOT_EXPORTED, "a registry op is missing from all_ops_net"


@pytest.mark.parametrize("opset", [17, 18, 20, 21])
def test_every_op_matches_torch_node_by_node(all_ops, opset):
    """Each node's ONNX Runtime output equals the PyTorch reference's (every layer an output)."""
    g, ws = all_ops
    m = export(g, ws, opset=opset)
    names = [n for n in g.nodes if g.nodes[n]["op"] != "input"]
    for n in names[:-1]:
        m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    feeds = random_input(g)
    got = dict(zip([o.name for o in m.graph.output], ort_run(m, feeds)))
    h = g.copy()
    h.graph["outputs"] = names
    want = dict(zip(names, run(h, ws, *feeds.values(), dtype=torch.float64)))
    for n in names:
        assert got[n].shape == want[n].shape, n
        assert rel_err(got[n], want[n]) < 1e-5, n


def test_node_and_initializer_names(all_ops):
    g, ws = all_ops
    m = export(g, ws)
    node_names = {n.name for n in m.graph.node}
    assert {n for n in g.nodes if g.nodes[n]["op"] != "input"} <= node_names
    inits = {i.name: i for i in m.graph.initializer}
    for key, value in ws.items():  # every state_dict tensor, under its own name, with its values
        # (a per-channel layer scale is stored broadcastable, C×1×1, as torchvision's own `layer_scale`)
        stored = onnx.numpy_helper.to_array(inits[key])
        assert stored.size == value.size and np.array_equal(stored.reshape(value.shape), value), key
    assert m.graph.input[0].name == "input" and m.graph.output[0].name == "softmax"
    # the main node of a layer produces the tensor named after it
    producer = {n.output[0]: n.name for n in m.graph.node}
    assert all(producer[n] == n for n in g.nodes if g.nodes[n]["op"] != "input")


def test_batch_dim_param_and_static_batch():
    g = zoo.build("resnet18", input=(3, 32, 32))
    ws = weights.init(g, seed=0)
    m = export(g, ws)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, 32, 32]
    out = m.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in out] == ["N", 1000]
    x = random_input(g, batch=3)
    assert ort_run(m, x)[0].shape == (3, 1000)
    m1 = export(g, ws, batch=1)
    assert m1.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_symbolic_height_and_width_become_dim_params():
    """A graph on 3×H×W exports with dim_params H, W and runs at several sizes."""
    gs = zoo.build("resnet18", input=(3, H, W))
    g = zoo.build("resnet18", input=(3, 32, 32))
    ws = weights.init(g, seed=0, random_bn=True)
    m = export(gs, ws)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, "H", "W"]
    for h, w in ((32, 32), (40, 56)):
        x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
        got = ort_run(m, {"input": x})[0]
        want = run(zoo.build("resnet18", input=(3, h, w)), ws, x)
        assert rel_err(got, want) < 1e-4


def test_save_and_opset_range(tmp_path, all_ops):
    g, ws = all_ops
    p = tmp_path / "all_ops.onnx"
    export(g, ws, p)
    assert onnx.load(str(p)).graph.node[0].name == "stem.conv_asym"
    with pytest.raises(CnnGraphError, match="opset must be between 13 and 21"):
        export(g, ws, opset=12)
    with pytest.raises(CnnGraphError, match="ln: layernorm needs opset 17"):
        export(g, ws, opset=13)


def test_opset13_falls_back_to_older_ops():
    """Opset 13 has no HardSwish export path issue, no Gelu: both are decomposed."""
    from cnngraph.dsl import Net, conv2d, gelu, hardswish

    net = Net("old")
    x = net.input(3, 8, 8)
    gelu(hardswish(conv2d(x, 4, 3, name="c"), name="hs"), name="ge")
    g = net.graph
    ws = weights.init(g, seed=0)
    m = export(g, ws, opset=13)
    assert {"HardSigmoid", "Erf"} <= {n.op_type for n in m.graph.node}
    x = random_input(g)
    assert rel_err(ort_run(m, x)[0], run(g, ws, *x.values())) < 1e-5


def test_errors_name_the_layer():
    g = zoo.build("lenet5")
    ws = weights.init(g, seed=0)
    bad = dict(ws)
    bad["conv1.weight"] = bad["conv1.weight"][:, :, :3]
    with pytest.raises(CnnGraphError, match=r"conv1: weight conv1.weight is 20×1×3×5 but the graph infers 20×1×5×5"):
        export(g, bad)
    c = sym("c")
    from cnngraph.dsl import Net, conv2d

    net = Net("sym")
    conv2d(net.input(3, 8, 8), c, 3, name="convc")
    with pytest.raises(CnnGraphError, match=r"convc: the shape of convc.weight, c×3×3×3, must be numbers"):
        export(net.graph, {"convc.weight": np.zeros((1, 3, 3, 3), np.float32), "convc.bias": np.zeros(1, np.float32)})


def test_cli_export(tmp_path):
    from cnngraph.cli import main

    p = tmp_path / "r18.onnx"
    assert main(["export", "resnet18", "-o", str(p), "--input", "3,32,32"]) == 0
    m = onnx.load(str(p))
    onnx.checker.check_model(m)
    assert m.graph.input[0].type.tensor_type.shape.dim[2].dim_value == 32
    g = zoo.build("resnet18", input=(3, 32, 32))
    ws = weights.init(g, seed=7, random_bn=True)
    wp = tmp_path / "r18.npz"
    weights.save(ws, wp)
    p2 = tmp_path / "r18w.onnx"
    assert main(["export", "resnet18", "-o", str(p2), "--input", "3,32,32", "--weights", str(wp)]) == 0
    x = random_input(g)
    assert rel_err(ort_run(onnx.load(str(p2)), x)[0], run(g, ws, *x.values())) < 1e-4
    assert main(["export", "resnet18", "-o", str(tmp_path / "x.onnx"), "--weights", str(tmp_path / "none.npz")]) == 2
