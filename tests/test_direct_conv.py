"""The direct convolution kernels of the Numba backend (``depthwise`` and ``grouped`` in
:mod:`cnngraph.compiler.algorithms`) against PyTorch's convolution in float64, on every
depthwise and grouped convolution shape of the zoo and on the geometries the zoo lacks
(dilation, asymmetric padding, channel multipliers, groups wider in than out, a residual
written into its own buffer).

Relative error is ``max|a − b| / max|b|``.
"""
import functools
import types

import numpy as np
import pytest

from cnngraph import zoo
from cnngraph.backends import numba_backend as nb
from cnngraph.compiler import compile
from cnngraph.compiler.plan import Step

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = 1e-5
MAX_SIDE = 16
ACTS = {None: lambda y: y, "relu": F.relu, "relu6": F.relu6, "silu": F.silu}


@functools.lru_cache(maxsize=1)
def zoo_grouped_shapes() -> list:
    """Distinct geometries of the zoo's grouped and depthwise convolutions at each model's
    default input: (C_in, C_out, H, W, kernel, stride, padding, dilation, groups), the image
    cropped to at most MAX_SIDE (every border case stays, the run stays short)."""
    shapes = set()
    for name in zoo.names():
        g = zoo.build(name)
        for _, d in g.nodes(data=True):
            a = d.get("attrs") or {}
            if d["op"] != "conv2d" or int(a["groups"]) == 1:
                continue
            cin, H, W = (int(s) for s in g.nodes[d["inputs"][0]]["shape"])
            shapes.add((cin, int(a["out_channels"]), min(H, MAX_SIDE), min(W, MAX_SIDE), tuple(map(int, a["kernel"])), tuple(map(int, a["stride"])),
                        tuple(map(int, a["padding"])), tuple(map(int, a["dilation"])), int(a["groups"])))
    return sorted(shapes)


def conv_step(cin, cout, H, W, kernel, stride, pad, dil, groups, algorithm, act):
    t, l, b, r = pad
    Ho = (H + t + b - dil[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    Wo = (W + l + r - dil[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    attrs = dict(kernel=kernel, stride=stride, padding=pad, dilation=dil, groups=groups, out_channels=cout, bias=True)
    return Step("conv2d", "c", ["x"], "y", attrs, [(cin, H, W)], (cout, Ho, Wo),
                params={"weight": "c.weight", "bias": "c.bias"}, act1=act, algorithm=algorithm)


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


def reference(x, w, bias, step, res=None, act2=None):
    """PyTorch in float64: x channels last (N, H, W, C); returns channels last."""
    a = step.attrs
    t, l, b, r = a["padding"]
    xt = F.pad(torch.from_numpy(x).double().permute(0, 3, 1, 2), (l, r, t, b))
    y = F.conv2d(xt, torch.from_numpy(w).double(), torch.from_numpy(bias).double(), stride=a["stride"],
                 dilation=a["dilation"], groups=a["groups"])
    y = ACTS[step.act1](y)
    if res is not None:
        y = ACTS[act2](y + torch.from_numpy(res).double().permute(0, 3, 1, 2))
    return y.permute(0, 2, 3, 1).numpy()


def run_step(step, x, w, bias, res=None):
    rt = nb.runtime()
    plan = types.SimpleNamespace(weights={"c.weight": w, "c.bias": bias}, values={})
    fn = nb.build_conv2d(step, plan, rt)
    out = np.empty((x.shape[0],) + tuple(step.out_shape[1:]) + (step.out_shape[0],), np.float32)
    if res is not None:
        out[...] = res  # the residual in the output's own buffer
    with rt.session():
        fn([x], out, out if res is not None else None)
    return out


def check(cin, cout, H, W, kernel, stride, pad, dil, groups, act="relu6", batch=1, residual=False, seed=0):
    algorithm = "depthwise" if cin == groups else "grouped"
    step = conv_step(cin, cout, H, W, kernel, stride, pad, dil, groups, algorithm, act)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, H, W, cin), dtype=np.float32)
    w = (rng.standard_normal((cout, cin // groups) + kernel) / np.sqrt(cin // groups * kernel[0] * kernel[1]))
    w = w.astype(np.float32)
    bias = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    res = None
    if residual:
        step.residual, step.act2 = "r", "relu"
        res = rng.standard_normal((batch,) + tuple(step.out_shape[1:]) + (cout,), dtype=np.float32)
    ref = reference(x, w, bias, step, res, "relu")
    err = float(np.abs(run_step(step, x, w, bias, res) - ref).max() / np.abs(ref).max())
    assert err <= TOL, f"{algorithm} {cin}→{cout} groups {groups} at {H}×{W}, kernel {kernel}, stride {stride}: {err:.1e}"
    return algorithm


def test_every_zoo_grouped_and_depthwise_shape():
    """Each distinct depthwise/grouped geometry of the zoo, forced onto the direct kernels."""
    shapes = zoo_grouped_shapes()
    algorithms = [check(*s, act="relu6") for s in shapes]
    assert algorithms.count("depthwise") > 30 and algorithms.count("grouped") > 10


@pytest.mark.parametrize("geometry", [
    # cin, cout, H, W, kernel, stride, padding (t, l, b, r), dilation, groups
    (16, 16, 9, 11, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16),   # depthwise, whole-row path
    (160, 160, 9, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 160),  # depthwise, per-pixel path
    (24, 24, 10, 10, (5, 5), (2, 2), (1, 2, 2, 1), (1, 1), 24),   # 5×5 stride 2, asymmetric padding
    (8, 8, 12, 12, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 8),      # dilated depthwise
    (8, 8, 6, 6, (7, 7), (1, 1), (3, 3, 3, 3), (1, 1), 8),        # a kernel with no interior fast path
    (8, 24, 7, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8),       # channel multiplier 3
    (32, 32, 9, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8),      # 4 channels per group
    (48, 48, 10, 9, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 8),     # 6 per group (not a multiple of 4), stride 2
    (12, 24, 8, 8, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 4),      # dilated, 3 in and 6 out per group
    (24, 12, 8, 8, (5, 3), (1, 2), (2, 1, 1, 0), (1, 1), 3),      # non-square, wider in than out
])
@pytest.mark.parametrize("act", [None, "silu"])
def test_direct_kernels_geometries(geometry, act):
    check(*geometry, act=act, batch=2)


@pytest.mark.parametrize("geometry", [(16, 16, 9, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16),
                                      (32, 32, 9, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8)])
def test_residual_into_its_own_buffer(geometry):
    check(*geometry, act="relu", batch=2, residual=True)


def test_every_zoo_grouped_shape_with_residual_and_activations():
    """Each grouped (not depthwise) geometry of the zoo — strides 1 and 2, paddings 0-2,
    3×3 and 5×5 kernels, 3 to 192 channels per group, in = out or not — with SiLU, a residual
    and ReLU after it (the epilogue outside the micro-kernel), batch 2 (rows of two samples)."""
    shapes = [s for s in zoo_grouped_shapes() if s[0] != s[-1]]
    cgs = {s[0] // s[-1] for s in shapes}
    assert {3, 4, 8, 16, 32, 64} <= cgs  # cg = 2: test_grouped_packing_modes_and_row_chunks
    for s in shapes:
        check(*s, act="silu", batch=2, residual=True, seed=1)


def direct_grouped(x, w, bias, groups, stride, pad, mode, R, ranges, act=0, block_parts=1):
    """numba_kernels.grouped_rows called directly with a forced packing mode, R output rows at
    a time, the output rows split into ``ranges`` calls and the blocks into ``block_parts``."""
    from cnngraph.backends import numba_grouped as GP
    from cnngraph.backends import numba_kernels as K

    N, H, W, cin = x.shape
    cout, cg, kh, kw = w.shape
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    Wp = max(W + pad, (Wo - 1) * stride + kw)
    ps = GP.pixel_stride(cin)
    rowlen = Wp * ps
    pk = GP.pack(w, groups, kh, kw, 1, 1, rowlen, bias, mode, pixel=ps)
    out = np.full((N, Ho, Wo, cout), np.nan, np.float32)
    xp = np.empty(((R - 1) * stride + kh) * rowlen, np.float32)
    acc = np.empty(R * Wo * cout, np.float32)
    cuts = np.linspace(0, N * Ho, ranges + 1).astype(int)
    nblocks = len(pk.blocks)
    for t0, t1 in zip(cuts[:-1], cuts[1:]):
        for q in range(block_parts):
            K.grouped_rows(x, pk.wp, pk.bias, out, t0, t1, stride, stride, pad, pad, 1, 1, nb.EMPTY4, act, 0,
                           pk.blocks, pk.koff, xp, acc, int(pk.mode == "shuffle"), pk.nv, cg, kh, rowlen, ps, R,
                           q * nblocks // block_parts, (q + 1) * nblocks // block_parts)
    return out


@pytest.mark.parametrize("cg", [2, 4, 8])
@pytest.mark.parametrize("mode", ["shuffle", "broadcast"])
def test_grouped_packing_modes_and_row_chunks(cg, mode):
    """Narrow groups (cg = og) by register shuffles and by broadcast into masked vectors give
    the same convolution; chunks of 1 or 3 rows and ranges that cut rows of a sample apart
    (t0:t1 not at sample boundaries), and blocks of output channels split between calls,
    write every output exactly once."""
    rng = np.random.default_rng(cg)
    C, groups = 32 * 2, 32 * 2 // cg
    x = rng.standard_normal((3, 7, 9, C), dtype=np.float32)
    w = rng.standard_normal((C, cg, 3, 3), dtype=np.float32)
    bias = rng.standard_normal(C, dtype=np.float32)
    step = conv_step(C, C, 7, 9, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), groups, "grouped", "relu")
    ref = reference(x, w, bias, step)
    for R, ranges, parts in [(1, 1, 1), (3, 4, 1), (7, 5, 1), (4, 1, 2)]:
        y = direct_grouped(x, w, bias, groups, 2, 1, mode, R, ranges, act=1, block_parts=parts)
        assert np.abs(y - ref).max() / np.abs(ref).max() <= TOL, (R, ranges, parts)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("residual", [False, True])
def test_grouped_threads_split_rows_or_channels(threads, residual, monkeypatch):
    """On one thread the whole batch in one call; on two, a small image's output channels split
    between the threads (fused ReLU) or its rows (a residual: the epilogue needs every channel)."""
    monkeypatch.setenv("CNNGRAPH_NUM_THREADS", str(threads))
    check(256, 256, 7, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 32, act="relu", batch=1, residual=residual)
    check(128, 128, 9, 9, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 32, act=None, batch=2, residual=residual)


def test_cost_model_counts_the_lanes_the_kernel_packs():
    """The cost model's lane count (cnngraph.compiler.algorithms.grouped_lanes) is what the
    Numba packing computes, on every grouped geometry of the zoo."""
    from cnngraph.backends import numba_grouped as GP
    from cnngraph.compiler.algorithms import grouped_lanes

    for cin, cout, H, W, kernel, stride, pad, dil, groups in zoo_grouped_shapes():
        if cin == groups:
            continue
        cg, og = cin // groups, cout // groups
        w = np.zeros((cout, cg) + kernel, np.float32)
        pk = GP.pack(w, groups, *kernel, *dil, row=W * cin)
        lanes = len(pk.blocks) * pk.nv * GP.VL
        assert lanes == groups * grouped_lanes(cg, og), (cin, cout, groups, pk.mode)
        assert pk.blocks[:, 2].sum() == cout  # every output channel in exactly one block


def test_plans_choose_the_grouped_kernel_for_narrow_groups():
    """ResNeXt-50 32×4d and ResNeXt-101 32×8d: the direct kernel for every grouped 3×3 layer
    (4 to 64 channels per group, stride 1 and 2) at batch 1 and 8, where it measured faster
    than per-group GEMMs (docs/backends.md), and the plan says why (both costs)."""
    from cnngraph.compiler.algorithms import choose_conv, conv_geometry

    for model in ("resnext50_32x4d", "resnext101_32x8d"):
        for batch in (1, 8):
            p = compile(zoo.build(model), batch=batch)
            steps = [s for s in p.steps if s.op == "conv2d" and s.attrs["groups"] > 1]
            assert {s.algorithm for s in steps} == {"grouped"}, (model, batch)
            c = choose_conv(conv_geometry(steps[0]), batch)
            assert c.costs["grouped"] < c.costs["im2col"] and "im2col" in steps[0].why
