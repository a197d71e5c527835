"""The Numba CPU backend: channels-last float32 kernels, our own GEMM, all cores.

How the work is spread: every step is Numba ``parallel=True`` code on Numba's threading
layer, OpenMP where it loads (:mod:`.numba_threads`, which also applies the thread count
while a plan runs): a convolution on our GEMM (:mod:`.numba_gemm`) or by Winograd is one
parallel region; every other step a driver of :mod:`.numba_par` (a ``prange`` over chunks
of output rows, each running a row-range kernel of :mod:`.numba_kernels`). No step calls
BLAS; the generic NumPy kernels of the rarer ops may, so BLAS is limited to one thread
while a plan runs (restored afterwards).

Convolution: a 1×1 stride-1 convolution is a plain GEMM on the (N·H·W, C) input; other
convolutions pack a tile of rows (im2col) and multiply it; depthwise convolutions and
grouped convolutions run direct kernels vectorised over the channels (grouped ones by the
register-blocked micro-kernels of :mod:`.numba_grouped`). Bias (folded batch norm), activation, residual add and
the second activation are applied to each tile while it is in cache (the epilogue).

>>> import numpy as np
>>> from cnngraph import zoo
>>> from cnngraph.compiler import compile
>>> from cnngraph.compiler.weights import init
>>> from cnngraph.backends.numba_backend import run
>>> g = zoo.build("lenet5")
>>> y, = run(compile(g, init(g, seed=0)), np.ones((2, 1, 28, 28), np.float32))
>>> y.shape
(2, 10)
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading

import numpy as np

from cnngraph.compiler.algorithms import WINOGRAD_TILE, choose_conv, padded_extent
from cnngraph.ir import ops
from cnngraph.ir.ops import act_clamp, act_code, act_param, bn_scale_shift
from cnngraph.backends import Backend
from cnngraph.compiler.plan import Plan

from cnngraph.backends import numba_kernels as K
from cnngraph.backends import numba_gemm as NG
from cnngraph.backends import numba_par as PAR
from cnngraph.backends import numba_threads
from cnngraph.backends import numba_winograd as WG
from cnngraph.backends import numba_grouped as GP
from cnngraph.backends import numba_fused as FU
from cnngraph.backends.numba_par import chunks
from cnngraph.backends.numba_threads import num_threads, threading_layer  # noqa: F401  - re-exported
from cnngraph.backends.common import (Executor, Runtime, avgpool_divisor, conv_geometry, pack_transpose_weight,
                                      pool_geometry, resize_geometry, transpose_geometry, weight)

NAME = "numba"
EMPTY1 = np.empty(0, np.float32)
EMPTY2 = np.empty((0, 0), np.float32)
EMPTY3 = np.empty((0, 0, 0), np.float32)
EMPTY4 = np.empty((0, 0, 0, 0), np.float32)

# GEMM tiles (:mod:`.numba_gemm`): at most GEMM_ROWS output rows, an im2col tile of at most
# about GEMM_TILE_BYTES (it stays in L2 with the product's tile); about GEMM_ITEMS_PER_THREAD
# work items per thread (output columns split when there are fewer row tiles).
GEMM_ROWS = 64
GEMM_TILE_BYTES = 256 << 10
GEMM_ITEMS_PER_THREAD = 3
GEMM_PARALLEL_MACS = 1 << 17  # smaller products (SE blocks' 1×1 convolutions) run on the calling thread
TILES_PER_THREAD = 4  # Winograd: blocks of tiles per thread when there are enough
# Winograd: a block of tiles' transformed inputs and products (α² × tiles × channels) stay
# within about WINO_BYTES (the core's L2); at least WINO_MIN_TILES tiles per GEMM, else the
# whole batch is transformed first and the α² GEMMs are shared between the threads.
WINO_BYTES = 1 << 20
WINO_MIN_TILES = 32
# Depthwise convolutions of stride 1 with fewer channels than this run whole rows in one loop
# (their weights repeated along a row); wider ones one pixel's channels at a time.
DW_ROW_CHANNELS = 128
# Grouped convolutions copy their input rows zero-padded, at most about this many floats
# (1 MB: the rows stay in the core's L2 while every group block passes over its channels).
GROUPED_SLAB = 1 << 18
# Below this many output pixels per thread, a grouped convolution's threads split its output
# channels (each reads only its share of the weights) instead of its rows.
GROUPED_SPLIT_PIXELS = 256
# An expansion nested in its depthwise convolution (Step.pre) runs with it a band of rows at
# a time when its output for one pass is larger than EXPAND_MIN_BYTES (else both steps run
# apart: the map stays in the cache anyway); a band's expanded rows take at most about
# EXPAND_BAND_BYTES (half the core's L2: the rows and their depthwise output stay in it).
EXPAND_MIN_BYTES = 1 << 20
EXPAND_BAND_BYTES = 512 << 10

_BLAS = None
_BLAS_STATE = {"depth": 0, "before": []}  # plans running now; BLAS's thread counts before the first
_BLAS_LOCK = threading.Lock()


def _blas_libs() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries (found once: a lookup costs
    about a millisecond, a thread-count change a microsecond)."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            _BLAS = []
    return _BLAS


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS on one thread while plans run (our threads own the cores), then as before (plans
    running at once on several Python threads: restored when the last one ends)."""
    libs = _blas_libs()
    with _BLAS_LOCK:
        if _BLAS_STATE["depth"] == 0:
            _BLAS_STATE["before"] = [c.get_num_threads() for c in libs]
            for c in libs:
                c.set_num_threads(1)
        _BLAS_STATE["depth"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0:
                for c, n in zip(libs, _BLAS_STATE["before"]):
                    c.set_num_threads(n)


@contextlib.contextmanager
def session():
    """Held while a plan runs: Numba's thread count applied on this thread (and runs
    serialised on Numba's workqueue layer, :func:`.numba_threads.session`), BLAS on one thread."""
    with numba_threads.session(), single_threaded_blas():
        yield


def runtime(consume_weights: bool = False) -> Runtime:
    """``consume_weights``: kernel builders may overwrite the plan's weight arrays that nothing
    else holds (:func:`_consumable`; ``executor(..., release_weights=True)``)."""
    from cnngraph.backends.common import _numpy_erf

    rt = Runtime(np, _numpy_erf(), np.asarray)
    rt.extra["scratch"] = PAR.Scratch()  # per-thread scratch of the prange drivers (one per executor)
    rt.extra["consume_weights"] = consume_weights
    rt.session = session
    rt.load = _load
    rt.empty = aligned_empty
    return rt


def _load(view, x):
    """A batch in PyTorch layout into its channels-last arena view, on all threads (inputs
    of rank 4; others are plain reshapes)."""
    if x.ndim != 4:
        view[...] = x.reshape(view.shape)
        return
    x = np.ascontiguousarray(x)
    PAR.to_channels_last(chunks(x.shape[0] * x.shape[2], x.shape[1] * x.shape[3]), x, view)


ALIGN = 64  # bytes: a cache line, one 16-float vector


def aligned_empty(n: int) -> np.ndarray:
    """A float32 buffer of ``n`` elements starting on a cache line. NumPy aligns to 16 bytes;
    a 16-float vector load from a buffer that is not 64-byte aligned spans two cache lines
    (channel counts are mostly multiples of 16, so every load of a row does): the SE
    blocks' scale and pool steps ran 15-40% slower on such arena slots.

    >>> aligned_empty(5).ctypes.data % ALIGN, aligned_empty(5).shape
    (0, (5,))
    """
    buf = np.empty(n + ALIGN // 4, np.float32)
    off = (-buf.ctypes.data % ALIGN) // 4
    return buf[off:off + n]


# ---------------------------------------------------------------- helpers
def _codes(step):
    return act_code(step.act1), act_code(step.act2)


def _clamps(step) -> np.ndarray:
    """(lo1, hi1, lo2, hi2) when both epilogue activations are clamps (none, ReLU, ReLU6: the
    registry's :attr:`~cnngraph.ir.ops.Activation.clamp`), which the GEMM micro-kernel applies
    itself; else empty."""
    c1, c2 = act_clamp(step.act1), act_clamp(step.act2)
    if c1 is None or c2 is None:
        return EMPTY1
    return np.array(c1 + c2, np.float32)


def _bias(plan, step):
    return np.ascontiguousarray(weight(plan, step, "bias")) if "bias" in step.params else EMPTY1


def _rows2(a):
    return a.reshape(-1, a.shape[-1])


# ---------------------------------------------------------------- GEMM-based convolution and linear
def _column_chunk(row_tiles: int, nb: int) -> int:
    """Packed column blocks per work item: all ``nb``, unless there are few row tiles (batch 1,
    late layers, linear), when the output columns are split too so that every thread gets
    about GEMM_ITEMS_PER_THREAD work items."""
    want = GEMM_ITEMS_PER_THREAD * numba_threads.threads()
    return nb if row_tiles >= want else max(1, -(-nb // -(-want // row_tiles)))


def _gemm_builder(step, plan, rt, k, w, bp=None):
    """Convolution (or linear: a 1×1 convolution of a 1×1 image) as our own packed GEMMs
    (:mod:`.numba_gemm`) in one parallel region, epilogue fused; ``w`` is (C_out, C_in/G, kh, kw),
    ``bp`` its packing when already made."""
    G = k["groups"]
    if bp is None:
        bp = NG.pack_conv(w, G)  # (G, column blocks, kh·kw·C_in/G, NR), packed once
    Kd = bp.shape[2]
    bias = _bias(plan, step)
    a1, a2 = _codes(step)
    clamps = _clamps(step)
    direct = (k["kh"], k["kw"], k["sh"], k["sw"], k["pt"], k["pl"], k["pb"], k["pr"]) == (1, 1, 1, 1, 0, 0, 0, 0)
    geo = (k["Ho"], k["Wo"], k["kh"], k["kw"], k["sh"], k["sw"], k["pt"], k["pl"], k["dh"], k["dw"], G)
    cout = k["cout"]
    # Row tiles: a packed tile (im2col) of at most about GEMM_TILE_BYTES stays in L2 with
    # the product's tile; direct tiles read the input in place.
    mc = GEMM_ROWS if direct else max(NG.MR, min(GEMM_ROWS, GEMM_TILE_BYTES // (4 * G * Kd)) // NG.MR * NG.MR)
    nb = bp.shape[1]

    def run(ins, out, res):
        x = ins[0]
        M = x.shape[0] * k["Ho"] * k["Wo"]
        out2 = out.reshape(M, cout)
        res2 = res.reshape(M, cout) if res is not None else EMPTY2
        nbc = _column_chunk(-(-M // mc), nb)
        args = (x, out2, bp, bias, res2, a1, a2, clamps, *geo, direct, mc, nbc)
        n = NG.items(M, nb, mc, nbc)
        if M * Kd * cout >= GEMM_PARALLEL_MACS:
            NG.conv(n, numba_threads.threads(), *args)
        else:  # too small to wake another thread for (the SE blocks' 1×1 convolutions)
            NG.conv_items(0, n, *args)

    return run


def _implicit_builder(step, plan, rt, k, w):
    """An ungrouped convolution without horizontal dilation as an implicit GEMM
    (:func:`.numba_gemm.conv_implicit`): the input read in place by the micro-kernel (a
    zero-padded copy first when the convolution is padded), no im2col packing; the weights
    packed once in im2col's order, the epilogue fused."""
    bp = NG.pack_conv(w, 1)
    bias = _bias(plan, step)
    a1, a2 = _codes(step)
    clamps = _clamps(step)
    Ho, Wo, cin, cout = k["Ho"], k["Wo"], k["cin"], k["cout"]
    Hp, Wp = padded_extent(k)
    padded = (Hp, Wp, k["pt"], k["pl"]) != (k["H"], k["W"], 0, 0)
    rpi = max(1, GEMM_ROWS // Wo)  # output rows per work item: about GEMM_ROWS output pixels
    nb = bp.shape[1]
    S = rt.extra["scratch"]
    geo = (Ho, Wo, k["kh"], k["kw"], k["sh"], k["sw"], k["dh"])

    def run(ins, out, res):
        x = ins[0]
        N = x.shape[0]
        xp = S.one("implicit_pad", (N, Hp, Wp, cin)) if padded else x
        T = N * Ho
        nrt = -(-T // rpi)
        nbc = _column_chunk(nrt, nb)
        M = T * Wo
        out2 = out.reshape(M, cout)
        res2 = res.reshape(M, cout) if res is not None else EMPTY2
        n = nrt * -(-nb // nbc)
        workers = numba_threads.threads() if M * bp.shape[2] * cout >= GEMM_PARALLEL_MACS else 1
        NG.conv_implicit(n, workers, x, xp, k["pt"], k["pl"], out2, bp, bias, res2, a1, a2, clamps, *geo, rpi, nbc)

    return run


def _winograd_builder(step, plan, rt, k, w, m):
    """3×3 stride-1 convolution by Winograd F(m×m, 3×3) (:mod:`.numba_winograd`), its α²
    products on our GEMM, in one parallel region."""
    a = m + 2
    Up = WG.pack_filters(w, m)  # (α², column blocks, C_in, NR), packed once
    bias = _bias(plan, step)
    a1, a2 = _codes(step)
    cin, coutp = k["cin"], Up.shape[1] * NG.NR
    th, tw = -(-k["Ho"] // m), -(-k["Wo"] // m)
    geo = (m, th, tw, k["pt"], k["pl"])
    blk = max(WINO_MIN_TILES, WINO_BYTES // (4 * a * a * (cin + coutp)))

    def run(ins, out, res):
        x = ins[0]
        T = x.shape[0] * th * tw
        r = res if res is not None else EMPTY4
        threads = numba_threads.threads()
        if T >= 2 * threads * blk:
            # Enough tiles: each block is transformed, multiplied and transformed back in cache.
            WG.conv_blocks(x, out, Up, bias, r, a1, a2, *geo, min(blk, -(-T // (TILES_PER_THREAD * threads))),
                           threads)
        else:
            nb = Up.shape[1]
            nbc = max(1, -(-nb // max(1, -(-GEMM_ITEMS_PER_THREAD * threads // (a * a)))))
            WG.conv_few_tiles(x, out, Up, bias, r, a1, a2, *geo, max(1, min(T, 2 * threads)), nbc, threads)

    return run


def _direct_builder(step, plan, rt, k, w):
    """Depthwise (one input channel per group, any multiplier) and grouped convolutions by
    direct channels-last kernels over output rows (n, oh), epilogue fused."""
    S = rt.extra["scratch"]
    bias = _bias(plan, step)
    a1, a2 = _codes(step)
    geo = (k["sh"], k["sw"], k["pt"], k["pl"], k["dh"], k["dw"])
    G = k["groups"]
    cg, og = k["cin"] // G, k["cout"] // G
    cout, Wo = k["cout"], k["Wo"]
    work = k["Wo"] * k["cout"] * k["kh"] * k["kw"] * cg  # per output row
    if cg == 1:
        wd = np.ascontiguousarray(w.reshape(k["cout"], k["kh"], k["kw"]).transpose(1, 2, 0))
        if og > 1:  # channel multiplier
            def kernel(x, out, T, r):
                PAR.depthwise(chunks(T, work), x, wd, bias, out, T, og, *geo, r, a1, a2)
        else:
            # other kernels than K.depthwise_rows' blocked 3×3 and 5×5 ones, stride 1, few channels:
            # the weights repeated along a row, so one loop covers a row (K.depthwise_rows_any)
            wrow = np.ascontiguousarray(np.tile(wd, (1, 1, Wo))) if (
                k["sw"] == 1 and cout < DW_ROW_CHANNELS and not K.depthwise_blocked(k["kh"], k["kw"], *geo)) else EMPTY3

            def kernel(x, out, T, r):
                PAR.depthwise_rows(chunks(T, work), x, wd, wrow, bias, out, T, *geo, r, a1, a2,
                                   S.get("acc", (Wo * cout,)))
    else:
        # Packed once per group block in the order the micro-kernels read (numba_grouped);
        # input rows are copied zero-padded, GROUPED_SLAB floats of them at a time.
        Wp = padded_extent(k)[1]
        ps = GP.pixel_stride(k["cin"])
        rowlen = Wp * ps
        pk = GP.pack(w, G, k["kh"], k["kw"], k["dh"], k["dw"], rowlen, bias, pixel=ps)
        mode = 1 if pk.mode == "shuffle" else 0
        span = (k["kh"] - 1) * k["dh"] + 1
        R = max(1, min(k["Ho"], (max(GROUPED_SLAB // rowlen, span) - span) // k["sh"] + 1))
        slab = ((R - 1) * k["sh"] + span) * rowlen

        nblocks = len(pk.blocks)
        split = a2 == 0 and a1 in (0, 1)  # fused epilogue: threads may split the blocks

        def kernel(x, out, T, r):
            threads = numba_threads.threads()
            few = T * Wo < GROUPED_SPLIT_PIXELS * threads and nblocks >= 2 * threads
            if threads > 1 and split and r.size == 0 and few:
                # few pixels (a small image at batch 1): each thread takes a share of the
                # output channels (and reads only their weights), not of the rows
                parts, by_blocks = min(nblocks, 2 * threads), True
            else:
                parts, by_blocks = chunks(T, work), False
            # the rows' accumulator only for an epilogue the micro-kernel cannot fuse
            acc = S.get("acc", (R * Wo * cout,) if r.size or a1 not in (0, 1) else (0,))
            PAR.grouped_rows(parts, by_blocks, x, pk.wp, pk.bias, out, T, *geo, r, a1, a2, pk.blocks, pk.koff,
                             S.get("xpad", (slab,)), acc, mode, pk.nv, cg, k["kh"], rowlen, ps, R)

    def run(ins, out, res):
        kernel(ins[0], out, out.shape[0] * k["Ho"], res if res is not None else EMPTY4)

    return run


def _winograd(m):
    return lambda step, plan, rt, k, w: _winograd_builder(step, plan, rt, k, w, m)


# The convolution algorithms of cnngraph.algorithms.ALGORITHMS this backend runs.
CONV_KERNELS = {"gemm": _gemm_builder, "im2col": _gemm_builder, "implicit": _implicit_builder,
                "depthwise": _direct_builder,
                "grouped": _direct_builder, **{a: _winograd(m) for a, m in WINOGRAD_TILE.items()}}


def build_conv2d(step, plan, rt):
    k = conv_geometry(step)
    algorithm = step.algorithm or choose_conv(k, plan_batch(plan)).algorithm  # plans made by hand
    return CONV_KERNELS[algorithm](step, plan, rt, k, weight(plan, step, "weight"))


# The GEMM of a transposed convolution holds kh·kw products of every input pixel: at most
# about this many float32 elements at once (larger batches run in chunks of samples).
TRANSPOSE_COLS = 1 << 24


def build_conv_transpose2d(step, plan, rt):
    """Transposed convolution: one GEMM per group of the input (N·H·W, C_in/G) by the packed
    weights (C_in/G, kh·kw·C_out/G) on our GEMM, then a gather (col2im) over output rows with the bias and
    the epilogue fused; samples in chunks so the products stay within TRANSPOSE_COLS."""
    S = rt.extra["scratch"]
    k = transpose_geometry(step)
    G, cg, og = k["groups"], k["cg"], k["og"]
    wm = pack_transpose_weight(weight(plan, step, "weight"), k)  # (G, C_in/G, kh·kw·C_out/G)
    T = wm.shape[2]
    bp = np.empty((G, -(-T // NG.NR), cg, NG.NR), np.float32)
    for g in range(G):
        NG.pack_b(wm[g].T, bp[g])
    del wm
    bias = _bias(plan, step)
    a1, a2 = _codes(step)
    hw = k["H"] * k["W"]
    per_sample = hw * G * T
    geo = (k["H"], k["W"], k["kh"], k["kw"], k["sh"], k["sw"], k["pt"], k["pl"], k["dh"], k["dw"], og)

    def run(ins, out, res):
        x = ins[0]
        N = x.shape[0]
        r = res if res is not None else EMPTY4  # may be out itself: each pixel's residual is read before it is written
        nb = max(1, min(N, TRANSPOSE_COLS // max(per_sample, 1)))
        for n0 in range(0, N, nb):
            n1 = min(N, n0 + nb)
            M = (n1 - n0) * hw
            cols = S.one("transpose_cols", (G, M, T))
            NG.matmul(numba_threads.threads(), x[n0:n1].reshape(M, G * cg), bp, cols, GEMM_ROWS)
            PAR.col2im_transpose(chunks((n1 - n0) * k["Ho"], k["Wo"] * k["cout"] * k["kh"] * k["kw"]), cols, out, n0,
                                 n0 * k["Ho"], n1 * k["Ho"], *geo, bias, r, a1, a2)

    return run


def plan_batch(plan) -> int:
    return int(getattr(plan, "batch", 1))


def _sole_refcounts() -> tuple:
    """``sys.getrefcount`` of an array held by one dict entry only, and of an array held only
    as another's ``base``, each read as :func:`_consumable` and :func:`_owned` read theirs:
    the interpreter's own counts (a newer CPython may count a local variable's reference or
    not), measured once rather than assumed."""
    if not _SOLE:
        d = {"k": np.empty(4, np.float32)}
        a = d.get("k")
        held = sys.getrefcount(a)
        v = np.empty(4, np.float32).reshape(2, 2)
        b = v.base
        _SOLE.append((held, sys.getrefcount(b)))
    return _SOLE[0]


_SOLE: list = []


def _owned(a) -> bool:
    """Whether nothing but ``a`` can see its memory: each array it is a view of (a weight read
    from a file is a reshaped view of the buffer read into) is held only as its view's
    ``base``, and the memory is ultimately an array's own (not a file's map or bytes)."""
    base_only = _sole_refcounts()[1]
    b = a.base
    while b is not None:
        if not isinstance(b, np.ndarray) or sys.getrefcount(b) > base_only:
            return False
        b = b.base
    return True


def _consumable(plan, step, rt, role: str):
    """The plan's array of ``step``'s weight ``role`` when the executor may overwrite it with
    its packing (``executor(..., release_weights=True)``: the plan's weights are not needed
    again): float32, contiguous, writeable, used by this step alone, and held by nothing but
    ``plan.weights`` (its reference count), so no one else can see its values change; else None."""
    if not rt.extra.get("consume_weights"):
        return None
    key = step.params[role]
    if sum(key in p.params.values() for s in plan.steps for p in s.parts) != 1:
        return None
    a = plan.weights.get(key)
    ok = (type(a) is np.ndarray and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
          and sys.getrefcount(a) <= _sole_refcounts()[0] and _owned(a))
    return a if ok else None


def build_linear(step, plan, rt):
    """A linear layer: a 1×1 convolution of a 1×1 image on our packed GEMM. When the executor
    may consume the plan's weights (:func:`_consumable`) and the outputs are a multiple of NR,
    the weights are packed into their own array's memory (:func:`.numba_gemm.pack_b_inplace`),
    so building the executor never holds them twice (VGG-16's first linear layer is 411 MB)."""
    fin, fout = int(step.in_shapes[0][0]), int(step.out_shape[0])
    k = dict(cin=fin, cout=fout, H=1, W=1, Ho=1, Wo=1, kh=1, kw=1, sh=1, sw=1, pt=0, pl=0, pb=0, pr=0, dh=1, dw=1,
             groups=1)
    own = _consumable(plan, step, rt, "weight") if fout % NG.NR == 0 else None
    if own is not None:
        bp = NG.pack_b_inplace(own.reshape(fout, fin))[None]  # (1, column blocks, fin, NR)
        return _gemm_builder(step, plan, rt, k, None, bp)
    return _gemm_builder(step, plan, rt, k, weight(plan, step, "weight").reshape(fout, fin, 1, 1))


# ---------------------------------------------------------------- element-wise steps
def _elementwise(step, rt, scale, bias, a1, a2, p1=0.0):
    p1 = np.float32(p1)

    def run(ins, out, res):
        x2, o2 = _rows2(ins[0]), _rows2(out)
        r2 = _rows2(res) if res is not None else EMPTY2
        R, C = o2.shape
        PAR.epilogue(chunks(R, C), x2, o2, R, C, scale, bias, r2, a1, a2, p1)

    return run


def build_act(step, plan, rt):
    return _elementwise(step, rt, EMPTY1, EMPTY1, act_code(step.op), 0, act_param(step.op, step.attrs))


def build_batchnorm(step, plan, rt):
    c = int(step.in_shapes[0][0])
    ws = {f"{step.node}.{r}": weight(plan, step, r) for r in step.params}
    scale, shift = bn_scale_shift(ws, step.node, step.attrs, c)
    a1, a2 = _codes(step)
    return _elementwise(step, rt, scale.astype(np.float32), shift.astype(np.float32), a1, a2)


def build_add(step, plan, rt):
    a2 = act_code(step.act2)
    zero = np.float32(0)

    def run(ins, out, res):
        o2 = _rows2(out)
        R, C = o2.shape
        terms = [_rows2(x) for x in ins] + ([_rows2(res)] if res is not None else [])
        last = len(terms) - 1
        parts = chunks(R, 2 * C)
        src = terms[0]
        for t in range(1, len(terms)):  # a sum of more than two: one pass per term
            PAR.epilogue(parts, src, o2, R, C, EMPTY1, EMPTY1, terms[t], 0, a2 if t == last else 0, zero)
            src = o2

    return run


def build_mul(step, plan, rt):
    from cnngraph.backends.common import build_mul as generic

    xs, ss = step.in_shapes
    if not (len(xs) == 3 and (tuple(ss) in ((xs[0], 1, 1), (xs[0],)))):
        return generic(step, plan, rt)
    hw = int(xs[1]) * int(xs[2])

    def run(ins, out, res):
        x2, o2 = _rows2(ins[0]), _rows2(out)
        s2 = ins[1].reshape(ins[1].shape[0], -1)
        R, C = x2.shape
        PAR.mul_bcast(chunks(R, C), x2, s2, o2, R, hw)

    return run


def build_gated_mul(step, plan, rt, table):
    """A squeeze-and-excitation block's product with its gate (``Step.gate``: global average
    pool, two 1×1 convolutions): the pool's kernel, both convolutions in one serial call
    (:func:`.numba_kernels.gate_fc`) instead of two GEMM steps, then the broadcast product.
    Activations outside :data:`.numba_kernels.ACT_ROW_CODES` (or with a parameter) run each
    part's own kernel (:func:`.common.build_nested`)."""
    from cnngraph.backends.common import build_nested

    pool, fc1, fc2 = step.gate
    acts = (fc1.act1, fc2.act1)
    if any(a is not None and (a not in K.ACT_ROW_CODES or ops.get(a).activation.param is not None) for a in acts):
        return build_nested(step, plan, rt, table)
    C, r = int(fc1.in_shapes[0][0]), int(fc1.out_shape[0])
    w1, w2 = weight(plan, fc1, "weight"), weight(plan, fc2, "weight")
    if w1.shape != (r, C, 1, 1) or w2.shape != (C, r, 1, 1):  # not two dense 1×1 convolutions' weights
        return build_nested(step, plan, rt, table)
    pool_fn, mul_fn = table[pool.op](pool, plan, rt), table[step.op](step, plan, rt)
    w1t = np.ascontiguousarray(w1.reshape(r, C).T, np.float32)
    w2t = np.ascontiguousarray(w2.reshape(C, r).T, np.float32)
    b1 = np.ascontiguousarray(weight(plan, fc1, "bias"), np.float32) if "bias" in fc1.params else np.zeros(r, np.float32)
    b2 = np.ascontiguousarray(weight(plan, fc2, "bias"), np.float32) if "bias" in fc2.params else np.zeros(C, np.float32)
    a1, a2 = act_code(acts[0]), act_code(acts[1])

    def run(ins, out, res):
        x, s, pooled, h = ins
        pool_fn([x], pooled, None)
        K.gate_fc(pooled.reshape(pooled.shape[0], C), w1t, b1, a1, w2t, b2, a2, h.reshape(h.shape[0], r),
                  s.reshape(s.shape[0], C))
        mul_fn([x, s], out, res)

    return run


def build_expanded(step, plan, rt, table):
    """A depthwise convolution with its expansion (``Step.pre``, an inverted residual's 1×1
    convolution) in one parallel region, a band of rows at a time (:mod:`.numba_fused`):
    the expanded rows stay in the core's cache. Each step alone (:func:`.common.build_nested`)
    when the expanded map of a pass is small enough to stay in the cache anyway (at most
    EXPAND_MIN_BYTES: the bands' shared rows would cost more than they save), or the
    depthwise kernel is not a blocked one."""
    from cnngraph.backends.common import build_nested

    (pre,) = step.pre
    ke, kd = conv_geometry(pre), conv_geometry(step)
    C, W = ke["cout"], ke["Wo"]
    geo = (kd["kh"], kd["sh"], kd["sw"], kd["pt"], kd["pl"], kd["dh"], kd["dw"])
    expanded = 4 * ke["Ho"] * W * C * max(1, plan.chunk or plan_batch(plan))
    if expanded <= EXPAND_MIN_BYTES or not K.depthwise_blocked(kd["kh"], kd["kw"], *geo[1:]):
        return build_nested(step, plan, rt, table)
    bp = NG.pack_conv(weight(plan, pre, "weight"), 1)
    bias_e, clamps_e, a1e = _bias(plan, pre), _clamps(pre), act_code(pre.act1)
    wd = np.ascontiguousarray(weight(plan, step, "weight").reshape(C, kd["kh"], kd["kw"]).transpose(1, 2, 0))
    bias_d = _bias(plan, step)
    a1d, a2d = _codes(step)
    Ho, Wo = kd["Ho"], kd["Wo"]
    # output rows per band: the band's expanded rows within EXPAND_BAND_BYTES
    R = 1
    while R < Ho and 4 * FU.band_rows(R + 1, kd["kh"], kd["sh"], kd["dh"]) * W * C <= EXPAND_BAND_BYTES:
        R += 1
    S = rt.extra["scratch"]

    def run(ins, out, res):
        x = ins[0]
        N = x.shape[0]
        workers = numba_threads.threads()
        r = min(R, max(1, -(-Ho * N // (2 * workers))))  # at least two bands per thread when the rows allow
        bands = -(-Ho // r)
        buf = S.get("expanded", (FU.band_rows(r, kd["kh"], kd["sh"], kd["dh"]) * W, C))
        FU.expand_depthwise(N * bands, workers, bands, r, x, bp, bias_e, a1e, clamps_e, wd, EMPTY3, bias_d, out,
                            res if res is not None else EMPTY4, *geo, a1d, a2d, buf, S.get("acc", (Wo * C,)))

    return run


# ---------------------------------------------------------------- pooling and normalisation
def build_maxpool2d(step, plan, rt):
    k = pool_geometry(step)
    geo = (k["kh"], k["kw"], k["sh"], k["sw"], k["pt"], k["pl"], k["dh"], k["dw"])
    work = k["Wo"] * k["C"] * k["kh"] * k["kw"]

    def run(ins, out, res):
        T = out.shape[0] * k["Ho"]
        PAR.maxpool(chunks(T, work), ins[0], out, T, *geo)

    return run


def build_avgpool2d(step, plan, rt):
    k = pool_geometry(step)
    div = avgpool_divisor(k)
    geo = (k["kh"], k["kw"], k["sh"], k["sw"], k["pt"], k["pl"])
    work = k["Wo"] * k["C"] * k["kh"] * k["kw"]

    def run(ins, out, res):
        T = out.shape[0] * k["Ho"]
        PAR.avgpool(chunks(T, work), ins[0], out, T, *geo, div)

    return run


def _adaptive(is_max):
    def build(step, plan, rt):
        Ho = int(step.out_shape[1])
        C = int(step.out_shape[0])

        def run(ins, out, res):
            T = out.shape[0] * Ho
            work = ins[0][0].size // Ho
            threads = numba_threads.threads()
            # fewer rows than threads (a global pool at batch 1): the channels are split too
            cs = 1 if T >= threads else max(1, min(-(-threads // T), C // 64))
            PAR.adaptive_pool(chunks(T * cs, work // cs), ins[0], out, T, is_max, cs)

        return run

    return build


def build_softmax(step, plan, rt):
    def run(ins, out, res):
        x2, o2 = _rows2(ins[0]), _rows2(out)
        R, C = x2.shape
        PAR.softmax(chunks(R, 4 * C), x2, o2, R)

    return run


def _norm(kind):
    def build(step, plan, rt):
        shape = step.in_shapes[0]
        C = int(shape[0])
        eps = float(step.attrs["eps"])
        G = {"groupnorm": int(step.attrs.get("num_groups", 1)), "instancenorm": C, "layernorm": 1}[kind]
        per_element = kind == "layernorm"
        if "weight" in step.params:
            gamma, beta = weight(plan, step, "weight"), weight(plan, step, "bias")
            if per_element and gamma.ndim == 3:
                gamma, beta = gamma.transpose(1, 2, 0), beta.transpose(1, 2, 0)
            C_last = gamma.shape[-1]
            gamma = np.ascontiguousarray(gamma.reshape(-1, C_last))
            beta = np.ascontiguousarray(beta.reshape(-1, C_last))
        else:
            gamma = beta = EMPTY2
        if kind == "layernorm" and len(shape) == 1:
            G = 1

        def run(ins, out, res):
            x = ins[0]
            N = x.shape[0]
            x3 = x.reshape(N, -1, x.shape[3])
            o3 = out.reshape(N, -1, out.shape[3])
            PAR.group_norm(chunks(N, 3 * x3[0].size), x3, o3, N, G, eps, gamma, beta, per_element)

        return run

    return build


def build_prelu(step, plan, rt):
    slope = np.ascontiguousarray(weight(plan, step, "weight").reshape(-1))

    def run(ins, out, res):
        x2, o2 = _rows2(ins[0]), _rows2(out)
        R, C = x2.shape
        PAR.prelu(chunks(R, C), x2, o2, R, slope)

    return run


def build_layer_scale(step, plan, rt):
    """γ·x per channel: the epilogue kernel with γ as its scale (a residual add and an activation fused)."""
    gamma = np.ascontiguousarray(weight(plan, step, step.attrs["field"]).reshape(-1))
    return _elementwise(step, rt, gamma, EMPTY1, *_codes(step))


def build_layernorm2d(step, plan, rt):
    eps = float(step.attrs["eps"])
    if "weight" in step.params:
        gamma, beta = (np.ascontiguousarray(weight(plan, step, f).reshape(-1)) for f in ("weight", "bias"))
    else:
        gamma = beta = EMPTY1

    def run(ins, out, res):
        x2, o2 = _rows2(ins[0]), _rows2(out)
        R, C = x2.shape
        PAR.layernorm(chunks(R, 3 * C), x2, o2, R, eps, gamma, beta)

    return run


def build_resize(step, plan, rt):
    (ih, wh), (iw, ww) = resize_geometry(step)
    nearest = step.attrs["mode"] == "nearest"
    Ho = int(step.out_shape[1])

    def run(ins, out, res):
        T = out.shape[0] * Ho
        PAR.resize(chunks(T, out.shape[2] * out.shape[3] * (1 if nearest else 6)), ins[0], out, T, ih, wh, iw, ww,
                   nearest)

    return run


def build_lrn(step, plan, rt):
    a = step.attrs
    args = (int(a["size"]), np.float32(a["alpha"]), np.float32(a["beta"]), np.float32(a["k"]))

    def run(ins, out, res):
        x2, o2 = _rows2(ins[0]), _rows2(out)
        R, C = x2.shape
        PAR.lrn(chunks(R, C * args[0]), x2, o2, R, *args)

    return run


KERNELS = {
    "conv2d": build_conv2d, "conv_transpose2d": build_conv_transpose2d, "linear": build_linear,
    "batchnorm": build_batchnorm, "add": build_add, "mul": build_mul, "maxpool2d": build_maxpool2d, "avgpool2d": build_avgpool2d,
    "adaptive_avgpool2d": _adaptive(False), "adaptive_maxpool2d": _adaptive(True), "softmax": build_softmax,
    "groupnorm": _norm("groupnorm"), "instancenorm": _norm("instancenorm"), "layernorm": _norm("layernorm"),
    "lrn": build_lrn, "prelu": build_prelu, "layer_scale": build_layer_scale, "layernorm2d": build_layernorm2d,
    "resize": build_resize,
    **{a: build_act for a in K.ACT_ROW_CODES},
}
# flatten, concat, slice, channel_shuffle: memory copies, the generic NumPy kernels.

def describe_threads() -> str:
    """The threads a plan runs on: their count and Numba's threading layer.

    >>> describe_threads().split(" threads, Numba's ")[1] in ("omp layer", "tbb layer", "workqueue layer")
    True
    """
    return f"{numba_threads.numba_threads()} threads, Numba's {threading_layer()} layer"


BACKEND = Backend(name=NAME, xp=np, KERNELS=KERNELS, runtime=runtime, executor=Executor, threads=describe_threads,
                  chunked=True, gates={"mul": build_gated_mul},
                  expansions={"conv2d": build_expanded})


_TRIM: list = []  # [malloc_trim or None], looked up once


def _malloc_trim():
    if not _TRIM:
        import ctypes
        import ctypes.util

        try:
            trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
            trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            trim = None
        _TRIM.append(trim)
    return _TRIM[0]


def release_free_memory() -> bool:
    """Hand the heap memory freed so far back to the operating system (glibc's ``malloc_trim``,
    every thread's arena); False where there is no glibc. Building an executor frees many
    temporaries and the weights it has packed; glibc otherwise keeps what was freed (its mmap
    threshold grows with the blocks freed, so later large arrays come from the heap): on
    ResNet-50 about 35 MB of the process's resident memory at the end of packing, more at its
    peak. Costs tens of microseconds.

    >>> isinstance(release_free_memory(), bool)
    True
    """
    trim = _malloc_trim()
    if trim is None:  # pragma: no cover - not glibc
        return False
    trim(0)
    return True


# While packing, the heap is handed back each time the weights released since the last time
# (``executor(..., release_weights=True)``) reach this many bytes.
TRIM_BYTES = 1 << 20


def executor(plan: Plan, progress=None, release_weights: bool = False) -> Executor:
    """An executor of ``plan`` on this backend (kernels built and weights packed once; the
    freed temporaries handed back to the system, :func:`release_free_memory`).

    ``release_weights``: each weight leaves ``plan.weights`` as soon as the last step using
    it has its kernel (which holds it packed, or in place), so the originals of packed
    weights are freed while the others are being packed, and the heap is handed back every
    :data:`TRIM_BYTES` of them (on ResNet-50 about 35 MB less at the peak of packing); a
    linear layer's weight array that nothing else holds is packed into its own memory
    (:func:`build_linear`: VGG-16's 411 MB layer is never held twice). The plan cannot
    build another executor afterwards.
    """
    release_free_memory()  # what compiling the plan freed: packing reuses it
    hook = progress
    if release_weights and plan.weights is not None:
        last = {key: i for i, step in enumerate(plan.steps) for p in step.parts for key in p.params.values()}
        released = [0]

        def hook(i, step):
            for key in (key for p in step.parts for key in p.params.values()):
                if last.get(key) == i:
                    a = plan.weights.pop(key, None)
                    released[0] += getattr(a, "nbytes", 0)
            if released[0] >= TRIM_BYTES:
                release_free_memory()
                released[0] = 0
            if progress:
                progress(i, step)

    backend = BACKEND
    if release_weights:  # the kernels' builders may then pack a weight into its own memory (build_linear)
        backend = dataclasses.replace(BACKEND, runtime=lambda: runtime(consume_weights=True))
    ex = Executor(plan, backend, progress=hook)
    release_free_memory()
    return ex


def run(plan: Plan, *inputs):
    """Run ``plan`` once on arrays in PyTorch layout; returns the outputs (NumPy arrays)."""
    return executor(plan).run(*inputs)
