"""Compiler passes and the memory plan, each on its own, with counts from first principles."""
import numpy as np
import pytest
import sympy

from cnngraph import analyze, zoo
from cnngraph.backends.common import Executor, numpy_backend
from cnngraph.compiler import compile
from cnngraph.dsl import (Net, add, batchnorm, concat, conv2d, conv_transpose2d, dropout, flatten, global_avgpool,
                          identity, linear, maxpool2d, mul, relu, sigmoid)
from cases import check_no_overlap
from cnngraph.ir.graph import infer_shapes, outputs
from cnngraph.compiler.passes import eliminate_dead, fold_batchnorm, fuse_epilogues, schedule
from cnngraph.ir.symbols import H, W
from cnngraph.compiler.weights import init


def _ops(g):
    out = {}
    for _, d in g.nodes(data=True):
        out[d["op"]] = out.get(d["op"], 0) + 1
    return out


def _reference(g, ws, x):
    """The unoptimised graph on the generic NumPy kernels (no folding, no fusion)."""
    return Executor(compile(g, ws, fold=False, fuse=False), numpy_backend()).run(x)


# ---------------------------------------------------------------- schedule
def test_schedule_is_topological_and_deterministic():
    g = zoo.build("googlenet") if "googlenet" in zoo.names() else zoo.build("resnet50")
    order = schedule(g)
    pos = {n: i for i, n in enumerate(order)}
    assert sorted(order) == sorted(g.nodes)
    assert all(pos[i] < pos[n] for n in g.nodes for i in g.nodes[n]["inputs"])
    assert order == schedule(g.copy())


# ---------------------------------------------------------------- dead-node elimination
def test_eliminate_dead_drops_dropout_identity_and_unused_branches():
    net = Net("dead")
    x = net.input(3, 8, 8)
    y = relu(conv2d(x, 4, 3, padding=1, name="a"), name="r")
    conv2d(y, 5, 1, name="unused")  # reaches no output
    z = identity(dropout(y, name="drop"), name="id")
    out = linear(flatten(z, name="flat"), 10, name="fc")
    net.output(out)
    g = net.graph
    h = eliminate_dead(g)
    assert set(h.nodes) == {"input", "a", "r", "flat", "fc"}
    assert h.nodes["flat"]["inputs"] == ["r"] and h.has_edge("r", "flat")
    assert outputs(h) == ["fc"]
    assert set(g.nodes) >= {"unused", "drop", "id"}  # the input graph is untouched


def test_eliminate_dead_keeps_a_dropout_output_by_its_input():
    net = Net("d")
    x = net.input(4)
    net.output(dropout(linear(x, 3, name="fc"), name="drop"))
    h = eliminate_dead(net.graph)
    assert outputs(h) == ["fc"] and "drop" not in h


def test_alexnet_loses_exactly_its_two_dropouts():
    g = zoo.build("alexnet")
    h = eliminate_dead(g)
    assert _ops(g)["dropout"] == 2 and "dropout" not in _ops(h)
    assert len(h) == len(g) - 2


# ---------------------------------------------------------------- batch-norm folding
def test_fold_resnet50_removes_all_53_batch_norms():
    g = zoo.build("resnet50")
    h, ws = fold_batchnorm(g, init(g, seed=1, random_bn=True))
    assert _ops(g)["batchnorm"] == 53 and _ops(g)["conv2d"] == 53
    assert "batchnorm" not in _ops(h)
    assert all(d["attrs"]["bias"] for _, d in h.nodes(data=True) if d["op"] == "conv2d")
    assert not any(k.startswith("bn1.") or ".bn" in k for k in ws)
    assert ws["conv1.bias"].shape == (64,) and ws["conv1.weight"].dtype == np.float32


def test_fold_formula_exact():
    """W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β, checked on one channel by hand."""
    net = Net("f")
    x = net.input(2, 5, 5)
    batchnorm(conv2d(x, 3, 3, name="c"), eps=1e-3, name="bn")
    g = net.graph
    ws = init(g, seed=2, random_bn=True)
    _, f = fold_batchnorm(g, ws)
    s = ws["bn.weight"][1] / np.sqrt(ws["bn.running_var"][1] + 1e-3)
    np.testing.assert_allclose(f["c.weight"][1], ws["c.weight"][1] * s, rtol=1e-6)
    np.testing.assert_allclose(f["c.bias"][1], (ws["c.bias"][1] - ws["bn.running_mean"][1]) * s + ws["bn.bias"][1],
                               rtol=1e-6)


def test_fold_skips_a_conv_with_another_consumer_and_bn_after_concat():
    net = Net("nf")
    x = net.input(3, 6, 6)
    c = conv2d(x, 4, 3, padding=1, name="c")
    b = batchnorm(c, name="bn")  # c also feeds the add: folding would change it
    y = add(b, c, name="sum")
    z = batchnorm(concat(y, x, name="cat"), name="bn2")  # not after a conv
    net.output(z)
    h, _ = fold_batchnorm(net.graph, init(net.graph, random_bn=True))
    assert "bn" in h and "bn2" in h


def test_fold_linear_then_batchnorm1d():
    net = Net("l")
    x = net.input(6)
    batchnorm(linear(x, 4, name="fc"), name="bn")
    h, ws = fold_batchnorm(net.graph, init(net.graph, random_bn=True))
    assert "bn" not in h and ws["fc.weight"].shape == (4, 6)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_folded_and_fused_plan_computes_the_same(name):
    g = zoo.build(name, input=(3, 32, 32))
    ws = init(g, seed=3, random_bn=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    (a,) = Executor(compile(g, ws), numpy_backend()).run(x)
    (b,) = _reference(g, ws, x)
    assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()


# ---------------------------------------------------------------- epilogue fusion
def test_resnet50_fusion_groups():
    """Each bottleneck: conv1+ReLU, conv2+ReLU, conv3 + residual add + ReLU; the stem conv+ReLU.
    53 convs + maxpool + avgpool + flatten + fc = 57 steps; 176 nodes before."""
    g = zoo.build("resnet50")
    h, _ = fold_batchnorm(eliminate_dead(g))
    f = fuse_epilogues(h)
    convs = [n for n in h if h.nodes[n]["op"] == "conv2d"]
    assert set(f) == set(convs) | {"fc"}
    with_res = [a for a, x in f.items() if x.residual]
    assert len(with_res) == 16 and all(f[a].act2 == "relu" for a in with_res)
    assert all(a.endswith("conv3") for a in with_res)
    assert sum(1 for x in f.values() if x.act1 == "relu") == 1 + 2 * 16
    absorbed = {m for x in f.values() for m in x.absorbed}
    assert absorbed == {n for n in h if h.nodes[n]["op"] in ("relu", "add")}
    p = compile(g)
    assert len(g) == 176 and len(p.steps) == 57
    # a downsampling block's residual is its projection shortcut, computed earlier
    assert f["layer2.0.conv3"].residual == "layer2.0.downsample.0"


def test_fusion_stops_at_a_value_with_two_consumers():
    net = Net("two")
    x = net.input(3, 6, 6)
    c = conv2d(x, 4, 1, name="c")
    r = relu(c, name="r")
    net.output(r, c)  # c is an output: relu cannot be fused into it
    f = fuse_epilogues(net.graph)
    assert f["c"].act1 is None and f["c"].output == "c"


def test_standalone_add_takes_its_activation():
    net = Net("a")
    x = net.input(3, 6, 6)
    a = relu(conv2d(x, 3, 1, name="c"), name="r")  # r feeds two adds: not absorbable
    y = relu(add(a, x, name="s1"), name="r1")
    z = add(y, a, name="s2")
    net.output(z)
    f = fuse_epilogues(net.graph)
    assert f["s1"].residual == "input" and f["s1"].act2 == "relu" and f["s1"].output == "r1"


# ---------------------------------------------------------------- squeeze-and-excitation gates
def _se_net(shared_h=False, conv_gate=True, transposed=False):
    """conv → SE (global pool, 1×1 conv + ReLU, 1×1 conv + sigmoid, product) → conv."""
    net = Net("se")
    x = net.input(3, 8, 8)
    y = relu(conv2d(x, 16, 3, padding=1, name="c1"), name="r1")
    p = global_avgpool(y, name="pool")
    fc1 = conv_transpose2d(p, 4, 1, name="fc1") if transposed else conv2d(p, 4, 1, name="fc1")
    h = relu(fc1, name="act1")
    s = sigmoid(conv2d(h, 16, 1, name="fc2") if conv_gate else conv2d(h, 16, 1, groups=2, name="fc2"), name="gate")
    z = conv2d(mul(y, s, name="scale"), 8, 1, name="c2")
    net.output(z, h) if shared_h else net.output(z)
    return net.graph


def test_efficientnet_b0_nests_its_16_gates(monkeypatch):
    """EfficientNet-B0's 16 MBConv blocks each have one SE gate: 116 steps become 68 (53
    with the 15 expansions nested too), every gate is pool → conv + SiLU → conv + sigmoid,
    and the memory plan made after nesting is valid call by call."""
    import cnngraph.compiler.pipeline as PL

    g = zoo.build("efficientnet_b0")
    p = compile(g)
    monkeypatch.setattr(PL, "group_expansions", lambda plan: plan)
    only_gates = compile(g)
    monkeypatch.setattr(PL, "group_gates", lambda plan: plan)
    flat = compile(g)
    gated = [s for s in p.steps if s.gate]
    assert len(flat.steps) == 116 and len(only_gates.steps) == 68 and len(p.steps) == 53 and len(gated) == 16
    for s in gated:
        assert s.op == "mul" and [q.op for q in s.gate] == ["adaptive_avgpool2d", "conv2d", "conv2d"]
        assert (s.gate[1].act1, s.gate[2].act1) == ("silu", "sigmoid")
        assert s.inputs == [s.gate[0].inputs[0], s.gate[2].output]
        assert s.operands == s.inputs + [s.gate[0].output, s.gate[1].output]
    for q in (p, only_gates):
        check_no_overlap(q)
    assert not any(s.gate for s in compile(g, fuse=False).steps)


def test_mobilenet_v2_nests_its_16_expansions():
    """Each inverted residual with an expansion (features.2 to .17) runs its 1×1 expansion
    inside its depthwise step; the expansion's input, output and the step's output each
    keep a slot of their own through the step (the Numba kernel reads the input while it
    writes the output), and the plan is valid call by call."""
    for batch in (1, 8):
        p = compile(zoo.build("mobilenet_v2"), batch=batch)
        nested = [s for s in p.steps if s.pre]
        assert len(p.steps) == 39 and len(nested) == 16
        assert [s.node for s in nested] == [f"features.{i}.conv.1.0" for i in range(2, 18)]
        for s in nested:
            (e,) = s.pre
            assert e.node == s.node.replace("conv.1.0", "conv.0.0") and (e.act1, s.act1) == ("relu6", "relu6")
            assert s.inputs == [e.output] and s.operands == [e.inputs[0], e.output]
            slots = {p.values[v].slot for v in (e.inputs[0], e.output, s.output)}
            assert len(slots) == 3
        check_no_overlap(p)
    assert not any(s.pre for s in compile(zoo.build("mobilenet_v2"), fuse=False).steps)
    # ResNet-50's 1×1 convolutions feed 3×3 dense ones: nothing to nest
    assert not any(s.pre for s in compile(zoo.build("resnet50")).steps)


def test_expansion_nesting_needs_a_sole_reader_and_multiplier_1():
    from cnngraph import dsl

    def net(shared=False, multiplier=1):
        n = dsl.Net("ir")
        x = n.input(8, 10, 10)
        e = dsl.relu6(dsl.conv2d(x, 24, 1, name="expand"), name="a")
        d = dsl.conv2d(e, 24 * multiplier, 3, padding=1, groups=24, name="dw")
        n.output(*([d, e] if shared else [d]))
        return n.graph

    assert [len(s.pre) for s in compile(net()).steps] == [1]
    assert not any(s.pre for s in compile(net(shared=True)).steps)
    assert not any(s.pre for s in compile(net(multiplier=2)).steps)


def test_gate_nesting_needs_each_value_used_once_and_a_dense_1x1():
    assert [s.op for s in compile(_se_net()).steps] == ["conv2d", "mul", "conv2d"]
    # the first convolution's output is also a graph output: the gate stays four steps
    assert [s.op for s in compile(_se_net(shared_h=True)).steps] == [
        "conv2d", "adaptive_avgpool2d", "conv2d", "conv2d", "mul", "conv2d"]
    # a grouped 1×1 convolution is not a matrix-vector product, nor is a transposed one
    # (its weights are laid out (C_in, C_out))
    assert not any(s.gate for s in compile(_se_net(conv_gate=False)).steps)
    assert not any(s.gate for s in compile(_se_net(transposed=True)).steps)


@pytest.mark.parametrize("variant", [{}, {"shared_h": True}, {"conv_gate": False}, {"transposed": True}])
def test_gated_plan_computes_the_same(variant):
    g = _se_net(**variant)
    ws = init(g, seed=4)
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    outs = Executor(compile(g, ws), numpy_backend()).run(x)
    refs = _reference(g, ws, x)
    for a, b in zip(outs, refs):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


# ---------------------------------------------------------------- memory planning
@pytest.mark.parametrize("name", ["resnet50", "alexnet", "vgg16_bn", "densenet121", "googlenet",
                                  "mobilenet_v2", "shufflenet_v2_x1_0", "efficientnet_b0"])
def test_memory_plan_is_valid_and_smaller(name):
    if name not in zoo.names():
        pytest.skip(f"{name} not in the zoo")
    p = compile(zoo.build(name))
    check_no_overlap(p)
    m = p.memory
    assert m.live_peak <= m.planned < m.naive
    assert m.naive == sum(v.size for v in p.values.values())
    assert m.planned == sum(m.slots)
    assert m.at(8).planned_bytes == 8 * 4 * m.planned


def test_resnet50_memory_figures():
    """Per-sample float32 activations at 224×224: every value (stem 64×112×112, ...) kept
    alive needs 43.8 MB; the plan needs 3 buffers; the input 3×224×224 and the stem output
    64×112×112 live together at the first step, so the peak is at least their sum."""
    p = compile(zoo.build("resnet50"))
    m = p.memory
    assert len(m.slots) == 3
    assert m.live_peak >= 3 * 224 * 224 + 64 * 112 * 112
    assert m.naive == sum(int(np.prod(v.shape)) for v in p.values.values())


def test_mobilenet_v2_memory_packed_by_size(monkeypatch):
    """MobileNet v2's largest value is the first expansion, 96×112×112; in a stride-1 block
    at 56² its input (24×56²), the expansion and the depthwise output (144×56² each) are alive
    at once. So any plan needs at least 3 buffers of at least 96·112², 144·56² and 24·56²
    elements: packing by size reaches exactly that, where step order (which gives the block's
    24-channel output the big free buffer) needs 96·112² + 2·144·56². With the expansions
    nested in their depthwise steps, the first one's input (16×112²) is alive through the
    step too: a fourth buffer."""
    import cnngraph.compiler.pipeline as PL
    from cnngraph.compiler import plan as P

    p = compile(zoo.build("mobilenet_v2"))
    check_no_overlap(p)
    assert sorted(p.memory.slots, reverse=True) == [96 * 112 * 112, 144 * 56 * 56, 16 * 112 * 112, 24 * 56 * 56]
    monkeypatch.setattr(PL, "group_expansions", lambda plan: plan)
    p = compile(zoo.build("mobilenet_v2"))
    check_no_overlap(p)
    assert sorted(p.memory.slots, reverse=True) == [96 * 112 * 112, 144 * 56 * 56, 24 * 56 * 56]
    monkeypatch.setattr(P, "_pack_by_size", lambda vals, alias: ([float("inf")], {}))  # step order alone
    q = compile(zoo.build("mobilenet_v2"))
    check_no_overlap(q)
    assert sorted(q.memory.slots, reverse=True) == [96 * 112 * 112, 144 * 56 * 56, 144 * 56 * 56]


def test_symbolic_memory_plan_matches_numeric():
    """The planner runs on the symbolic graph; its formulas, evaluated at a size, bound every
    value the numeric plan holds and equal the naive sum exactly."""
    ps = compile(zoo.build("resnet50", input=(3, H, W)))
    assert ps.memory.planned.free_symbols == {H, W}
    for size in (64, 224):
        pn = compile(zoo.build("resnet50", input=(3, size, size)))
        at = {H: size, W: size}
        assert sympy.sympify(ps.memory.naive).subs(at) == pn.memory.naive
        slots = [int(sympy.sympify(sl).subs(at)) for sl in ps.memory.slots]
        assert sum(slots) == int(sympy.sympify(ps.memory.planned).subs(at)) >= pn.memory.live_peak
        for name, v in ps.values.items():
            assert slots[v.slot] >= pn.values[name].size
    # at the size the planner ranks symbols with (64), it makes the numeric plan's choices
    pn = compile(zoo.build("resnet50", input=(3, 64, 64)))
    assert int(sympy.sympify(ps.memory.planned).subs({H: 64, W: 64})) == pn.memory.planned


def test_symbolic_plan_shapes_agree_with_inference():
    g = zoo.build("resnet18", input=(3, H, W))
    p = compile(g)
    shapes = infer_shapes(g)
    for name, v in p.values.items():
        assert v.shape == shapes[name]


def test_plan_naive_memory_equals_cost_model_for_a_plain_stack():
    """With no in-place layers the naive sum is the cost model's total memory + the input."""
    net = Net("plain")
    x = net.input(3, 16, 16)
    x = maxpool2d(conv2d(x, 8, 3, padding=1, name="c1"), 2, name="p1")
    linear(flatten(conv2d(x, 4, 3, name="c2"), name="f"), 5, name="fc")
    g = net.graph
    p = compile(g)
    assert p.memory.naive * 4 == analyze(g).total.memory_bytes + 3 * 16 * 16 * 4


def test_batches_split_into_passes_that_fit_the_cache():
    """MobileNet v2 at 320² and batch 8 runs in passes of 2 images (its largest step in
    memory, 6.25 MiB per image, within the 16 MiB budget twice; an expansion's output stays
    inside its depthwise step and does not count); at 224² (3.06 MiB per image) its 13.3 MiB
    of weights are more than 3× one image's step, so it runs whole, as do ResNet-50 (97 MiB
    of weights) and EfficientNet-B0 (20 MiB); batch 1 and symbolic plans are never split;
    the algorithms are chosen for the pass's size."""
    import cnngraph.compiler.pipeline as PL
    from cnngraph.compiler.algorithms import CHUNK_BYTES, step_bytes

    m = compile(zoo.build("mobilenet_v2", input=(3, 320, 320)), batch=8)
    assert step_bytes(m) == 4 * 2 * 32 * 160 * 160  # features.1's depthwise convolution, in and out
    assert m.chunk == 2 == CHUNK_BYTES // step_bytes(m) and "4 passes of 2 images" in m.chunk_why
    assert all("at batch 2" in s.why for s in m.steps if s.algorithm and s.why and "MAC-eq" in s.why)
    m = compile(zoo.build("mobilenet_v2"), batch=8)
    assert step_bytes(m) == 4 * 2 * 32 * 112 * 112 and m.chunk == 8 and m.chunk_why.endswith("> 3× one image's")
    r = compile(zoo.build("resnet50"), batch=8)
    assert r.chunk == 8 and r.chunk_why.startswith("whole batch")
    e = compile(zoo.build("efficientnet_b0"), batch=8)
    assert e.chunk == 8 and e.chunk_why.endswith("> 3× one image's")
    assert compile(zoo.build("mobilenet_v2"), batch=1).chunk == 0
    assert compile(zoo.build("mobilenet_v2"), batch=8, input=(3, H, W)).chunk == 0
