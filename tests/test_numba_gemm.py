"""The Numba backend's own GEMM (backends/numba_gemm.py) against float64: the micro-kernel's
row, column and k tails, row-strided operands, and the GEMM convolutions on both sides of
their tiling thresholds (row tiles of GEMM_ROWS, output columns split when there are few row
tiles, k in blocks of KC, groups side by side), each with a residual written into its own
buffer or overwritten in place and a non-clamp activation."""
from __future__ import annotations

import itertools
import types

import numpy as np
import pytest

from cnngraph.backends import numba_backend as nb
from cnngraph.compiler.plan import Step


def conv64(x, w, bias, stride, pad, dil=1):
    """Direct convolution in float64: x (N, H, W, C_in) channels last, w (C_out, C_in, kh, kw),
    vertical dilation ``dil``."""
    kh, kw = w.shape[2:]
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    Ho = (xp.shape[1] - (kh - 1) * dil - 1) // stride + 1
    Wo = (xp.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], Ho, Wo, w.shape[0]))
    for i in range(kh):
        for j in range(kw):
            win = xp[:, i * dil:i * dil + stride * (Ho - 1) + 1:stride, j:j + stride * (Wo - 1) + 1:stride, :]
            y += win @ w[:, :, i, j].astype(np.float64).T
    return y + bias


def silu(v):
    return v / (1 + np.exp(-v))


# (N, C_in, H, kernel, stride, pad, C_out, groups): rows N·Ho·Wo from 4 to 2048 (one row tile,
# a few, many; column splits below GEMM_ITEMS_PER_THREAD row tiles per thread); 1×1 (input rows
# read in place) and 3×3 (im2col tiles), strided 1×1 (im2col of one tap); k = kh·kw·C_in/G
# below and above KC (256); C_out/G not a multiple of NR (32); grouped 1×1 and 3×3.
SHAPES = [(1, 64, 2, 1, 1, 0, 96, 1), (1, 256, 7, 1, 1, 0, 512, 1), (2, 32, 7, 3, 1, 1, 300, 1),
          (1, 128, 14, 1, 2, 0, 200, 1), (2, 128, 12, 1, 1, 0, 96, 1), (1, 96, 11, 3, 1, 1, 130, 1),
          (4, 16, 16, 3, 1, 1, 64, 1), (2, 24, 32, 1, 1, 0, 40, 1), (1, 300, 9, 3, 1, 1, 33, 1),
          (2, 64, 9, 1, 1, 0, 96, 4), (1, 48, 10, 3, 2, 1, 72, 3), (3, 3, 21, 7, 2, 3, 64, 1),
          # the implicit GEMM's cases: a stem of 3 channels (odd size, Wo = 12), stride 3 with a
          # 5×5 kernel, wide rows (Wo = 33 > GEMM_ROWS / 2), many channels at stride 2 (few rows:
          # columns split), vertical dilation (kernel rows two image rows apart), no padding
          (1, 3, 23, 3, 2, 1, 32, 1), (2, 5, 17, 5, 3, 2, 40, 1), (1, 8, 33, 3, 1, 1, 20, 1),
          (1, 300, 9, 3, 2, 1, 70, 1), (2, 6, 13, 3, 1, 2, 24, 1, 2), (2, 7, 11, 3, 2, 0, 16, 1)]


def _algorithms(k, s, p, G):
    """The GEMM algorithms that apply (the cost model may prefer another; each is tested)."""
    if (k, s, p) == (1, 1, 0):
        return ["gemm"]
    return ["im2col", "implicit"] if G == 1 else ["im2col"]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_convolution_paths_match_float64(shape):
    N, cin, H, k, s, p, cout, G = shape[:8]
    d = shape[8] if len(shape) > 8 else 1  # vertical dilation
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((N, H, H, cin), dtype=np.float32)
    w = (rng.standard_normal((cout, cin // G, k, k)) / np.sqrt(cin * k * k / G)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    Ho = (H + 2 * p - (k - 1) * d - 1) // s + 1
    Wo = (H + 2 * p - k) // s + 1
    res = rng.standard_normal((N, Ho, Wo, cout), dtype=np.float32)
    attrs = dict(kernel=(k, k), stride=(s, s), padding=(p, p, p, p), dilation=(d, 1), groups=G, out_channels=cout,
                 bias=True)
    og = cout // G
    y = np.concatenate([conv64(x[..., g * (cin // G):(g + 1) * (cin // G)], w[g * og:(g + 1) * og], 0, s, p, d)
                        for g in range(G)], axis=-1) + bias
    rows = N * Ho * Wo
    # (act1, act2, residual: "alias" overwrites the output's buffer, "own" its own buffer, None)
    cases = (("silu", "relu", "alias", np.maximum(silu(y) + res, 0)), ("relu", None, "own", np.maximum(y, 0) + res),
             ("silu", None, None, silu(y)), ("relu6", None, None, np.clip(y, 0, 6)))
    for (act1, act2, residual, ref), algorithm in itertools.product(cases, _algorithms(k, s, p, G)):
        alias = residual == "alias"
        step = Step("conv2d", "c", ["x"], "y", attrs, [(cin, H, H)], (cout, Ho, Wo),
                    params={"weight": "c.weight", "bias": "c.bias"}, act1=act1, algorithm=algorithm)
        step.residual, step.act2 = ("r" if residual else None), act2
        # alias: the output overwrites its residual's buffer (a bottleneck's conv3)
        values = {"y": types.SimpleNamespace(slot=0), "r": types.SimpleNamespace(slot=0 if alias else 1)}
        plan = types.SimpleNamespace(weights={"c.weight": w, "c.bias": bias}, values=values)
        rt = nb.runtime()
        fn = nb.build_conv2d(step, plan, rt)
        out = res.copy() if alias else np.full_like(res, np.nan)
        with rt.session():
            fn([x], out, (out if alias else res) if residual else None)
        err = float(np.abs(out - ref).max() / np.abs(ref).max())
        assert err <= 1e-5, f"{shape} {algorithm} ({rows} rows) {act1}/{act2}, alias {alias}: {err:.1e}"



@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 3, 31), (8, 256, 32), (9, 257, 33), (17, 600, 100), (64, 40, 64),
                                   (3, 513, 5)])
def test_gemm_tails_and_k_blocks(m, k, n):
    """gemm = a · wᵀ for rows below and past MR (8), columns past NR (32), k past KC (256)."""
    from cnngraph.backends import numba_gemm as G

    rng = np.random.default_rng(m * k * n)
    a = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    c = np.full((m, n), np.nan, np.float32)
    G.gemm(a, G.pack_b(w), c)
    ref = a.astype(np.float64) @ w.T.astype(np.float64)
    assert np.abs(c - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max()) * np.sqrt(k)


def test_gemm_block_reads_a_strided_window_and_writes_its_block_only():
    """gemm_block reads rows ar0.. and columns ac0..ac0+K of a wider matrix in place and writes
    only rows cr0..cr0+m and columns cc0..cc0+n of its output (masked stores: the Winograd,
    grouped and fused-output paths rely on it), through the clamp epilogue with a bias and a
    residual that is the output itself."""
    from cnngraph.backends import numba_gemm as G

    rng = np.random.default_rng(3)
    a = rng.standard_normal((30, 100), dtype=np.float32)
    w = rng.standard_normal((40, 37), dtype=np.float32)  # K = 37 columns of a, from column 11
    bp = G.pack_b(w)
    c = np.full((16, 3 * G.NR), 5.0, np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    # rows 4:14 of a, column block 1 of w (its 8 columns 32:40) into c[2:12, 20:28], ReLU6, + c, ReLU
    G.gemm_block(a, 4, 11, 37, 10, bp, 1, 2, c, 2, 20, 8, bias, c, 0.0, 6.0, 0.0, np.inf)
    ref = a[4:14, 11:48].astype(np.float64) @ w[G.NR:].T.astype(np.float64) + bias
    want = np.full_like(c, 5.0)
    want[2:12, 20:28] = np.clip(ref, 0, 6) + 5.0
    assert np.allclose(c, want, atol=1e-4)


def test_microkernel_clamps_propagate_nan():
    """The epilogue's clamps keep NaN (as torch.relu does) instead of turning it into a bound."""
    from cnngraph.backends import numba_gemm as G

    a = np.array([[np.nan, 1.0], [-2.0, 1.0]], np.float32)
    w = np.array([[1.0, 1.0]], np.float32)
    c = np.zeros((2, 1), np.float32)
    G.gemm_block(a, 0, 0, 2, 2, G.pack_b(w), 0, 1, c, 0, 0, 1, G.EMPTY1, G.EMPTY2, 0.0, 6.0, -np.inf, np.inf)
    assert np.isnan(c[0, 0]) and c[1, 0] == 0.0
