"""Property-based tests (hypothesis): random valid graphs.

Random stacks and branches of conv / pool / norm / activation / add / concat with random
sizes must (1) run on the Numba backend with every executed value of the shape the graph
inferred, matching PyTorch; (2) have symbolic costs that, evaluated at the concrete input,
equal the numeric ones; (3) get a memory plan in which no two live values share a slot.
"""
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnngraph import analyze
from cnngraph.backends.common import nhwc
from cnngraph.backends.numba_backend import executor
from cnngraph.compiler import compile
from cnngraph.dsl import (Net, add, avgpool2d, batchnorm, concat, conv2d, groupnorm, maxpool2d, relu, relu6, sigmoid,
                          silu)
from cnngraph.ir.errors import ShapeError
from cnngraph.ir.graph import infer_shapes
from cnngraph.ir.symbols import H, W
from cnngraph.compiler.weights import init

from cases import check_no_overlap

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

ACTS = {"relu": relu, "relu6": relu6, "sigmoid": sigmoid, "silu": silu}

layer = st.one_of(
    st.tuples(st.just("conv"), st.integers(1, 12), st.sampled_from([1, 3, 5]), st.integers(1, 2), st.integers(0, 2),
              st.integers(1, 2), st.sampled_from([1, 2, 4])),
    st.tuples(st.just("pool"), st.sampled_from(["max", "avg"]), st.integers(2, 3), st.integers(1, 2), st.booleans()),
    st.tuples(st.just("norm"), st.sampled_from(["bn", "gn"])),
    st.tuples(st.just("act"), st.sampled_from(sorted(ACTS))),
    st.tuples(st.just("residual"), st.sampled_from([1, 3])),
    st.tuples(st.just("branch"), st.integers(1, 6), st.integers(1, 6)),
)


def build(spec, input_shape):
    """The network of a layer list; layers that do not fit are skipped the same way for
    numeric and symbolic inputs (decided on the numeric build)."""
    net = Net("random")
    x = net.input(*input_shape)
    for i, l in enumerate(spec):
        kind = l[0]
        if kind == "conv":
            _, c, k, s, p, d, g = l
            groups = g if (int(x.C) % g == 0 and c * g % g == 0) else 1
            x = conv2d(x, c * groups, k, stride=s, padding=min(p, k // 2) * d, dilation=d, groups=groups,
                       bias=i % 2 == 0, name=f"l{i}")
        elif kind == "pool":
            _, t, k, s, ceil = l
            f = maxpool2d if t == "max" else avgpool2d
            x = f(x, k, s, padding=k // 2 if k == 3 else 0, ceil_mode=ceil, name=f"l{i}")
        elif kind == "norm":
            x = batchnorm(x, name=f"l{i}") if l[1] == "bn" else groupnorm(x, 1, name=f"l{i}")
        elif kind == "act":
            x = ACTS[l[1]](x, name=f"l{i}")
        elif kind == "residual":
            k = l[1]
            y = relu(conv2d(x, x.C, k, padding=k // 2, name=f"l{i}a"), name=f"l{i}r")
            x = add(x, batchnorm(conv2d(y, x.C, 1, name=f"l{i}b"), name=f"l{i}n"), name=f"l{i}s")
        elif kind == "branch":
            _, c1, c2 = l
            a = conv2d(x, c1, 1, name=f"l{i}a")
            b = relu(conv2d(x, c2, 3, padding=1, name=f"l{i}b"), name=f"l{i}r")
            x = concat(a, b, x, name=f"l{i}c")
    return net.graph


def numeric_graph(spec, shape):
    try:
        return build(spec, shape)
    except ShapeError:
        return None


graphs = st.tuples(st.lists(layer, min_size=1, max_size=7), st.integers(1, 5), st.integers(5, 20), st.integers(5, 20))

SETTINGS = dict(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@settings(**SETTINGS)
@given(graphs, st.integers(1, 3))
def test_random_graphs_run_with_inferred_shapes(gspec, batch):
    spec, c, h, w = gspec
    g = numeric_graph(spec, (c, h, w))
    if g is None:
        return
    # every node an output: the executor must produce each value, of the inferred shape
    g.graph["outputs"] = [n for n in g.nodes if g.nodes[n]["op"] != "input"]
    ws = init(g, seed=len(spec), random_bn=True)
    x = np.random.default_rng(0).standard_normal((batch, c, h, w)).astype(np.float32)
    plan = compile(g, ws)
    outs = executor(plan).run(x)
    shapes = infer_shapes(g)
    for name, y in zip(plan.outputs, outs):
        assert y.shape == (batch,) + tuple(shapes[name]), name
    if torch is not None:
        from cnngraph.interop.torch_ref import run

        ref = run(g, ws, x)
        ref = ref if isinstance(ref, tuple) else (ref,)
        for name, a, b in zip(plan.outputs, outs, ref):
            assert a.shape == b.shape
            assert np.abs(a - b).max() <= 1e-4 * max(np.abs(b).max(), 1e-6), name


@settings(**SETTINGS)
@given(graphs)
def test_random_graphs_fused_match_unfused(gspec):
    """Folding and fusion change nothing but speed (generic NumPy kernels as reference)."""
    from cnngraph.backends.common import Executor, numpy_backend

    spec, c, h, w = gspec
    g = numeric_graph(spec, (c, h, w))
    if g is None:
        return
    ws = init(g, seed=1, random_bn=True)
    x = np.random.default_rng(1).standard_normal((2, c, h, w)).astype(np.float32)
    (a,) = executor(compile(g, ws)).run(x)
    (b,) = Executor(compile(g, ws, fold=False, fuse=False), numpy_backend()).run(x)
    assert np.abs(a - b).max() <= 1e-4 * max(np.abs(b).max(), 1e-6)


@settings(**SETTINGS)
@given(graphs)
def test_symbolic_costs_evaluate_to_numeric(gspec):
    spec, c, h, w = gspec
    g = numeric_graph(spec, (c, h, w))
    if g is None:
        return
    try:
        gs = build(spec, (c, H, W))
    except ShapeError:
        pytest.fail("a layer list valid at a size must build symbolically")
    num = analyze(g).total
    sym = analyze(gs).total
    at = {H: h, W: w}
    for f in ("params", "macs", "flops", "memory_bytes"):
        assert sympy.sympify(getattr(sym, f)).subs(at) == getattr(num, f), f
    ps, pn = compile(gs), compile(g)
    assert sympy.sympify(ps.memory.naive).subs(at) == pn.memory.naive
    for name, v in ps.values.items():  # every symbolic slot holds its value at this size
        assert sympy.sympify(ps.memory.slots[v.slot]).subs(at) >= pn.values[name].size
        assert tuple(sympy.sympify(s).subs(at) for s in v.shape) == tuple(pn.values[name].shape)


@settings(**SETTINGS)
@given(graphs)
def test_memory_plan_never_overlaps_live_values(gspec):
    spec, c, h, w = gspec
    g = numeric_graph(spec, (c, h, w))
    if g is None:
        return
    p = compile(g)
    check_no_overlap(p)
    assert p.memory.live_peak <= p.memory.planned <= p.memory.naive
    for v in p.values.values():
        assert len(nhwc(v.shape)) == 3
