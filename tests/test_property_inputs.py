"""Property test of the DSL's input checks (hypothesis, 1,000 graphs per run).

Each example is a tiny network whose layer arguments are drawn from valid values and from
values that cannot describe a network (zero, negative, fractional, NaN, infinite, boolean,
non-integer expressions, injection strings). A graph that builds must analyze and run on the
Numba backend with every executed value of the shape the graph inferred; a graph that does
not build must say so with cnngraph's own error type, never a Python built-in exception.
"""
import math

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cnngraph import analyze
from cnngraph.backends.numba_backend import executor
from cnngraph.compiler import compile
from cnngraph.dsl import (Net, adaptive_avgpool2d, add, avgpool2d, batchnorm, concat, conv2d, dropout, flatten,
                          groupnorm, linear, lrn, maxpool2d, relu)
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.graph import infer_shapes
from cnngraph.compiler.weights import init

BAD = [0, -1, 2.5, math.nan, math.inf, True, "H/3", "sqrt(H)", "__import__('os').getcwd()", "9**9**9", None]
BAD_FLOAT = [-1.0, math.nan, math.inf, "0.1", 2.0]


def strategy(bad: bool):
    """Graphs whose values are all valid (``bad=False``: they build unless a shape rule says
    no) or may hold values no layer may take (about one in twelve)."""

    def size(lo, hi):
        return st.one_of(*[st.integers(lo, hi)] * 11, st.sampled_from(BAD)) if bad else st.integers(lo, hi)

    def real(ok):
        return st.one_of(*[st.just(ok)] * 5, st.sampled_from(BAD_FLOAT)) if bad else st.just(ok)

    layer = st.one_of(
        st.tuples(st.just("conv"), size(1, 4), size(1, 3), size(1, 2), size(0, 1), size(1, 2), size(1, 2)),
        st.tuples(st.just("maxpool"), size(1, 3), size(1, 2)),
        st.tuples(st.just("avgpool"), size(1, 3), size(1, 2)),
        st.tuples(st.just("adaptive"), size(1, 3)),
        st.tuples(st.just("bn"), real(1e-5)),
        st.tuples(st.just("gn"), size(1, 2)),
        st.tuples(st.just("lrn"), size(1, 5), real(1e-4)),
        st.tuples(st.just("dropout"), real(0.5)),
        st.tuples(st.just("relu")),
        st.tuples(st.just("residual")),
        st.tuples(st.just("branch"), size(1, 3)),
    )
    return st.tuples(st.lists(layer, min_size=1, max_size=4), st.one_of(size(1, 3), st.just("C")),
                     st.one_of(size(3, 9), st.just("H")), size(3, 9), st.booleans(), size(1, 5))


graphs = st.one_of(strategy(bad=False), strategy(bad=True))


def build(spec, c, h, w, head, classes):
    net = Net("random")
    x = net.input(c, h, w)
    for i, l in enumerate(spec):
        kind, n = l[0], f"l{i}"
        if kind == "conv":
            _, co, k, s, p, d, g = l
            x = conv2d(x, co, k, stride=s, padding=p, dilation=d, groups=g, name=n)
        elif kind == "maxpool":
            x = maxpool2d(x, l[1], l[2], name=n)
        elif kind == "avgpool":
            x = avgpool2d(x, l[1], l[2], name=n)
        elif kind == "adaptive":
            x = adaptive_avgpool2d(x, l[1], name=n)
        elif kind == "bn":
            x = batchnorm(x, eps=l[1], name=n)
        elif kind == "gn":
            x = groupnorm(x, l[1], name=n)
        elif kind == "lrn":
            x = lrn(x, l[1], alpha=l[2], name=n)
        elif kind == "dropout":
            x = dropout(x, l[1], name=n)
        elif kind == "relu":
            x = relu(x, name=n)
        elif kind == "residual":
            x = add(x, relu(conv2d(x, x.C, 3, padding=1, name=f"{n}c"), name=f"{n}r"), name=n)
        elif kind == "branch":
            x = concat(x, conv2d(x, l[1], 1, name=f"{n}b"), name=n)
    if head:
        x = linear(flatten(x, name="flat"), classes, name="fc")
    return net.graph


@settings(max_examples=1000, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(graphs)
def test_random_graphs_valid_run_invalid_refused(gspec):
    spec, c, h, w, head, classes = gspec
    try:
        g = build(spec, c, h, w, head, classes)
        report = analyze(g)
    except CnnGraphError as e:
        assert str(e) and "\n" not in str(e)
        event(f"refused: {type(e).__name__}")
        return
    except Exception as e:  # anything else is a bug: the message says which value got through
        raise AssertionError(f"{type(e).__name__} instead of a cnngraph error for {gspec}: {e}") from e
    shapes = infer_shapes(g)
    if not all(isinstance(v, int) for s in shapes.values() for v in s):
        # a symbolic graph analyzes (done above) and runs once its symbols have values
        assert any(not isinstance(v, int) for v in shapes["input"]) and report.total.params is not None
        event("symbolic: analyzed")
        return
    g.graph["outputs"] = [n for n in g.nodes if g.nodes[n]["op"] != "input"]
    plan = compile(g, init(g, seed=0))
    x = np.random.default_rng(0).standard_normal((1,) + tuple(shapes["input"])).astype(np.float32)
    for name, y in zip(plan.outputs, executor(plan).run(x)):
        assert y.shape == (1,) + tuple(shapes[name]), name
        assert np.isfinite(y).all(), name
    event("numeric: analyzed and ran")
