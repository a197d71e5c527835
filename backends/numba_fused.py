"""Numba kernels of a step that nests the step before it: an inverted residual's 1×1
expansion computed together with its depthwise convolution
(:func:`cnngraph.compiler.plan.group_expansions`).

Why: the expansion multiplies a block's channels (6× in MobileNet v2), so its output is the
largest tensor of the block: 4.8 MB per image at MobileNet v2's 112×112 stage. Run as two
steps, it is written to memory and read back once; here each thread expands a band of rows
into a buffer of its own that stays in the core's L2 (our GEMM's micro-kernel, the
expansion's bias and activation applied in its epilogue), and the depthwise convolution
reads its rows from there (:func:`.numba_kernels.depthwise_rows`). A band of ``R`` output
rows needs ``(R − 1)·sh + kh`` expanded rows, so the rows a band shares with the next
(``kh − sh``) are expanded twice; :func:`band_rows` keeps that share small. The arithmetic of
each value is that of the two steps run apart (the same kernels, the same order of sums),
so the result is the same to the bit.

>>> import numpy as np
>>> from cnngraph.backends import numba_gemm as NG
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((1, 6, 5, 4)).astype(np.float32)        # NHWC, 4 channels
>>> we = rng.standard_normal((8, 4)).astype(np.float32)             # expansion 4 → 8
>>> wd = rng.standard_normal((3, 3, 8)).astype(np.float32)          # depthwise 3×3, (kh, kw, C)
>>> e = np.maximum(x @ we.T, 0)                                     # expansion, ReLU
>>> ep = np.pad(e, ((0, 0), (1, 1), (1, 1), (0, 0)))
>>> ref = sum(ep[:, i:i + 6, j:j + 5] * wd[i, j] for i in range(3) for j in range(3))
>>> out = np.empty((1, 6, 5, 8), np.float32)
>>> E1, E2, E3, E4 = (np.empty((0,) * d, np.float32) for d in (1, 2, 3, 4))
>>> R = 2
>>> buf = np.empty((1, band_rows(R, 3, 1, 1) * 5, 8), np.float32)
>>> expand_depthwise(3, 1, 3, R, x, NG.pack_conv(we.reshape(8, 4, 1, 1), 1), E1, 1,
...                  np.array([0, np.inf, -np.inf, np.inf], np.float32), wd, E3, E1, out, E4,
...                  3, 1, 1, 1, 1, 1, 1, 0, 0, buf, np.empty((1, 5 * 8), np.float32))
>>> bool(np.allclose(out, ref, rtol=1e-5, atol=1e-5))
True
"""
from __future__ import annotations

from . import numba_cache  # noqa: F401  - before numba: kernels cache in the user's cache folder
import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from . import numba_kernels as K  # noqa: E402
from .numba_gemm import JIT, claim, product  # noqa: E402

EMPTY2 = np.empty((0, 0), np.float32)


@njit(**JIT)
def band_rows(R, kh, sh, dh):
    """Expanded rows a band of ``R`` output rows reads (at most)."""
    return (R - 1) * sh + (kh - 1) * dh + 1


@njit(**JIT)
def expand_depthwise(n_items, workers, bands, R, x, bp, bias_e, a1e, clamps_e, wd, wrow, bias_d, out, res, kh, sh, sw,
                     pt, pl, dh, dw, a1d, a2d, buf, acc):
    """``out = depthwise(expand(x))`` in bands of ``R`` output rows: ``n_items`` = images ×
    ``bands`` work items claimed by ``workers`` threads (:func:`.numba_gemm.claim`). ``x`` is
    the NHWC input, ``bp`` the expansion's packed weights (:func:`.numba_gemm.pack_conv`) with
    its bias ``bias_e``, activation code ``a1e`` and clamps (:func:`.numba_gemm.product`);
    ``wd``, ``wrow``, ``bias_d``, ``res``, the geometry and codes are the depthwise
    convolution's (:func:`.numba_kernels.depthwise_rows`); ``buf`` ``(threads, rows·W, C)``
    holds a thread's expanded rows, ``acc`` ``(threads, Wo·C)`` its depthwise accumulator."""
    if workers > 1:
        _bands_parallel(n_items, workers, bands, R, x, bp, bias_e, a1e, clamps_e, wd, wrow, bias_d, out, res, kh, sh,
                        sw, pt, pl, dh, dw, a1d, a2d, buf, acc)
    else:
        for it in range(n_items):
            _band(it, bands, R, x, bp, bias_e, a1e, clamps_e, wd, wrow, bias_d, out, res, kh, sh, sw, pt, pl, dh, dw,
                  a1d, a2d, buf[0], acc[0])


@njit(parallel=True, **JIT)
def _bands_parallel(n_items, workers, bands, R, x, bp, bias_e, a1e, clamps_e, wd, wrow, bias_d, out, res, kh, sh, sw,
                    pt, pl, dh, dw, a1d, a2d, buf, acc):
    counter = np.zeros(1, np.int64)
    for _ in prange(min(n_items, workers)):
        tid = numba.get_thread_id()
        it = claim(counter, n_items)
        while it >= 0:
            _band(it, bands, R, x, bp, bias_e, a1e, clamps_e, wd, wrow, bias_d, out, res, kh, sh, sw, pt, pl, dh, dw,
                  a1d, a2d, buf[tid], acc[tid])
            it = claim(counter, n_items)


@njit(**JIT)
def _band(it, bands, R, x, bp, bias_e, a1e, clamps_e, wd, wrow, bias_d, out, res, kh, sh, sw, pt, pl, dh, dw, a1d, a2d,
          buf, acc):
    """Work item ``it``: image ``it // bands``, output rows of band ``it % bands``."""
    N, H, W, Ci = x.shape
    Ho = out.shape[1]
    C = buf.shape[1]
    n = it // bands
    oh0 = (it % bands) * R
    oh1 = min(Ho, oh0 + R)
    h0 = max(0, oh0 * sh - pt)  # the expanded rows the band reads: h0:h1
    h1 = min(H, (oh1 - 1) * sh - pt + (kh - 1) * dh + 1)
    rows = h1 - h0
    # the expansion of rows h0:h1 (contiguous in NHWC: one row-strided A of rows·W pixels)
    product(x.ctypes.data + (n * H + h0) * W * Ci * 4, Ci, Ci, 0, Ci, rows * W, bp[0], 0, bp.shape[1], buf, 0, 0, C,
            bias_e, EMPTY2, a1e, 0, clamps_e)
    # its depthwise convolution: the buffer is an image whose row 0 is row h0
    rn = res[n:n + 1] if res.shape[0] > 0 else res
    K.depthwise_rows(buf[:rows * W].reshape(1, rows, W, C), wd, wrow, bias_d, out[n:n + 1], oh0, oh1, sh, sw, pt + h0,
                     pl, dh, dw, rn, a1d, a2d, acc)
