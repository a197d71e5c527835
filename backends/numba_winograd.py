"""Winograd convolution F(m×m, 3×3) on the CPU: the tile transforms as Numba kernels,
channels last, vectorised over the channels.

A 3×3 stride-1 convolution over a tile of ``m×m`` outputs reads an ``α×α`` input patch
(``α = m + 2``). With ``V = Bᵀ d B`` (each input channel's patch), ``U = G g Gᵀ`` (each
filter, once at build time) and ``Y = Aᵀ (Σ_c U ⊙ V) A``, the channel sum at each of the
``α²`` patch positions is a matrix product ``(tiles × C_in) @ (C_in × C_out)``: ``α²·C_in·
C_out`` multiply-adds per tile instead of ``9·m²·C_in·C_out`` (2.25× fewer for F(2×2),
4× fewer for F(4×4)). The transforms below write ``V`` as ``(tiles, α², C_in)`` (each tile's
values together, in cache) and each position's product is a GEMM on the strided
``V[:, p, :]`` (our GEMM, :mod:`.numba_gemm`); the products ``(tiles, α², C_out)`` are read
back, applying the convolution's fused epilogue (bias, activation, residual, activation) to
each output pixel. Matrices: Lavin & Gray, "Fast algorithms for convolutional neural
networks" (2016), points 0, ±1, ±2 (F(4×4)) and 0, ±1 (F(2×2)).

>>> import numpy as np
>>> x = np.random.default_rng(0).standard_normal((1, 6, 6, 2)).astype(np.float32)
>>> g = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
>>> U = filter_transform(g, 4)
>>> V = np.empty((1, 36, 2), np.float32)  # (tiles, α², C_in)
>>> input_transform(x, V, 0, 1, 0, 4, 1, 1, 0, 0, np.empty((2, 6, 6, 2), np.float32))
>>> Mo = np.matmul(V.transpose(1, 0, 2), U).transpose(1, 0, 2)  # (tiles, α², C_out)
>>> y = np.empty((1, 4, 4, 3), np.float32)
>>> output_transform(Mo, y, 0, 1, 0, 4, 1, 1, np.empty(0, np.float32), np.empty((0, 0, 0, 0), np.float32), 0, 0,
...                  np.empty((6, 4, 3), np.float32), np.empty((4, 4, 3), np.float32))
>>> ref = np.einsum("ijc,ocij->o", x[0, 0:3, 0:3], g)  # the output pixel (0, 0)
>>> bool(np.allclose(y[0, 0, 0], ref, atol=1e-4))
True
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .numba_gemm import EMPTY1, EMPTY2, INF, NR, claim, gemm_block, pack_b
from .numba_kernels import JIT, store_pixel

# G (α×3) of each tile size m: U = G g Gᵀ.
G_MATRIX = {
    2: np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]),
    4: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                 [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
}
# Bᵀ and Aᵀ, for the tests (the kernels below spell them out so the zeros cost nothing).
BT_MATRIX = {
    2: np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
    4: np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                 [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]),
}
AT_MATRIX = {
    2: np.array([[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}


def filter_transform(w, m: int, block: int = 32) -> np.ndarray:
    """``U`` as (α², C_in, C_out) float32 from filters ``w`` (C_out, C_in, 3, 3), computed in
    float64 ``block`` output channels at a time (the float64 temporaries of a whole 512-channel
    layer would take about 100 MB at once, more than the packed result)."""
    Gm = G_MATRIX[m]
    a = m + 2
    co, ci = w.shape[0], w.shape[1]
    U = np.empty((a * a, ci, co), np.float32)
    for o0 in range(0, co, block):
        wb = np.asarray(w[o0:o0 + block], np.float64)
        t = np.tensordot(wb, Gm, axes=([3], [1]))  # (o, c, i, b): contracts j
        u = np.tensordot(t, Gm, axes=([2], [1]))  # (o, c, b, a): contracts i
        U[:, :, o0:o0 + block] = u.transpose(3, 2, 1, 0).reshape(a * a, ci, -1)
    return U


@njit(**JIT, inline="always")
def _bt6(d0, d1, d2, d3, d4, d5):
    """Bᵀ of F(4×4, 3×3) on six values."""
    return (np.float32(4) * d0 - np.float32(5) * d2 + d4, d3 + d4 - np.float32(4) * (d1 + d2),
            d4 - d3 + np.float32(4) * (d1 - d2), d4 - d2 + np.float32(2) * (d3 - d1),
            d4 - d2 + np.float32(2) * (d1 - d3), np.float32(4) * d1 - np.float32(5) * d3 + d5)


@njit(**JIT, inline="always")
def _at6(s0, s1, s2, s3, s4, s5):
    """Aᵀ of F(4×4, 3×3) on six values."""
    a, b, p, q = s1 + s2, s1 - s2, s3 + s4, s3 - s4
    return s0 + a + p, b + np.float32(2) * q, a + np.float32(4) * p, b + np.float32(8) * q + s5


@njit(**JIT, inline="always")
def _bt4(d0, d1, d2, d3):
    """Bᵀ of F(2×2, 3×3) on four values."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(**JIT, inline="always")
def _at4(s0, s1, s2, s3):
    """Aᵀ of F(2×2, 3×3) on four values."""
    return s0 + s1 + s2, s1 - s2 - s3


@njit(**JIT)
def _patch(x, d, n, ih0, iw0):
    """The α×α input patch at (ih0, iw0) of sample n into d (α, α, C), zeros outside."""
    N, H, W, C = x.shape
    a = d.shape[0]
    inside = iw0 >= 0 and iw0 + a <= W
    for i in range(a):
        ih = ih0 + i
        if ih < 0 or ih >= H:
            d[i, :, :] = 0
        elif inside:
            d[i, :, :] = x[n, ih, iw0:iw0 + a, :]
        else:
            for j in range(a):
                iw = iw0 + j
                if 0 <= iw < W:
                    d[i, j, :] = x[n, ih, iw, :]
                else:
                    d[i, j, :] = 0


# The transforms run in two passes (rows, then columns) of six (four) loads and stores per
# channel: loops that touch more rows at once do not vectorise (LLVM gives up checking that
# many address ranges for overlap).
@njit(**JIT)
def _in6(d, t, V, u, C):
    """Bᵀ d B of a 6×6 patch d (6, 6, C) for every channel into V[u] (36, C); t is scratch."""
    for i in range(6):
        for c in range(C):
            r = _bt6(d[i, 0, c], d[i, 1, c], d[i, 2, c], d[i, 3, c], d[i, 4, c], d[i, 5, c])
            t[i, 0, c], t[i, 1, c], t[i, 2, c], t[i, 3, c], t[i, 4, c], t[i, 5, c] = r
    for j in range(6):
        for c in range(C):
            r = _bt6(t[0, j, c], t[1, j, c], t[2, j, c], t[3, j, c], t[4, j, c], t[5, j, c])
            V[u, j, c], V[u, 6 + j, c], V[u, 12 + j, c], V[u, 18 + j, c], V[u, 24 + j, c], V[u, 30 + j, c] = r


@njit(**JIT)
def _in4(d, t, V, u, C):
    """Bᵀ d B of a 4×4 patch d (4, 4, C) for every channel into V[u] (16, C); t is scratch."""
    for i in range(4):
        for c in range(C):
            t[i, 0, c], t[i, 1, c], t[i, 2, c], t[i, 3, c] = _bt4(d[i, 0, c], d[i, 1, c], d[i, 2, c], d[i, 3, c])
    for j in range(4):
        for c in range(C):
            V[u, j, c], V[u, 4 + j, c], V[u, 8 + j, c], V[u, 12 + j, c] = _bt4(t[0, j, c], t[1, j, c], t[2, j, c],
                                                                               t[3, j, c])


@njit(**JIT)
def input_transform(x, V, t0, t1, v0, m, tiles_h, tiles_w, pt, pl, d):
    """``V[t − v0]`` (α², C) for tiles t0:t1 (t = (n·tiles_h + th)·tiles_w + tw): the input
    patch at (th·m − pt, tw·m − pl), zero outside the image, through Bᵀ·B.
    ``d`` is scratch (2, α, α, C); V is (≥ t1 − v0, α², C)."""
    C = x.shape[3]
    for t in range(t0, t1):
        n = t // (tiles_h * tiles_w)
        th = (t // tiles_w) % tiles_h
        tw = t % tiles_w
        _patch(x, d[0], n, th * m - pt, tw * m - pl)
        if m == 4:
            _in6(d[0], d[1], V, t - v0, C)
        else:
            _in4(d[0], d[1], V, t - v0, C)


@njit(**JIT)
def _out6(Mo, u, t, y, C):
    """Aᵀ M A of tile u (Mo[u] is (36, C)) for every channel into y (4, 4, C); t (6, 4, C) is scratch."""
    for i in range(6):
        for c in range(C):
            k = 6 * i
            t[i, 0, c], t[i, 1, c], t[i, 2, c], t[i, 3, c] = _at6(Mo[u, k, c], Mo[u, k + 1, c], Mo[u, k + 2, c],
                                                                  Mo[u, k + 3, c], Mo[u, k + 4, c], Mo[u, k + 5, c])
    for j in range(4):
        for c in range(C):
            y[0, j, c], y[1, j, c], y[2, j, c], y[3, j, c] = _at6(t[0, j, c], t[1, j, c], t[2, j, c], t[3, j, c],
                                                                  t[4, j, c], t[5, j, c])


@njit(**JIT)
def _out4(Mo, u, t, y, C):
    """Aᵀ M A of tile u (Mo[u] is (16, C)) for every channel into y (2, 2, C); t (4, 2, C) is scratch."""
    for i in range(4):
        for c in range(C):
            k = 4 * i
            t[i, 0, c], t[i, 1, c] = _at4(Mo[u, k, c], Mo[u, k + 1, c], Mo[u, k + 2, c], Mo[u, k + 3, c])
    for j in range(2):
        for c in range(C):
            y[0, j, c], y[1, j, c] = _at4(t[0, j, c], t[1, j, c], t[2, j, c], t[3, j, c])


@njit(**JIT)
def output_transform(Mo, out, t0, t1, v0, m, tiles_h, tiles_w, bias, res, a1, a2, t, y):
    """Output tiles t0:t1 from the products ``Mo[t − v0]`` (α², C_out) through Aᵀ·A, then
    ``act2(act1(· + bias) + res)`` per pixel (pixels past the image's edge dropped).
    ``t`` (α, m, C_out) and ``y`` (m, m, C_out) are scratch."""
    N, Ho, Wo, C = out.shape
    for u in range(t0, t1):
        n = u // (tiles_h * tiles_w)
        th = (u // tiles_w) % tiles_h
        tw = u % tiles_w
        if m == 4:
            _out6(Mo, u - v0, t, y, C)
        else:
            _out4(Mo, u - v0, t, y, C)
        for i in range(m):
            oh = th * m + i
            if oh >= Ho:
                break
            for j in range(m):
                ow = tw * m + j
                if ow >= Wo:
                    break
                acc = y[i, j]
                if bias.shape[0] > 0:
                    for c in range(C):
                        acc[c] += bias[c]
                store_pixel(acc, out, res, n, oh, ow, a1, a2)


def pack_filters(w, m: int) -> np.ndarray:
    """Transformed filters packed for :mod:`.numba_gemm`'s micro-kernel: ``(α², ⌈C_out/NR⌉, C_in, NR)``."""
    U = filter_transform(w, m)  # (α², C_in, C_out)
    Up = np.empty((U.shape[0], -(-U.shape[2] // NR), U.shape[1], NR), np.float32)
    for p in range(U.shape[0]):
        pack_b(U[p].T, Up[p])
    return Up


@njit(**JIT)
def _block(ib, blk, x, out, Up, bias, res, a1, a2, m, tiles_h, tiles_w, pt, pl):
    """Block ``ib`` of :func:`conv_blocks`: its tiles transformed, multiplied, transformed back."""
    N, H, W, cin = x.shape
    cout = out.shape[3]
    a = m + 2
    nb = Up.shape[1]
    coutp = nb * NR
    T = N * tiles_h * tiles_w
    t0 = ib * blk
    t1 = min(T, t0 + blk)
    nt = t1 - t0
    V = np.empty((nt, a * a * cin), np.float32)
    Mo = np.empty((nt, a * a * coutp), np.float32)
    d = np.empty((2, a, a, cin), np.float32)
    input_transform(x, V.reshape((nt, a * a, cin)), t0, t1, t0, m, tiles_h, tiles_w, pt, pl, d)
    for p in range(a * a):
        gemm_block(V, 0, p * cin, cin, nt, Up[p], 0, nb, Mo, 0, p * coutp, coutp, EMPTY1, EMPTY2, -INF, INF, -INF, INF)
    output_transform(Mo.reshape((nt, a * a, coutp)), out, t0, t1, t0, m, tiles_h, tiles_w, bias, res, a1, a2,
                     np.empty((a, m, cout), np.float32), np.empty((m, m, cout), np.float32))


@njit(parallel=True, **JIT)
def conv_blocks(x, out, Up, bias, res, a1, a2, m, tiles_h, tiles_w, pt, pl, blk, workers):
    """The whole convolution in blocks of ``blk`` tiles, one block per work item (claimed
    dynamically, :func:`.numba_gemm.claim`): its patches transformed, its α² products by the
    packed filters ``Up`` (:func:`pack_filters`), its outputs transformed back with the
    epilogue, all while the block's values stay in cache."""
    T = x.shape[0] * tiles_h * tiles_w
    nblk = -(-T // blk)
    counter = np.zeros(1, np.int64)
    for _ in prange(min(nblk, workers)):
        ib = claim(counter, nblk)
        while ib >= 0:
            _block(ib, blk, x, out, Up, bias, res, a1, a2, m, tiles_h, tiles_w, pt, pl)
            ib = claim(counter, nblk)


@njit(parallel=True, **JIT)
def conv_few_tiles(x, out, Up, bias, res, a1, a2, m, tiles_h, tiles_w, pt, pl, chunks, nbc, workers):
    """The whole convolution when there are too few tiles for blocks (batch 1, late layers):
    every tile transformed (``chunks`` work items), then the α² products shared out by
    position and ``nbc`` column blocks, then every tile transformed back; each phase's
    items claimed dynamically."""
    N, H, W, cin = x.shape
    cout = out.shape[3]
    a = m + 2
    nb = Up.shape[1]
    coutp = nb * NR
    T = N * tiles_h * tiles_w
    V = np.empty((T, a * a * cin), np.float32)
    Mo = np.empty((T, a * a * coutp), np.float32)
    V3 = V.reshape((T, a * a, cin))
    M3 = Mo.reshape((T, a * a, coutp))
    step = -(-T // chunks)
    counter = np.zeros(3, np.int64)
    for _ in prange(min(chunks, workers)):
        d = np.empty((2, a, a, cin), np.float32)
        i = claim(counter[0:1], chunks)
        while i >= 0:
            t0 = min(T, i * step)
            input_transform(x, V3, t0, min(T, t0 + step), 0, m, tiles_h, tiles_w, pt, pl, d)
            i = claim(counter[0:1], chunks)
    nct = -(-nb // nbc)
    for _ in prange(min(a * a * nct, workers)):
        it = claim(counter[1:2], a * a * nct)
        while it >= 0:
            p = it // nct
            j0 = (it % nct) * nbc
            j1 = min(nb, j0 + nbc)
            gemm_block(V, 0, p * cin, cin, T, Up[p], j0, j1, Mo, 0, p * coutp + j0 * NR, (j1 - j0) * NR, EMPTY1,
                       EMPTY2, -INF, INF, -INF, INF)
            it = claim(counter[1:2], a * a * nct)
    for _ in prange(min(chunks, workers)):
        tmp = np.empty((a, m, cout), np.float32)
        y = np.empty((m, m, cout), np.float32)
        i = claim(counter[2:3], chunks)
        while i >= 0:
            t0 = min(T, i * step)
            output_transform(M3, out, t0, min(T, t0 + step), 0, m, tiles_h, tiles_w, bias, res, a1, a2, tmp, y)
            i = claim(counter[2:3], chunks)
