"""Numba kernels of the CPU backend: channels-last float32, one tile of work per call.

Every kernel is compiled ``nogil`` and ``cache=True`` and works on a range of rows
(``r0:r1``), so the parallel drivers (:mod:`.numba_par`) run chunks of rows on every core. Arrays are C-contiguous: 4-D ``(N, H, W, C)`` values
or their 2-D ``(N·H·W, C)`` reshapes; missing optional operands are empty arrays, so each
kernel compiles once.

Activation codes are the registry's (:attr:`cnngraph.ir.ops.Activation.code`, 0 none); :func:`act_row`
holds one branch per activation of this backend's kernel table :data:`ACT_ROW_CODES`.

>>> import numpy as np
>>> t = np.array([-2.0, 0.5, 7.0], np.float32)
>>> act_row(t, 1); t  # in place: ReLU is activation code 1 (cnngraph.ir.ops)
array([0. , 0.5, 7. ], dtype=float32)
"""
from __future__ import annotations

import math

import llvmlite.binding as llvm
import numpy as np

from . import numba_cache  # noqa: F401  - before numba: kernels cache in the user's cache folder
from llvmlite import ir  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from . import numba_grouped as G  # noqa: E402
from .numba_simd import LANES, prefetch, vadd, vfma, vload, vmul, vsplat, vstore  # noqa: E402

JIT = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False)

# Loops over the channels that read or write many rows (Winograd's 36 patch positions)
# vectorise only when LLVM may check that many address ranges for overlap before the loop;
# its defaults give up (and run scalar code, 5-10× slower) beyond a handful. These options
# only raise those limits; they affect kernels compiled after this import.
for _opt in ("-runtime-memory-check-threshold=256", "-memory-check-merge-threshold=256",
             "-vectorize-memory-check-threshold=256"):
    llvm.set_option("", _opt)


# exp for sigmoid and SiLU without a library call, so the loops over channels vectorise
# (LLVM's expf is scalar: 3 ns a value, 30× slower): exp(x) = 2^y = 2^f · 2^n, y = x·log2 e,
# n = round(y), f = y − n in [−1/2, 1/2]. n is rounded by adding 1.5·2^23 + 127 (a float32 in
# [2^23, 2^24) has a spacing of 1, so the sum is rounded to an integer and its low mantissa
# bits hold n + 127); those bits shifted into the exponent field are 2^n (a bit cast, no
# conversion). 2^f by a polynomial (below). The rounding of x·log2 e adds up to a relative
# 1e-7·|x| (4e-6 at |x| = 88, where sigmoid and SiLU are within 1e-30 of 0 or x; as before). Arguments clamped to [−87, 88], where n + 127 stays
# in [1, 254] and exp is a normal float32. No reassociation may be allowed where it is
# inlined (fastmath ``reassoc`` would fold (y + M) − M into y).
_LOG2E = np.float32(1.4426950408889634)
_ROUND = np.float32(1.5 * 2 ** 23 + 127)
# 2^f = e^(f·ln 2): its Taylor series to degree 7 (relative error 1e-7 on [−1/2, 1/2]; a
# fitted degree-5 polynomial, 1.7e-7, saved two multiply-adds but pushed the ill-conditioned
# EfficientNets of the zoo past their accuracy bound against PyTorch float64)
_E1, _E2, _E3, _E4, _E5, _E6, _E7 = (np.float32(math.log(2) ** i / math.factorial(i)) for i in range(1, 8))


@intrinsic
def _pow2_of_rounded(typingctx, r):
    """2^n from ``r`` = n + 127 + 1.5·2^23 (float32): r's bits shifted left by 23 (the
    mantissa's low bits n + 127 become the exponent field; the rest shifts out)."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.bitcast(args[0], i32)
        return builder.bitcast(builder.shl(bits, ir.Constant(i32, 23)), ir.FloatType())

    return sig, codegen


@njit(inline="always", **JIT)
def exp32(x):
    """exp(x) in float32, vectorisable (see above)."""
    x = min(max(x, np.float32(-87.0)), np.float32(88.0))
    r = x * _LOG2E + _ROUND
    nf = r - _ROUND  # round(x·log2 e), exactly
    f = x * _LOG2E - nf
    p = np.float32(1) + f * (_E1 + f * (_E2 + f * (_E3 + f * (_E4 + f * (_E5 + f * (_E6 + f * _E7))))))
    return p * _pow2_of_rounded(r)


# The activations act_row computes, by their registry code (the others run the generic kernel).
ACT_ROW_CODES = {"relu": 1, "relu6": 2, "sigmoid": 3, "tanh": 4, "silu": 5, "hardswish": 6, "hardsigmoid": 7, "gelu": 8,
                 "leaky_relu": 9, "elu": 10, "mish": 11, "softplus": 13,
                 "gelu_tanh": 14}


# act_row may turn a division into a product by a reciprocal (``arcp``: AVX-512's reciprocal
# and one Newton step instead of a full division: sigmoid and SiLU 1.7× faster, a relative
# difference of a few float32 ulps).
@njit(**dict(JIT, fastmath={"arcp", "contract"}))
def act_row(t, code, p=0.0):
    """Activation ``code`` (parameter ``p``: a slope, an α) on a 1-D float32 array, in place;
    the branch sits outside the loop."""
    n = t.shape[0]
    if code == 0:
        return
    if code == 1:
        for c in range(n):
            t[c] = max(t[c], np.float32(0))
    elif code == 2:
        for c in range(n):
            t[c] = min(max(t[c], np.float32(0)), np.float32(6))
    elif code == 3:
        for c in range(n):
            t[c] = np.float32(1) / (np.float32(1) + exp32(-t[c]))
    elif code == 4:
        for c in range(n):
            t[c] = np.tanh(t[c])
    elif code == 5:
        for c in range(n):
            t[c] = t[c] / (np.float32(1) + exp32(-t[c]))
    elif code == 6:
        for c in range(n):
            t[c] = t[c] * min(max(t[c] + np.float32(3), np.float32(0)), np.float32(6)) / np.float32(6)
    elif code == 7:
        for c in range(n):
            t[c] = min(max(t[c] + np.float32(3), np.float32(0)), np.float32(6)) / np.float32(6)
    elif code == 8:
        for c in range(n):
            t[c] = np.float32(0.5) * t[c] * (np.float32(1) + np.float32(math.erf(t[c] * 0.7071067811865476)))
    elif code == 9:
        for c in range(n):
            t[c] = t[c] if t[c] >= 0 else np.float32(p) * t[c]
    elif code == 10:
        for c in range(n):
            t[c] = t[c] if t[c] > 0 else np.float32(p) * np.float32(math.expm1(t[c]))
    elif code == 11:
        for c in range(n):
            t[c] = t[c] * np.float32(math.tanh(max(t[c], np.float32(0)) + math.log1p(math.exp(-abs(t[c])))))
    elif code == 14:
        for c in range(n):
            v = t[c]
            t[c] = np.float32(0.5) * v * (np.float32(1) + np.float32(math.tanh(
                np.float32(0.7978845608028654) * (v + np.float32(0.044715) * v * v * v))))
    elif code == 13:
        for c in range(n):
            b = np.float32(p) * t[c]
            if b <= np.float32(20):  # PyTorch's threshold: x itself above it
                t[c] = np.float32((max(b, np.float32(0)) + math.log1p(math.exp(-abs(b)))) / p)


@njit(**JIT)
def store_row(acc, RC, base, has_res, rf, of, a1, a2):
    """The epilogue of a direct kernel's output row: activation ``a1``, then the residual at
    ``rf[base:]`` and activation ``a2`` when there is one, stored into ``of[base:base + RC]``."""
    act_row(acc[:RC], a1)
    if has_res:
        rv = rf[base:base + RC]
        for e in range(RC):
            acc[e] += rv[e]
        act_row(acc[:RC], a2)
    ov = of[base:base + RC]
    for e in range(RC):
        ov[e] = acc[e]


@njit(**JIT)
def epilogue(src, block, dst, r0, r1, c0, c1, scale, bias, res, a1, a2, p1=0.0):
    """``dst[r, c] = act2(act1(src·scale + bias) + res[r, c])`` for rows r0:r1, columns c0:c1
    (``p1``: act1's parameter; act2 takes none).

    ``src`` is ``dst`` itself (``block=False``, in place) or a scratch block holding rows
    r0:r1 and columns c0:c1 only (``block=True``). ``dst`` may share memory with ``res``:
    each row goes through a small buffer, so ``res`` is read before ``dst`` is written.
    """
    n = c1 - c0
    t = np.empty(n, np.float32)
    has_scale, has_bias, has_res = scale.shape[0] > 0, bias.shape[0] > 0, res.shape[0] > 0
    sc = 0 if block else c0
    sv = scale[c0:c1] if has_scale else scale
    bv = bias[c0:c1] if has_bias else bias
    for r in range(r0, r1):
        # row views indexed from 0 keep negative-index handling out of the loops (they vectorise)
        xv = src[r - r0 if block else r, sc:sc + n]
        for c in range(n):
            t[c] = xv[c]
        if has_scale:
            for c in range(n):
                t[c] *= sv[c]
        if has_bias:
            for c in range(n):
                t[c] += bv[c]
        act_row(t, a1, p1)
        if has_res:
            rv = res[r, c0:c1]
            for c in range(n):
                t[c] += rv[c]
        act_row(t, a2)
        dv = dst[r, c0:c1]
        for c in range(n):
            dv[c] = t[c]


@njit(**JIT)
def im2col(x, cols, r0, r1, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw, G, cg):
    """Rows r0:r1 of the packed matrix of a convolution with G groups of cg input channels:
    row = output pixel (n, oh, ow), columns = (group, i, j, channel) taps, zeros in the
    padding (row r is ``cols[r - r0]``).

    With one group and no horizontal dilation, the kw taps of a kernel row are one
    contiguous run of kw·C inputs (channels last): copied at once when inside the image (a
    plain loop for runs shorter than 64 values, such as the stem's 7 taps × 3 channels,
    where a slice copy's set-up costs more than the copy)."""
    N, H, W, C = x.shape
    xf = x.reshape(N * H * W * C)
    run = G == 1 and dw == 1
    hw = Ho * Wo
    L = kw * C
    # the output pixel (n, oh, ow) of row r0, then stepped along (no divisions per row)
    n = r0 // hw
    oh = (r0 % hw) // Wo
    ow = r0 % Wo - 1
    for r in range(r0, r1):
        ow += 1
        if ow == Wo:
            ow = 0
            oh += 1
            if oh == Ho:
                oh = 0
                n += 1
        cr = cols[r - r0]
        iw0 = ow * sw - pl
        for i in range(kh):
            ih = oh * sh - pt + i * dh
            if ih < 0 or ih >= H:
                for g in range(G):
                    col = (g * kh + i) * kw * cg
                    for q in range(kw * cg):
                        cr[col + q] = 0
            elif run and iw0 >= 0 and iw0 + kw <= W:
                o = ((n * H + ih) * W + iw0) * C
                b = i * L
                if L < 64:
                    for q in range(L):
                        cr[b + q] = xf[o + q]
                else:
                    cr[b:b + L] = xf[o:o + L]
            else:
                # element loops, not slice copies: groups may be a few channels wide
                for j in range(kw):
                    iw = iw0 + j * dw
                    inside = 0 <= iw < W
                    for g in range(G):
                        col = ((g * kh + i) * kw + j) * cg
                        if inside:
                            xo = ((n * H + ih) * W + iw) * C + g * cg
                            for ci in range(cg):
                                cr[col + ci] = xf[xo + ci]
                        else:
                            for ci in range(cg):
                                cr[col + ci] = 0


@njit(**JIT)
def store_pixel(acc, out, res, n, oh, ow, a1, a2):
    """A direct convolution's fused epilogue for one output pixel: act2(act1(acc) + res)."""
    act_row(acc, a1)
    if res.shape[0] > 0:
        for c in range(acc.shape[0]):
            acc[c] += res[n, oh, ow, c]
    act_row(acc, a2)
    for c in range(acc.shape[0]):
        out[n, oh, ow, c] = acc[c]


@njit(**JIT)
def depthwise(x, w, bias, out, t0, t1, mult, sh, sw, pt, pl, dh, dw, res, a1, a2):
    """Depthwise convolution (in_channels/groups = 1, ``mult`` outputs per input channel)
    for output rows t0:t1 of (n, oh); w is (kh, kw, C_out); epilogue fused."""
    N, H, W, Cin = x.shape
    Ho, Wo, C = out.shape[1], out.shape[2], out.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    acc = np.empty(C, np.float32)
    for t in range(t0, t1):
        n, oh = t // Ho, t % Ho
        for ow in range(Wo):
            if bias.shape[0] > 0:
                for c in range(C):
                    acc[c] = bias[c]
            else:
                acc[:] = 0
            for i in range(kh):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                for j in range(kw):
                    iw = ow * sw - pl + j * dw
                    if iw < 0 or iw >= W:
                        continue
                    if mult == 1:
                        for c in range(C):
                            acc[c] += x[n, ih, iw, c] * w[i, j, c]
                    else:
                        for c in range(C):
                            acc[c] += x[n, ih, iw, c // mult] * w[i, j, c]
            store_pixel(acc, out, res, n, oh, ow, a1, a2)


@njit(**JIT)
def maxpool(x, out, t0, t1, kh, kw, sh, sw, pt, pl, dh, dw):
    """Max pooling for output rows t0:t1 of (n, oh); padding and ceil_mode overhang ignored."""
    N, H, W, C = x.shape
    Ho, Wo = out.shape[1], out.shape[2]
    acc = np.empty(C, np.float32)
    for t in range(t0, t1):
        n, oh = t // Ho, t % Ho
        for ow in range(Wo):
            acc[:] = -np.inf
            for i in range(kh):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                for j in range(kw):
                    iw = ow * sw - pl + j * dw
                    if iw < 0 or iw >= W:
                        continue
                    for c in range(C):
                        acc[c] = max(acc[c], x[n, ih, iw, c])
            for c in range(C):
                out[n, oh, ow, c] = acc[c]


@njit(**JIT)
def avgpool(x, out, t0, t1, kh, kw, sh, sw, pt, pl, div):
    """Average pooling for output rows t0:t1 of (n, oh); ``div`` (Ho, Wo) holds PyTorch's divisors."""
    N, H, W, C = x.shape
    Ho, Wo = out.shape[1], out.shape[2]
    acc = np.empty(C, np.float32)
    for t in range(t0, t1):
        n, oh = t // Ho, t % Ho
        for ow in range(Wo):
            acc[:] = 0
            for i in range(kh):
                ih = oh * sh - pt + i
                if ih < 0 or ih >= H:
                    continue
                for j in range(kw):
                    iw = ow * sw - pl + j
                    if iw < 0 or iw >= W:
                        continue
                    for c in range(C):
                        acc[c] += x[n, ih, iw, c]
            inv = np.float32(1) / div[oh, ow]
            for c in range(C):
                out[n, oh, ow, c] = acc[c] * inv


@njit(**JIT)
def adaptive_pool(x, out, t0, t1, is_max, c0, c1):
    """Adaptive average/max pooling (PyTorch's windows) for output rows t0:t1 of (n, oh),
    channels c0:c1; averages by :func:`window_mean` (explicit vectors)."""
    N, H, W, C = x.shape
    Ho, Wo = out.shape[1], out.shape[2]
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    acc = np.empty(C, np.float32)
    for t in range(t0, t1):
        n, oh = t // Ho, t % Ho
        h0, h1 = (oh * H) // Ho, -((-(oh + 1) * H) // Ho)
        for ow in range(Wo):
            w0, w1 = (ow * W) // Wo, -((-(ow + 1) * W) // Wo)
            if not is_max:
                inv = np.float32(1) / np.float32((h1 - h0) * (w1 - w0))
                window_mean(xf, n * H * W * C, h0, h1, w0, w1, W, C, c0, c1, inv, of, (t * Wo + ow) * C + c0, acc)
                continue
            acc[c0:c1] = -np.inf
            for ih in range(h0, h1):
                for iw in range(w0, w1):
                    for c in range(c0, c1):
                        acc[c] = max(acc[c], x[n, ih, iw, c])
            for c in range(c0, c1):
                out[n, oh, ow, c] = acc[c]


@njit(**JIT)
def window_mean(xf, base, h0, h1, w0, w1, W, C, c0, c1, inv, of, obase, acc):
    """``of[obase + c − c0] = inv · Σ x[ih, iw, c]`` over the window rows h0:h1, columns
    w0:w1, channels c0:c1 of one sample (``xf`` flat NHWC, the sample at ``base``, W columns
    of C channels); ``acc`` a scratch of at least c1 − c0 floats. Explicit 16-lane vectors
    (lanes past ``c1`` masked: neither read nor written), each input value read once.

    At most 64 channels (the SE squeeze of an early, large map): the sums stay in 4 vector
    registers over the whole window, 4 independent chains of additions. More channels: two
    pixels' channels at a time added to the sums in ``acc`` (L1; a chain through memory
    waits for the store to reach the next load, hidden only when the chains, C/16, are
    many), along runs of contiguous pixels (a global pool's window is one run).

    >>> x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)  # H 2, W 3, C 5
    >>> of = np.zeros(5, np.float32)
    >>> window_mean(x.reshape(-1), 0, 0, 2, 1, 3, 3, 5, 0, 5, np.float32(0.25), of, 0, np.empty(5, np.float32))
    >>> bool(np.allclose(of, x[:, 1:3].mean(axis=(0, 1))))
    True
    """
    n = c1 - c0
    vi = vsplat(inv)
    if n <= 4 * LANES:
        m0 = min(LANES, n)
        m1 = min(LANES, max(0, n - LANES))
        m2 = min(LANES, max(0, n - 2 * LANES))
        m3 = min(LANES, max(0, n - 3 * LANES))
        # a block with no lanes reads at the first block's address (inside the array)
        o1 = LANES if m1 > 0 else 0
        o2 = 2 * LANES if m2 > 0 else 0
        o3 = 3 * LANES if m3 > 0 else 0
        a0 = a1 = a2 = a3 = vsplat(np.float32(0))
        for ih in range(h0, h1):
            p = base + (ih * W + w0) * C + c0
            for iw in range(w0, w1):
                a0 = vadd(a0, vload(xf, p, m0))
                a1 = vadd(a1, vload(xf, p + o1, m1))
                a2 = vadd(a2, vload(xf, p + o2, m2))
                a3 = vadd(a3, vload(xf, p + o3, m3))
                p += C
        vstore(of, obase, vmul(a0, vi), m0)
        vstore(of, obase + o1, vmul(a1, vi), m1)
        vstore(of, obase + o2, vmul(a2, vi), m2)
        vstore(of, obase + o3, vmul(a3, vi), m3)
        return
    full = n - n % LANES
    m = n - full
    zero = vsplat(np.float32(0))
    for c in range(0, n, LANES):
        vstore(acc, c, zero, min(LANES, n - c))
    # runs of contiguous pixels: the whole window when it spans the rows (a global pool)
    whole = w0 == 0 and w1 == W
    for ih in range(h0, h1 if not whole else h0 + 1):
        p0 = base + (ih * W + w0) * C + c0
        p1 = base + ((h1 - 1 if whole else ih) * W + w1) * C + c0
        # two pixels a step: half the loads and stores of the sums
        for p in range(p0, p1 - C, 2 * C):
            for c in range(0, full, LANES):
                v = vadd(vload(xf, p + c, LANES), vload(xf, p + C + c, LANES))
                vstore(acc, c, vadd(vload(acc, c, LANES), v), LANES)
            if m > 0:
                v = vadd(vload(xf, p + full, m), vload(xf, p + C + full, m))
                vstore(acc, full, vadd(vload(acc, full, m), v), m)
        if (p1 - p0) // C % 2 == 1:
            p = p1 - C
            for c in range(0, full, LANES):
                vstore(acc, c, vadd(vload(acc, c, LANES), vload(xf, p + c, LANES)), LANES)
            if m > 0:
                vstore(acc, full, vadd(vload(acc, full, m), vload(xf, p + full, m)), m)
    for c in range(0, full, LANES):
        vstore(of, obase + c, vmul(vload(acc, c, LANES), vi), LANES)
    if m > 0:
        vstore(of, obase + full, vmul(vload(acc, full, m), vi), m)


@njit(**JIT)
def mul_bcast(x, s, out, r0, r1, hw):
    """``out = x · s`` for rows r0:r1 of x (N·H·W, C), s (N, C) per sample and channel (SE);
    ``out`` may be ``x`` itself. Explicit 16-lane vectors: a loop over the channels that
    writes in place vectorises only behind an overlap check between ``out`` and ``x``, which
    in place fails (the scalar loop runs, 2-3× slower)."""
    C = x.shape[1]
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    sf = s.reshape(s.size)
    full = C - C % LANES
    m = C - full
    r = r0
    while r < r1:
        n = r // hw
        e = min(r1, (n + 1) * hw)  # this sample's rows
        so = n * C
        for q in range(r * C, e * C, C):
            for c in range(0, full, LANES):
                vstore(of, q + c, vmul(vload(xf, q + c, LANES), vload(sf, so + c, LANES)), LANES)
            if m > 0:
                vstore(of, q + full, vmul(vload(xf, q + full, m), vload(sf, so + full, m)), m)
        r = e


@njit(**JIT)
def softmax_rows(x, out, r0, r1):
    """Softmax over the last axis of rows r0:r1 (channels of each pixel, or features)."""
    C = x.shape[1]
    for r in range(r0, r1):
        m = x[r, 0]
        for c in range(C):
            m = max(m, x[r, c])
        s = 0.0
        for c in range(C):
            e = np.exp(x[r, c] - m)
            out[r, c] = e
            s += e
        inv = np.float32(1.0 / s)
        for c in range(C):
            out[r, c] *= inv


@njit(**JIT)
def group_norm(x, out, n0, n1, G, eps, gamma, beta, per_element):
    """Normalise each of G channel groups of samples n0:n1 over the group's channels and all
    pixels (x is (N, H·W, C)); group norm, instance norm (G = C) and layer norm (G = 1).
    ``gamma``/``beta`` are per channel (C,), per element (H·W, C) or empty."""
    N, P, C = x.shape
    cg = C // G
    has_affine = gamma.size > 0
    for n in range(n0, n1):
        s = np.zeros(G)
        for p in range(P):
            for c in range(C):
                s[c // cg] += x[n, p, c]
        mean = s / (P * cg)
        v = np.zeros(G)
        for p in range(P):
            for c in range(C):
                d = x[n, p, c] - mean[c // cg]
                v[c // cg] += d * d
        inv = 1.0 / np.sqrt(v / (P * cg) + eps)
        for p in range(P):
            for c in range(C):
                y = (x[n, p, c] - mean[c // cg]) * inv[c // cg]
                if has_affine:
                    if per_element:
                        y = y * gamma[p, c] + beta[p, c]
                    else:
                        y = y * gamma[0, c] + beta[0, c]
                out[n, p, c] = y


@njit(**JIT)
def lrn(x, out, r0, r1, size, alpha, beta, k):
    """Local response normalisation across channels, PyTorch's window (size//2 before,
    (size-1)//2 after) and divisor ``(k + alpha/size · Σ x²)^beta``, for rows r0:r1."""
    C = x.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    for r in range(r0, r1):
        for c in range(C):
            s = np.float32(0)
            for q in range(max(0, c - lo), min(C, c + hi + 1)):
                s += x[r, q] * x[r, q]
            out[r, c] = x[r, c] / (k + alpha / size * s) ** beta


@njit(**JIT)
def pad_rows(x, n, ih0, nrows, pl, xp, rowlen, ps):
    """Input rows ih0 … ih0 + nrows − 1 of sample n, zero-padded: row r of ``xp`` (``rowlen``
    elements, padded width × ``ps``) holds ``pl`` zero pixels, the image row (zeros outside the
    image), then zeros to the end; pixels ``ps ≥ C`` elements apart (the floats past C are
    never read: a stride that is not a multiple of 4 KB keeps a column of pixels out of one
    cache set)."""
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    for r in range(nrows):
        ih = ih0 + r
        d = xp[r * rowlen:(r + 1) * rowlen]
        if ih < 0 or ih >= H:
            for e in range(rowlen):
                d[e] = 0
            continue
        for e in range(pl * ps):
            d[e] = 0
        for iw in range(W):
            s = x[n, ih, iw]
            dv = d[(pl + iw) * ps:(pl + iw) * ps + C]
            for c in range(C):
                dv[c] = s[c]
        for e in range((pl + W) * ps, rowlen):
            d[e] = 0


@njit(**JIT)
def grouped_mr(mode, nv, cg):
    """Pixels per micro-kernel call of a packing (numba_grouped.MR_BROADCAST / MR_SHUFFLE)."""
    if mode == 0:
        return 12 if nv == 1 else 8 if nv == 2 else 6
    return 12 if cg == 8 else 8


@njit(**JIT)
def _grouped_block(tab, P, cbase, C, blocks, b0, b1, koff, wp, bias, relu, mode, nv, cg):
    """P consecutive output pixels (C floats apart from ``cbase``) of a grouped convolution,
    blocks b0:b1 of :mod:`.numba_grouped`'s packing, MR pixels at a time; ``tab[q]`` holds the
    input addresses of pixel block q (MR entries)."""
    K = koff.shape[0]
    kaddr = np.intp(koff.ctypes.data)
    ws = wp.strides[0]
    bs = bias.strides[0]
    w0 = np.intp(wp.ctypes.data)
    ba = np.intp(bias.ctypes.data)
    t0 = np.intp(tab.ctypes.data)
    ts = tab.strides[0]
    for b in range(b0, b1):
        a = blocks[b, 0] * 4
        c = cbase + blocks[b, 1] * 4
        nc = blocks[b, 2]
        wb = w0 + b * ws
        bb = ba + b * bs
        if mode == 0:
            if nv == 1:
                for q, p0 in enumerate(range(0, P, 12)):
                    G.mk_broadcast(t0 + q * ts, a, min(12, P - p0), kaddr, K, wb, c + p0 * C * 4, C, bb, nc, relu,
                                   12, 1)
            elif nv == 2:
                for q, p0 in enumerate(range(0, P, 8)):
                    G.mk_broadcast(t0 + q * ts, a, min(8, P - p0), kaddr, K, wb, c + p0 * C * 4, C, bb, nc, relu, 8, 2)
            else:
                for q, p0 in enumerate(range(0, P, 6)):
                    G.mk_broadcast(t0 + q * ts, a, min(6, P - p0), kaddr, K, wb, c + p0 * C * 4, C, bb, nc, relu, 6, 4)
        elif cg == 2:
            for q, p0 in enumerate(range(0, P, 8)):
                G.mk_shuffle(t0 + q * ts, a, min(8, P - p0), kaddr, K, wb, c + p0 * C * 4, C, bb, nc, relu, 8, 2, 2)
        elif cg == 4:
            for q, p0 in enumerate(range(0, P, 8)):
                G.mk_shuffle(t0 + q * ts, a, min(8, P - p0), kaddr, K, wb, c + p0 * C * 4, C, bb, nc, relu, 8, 2, 4)
        else:
            for q, p0 in enumerate(range(0, P, 12)):
                G.mk_shuffle(t0 + q * ts, a, min(12, P - p0), kaddr, K, wb, c + p0 * C * 4, C, bb, nc, relu, 12, 1, 8)


@njit(**JIT)
def grouped_rows(x, wp, bias, out, t0, t1, sh, sw, pt, pl, dh, dw, res, a1, a2, blocks, koff, xp, acc, mode, nv, cg,
                 kh, rowlen, ps, R, b0, b1):
    """Grouped convolution for output rows t0:t1 of (n, oh), channels last, by the
    register-blocked micro-kernels of :mod:`.numba_grouped` (``wp``, ``bias``, ``blocks``,
    ``koff``, ``mode`` 0 broadcast / 1 shuffle, ``nv``, ``cg`` its packing). At most R output
    rows of one sample at a time: their input rows are copied zero-padded into ``xp`` (rows of
    ``rowlen`` floats, pixels ``ps`` floats apart, so no tap needs a border test), then their pixels are computed in
    blocks of MR that may span rows, group block by group block (blocks b0:b1 only: threads
    may split a small image's output channels instead of its rows). ReLU (or no activation)
    without a residual is fused into the micro-kernel's store; any other epilogue runs on the
    rows in ``acc`` (R·Wo·C floats) while they are in cache, and needs all blocks."""
    N, H, W, Cin = x.shape
    Ho, Wo, C = out.shape[1], out.shape[2], out.shape[3]
    has_res = res.shape[0] > 0
    fused = (a1 == 0 or a1 == 1) and not has_res
    RC = Wo * C
    of = out.reshape(out.size)
    rf = res.reshape(res.size)
    xa = np.intp(xp.ctypes.data)
    oa = np.intp(out.ctypes.data)
    ca = np.intp(acc.ctypes.data)
    MR = grouped_mr(mode, nv, cg)
    tab = np.empty((-(-R * Wo // MR), MR), np.intp)
    t = t0
    while t < t1:
        n, o0 = t // Ho, t % Ho
        o1 = min(Ho, o0 + R, o0 + t1 - t)
        pad_rows(x, n, o0 * sh - pt, (o1 - o0 - 1) * sh + (kh - 1) * dh + 1, pl, xp, rowlen, ps)
        P = (o1 - o0) * Wo
        for p in range(tab.size):
            q = min(p, P - 1)  # entries past the last pixel repeat it
            tab.flat[p] = xa + (((q // Wo) * sh * rowlen) + (q % Wo) * sw * ps) * 4
        cbase = oa + (n * Ho + o0) * RC * 4 if fused else ca
        _grouped_block(tab, P, cbase, C, blocks, b0, b1, koff, wp, bias, 1 if (fused and a1 == 1) else 0, mode, nv,
                       cg)
        if not fused:
            for oh in range(o0, o1):
                store_row(acc[(oh - o0) * RC:], RC, (n * Ho + oh) * RC, has_res, rf, of, a1, a2)
        t += o1 - o0


# The depthwise kernels of 3×3 and 5×5 taps (stride 1 or 2, no dilation) run on explicit
# 16-lane vectors (backends/numba_simd.py): per output row and block of 16 channels, the
# kh·kw weight vectors are loaded once and every block of 4 output pixels adds all its taps
# in registers, each input vector loaded once per block (stride 1: the 4 pixels of a 3-tap
# kernel row read 6 columns, not 12); the last channel block is masked.
DW_BLOCK = 4  # output pixels per register block
# Inputs larger than this (the first layers at batch 8: 13-38 MB, streamed from memory)
# have the next output row's new input rows prefetched while a row is computed (see
# _dw_row). Smaller ones are mostly in cache, just written by the previous layer: the late
# 7×7 and 14×14 layers at batch 8 gained nothing, and the 4.8 MB input of MobileNet v2's
# features.2 at batch 1 (in L3) measured slower with it once.
DW_PREFETCH_BYTES = 12 << 20


@njit(inline="always", **JIT)
def _row3_s1(a, o, C, m, w0, w1, w2, s0, s1, s2, s3):
    """A 3-tap kernel row added to 4 adjacent output pixels (stride 1): 6 input columns."""
    x0, x1, x2 = vload(a, o, m), vload(a, o + C, m), vload(a, o + 2 * C, m)
    x3, x4, x5 = vload(a, o + 3 * C, m), vload(a, o + 4 * C, m), vload(a, o + 5 * C, m)
    return (vfma(x2, w2, vfma(x1, w1, vfma(x0, w0, s0))), vfma(x3, w2, vfma(x2, w1, vfma(x1, w0, s1))),
            vfma(x4, w2, vfma(x3, w1, vfma(x2, w0, s2))), vfma(x5, w2, vfma(x4, w1, vfma(x3, w0, s3))))


@njit(inline="always", **JIT)
def _row3_s2(a, o, C, m, w0, w1, w2, s0, s1, s2, s3):
    """A 3-tap kernel row added to 4 output pixels of stride 2: 9 input columns."""
    x0, x1, x2 = vload(a, o, m), vload(a, o + C, m), vload(a, o + 2 * C, m)
    x3, x4, x5 = vload(a, o + 3 * C, m), vload(a, o + 4 * C, m), vload(a, o + 5 * C, m)
    x6, x7, x8 = vload(a, o + 6 * C, m), vload(a, o + 7 * C, m), vload(a, o + 8 * C, m)
    return (vfma(x2, w2, vfma(x1, w1, vfma(x0, w0, s0))), vfma(x4, w2, vfma(x3, w1, vfma(x2, w0, s1))),
            vfma(x6, w2, vfma(x5, w1, vfma(x4, w0, s2))), vfma(x8, w2, vfma(x7, w1, vfma(x6, w0, s3))))


@njit(inline="always", **JIT)
def _row5_s1(a, o, C, m, w0, w1, w2, w3, w4, s0, s1, s2, s3):
    """A 5-tap kernel row added to 4 adjacent output pixels (stride 1): 8 input columns."""
    x0, x1, x2, x3 = vload(a, o, m), vload(a, o + C, m), vload(a, o + 2 * C, m), vload(a, o + 3 * C, m)
    x4, x5, x6, x7 = vload(a, o + 4 * C, m), vload(a, o + 5 * C, m), vload(a, o + 6 * C, m), vload(a, o + 7 * C, m)
    return (vfma(x4, w4, vfma(x3, w3, vfma(x2, w2, vfma(x1, w1, vfma(x0, w0, s0))))),
            vfma(x5, w4, vfma(x4, w3, vfma(x3, w2, vfma(x2, w1, vfma(x1, w0, s1))))),
            vfma(x6, w4, vfma(x5, w3, vfma(x4, w2, vfma(x3, w1, vfma(x2, w0, s2))))),
            vfma(x7, w4, vfma(x6, w3, vfma(x5, w2, vfma(x4, w1, vfma(x3, w0, s3))))))


@njit(inline="always", **JIT)
def _row5_s2(a, o, C, m, w0, w1, w2, w3, w4, s0, s1, s2, s3):
    """A 5-tap kernel row added to 4 output pixels of stride 2: 11 input columns."""
    x0, x1, x2, x3 = vload(a, o, m), vload(a, o + C, m), vload(a, o + 2 * C, m), vload(a, o + 3 * C, m)
    x4, x5, x6, x7 = vload(a, o + 4 * C, m), vload(a, o + 5 * C, m), vload(a, o + 6 * C, m), vload(a, o + 7 * C, m)
    x8, x9, x10 = vload(a, o + 8 * C, m), vload(a, o + 9 * C, m), vload(a, o + 10 * C, m)
    return (vfma(x4, w4, vfma(x3, w3, vfma(x2, w2, vfma(x1, w1, vfma(x0, w0, s0))))),
            vfma(x6, w4, vfma(x5, w3, vfma(x4, w2, vfma(x3, w1, vfma(x2, w0, s1))))),
            vfma(x8, w4, vfma(x7, w3, vfma(x6, w2, vfma(x5, w1, vfma(x4, w0, s2))))),
            vfma(x10, w4, vfma(x9, w3, vfma(x8, w2, vfma(x7, w1, vfma(x6, w0, s3))))))


@njit(**JIT)
def _quad3(r0, r1, r2, wf, b, tgt, o, t, cb, m, C, S):
    """Channels cb:cb+m of 4 output pixels of a 3×3 row (their first input column at ``o``,
    their outputs at ``tgt[t:]``, t and o counting cb)."""
    bv = vload(b, cb, m)
    w0, w1, w2 = vload(wf, cb, m), vload(wf, C + cb, m), vload(wf, 2 * C + cb, m)
    if S == 1:
        s0, s1, s2, s3 = _row3_s1(r0, o, C, m, w0, w1, w2, bv, bv, bv, bv)
    else:
        s0, s1, s2, s3 = _row3_s2(r0, o, C, m, w0, w1, w2, bv, bv, bv, bv)
    w0, w1, w2 = vload(wf, 3 * C + cb, m), vload(wf, 4 * C + cb, m), vload(wf, 5 * C + cb, m)
    if S == 1:
        s0, s1, s2, s3 = _row3_s1(r1, o, C, m, w0, w1, w2, s0, s1, s2, s3)
    else:
        s0, s1, s2, s3 = _row3_s2(r1, o, C, m, w0, w1, w2, s0, s1, s2, s3)
    w0, w1, w2 = vload(wf, 6 * C + cb, m), vload(wf, 7 * C + cb, m), vload(wf, 8 * C + cb, m)
    if S == 1:
        s0, s1, s2, s3 = _row3_s1(r2, o, C, m, w0, w1, w2, s0, s1, s2, s3)
    else:
        s0, s1, s2, s3 = _row3_s2(r2, o, C, m, w0, w1, w2, s0, s1, s2, s3)
    vstore(tgt, t, s0, m)
    vstore(tgt, t + C, s1, m)
    vstore(tgt, t + 2 * C, s2, m)
    vstore(tgt, t + 3 * C, s3, m)


@njit(**JIT)
def _quad5(r0, r1, r2, r3, r4, wf, b, tgt, o, t, cb, m, C, S):
    """:func:`_quad3` for 5×5 kernels."""
    bv = vload(b, cb, m)
    s0, s1, s2, s3 = bv, bv, bv, bv
    for i in range(5):
        a = r0 if i == 0 else r1 if i == 1 else r2 if i == 2 else r3 if i == 3 else r4
        wo = 5 * i * C + cb
        w0, w1, w2 = vload(wf, wo, m), vload(wf, wo + C, m), vload(wf, wo + 2 * C, m)
        w3, w4 = vload(wf, wo + 3 * C, m), vload(wf, wo + 4 * C, m)
        if S == 1:
            s0, s1, s2, s3 = _row5_s1(a, o, C, m, w0, w1, w2, w3, w4, s0, s1, s2, s3)
        else:
            s0, s1, s2, s3 = _row5_s2(a, o, C, m, w0, w1, w2, w3, w4, s0, s1, s2, s3)
    vstore(tgt, t, s0, m)
    vstore(tgt, t + C, s1, m)
    vstore(tgt, t + 2 * C, s2, m)
    vstore(tgt, t + 3 * C, s3, m)


@njit(**JIT)
def _one(r0, r1, r2, r3, r4, wf, b, tgt, o, t, cb, m, C, K):
    """Channels cb:cb+m of one interior output pixel of a K×K row."""
    s = vload(b, cb, m)
    for i in range(K):
        a = r0 if i == 0 else r1 if i == 1 else r2 if i == 2 else r3 if i == 3 else r4
        for j in range(K):
            s = vfma(vload(a, o + j * C, m), vload(wf, (i * K + j) * C + cb, m), s)
    vstore(tgt, t, s, m)


@njit(**JIT)
def _edge(r0, r1, r2, r3, r4, wf, b, tgt, ow, cb, m, C, W, S, pl, K):
    """Channels cb:cb+m of an output pixel whose window overhangs the left or right edge:
    the taps inside the image only."""
    s = vload(b, cb, m)
    for i in range(K):
        a = r0 if i == 0 else r1 if i == 1 else r2 if i == 2 else r3 if i == 3 else r4
        for j in range(K):
            iw = ow * S - pl + j
            if 0 <= iw < W:
                s = vfma(vload(a, iw * C + cb, m), vload(wf, (i * K + j) * C + cb, m), s)
    vstore(tgt, ow * C + cb, s, m)


@njit(**JIT)
def _dw_row(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, W, C, S, pl, K, q0, q1, nq):
    """One output row of a K×K depthwise convolution of stride S from its input rows r0…
    (zero rows outside the image): the interior pixels c0:c1 in blocks of 4 (the last one
    ending at c1), each over all channel blocks (the last one masked), then the edges.
    ``q0``, ``q1``: the first ``nq`` of them are the input rows the next output row reads
    and this one does not, prefetched alongside (each block the columns it advances over)."""
    full = C - C % LANES
    ow = c0
    while ow < c1 and (ow + DW_BLOCK <= c1 or c1 - c0 >= DW_BLOCK):
        # the last block of a row moves left to end at c1 (some pixels computed twice, the
        # same values): no pixel of a row with at least 4 interior ones is left to _one
        ow = min(ow, c1 - DW_BLOCK)
        o, t = (ow * S - pl) * C, ow * C
        # Large inputs stream from memory: a software prefetch of the next output row's new
        # input rows (into L2) keeps more cache misses in flight than the hardware
        # prefetcher alone, which restarts at every 4 KiB page (batch 8: 10-30% faster)
        if nq > 0:
            for e in range(o, o + DW_BLOCK * S * C, LANES):
                prefetch(q0, e)
            if nq > 1:
                for e in range(o, o + DW_BLOCK * S * C, LANES):
                    prefetch(q1, e)
        for cb in range(0, full, LANES):
            if K == 3:
                _quad3(r0, r1, r2, wf, b, tgt, o + cb, t + cb, cb, LANES, C, S)
            else:
                _quad5(r0, r1, r2, r3, r4, wf, b, tgt, o + cb, t + cb, cb, LANES, C, S)
        if full < C:
            if K == 3:
                _quad3(r0, r1, r2, wf, b, tgt, o + full, t + full, full, C - full, C, S)
            else:
                _quad5(r0, r1, r2, r3, r4, wf, b, tgt, o + full, t + full, full, C - full, C, S)
        ow += DW_BLOCK
    for ow in range(ow, c1):
        o, t = (ow * S - pl) * C, ow * C
        for cb in range(0, C, LANES):
            _one(r0, r1, r2, r3, r4, wf, b, tgt, o + cb, t + cb, cb, min(LANES, C - cb), C, K)
    for e in range(c0 + Wo - c1):
        ow = e if e < c0 else c1 + e - c0  # the left edge, then the right one
        for cb in range(0, C, LANES):
            _edge(r0, r1, r2, r3, r4, wf, b, tgt, ow, cb, min(LANES, C - cb), C, W, S, pl, K)


# One compiled function per kernel size and stride (the constants fold into _dw_row's code;
# four smaller functions compile much faster than one holding every variant).
@njit(**JIT)
def _dw_row_3s1(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, W, C, pl, q0, q1, nq):
    _dw_row(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, W, C, 1, pl, 3, q0, q1, nq)


@njit(**JIT)
def _dw_row_3s2(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, W, C, pl, q0, q1, nq):
    _dw_row(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, W, C, 2, pl, 3, q0, q1, nq)


@njit(**JIT)
def _dw_row_5s1(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, W, C, pl, q0, q1, nq):
    _dw_row(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, W, C, 1, pl, 5, q0, q1, nq)


@njit(**JIT)
def _dw_row_5s2(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, W, C, pl, q0, q1, nq):
    _dw_row(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, W, C, 2, pl, 5, q0, q1, nq)


@njit(**JIT)
def _copy(src, dst, off, n):
    """``dst[off:off + n] = src[:n]`` in 16-lane vectors (the arrays do not overlap)."""
    full = n - n % LANES
    for e in range(0, full, LANES):
        vstore(dst, off + e, vload(src, e, LANES), LANES)
    if full < n:
        vstore(dst, off + full, vload(src, full, n - full), n - full)


@njit(**JIT)
def depthwise_blocked(kh, kw, sh, sw, pt, pl, dh, dw):
    """Does :func:`depthwise_rows` run this geometry on its blocked kernels (else :func:`depthwise_rows_any`)?

    >>> depthwise_blocked(5, 5, 2, 2, 2, 2, 1, 1), depthwise_blocked(3, 3, 1, 1, 2, 2, 2, 2)
    (True, False)
    """
    return kh == kw and (kh == 3 or kh == 5) and dh == 1 and dw == 1 and sh == sw and (sw == 1 or sw == 2)


@njit(inline="always", **JIT)
def _input_row(xf, zrow, n, ih, H, RW):
    """Input row ih of sample n (flat, channels last), or the row of zeros outside the image."""
    return xf[(n * H + ih) * RW:(n * H + ih + 1) * RW] if 0 <= ih < H else zrow


@njit(**JIT)
def depthwise_rows(x, w, wrow, bias, out, t0, t1, sh, sw, pt, pl, dh, dw, res, a1, a2, acc):
    """Depthwise convolution (multiplier 1) for output rows t0:t1 of (n, oh), channels last;
    ``w`` is (kh, kw, C), ``acc`` a scratch row of Wo·C floats (used when there is a residual,
    which may share the output's memory); ``wrow`` as :func:`depthwise_rows_any` (which takes
    kernels other than 3×3 and 5×5, strides above 2 and dilations).

    Each output row is one pass per block of 16 channels (16-lane vectors, the last block
    masked): the kh·kw weight vectors are loaded once, each block of 4 interior output
    pixels sums all its taps in registers (:func:`_block3`, :func:`_block5`), kernel rows
    outside the image read a row of zeros, the pixels at the left and right edges skip the
    taps in the padding (:func:`_edge`). Inputs larger than DW_PREFETCH_BYTES have the next
    output row's new input rows prefetched while a row is computed. Rows with more edge pixels than half the interior
    ones (5×5 kernels on 7×7 maps) read zero-padded copies of their input rows instead (a
    ring of kh rows, each input row copied once), so every pixel is in a block. Then the epilogue over the row (act1, or act1, residual, act2 through ``acc``).

    >>> import numpy as np
    >>> x = np.arange(2 * 5 * 7 * 3, dtype=np.float32).reshape(2, 5, 7, 3) % 5
    >>> w = np.ones((3, 3, 3), np.float32); out = np.empty((2, 5, 7, 3), np.float32)
    >>> E = np.empty(0, np.float32)
    >>> depthwise_rows(x, w, np.empty((0, 0, 0), np.float32), E, out, 0, 10, 1, 1, 1, 1, 1, 1,
    ...                np.empty((0, 0, 0, 0), np.float32), 0, 0, np.empty(7 * 3, np.float32))
    >>> float(out[1, 2, 3, 0]) == float(x[1, 1:4, 2:5, 0].sum())
    True
    """
    N, H, W, C = x.shape
    Ho, Wo = out.shape[1], out.shape[2]
    kh, kw = w.shape[0], w.shape[1]
    if not depthwise_blocked(kh, kw, sh, sw, pt, pl, dh, dw):
        depthwise_rows_any(x, w, wrow, bias, out, t0, t1, sh, sw, pt, pl, dh, dw, res, a1, a2, acc)
        return
    has_res = res.shape[0] > 0
    RC, RW = Wo * C, W * C
    xf = x.reshape(x.size)
    wf = w.reshape(w.size)
    of = out.reshape(out.size)
    rf = res.reshape(res.size)
    b = bias if bias.shape[0] > 0 else np.zeros(C, np.float32)
    # interior columns: 0 ≤ ow·sw − pl and ow·sw − pl + kw − 1 ≤ W − 1
    c0 = min(Wo, -(-pl // sw))
    last = W - kw + pl
    c1 = max(c0, min(Wo, last // sw + 1)) if last >= 0 else c0
    # Rows where the edge pixels are many (more than half as many as the interior ones: 5×5
    # kernels on 7×7 maps): the input rows copied once into a ring of kh zero-padded rows,
    # every pixel is then interior (elsewhere the copies cost more than the edges)
    padded = 2 * (Wo - (c1 - c0)) > c1 - c0
    pf = not padded and x.size * 4 > DW_PREFETCH_BYTES
    Wp = (Wo - 1) * sw + kw  # padded columns the output row reads
    if padded:
        ring = np.zeros((kh, Wp * C), np.float32)
        tags = np.full(kh, -1, np.int64)  # which input row (n·H + ih) each slot holds
        zrow = np.zeros(Wp * C, np.float32)  # kernel rows above or below the image
        xs = W * C
        ncopy = min(W, Wp - pl) * C  # columns of the image the padded row holds
        c0, c1, Wr, plr = 0, Wo, Wp, 0
    else:
        ring = np.zeros((1, 1), np.float32)
        tags = np.zeros(1, np.int64)
        zrow = np.zeros(RW, np.float32)
        xs = ncopy = 0
        Wr, plr = W, pl
    for t in range(t0, t1):
        n, oh = t // Ho, t % Ho
        ih0 = oh * sh - pt
        if padded:
            for i in range(kh):
                ih = ih0 + i
                if 0 <= ih < H and tags[(ih + kh) % kh] != n * H + ih:
                    slot = ring[(ih + kh) % kh]
                    src = xf[(n * H + ih) * xs:(n * H + ih) * xs + ncopy]
                    _copy(src, slot, pl * C, ncopy)
                    tags[(ih + kh) % kh] = n * H + ih
            r0 = ring[(ih0 + kh) % kh] if 0 <= ih0 < H else zrow
            r1 = ring[(ih0 + 1 + kh) % kh] if 0 <= ih0 + 1 < H else zrow
            r2 = ring[(ih0 + 2 + kh) % kh] if 0 <= ih0 + 2 < H else zrow
            r3 = ring[(ih0 + 3 + kh) % kh] if kh == 5 and 0 <= ih0 + 3 < H else zrow
            r4 = ring[(ih0 + 4 + kh) % kh] if kh == 5 and 0 <= ih0 + 4 < H else zrow
        else:
            r0 = _input_row(xf, zrow, n, ih0, H, RW)
            r1 = _input_row(xf, zrow, n, ih0 + 1, H, RW)
            r2 = _input_row(xf, zrow, n, ih0 + 2, H, RW)
            r3 = _input_row(xf, zrow, n, ih0 + 3, H, RW) if kh == 5 else zrow
            r4 = _input_row(xf, zrow, n, ih0 + 4, H, RW) if kh == 5 else zrow
        # the input rows of output row t + 1 that row t does not read: ihn, ihn + 1 (stride 2)
        q0, q1, nq = zrow, zrow, 0
        if pf and t + 1 < t1:
            ihn = ((t + 1) % Ho) * sh - pt + kh - sh
            for ih in range(ihn, ihn + sh):
                if 0 <= ih < H:
                    if nq == 0:
                        q0 = _input_row(xf, zrow, (t + 1) // Ho, ih, H, RW)
                    else:
                        q1 = _input_row(xf, zrow, (t + 1) // Ho, ih, H, RW)
                    nq += 1
        tgt = acc[:RC] if has_res else of[t * RC:(t + 1) * RC]
        if kh == 3:
            if sw == 1:
                _dw_row_3s1(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, Wr, C, plr, q0, q1, nq)
            else:
                _dw_row_3s2(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, Wr, C, plr, q0, q1, nq)
        elif sw == 1:
            _dw_row_5s1(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, Wr, C, plr, q0, q1, nq)
        else:
            _dw_row_5s2(r0, r1, r2, r3, r4, wf, b, tgt, c0, c1, Wo, Wr, C, plr, q0, q1, nq)
        if has_res:
            store_row(acc, RC, t * RC, has_res, rf, of, a1, a2)
        else:
            act_row(tgt, a1)


@njit(**JIT)
def depthwise_rows_any(x, w, wrow, bias, out, t0, t1, sh, sw, pt, pl, dh, dw, res, a1, a2, acc):
    """Depthwise convolution (multiplier 1), any kernel, stride and dilation (:func:`depthwise_rows`
    takes the 3×3 and 5×5 kernels of stride 1 and 2), for output rows t0:t1 of (n, oh), channels last;
    ``w`` is (kh, kw, C), ``acc`` a scratch row of Wo·C floats; ``wrow`` is empty or, for
    stride 1 and few channels, ``w`` repeated along a row, (kh, kw, Wo·C).

    A row is accumulated one kernel row i at a time: the output columns whose kw taps are
    all inside the image add the kw products in registers (3×3 and 5×5 kernels: one
    vectorised loop over the channels with kw row slices; with ``wrow``, one loop over all
    interior columns and channels at once), the border columns skip the taps in the padding. The epilogue (act1, residual, act2) then runs over the whole row."""
    N, H, W, C = x.shape
    Ho, Wo = out.shape[1], out.shape[2]
    kh, kw = w.shape[0], w.shape[1]
    has_bias, has_res = bias.shape[0] > 0, res.shape[0] > 0
    RC = Wo * C
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    rf = res.reshape(res.size)
    # interior columns: 0 ≤ ow·sw − pl and ow·sw − pl + (kw − 1)·dw ≤ W − 1
    c0 = min(Wo, -(-pl // sw))
    last = W - 1 - (kw - 1) * dw + pl
    c1 = max(c0, min(Wo, last // sw + 1)) if last >= 0 else c0
    fast = kw == 3 or kw == 5
    d = dw * C
    for t in range(t0, t1):
        n, oh = t // Ho, t % Ho
        if has_bias:
            for ow in range(Wo):
                av = acc[ow * C:(ow + 1) * C]
                for c in range(C):
                    av[c] = bias[c]
        else:
            acc[:RC] = 0
        for i in range(kh):
            ih = oh * sh - pt + i * dh
            if ih < 0 or ih >= H:
                continue
            row = (n * H + ih) * W
            lo, hi = (c0, c1) if fast else (0, 0)
            if hi > lo and wrow.shape[0] > 0:
                # stride 1: the interior columns' inputs of tap j are one contiguous run
                o = (row + lo - pl) * C
                L = (hi - lo) * C
                av = acc[lo * C:hi * C]
                if kw == 3:
                    x0, x1, x2 = xf[o:o + L], xf[o + d:o + d + L], xf[o + 2 * d:o + 2 * d + L]
                    w0, w1, w2 = wrow[i, 0, :L], wrow[i, 1, :L], wrow[i, 2, :L]
                    for e in range(L):
                        av[e] += x0[e] * w0[e] + x1[e] * w1[e] + x2[e] * w2[e]
                else:
                    x0, x1, x2 = xf[o:o + L], xf[o + d:o + d + L], xf[o + 2 * d:o + 2 * d + L]
                    x3, x4 = xf[o + 3 * d:o + 3 * d + L], xf[o + 4 * d:o + 4 * d + L]
                    w0, w1, w2, w3, w4 = wrow[i, 0, :L], wrow[i, 1, :L], wrow[i, 2, :L], wrow[i, 3, :L], wrow[i, 4, :L]
                    for e in range(L):
                        av[e] += x0[e] * w0[e] + x1[e] * w1[e] + x2[e] * w2[e] + x3[e] * w3[e] + x4[e] * w4[e]
            elif kw == 3:
                w0, w1, w2 = w[i, 0], w[i, 1], w[i, 2]
                for ow in range(lo, hi):
                    o = (row + ow * sw - pl) * C
                    x0, x1, x2 = xf[o:o + C], xf[o + d:o + d + C], xf[o + 2 * d:o + 2 * d + C]
                    av = acc[ow * C:(ow + 1) * C]
                    for c in range(C):
                        av[c] += x0[c] * w0[c] + x1[c] * w1[c] + x2[c] * w2[c]
            elif kw == 5:
                w0, w1, w2, w3, w4 = w[i, 0], w[i, 1], w[i, 2], w[i, 3], w[i, 4]
                for ow in range(lo, hi):
                    o = (row + ow * sw - pl) * C
                    x0, x1, x2 = xf[o:o + C], xf[o + d:o + d + C], xf[o + 2 * d:o + 2 * d + C]
                    x3, x4 = xf[o + 3 * d:o + 3 * d + C], xf[o + 4 * d:o + 4 * d + C]
                    av = acc[ow * C:(ow + 1) * C]
                    for c in range(C):
                        av[c] += x0[c] * w0[c] + x1[c] * w1[c] + x2[c] * w2[c] + x3[c] * w3[c] + x4[c] * w4[c]
            for ow in range(Wo):
                if lo <= ow < hi:
                    continue
                av = acc[ow * C:(ow + 1) * C]
                for j in range(kw):
                    iw = ow * sw - pl + j * dw
                    if iw < 0 or iw >= W:
                        continue
                    xv = x[n, ih, iw]
                    wv = w[i, j]
                    for c in range(C):
                        av[c] += xv[c] * wv[c]
        store_row(acc, RC, t * RC, has_res, rf, of, a1, a2)


@njit(**JIT)
def col2im_transpose(cols, out, n0, t0, t1, H, W, kh, kw, sh, sw, pt, pl, dh, dw, og, bias, res, a1, a2):
    """A transposed convolution's output rows t0:t1 of (n, oh) gathered from ``cols``, the GEMM
    of samples n0… (``cols[g, (n − n0, ih, iw), (i, j, o)]``: input pixel times tap (i, j)):
    output (oh, ow) takes input (ih, iw) through tap (i, j) where oh = ih·sh − pt + i·dh
    (and the same along W). Gathering (not scattering) lets threads own output rows; the
    bias and the epilogue are fused."""
    G = cols.shape[0]
    Ho, Wo, C = out.shape[1], out.shape[2], out.shape[3]
    acc = np.empty(C, np.float32)
    for t in range(t0, t1):
        n, oh = t // Ho, t % Ho
        for ow in range(Wo):
            if bias.shape[0] > 0:
                for c in range(C):
                    acc[c] = bias[c]
            else:
                acc[:] = 0
            for i in range(kh):
                num = oh + pt - i * dh
                if num < 0 or num % sh != 0 or num // sh >= H:
                    continue
                ih = num // sh
                for j in range(kw):
                    num2 = ow + pl - j * dw
                    if num2 < 0 or num2 % sw != 0 or num2 // sw >= W:
                        continue
                    row = ((n - n0) * H + ih) * W + num2 // sw
                    base = (i * kw + j) * og
                    for g in range(G):
                        src = cols[g, row, base:base + og]
                        for o in range(og):
                            acc[g * og + o] += src[o]
            store_pixel(acc, out, res, n, oh, ow, a1, a2)


@njit(**JIT)
def prelu_rows(x, out, r0, r1, slope):
    """PReLU for rows r0:r1 of (N·H·W, C): x, or slope·x below 0; ``slope`` has one value or one per channel."""
    C = x.shape[1]
    one = slope.shape[0] == 1
    for r in range(r0, r1):
        xv, ov = x[r], out[r]
        if one:
            s = slope[0]
            for c in range(C):
                v = xv[c]
                ov[c] = v if v >= 0 else s * v
        else:
            for c in range(C):
                v = xv[c]
                ov[c] = v if v >= 0 else slope[c] * v


@njit(**JIT)
def layernorm_rows(x, out, r0, r1, eps, gamma, beta):
    """Layer norm over the channels of each row r0:r1 of (N·H·W, C) (ConvNeXt's LayerNorm2d):
    mean and variance in float64, then γ, β per channel (``gamma`` empty: no affine)."""
    C = x.shape[1]
    affine = gamma.shape[0] > 0
    for r in range(r0, r1):
        xv, ov = x[r], out[r]
        s = 0.0
        for c in range(C):
            s += xv[c]
        mean = s / C
        v = 0.0
        for c in range(C):
            d = xv[c] - mean
            v += d * d
        inv = 1.0 / np.sqrt(v / C + eps)
        m32, i32 = np.float32(mean), np.float32(inv)
        if affine:
            for c in range(C):
                ov[c] = (xv[c] - m32) * i32 * gamma[c] + beta[c]
        else:
            for c in range(C):
                ov[c] = (xv[c] - m32) * i32


@njit(**JIT)
def resize_rows(x, out, t0, t1, ih, wh, iw, ww, nearest):
    """Nearest or bilinear resizing for output rows t0:t1 of (n, oh): output (oh, ow) is
    wh[oh, 0]·(ww[ow, 0]·x[ih0, iw0] + ww[ow, 1]·x[ih0, iw1]) + wh[oh, 1]·(…row ih1…), PyTorch's
    order of operations; nearest reads the one tap (ih0, iw0)."""
    N, H, W, C = x.shape
    Ho, Wo = out.shape[1], out.shape[2]
    for t in range(t0, t1):
        n, oh = t // Ho, t % Ho
        h0, h1 = ih[oh, 0], ih[oh, 1]
        a, b = wh[oh, 0], wh[oh, 1]
        for ow in range(Wo):
            w0, w1 = iw[ow, 0], iw[ow, 1]
            ov = out[n, oh, ow]
            x00 = x[n, h0, w0]
            if nearest:
                for c in range(C):
                    ov[c] = x00[c]
            else:
                p, q = ww[ow, 0], ww[ow, 1]
                x01, x10, x11 = x[n, h0, w1], x[n, h1, w0], x[n, h1, w1]
                for c in range(C):
                    ov[c] = a * (p * x00[c] + q * x01[c]) + b * (p * x10[c] + q * x11[c])


@njit(inline="always", **JIT)
def _affine(x, wt, b, acc, y):
    """``y = x · wt + b`` for one vector ``x``: ``wt`` is (len(x), len(y)), read a row at a
    time so the inner loop runs along contiguous memory (vectorised, no reduction); the sums
    in float64 (``acc``, as long as ``y``)."""
    for j in range(y.shape[0]):
        acc[j] = b[j]
    for k in range(x.shape[0]):
        xk = np.float64(x[k])
        w = wt[k]
        for j in range(y.shape[0]):
            acc[j] += xk * w[j]
    for j in range(y.shape[0]):
        y[j] = np.float32(acc[j])


@njit(**JIT)
def gate_fc(pooled, w1t, b1, a1, w2t, b2, a2, h, s):
    """A squeeze-and-excitation gate's two 1×1 convolutions on the pooled vectors, serially
    (a few thousand to 110 thousand multiply-adds an image: waking other threads costs
    more): ``h = act1(pooled · w1t + b1)``, ``s = act2(h · w2t + b2)`` per image (:func:`_affine`),
    ``w1t`` the first layer's weights as (C, r), ``w2t`` the second's as (r, C). The sums are
    kept in float64 (as cheap here): the EfficientNets' gates feed every channel of a
    block, and float32 sums in this order moved EfficientNet-B5's output past the zoo's
    accuracy bound against PyTorch float64."""
    acc = np.empty(max(w1t.shape[0], w1t.shape[1]), np.float64)
    for n in range(pooled.shape[0]):
        _affine(pooled[n], w1t, b1, acc, h[n])
        act_row(h[n], a1)
        _affine(h[n], w2t, b2, acc, s[n])
        act_row(s[n], a2)
