"""Winograd convolution (F(2×2, 3×3) and F(4×4, 3×3)) against direct convolution in float64,
on every 3×3 stride-1 convolution shape of the zoo, and the cost model's choices.

Relative error is ``max|a − b| / max|b|``; the reference is the direct convolution of the
same float32 inputs and weights computed in float64.
"""
import functools
import types

import numpy as np
import pytest

from cnngraph import zoo
from cnngraph.compiler.algorithms import ALGORITHMS, WINOGRAD_TILE, choose_conv, winograd_ok
from cnngraph.backends import numba_backend as nb
from cnngraph.backends.numba_winograd import AT_MATRIX, BT_MATRIX, G_MATRIX
from cnngraph.compiler import compile
from cnngraph.compiler.plan import Step

# What each variant may cost in accuracy (docs/backends.md states the measured figures).
BOUND = {"im2col": 1e-5, "winograd2": 1e-5, "winograd4": 1e-4}


@functools.lru_cache(maxsize=1)
def zoo_3x3_shapes() -> list:
    """Distinct (C_in, C_out, H, W, padding) of the zoo's ungrouped 3×3 stride-1 convolutions
    at each model's default input."""
    shapes = set()
    for name in zoo.names():
        g = zoo.build(name)
        for _, d in g.nodes(data=True):
            if d["op"] != "conv2d":
                continue
            a = d["attrs"]
            cin, H, W = (int(s) for s in g.nodes[d["inputs"][0]]["shape"])
            k = dict(kh=a["kernel"][0], kw=a["kernel"][1], sh=a["stride"][0], sw=a["stride"][1],
                     dh=a["dilation"][0], dw=a["dilation"][1], groups=a["groups"])
            if winograd_ok({key: int(v) for key, v in k.items()}):
                shapes.add((cin, int(a["out_channels"]), H, W, tuple(int(p) for p in a["padding"])))
    return sorted(shapes)


def conv_step(cin, cout, H, W, pad, algorithm, act="relu"):
    t, l, b, r = pad
    Ho, Wo = H + t + b - 2, W + l + r - 2
    attrs = dict(kernel=(3, 3), stride=(1, 1), padding=pad, dilation=(1, 1), groups=1, out_channels=cout, bias=True)
    return Step("conv2d", "c", ["x"], "y", attrs, [(cin, H, W)], (cout, Ho, Wo),
                params={"weight": "c.weight", "bias": "c.bias"}, act1=act, algorithm=algorithm)


def direct64(x, w, bias, pad):
    """Direct convolution in float64: x (N, H, W, C_in) channels last, w (C_out, C_in, 3, 3)."""
    t, l, b, r = pad
    xp = np.pad(x.astype(np.float64), ((0, 0), (t, b), (l, r), (0, 0)))
    N, Hp, Wp, _ = xp.shape
    Ho, Wo = Hp - 2, Wp - 2
    y = np.zeros((N, Ho, Wo, w.shape[0]))
    w64 = w.astype(np.float64)
    for i in range(3):
        for j in range(3):
            win = np.ascontiguousarray(xp[:, i:i + Ho, j:j + Wo, :]).reshape(-1, x.shape[3])
            y += (win @ w64[:, :, i, j].T).reshape(y.shape)  # contiguous 2-D: BLAS
    return y + bias


def run_step(step, x, w, bias):
    rt = nb.runtime()
    plan = types.SimpleNamespace(weights={"c.weight": w, "c.bias": bias}, values={})
    fn = nb.build_conv2d(step, plan, rt)
    out = np.empty((x.shape[0],) + tuple(step.out_shape[1:]) + (step.out_shape[0],), np.float32)
    with rt.session():
        fn([x], out, None)
    return out


def rel_err(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


def test_matrices_compute_a_convolution():
    """Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A is the 3×3 correlation of each α×α patch (exact in float64)."""
    rng = np.random.default_rng(0)
    for m in (2, 4):
        a = m + 2
        d, g = rng.standard_normal((a, a)), rng.standard_normal((3, 3))
        y = AT_MATRIX[m] @ ((G_MATRIX[m] @ g @ G_MATRIX[m].T) * (BT_MATRIX[m] @ d @ BT_MATRIX[m].T)) @ AT_MATRIX[m].T
        ref = np.array([[(d[i:i + 3, j:j + 3] * g).sum() for j in range(m)] for i in range(m)])
        assert np.allclose(y, ref, atol=1e-12)


def test_every_zoo_3x3_shape_matches_direct_convolution():
    """Both Winograd variants (and im2col) on every 3×3 stride-1 shape of the zoo (tiles
    overhang the right and bottom edges), bias and ReLU fused."""
    shapes = zoo_3x3_shapes()
    assert len(shapes) > 50
    rng = np.random.default_rng(1)
    worst = {a: 0.0 for a in BOUND}
    for cin, cout, H, W, pad in shapes:
        x = rng.standard_normal((1, H, W, cin), dtype=np.float32)
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
        bias = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        ref = np.maximum(direct64(x, w, bias, pad), 0)
        for alg in BOUND:
            err = rel_err(run_step(conv_step(cin, cout, H, W, pad, alg), x, w, bias), ref)
            worst[alg] = max(worst[alg], err)
            assert err <= BOUND[alg], f"{alg} on {cin}→{cout} at {H}×{W} padding {pad}: {err:.1e}"
    assert worst["winograd4"] > worst["winograd2"]  # the larger tile trades accuracy for speed


def test_winograd_with_residual_into_its_own_buffer():
    """The epilogue's residual may share the output's buffer (a basic block's conv2); batch 2."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 9, 7, 16), dtype=np.float32)  # tiles of two images
    w = (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32)
    bias = np.zeros(16, np.float32)
    res = rng.standard_normal((2, 9, 7, 16), dtype=np.float32)
    ref = np.maximum(direct64(x, w, bias, (1, 1, 1, 1)) + res, 0)
    for alg in WINOGRAD_TILE:
        step = conv_step(16, 16, 9, 7, (1, 1, 1, 1), alg, act=None)
        step.residual, step.act2 = "r", "relu"
        rt = nb.runtime()
        fn = nb.build_conv2d(step, types.SimpleNamespace(weights={"c.weight": w, "c.bias": bias}), rt)
        out = res.copy()
        with rt.session():
            fn([x], out, out)
        assert rel_err(out, ref) <= 1e-5


def test_cost_model_choices_are_shown_and_valid():
    """Every conv step names an algorithm of the table and says why; Winograd only where it
    applies; ResNet-50's 56×56 3×3 convolutions take F(4×4) at batch 8."""
    p = compile(zoo.build("resnet50"), batch=8)
    convs = [s for s in p.steps if s.op == "conv2d"]
    assert all(s.algorithm in ALGORITHMS and s.why for s in convs)
    assert p.steps[[s.node for s in p.steps].index("layer1.0.conv2")].algorithm == "winograd4"
    for s in convs:
        if s.algorithm in WINOGRAD_TILE:
            assert tuple(s.attrs["kernel"]) == (3, 3) and tuple(s.attrs["stride"]) == (1, 1)
    k = dict(cin=64, cout=64, H=56, W=56, Ho=56, Wo=56, kh=3, kw=3, sh=1, sw=1, pt=1, pl=1, pb=1, pr=1, dh=1, dw=1,
             groups=1)
    c = choose_conv(k, 8)
    assert set(c.costs) == {"im2col", "implicit", "winograd2", "winograd4"}
    assert c.costs["winograd4"] < min(c.costs["im2col"], c.costs["implicit"])
    assert choose_conv({**k, "groups": 64, "cout": 64}, 1).algorithm == "depthwise"


def test_implicit_gemm_for_short_kernel_rows_only():
    """The implicit GEMM where im2col would copy short kernel rows value by value (stems of 3
    channels: 3×3 at stride 2, 7×7 at stride 2); im2col where its tiles are slice copies of
    many channels (ResNet-50's stride-2 3×3 and 1×1 convolutions)."""
    algo = {m: {s.node: s.algorithm for s in compile(zoo.build(m), batch=b).steps}
            for m, b in (("mobilenet_v2", 1), ("resnet50", 8))}
    assert algo["mobilenet_v2"]["features.0.0"] == "implicit"
    assert algo["resnet50"]["conv1"] == "implicit"
    assert algo["resnet50"]["layer2.0.conv2"] == algo["resnet50"]["layer3.0.downsample.0"] == "im2col"


@pytest.mark.parametrize("model", ["resnet18", "vgg11"])
def test_plans_with_winograd_match_im2col_plans(model):
    """Whole models: the plan's choices (Winograd where chosen) against im2col everywhere."""
    from cnngraph.compiler.weights import init

    g = zoo.build(model, input=(3, 64, 64))
    ws = init(g, seed=0, random_bn=True)
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64)).astype(np.float32)
    fast = compile(g, ws, batch=8)
    assert any(s.algorithm in WINOGRAD_TILE for s in fast.steps)
    plain = compile(g, ws, batch=8)
    for s in plain.steps:
        if s.algorithm in WINOGRAD_TILE:
            s.algorithm = "im2col"
    (a,), (b,) = nb.run(fast, x), nb.run(plain, x)
    assert rel_err(a, b.astype(np.float64)) <= 1e-4


@pytest.mark.parametrize("m", sorted(G_MATRIX))
def test_filter_transform_in_blocks_is_the_whole_transform(m):
    """U computed a few output channels at a time (bounded float64 temporaries) equals
    G g Gᵀ of every filter at once, and lands each output channel in its own column."""
    from cnngraph.backends.numba_winograd import filter_transform

    w = np.random.default_rng(m).standard_normal((37, 5, 3, 3)).astype(np.float32)
    Gm = G_MATRIX[m]
    ref = np.einsum("ai,ocij,bj->abco", Gm, w.astype(np.float64), Gm).reshape((m + 2) ** 2, 5, 37)
    for block in (1, 8, 64):
        U = filter_transform(w, m, block=block)
        assert U.shape == ((m + 2) ** 2, 5, 37) and U.dtype == np.float32
        np.testing.assert_allclose(U, ref, rtol=1e-6, atol=1e-6)
