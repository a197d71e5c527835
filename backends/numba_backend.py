"""The Numba CPU backend: channels-last float32 kernels, GEMMs on BLAS, all cores.

How the work is spread: every step but the GEMMs is a Numba ``parallel=True`` driver
(:mod:`.numba_par`: a ``prange`` over chunks of output rows, each running a row-range kernel
of :mod:`.numba_kernels`) on Numba's threading layer, OpenMP where it loads
(:mod:`.numba_threads`, which also applies the thread count while a plan runs). The GEMMs
(and Winograd's α² products) run as tiles on a small Python thread pool (one thread per
core, the caller included) calling single-threaded BLAS (``np.matmul``; BLAS is limited to
one thread only while a plan runs, restored afterwards); plans run one at a time while that
pool is shared.

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
import itertools
import math
import os
import queue
import threading

import numba
import numpy as np

from cnngraph.compiler.algorithms import WINOGRAD_TILE, choose_conv
from cnngraph.compiler.passes import bn_scale_shift
from cnngraph.ir.ops import act_code, act_param
from cnngraph.backends import Backend
from cnngraph.compiler.plan import Plan

from cnngraph.backends import numba_kernels as K
from cnngraph.backends import numba_par as PAR
from cnngraph.backends import numba_threads
from cnngraph.backends import numba_winograd as WG
from cnngraph.backends import numba_grouped as GP
from cnngraph.backends.numba_par import MIN_CHUNK_WORK, chunks
from cnngraph.backends.numba_threads import num_threads, threading_layer  # noqa: F401  - re-exported
from cnngraph.backends.common import (Executor, Runtime, avgpool_divisor, conv_geometry, pack_transpose_weight,
                                      pool_geometry, resize_geometry, transpose_geometry, weight)

NAME = "numba"
EMPTY1 = np.empty(0, np.float32)
EMPTY2 = np.empty((0, 0), np.float32)
EMPTY3 = np.empty((0, 0, 0), np.float32)
EMPTY4 = np.empty((0, 0, 0, 0), np.float32)

# Tiles: an im2col tile of at most about PACK_BYTES stays in the (shared L3) cache between
# packing and the GEMM; a GEMM tile has at least MIN_ROWS rows; column splits are used for
# products of at least 2·MIN_TILE_MACS multiply-adds.
PACK_BYTES = 4 << 20
MIN_ROWS = 256
TILES_PER_THREAD = 4
SMALL_M = 512  # rows per thread below which the output channels are split instead
TRANSPOSED_ROWS = 128  # at most this many rows: the product is computed as W @ xᵀ (_small_m)
MIN_TILE_MACS = 1 << 20
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

# ---------------------------------------------------------------- thread pool
class Pool:
    """Runs ``fn(i, worker)`` for i in range(n) on ``threads`` threads, the caller included.

    Work is handed out dynamically (a shared counter), so a core slowed by another process
    takes fewer tiles. ``worker`` indexes per-thread scratch buffers.
    """

    def __init__(self, threads: int):
        self.threads = threads
        self.pid = os.getpid()
        self.scratch = [dict() for _ in range(threads)]
        self._todo = [queue.SimpleQueue() for _ in range(threads - 1)]
        self._done = queue.SimpleQueue()
        for w in range(1, threads):
            threading.Thread(target=self._loop, args=(w,), daemon=True, name=f"cnngraph-numba-{w}").start()

    def _loop(self, w):
        while True:
            job = self._todo[w - 1].get()
            try:
                job(w)
                self._done.put(None)
            except BaseException as e:  # reported by the caller
                self._done.put(e)

    def run(self, fn, n: int) -> None:
        if n <= 0:
            return
        helpers = min(self.threads, n) - 1
        if helpers == 0:
            for i in range(n):
                fn(i, 0)
            return
        counter = itertools.count()

        def work(w):
            for i in counter:
                if i >= n:
                    return
                fn(i, w)

        for w in range(1, helpers + 1):
            self._todo[w - 1].put(work)
        err = None
        try:
            work(0)
        except BaseException as e:
            err = e
        for _ in range(helpers):
            e = self._done.get()
            err = err or e
        if err is not None:
            raise err

    def buffer(self, w: int, key: str, shape) -> np.ndarray:
        """A per-thread scratch array of ``shape`` (reused, grown when too small)."""
        size = math.prod(shape)
        buf = self.scratch[w].get(key)
        if buf is None or buf.size < size:
            buf = self.scratch[w][key] = np.empty(max(size, 1), np.float32)
        return buf[:size].reshape(shape)

    def ranges(self, total: int, grain: int = 1, work: int = 1):
        """Split range(total) into about 4 chunks per thread, each at least ``grain`` long and
        at least MIN_CHUNK_WORK element operations (``work`` per item): waking another thread
        costs more than a smaller chunk's work, so small steps run on the caller alone."""
        grain = max(grain, MIN_CHUNK_WORK // max(work, 1), 1)
        parts = max(1, min(4 * self.threads, total // grain))
        step = -(-total // parts)
        return [(a, min(a + step, total)) for a in range(0, total, step)]

    def for_ranges(self, total: int, fn, grain: int = 1, work: int = 1):
        rs = self.ranges(total, grain, work)
        self.run(lambda i, w: fn(*rs[i], w), len(rs))


_POOL = None
_POOL_LOCK = threading.Lock()


def pool() -> Pool:
    """The process's pool (a new one after a fork: the child does not inherit the threads)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.threads != num_threads() or _POOL.pid != os.getpid():
            _POOL = Pool(num_threads())
        return _POOL


_BLAS = None


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
    """BLAS on one thread while a plan runs (our threads own the cores), then as before."""
    libs = _blas_libs()
    before = [c.get_num_threads() for c in libs]
    for c in libs:
        c.set_num_threads(1)
    try:
        yield
    finally:
        for c, n in zip(libs, before):
            c.set_num_threads(n)


@contextlib.contextmanager
def session():
    """Held while a plan runs: Numba's thread count applied on this thread
    (:func:`.numba_threads.session`) and BLAS on one thread. Runs are serialised: the GEMM
    tiles still share the process's :class:`Pool` and its scratch buffers."""
    with numba_threads.session(serialise=True), single_threaded_blas():
        yield


class _PoolRef:
    """The current process's pool, looked up at each use (so an executor survives a fork)."""

    def __getattr__(self, name):
        return getattr(pool(), name)


def runtime() -> Runtime:
    from cnngraph.backends.common import _numpy_erf

    rt = Runtime(np, _numpy_erf(), np.asarray)
    rt.extra["pool"] = _PoolRef()
    rt.extra["scratch"] = PAR.Scratch()  # per-thread scratch of the prange drivers (one per executor)
    rt.session = session
    return rt


# ---------------------------------------------------------------- helpers
def _codes(step):
    return act_code(step.act1), act_code(step.act2)


def _aliases(plan: Plan, step) -> bool:
    """Does the step's output share its buffer with its residual?"""
    return step.residual is not None and plan.values[step.residual].slot == plan.values[step.output].slot


_CLAMP = {0: (-np.inf, np.inf), 1: (0.0, np.inf), 2: (0.0, 6.0)}  # act code -> (lo, hi)


def _clamps(step):
    """(lo1, hi1, lo2, hi2) when both epilogue activations are clamps, else None."""
    a1, a2 = _codes(step)
    if a1 not in _CLAMP or a2 not in _CLAMP:
        return None
    return tuple(np.float32(v) for v in _CLAMP[a1] + _CLAMP[a2])


def _bias(plan, step):
    return np.ascontiguousarray(weight(plan, step, "bias")) if "bias" in step.params else EMPTY1


def _rows2(a):
    return a.reshape(-1, a.shape[-1])


def _block(n: int, parts: int, align: int = 16) -> int:
    """A block length that splits n into about ``parts`` pieces, a multiple of ``align``."""
    b = -(-n // max(parts, 1))
    return min(n, -(-b // align) * align)


# ---------------------------------------------------------------- GEMM-based convolution and linear
def _gemm_builder(step, plan, rt, k, w):
    """Convolution (or linear: a 1×1 convolution of a 1×1 image) as packed GEMMs;
    ``w`` is (C_out, C_in/G, kh, kw)."""
    P: Pool = rt.extra["pool"]
    G = k["groups"]
    cg, og = k["cin"] // G, k["cout"] // G
    Kd = k["kh"] * k["kw"] * cg
    # Ungrouped: the weights as rows (C_out, kh·kw·C_in), columns in im2col's order (tap, then
    # channel): a 1×1 kernel (and a linear layer) is the weights themselves, no packed copy
    # (VGG-16's classifier is 0.5 GB). The row-tile GEMMs read its transposed view, the
    # narrow products of few rows (_small_m) the rows. Grouped: (G, kh·kw·cg, og), one matrix per group.
    if G == 1:
        wrows = w.reshape(og, cg) if (k["kh"], k["kw"]) == (1, 1) else \
            np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(og, Kd))
        wm = wrows.T[None]
    else:
        wm = np.ascontiguousarray(w.reshape(G, og, cg, k["kh"], k["kw"]).transpose(0, 3, 4, 2, 1).reshape(G, Kd, og))
    bias = _bias(plan, step)
    a1, a2 = _codes(step)
    alias = _aliases(plan, step)
    fast = _clamps(step)  # branch-free epilogue for none/ReLU/ReLU6
    if fast is not None:
        ones = np.ones(k["cout"], np.float32)
        fbias = bias if bias.size else np.zeros(k["cout"], np.float32)
    direct = (k["kh"], k["kw"], k["sh"], k["sw"], k["pt"], k["pl"], k["pb"], k["pr"]) == (1, 1, 1, 1, 0, 0, 0, 0)
    geo = (k["Ho"], k["Wo"], k["kh"], k["kw"], k["sh"], k["sw"], k["pt"], k["pl"], k["dh"], k["dw"])
    cout = k["cout"]

    def run(ins, out, res):
        x = ins[0]
        M = x.shape[0] * k["Ho"] * k["Wo"]
        out2 = out.reshape(M, cout)
        res2 = res.reshape(M, cout) if res is not None else EMPTY2
        x2 = x.reshape(M, k["cin"]) if direct else None
        # Row tiles: each GEMM call repacks the weights (K×N), so a tile has at least
        # MIN_ROWS rows; the packed rows stay in the cache; about 4 tiles per thread balance
        # the load. With too few rows for that, split the output channels instead.
        if G == 1 and M < SMALL_M * P.threads and M * Kd * cout >= MIN_TILE_MACS:
            _small_m(x, x2, out2, res2, M)
            return
        rows = min(max(MIN_ROWS, PACK_BYTES // (4 * Kd)), max(MIN_ROWS, _block(M, TILES_PER_THREAD * P.threads)), M)
        ntiles = -(-M // rows)

        def tile(i, wk):
            r0 = i * rows
            r1 = min(M, r0 + rows)
            n = r1 - r0
            if direct:
                a = x2[r0:r1].reshape(n, G, cg)
            else:
                a = P.buffer(wk, "cols", (n, G, Kd))
                K.im2col(x, a.reshape(n, G * Kd), r0, r1, *geo, G, cg)
            # One BLAS call per group, all groups' products side by side in the output rows;
            # through a scratch block when the output overwrites the residual.
            dst = P.buffer(wk, "gemm", (n, cout)) if alias else out2[r0:r1]
            np.matmul(a.transpose(1, 0, 2), wm, out=dst.reshape(n, G, og).transpose(1, 0, 2))
            if alias:
                if fast is not None:
                    K.epilogue_clamp(dst, r0, 0, res2, r0, r1, 0, cout, ones, fbias, *fast, res is not None)
                    out2[r0:r1] = dst
                else:
                    K.epilogue(dst, True, out2, r0, r1, 0, cout, EMPTY1, bias, res2, a1, a2)
            elif fast is not None:
                K.epilogue_clamp(out2, 0, 0, res2, r0, r1, 0, cout, ones, fbias, *fast, res is not None)
            else:
                K.epilogue(out2, False, out2, r0, r1, 0, cout, EMPTY1, bias, res2, a1, a2)

        P.run(tile, ntiles)

    def _small_m(x, x2, out2, res2, M):
        # Few rows (late layers at batch 1, linear layers): pack once, split the columns.
        if direct:
            a = x2
        else:
            a = P.buffer(0, "cols_all", (M, Kd))
            P.for_ranges(M, lambda r0, r1, wk: K.im2col(x, a[r0:r1], r0, r1, *geo, 1, cg), work=Kd)
        nb = _block(cout, 2 * P.threads, 64)
        blocks = [(c, min(c + nb, cout)) for c in range(0, cout, nb)]

        def tile_t(i, wk):
            # W[c0:c1] @ aᵀ: BLAS packs the few activation rows instead of a K×N block of
            # weights read across their rows, 10-30% faster below about TRANSPOSED_ROWS rows.
            c0, c1 = blocks[i]
            yt = P.buffer(wk, "gemm_t", (c1 - c0, M))
            np.matmul(wrows[c0:c1], a.T, out=yt)
            K.epilogue_t(yt, out2, 0, M, c0, c1, bias, res2, a1, a2)

        def tile(i, wk):
            c0, c1 = blocks[i]
            if alias:
                blk = P.buffer(wk, "gemm", (M, c1 - c0))
                np.matmul(a, wm[0][:, c0:c1], out=blk)
                if fast is not None:
                    K.epilogue_clamp(blk, 0, 0, res2, 0, M, c0, c1, ones, fbias, *fast, res2.size > 0)
                    out2[:, c0:c1] = blk
                else:
                    K.epilogue(blk, True, out2, 0, M, c0, c1, EMPTY1, bias, res2, a1, a2)
            else:
                np.matmul(a, wm[0][:, c0:c1], out=out2[:, c0:c1])
                if fast is not None:
                    K.epilogue_clamp(out2, 0, c0, res2, 0, M, c0, c1, ones, fbias, *fast, res2.size > 0)
                else:
                    K.epilogue(out2, False, out2, 0, M, c0, c1, EMPTY1, bias, res2, a1, a2)

        P.run(tile_t if M <= TRANSPOSED_ROWS else tile, len(blocks))

    return run


def _winograd_builder(step, plan, rt, k, w, m):
    """3×3 stride-1 convolution by Winograd F(m×m, 3×3) (:mod:`.numba_winograd`)."""
    P: Pool = rt.extra["pool"]
    a = m + 2
    U = WG.filter_transform(w, m)  # (α², C_in, C_out), packed once
    bias = _bias(plan, step)
    a1, a2 = _codes(step)
    cin, cout = k["cin"], k["cout"]
    th, tw = -(-k["Ho"] // m), -(-k["Wo"] // m)
    geo, pad = (m, th, tw), (k["pt"], k["pl"])

    def scratch(wk):
        return P.buffer(wk, "wd", (2, a, a, cin)), P.buffer(wk, "wt", (a, m, cout)), P.buffer(wk, "wy", (m, m, cout))

    def run(ins, out, res):
        x = ins[0]
        T = x.shape[0] * th * tw
        r = res if res is not None else EMPTY4
        blk = max(WINO_MIN_TILES, min(WINO_BYTES // (4 * a * a * (cin + cout)), -(-T // (TILES_PER_THREAD * P.threads))))
        if T >= 2 * P.threads * blk:
            # Enough tiles: each block is transformed, multiplied and transformed back in cache.
            def block(i, wk):
                t0, t1 = i * blk, min(T, (i + 1) * blk)
                V = P.buffer(wk, "wv", (t1 - t0, a * a, cin))
                Mo = P.buffer(wk, "wm", (t1 - t0, a * a, cout))
                d, tmp, y = scratch(wk)
                WG.input_transform(x, V, t0, t1, t0, *geo, *pad, d)
                np.matmul(V.transpose(1, 0, 2), U, out=Mo.transpose(1, 0, 2))
                WG.output_transform(Mo, out, t0, t1, t0, *geo, bias, r, a1, a2, tmp, y)

            P.run(block, -(-T // blk))
            return
        # Few tiles (batch 1, late layers): transform all, share the α² GEMMs, transform back.
        V = P.buffer(0, "wv_all", (T, a * a, cin))
        Mo = P.buffer(0, "wm_all", (T, a * a, cout))
        S = rt.extra["scratch"]
        PAR.winograd_input(chunks(T, a * a * cin), x, V, T, *geo, *pad, S.get("wd", (2, a, a, cin)))
        P.run(lambda p, wk: np.matmul(V[:, p], U[p], out=Mo[:, p]), a * a)
        PAR.winograd_output(chunks(T, a * a * cout), Mo, out, T, *geo, bias, r, a1, a2, S.get("wt", (a, m, cout)),
                            S.get("wy", (m, m, cout)))

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
            # stride 1, few channels: the weights repeated along a row, so one loop covers a row
            wrow = np.ascontiguousarray(np.tile(wd, (1, 1, Wo))) if k["sw"] == 1 and cout < DW_ROW_CHANNELS else EMPTY3

            def kernel(x, out, T, r):
                PAR.depthwise_rows(chunks(T, work), x, wd, wrow, bias, out, T, *geo, r, a1, a2,
                                   S.get("acc", (Wo * cout,)))
    else:
        # Packed once per group block in the order the micro-kernels read (numba_grouped);
        # input rows are copied zero-padded, GROUPED_SLAB floats of them at a time.
        Wp = max(k["W"] + k["pl"], (Wo - 1) * k["sw"] + (k["kw"] - 1) * k["dw"] + 1)
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
            threads = numba.get_num_threads()
            few = T * Wo < GROUPED_SPLIT_PIXELS * threads and nblocks >= 2 * threads
            if threads > 1 and split and r.size == 0 and few:
                # few pixels (a small image at batch 1): each thread takes a share of the
                # output channels (and reads only their weights), not of the rows
                parts, by_blocks = min(nblocks, 2 * threads), True
            else:
                parts, by_blocks = chunks(T, work), False
            PAR.grouped_rows(parts, by_blocks, x, pk.wp, pk.bias, out, T, *geo, r, a1, a2, pk.blocks, pk.koff,
                             S.get("xpad", (slab,)), S.get("acc", (R * Wo * cout,)), mode, pk.nv, cg, k["kh"], rowlen,
                             ps, R)

    def run(ins, out, res):
        kernel(ins[0], out, out.shape[0] * k["Ho"], res if res is not None else EMPTY4)

    return run


def _winograd(m):
    return lambda step, plan, rt, k, w: _winograd_builder(step, plan, rt, k, w, m)


# The convolution algorithms of cnngraph.algorithms.ALGORITHMS this backend runs.
CONV_KERNELS = {"gemm": _gemm_builder, "im2col": _gemm_builder, "depthwise": _direct_builder,
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
    weights (C_in/G, kh·kw·C_out/G), then a gather (col2im) over output rows with the bias and
    the epilogue fused; samples in chunks so the products stay within TRANSPOSE_COLS."""
    P: Pool = rt.extra["pool"]
    k = transpose_geometry(step)
    G, cg, og = k["groups"], k["cg"], k["og"]
    wm = pack_transpose_weight(weight(plan, step, "weight"), k)
    T = wm.shape[2]
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
            cols = P.buffer(0, "transpose_cols", (G, M, T))
            xs = x[n0:n1].reshape(M, G, cg)
            rows = max(MIN_ROWS, _block(M, TILES_PER_THREAD * P.threads))
            P.run(lambda i, wk: np.matmul(xs[i * rows:(i + 1) * rows].transpose(1, 0, 2), wm,
                                          out=cols[:, i * rows:(i + 1) * rows]), -(-M // rows))
            PAR.col2im_transpose(chunks((n1 - n0) * k["Ho"], k["Wo"] * k["cout"] * k["kh"] * k["kw"]), cols, out, n0,
                                 n0 * k["Ho"], n1 * k["Ho"], *geo, bias, r, a1, a2)

    return run


def plan_batch(plan) -> int:
    return int(getattr(plan, "batch", 1))


def build_linear(step, plan, rt):
    fin, fout = int(step.in_shapes[0][0]), int(step.out_shape[0])
    k = dict(cin=fin, cout=fout, H=1, W=1, Ho=1, Wo=1, kh=1, kw=1, sh=1, sw=1, pt=0, pl=0, pb=0, pr=0, dh=1, dw=1,
             groups=1)
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

        def run(ins, out, res):
            T = out.shape[0] * Ho
            PAR.adaptive_pool(chunks(T, ins[0][0].size // Ho), ins[0], out, T, is_max)

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


BACKEND = Backend(name=NAME, xp=np, KERNELS=KERNELS, runtime=runtime, executor=Executor, threads=describe_threads)


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
    :data:`TRIM_BYTES` of them (on ResNet-50 about 35 MB less at the peak of packing); the
    plan cannot build another executor afterwards.
    """
    release_free_memory()  # what compiling the plan freed: packing reuses it
    hook = progress
    if release_weights and plan.weights is not None:
        last = {key: i for i, step in enumerate(plan.steps) for key in step.params.values()}
        released = [0]

        def hook(i, step):
            for key in step.params.values():
                if last.get(key) == i:
                    a = plan.weights.pop(key, None)
                    released[0] += getattr(a, "nbytes", 0)
            if released[0] >= TRIM_BYTES:
                release_free_memory()
                released[0] = 0
            if progress:
                progress(i, step)

    ex = Executor(plan, BACKEND, progress=hook)
    release_free_memory()
    return ex


def run(plan: Plan, *inputs):
    """Run ``plan`` once on arrays in PyTorch layout; returns the outputs (NumPy arrays)."""
    return executor(plan).run(*inputs)
