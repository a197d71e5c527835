"""Our own single-precision GEMM for the Numba backend: a register-blocked micro-kernel
written in LLVM IR, driven by Numba loops that run inside the backend's parallel regions.

Why not BLAS: BLAS runs on its own thread pool (or one thread per call from ours), packs
the weights again at every call, and cannot fuse the convolution's epilogue; at batch 1
most products are narrow (a 1×1 convolution of 196 rows by 64 columns) and the hand-offs
between two thread pools cost more than the product. Here the weights are packed once,
when the executor is built, in the layout the micro-kernel reads; the activations are read
in place (row pointers with a stride, as MLAS does), and each tile's bias, activation and
residual are applied while the tile is in cache.

The micro-kernel computes an ``MR × NR`` block (8 rows × 32 columns: 16 vector
accumulators of 16 floats, two vector loads of B and eight broadcasts of A per step of k),
``C[i, j] (+)= Σ_k A[i, k]·B[k, j]``, A's rows at stride ``lda`` (rows past ``m`` repeat the
last one, their results are not stored), B packed ``(k, NR)``, C at stride ``ldc``.

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

from .numba_kernels import act_row, im2col  # noqa: E402

JIT = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False)

MR = 8      # rows of the micro-kernel's block
NV = 2      # vectors of 16 floats per row
VL = 16     # floats per vector (512 bits; LLVM splits them where the CPU has 256-bit vectors)
NR = NV * VL
KC = 256    # k-block: a (KC, NR) panel of B (32 KB) stays in L1 while the row panels pass


def _ptr(builder, addr):
    return builder.inttoptr(addr, ir.FloatType().as_pointer())


@intrinsic
def microkernel(typingctx, a, lda, m, b, c, ldc, k, accumulate):
    """``C[0:m, 0:NR] (+)= A[0:m, 0:k] · Bp[0:k, 0:NR]`` on raw float32 addresses (ints):
    ``a`` (rows at stride ``lda`` elements), ``b`` (packed ``(k, NR)``), ``c`` (rows at stride
    ``ldc``; all MR rows written, so C must have MR rows). ``accumulate``: add to C's values
    instead of overwriting them."""
    sig = types.void(types.intp, types.intp, types.intp, types.intp, types.intp, types.intp, types.intp,
                     types.intp)

    def codegen(context, builder, signature, args):
        a_addr, lda_, m_, b_addr, c_addr, ldc_, k_, acc_ = args
        f32 = ir.FloatType()
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        vec = ir.VectorType(f32, VL)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                             f"llvm.fma.v{VL}f32")
        a0 = _ptr(builder, a_addr)
        bptr = _ptr(builder, b_addr)
        c0 = _ptr(builder, c_addr)
        one = ir.Constant(i64, 1)
        last = builder.sub(m_, one)
        rows = []
        for i in range(MR):
            ci = ir.Constant(i64, i)
            ri = builder.select(builder.icmp_signed("<", ci, m_), ci, last)
            rows.append(builder.gep(a0, [builder.mul(ri, lda_)]))
        crow = [builder.gep(c0, [builder.mul(ir.Constant(i64, i), ldc_)]) for i in range(MR)]
        zero = ir.Constant(vec, [0.0] * VL)

        def cvec(i, j):
            p = builder.gep(crow[i], [ir.Constant(i64, j * VL)])
            return builder.bitcast(p, vec.as_pointer())

        # initial accumulators: C's values or zeros
        entry = builder.block
        with builder.if_else(builder.icmp_signed("!=", acc_, ir.Constant(i64, 0))) as (then, other):
            with then:
                loaded = [builder.load(cvec(i, j), align=4) for i in range(MR) for j in range(NV)]
                then_end = builder.block
            with other:
                other_end = builder.block
        init = []
        for n, v in enumerate(loaded):
            phi = builder.phi(vec)
            phi.add_incoming(v, then_end)
            phi.add_incoming(zero, other_end)
            init.append(phi)
        del entry
        # for kk in range(k): acc[i][j] = fma(bcast(A[i, kk]), B[kk, j], acc[i][j])
        pre = builder.block
        loop = builder.append_basic_block("mk.loop")
        body_end = builder.append_basic_block("mk.after")
        builder.cbranch(builder.icmp_signed(">", k_, ir.Constant(i64, 0)), loop, body_end)
        builder.position_at_end(loop)
        kk = builder.phi(i64)
        accs = [builder.phi(vec) for _ in range(MR * NV)]
        bk = builder.gep(bptr, [builder.mul(kk, ir.Constant(i64, NR))])
        bv = [builder.load(builder.bitcast(builder.gep(bk, [ir.Constant(i64, j * VL)]), vec.as_pointer()), align=4)
              for j in range(NV)]
        new = []
        undef = ir.Constant(vec, ir.Undefined)
        mask = ir.Constant(ir.VectorType(i32, VL), [0] * VL)
        for i in range(MR):
            s = builder.load(builder.gep(rows[i], [kk]), align=4)
            bc = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, mask)
            for j in range(NV):
                new.append(builder.call(fma, [bc, bv[j], accs[i * NV + j]]))
        kn = builder.add(kk, one)
        loop_end = builder.block
        builder.cbranch(builder.icmp_signed("<", kn, k_), loop, body_end)
        kk.add_incoming(ir.Constant(i64, 0), pre)
        kk.add_incoming(kn, loop_end)
        for p, v0, v1 in zip(accs, init, new):
            p.add_incoming(v0, pre)
            p.add_incoming(v1, loop_end)
        builder.position_at_end(body_end)
        outs = []
        for v0, v1 in zip(init, new):
            phi = builder.phi(vec)
            phi.add_incoming(v0, pre)
            phi.add_incoming(v1, loop_end)
            outs.append(phi)
        for i in range(MR):
            for j in range(NV):
                builder.store(outs[i * NV + j], cvec(i, j), align=4)
        return context.get_dummy_value()

    return sig, codegen


def pack_b(w_rows: np.ndarray) -> np.ndarray:
    """Weights as rows ``(N, K)`` (a convolution's ``(C_out, kh·kw·C_in)``) packed for the
    micro-kernel: ``(⌈N/NR⌉, K, NR)``, columns past N zero."""
    N, K = w_rows.shape
    nb = -(-N // NR)
    bp = np.zeros((nb, NR, K), np.float32)
    bp.reshape(nb * NR, K)[:N] = w_rows
    return np.ascontiguousarray(bp.transpose(0, 2, 1))


def pack_conv(w: np.ndarray, groups: int) -> np.ndarray:
    """A convolution's weights ``(C_out, C_in/G, kh, kw)`` packed per group for :func:`conv`:
    ``(G, ⌈og/NR⌉, kh·kw·C_in/G, NR)``, k in im2col's order (tap, then channel)."""
    cout, cg, kh, kw = w.shape
    og = cout // groups
    rows = w.reshape(groups, og, cg, kh, kw).transpose(0, 1, 3, 4, 2).reshape(groups, og, kh * kw * cg)
    return np.stack([pack_b(np.ascontiguousarray(r)) for r in rows])


@njit(**JIT)
def gemm_block(a, ar0, ac0, K, m, bp, j0, j1, ct, cc0):
    """``ct[0:m, cc0:cc0 + (j1-j0)·NR] = a[ar0:ar0+m, ac0:ac0+K] · B`` for the packed column
    blocks j0:j1 of ``bp`` (``(nb, K, NR)``); ``ct`` has at least ⌈m/MR⌉·MR rows (the
    micro-kernel writes whole blocks). ``a`` may be any row-strided view: it is read in place."""
    lda = a.strides[0] // 4
    ldc = ct.strides[0] // 4
    abase = a.ctypes.data + (ar0 * lda + ac0) * 4
    bbase = bp.ctypes.data
    cbase = ct.ctypes.data + cc0 * 4
    bstride = bp.strides[0]
    for k0 in range(0, K, KC):
        kc = min(KC, K - k0)
        for j in range(j0, j1):
            bk = bbase + j * bstride + k0 * NR * 4
            for i0 in range(0, m, MR):
                microkernel(abase + (i0 * lda + k0) * 4, lda, min(MR, m - i0), bk,
                            cbase + (i0 * ldc + (j - j0) * NR) * 4, ldc, kc, k0)


@njit(**JIT)
def gemm(a, bp, c):
    """``c = a · B`` (B packed by :func:`pack_b`), one thread; for tests and examples."""
    M, N = c.shape
    nb = bp.shape[0]
    ct = np.empty((-(-min(M, 64) // MR) * MR, nb * NR), np.float32)
    for r0 in range(0, M, 64):
        m = min(64, M - r0)
        gemm_block(a, r0, 0, a.shape[1], m, bp, 0, nb, ct, 0)
        c[r0:r0 + m] = ct[:m, :N]


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


@njit(parallel=True, **JIT)
def conv(x, out2, bp, bias, res2, a1, a2, direct, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw, G, mc, nbc):
    """A convolution (or linear layer) as GEMMs, in parallel over tiles of ``mc`` output rows
    × ``nbc`` packed column blocks (all groups of a row tile in one work item when G > 1),
    epilogue fused. ``x`` is the NHWC input, ``out2`` the ``(N·Ho·Wo, C_out)`` output, ``bp``
    the weights packed per group ``(G, nb, kh·kw·C_in/G, NR)``; ``direct``: a 1×1 stride-1
    unpadded convolution, whose input rows are read in place (no packing)."""
    N, H, W, C = x.shape
    M, cout = out2.shape
    cg, og = C // G, cout // G
    Kd = kh * kw * cg
    nb = bp.shape[1]
    nct = -(-nb // nbc)
    nrt = -(-M // mc)
    x2 = x.reshape((N * H * W, C))
    for it in prange(nrt * nct):
        ri = it // nct
        j0 = (it % nct) * nbc
        j1 = min(nb, j0 + nbc)
        r0 = ri * mc
        m = min(mc, M - r0)
        ct = np.empty((-(-m // MR) * MR, G * (j1 - j0) * NR), np.float32)
        if direct:
            a = x2
            ar0 = r0
        else:
            a = np.empty((m, G * Kd), np.float32)
            im2col(x, a, r0, r0 + m, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw, G, cg)
            ar0 = 0
        for g in range(G):
            gemm_block(a, ar0, g * (cg if direct else Kd), Kd, m, bp[g], j0, j1, ct, g * (j1 - j0) * NR)
            c0 = j0 * NR
            n = min(og, j1 * NR) - c0
            store_tile(ct, g * (j1 - j0) * NR, m, n, out2, r0, g * og + c0, bias, res2, a1, a2)
