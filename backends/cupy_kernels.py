"""The CUDA kernels of the CuPy backend, each beside a NumPy emulation of the same thread program.

Each :class:`Kernel` holds what both sides share, so they cannot drift apart:

* ``params``: the C signature (``const float*``, ``float*``, ``int``, ``float``); launches
  are keyword calls checked against it on every device (names, dtypes, contiguity, 32-bit
  sizes) before anything runs;
* ``space``: the index space, one thread per point: coordinates and their extents (products
  of ``int`` parameters), outermost first. The CUDA function decomposes its grid-stride
  thread index into these coordinates with code generated from this list, and the NumPy
  emulation gets the same coordinates from the same list;
* ``body`` (CUDA statements per point) and ``emulate`` (the same statements over all points
  at once, reading and writing flat arrays through :class:`Threads`, which checks every
  index against the array's size, as a GPU would not);
* ``aliases``: which outputs may share memory with which inputs (only element for element:
  a thread reads what it then overwrites); any other overlap is refused by the emulation.

:meth:`Kernel.source` is the complete translation unit handed to ``cupy.RawKernel`` (and to
``nvcc`` in the tests); :func:`host_source` wraps the very same text for the host compiler,
with the grid as a loop, so the tests also run the CUDA text itself on the CPU.

>>> print(KERNELS["mul_bcast"].function().splitlines()[0])
extern "C" __global__ void cnn_mul_bcast(const float* x, const float* s, float* out, int N, int HW, int C) {
>>> KERNELS["im2col"].total(dict(G=2, rows=10, kh=3, kw=3, cpg=4))
720
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir import ops

# ---------------------------------------------------------------- activations (shared table)
INT32_MAX = 2**31 - 1


def _erf(v):
    from cnngraph.backends.common import _numpy_erf

    return _numpy_erf()(v).astype(np.float32)


# This backend's activation table: registry name -> CUDA expression of float v and the
# activation's parameter p (PyTorch's definitions). The NumPy emulation runs the registry's
# reference function in float32.
ACTS: dict = {
    "relu": "v < 0.f ? 0.f : v",
    "relu6": "cnn_clamp(v, 0.f, 6.f)",
    "sigmoid": "1.f / (1.f + expf(-v))",
    "tanh": "tanhf(v)",
    "silu": "v / (1.f + expf(-v))",
    "hardswish": "v * cnn_clamp(v + 3.f, 0.f, 6.f) / 6.f",
    "hardsigmoid": "cnn_clamp(v + 3.f, 0.f, 6.f) / 6.f",
    "gelu": "0.5f * v * (1.f + erff(v * 0.70710678118654752f))",
    "leaky_relu": "v >= 0.f ? v : p * v",
    "elu": "v > 0.f ? v : p * expm1f(v)",
    "mish": "v * tanhf(fmaxf(v, 0.f) + log1pf(expf(-fabsf(v))))",
    "softplus": "p * v > 20.f ? v : (fmaxf(p * v, 0.f) + log1pf(expf(-fabsf(p * v)))) / p",
    "gelu_tanh": "0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)))",
}


def act_numpy(v, code: int, p: float = 0.0):
    """Activation ``code`` (the registry's :attr:`~cnngraph.ir.ops.Activation.code`) with
    parameter ``p`` of a float32 array, as ``cnn_act`` computes it: the registry's reference
    function in float32."""
    if code == 0:
        return v
    op = ops.get(ops.ACT_CODES[code])
    a = {**op.defaults, **({op.activation.param: np.float32(p)} if op.activation.param else {})}
    with np.errstate(over="ignore"):  # exp(-v) = inf for very negative v: 1/(1+inf) = 0, as on the GPU
        return np.asarray(op.activation.ref(np, _erf, v, a), dtype=np.float32)


def _prelude() -> str:
    cases = "\n".join(f"    case {ops.act_code(a)}: return {cu};" for a, cu in ACTS.items())
    return f"""// cnngraph CuPy backend: float32, channels last (NHWC), one thread per point of a kernel's index space.
#define CNN_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float cnn_clamp(float v, float lo, float hi) {{
    return v < lo ? lo : (v > hi ? hi : v);  // NaN passes through, as in PyTorch
}}

// Activation codes of the op registry (cnngraph.ir.ops, 0: none).
__device__ __forceinline__ float cnn_act(float v, int code, float p) {{
    switch (code) {{
{cases}
    default: return v;
    }}
}}
"""


PRELUDE = _prelude()

# The host compiler's view of CUDA (tests only): the grid becomes a loop over blocks and threads.
HOST_PRELUDE = r"""#include <math.h>
#include <string.h>
#define __global__
#define __device__
#define __forceinline__ inline
struct cnn_uint3 { unsigned x, y, z; };
static cnn_uint3 threadIdx, blockIdx, blockDim, gridDim;
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, sizeof f); return f; }
"""


# ---------------------------------------------------------------- kernel records
@dataclass(frozen=True)
class Param:
    ctype: str  # "const float*", "float*", "int" or "float"
    name: str

    @functools.cached_property
    def pointer(self) -> bool:
        return self.ctype.endswith("*")

    @functools.cached_property
    def const(self) -> bool:
        return self.ctype.startswith("const")


def _params(sig: str) -> tuple:
    out = []
    for p in sig.split(","):
        p = p.strip()
        ctype, name = p.rsplit("*", 1) if "*" in p else p.rsplit(" ", 1)
        out.append(Param(ctype.strip() + ("*" if "*" in p else ""), name.strip()))
    return tuple(out)


@dataclass(frozen=True)
class Kernel:
    """A CUDA kernel and its NumPy emulation over one shared signature and index space."""

    name: str
    signature: str  # C parameter list
    space: tuple  # ((coordinate, extent), ...), outermost first; an extent is "P" or "P*Q*..."
    body: str  # CUDA statements run at each point (coordinates are ints)
    emulate: Callable  # emulate(threads, **args): the same program, all points at once
    aliases: dict = field(default_factory=dict)  # output -> inputs it may overwrite element for element
    doc: str = ""

    @functools.cached_property
    def params(self) -> tuple:
        return _params(self.signature)

    @property
    def symbol(self) -> str:
        return f"cnn_{self.name}"

    def extents(self, args: dict) -> list:
        return [math.prod(int(args[p.strip()]) for p in ext.split("*")) for _, ext in self.space]

    def total(self, args: dict) -> int:
        return math.prod(self.extents(args))

    def function(self) -> str:
        """The ``__global__`` function: a grid-stride loop over the index space."""
        sig = ", ".join(f"{p.ctype} {p.name}" for p in self.params)
        total = " * ".join(f"(long long)({e})" for _, e in self.space)
        lines = [f'extern "C" __global__ void {self.symbol}({sig}) {{',
                 f"    const long long total_ = {total};",
                 "    for (long long t_ = (long long)blockIdx.x * blockDim.x + threadIdx.x; t_ < total_;"
                 " t_ += (long long)blockDim.x * gridDim.x) {",
                 "        int rem_ = (int)t_;  // launches check that every index fits in 32 bits"]
        coords = list(self.space)
        for name, ext in reversed(coords[1:]):
            lines.append(f"        const int {name} = rem_ % ({ext}); rem_ /= ({ext});")
        lines.append(f"        const int {coords[0][0]} = rem_;")
        lines += ["        " + ln if ln.strip() else "" for ln in self.body.strip("\n").splitlines()]
        lines += ["    }", "}"]
        return "\n".join(lines) + "\n"

    def source(self) -> str:
        """The whole translation unit CuPy compiles (NVRTC) for this kernel, and nvcc checks."""
        return PRELUDE + "\n" + self.function()


def host_source(kernels) -> str:
    """One C++ file with every kernel's CUDA text and a host launcher per kernel: the grid as a loop.

    Threads of our kernels never talk to each other (no shared memory, no barriers), so
    running them one after the other is a valid schedule of the same program.
    """
    parts = [HOST_PRELUDE, PRELUDE]
    for k in kernels:
        parts.append(k.function())
        sig = ", ".join(f"{p.ctype} {p.name}" for p in k.params)
        args = ", ".join(p.name for p in k.params)
        parts.append(f"""extern "C" void launch_{k.symbol}(unsigned grid, unsigned block, {sig}) {{
    gridDim.x = grid; blockDim.x = block; gridDim.y = gridDim.z = blockDim.y = blockDim.z = 1;
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {{
            blockIdx.x = b; threadIdx.x = t;
            {k.symbol}({args});
        }}
}}
""")
    return "\n".join(parts)


# ---------------------------------------------------------------- the NumPy side of a launch
class Threads:
    """Every point of an index space at once: coordinates as int64 arrays (``t.n``, ``t.c``...).

    Loads and stores go through :meth:`ld` and :meth:`st`, which refuse indices outside the
    array (a GPU would read or corrupt other memory silently); in ``strict`` mode a store
    also refuses two threads writing one element (a race on a GPU). Index arithmetic depends
    on the integer arguments only: :meth:`memo` keeps it, with its bounds, for the next
    launch with the same arguments (layers of one shape repeat through a network).
    """

    def __init__(self, kernel: Kernel, args: dict):
        self.kernel, self.strict = kernel, False
        exts = kernel.extents(args)
        rem = np.arange(math.prod(exts), dtype=np.int64)
        coords = {}
        for (name, _), ext in reversed(list(zip(kernel.space[1:], exts[1:]))):
            coords[name] = rem % ext
            rem = rem // ext
        coords[kernel.space[0][0]] = rem
        self.__dict__.update(coords)
        self.size = int(rem.size)
        self._memo: dict = {}
        self._stable = {id(a): a for a in coords.values()}  # arrays whose bounds may be cached
        self._bounds: dict = {}
        self._safe: dict = {}

    def memo(self, key, fn):
        """``fn()`` (index arrays), computed once per set of integer arguments."""
        if key not in self._memo:
            val = fn()
            self._memo[key] = val
            for a in val if isinstance(val, tuple) else (val,):
                if isinstance(a, np.ndarray):
                    self._stable[id(a)] = a
        return self._memo[key]

    def _full(self, idx):
        idx = np.asarray(idx, np.int64)
        return idx if idx.shape[:1] == (self.size,) else np.broadcast_to(idx, (self.size,) + idx.shape[1:])

    def _check(self, a, idx, mask, what):
        key = (id(idx), id(mask))
        stable = id(idx) in self._stable and (mask is None or id(mask) in self._stable)
        if stable and key in self._bounds:
            lo, hi = self._bounds[key]
        elif idx.size == 0 or (mask is not None and not mask.any()):
            lo, hi = 0, -1
        else:
            where = True if mask is None else np.broadcast_to(mask, idx.shape)
            lo = int(idx.min(where=where, initial=np.iinfo(np.int64).max))
            hi = int(idx.max(where=where, initial=-1))
        if stable:
            self._bounds[key] = (lo, hi)
        if hi >= 0 and (lo < 0 or hi >= a.size):
            raise CnnGraphError(f"kernel {self.kernel.name}: {what} index out of range [{lo}, {hi}] "
                                f"for an array of {a.size} elements")

    def ld(self, a, idx, mask=None, other=0.0):
        """``a[idx]`` per thread (``idx`` of shape (threads,) or (threads, k)); where ``mask`` is
        false the thread does not load and gets ``other``."""
        idx = self._full(idx)
        self._check(a, idx, mask, "load")
        if mask is None:
            return a[idx]
        key = (id(idx), id(mask))
        safe = self._safe.get(key)
        if safe is None:
            safe = np.where(mask, idx, 0)
            if id(idx) in self._stable and id(mask) in self._stable:
                self._safe[key] = safe
        return np.where(mask, a[safe], np.float32(other)).astype(np.float32, copy=False)

    def st(self, a, idx, v) -> None:
        """``a[idx] = v`` per thread."""
        idx = self._full(idx)
        self._check(a, idx, None, "store")
        if self.strict and np.unique(idx).size != idx.size:
            raise CnnGraphError(f"kernel {self.kernel.name}: two threads store to the same element (a race on a GPU)")
        a[idx] = v

    def zeros(self):
        return np.zeros(self.size, np.float32)

    def full(self, value):
        return np.full(self.size, np.float32(value), np.float32)


# ---------------------------------------------------------------- the kernels
EPILOGUE = Kernel(
    "epilogue",
    "const float* src, float* dst, const float* scale, const float* bias, const float* res, int rows, int C, "
    "int opg, int has_scale, int has_bias, int has_res, int act1, int act2, float p1",
    (("r", "rows"), ("c", "C")),
    """
// src is (rows, C), or a grouped GEMM's (C/opg, rows, opg) when opg < C
const int s = (c / opg) * rows * opg + r * opg + c % opg;
float v = src[s];
if (has_scale) v *= scale[c];
if (has_bias) v += bias[c];
v = cnn_act(v, act1, p1);
const int o = r * C + c;
if (has_res) v += res[o];
dst[o] = cnn_act(v, act2, 0.f);
""",
    None,
    aliases={"dst": ("src", "res")},
    doc="dst = act2(act1(src·scale + bias) + res), per channel scale and bias (p1: act1's parameter)",
)


def _epilogue_np(t, src, dst, scale, bias, res, rows, C, opg, has_scale, has_bias, has_res, act1, act2, p1):
    s, o = t.memo("index", lambda: ((t.c // opg) * rows * opg + t.r * opg + t.c % opg, t.r * C + t.c))
    v = t.ld(src, s)
    if has_scale:
        v = v * t.ld(scale, t.c)
    if has_bias:
        v = v + t.ld(bias, t.c)
    v = act_numpy(v, act1, p1)
    if has_res:
        v = v + t.ld(res, o)
    t.st(dst, o, act_numpy(v, act2))


IM2COL = Kernel(
    "im2col",
    "const float* x, float* cols, int H, int W, int C, int Ho, int Wo, int kh, int kw, int sh, int sw, int pt, "
    "int pl, int dh, int dw, int cpg, int G, int row0, int rows",
    (("g", "G"), ("r", "rows"), ("tap", "kh*kw"), ("ci", "cpg")),
    """
// rows row0 .. row0+rows of the packed matrix of each group: row = output pixel (n, oh, ow),
// column = (tap, channel); zeros in the padding
const int m = row0 + r;
const int n = m / (Ho * Wo), p = m % (Ho * Wo);
const int oh = p / Wo, ow = p % Wo;
const int ih = oh * sh - pt + (tap / kw) * dh, iw = ow * sw - pl + (tap % kw) * dw;
float v = 0.f;
if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = x[((n * H + ih) * W + iw) * C + g * cpg + ci];
cols[((g * rows + r) * (kh * kw) + tap) * cpg + ci] = v;
""",
    None,
    doc="the im2col packing of a convolution (groups side by side)",
)


def _im2col_np(t, x, cols, H, W, C, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw, cpg, G, row0, rows):
    def index():
        m = row0 + t.r
        n, p = m // (Ho * Wo), m % (Ho * Wo)
        oh, ow = p // Wo, p % Wo
        ih, iw = oh * sh - pt + (t.tap // kw) * dh, ow * sw - pl + (t.tap % kw) * dw
        inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        return (((n * H + ih) * W + iw) * C + t.g * cpg + t.ci, inside,
                ((t.g * rows + t.r) * (kh * kw) + t.tap) * cpg + t.ci)

    src, inside, dst = t.memo("index", index)
    t.st(cols, dst, t.ld(x, src, mask=inside))


DIRECT_CONV = Kernel(
    "direct_conv",
    "const float* x, const float* w, const float* bias, const float* res, float* out, int N, int H, int W, int C, "
    "int Ho, int Wo, int Cout, int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int cpg, int opg, "
    "int has_bias, int has_res, int act1, int act2",
    (("n", "N"), ("oh", "Ho"), ("ow", "Wo"), ("co", "Cout")),
    """
// grouped and depthwise convolution, one output element per thread; w is (kh, kw, cpg, Cout)
const int c0 = (co / opg) * cpg;
float acc = 0.f;
for (int i = 0; i < kh; ++i) {
    const int ih = oh * sh - pt + i * dh;
    if (ih < 0 || ih >= H) continue;
    for (int j = 0; j < kw; ++j) {
        const int iw = ow * sw - pl + j * dw;
        if (iw < 0 || iw >= W) continue;
        const float* xp = x + ((n * H + ih) * W + iw) * C + c0;
        const float* wp = w + (i * kw + j) * cpg * Cout + co;
        for (int ci = 0; ci < cpg; ++ci) acc += xp[ci] * wp[ci * Cout];
    }
}
if (has_bias) acc += bias[co];
acc = cnn_act(acc, act1, 0.f);
const int o = ((n * Ho + oh) * Wo + ow) * Cout + co;
if (has_res) acc += res[o];
out[o] = cnn_act(acc, act2, 0.f);
""",
    None,
    aliases={"out": ("res",)},
    doc="grouped/depthwise convolution with the epilogue fused",
)


def _direct_conv_np(t, x, w, bias, res, out, N, H, W, C, Ho, Wo, Cout, kh, kw, sh, sw, pt, pl, dh, dw, cpg, opg,
                    has_bias, has_res, act1, act2):
    def tap(i, j):  # the tap's input and weight indices for every channel of the group, (threads, cpg)
        ih, iw = t.oh * sh - pt + i * dh, t.ow * sw - pl + j * dw
        ok = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        ci = np.arange(cpg)
        xb = (((t.n * H + ih) * W + iw) * C + (t.co // opg) * cpg)[:, None] + ci
        return ok, ok[:, None], xb, ((i * kw + j) * cpg * Cout + t.co)[:, None] + ci * Cout

    acc = t.zeros()
    for i in range(kh):
        for j in range(kw):
            ok, ok2, xi, wi = t.memo(("tap", i, j), lambda: tap(i, j))
            xv, wv = t.ld(x, xi, mask=ok2), t.ld(w, wi)
            for ci in range(cpg):  # the CUDA loop's order of additions
                acc = np.where(ok, acc + xv[:, ci] * wv[:, ci], acc)
    if has_bias:
        acc = acc + t.ld(bias, t.co)
    acc = act_numpy(acc, act1)
    o = t.memo("out", lambda: ((t.n * Ho + t.oh) * Wo + t.ow) * Cout + t.co)
    if has_res:
        acc = acc + t.ld(res, o)
    t.st(out, o, act_numpy(acc, act2))


MAXPOOL = Kernel(
    "maxpool",
    "const float* x, float* out, int N, int H, int W, int C, int Ho, int Wo, int kh, int kw, int sh, int sw, "
    "int pt, int pl, int dh, int dw",
    (("n", "N"), ("oh", "Ho"), ("ow", "Wo"), ("c", "C")),
    """
// the padding is -inf: only taps inside the input count (ceil-mode windows are clipped)
float m = -CNN_INF;
for (int i = 0; i < kh; ++i) {
    const int ih = oh * sh - pt + i * dh;
    if (ih < 0 || ih >= H) continue;
    for (int j = 0; j < kw; ++j) {
        const int iw = ow * sw - pl + j * dw;
        if (iw < 0 || iw >= W) continue;
        const float v = x[((n * H + ih) * W + iw) * C + c];
        if (v > m || v != v) m = v;  // NaN propagates, as in PyTorch
    }
}
out[((n * Ho + oh) * Wo + ow) * C + c] = m;
""",
    None,
    doc="max pooling (padding, dilation, ceil mode)",
)


def _pool_tap(t, H, W, C, sh, sw, pt, pl, di, dj):
    """Whether each thread's tap at offset (di, dj) lies inside the input, and its index."""
    ih, iw = t.oh * sh - pt + di, t.ow * sw - pl + dj
    return (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W), ((t.n * H + ih) * W + iw) * C + t.c


def _maxpool_np(t, x, out, N, H, W, C, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw):
    m = t.full(-np.inf)
    for i in range(kh):
        for j in range(kw):
            ok, idx = t.memo(("tap", i, j), lambda: _pool_tap(t, H, W, C, sh, sw, pt, pl, i * dh, j * dw))
            v = t.ld(x, idx, mask=ok)
            m = np.where(ok & ((v > m) | (v != v)), v, m)
    t.st(out, t.memo("out", lambda: ((t.n * Ho + t.oh) * Wo + t.ow) * C + t.c), m)


AVGPOOL = Kernel(
    "avgpool",
    "const float* x, const float* divisor, float* out, int N, int H, int W, int C, int Ho, int Wo, int kh, int kw, "
    "int sh, int sw, int pt, int pl",
    (("n", "N"), ("oh", "Ho"), ("ow", "Wo"), ("c", "C")),
    """
// the sum of the taps inside the input over PyTorch's divisor of each window (precomputed)
float s = 0.f;
for (int i = 0; i < kh; ++i) {
    const int ih = oh * sh - pt + i;
    if (ih < 0 || ih >= H) continue;
    for (int j = 0; j < kw; ++j) {
        const int iw = ow * sw - pl + j;
        if (iw < 0 || iw >= W) continue;
        s += x[((n * H + ih) * W + iw) * C + c];
    }
}
out[((n * Ho + oh) * Wo + ow) * C + c] = s / divisor[oh * Wo + ow];
""",
    None,
    doc="average pooling (padding, ceil mode, count_include_pad through the divisor)",
)


def _avgpool_np(t, x, divisor, out, N, H, W, C, Ho, Wo, kh, kw, sh, sw, pt, pl):
    s = t.zeros()
    for i in range(kh):
        for j in range(kw):
            ok, idx = t.memo(("tap", i, j), lambda: _pool_tap(t, H, W, C, sh, sw, pt, pl, i, j))
            s = np.where(ok, s + t.ld(x, idx, mask=ok), s)
    o, d = t.memo("out", lambda: (((t.n * Ho + t.oh) * Wo + t.ow) * C + t.c, t.oh * Wo + t.ow))
    t.st(out, o, s / t.ld(divisor, d))


ADAPTIVE_POOL = Kernel(
    "adaptive_pool",
    "const float* x, float* out, int N, int H, int W, int C, int Ho, int Wo, int is_max",
    (("n", "N"), ("oh", "Ho"), ("ow", "Wo"), ("c", "C")),
    """
// PyTorch's windows: [floor(i*L/O), ceil((i+1)*L/O))
const int h0 = (oh * H) / Ho, h1 = ((oh + 1) * H + Ho - 1) / Ho;
const int w0 = (ow * W) / Wo, w1 = ((ow + 1) * W + Wo - 1) / Wo;
float a = is_max ? -CNN_INF : 0.f;
for (int ih = h0; ih < h1; ++ih)
    for (int iw = w0; iw < w1; ++iw) {
        const float v = x[((n * H + ih) * W + iw) * C + c];
        if (!is_max) a += v;
        else if (v > a || v != v) a = v;
    }
out[((n * Ho + oh) * Wo + ow) * C + c] = is_max ? a : a / (float)((h1 - h0) * (w1 - w0));
""",
    None,
    doc="adaptive average or max pooling",
)


def _adaptive_pool_np(t, x, out, N, H, W, C, Ho, Wo, is_max):
    h0, h1 = (t.oh * H) // Ho, ((t.oh + 1) * H + Ho - 1) // Ho
    w0, w1 = (t.ow * W) // Wo, ((t.ow + 1) * W + Wo - 1) // Wo
    a = t.full(-np.inf if is_max else 0.0)
    # the window sizes differ per thread: loop over the largest, masking the rest
    for di in range(int((h1 - h0).max(initial=0))):
        for dj in range(int((w1 - w0).max(initial=0))):
            ih, iw = h0 + di, w0 + dj
            ok = (ih < h1) & (iw < w1)
            v = t.ld(x, ((t.n * H + ih) * W + iw) * C + t.c, mask=ok)
            a = np.where(ok & ((v > a) | (v != v)), v, a) if is_max else np.where(ok, a + v, a)
    if not is_max:
        a = a / ((h1 - h0) * (w1 - w0)).astype(np.float32)
    t.st(out, ((t.n * Ho + t.oh) * Wo + t.ow) * C + t.c, a)


MUL_BCAST = Kernel(
    "mul_bcast",
    "const float* x, const float* s, float* out, int N, int HW, int C",
    (("n", "N"), ("p", "HW"), ("c", "C")),
    """
// x (N, HW, C) times s (N, C): squeeze-and-excitation gating
const int o = (n * HW + p) * C + c;
out[o] = x[o] * s[n * C + c];
""",
    None,
    aliases={"out": ("x",)},
    doc="a feature map times a per-sample, per-channel factor",
)


def _mul_bcast_np(t, x, s, out, N, HW, C):
    o = (t.n * HW + t.p) * C + t.c
    t.st(out, o, t.ld(x, o) * t.ld(s, t.n * C + t.c))


SOFTMAX = Kernel(
    "softmax",
    "const float* x, float* out, int rows, int C",
    (("r", "rows"),),
    """
// one row per thread: max, sum of exponentials, quotients (x is read before out is written)
const float* xr = x + r * C;
float* yr = out + r * C;
float m = -CNN_INF;
for (int k = 0; k < C; ++k) m = xr[k] > m ? xr[k] : m;
float s = 0.f;
for (int k = 0; k < C; ++k) s += expf(xr[k] - m);
for (int k = 0; k < C; ++k) yr[k] = expf(xr[k] - m) / s;
""",
    None,
    aliases={"out": ("x",)},
    doc="softmax over the last axis (channels)",
)


def _softmax_np(t, x, out, rows, C):
    base = t.r * C
    m = t.full(-np.inf)
    for k in range(C):
        v = t.ld(x, base + k)
        m = np.where(v > m, v, m)
    s = t.zeros()
    for k in range(C):
        s = s + np.exp(t.ld(x, base + k) - m)
    for k in range(C):
        t.st(out, base + k, np.exp(t.ld(x, base + k) - m) / s)


LRN = Kernel(
    "lrn",
    "const float* x, float* out, int rows, int C, int size, float alpha, float beta, float kk",
    (("r", "rows"), ("c", "C")),
    """
// local response normalisation across channels (PyTorch's LocalResponseNorm)
const float* xr = x + r * C;
float s = 0.f;
for (int k = c - size / 2; k <= c + (size - 1) / 2; ++k)
    if (k >= 0 && k < C) s += xr[k] * xr[k];
out[r * C + c] = xr[c] / powf(kk + alpha / size * s, beta);
""",
    None,
    doc="local response normalisation",
)


def _lrn_np(t, x, out, rows, C, size, alpha, beta, kk):
    base = t.r * C
    s = t.zeros()
    for d in range(-(size // 2), (size - 1) // 2 + 1):
        k = t.c + d
        ok = (k >= 0) & (k < C)
        v = t.ld(x, base + k, mask=ok)
        s = np.where(ok, s + v * v, s)
    denom = np.power(np.float32(kk) + np.float32(alpha) / np.float32(size) * s, np.float32(beta))
    t.st(out, base + t.c, t.ld(x, base + t.c) / denom)


COL2IM_TRANSPOSE = Kernel(
    "col2im_transpose",
    "const float* cols, const float* bias, const float* res, float* out, int n0, int Nc, int H, int W, int Ho, "
    "int Wo, int Cout, int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int og, int has_bias, "
    "int has_res, int act1, int act2",
    (("n", "Nc"), ("oh", "Ho"), ("ow", "Wo"), ("co", "Cout")),
    """
// a transposed convolution's output, gathered from the GEMM of samples n0 .. n0+Nc: cols is
// (G, Nc·H·W, kh·kw·og), input pixel times tap (i, j); output oh takes input ih through tap i
// where oh = ih·sh − pt + i·dh (the same along W); bias and epilogue fused
const int g = co / og, o = co % og, T = kh * kw * og;
float acc = has_bias ? bias[co] : 0.f;
for (int i = 0; i < kh; ++i) {
    const int a = oh + pt - i * dh;
    if (a < 0 || a % sh != 0 || a / sh >= H) continue;
    for (int j = 0; j < kw; ++j) {
        const int b = ow + pl - j * dw;
        if (b < 0 || b % sw != 0 || b / sw >= W) continue;
        acc += cols[((long long)g * Nc * H * W + (n * H + a / sh) * W + b / sw) * T + (i * kw + j) * og + o];
    }
}
acc = cnn_act(acc, act1, 0.f);
const int q = (((n0 + n) * Ho + oh) * Wo + ow) * Cout + co;
if (has_res) acc += res[q];
out[q] = cnn_act(acc, act2, 0.f);
""",
    None,
    aliases={"out": ("res",)},
    doc="the gather (col2im) of a transposed convolution after its GEMM, epilogue fused",
)


def _col2im_transpose_np(t, cols, bias, res, out, n0, Nc, H, W, Ho, Wo, Cout, kh, kw, sh, sw, pt, pl, dh, dw, og,
                         has_bias, has_res, act1, act2):
    def tap(i, j):
        a, b = t.oh + pt - i * dh, t.ow + pl - j * dw
        ok = (a >= 0) & (a % sh == 0) & (a // sh < H) & (b >= 0) & (b % sw == 0) & (b // sw < W)
        g, o = t.co // og, t.co % og
        return ok, ((g * Nc * H * W + (t.n * H + a // sh) * W + b // sw) * (kh * kw * og) + (i * kw + j) * og + o)

    acc = t.ld(bias, t.co) if has_bias else t.zeros()
    for i in range(kh):
        for j in range(kw):
            ok, idx = t.memo(("tap", i, j), lambda: tap(i, j))
            acc = np.where(ok, acc + t.ld(cols, idx, mask=ok), acc)
    acc = act_numpy(acc, act1)
    q = t.memo("out", lambda: (((n0 + t.n) * Ho + t.oh) * Wo + t.ow) * Cout + t.co)
    if has_res:
        acc = acc + t.ld(res, q)
    t.st(out, q, act_numpy(acc, act2))


PRELU = Kernel(
    "prelu",
    "const float* x, const float* slope, float* out, int rows, int C, int per_channel",
    (("r", "rows"), ("c", "C")),
    """
// x, or a learnt slope times x below 0: one slope, or one per channel
const int o = r * C + c;
const float v = x[o];
out[o] = v >= 0.f ? v : slope[per_channel ? c : 0] * v;
""",
    None,
    aliases={"out": ("x",)},
    doc="PReLU with one slope or one per channel",
)


def _prelu_np(t, x, slope, out, rows, C, per_channel):
    o = t.memo("index", lambda: t.r * C + t.c)
    v = t.ld(x, o)
    s = t.ld(slope, t.c if per_channel else t.c * 0)
    t.st(out, o, np.where(v >= 0, v, s * v))


LAYERNORM_ROWS = Kernel(
    "layernorm_rows",
    "const float* x, const float* gamma, const float* beta, float* out, int rows, int C, float eps, int affine",
    (("r", "rows"),),
    """
// layer norm over the C channels of one pixel per thread (ConvNeXt's LayerNorm2d); x is read
// before out is written
const float* xr = x + (long long)r * C;
float* yr = out + (long long)r * C;
float s = 0.f;
for (int k = 0; k < C; ++k) s += xr[k];
const float mean = s / C;
float v = 0.f;
for (int k = 0; k < C; ++k) { const float d = xr[k] - mean; v += d * d; }
const float inv = 1.f / sqrtf(v / C + eps);
for (int k = 0; k < C; ++k) {
    const float y = (xr[k] - mean) * inv;
    yr[k] = affine ? y * gamma[k] + beta[k] : y;
}
""",
    None,
    aliases={"out": ("x",)},
    doc="layer norm over the channels of each pixel, γ and β per channel",
)


def _layernorm_rows_np(t, x, gamma, beta, out, rows, C, eps, affine):
    base = t.r * C
    s = t.zeros()
    for k in range(C):
        s = s + t.ld(x, base + k)
    mean = s / np.float32(C)
    v = t.zeros()
    for k in range(C):
        d = t.ld(x, base + k) - mean
        v = v + d * d
    inv = np.float32(1) / np.sqrt(v / np.float32(C) + np.float32(eps))
    ys = []
    for k in range(C):
        y = (t.ld(x, base + k) - mean) * inv
        ys.append(y * t.ld(gamma, t.r * 0 + k) + t.ld(beta, t.r * 0 + k) if affine else y)
    for k in range(C):  # every load before the first store (out may be x)
        t.st(out, base + k, ys[k])


RESIZE = Kernel(
    "resize",
    "const float* x, const float* taps_h, const float* taps_w, float* out, int N, int H, int W, int C, int Ho, "
    "int Wo, int nearest",
    (("n", "N"), ("oh", "Ho"), ("ow", "Wo"), ("c", "C")),
    """
// nearest or bilinear: taps are rows (i0, i1, w0, w1) per output row and column (indices held
// exactly as floats); PyTorch's order: w0h·(w0w·x00 + w1w·x01) + w1h·(w0w·x10 + w1w·x11)
const float* th = taps_h + oh * 4;
const float* tw = taps_w + ow * 4;
const int h0 = (int)th[0], h1 = (int)th[1], w0 = (int)tw[0], w1 = (int)tw[1];
const float* xn = x + (long long)n * H * W * C + c;
const float x00 = xn[(h0 * W + w0) * C];
float v = x00;
if (!nearest) {
    const float x01 = xn[(h0 * W + w1) * C], x10 = xn[(h1 * W + w0) * C], x11 = xn[(h1 * W + w1) * C];
    v = th[2] * (tw[2] * x00 + tw[3] * x01) + th[3] * (tw[2] * x10 + tw[3] * x11);
}
out[((n * Ho + oh) * Wo + ow) * C + c] = v;
""",
    None,
    doc="nearest or bilinear resizing (PyTorch's interpolate)",
)


def _resize_np(t, x, taps_h, taps_w, out, N, H, W, C, Ho, Wo, nearest):
    def index():
        th = (t.oh * 4)[:, None] + np.arange(4)
        tw = (t.ow * 4)[:, None] + np.arange(4)
        return th, tw

    th, tw = t.memo("taps", index)
    ph, pw = t.ld(taps_h, th), t.ld(taps_w, tw)
    h0, h1, w0, w1 = (a.astype(np.int64) for a in (ph[:, 0], ph[:, 1], pw[:, 0], pw[:, 1]))
    base = t.n * H * W * C + t.c
    x00 = t.ld(x, base + (h0 * W + w0) * C)
    if nearest:
        v = x00
    else:
        x01, x10, x11 = (t.ld(x, base + (a * W + b) * C) for a, b in ((h0, w1), (h1, w0), (h1, w1)))
        v = ph[:, 2] * (pw[:, 2] * x00 + pw[:, 3] * x01) + ph[:, 3] * (pw[:, 2] * x10 + pw[:, 3] * x11)
    t.st(out, t.memo("out", lambda: ((t.n * Ho + t.oh) * Wo + t.ow) * C + t.c), v)


def _with(k: Kernel, fn) -> Kernel:
    return Kernel(k.name, k.signature, k.space, k.body, fn, k.aliases, k.doc)


KERNELS: dict = {k.name: k for k in (
    _with(EPILOGUE, _epilogue_np), _with(IM2COL, _im2col_np), _with(DIRECT_CONV, _direct_conv_np),
    _with(MAXPOOL, _maxpool_np), _with(AVGPOOL, _avgpool_np), _with(ADAPTIVE_POOL, _adaptive_pool_np),
    _with(MUL_BCAST, _mul_bcast_np), _with(SOFTMAX, _softmax_np), _with(LRN, _lrn_np),
    _with(COL2IM_TRANSPOSE, _col2im_transpose_np), _with(PRELU, _prelu_np),
    _with(LAYERNORM_ROWS, _layernorm_rows_np), _with(RESIZE, _resize_np))}


# ---------------------------------------------------------------- launches (shared by every device)
BLOCK = 256


def launch_config(total: int, max_blocks: int) -> tuple:
    """(blocks, threads per block) of a grid-stride launch over ``total`` points."""
    return max(1, min(-(-total // BLOCK), max_blocks)), BLOCK


def marshal(kernel: Kernel, args: dict, is_array: Callable) -> list:
    """The arguments of a launch in parameter order, checked against the signature.

    Pointers must be C-contiguous float32 device arrays with fewer than 2**31 elements (the
    kernels index in 32 bits); ints are converted to ``np.int32`` (range checked), floats to
    ``np.float32``; the index space must fit in 32 bits too.
    """
    names = [p.name for p in kernel.params]
    if set(args) != set(names):
        missing, extra = sorted(set(names) - set(args)), sorted(set(args) - set(names))
        raise CnnGraphError(f"kernel {kernel.name}: missing arguments {missing}, unexpected {extra}")
    out = []
    for p in kernel.params:
        v = args[p.name]
        if p.pointer:
            if not is_array(v):
                raise CnnGraphError(f"kernel {kernel.name}: {p.name} must be a device array, got {type(v).__name__}")
            if v.dtype != np.float32 or not v.flags.c_contiguous:
                raise CnnGraphError(f"kernel {kernel.name}: {p.name} must be C-contiguous float32, got "
                                    f"{v.dtype} {'contiguous' if v.flags.c_contiguous else 'strided'}")
            if v.size > INT32_MAX:
                raise CnnGraphError(f"kernel {kernel.name}: {p.name} has {v.size} elements, more than 32-bit "
                                    "indexing allows; use a smaller batch")
            out.append(v)
        elif p.ctype == "int":
            iv = int(v)
            if not -2**31 <= iv <= INT32_MAX:
                raise CnnGraphError(f"kernel {kernel.name}: {p.name}={iv} does not fit in an int")
            out.append(np.int32(iv))
        elif p.ctype == "float":
            out.append(np.float32(v))
        else:  # pragma: no cover - the signatures above use these types only
            raise AssertionError(p.ctype)
    total = kernel.total(dict(zip(names, out)))
    if total > INT32_MAX - (1 << 26):  # t_ + grid stride stays far from the 32-bit limit
        raise CnnGraphError(f"kernel {kernel.name}: {total} threads, more than 32-bit indexing allows; "
                            "use a smaller batch")
    return out


def emulate(kernel: Kernel, args: list, strict: bool = False) -> None:
    """Run ``kernel`` with NumPy: every thread at once, through :class:`Threads`.

    Pointer arguments become flat views (the raw pointers of the CUDA side); ``const`` ones
    are read-only, so an emulation that writes an input fails; an output may overlap an
    input only where ``kernel.aliases`` allows it, and then exactly (element for element).
    """
    named = {}
    for p, v in zip(kernel.params, args):
        if p.pointer:
            flat = v.reshape(-1)
            if p.const:
                flat = flat.view()
                flat.flags.writeable = False
            named[p.name] = flat
        else:
            named[p.name] = v.item()
    outs = [p for p in kernel.params if p.pointer and not p.const]
    ins = [p for p in kernel.params if p.pointer and p.const]
    for o in outs:
        for i in ins:
            a, b = named[o.name], named[i.name]
            if a.size and b.size and np.may_share_memory(a, b):
                same = (a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.size == b.size)
                if not (same and i.name in kernel.aliases.get(o.name, ())):
                    raise CnnGraphError(f"kernel {kernel.name}: output {o.name} overlaps input {i.name}, "
                                        "which the kernel does not allow (a race on a GPU)")
    t = _threads(kernel, {p.name: named[p.name] for p in kernel.params if not p.pointer})
    t.strict = strict
    with np.errstate(over="ignore", invalid="ignore"):
        kernel.emulate(t, **named)


_THREADS: dict = {}  # (kernel, integer arguments) -> Threads, least recently used first
_THREADS_POINTS = 1 << 23  # points kept in all (each with its coordinates and index arrays)


def _threads(kernel: Kernel, scalars: dict) -> Threads:
    key = (kernel.name, kernel.signature, kernel.body, kernel.emulate, tuple(scalars.items()))
    t = _THREADS.pop(key, None) or Threads(kernel, scalars)
    _THREADS[key] = t
    while sum(v.size for v in _THREADS.values()) > _THREADS_POINTS and len(_THREADS) > 1:
        del _THREADS[next(iter(_THREADS))]
    return t
