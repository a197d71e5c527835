"""Our own single-precision GEMM for the Numba backend: a register-blocked micro-kernel
written in LLVM IR, driven by Numba loops that run inside the backend's parallel regions.

Why not BLAS: BLAS runs on its own thread pool (or one thread per call from ours), packs
the weights again at every call, and cannot fuse the convolution's epilogue; at batch 1
most products are narrow (a 1×1 convolution of 196 rows by 64 columns) and the hand-offs
between two thread pools cost more than the product. Here the weights are packed once,
when the executor is built, in the layout the micro-kernel reads; the activations are read
in place (row pointers with a stride, as MLAS does), and each tile's bias, activation and
residual are applied while the tile is in cache.

Numba's cache checks only the file a cached function lives in: the drivers here inline
:func:`.numba_kernels.im2col` and ``act_row``, so after editing those in a working copy,
clear the cache (``~/.cache/cnngraph/numba``); a fresh install is not affected.

The micro-kernel computes an ``MR × NR`` block (8 rows × 32 columns: 16 vector
accumulators of 16 floats, two vector loads of B and eight broadcasts of A per step of k),
``C[i, j] = epilogue(Σ_k A[i, k]·B[k, j])``, A's rows at stride ``lda`` (rows past ``m``
repeat the last one, their results are not stored), B packed ``(k, NR)``, C at stride ``ldc``
(masked stores).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = rng.standard_normal((50, 70)).astype(np.float32)
>>> w = rng.standard_normal((40, 70)).astype(np.float32)   # (N, K): a convolution's weight rows
>>> bp = pack_b(w)
>>> c = np.empty((50, 40), np.float32)
>>> gemm(a, bp, c)
>>> bool(np.allclose(c, a @ w.T, rtol=1e-5, atol=1e-4))
True
"""
from __future__ import annotations

import numpy as np

from . import numba_cache  # noqa: F401  - before numba: kernels cache in the user's cache folder
from llvmlite import ir  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from cnngraph.compiler.algorithms import GEMM_BLOCK  # noqa: E402

from .numba_kernels import act_row, im2col  # noqa: E402

JIT = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False)

# The block: MR rows × NR columns (the compiler's cost model reads the same numbers), each
# row NV vectors of VL floats (512 bits; LLVM splits them where the CPU has 256-bit vectors).
MR, NR = GEMM_BLOCK
VL = 16
NV = NR // VL


def _ptr(builder, addr):
    return builder.inttoptr(addr, ir.FloatType().as_pointer())


@intrinsic
def fetch_add(typingctx, counter, value):
    """``counter[0] += value`` atomically (an int64 array); returns the value before."""
    sig = types.int64(counter, types.int64)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [ir.Constant(ir.IntType(64), 0)])
        return builder.atomic_rmw("add", ptr, args[1], "monotonic")

    return sig, codegen


@njit(**JIT)
def claim(counter, n):
    """The next unclaimed work item of ``n`` (-1 when none is left). The parallel drivers run
    one loop per thread that claims items until none is left: a thread that starts late (its
    core busy with another process) takes fewer, instead of holding a fixed share of the
    work the others wait for (Numba divides a ``prange`` evenly between the threads)."""
    i = fetch_add(counter, 1)
    return i if i < n else -1


def _microkernel(nv: int):
    """The micro-kernel intrinsic of ``nv`` vectors per row (see :data:`microkernel`)."""

    def kernel(typingctx, a, lda, seg, jump, m, b, k, c, ldc, n, bias, res, ldr, lo1, hi1, lo2, hi2):
        """``C[0:m, 0:n] = A[0:m, 0:k] · Bp[0:k, 0:NR]`` (1 ≤ m ≤ MR, 1 ≤ n ≤ NR) on raw float32
        addresses (ints), through the clamp epilogue
        ``min(max(min(max(A·B + bias, lo1), hi1) + R, lo2), hi2)``: ``a`` (rows at stride ``lda``
        elements; rows past ``m`` repeat the last one, their results are not stored; a row is
        runs of ``seg`` contiguous values, each run ``jump`` elements after the end of the
        previous one: a plain matrix has ``seg = k``, an implicit convolution's kernel rows
        are runs of ``kw·C`` inputs one image row apart), ``b`` (packed
        ``(k, NR)``), ``c`` (rows at stride ``ldc``; masked stores, nothing written past row m or
        column n), ``bias`` (n floats) and ``R`` (rows at stride ``ldr``; may be C itself: each value
        is read before it is written) skipped when their address is 0. The clamps keep NaN (as
        torch.relu does): ReLU is (0, inf), ReLU6 (0, 6), no activation (-inf, inf)."""
        sig = types.void(*([types.intp] * 13), *([types.float32] * 4))

        def codegen(context, builder, signature, args):
            a_addr, lda_, seg_, jump_, m_, b_addr, k_, c_addr, ldc_, n_, bias_, res_, ldr_, lo1, hi1, lo2, hi2 = args
            f32, i64, i32, i1 = ir.FloatType(), ir.IntType(64), ir.IntType(32), ir.IntType(1)
            vec, ivec, mvec = ir.VectorType(f32, VL), ir.VectorType(i32, VL), ir.VectorType(i1, VL)
            vptr = vec.as_pointer()

            def intr(name, ret, *argt):
                return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, list(argt)), name)

            fma = intr(f"llvm.fma.v{VL}f32", vec, vec, vec, vec)
            mstore = intr(f"llvm.masked.store.v{VL}f32.p0", ir.VoidType(), vec, vptr, i32, mvec)
            mload = intr(f"llvm.masked.load.v{VL}f32.p0", vec, vptr, i32, mvec, vec)
            c64 = lambda v: ir.Constant(i64, v)  # noqa: E731
            four = ir.Constant(i32, 4)
            zero = ir.Constant(vec, [0.0] * VL)
            none = ir.Constant(mvec, [0] * VL)

            def splat(s, t=vec):
                u = ir.Constant(t, ir.Undefined)
                return builder.shuffle_vector(builder.insert_element(u, s, ir.Constant(i32, 0)), u,
                                              ir.Constant(ivec, [0] * VL))

            def vat(base, off):
                return builder.bitcast(builder.gep(base, [off]), vptr)

            a0, bptr, c0 = _ptr(builder, a_addr), _ptr(builder, b_addr), _ptr(builder, c_addr)
            last = builder.sub(m_, c64(1))
            valid = [builder.icmp_signed("<", c64(i), m_) for i in range(MR)]
            rows = [builder.gep(a0, [builder.mul(builder.select(valid[i], c64(i), last), lda_)]) for i in range(MR)]
            # for kk in range(k): acc[i][j] = fma(bcast(A[i, kk]), B[kk, j], acc[i][j])
            pre = builder.block
            loop = builder.append_basic_block("mk.loop")
            after = builder.append_basic_block("mk.after")
            builder.cbranch(builder.icmp_signed(">", k_, c64(0)), loop, after)
            builder.position_at_end(loop)
            kk = builder.phi(i64)
            q = builder.phi(i64)  # position in the current run of A's row
            ak = builder.phi(i64)  # A's offset for this k (kk plus the jumps so far)
            accs = [builder.phi(vec) for _ in range(MR * nv)]
            bk = builder.gep(bptr, [builder.mul(kk, c64(NR))])
            bv = [builder.load(vat(bk, c64(j * VL)), align=4) for j in range(nv)]
            new = []
            for i in range(MR):
                bc = splat(builder.load(builder.gep(rows[i], [ak]), align=4))
                for j in range(nv):
                    new.append(builder.call(fma, [bc, bv[j], accs[i * nv + j]]))
            kn = builder.add(kk, c64(1))
            qn = builder.add(q, c64(1))
            wrap = builder.icmp_signed("==", qn, seg_)
            akn = builder.add(builder.add(ak, c64(1)), builder.select(wrap, jump_, c64(0)))
            qn = builder.select(wrap, c64(0), qn)
            loop_end = builder.block
            builder.cbranch(builder.icmp_signed("<", kn, k_), loop, after)
            kk.add_incoming(c64(0), pre)
            kk.add_incoming(kn, loop_end)
            q.add_incoming(c64(0), pre)
            q.add_incoming(qn, loop_end)
            ak.add_incoming(c64(0), pre)
            ak.add_incoming(akn, loop_end)
            for p, v in zip(accs, new):
                p.add_incoming(zero, pre)
                p.add_incoming(v, loop_end)
            builder.position_at_end(after)
            outs = []
            for v in new:
                phi = builder.phi(vec)
                phi.add_incoming(zero, pre)
                phi.add_incoming(v, loop_end)
                outs.append(phi)
            # the epilogue, row by row: column masks (lane l of vector j: j·VL + l < n) and row i < m
            nsplat = splat(builder.trunc(n_, i32), ivec)
            cmask = [builder.icmp_signed("<", ir.Constant(ivec, [j * VL + l for l in range(VL)]), nsplat)
                     for j in range(nv)]
            # Masked-off lanes must still point at readable memory: a masked load whose lanes
            # would fault takes a microcode assist (hundreds of cycles) on x86. An absent bias or
            # residual reads the packed weights (always readable) with an empty mask instead.
            has_bias = builder.icmp_signed("!=", bias_, c64(0))
            has_res = builder.icmp_signed("!=", res_, c64(0))
            bias_p = _ptr(builder, builder.select(has_bias, bias_, b_addr))
            bvec = [builder.call(mload, [vat(bias_p, c64(j * VL)), four, builder.select(has_bias, cmask[j], none),
                                         zero]) for j in range(nv)]
            res_p = _ptr(builder, builder.select(has_res, res_, b_addr))
            ldr_eff = builder.select(has_res, ldr_, c64(0))
            l1, h1, l2, h2 = splat(lo1), splat(hi1), splat(lo2), splat(hi2)

            def clamp(y, lo, hi):
                # (lo > y ? lo : y), then (y > hi ? hi : y): one vmaxps / vminps each, and NaN
                # passes through (the comparisons are false), as torch.relu keeps it
                y = builder.select(builder.fcmp_ordered(">", lo, y), lo, y)
                return builder.select(builder.fcmp_ordered(">", y, hi), hi, y)

            for i in range(MR):
                crow = builder.gep(c0, [builder.mul(c64(i), ldc_)])
                rrow = builder.gep(res_p, [builder.mul(c64(i), ldr_eff)])
                for j in range(nv):
                    acc = outs[i * nv + j]
                    smask = builder.select(valid[i], cmask[j], none)
                    y = clamp(builder.fadd(acc, bvec[j]), l1, h1)
                    r = builder.call(mload, [vat(rrow, c64(j * VL)), four, builder.select(has_res, smask, none), zero])
                    y = clamp(builder.fadd(y, r), l2, h2)
                    builder.call(mstore, [y, vat(crow, c64(j * VL)), four, smask])
            return context.get_dummy_value()

        return sig, codegen

    return intrinsic(kernel)


# The micro-kernels: 8 rows × 32 columns (two vectors per row), and 8 rows × 16 columns for a
# last column block of at most 16 (half the multiply-adds of padding a 16-column block to 32).
microkernel = _microkernel(NV)
microkernel16 = _microkernel(1)


def pack_b(w_rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Weights as rows ``(N, K)`` (a convolution's ``(C_out, kh·kw·C_in)``) packed for the
    micro-kernel: ``(⌈N/NR⌉, K, NR)``, columns past N zero. Filled one block of NR rows at a
    time: no temporary as large as the weights (VGG-16's first linear layer is 411 MB);
    into ``out`` when given (a slice of a larger packed array).

    >>> pack_b(np.arange(6, dtype=np.float32).reshape(2, 3))[0, :, :3]
    array([[0., 3., 0.],
           [1., 4., 0.],
           [2., 5., 0.]], dtype=float32)
    """
    N, K = w_rows.shape
    nb = -(-N // NR)
    bp = np.empty((nb, K, NR), np.float32) if out is None else out
    for j in range(nb):
        blk = w_rows[j * NR:(j + 1) * NR]
        bp[j, :, :blk.shape[0]] = blk.T
        bp[j, :, blk.shape[0]:] = 0
    return bp


def pack_b_inplace(w_rows: np.ndarray) -> np.ndarray:
    """:func:`pack_b` of ``w_rows`` ``(N, K)`` into its own memory (N a multiple of NR, C-contiguous
    and writeable), returned as the ``(N/NR, K, NR)`` view: the rows of block j occupy exactly
    the memory of packed block j, so each block is copied out (NR·K floats) and written back
    transposed. No copy as large as the weights ever exists (VGG-16's first linear layer is
    411 MB); ``w_rows`` holds the packed weights afterwards.

    >>> w = np.arange(2 * NR * 3, dtype=np.float32).reshape(2 * NR, 3)
    >>> ref = pack_b(w)
    >>> bp = pack_b_inplace(w)
    >>> bool(np.array_equal(bp, ref)), np.shares_memory(bp, w)
    (True, True)
    """
    N, K = w_rows.shape
    if N % NR or not w_rows.flags.c_contiguous or not w_rows.flags.writeable:
        raise ValueError(f"cannot pack a {N}×{K} array in place (rows a multiple of {NR}, contiguous, writeable)")
    flat = w_rows.reshape(-1)
    tmp = np.empty((NR, K), np.float32)
    for j in range(N // NR):
        blk = flat[j * NR * K:(j + 1) * NR * K]
        tmp[...] = blk.reshape(NR, K)
        blk.reshape(K, NR)[...] = tmp.T
    return flat.reshape(N // NR, K, NR)


def pack_conv(w: np.ndarray, groups: int) -> np.ndarray:
    """A convolution's weights ``(C_out, C_in/G, kh, kw)`` packed per group for :func:`conv`:
    ``(G, ⌈og/NR⌉, kh·kw·C_in/G, NR)``, k in im2col's order (tap, then channel); each group
    packed straight into place."""
    cout, cg, kh, kw = w.shape
    og = cout // groups
    bp = np.empty((groups, -(-og // NR), kh * kw * cg, NR), np.float32)
    for g in range(groups):
        wg = w[g * og:(g + 1) * og]
        rows = wg.reshape(og, cg) if (kh, kw) == (1, 1) else wg.transpose(0, 2, 3, 1).reshape(og, kh * kw * cg)
        pack_b(rows, bp[g])
    return bp


INF = np.float32(np.inf)


@njit(**JIT)
def gemm_runs(abase, lda, seg, jump, K, m, bp, j0, j1, cbase, ldc, n, bias0, rbase, ldr, lo1, hi1, lo2, hi2):
    """The loop of :func:`gemm_block` on raw addresses: ``m`` rows of A from ``abase`` (row
    stride ``lda``; each row runs of ``seg`` values ``jump`` apart, :func:`microkernel`) by
    the packed column blocks j0:j1 of ``bp`` into C at ``cbase`` (row stride ``ldc``, ``n``
    columns), the bias from ``bias0`` and the residual from ``rbase`` (row stride ``ldr``)
    when not 0. Row panels inside, column blocks outside: a column block's packed panel
    (K × NR) stays in L1/L2 while the tile's row panels pass."""
    bbase = bp.ctypes.data
    bstride = bp.strides[0]
    for j in range(j0, j1):
        cj = (j - j0) * NR
        nj = min(NR, n - cj)
        if nj <= 0:
            break
        bk = bbase + j * bstride
        bj = bias0 + cj * 4 if bias0 != 0 else 0
        if nj <= VL:
            for i0 in range(0, m, MR):
                microkernel16(abase + i0 * lda * 4, lda, seg, jump, min(MR, m - i0), bk, K,
                              cbase + (i0 * ldc + cj) * 4, ldc, nj, bj, rbase + (i0 * ldr + cj) * 4 if rbase else 0,
                              ldr, lo1, hi1, lo2, hi2)
        else:
            for i0 in range(0, m, MR):
                microkernel(abase + i0 * lda * 4, lda, seg, jump, min(MR, m - i0), bk, K,
                            cbase + (i0 * ldc + cj) * 4, ldc, nj, bj, rbase + (i0 * ldr + cj) * 4 if rbase else 0,
                            ldr, lo1, hi1, lo2, hi2)


@njit(**JIT)
def gemm_block(a, ar0, ac0, K, m, bp, j0, j1, c, cr0, cc0, n, bias, res, lo1, hi1, lo2, hi2):
    """``c[cr0:cr0+m, cc0:cc0+n] = a[ar0:ar0+m, ac0:ac0+K] · B`` for the packed column blocks
    j0:j1 of ``bp`` (``(nb, K, NR)``; ``n`` ≤ (j1 − j0)·NR columns), through the clamp epilogue
    of :func:`microkernel` (``bias`` indexed from the block's first column, ``res`` at the same
    rows and columns as ``c``; either may be empty). ``a`` and ``c`` are any row-strided
    views: read and written in place."""
    lda = a.strides[0] // 4
    ldc = c.strides[0] // 4
    has_res = res.shape[0] > 0
    ldr = res.strides[0] // 4 if has_res else 0
    gemm_runs(a.ctypes.data + (ar0 * lda + ac0) * 4, lda, K, 0, K, m, bp, j0, j1, c.ctypes.data + (cr0 * ldc + cc0) * 4,
              ldc, n, bias.ctypes.data if bias.shape[0] > 0 else 0,
              res.ctypes.data + (cr0 * ldr + cc0) * 4 if has_res else 0, ldr, lo1, hi1, lo2, hi2)


EMPTY1 = np.empty(0, np.float32)
EMPTY2 = np.empty((0, 0), np.float32)


@njit(**JIT)
def gemm(a, bp, c):
    """``c = a · B`` (B packed by :func:`pack_b`), one thread; for tests and examples."""
    M, N = c.shape
    gemm_block(a, 0, 0, a.shape[1], M, bp, 0, bp.shape[0], c, 0, 0, N, np.empty(0, np.float32),
               np.empty((0, 0), np.float32), -INF, INF, -INF, INF)


@njit(**JIT)
def store_tile(ct, cc0, m, n, out, r0, c0, bias, res, a1, a2):
    """The fused epilogue of a tile: ``out[r0+i, c0+j] = act2(act1(ct[i, cc0+j] + bias[c0+j])
    + res[r0+i, c0+j])`` for i < m, j < n (``res`` may be ``out`` itself: each value is read
    before it is written). ``bias`` and ``res`` may be empty."""
    has_bias, has_res = bias.shape[0] > 0, res.shape[0] > 0
    for i in range(m):
        t = ct[i, cc0:cc0 + n]
        if has_bias:
            bv = bias[c0:c0 + n]
            for j in range(n):
                t[j] += bv[j]
        act_row(t, a1)
        ov = out[r0 + i, c0:c0 + n]
        if has_res:
            rv = res[r0 + i, c0:c0 + n]
            for j in range(n):
                t[j] += rv[j]
            act_row(t, a2)
        for j in range(n):
            ov[j] = t[j]


@njit(**JIT)
def product(abase, lda, seg, jump, K, m, bpg, j0, j1, out2, r0, oc, n, bias, res2, a1, a2, clamps):
    """Output rows r0:r0+m, columns oc:oc+n of a convolution from m rows of its A operand
    (raw address ``abase``, row stride ``lda``, runs of ``seg`` values ``jump`` apart:
    :func:`gemm_runs`) by the packed column blocks j0:j1 of one group's weights ``bpg``,
    through the epilogue ``act2(act1(· + bias) + res)``: in the micro-kernel when both
    activations are clamps (``clamps`` holds their (lo1, hi1, lo2, hi2)); without a residual,
    the bias in the micro-kernel and the activation over the rows in place (EfficientNet's
    expansions: bias then SiLU); else through a tile of the product and :func:`store_tile`."""
    ldo = out2.strides[0] // 4
    obase = out2.ctypes.data + (r0 * ldo + oc) * 4
    b0 = bias.ctypes.data + oc * 4 if bias.shape[0] > 0 else 0
    if clamps.shape[0] == 4:
        ldr = res2.strides[0] // 4 if res2.shape[0] > 0 else 0
        rbase = res2.ctypes.data + (r0 * ldr + oc) * 4 if res2.shape[0] > 0 else 0
        gemm_runs(abase, lda, seg, jump, K, m, bpg, j0, j1, obase, ldo, n, b0, rbase, ldr,
                  clamps[0], clamps[1], clamps[2], clamps[3])
    elif res2.shape[0] == 0:
        gemm_runs(abase, lda, seg, jump, K, m, bpg, j0, j1, obase, ldo, n, b0, 0, 0, -INF, INF, -INF, INF)
        cout = out2.shape[1]
        if n == cout:  # whole rows: one call
            act_row(out2.reshape(out2.shape[0] * cout)[r0 * cout:(r0 + m) * cout], a1)
        else:
            for i in range(m):
                act_row(out2[r0 + i, oc:oc + n], a1)
    else:
        ct = np.empty((m, n), np.float32)
        gemm_runs(abase, lda, seg, jump, K, m, bpg, j0, j1, ct.ctypes.data, n, n, 0, 0, 0, -INF, INF, -INF, INF)
        store_tile(ct, 0, m, n, out2, r0, oc, bias, res2, a1, a2)


@njit(**JIT)
def conv_items(i0, i1, x, out2, bp, bias, res2, a1, a2, clamps, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw, G, direct,
               mc, nbc):
    """Work items i0:i1 of :func:`conv` (item = row tile × column blocks, row tiles outer)."""
    N, H, W, C = x.shape
    M, cout = out2.shape
    cg, og = C // G, cout // G
    Kd = kh * kw * cg
    nb = bp.shape[1]
    nct = -(-nb // nbc)
    # the im2col tile; used below through its address, so it is allocated outside the loop
    # (alive until the function returns: Numba frees an array after its last use by name)
    a = np.empty((0 if direct else mc, G * Kd), np.float32)
    for it in range(i0, i1):
        ri = it // nct
        j0 = (it % nct) * nbc
        j1 = min(nb, j0 + nbc)
        r0 = ri * mc
        m = min(mc, M - r0)
        if direct:  # the input rows in place
            lda, step = C, cg
            abase = x.ctypes.data + r0 * C * 4
        else:
            im2col(x, a, r0, r0 + m, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw, G, cg)
            lda, step = G * Kd, Kd
            abase = a.ctypes.data
        c0 = j0 * NR
        n = min(og, j1 * NR) - c0
        for g in range(G):
            product(abase + g * step * 4, lda, Kd, 0, Kd, m, bp[g], j0, j1, out2, r0, g * og + c0, n, bias, res2,
                    a1, a2, clamps)


@njit(**JIT)
def pad_rows(x, xp, t0, t1, pt, pl):
    """Rows t0:t1 of ``xp`` (``(N, Hp, Wp, C)``, row t = image t // Hp, row t % Hp): ``x``
    (``(N, H, W, C)``) placed at (pt, pl), zeros around it."""
    N, H, W, C = x.shape
    Hp, Wp = xp.shape[1], xp.shape[2]
    for t in range(t0, t1):
        n, hp = t // Hp, t % Hp
        row = xp[n, hp].reshape(Wp * C)
        h = hp - pt
        if h < 0 or h >= H:
            row[:] = 0
        else:
            row[:pl * C] = 0
            row[pl * C:(pl + W) * C] = x[n, h].reshape(W * C)
            row[(pl + W) * C:] = 0


@njit(**JIT)
def implicit_items(i0, i1, xp, out2, bp, bias, res2, a1, a2, clamps, Ho, Wo, kh, kw, sh, sw, dh, rpi, nbc):
    """Work items i0:i1 of :func:`conv_implicit` (item = ``rpi`` output rows × column blocks)."""
    N, Hp, Wp, C = xp.shape
    nb = bp.shape[1]
    nct = -(-nb // nbc)
    T = N * Ho
    seg = kw * C  # a kernel row: kw pixels' channels, contiguous (no horizontal dilation)
    jump = dh * Wp * C - seg  # to the next kernel row
    K = kh * seg
    cout = out2.shape[1]
    for it in range(i0, i1):
        t0 = (it // nct) * rpi
        j0 = (it % nct) * nbc
        j1 = min(nb, j0 + nbc)
        c0 = j0 * NR
        n = min(cout, j1 * NR) - c0
        for t in range(t0, min(T, t0 + rpi)):
            img, oh = t // Ho, t % Ho
            abase = xp.ctypes.data + ((img * Hp + oh * sh) * Wp) * C * 4
            product(abase, sw * C, seg, jump, K, Wo, bp[0], j0, j1, out2, t * Wo, c0, n, bias, res2, a1, a2, clamps)


@njit(parallel=True, **JIT)
def conv_implicit(n_items, workers, x, xp, pt, pl, out2, bp, bias, res2, a1, a2, clamps, Ho, Wo, kh, kw, sh, sw, dh,
                  rpi, nbc):
    """An ungrouped convolution without horizontal dilation as an implicit GEMM: no im2col
    packing. In channels-last layout a kernel row's taps of one output pixel are ``kw·C``
    contiguous inputs, and the next output pixel's start ``sw·C`` further on, so the
    micro-kernel reads the input in place, as row-strided A rows made of ``kh`` runs
    (:func:`microkernel`). A padded convolution first copies its input zero-padded into
    ``xp`` (``(N, Hp, Wp, C)``, one pass over the input; ``xp`` is ``x`` itself when no
    padding is needed). Work items (``rpi`` output rows × ``nbc`` packed column blocks) are
    claimed dynamically by ``workers`` threads (:func:`claim`); the epilogue is
    :func:`product`'s."""
    if xp.ctypes.data != x.ctypes.data:
        rows = xp.shape[0] * xp.shape[1]
        parts = min(rows, 4 * workers)
        for c in prange(parts):
            pad_rows(x, xp, c * rows // parts, (c + 1) * rows // parts, pt, pl)
    counter = np.zeros(1, np.int64)
    for _ in prange(min(n_items, workers)):
        it = claim(counter, n_items)
        while it >= 0:
            implicit_items(it, it + 1, xp, out2, bp, bias, res2, a1, a2, clamps, Ho, Wo, kh, kw, sh, sw, dh, rpi, nbc)
            it = claim(counter, n_items)


def items(M: int, nb: int, mc: int, nbc: int) -> int:
    """How many work items :func:`conv` has: row tiles of ``mc`` × column chunks of ``nbc`` blocks."""
    return -(-M // mc) * -(-nb // nbc)


@njit(parallel=True, **JIT)
def conv(n_items, workers, x, out2, bp, bias, res2, a1, a2, clamps, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw, G, direct,
         mc, nbc):
    """A convolution (or linear layer) as GEMMs, its ``n_items`` work items (:func:`items`:
    tiles of ``mc`` output rows × ``nbc`` packed column blocks, all groups of a row tile in
    one item) in parallel on ``workers`` threads (Numba's thread count: read in Python,
    a call of ``numba.get_num_threads`` would make the function uncacheable), the items
    claimed dynamically (:func:`claim`). ``x`` is the NHWC input, ``out2`` the ``(N·Ho·Wo, C_out)`` output
    (it may share memory with the residual ``res2``), ``bp`` the weights packed per group
    ``(G, nb, kh·kw·C_in/G, NR)``; ``direct``: a 1×1 stride-1 unpadded convolution, whose input
    rows are read in place (no packing). The epilogue ``act2(act1(· + bias) + res)`` runs in the
    micro-kernel when both activations are clamps (``clamps`` holds their (lo1, hi1, lo2, hi2)),
    else through a tile of the product and :func:`store_tile`."""
    counter = np.zeros(1, np.int64)
    for _ in prange(min(n_items, workers)):
        it = claim(counter, n_items)
        while it >= 0:
            conv_items(it, it + 1, x, out2, bp, bias, res2, a1, a2, clamps, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw,
                       G, direct, mc, nbc)
            it = claim(counter, n_items)


@njit(**JIT)
def matmul_items(i0, i1, a, bp, c, mc):
    """Items i0:i1 of :func:`matmul` (item = row tile × group, groups inner)."""
    G, nb, K = bp.shape[0], bp.shape[1], bp.shape[2]
    M, n = a.shape[0], c.shape[2]
    for it in range(i0, i1):
        r0 = (it // G) * mc
        g = it % G
        gemm_block(a, r0, g * K, K, min(mc, M - r0), bp[g], 0, nb, c[g], r0, 0, n, EMPTY1, EMPTY2, -INF, INF, -INF,
                   INF)


@njit(parallel=True, **JIT)
def matmul(workers, a, bp, c, mc):
    """``c[g] = a[:, g·K:(g+1)·K] · B_g`` for every group g of the packed ``bp`` (``(G, nb, K, NR)``;
    ``c`` is ``(G, M, n)``), in parallel over tiles of ``mc`` rows × groups claimed dynamically."""
    n_items = -(-a.shape[0] // mc) * bp.shape[0]
    counter = np.zeros(1, np.int64)
    for _ in prange(min(n_items, workers)):
        it = claim(counter, n_items)
        while it >= 0:
            matmul_items(it, it + 1, a, bp, c, mc)
            it = claim(counter, n_items)
