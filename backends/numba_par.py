"""Parallel drivers of the Numba backend: each step's rows split into chunks, one ``prange``.

Every driver here is a Numba ``parallel=True`` function over ``parts`` chunks of a range of
rows; each chunk calls the single-threaded row-range kernel of :mod:`.numba_kernels` on its rows ``[total·c/parts, total·(c+1)/parts)``. With
``parts == 1`` the driver calls the kernel on the whole range itself, with no parallel region
(a region costs a few microseconds on OpenMP, far more than a step of a few thousand element
operations). :func:`chunks` picks ``parts``: one chunk per thread, each of at least
:data:`MIN_CHUNK_WORK` element operations. Numba hands a ``prange``'s iterations out
statically (each thread an equal, contiguous share, measured on OpenMP with and without
``numba.parallel_chunksize``), so more chunks than threads balance nothing and a number of
chunks that is not a multiple of the threads' leaves one thread more work. The threads are Numba's threading layer's
(:mod:`.numba_threads`).

Kernels that need scratch memory (a depthwise or grouped convolution's accumulator and
padded input rows) get one block per thread: a ``(threads, …)`` array indexed by
``numba.get_thread_id()`` (:class:`Scratch` keeps them, grown on demand).

>>> import numpy as np
>>> x = np.arange(-6, 6, dtype=np.float32).reshape(4, 3)
>>> y = np.empty_like(x)
>>> e = np.empty(0, np.float32)
>>> epilogue(2, x, y, 4, 3, e, e, np.empty((0, 0), np.float32), 1, 0, np.float32(0))  # ReLU, 2 chunks
>>> y.tolist()
[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from . import numba_threads  # chooses the threading layer before the first launch
from . import numba_kernels as K
from .numba_kernels import JIT

PAR = dict(JIT, parallel=True)

# A chunk of an element-wise, pooling or direct-convolution step has at least this many
# element operations (tens of microseconds), or the step runs on the calling thread alone.
MIN_CHUNK_WORK = 1 << 15
CHUNKS_PER_THREAD = 1  # Numba schedules a prange statically: see above


def chunks(total: int, work: int = 1, grain: int = 1) -> int:
    """How many chunks to split ``total`` rows of ``work`` element operations each into:
    :data:`CHUNKS_PER_THREAD` per thread of this Python thread's Numba thread count, fewer
    when a chunk would have less than ``grain`` rows or :data:`MIN_CHUNK_WORK` operations;
    1 (no parallel region) when there is one thread or too little work.

    >>> chunks(10, work=100)  # 1,000 operations: one chunk
    1
    """
    threads = numba_threads.threads()
    if threads == 1:
        return 1
    grain = max(grain, MIN_CHUNK_WORK // max(work, 1), 1)
    return max(1, min(CHUNKS_PER_THREAD * threads, total // grain))


class Scratch:
    """Scratch arrays of one executor, by name: ``get(key, shape)`` is a ``(threads,) + shape``
    float32 array (reused, grown when too small); ``threads`` is this Python thread's Numba
    thread count, so ``numba.get_thread_id()`` indexes it in a region. One per executor, so
    executors may run at once on several Python threads.

    >>> s = Scratch()
    >>> s.get("acc", (5,)).shape[1:]
    (5,)
    """

    def __init__(self):
        self.bufs: dict = {}

    def get(self, key: str, shape) -> np.ndarray:
        return self.one(key, (numba_threads.threads(),) + tuple(shape))

    def one(self, key: str, shape) -> np.ndarray:
        """One float32 array of ``shape`` (not per thread), reused, grown when too small."""
        shape = tuple(int(s) for s in shape)
        size = math.prod(shape)
        buf = self.bufs.get(key)
        if buf is None or buf.size < size:
            buf = self.bufs[key] = np.empty(max(size, 1), np.float32)
        return buf[:size].reshape(shape)


# ---------------------------------------------------------------- element-wise
@njit(**PAR)
def epilogue(parts, src, dst, R, C, scale, bias, res, a1, a2, p1):
    """``dst = act2(act1(src·scale + bias, p1) + res)`` on R rows of C channels (2-D arrays;
    empty ``scale``/``bias``/``res`` are left out): :func:`.numba_kernels.epilogue`."""
    if parts == 1:
        K.epilogue(src, False, dst, 0, R, 0, C, scale, bias, res, a1, a2, p1)
        return
    for c in prange(parts):
        K.epilogue(src, False, dst, c * R // parts, (c + 1) * R // parts, 0, C, scale, bias, res, a1, a2, p1)


@njit(**PAR)
def mul_bcast(parts, x, s, out, R, hw):
    """``out = x · s`` per channel and sample (:func:`.numba_kernels.mul_bcast`)."""
    if parts == 1:
        K.mul_bcast(x, s, out, 0, R, hw)
        return
    for c in prange(parts):
        K.mul_bcast(x, s, out, c * R // parts, (c + 1) * R // parts, hw)


@njit(**PAR)
def prelu(parts, x, out, R, slope):
    """:func:`.numba_kernels.prelu_rows` over R rows."""
    if parts == 1:
        K.prelu_rows(x, out, 0, R, slope)
        return
    for c in prange(parts):
        K.prelu_rows(x, out, c * R // parts, (c + 1) * R // parts, slope)


# ---------------------------------------------------------------- pooling, resize
@njit(**PAR)
def to_channels_last(parts, x, out):
    """``out[n, h, w, c] = x[n, c, h, w]``: a batch in PyTorch layout into a channels-last
    arena view, over the N·H rows of ``out`` in ``parts`` chunks (a NumPy strided copy of
    8 ImageNet images takes 1.4 ms on one thread; this, 0.3 ms on two)."""
    N, C, H, W = x.shape
    T = N * H
    for c in prange(parts):
        for t in range(c * T // parts, (c + 1) * T // parts):
            n, h = t // H, t % H
            row = out[n, h].reshape(W * C)
            for ch in range(C):
                src = x[n, ch, h]
                for w in range(W):
                    row[w * C + ch] = src[w]


@njit(**PAR)
def maxpool(parts, x, out, T, kh, kw, sh, sw, pt, pl, dh, dw):
    """:func:`.numba_kernels.maxpool` over the T output rows (n, oh)."""
    if parts == 1:
        K.maxpool(x, out, 0, T, kh, kw, sh, sw, pt, pl, dh, dw)
        return
    for c in prange(parts):
        K.maxpool(x, out, c * T // parts, (c + 1) * T // parts, kh, kw, sh, sw, pt, pl, dh, dw)


@njit(**PAR)
def avgpool(parts, x, out, T, kh, kw, sh, sw, pt, pl, div):
    """:func:`.numba_kernels.avgpool` over the T output rows (n, oh)."""
    if parts == 1:
        K.avgpool(x, out, 0, T, kh, kw, sh, sw, pt, pl, div)
        return
    for c in prange(parts):
        K.avgpool(x, out, c * T // parts, (c + 1) * T // parts, kh, kw, sh, sw, pt, pl, div)


@njit(**JIT)
def channel_cut(C, j, cs):
    """Where slice j of ``cs`` slices of C channels starts: a multiple of 16 (a vector), or C.

    >>> [channel_cut(40, j, 3) for j in range(4)]
    [0, 16, 32, 40]
    """
    return C if j >= cs else min(C, (j * C // cs + 15) // 16 * 16)


@njit(**PAR)
def adaptive_pool(parts, x, out, T, is_max, cs):
    """:func:`.numba_kernels.adaptive_pool` over the T output rows (n, oh), each row's channels
    in ``cs`` slices (:func:`channel_cut`): a global pool at batch 1 has one row, so its
    threads share the channels."""
    C = x.shape[3]
    if parts == 1:
        K.adaptive_pool(x, out, 0, T, is_max, 0, C)
        return
    n = T * cs
    for c in prange(parts):
        for i in range(c * n // parts, (c + 1) * n // parts):
            t, j = i // cs, i % cs
            K.adaptive_pool(x, out, t, t + 1, is_max, channel_cut(C, j, cs), channel_cut(C, j + 1, cs))


@njit(**PAR)
def resize(parts, x, out, T, ih, wh, iw, ww, nearest):
    """:func:`.numba_kernels.resize_rows` over the T output rows (n, oh)."""
    if parts == 1:
        K.resize_rows(x, out, 0, T, ih, wh, iw, ww, nearest)
        return
    for c in prange(parts):
        K.resize_rows(x, out, c * T // parts, (c + 1) * T // parts, ih, wh, iw, ww, nearest)


# ---------------------------------------------------------------- normalisation
@njit(**PAR)
def softmax(parts, x, out, R):
    """:func:`.numba_kernels.softmax_rows` over R rows."""
    if parts == 1:
        K.softmax_rows(x, out, 0, R)
        return
    for c in prange(parts):
        K.softmax_rows(x, out, c * R // parts, (c + 1) * R // parts)


@njit(**PAR)
def group_norm(parts, x, out, N, G, eps, gamma, beta, per_element):
    """:func:`.numba_kernels.group_norm` over the N samples."""
    if parts == 1:
        K.group_norm(x, out, 0, N, G, eps, gamma, beta, per_element)
        return
    for c in prange(parts):
        K.group_norm(x, out, c * N // parts, (c + 1) * N // parts, G, eps, gamma, beta, per_element)


@njit(**PAR)
def layernorm(parts, x, out, R, eps, gamma, beta):
    """:func:`.numba_kernels.layernorm_rows` over R rows."""
    if parts == 1:
        K.layernorm_rows(x, out, 0, R, eps, gamma, beta)
        return
    for c in prange(parts):
        K.layernorm_rows(x, out, c * R // parts, (c + 1) * R // parts, eps, gamma, beta)


@njit(**PAR)
def lrn(parts, x, out, R, size, alpha, beta, k):
    """:func:`.numba_kernels.lrn` over R rows."""
    if parts == 1:
        K.lrn(x, out, 0, R, size, alpha, beta, k)
        return
    for c in prange(parts):
        K.lrn(x, out, c * R // parts, (c + 1) * R // parts, size, alpha, beta, k)


# ---------------------------------------------------------------- direct convolutions
@njit(**PAR)
def depthwise(parts, x, w, bias, out, T, mult, sh, sw, pt, pl, dh, dw, res, a1, a2):
    """:func:`.numba_kernels.depthwise` (a channel multiplier) over the T output rows."""
    if parts == 1:
        K.depthwise(x, w, bias, out, 0, T, mult, sh, sw, pt, pl, dh, dw, res, a1, a2)
        return
    for c in prange(parts):
        K.depthwise(x, w, bias, out, c * T // parts, (c + 1) * T // parts, mult, sh, sw, pt, pl, dh, dw, res, a1, a2)


@njit(**PAR)
def depthwise_rows(parts, x, w, wrow, bias, out, T, sh, sw, pt, pl, dh, dw, res, a1, a2, acc):
    """:func:`.numba_kernels.depthwise_rows` over the T output rows; ``acc`` (threads, Wo·C)."""
    if parts == 1:
        K.depthwise_rows(x, w, wrow, bias, out, 0, T, sh, sw, pt, pl, dh, dw, res, a1, a2, acc[0])
        return
    for c in prange(parts):
        K.depthwise_rows(x, w, wrow, bias, out, c * T // parts, (c + 1) * T // parts, sh, sw, pt, pl, dh, dw, res,
                         a1, a2, acc[numba.get_thread_id()])


@njit(**PAR)
def grouped_rows(parts, by_blocks, x, wp, bias, out, T, sh, sw, pt, pl, dh, dw, res, a1, a2, blocks, koff, xp, acc,
                 mode, nv, cg, kh, rowlen, ps, R):
    """:func:`.numba_kernels.grouped_rows` over the T output rows, the chunks splitting the
    rows, or (``by_blocks``) the packed group blocks of every row; ``xp`` (threads, slab) and
    ``acc`` (threads, R·Wo·C_out)."""
    nb = blocks.shape[0]
    if parts == 1:
        K.grouped_rows(x, wp, bias, out, 0, T, sh, sw, pt, pl, dh, dw, res, a1, a2, blocks, koff, xp[0], acc[0], mode,
                       nv, cg, kh, rowlen, ps, R, 0, nb)
        return
    for c in prange(parts):
        tid = numba.get_thread_id()
        t0, t1, b0, b1 = 0, T, c * nb // parts, (c + 1) * nb // parts
        if not by_blocks:
            t0, t1, b0, b1 = c * T // parts, (c + 1) * T // parts, 0, nb
        K.grouped_rows(x, wp, bias, out, t0, t1, sh, sw, pt, pl, dh, dw, res, a1, a2, blocks, koff, xp[tid], acc[tid],
                       mode, nv, cg, kh, rowlen, ps, R, b0, b1)


@njit(**PAR)
def col2im_transpose(parts, cols, out, n0, T0, T1, H, W, kh, kw, sh, sw, pt, pl, dh, dw, og, bias, res, a1, a2):
    """:func:`.numba_kernels.col2im_transpose` over output rows T0:T1 (n, oh)."""
    if parts == 1:
        K.col2im_transpose(cols, out, n0, T0, T1, H, W, kh, kw, sh, sw, pt, pl, dh, dw, og, bias, res, a1, a2)
        return
    T = T1 - T0
    for c in prange(parts):
        K.col2im_transpose(cols, out, n0, T0 + c * T // parts, T0 + (c + 1) * T // parts, H, W, kh, kw, sh, sw, pt,
                           pl, dh, dw, og, bias, res, a1, a2)
