"""The op registry is the one source of what an op means: every op has a DSL builder, a
generic kernel, an ONNX export and import path and a PyTorch reference; every activation's
Numba code, CuPy emulation, CUDA source (compiled for the host) and reference function
agree on the same samples; what the registry says is what the rest reads."""
import math

import numpy as np
import pytest

from cases import OP_CASES, TOL, build_case, rel_err
from cnngraph import analyze, zoo
from cnngraph.backends import cupy_backend as cb
from cnngraph.backends import numba_kernels as NK
from cnngraph.backends.common import GENERIC
from cnngraph.backends.cupy_kernels import ACTS as CUDA_ACTS
from cnngraph.backends.cupy_kernels import KERNELS, act_numpy
from cnngraph.compiler.weights import init, param_shapes
from cnngraph.ir import ops

OPS = sorted(set(ops.REGISTRY) - {"input"})
ACTS = sorted(ops.ACTIVATIONS)
# both sides of every kink (0, ±3, 6), the tails, and exact zeros
SAMPLES = np.concatenate([np.linspace(-8.0, 8.0, 41) + 0.0137, [-30.0, -12.5, -3.0, 0.0, 3.0, 6.0, 12.5, 30.0]])


def _case_ops():
    return {d["op"] for name in OP_CASES for _, d in build_case(name).nodes(data=True)}


def test_every_op_has_a_dsl_builder_and_a_case():
    """Every op is made by the DSL in at least one row of the shared case catalogue."""
    assert set(OPS) <= _case_ops()


def test_every_op_has_a_generic_kernel_and_a_pytorch_reference():
    pytest.importorskip("torch")
    from cnngraph.interop.torch_ref import TABLE

    assert set(OPS) <= set(GENERIC), set(OPS) - set(GENERIC)
    assert set(OPS) <= set(TABLE), set(OPS) - set(TABLE)


def test_every_op_exports_to_onnx_and_imports_back():
    """Each case exported, read back and run by the PyTorch reference gives the same output,
    with the same ops (an ONNX model computes what the graph computes)."""
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    from cnngraph import onnx as cg_onnx
    from cnngraph.interop.torch_ref import run

    seen = set()
    for name in sorted(OP_CASES):
        g = build_case(name)
        ws = init(g, seed=2, random_bn=True)
        x = np.random.default_rng(3).standard_normal((2,) + g.nodes["input"]["shape"]).astype(np.float32)
        h = cg_onnx.load(cg_onnx.export(g, ws))
        assert rel_err(run(h, h.graph["weights"], x), run(g, ws, x)) <= TOL, name
        seen |= {d["op"] for _, d in h.nodes(data=True)}
    assert set(OPS) - {"dropout", "identity"} <= seen  # the identities at inference may vanish


def test_activation_codes_are_explicit_and_every_backend_table_agrees():
    codes = [op.activation.code for op in ops.ACTIVATIONS.values()]
    assert len(set(codes)) == len(codes) and 0 not in codes
    for name, code in NK.ACT_ROW_CODES.items():
        assert ops.act_code(name) == code, name
    # an activation an epilogue may take must be in every backend's kernel table
    fusable = {n for n, op in ops.ACTIVATIONS.items() if op.fusion == "act"}
    assert fusable <= set(NK.ACT_ROW_CODES) and fusable <= set(CUDA_ACTS)


def _param(name):
    """A non-default parameter value of activation ``name`` (0 when it has none)."""
    p = ops.get(name).activation.param
    return 0.0 if p is None else {"negative_slope": 0.2, "alpha": 0.7, "beta": 2.5}[p]


def _reference(name, v64, p):
    op = ops.get(name)
    a = {**op.defaults, **({op.activation.param: p} if op.activation.param else {})}
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return np.asarray(op.activation.ref(np, erf, v64, a), np.float64)


@pytest.mark.parametrize("name", sorted(CUDA_ACTS))
def test_activation_kernels_agree_with_the_reference(name, host):
    """Numba's act_row, the CuPy emulation and the CUDA expression (host-compiled epilogue
    kernel, act1 with its parameter) against the registry's reference in float64."""
    code, p = ops.act_code(name), _param(name)
    v = SAMPLES.astype(np.float32)
    ref = _reference(name, v.astype(np.float64), p)
    tol = dict(rtol=2e-6, atol=2e-6)
    t = v.copy()
    NK.act_row(t, code, np.float32(p))
    np.testing.assert_allclose(t, ref, **tol, err_msg=f"numba {name}")
    np.testing.assert_allclose(act_numpy(v.copy(), code, p), ref, **tol, err_msg=f"emulation {name}")
    rows = v.reshape(-1, 1)
    for dev in (host, cb.get_device("shim", strict=True)):
        out = np.full_like(rows, np.nan)
        e = np.empty(0, np.float32)
        dev.kernel(KERNELS["epilogue"])(src=rows, dst=out, scale=e, bias=e, res=e, rows=rows.shape[0], C=1, opg=1,
                                        has_scale=0, has_bias=0, has_res=0, act1=code, act2=0, p1=np.float32(p))
        np.testing.assert_allclose(out[:, 0], ref, **tol, err_msg=f"{dev.name} {name}")


@pytest.mark.parametrize("name", ACTS)
def test_activation_pytorch_function_is_the_reference(name):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    op, p = ops.get(name), _param(name)
    a = {**op.defaults, **({op.activation.param: p} if op.activation.param else {})}
    v = SAMPLES.astype(np.float64)
    if op.weights:  # PReLU: one slope
        a["weight"] = 0.3
        ref = np.where(v >= 0, v, 0.3 * v)
        a_t = {**a, "weight": torch.tensor([0.3], dtype=torch.float64)}
    else:
        ref = _reference(name, v, p)
        a_t = a
    got = op.activation.torch(F, torch.tensor(v), a_t).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    if op.weights:
        np.testing.assert_allclose(op.activation.ref(np, None, v, a), ref)


def test_weights_follow_the_registry_specs():
    """Counted parameters and buffers are the sizes of the weights made from the same specs."""
    for name in ("resnet18", "mobilenet_v3_small", "lenet5_1998", "inception_v3"):
        g = zoo.build(name)
        r = analyze(g)
        shapes = param_shapes(g)
        params = sum(int(np.prod(s)) for s, role in shapes.values() if role == "param")
        buffers = sum(int(np.prod(s)) for s, role in shapes.values() if role == "buffer")
        assert (r.total.params, r.total.buffers) == (params, buffers), name


def test_attribute_defaults_are_applied_where_a_node_is_made():
    from cnngraph.dsl import Net, batchnorm, instancenorm, leaky_relu, maxpool2d

    net = Net("d")
    x = net.input(4, 8, 8)
    leaky_relu(instancenorm(batchnorm(maxpool2d(x, 2, name="pool"), name="bn"), name="in"), name="act")
    a = {n: d["attrs"] for n, d in net.graph.nodes(data=True)}
    assert a["pool"]["dilation"] == (1, 1) and a["pool"]["ceil_mode"] is False
    assert a["bn"]["eps"] == 1e-5 and a["in"]["affine"] is False
    assert a["act"]["negative_slope"] == 0.01 and a["act"]["inplace"] is True


def test_stride_notes_are_recomputed_for_every_input():
    """ResNet-18's conv1 does not fit 224 (223/2) but fits 225: the notes of the new input,
    not those stored when the graph was built."""
    g = zoo.build("resnet18")
    at224 = [n for n in analyze(g).notes if n.startswith("conv1:")]
    assert at224 and "223/2" in at224[0]
    assert not [n for n in analyze(g, input=(3, 225, 225)).notes if n.startswith("conv1:")]
    from cnngraph.ir.graph import with_input

    assert not [n for n in with_input(g, (3, 225, 225)).graph["notes"] if n.startswith("conv1:")]
    assert len(g.graph["notes"]) == len(analyze(g).notes)  # the graph itself is left alone
