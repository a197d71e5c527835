"""The Numba backend's depthwise kernels (``depthwise_rows``: the 16-lane blocked 3×3 / 5×5
kernels of stride 1 and 2, and the general ``depthwise_rows_any``; ``depthwise`` for channel
multipliers) against a float64 NumPy reference, on every geometry they branch on: kernel 3
and 5 (and 1, 7, non-square: the general kernel), stride 1 and 2 (and 3), padding none,
symmetric, asymmetric and wider than the kernel's half, widths from 1 to 19 (fewer pixels
than a block of 4, a block plus a remainder, only edge pixels), channel counts below, at and
between multiples of 16 (masked last block), each fused activation of the kernel table, a
residual (also written into its own buffer) with a second activation, batch 2 and output-row
ranges that split samples. Relative error is ``max|a − b| / max(1, max|b|)``.
"""
import itertools

import numpy as np
import pytest

from cnngraph.backends import numba_kernels as K
from cnngraph.ir.ops import act_code

E1 = np.empty(0, np.float32)
E3 = np.empty((0, 0, 0), np.float32)
E4 = np.empty((0, 0, 0, 0), np.float32)
TOL = 1e-5

ACT64 = {None: lambda y: y, "relu": lambda y: np.maximum(y, 0), "relu6": lambda y: np.clip(y, 0, 6),
         "silu": lambda y: y / (1 + np.exp(-y)), "hardswish": lambda y: y * np.clip(y + 3, 0, 6) / 6,
         "sigmoid": lambda y: 1 / (1 + np.exp(-y))}


def reference(x, w, bias, k, s, pad, mult=1, res=None, act1=None, act2=None):
    """Depthwise convolution in float64: x (N, H, W, C), w (k_h, k_w, C·mult), pad (t, l, b, r)."""
    N, H, W, C = x.shape
    kh, kw = w.shape[:2]
    t, l, b, r = pad
    xp = np.zeros((N, H + t + b, W + l + r, C))
    xp[:, t:t + H, l:l + W] = x
    xp = np.repeat(xp, mult, axis=3)  # output channel c reads input channel c // mult
    Ho, Wo = (H + t + b - kh) // s + 1, (W + l + r - kw) // s + 1
    y = np.zeros((N, Ho, Wo, C * mult)) + (bias if bias.size else 0)
    for i, j in itertools.product(range(kh), range(kw)):
        y += xp[:, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s] * w[i, j].astype(np.float64)
    y = ACT64[act1](y)
    if res is not None:
        y = ACT64[act2](y + res)
    return y


def run(x, w, bias, k, s, pad, mult=1, res=None, act1=None, act2=None, split=None, alias=False):
    """The kernel over all output rows, in two row ranges (``split``) when given."""
    N, H, W, C = x.shape
    kh, kw = w.shape[:2]
    t, l, b, r = pad
    Ho, Wo = (H + t + b - kh) // s + 1, (W + l + r - kw) // s + 1
    out = np.full((N, Ho, Wo, C * mult), np.nan, np.float32)
    rr = E4
    if res is not None:
        rr = res.astype(np.float32)
        if alias:
            out[...] = rr
            rr = out
    acc = np.empty(Wo * C * mult, np.float32)
    T = N * Ho
    assert split is None or 0 < split < T
    cuts = [0, T] if split is None else [0, split, T]
    for t0, t1 in zip(cuts, cuts[1:]):
        if mult == 1:
            K.depthwise_rows(x, w, E3, bias, out, t0, t1, s, s, t, l, 1, 1, rr, act_code(act1), act_code(act2), acc)
        else:
            K.depthwise(x, w, bias, out, t0, t1, mult, s, s, t, l, 1, 1, rr, act_code(act1), act_code(act2))
    return out


def check(C, H, W, k, s, pad, mult=1, act1="relu6", residual=False, act2=None, bias=True, split=None, alias=False,
          seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, H, W, C), dtype=np.float32)
    kh, kw = (k, k) if isinstance(k, int) else k
    w = (rng.standard_normal((kh, kw, C * mult)) / np.sqrt(kh * kw)).astype(np.float32)
    b = (rng.standard_normal(C * mult) * 0.5).astype(np.float32) if bias else E1
    t, l, bt, r = pad
    Ho, Wo = (H + t + bt - kh) // s + 1, (W + l + r - kw) // s + 1
    res = rng.standard_normal((2, Ho, Wo, C * mult)).astype(np.float32) if residual else None
    ref = reference(x, w, b, k, s, pad, mult, res, act1, act2)
    got = run(x, w, b, k, s, pad, mult, res, act1, act2, split, alias)
    assert got.shape == ref.shape
    err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1.0))
    assert err <= TOL, f"C={C} {H}×{W} k={k} s={s} pad={pad} mult={mult} {act1}/{act2}: {err:.1e}"


# the blocked kernels: every (kernel, stride) they take, widths around the 4-pixel block and the edges
@pytest.mark.parametrize("k,s", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_blocked_kernels_every_width_and_channel_count(k, s):
    p = k // 2
    # narrow rows with many edge pixels: zero-padded row copies; others: edges peeled
    for W in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 14, 19, 34, 39):
        for C in (1, 7, 16, 24, 40):
            check(C, 5, W, k, s, (p, p, p, p), seed=W * 100 + C)


@pytest.mark.parametrize("k,s", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_blocked_kernels_paddings(k, s):
    for pad in [(0, 0, 0, 0), (1, 2, 2, 1), (0, k - 1, k - 1, 0), (k, k, k, k), (2, 0, 1, 3)]:
        for H, W in [(6, 9), (9, 6), (5, 17), (6, 41)]:
            check(24, H, W, k, s, pad, seed=H * W)


@pytest.mark.parametrize("act1", list(ACT64))
def test_blocked_kernels_each_activation_and_residual(act1):
    for k, s in [(3, 1), (5, 2)]:
        p = k // 2
        check(40, 8, 11, k, s, (p, p, p, p), act1=act1, bias=act1 != "relu")
        check(40, 5, 37, k, s, (p, p, p, p), act1=act1, residual=True, act2="relu6")
        check(40, 8, 11, k, s, (p, p, p, p), act1=act1, residual=True, act2="relu", split=5)
        check(24, 7, 7, k, s, (p, p, p, p), act1=act1, residual=True, act2=act1, alias=True)


def test_row_ranges_split_samples():
    for split in (1, 3, 7, 8, 11):  # 8 output rows a sample: ranges inside one and across two
        check(24, 8, 10, 3, 1, (1, 1, 1, 1), split=split)
        check(24, 16, 40, 3, 2, (1, 1, 1, 1), split=split)
        check(24, 16, 10, 5, 2, (2, 2, 2, 2), split=split)


def test_general_kernel_and_multiplier():
    """Geometries outside the blocked kernels: other kernel sizes, stride 3, non-square
    kernels, channel multipliers (``depthwise``)."""
    for k, s, pad in [(1, 1, (0, 0, 0, 0)), (7, 1, (3, 3, 3, 3)), (3, 3, (1, 1, 1, 1)), ((3, 5), 1, (1, 2, 1, 2)),
                      ((5, 3), 2, (2, 1, 2, 1))]:
        for C in (7, 16, 40):
            check(C, 9, 10, k, s, pad)
    for mult, k, s in [(2, 3, 1), (3, 5, 2)]:
        check(7, 9, 10, k, s, (k // 2,) * 4, mult=mult, residual=True, act2="relu6")


def test_blocked_kernels_outputs_every_value():
    """No output value is left unwritten (the output starts as NaN) and inputs outside the
    image are zeros, not what lies next to the row in memory: a padded image whose padding
    is huge values gives the same result as the unpadded one (narrow and wide rows)."""
    rng = np.random.default_rng(3)
    for W in (9, 40):
        x = rng.standard_normal((1, 6, W, 24), dtype=np.float32)
        big = np.full((1, 8, W + 2, 24), 1e30, np.float32)
        big[:, 1:7, 1:W + 1] = x
        w = rng.standard_normal((3, 3, 24), dtype=np.float32)
        a = run(x, w, E1, 3, 1, (1, 1, 1, 1))
        b = run(big[:, 1:7, 1:W + 1].copy(), w, E1, 3, 1, (1, 1, 1, 1))
        assert np.isfinite(a).all() and np.array_equal(a, b)


@pytest.mark.parametrize("k,s", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_blocked_kernels_large_input_prefetch(k, s):
    """Inputs above K.DW_PREFETCH_BYTES take the path that prefetches the next output row's
    input rows (72 channels: a masked last block; row ranges ending inside a sample and
    crossing into the next one; a residual)."""
    C, H, W = 72, 150, 150
    assert 2 * H * W * C * 4 > K.DW_PREFETCH_BYTES
    p = k // 2
    Ho = (H + 2 * p - k) // s + 1
    check(C, H, W, k, s, (p, p, p, p), split=Ho + 3, seed=k * 10 + s)
    check(C, H, W, k, s, (p, p, p, p), act1="silu", residual=True, act2="relu", split=Ho - 1)
