"""The Numba backend's GEMM convolutions on both sides of their row thresholds: row tiles,
output-channel blocks, and the transposed narrow product ``W[c0:c1] @ xᵀ`` of few rows
(``TRANSPOSED_ROWS``) with ``epilogue_t``, each with a residual written into its own buffer
and a non-clamp activation, against a float64 direct convolution."""
from __future__ import annotations

import types

import numpy as np
import pytest

from cnngraph.backends import numba_backend as nb
from cnngraph.compiler.plan import Step


def conv64(x, w, bias, stride, pad):
    """Direct convolution in float64: x (N, H, W, C_in) channels last, w (C_out, C_in, kh, kw)."""
    kh, kw = w.shape[2:]
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    Ho = (xp.shape[1] - kh) // stride + 1
    Wo = (xp.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], Ho, Wo, w.shape[0]))
    for i in range(kh):
        for j in range(kw):
            win = xp[:, i:i + stride * (Ho - 1) + 1:stride, j:j + stride * (Wo - 1) + 1:stride, :]
            y += win @ w[:, :, i, j].astype(np.float64).T
    return y + bias


def silu(v):
    return v / (1 + np.exp(-v))


# (N, C_in, H, kernel, stride, pad, C_out): rows N·Ho·Wo from 4 to 2048, both sides of
# TRANSPOSED_ROWS (128) and of the row-tile threshold; 1×1 (weights used in place) and 3×3
# (packed rows), strided 1×1 (im2col of one tap).
SHAPES = [(1, 64, 2, 1, 1, 0, 96), (1, 256, 7, 1, 1, 0, 512), (2, 32, 7, 3, 1, 1, 300), (1, 128, 14, 1, 2, 0, 200),
          (2, 128, 12, 1, 1, 0, 96), (1, 96, 11, 3, 1, 1, 130), (4, 16, 16, 3, 1, 1, 64), (2, 24, 32, 1, 1, 0, 40)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_convolution_paths_match_float64(shape):
    N, cin, H, k, s, p, cout = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((N, H, H, cin), dtype=np.float32)
    w = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    Ho = (H + 2 * p - k) // s + 1
    res = rng.standard_normal((N, Ho, Ho, cout), dtype=np.float32)
    attrs = dict(kernel=(k, k), stride=(s, s), padding=(p, p, p, p), dilation=(1, 1), groups=1, out_channels=cout,
                 bias=True)
    y = conv64(x, w, bias, s, p)
    rows = N * Ho * Ho
    cases = (("silu", "relu", True, np.maximum(silu(y) + res, 0)), ("relu", None, False, np.maximum(y, 0) + res))
    for act1, act2, alias, ref in cases:
        algorithm = "gemm" if (k, s, p) == (1, 1, 0) else "im2col"
        step = Step("conv2d", "c", ["x"], "y", attrs, [(cin, H, H)], (cout, Ho, Ho),
                    params={"weight": "c.weight", "bias": "c.bias"}, act1=act1, algorithm=algorithm)
        step.residual, step.act2 = "r", act2
        # alias: the output overwrites its residual's buffer (a bottleneck's conv3)
        values = {"y": types.SimpleNamespace(slot=0), "r": types.SimpleNamespace(slot=0 if alias else 1)}
        plan = types.SimpleNamespace(weights={"c.weight": w, "c.bias": bias}, values=values)
        rt = nb.runtime()
        fn = nb.build_conv2d(step, plan, rt)
        out = res.copy() if alias else np.full_like(res, np.nan)
        with rt.session():
            fn([x], out, out if alias else res)
        err = float(np.abs(out - ref).max() / np.abs(ref).max())
        assert err <= 1e-5, f"{shape} ({rows} rows) {act1}/{act2}, alias {alias}: {err:.1e}"


def test_transposed_epilogue_reads_the_block_transposed():
    """epilogue_t: dst[r, c] = act2(act1(yt[c − c0, r − r0] + bias[c]) + res[r, c]) on its
    rows and columns only, exact for ReLU (no rounding beyond the adds)."""
    from cnngraph.backends.numba_kernels import epilogue_t

    rng = np.random.default_rng(0)
    yt = rng.standard_normal((5, 3), dtype=np.float32)  # columns 2:7 of rows 4:7
    bias = rng.standard_normal(9).astype(np.float32)
    res = rng.standard_normal((8, 9), dtype=np.float32)
    dst = np.full((8, 9), 7.0, np.float32)
    epilogue_t(yt, dst, 4, 7, 2, 7, bias, res, 1, 0)
    want = np.full((8, 9), 7.0, np.float32)
    want[4:7, 2:7] = np.maximum(yt.T + bias[2:7], 0) + res[4:7, 2:7]
    assert np.array_equal(dst, want)
