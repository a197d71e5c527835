"""Register-blocked micro-kernels of the direct grouped convolution (:func:`.numba_kernels.grouped_rows`),
written in LLVM IR, and the weight packing they read.

A micro-kernel computes a block of ``MR`` output pixels × ``NV`` vectors of 16 output channels
in ``MR·NV`` vector registers, the whole reduction (every tap and input channel of the
group) without touching memory for the sums, then stores the block once (bias added first,
ReLU optionally fused, lanes past the block's valid columns masked). Its input is a
zero-padded copy of the input rows (so every tap of every pixel is in bounds: no border
branches): pixel ``i`` of the block reads ``a + i·lda`` plus a tap offset.

Two ways to feed the lanes:

- **broadcast** (groups of at least 16 outputs, or any width with masked lanes): the 16
  lanes of a vector are outputs of one group; each input value is loaded once per pixel
  and broadcast to all lanes, multiplied by a packed weight vector ``wp[k, lanes]`` for
  ``k = (tap, input channel)``, whose offset in the padded input is ``koff[k]``.
- **shuffle** (narrow groups, ``cg = og`` ∈ {2, 4, 8}): the 16 lanes span ``16/og`` groups; the
  ``16`` input channels of those groups are loaded as one vector per pixel and tap, and each
  input channel ``ci`` of every group is broadcast to its group's lanes by a register shuffle
  (lane ``l`` takes channel ``(l // og)·cg + ci``): each input value is read once, nothing is
  expanded in memory.

Numba's cache checks only the source file of each cached function: the drivers in
``numba_kernels.py`` (``grouped_rows``) embed these micro-kernels, so after editing this file
touch ``numba_kernels.py`` (or empty the cache folder of :mod:`.numba_cache`), or a worktree
keeps running the old micro-kernels (a fresh clone has fresh file times and compiles anew).

>>> import numpy as np
>>> w = np.zeros((64, 4, 3, 3), np.float32)        # 16 groups of 4 → 4, 3×3 (ResNeXt's cg = 4)
>>> pk = pack(w, groups=16, kh=3, kw=3, dh=1, dw=1, row=10 * 64)  # padded rows of 10 pixels
>>> pk.mode, pk.nv, pk.blocks.tolist()  # two blocks of 2 vectors: (first input, first output, columns, -)
('shuffle', 2, [[0, 0, 32, 0], [32, 32, 32, 0]])
>>> pk.koff.tolist()  # each tap's offset in the padded rows (row 640 floats, pixel 64)
[0, 64, 128, 640, 704, 768, 1280, 1344, 1408]
>>> pk = pack(np.zeros((64, 16, 3, 3), np.float32), groups=4, kh=3, kw=3, dh=1, dw=1, row=10 * 64)
>>> pk.mode, pk.nv, len(pk.blocks), pk.koff[:3].tolist()  # one 16-wide block per group; k = (tap, channel)
('broadcast', 1, 4, [0, 1, 2])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import numba_cache  # noqa: F401  - before numba: kernels cache in the user's cache folder
from llvmlite import ir  # noqa: E402
from numba import types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from cnngraph.compiler.algorithms import GROUPED_LANES  # noqa: E402

VL = GROUPED_LANES  # floats per vector (512 bits; LLVM splits them where the CPU has 256-bit vectors)
# (vectors per block) -> pixels per block, so that MR·NV accumulators plus the weight
# vectors fit in 32 vector registers.
MR_BROADCAST = {1: 12, 2: 8, 4: 6}
MR_SHUFFLE = {2: 8, 4: 8, 8: 12}  # cg -> pixels (NV = 2 for cg ≤ 4, else 1)
NV_SHUFFLE = {2: 2, 4: 2, 8: 1}
SHUFFLE_CG = tuple(NV_SHUFFLE)


def _lit(t):
    return t.literal_value


def _common(builder, tab, aoff, MR):
    """The MR pixels' input pointers: ``tab[i] + aoff`` (addresses in bytes)."""
    f32 = ir.FloatType()
    i64 = ir.IntType(64)
    tp = builder.inttoptr(tab, i64.as_pointer())
    return [builder.inttoptr(builder.add(builder.load(builder.gep(tp, [ir.Constant(i64, i)]), align=8), aoff),
                             f32.as_pointer()) for i in range(MR)]


def _store(builder, accs, MR, NV, c_addr, ldc, m, nc, relu):
    """acc[i][j] → C[i, j·16 : j·16 + 16] for rows i < m, lanes below nc; ReLU when relu ≠ 0."""
    f32 = ir.FloatType()
    i64 = ir.IntType(64)
    i32 = ir.IntType(32)
    vec = ir.VectorType(f32, VL)
    mvec = ir.VectorType(ir.IntType(1), VL)
    c0 = builder.inttoptr(c_addr, f32.as_pointer())
    mst = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), i32, mvec]),
                                         f"llvm.masked.store.v{VL}f32.p0v{VL}f32")
    vmax = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec]), f"llvm.maxnum.v{VL}f32")
    lanes = ir.Constant(ir.VectorType(i64, VL), list(range(VL)))
    masks = []
    for j in range(NV):
        lim = builder.sub(nc, ir.Constant(i64, j * VL))
        limv = builder.shuffle_vector(builder.insert_element(ir.Constant(ir.VectorType(i64, VL), ir.Undefined), lim,
                                                             ir.Constant(i32, 0)),
                                      ir.Constant(ir.VectorType(i64, VL), ir.Undefined),
                                      ir.Constant(ir.VectorType(i32, VL), [0] * VL))
        masks.append(builder.icmp_signed("<", lanes, limv))
    zero = ir.Constant(vec, [0.0] * VL)
    on = builder.icmp_signed("!=", relu, ir.Constant(i64, 0))
    for i in range(MR):
        with cgutils.if_likely(builder, builder.icmp_signed("<", ir.Constant(i64, i), m)):
            crow = builder.gep(c0, [builder.mul(ir.Constant(i64, i), ldc)])
            for j in range(NV):
                v = accs[i * NV + j]
                v = builder.select(on, builder.call(vmax, [v, zero]), v)
                p = builder.bitcast(builder.gep(crow, [ir.Constant(i64, j * VL)]), vec.as_pointer())
                # a vector with no valid lane is not stored at all (an empty mask over memory
                # that may be unmapped costs a microcode assist)
                with cgutils.if_likely(builder, builder.icmp_signed(">", nc, ir.Constant(i64, j * VL))):
                    builder.call(mst, [v, p, ir.Constant(i32, 4), masks[j]])


def _loop(builder, count, init, body):
    """A counted loop ``for k in range(count)`` carrying the vectors ``init``; ``body(k, vals)``
    returns the new vectors. Returns the vectors after the loop."""
    i64 = ir.IntType(64)
    pre = builder.block
    loop = builder.append_basic_block("g.loop")
    after = builder.append_basic_block("g.after")
    builder.cbranch(builder.icmp_signed(">", count, ir.Constant(i64, 0)), loop, after)
    builder.position_at_end(loop)
    k = builder.phi(i64)
    phis = [builder.phi(v.type) for v in init]
    new = body(k, phis)
    kn = builder.add(k, ir.Constant(i64, 1))
    end = builder.block
    builder.cbranch(builder.icmp_signed("<", kn, count), loop, after)
    k.add_incoming(ir.Constant(i64, 0), pre)
    k.add_incoming(kn, end)
    for p, v0, v1 in zip(phis, init, new):
        p.add_incoming(v0, pre)
        p.add_incoming(v1, end)
    builder.position_at_end(after)
    outs = []
    for v0, v1 in zip(init, new):
        phi = builder.phi(v0.type)
        phi.add_incoming(v0, pre)
        phi.add_incoming(v1, end)
        outs.append(phi)
    return outs


def _bias_init(builder, bias_addr, MR, NV):
    f32 = ir.FloatType()
    i64 = ir.IntType(64)
    vec = ir.VectorType(f32, VL)
    bp = builder.inttoptr(bias_addr, f32.as_pointer())
    bv = [builder.load(builder.bitcast(builder.gep(bp, [ir.Constant(i64, j * VL)]), vec.as_pointer()), align=4)
          for j in range(NV)]
    return [bv[j] for _ in range(MR) for j in range(NV)]


_SIG_ARGS = (types.intp,) * 11


@intrinsic
def mk_broadcast(typingctx, tab, aoff, m, koff, K, b, c, ldc, bias, nc, relu, MR, NV):
    """Broadcast micro-kernel: ``C[i, 0:nc] = relu?(bias + Σ_k A[i, koff[k]] · Bp[k, :])`` for
    the MR pixels ``A[i] = tab[i] + aoff`` (an int64 table of input addresses; entries past m
    repeat a valid pixel; only rows < m are stored),
    ``Bp`` packed ``(K, NV·16)``, ``koff`` int64 element offsets, ``C`` rows at stride ldc.
    All pointers are addresses (ints); ``relu`` an int (ReLU when ≠ 0); ``MR``, ``NV`` literal ints."""
    if not all(isinstance(t, types.IntegerLiteral) for t in (MR, NV)):
        return None
    sig = types.void(*_SIG_ARGS, MR, NV)

    def codegen(context, builder, signature, args):
        tab_, aoff_, m_, koff_, K_, b_addr, c_addr, ldc_, bias_, nc_, R = args[:11]
        MRv, NVv = _lit(MR), _lit(NV)
        f32 = ir.FloatType()
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        vec = ir.VectorType(f32, VL)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{VL}f32")
        rows = _common(builder, tab_, aoff_, MRv)
        kp = builder.inttoptr(koff_, i64.as_pointer())
        bptr = builder.inttoptr(b_addr, f32.as_pointer())
        undef = ir.Constant(vec, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, VL), [0] * VL)
        NR = NVv * VL

        def body(k, accs):
            off = builder.load(builder.gep(kp, [k]), align=8)
            bk = builder.gep(bptr, [builder.mul(k, ir.Constant(i64, NR))])
            bv = [builder.load(builder.bitcast(builder.gep(bk, [ir.Constant(i64, j * VL)]), vec.as_pointer()), align=4)
                  for j in range(NVv)]
            new = []
            for i in range(MRv):
                s = builder.load(builder.gep(rows[i], [off]), align=4)
                bc = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat)
                for j in range(NVv):
                    new.append(builder.call(fma, [bc, bv[j], accs[i * NVv + j]]))
            return new

        outs = _loop(builder, K_, _bias_init(builder, bias_, MRv, NVv), body)
        _store(builder, outs, MRv, NVv, c_addr, ldc_, m_, nc_, R)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def mk_shuffle(typingctx, tab, aoff, m, toff, T, b, c, ldc, bias, nc, relu, MR, NV, CG):
    """Shuffle micro-kernel for groups of ``CG`` inputs and ``CG`` outputs (literal, 16 lanes =
    16/CG groups): for each tap t (input offset ``toff[t]``) and pixel i, the vector
    ``X = A[i, toff[t] : toff[t] + 16]`` (the 16 input channels of the lanes' groups; vector j
    of the block at +16·j) gives lane l the value ``X[(l // CG)·CG + ci]`` for each ci,
    multiplied by ``Bp[t, ci, j, l]``. ``C[i, 0:nc] = relu?(bias + Σ)``; rows as in
    :func:`mk_broadcast`."""
    if not all(isinstance(t, types.IntegerLiteral) for t in (MR, NV, CG)):
        return None
    sig = types.void(*_SIG_ARGS, MR, NV, CG)

    def codegen(context, builder, signature, args):
        tab_, aoff_, m_, toff_, T_, b_addr, c_addr, ldc_, bias_, nc_, R = args[:11]
        MRv, NVv, CGv = _lit(MR), _lit(NV), _lit(CG)
        f32 = ir.FloatType()
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        vec = ir.VectorType(f32, VL)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{VL}f32")
        rows = _common(builder, tab_, aoff_, MRv)
        tp = builder.inttoptr(toff_, i64.as_pointer())
        bptr = builder.inttoptr(b_addr, f32.as_pointer())
        undef = ir.Constant(vec, ir.Undefined)
        masks = [ir.Constant(ir.VectorType(i32, VL), [(l // CGv) * CGv + ci for l in range(VL)]) for ci in range(CGv)]
        per_t = CGv * NVv * VL

        def body(t, accs):
            off = builder.load(builder.gep(tp, [t]), align=8)
            bt = builder.gep(bptr, [builder.mul(t, ir.Constant(i64, per_t))])
            wv = [[builder.load(builder.bitcast(builder.gep(bt, [ir.Constant(i64, (ci * NVv + j) * VL)]),
                                                vec.as_pointer()), align=4) for j in range(NVv)] for ci in range(CGv)]
            new = list(accs)
            for i in range(MRv):
                base = builder.gep(rows[i], [off])
                for j in range(NVv):
                    xv = builder.load(builder.bitcast(builder.gep(base, [ir.Constant(i64, j * VL)]), vec.as_pointer()),
                                      align=4)
                    acc = new[i * NVv + j]
                    for ci in range(CGv):
                        acc = builder.call(fma, [builder.shuffle_vector(xv, undef, masks[ci]), wv[ci][j], acc])
                    new[i * NVv + j] = acc
            return new

        outs = _loop(builder, T_, _bias_init(builder, bias_, MRv, NVv), body)
        _store(builder, outs, MRv, NVv, c_addr, ldc_, m_, nc_, R)
        return context.get_dummy_value()

    return sig, codegen


@dataclass
class Packed:
    """A grouped convolution's weights packed for the micro-kernels, and their tables.

    ``wp`` (blocks, K·NV·16): block b's weights in the order the kernel reads them;
    ``blocks`` (blocks, 4): each block's (first input channel, first output channel,
    valid output columns, unused); ``koff`` (broadcast: per (tap, channel); shuffle: per tap)
    element offsets in the padded input rows, whose row is ``row`` elements long (padded
    width × C_in); ``bias`` (blocks, NV·16)."""
    mode: str
    nv: int
    mr: int
    cg: int
    wp: np.ndarray
    blocks: np.ndarray
    koff: np.ndarray
    bias: np.ndarray


def pixel_stride(cin: int) -> int:
    """Elements from one pixel to the next in the padded input rows: C_in, plus 16 when C_in
    is a multiple of 64 (256 B), so that the pixels of a block, read at the same tap, fall
    in different sets of the L1 cache (pixels 4 KB apart share one set of 8 lines).

    >>> pixel_stride(1024), pixel_stride(96)
    (1040, 96)
    """
    return cin + VL if cin % 64 == 0 else cin


def choose_mode(cg: int, og: int, cout: int) -> str:
    """``shuffle`` for groups of cg = og ∈ SHUFFLE_CG inputs and outputs whose output
    channels fill whole blocks, else ``broadcast``."""
    if cg == og and cg in NV_SHUFFLE and cout % (NV_SHUFFLE[cg] * VL) == 0:
        return "shuffle"
    return "broadcast"


def pack(w: np.ndarray, groups: int, kh: int, kw: int, dh: int, dw: int, row: int, bias=None,
         mode: str | None = None, pixel: int | None = None) -> Packed:
    """Pack PyTorch-layout weights ``(C_out, C_in/G, kh, kw)`` of a grouped convolution for the
    micro-kernels; ``row`` is the padded input row's length in elements (width × ``pixel``, the
    elements from one pixel to the next: C_in unless padded)."""
    cout, cg = w.shape[0], w.shape[1]
    og = cout // groups
    cin = cg * groups
    mode = mode or choose_mode(cg, og, cout)
    b = np.zeros(cout, np.float32) if bias is None or len(bias) == 0 else np.asarray(bias, np.float32)
    pixel = pixel or cin
    taps = [(i * dh * row + j * dw * pixel) for i in range(kh) for j in range(kw)]
    wt = w.reshape(cout, cg, kh * kw).astype(np.float32)
    if mode == "shuffle":
        nv = NV_SHUFFLE[cg]
        nr = nv * VL
        nb = cout // nr
        # wp[s, t, ci, j, l] = W[s·nr + j·16 + l, ci, t]
        wp = wt.reshape(nb, nv, VL, cg, kh * kw).transpose(0, 4, 3, 1, 2).reshape(nb, -1)
        blocks = np.array([[s * nr // og * cg, s * nr, nr, 0] for s in range(nb)], np.int64)
        koff = np.array(taps, np.int64)
        bb = b.reshape(nb, nr)
        return Packed(mode, nv, MR_SHUFFLE[cg], cg, np.ascontiguousarray(wp), blocks, koff, np.ascontiguousarray(bb))
    # the widest blocks that waste no more lanes than 16-wide ones
    nv = max((1, 2, 4), key=lambda v: (-(-(-og // (v * VL)) * v), v))
    nr = nv * VL
    per = -(-og // nr)
    K = kh * kw * cg
    wp = np.zeros((groups * per, K, nr), np.float32)
    bb = np.zeros((groups * per, nr), np.float32)
    blocks = []
    # k = (tap, channel): wp[g·per + q, t·cg + ci, col] = W[g·og + q·nr + col, ci, t]
    wg = wt.reshape(groups, og, cg, kh * kw).transpose(0, 3, 2, 1).reshape(groups, K, og)
    for g in range(groups):
        for q in range(per):
            c0 = q * nr
            n = min(nr, og - c0)
            wp[g * per + q, :, :n] = wg[g, :, c0:c0 + n]
            bb[g * per + q, :n] = b[g * og + c0:g * og + c0 + n]
            blocks.append([g * cg, g * og + c0, n, 0])
    koff = np.array([t + ci for t in taps for ci in range(cg)], np.int64)
    return Packed(mode, nv, MR_BROADCAST[nv], cg, wp.reshape(groups * per, -1), np.array(blocks, np.int64), koff, bb)
