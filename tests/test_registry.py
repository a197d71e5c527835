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


# Comparisons that may name a registered op outside cnngraph/ir/ops.py, each with its reason.
# Keys are (path relative to cnngraph/, op name); every entry must still be found (no stale ones).
ALLOWED_OP_TESTS = {
    # The ONNX spelling of GroupNormalization (Reshape, InstanceNormalization, Reshape, Mul, Add) is
    # matched step by step; its per-channel Mul and Add are the tail of that one decomposition, which
    # is groupnorm's own ONNX form (layernorm's affine is not per channel, so no attribute covers it).
    ("onnx/handlers.py", "groupnorm"),
    # The import planner composes the two affine maps x·f + s it identified itself (``scale`` ∘
    # ``scale``): the test is on the tag of its own plan, whose meaning is that composition.
    ("onnx/importer.py", "scale"),
}


def _op_name_tests():
    """(path, line, op name) of every comparison in the library that tests an op value
    (a name ``op``/``*_op``, an attribute ``.op`` or a subscript ``["op"]``) against the
    quoted name of a registered op, outside the registry itself."""
    import ast
    import pathlib

    root = pathlib.Path(ops.__file__).resolve().parents[1]

    def names_op(node):
        if isinstance(node, ast.Name):
            return node.id == "op" or node.id.endswith("_op")
        if isinstance(node, ast.Attribute):
            return node.attr == "op"
        if isinstance(node, ast.Subscript):
            return isinstance(node.slice, ast.Constant) and node.slice.value == "op"
        return False

    def quoted(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            for e in node.elts:
                yield from quoted(e)

    def scan(rel, text):
        for node in ast.walk(ast.parse(text, rel)):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            if not any(names_op(s) for s in sides):
                continue
            for s in sides:
                for name in quoted(s):
                    if name in ops.REGISTRY:
                        yield rel, node.lineno, name

    sample = 'if d["op"] == "add" or node.op != "input" or op in ("conv2d", "Mul") or k == "relu": pass'
    assert list(scan("sample", sample)) == [("sample", 1, "add"), ("sample", 1, "input"), ("sample", 1, "conv2d")]
    return [f for path in sorted(root.rglob("*.py")) if path.relative_to(root).as_posix() != "ir/ops.py"
            for f in scan(path.relative_to(root).as_posix(), path.read_text())]


def test_no_op_name_is_tested_outside_the_registry():
    """One source of truth: what an op means is read through its registry entry
    (``ops.is_input``, ``Op.elementwise``, ``Op.chooses_algorithm``, ...), never by
    testing its name in an ``if`` elsewhere (issue 11)."""
    found = _op_name_tests()
    offending = [f for f in found if (f[0], f[2]) not in ALLOWED_OP_TESTS]
    assert not offending, "op names tested outside cnngraph/ir/ops.py: " + ", ".join(
        f"{p}:{line} {name!r}" for p, line, name in offending)
    assert {(p, name) for p, _, name in found} == set(ALLOWED_OP_TESTS), "stale entries in ALLOWED_OP_TESTS"
