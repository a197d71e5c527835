"""What every backend shares: the executor and array-module-generic kernels.

The executor runs a :class:`cnngraph.compiler.plan.Plan` with any NumPy-like array module ``xp``
(NumPy, CuPy). Values live in a per-batch-size arena of slots (the memory plan), laid out
channels last: ``(N, H, W, C)``, vectors ``(N, 1, 1, F)``.

A backend is a :class:`cnngraph.backends.Backend` with:

* ``xp``: its array module;
* ``KERNELS``: ``{op: builder}``; ``builder(step, plan, rt) -> fn(ins, out, res)``, where
  ``ins`` are the step's input arrays, ``out`` its output array (which may share memory
  with an input listed in the registry's ``inplace_ports`` or with ``res``) and ``res`` the
  residual of the epilogue (or None). Builders pack weights once; ``fn`` runs per batch.
* ``runtime()``: a :class:`Runtime` (array module, ``erf``, host-to-device copy...).

Ops a backend leaves out fall back to :data:`GENERIC`, written with ``xp`` alone, so a
new backend runs every model from its first line of code and overrides the hot ops.

>>> import numpy as np
>>> from cnngraph import zoo
>>> from cnngraph.compiler import compile
>>> from cnngraph.compiler.weights import init
>>> g = zoo.build("lenet5")
>>> ex = Executor(compile(g, init(g, seed=0)), numpy_backend())
>>> ex.run(np.zeros((2, 1, 28, 28), np.float32))[0].shape
(2, 10)
"""
from __future__ import annotations

import contextlib
import math
import types
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cnngraph.backends import Backend
from cnngraph.compiler.algorithms import conv_geometry  # noqa: F401  (backends import it from here)
from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.ops import bn_scale_shift
from cnngraph.compiler.plan import Plan, check_numeric


def nhwc(shape) -> tuple:
    """Per-sample channels-last shape of a canonical one: (C, H, W) -> (H, W, C); (F,) -> (1, 1, F)."""
    if len(shape) == 3:
        return (int(shape[1]), int(shape[2]), int(shape[0]))
    if len(shape) == 1:
        return (1, 1, int(shape[0]))
    raise CnnGraphError(f"cannot lay out a value of rank {len(shape)}: shape {shape}")


def to_nhwc(x, xp=np):
    """A batch in PyTorch layout (N, C, H, W) or (N, F) as channels last (a view)."""
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x.reshape(x.shape[0], 1, 1, x.shape[1])


def from_nhwc(v, shape):
    """Back to PyTorch layout (a view): (N, H, W, C) -> (N, C, H, W); (N, 1, 1, F) -> (N, F)."""
    return v.transpose(0, 3, 1, 2) if len(shape) == 3 else v.reshape(v.shape[0], v.shape[3])


@dataclass
class Runtime:
    """Per-executor state a kernel builder may use."""

    xp: types.ModuleType
    erf: Callable
    asarray: Callable  # host NumPy array -> device array
    extra: dict = field(default_factory=dict)
    session: Callable = contextlib.nullcontext  # context held while a plan runs
    # (view, x): a host batch ``x`` in PyTorch layout into its channels-last arena ``view``
    load: Callable | None = None
    empty: Callable | None = None  # n -> float32 buffer of n elements for the arena (None: xp.empty)


def _numpy_erf():
    try:
        from scipy.special import erf

        return erf
    except ImportError:  # slow but exact
        return np.vectorize(math.erf, otypes=[np.float32])


def numpy_backend() -> Backend:
    """The generic kernels on NumPy: the reference every backend is checked against."""
    return Backend(name="numpy", xp=np, KERNELS={}, runtime=lambda: Runtime(np, _numpy_erf(), np.asarray),
                   executor=Executor)


# ---------------------------------------------------------------- activations and epilogue
def activate(rt: Runtime, y, name, attrs=None) -> None:
    """Apply activation ``name`` to ``y`` in place: the registry's reference function
    (PyTorch's definition) on the runtime's array module."""
    if name is not None:
        y[...] = ops.get(name).activation.ref(rt.xp, rt.erf, y, attrs or ops.get(name).defaults)


def epilogue(rt: Runtime, step, y, res) -> None:
    """``y = act2(act1(y) + res)`` in place."""
    activate(rt, y, step.act1)
    if res is not None:
        y += res
    activate(rt, y, step.act2)


def weight(plan: Plan, step, role: str) -> np.ndarray:
    try:
        return np.asarray(plan.weights[step.params[role]], np.float32)
    except (TypeError, KeyError):
        raise CnnGraphError(f"{step.node}: no weights for {role!r}; load weights or initialise them "
                            f"(cnngraph.compiler.weights.init)") from None


# ---------------------------------------------------------------- generic kernels
def _window(xpad, i, j, k):
    """The strided input window of kernel tap (i, j): shape (N, Ho, Wo, C)."""
    return xpad[:, i * k["dh"]: i * k["dh"] + k["sh"] * (k["Ho"] - 1) + 1: k["sh"],
                j * k["dw"]: j * k["dw"] + k["sw"] * (k["Wo"] - 1) + 1: k["sw"], :]


def _pad(xp, x, k, value=0.0, extra_h=0, extra_w=0):
    if not (k["pt"] or k["pb"] or k["pl"] or k["pr"] or extra_h or extra_w):
        return x
    return xp.pad(x, ((0, 0), (k["pt"], k["pb"] + extra_h), (k["pl"], k["pr"] + extra_w), (0, 0)),
                  constant_values=value)


def build_conv2d(step, plan, rt):
    xp, k = rt.xp, conv_geometry(step)
    G = k["groups"]
    w = weight(plan, step, "weight")  # (Cout, Cin/G, kh, kw)
    cg, og = k["cin"] // G, k["cout"] // G
    wk = rt.asarray(np.ascontiguousarray(w.reshape(G, og, cg, k["kh"], k["kw"]).transpose(3, 4, 0, 2, 1)))
    b = rt.asarray(weight(plan, step, "bias")) if "bias" in step.params else None

    def run(ins, out, res):
        x = _pad(xp, ins[0], k)
        N = x.shape[0]
        acc = xp.zeros((N, k["Ho"], k["Wo"], G, og), np.float32)
        for i in range(k["kh"]):
            for j in range(k["kw"]):
                win = _window(x, i, j, k)
                if G == 1:
                    acc += (win.reshape(-1, cg) @ wk[i, j, 0]).reshape(acc.shape)
                elif cg == 1 and og == 1:  # depthwise
                    acc += (win * wk[i, j, :, 0, 0]).reshape(acc.shape)
                else:
                    acc += xp.einsum("nhwgc,gco->nhwgo", win.reshape(N, k["Ho"], k["Wo"], G, cg), wk[i, j])
        y = acc.reshape(out.shape)
        if b is not None:
            y += b
        epilogue(rt, step, y, res)
        out[...] = y

    return run


def transpose_geometry(step) -> dict:
    """A conv_transpose2d step's sizes as ints (:func:`conv_geometry`'s keys), ``oph``/``opw`` its
    output padding, ``cg``/``og`` the input and output channels per group."""
    k = conv_geometry(step)
    k["oph"], k["opw"] = (int(v) for v in step.attrs["output_padding"])
    k["cg"], k["og"] = k["cin"] // k["groups"], k["cout"] // k["groups"]
    return k


def pack_transpose_weight(w: np.ndarray, k: dict) -> np.ndarray:
    """(C_in, C_out/G, kh, kw) → (G, C_in/G, kh·kw·C_out/G): one GEMM per group gives every
    tap's contribution of each input pixel (columns: tap, then output channel)."""
    G, cg, og = k["groups"], k["cg"], k["og"]
    return np.ascontiguousarray(w.reshape(G, cg, og, k["kh"], k["kw"]).transpose(0, 1, 3, 4, 2)
                                .reshape(G, cg, k["kh"] * k["kw"] * og))


def build_conv_transpose2d(step, plan, rt):
    """Every tap's product of the input (a GEMM per group) added into a strided window of the
    uncropped output (scatter), then cropped by the padding."""
    xp, k = rt.xp, transpose_geometry(step)
    G, cg, og, kh, kw = k["groups"], k["cg"], k["og"], k["kh"], k["kw"]
    wk = rt.asarray(pack_transpose_weight(weight(plan, step, "weight"), k).reshape(G, cg, kh, kw, og))
    b = rt.asarray(weight(plan, step, "bias")) if "bias" in step.params else None
    H, W = k["H"], k["W"]
    full_h = (H - 1) * k["sh"] + k["dh"] * (kh - 1) + 1 + max(0, k["oph"] - k["pb"])
    full_w = (W - 1) * k["sw"] + k["dw"] * (kw - 1) + 1 + max(0, k["opw"] - k["pr"])

    def run(ins, out, res):
        x = ins[0]
        N = x.shape[0]
        xg = x.reshape(N, H, W, G, cg)
        y = xp.zeros((N, full_h, full_w, G, og), np.float32)
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * k["dh"], j * k["dw"]
                y[:, r0:r0 + k["sh"] * (H - 1) + 1:k["sh"], c0:c0 + k["sw"] * (W - 1) + 1:k["sw"]] += \
                    xp.einsum("nhwgc,gco->nhwgo", xg, wk[:, :, i, j])
        y = y.reshape(N, full_h, full_w, k["cout"])[:, k["pt"]:k["pt"] + k["Ho"], k["pl"]:k["pl"] + k["Wo"]]
        y = xp.ascontiguousarray(y)
        if b is not None:
            y += b
        epilogue(rt, step, y, res)
        out[...] = y

    return run


def build_linear(step, plan, rt):
    xp = rt.xp
    wt = rt.asarray(np.ascontiguousarray(weight(plan, step, "weight").T))
    b = rt.asarray(weight(plan, step, "bias")) if "bias" in step.params else None

    def run(ins, out, res):
        N = out.shape[0]
        y = ins[0].reshape(N, -1) @ wt
        if b is not None:
            y += b
        y = y.reshape(out.shape)
        epilogue(rt, step, y, res)
        out[...] = y

    return run


def pool_geometry(step):
    """Sizes and the registry's window of a pooling step, as ints (``count_include_pad``:
    average pooling's attribute, False for max pooling, which has none)."""
    w = ops.get(step.op).window(step.attrs)
    C, H, W = map(int, step.in_shapes[0])
    _, Ho, Wo = map(int, step.out_shape)
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = w.kernel, w.stride, w.padding, w.dilation
    return dict(C=C, H=H, W=W, Ho=Ho, Wo=Wo, kh=int(kh), kw=int(kw), sh=int(sh), sw=int(sw), pt=int(pt), pl=int(pl),
                pb=int(pb), pr=int(pr), dh=int(dh), dw=int(dw),
                count_include_pad=bool(step.attrs.get("count_include_pad")))


def avgpool_divisor(k) -> np.ndarray:
    """(Ho, Wo) divisors of average pooling, PyTorch's rule: with count_include_pad the
    window clipped to the padded input, else the number of real input elements."""
    def axis(L, O, kk, s, p0, p1):
        start = np.arange(O) * s - p0
        end = np.minimum(start + kk, L + p1)
        size = end - start
        valid = np.minimum(end, L) - np.maximum(start, 0)
        return size, valid

    sh_, vh = axis(k["H"], k["Ho"], k["kh"], k["sh"], k["pt"], k["pb"])
    sw_, vw = axis(k["W"], k["Wo"], k["kw"], k["sw"], k["pl"], k["pr"])
    d = np.outer(sh_, sw_) if k["count_include_pad"] else np.outer(vh, vw)
    return d.astype(np.float32)


def _ceil_extra(k):
    """Extra bottom/right padding so ceil_mode windows stay inside the array."""
    need_h = (k["Ho"] - 1) * k["sh"] + (k["kh"] - 1) * k["dh"] + 1
    need_w = (k["Wo"] - 1) * k["sw"] + (k["kw"] - 1) * k["dw"] + 1
    return max(0, need_h - (k["H"] + k["pt"] + k["pb"])), max(0, need_w - (k["W"] + k["pl"] + k["pr"]))


def build_maxpool2d(step, plan, rt):
    xp, k = rt.xp, pool_geometry(step)
    eh, ew = _ceil_extra(k)

    def run(ins, out, res):
        x = _pad(xp, ins[0], k, -np.inf, eh, ew)
        y = None
        for i in range(k["kh"]):
            for j in range(k["kw"]):
                w = _window(x, i, j, k)
                y = w.copy() if y is None else xp.maximum(y, w, out=y)
        out[...] = y

    return run


def build_avgpool2d(step, plan, rt):
    xp, k = rt.xp, pool_geometry(step)
    k["dh"] = k["dw"] = 1
    eh, ew = _ceil_extra(k)
    div = rt.asarray(avgpool_divisor(k)[None, :, :, None])

    def run(ins, out, res):
        x = _pad(xp, ins[0], k, 0.0, eh, ew)
        y = xp.zeros(out.shape, np.float32)
        for i in range(k["kh"]):
            for j in range(k["kw"]):
                y += _window(x, i, j, k)
        out[...] = y / div

    return run


def adaptive_bounds(L, O):
    """PyTorch's adaptive windows: [floor(i·L/O), ceil((i+1)·L/O))."""
    return [((i * L) // O, -(-((i + 1) * L) // O)) for i in range(O)]


def _build_adaptive(reduce):
    def build(step, plan, rt):
        xp = rt.xp
        _, H, W = map(int, step.in_shapes[0])
        _, Ho, Wo = map(int, step.out_shape)
        bh, bw = adaptive_bounds(H, Ho), adaptive_bounds(W, Wo)

        def run(ins, out, res):
            x = ins[0]
            for i, (h0, h1) in enumerate(bh):
                for j, (w0, w1) in enumerate(bw):
                    out[:, i, j, :] = getattr(xp, reduce)(x[:, h0:h1, w0:w1, :], axis=(1, 2))

        return run

    return build


def build_flatten(step, plan, rt):
    def run(ins, out, res):
        x = ins[0]
        out.reshape(out.shape[0], -1)[...] = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)

    return run


def build_act(step, plan, rt):
    a = dict(step.attrs)
    if "weight" in step.params:  # PReLU's slopes: one per channel, the last axis of NHWC
        a["weight"] = rt.asarray(weight(plan, step, "weight"))

    def run(ins, out, res):
        y = ins[0].copy()  # out may share memory with the input
        activate(rt, y, step.op, a)
        out[...] = y

    return run


def build_batchnorm(step, plan, rt):
    c = int(step.in_shapes[0][0])
    ws = {k: plan.weights[v] for k, v in step.params.items()} if plan.weights else None
    if ws is None:
        weight(plan, step, "running_mean")
    name = step.node
    scale, shift = bn_scale_shift({f"{name}.{k}": v for k, v in ws.items()}, name, step.attrs, c)
    scale, shift = rt.asarray(scale.astype(np.float32)), rt.asarray(shift.astype(np.float32))

    def run(ins, out, res):
        y = ins[0] * scale + shift  # out may share memory with the input or the residual
        epilogue(rt, step, y, res)
        out[...] = y

    return run


def build_add(step, plan, rt):
    def run(ins, out, res):
        y = ins[0] + ins[1] if len(ins) > 1 else ins[0].copy()
        for x in ins[2:]:
            y += x
        if res is not None:
            y += res
        activate(rt, y, step.act2)
        out[...] = y

    return run


def build_mul(step, plan, rt):
    def run(ins, out, res):
        rt.xp.multiply(ins[0], ins[1], out=out)

    return run


def build_softmax(step, plan, rt):
    xp = rt.xp

    def run(ins, out, res):
        x = ins[0]
        e = xp.exp(x - x.max(axis=-1, keepdims=True))
        out[...] = e / e.sum(axis=-1, keepdims=True)

    return run


def build_log_softmax(step, plan, rt):
    xp = rt.xp

    def run(ins, out, res):
        t = ins[0] - ins[0].max(axis=-1, keepdims=True)
        out[...] = t - xp.log(xp.exp(t).sum(axis=-1, keepdims=True))

    return run


def build_radix_softmax(step, plan, rt):
    """Channels (groups, radix, k) -> softmax over radix -> channels (radix, groups, k)."""
    xp = rt.xp
    r, g = int(step.attrs["radix"]), int(step.attrs["groups"])

    def run(ins, out, res):
        x = ins[0]
        lead, C = x.shape[:-1], x.shape[-1]
        t = x.reshape(lead + (g, r, C // (g * r)))
        e = xp.exp(t - t.max(axis=-2, keepdims=True))
        e = e / e.sum(axis=-2, keepdims=True)
        out[...] = xp.swapaxes(e, -3, -2).reshape(out.shape)

    return run


def _affine_params(step, plan, rt, shape_fn):
    if "weight" not in step.params:
        return None, None
    return rt.asarray(shape_fn(weight(plan, step, "weight"))), rt.asarray(shape_fn(weight(plan, step, "bias")))


def _build_norm(axes_fn, shape_fn):
    def build(step, plan, rt):
        xp = rt.xp
        eps = float(step.attrs["eps"])
        g, b = _affine_params(step, plan, rt, shape_fn(step))

        def run(ins, out, res):
            x = ins[0].astype(np.float64)
            xs, axes = axes_fn(step, x)
            mean = xs.mean(axis=axes, keepdims=True)
            var = ((xs - mean) ** 2).mean(axis=axes, keepdims=True)
            y = ((xs - mean) / xp.sqrt(var + eps)).reshape(x.shape).astype(np.float32)
            if g is not None:
                y = y * g + b
            out[...] = y

        return run

    return build


def _ln_axes(step, x):
    return x, (1, 2, 3)


def _ln_shape(step):
    return lambda w: np.ascontiguousarray(w.transpose(1, 2, 0) if w.ndim == 3 else w.reshape(1, 1, -1))


def _gn_axes(step, x):
    G = int(step.attrs["num_groups"]) if step.op == "groupnorm" else x.shape[3]
    N, H, W, C = x.shape
    return x.reshape(N, H, W, G, C // G), (1, 2, 4)


def _channel_shape(step):
    return lambda w: w


def build_lrn(step, plan, rt):
    xp = rt.xp
    a = step.attrs
    size, alpha, beta, kk = int(a["size"]), float(a["alpha"]), float(a["beta"]), float(a["k"])

    def run(ins, out, res):
        x = ins[0]
        sq = xp.pad(x * x, ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2)))
        C = x.shape[3]
        s = xp.zeros(x.shape, np.float32)
        for i in range(size):
            s += sq[..., i:i + C]
        out[...] = x / (kk + (alpha / size) * s) ** beta

    return run


def build_concat(step, plan, rt):
    def run(ins, out, res):
        c = 0
        for x in ins:
            out[..., c:c + x.shape[3]] = x
            c += x.shape[3]

    return run


def build_slice(step, plan, rt):
    s, e = int(step.attrs["start"]), int(step.attrs["stop"])

    def run(ins, out, res):
        out[...] = ins[0][..., s:e]

    return run


def build_channel_shuffle(step, plan, rt):
    g = int(step.attrs["groups"])

    def run(ins, out, res):
        x = ins[0]
        N, H, W, C = x.shape
        out[...] = x.reshape(N, H, W, g, C // g).transpose(0, 1, 2, 4, 3).reshape(N, H, W, C)

    return run


def build_scale(step, plan, rt):
    f, b = np.float32(step.attrs["factor"]), np.float32(step.attrs.get("shift", 0.0))

    def run(ins, out, res):
        y = ins[0] * f
        if b:
            y += b
        epilogue(rt, step, y, res)
        out[...] = y

    return run


def build_clip(step, plan, rt):
    lo, hi = step.attrs["low"], step.attrs["high"]
    lo, hi = (None if lo is None else np.float32(lo)), (None if hi is None else np.float32(hi))

    def run(ins, out, res):
        out[...] = rt.xp.clip(ins[0], lo, hi)

    return run


def build_pad2d(step, plan, rt):
    """Zero padding; negative amounts crop (torch.nn.functional.pad)."""
    t, l, b, r = (int(v) for v in step.attrs["padding"])
    _, H, W = map(int, step.in_shapes[0])
    src = (slice(max(0, -t), H - max(0, -b)), slice(max(0, -l), W - max(0, -r)))
    _, Ho, Wo = map(int, step.out_shape)
    dst = (slice(max(0, t), Ho - max(0, b)), slice(max(0, l), Wo - max(0, r)))

    if step.attrs.get("mode", "constant") == "reflect":
        xp = rt.xp

        def reflect(ins, out, res):
            out[...] = xp.pad(ins[0], ((0, 0), (t, b), (l, r), (0, 0)), mode="reflect")

        return reflect

    def run(ins, out, res):
        out[...] = 0
        out[:, dst[0], dst[1], :] = ins[0][:, src[0], src[1], :]

    return run


def build_blurpool2d(step, plan, rt):
    """Σ over the k×k taps of the binomial filter times the strided input (N, H, W, C)."""
    (kh, kw), (sh, sw) = (tuple(int(v) for v in step.attrs[k]) for k in ("kernel", "stride"))
    f = ops.blur_filter(kh, kw).astype(np.float32)
    _, Ho, Wo = map(int, step.out_shape)

    def run(ins, out, res):
        x = ins[0]
        out[...] = 0
        for i in range(kh):
            for j in range(kw):
                out += np.float32(f[i, j]) * x[:, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw, :]

    return run


def build_channel_conv(step, plan, rt):
    """y[:, c] = Σ_t w[t]·x[:, c + t − pad] over a zero-padded vector of channels."""
    xp = rt.xp
    w = weight(plan, step, "weight").reshape(-1)
    k, p = int(step.attrs["size"]), int(step.attrs["pad"])

    def run(ins, out, res):
        x = ins[0].reshape(ins[0].shape[0], -1)
        xpad = xp.pad(x, ((0, 0), (p, p)))
        y = out.reshape(out.shape[0], -1)
        n = y.shape[1]
        y[...] = 0
        for t in range(k):
            y += np.float32(w[t]) * xpad[:, t:t + n]

    return run


def build_pad_channels(step, plan, rt):
    """x[:, :, ::s, ::s] with zero channels before and after (option-A shortcut)."""
    a = step.attrs
    before, sh, sw = int(a["before"]), int(a["stride"][0]), int(a["stride"][1])
    C = int(step.in_shapes[0][0])

    def run(ins, out, res):
        out[...] = 0
        out[..., before:before + C] = ins[0][:, ::sh, ::sw, :]

    return run


def build_rbf(step, plan, rt):
    """LeNet-5's output units: y_i = Σ_j (x_j − w_ij)²."""
    xp = rt.xp
    w = rt.asarray(weight(plan, step, "weight"))

    def run(ins, out, res):
        x = ins[0].reshape(ins[0].shape[0], 1, -1)
        out.reshape(out.shape[0], -1)[...] = ((x - w[None]) ** 2).sum(axis=-1)

    return run


def resize_taps(L: int, O: int, mode: str, align_corners: bool, scale=None):
    """Source rows of each output row and their weights, as PyTorch's interpolate: two
    arrays ``(O, 2)`` (index, weight; nearest uses one tap of weight 1).

    ``scale`` is the user's scale factor when one was given (PyTorch maps coordinates with
    1/scale then, not with L/O).

    >>> resize_taps(2, 4, "bilinear", False)[1][:, 0].tolist()
    [1.0, 0.75, 0.25, 0.75]
    """
    o = np.arange(O, dtype=np.float64)
    ratio = 1.0 / float(scale) if scale else L / O
    if mode == "nearest":
        i0 = np.minimum(np.floor(o * np.float32(ratio)).astype(np.int64), L - 1)
        return np.stack([i0, i0], 1), np.stack([np.ones(O), np.zeros(O)], 1).astype(np.float32)
    if align_corners:
        src = o * ((L - 1) / (O - 1)) if O > 1 else np.zeros(O)
    else:
        src = np.maximum((o + 0.5) * ratio - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), L - 1)
    i1 = np.minimum(i0 + 1, L - 1)
    w1 = (src - i0).astype(np.float32)
    return np.stack([i0, i1], 1), np.stack([1 - w1, w1], 1).astype(np.float32)


def resize_geometry(step):
    """The row and column taps of a resize step."""
    a = step.attrs
    _, H, W = map(int, step.in_shapes[0])
    _, Ho, Wo = map(int, step.out_shape)
    scale = a.get("scale") if len(step.in_shapes) == 1 and a.get("output_size") is None else None
    sh, sw = (scale or (None, None))
    mode, corners = a["mode"], bool(a.get("align_corners", False))
    return resize_taps(H, Ho, mode, corners, sh), resize_taps(W, Wo, mode, corners, sw)


def build_resize(step, plan, rt):
    xp = rt.xp
    (ih, wh), (iw, ww) = resize_geometry(step)
    # taps stay integer (rt.asarray makes float32 weights); weights go through the runtime as any weight
    ih, iw = xp.asarray(ih), xp.asarray(iw)
    wh, ww = rt.asarray(wh), rt.asarray(ww)

    def run(ins, out, res):
        x = ins[0]  # (N, H, W, C): rows, then columns, each a two-tap weighted sum
        rows = x[:, ih[:, 0]] * wh[None, :, 0, None, None] + x[:, ih[:, 1]] * wh[None, :, 1, None, None]
        out[...] = rows[:, :, iw[:, 0]] * ww[None, None, :, 0, None] + rows[:, :, iw[:, 1]] * ww[None, None, :, 1, None]

    return run


def build_layer_scale(step, plan, rt):
    g = rt.asarray(weight(plan, step, step.attrs.get("field", "weight")))

    def run(ins, out, res):
        y = ins[0] * g  # channels last: γ broadcasts over the last axis
        epilogue(rt, step, y, res)
        out[...] = y

    return run


# The NHWC axes order of each block rearrangement: depth_to_space reshapes (N, H, W, C) to
# (N, H, W, c, r, r) for CRD / (N, H, W, r, r, c) for DCR, space_to_depth reshapes
# (N, H, W, C) to (N, H/r, r, W/r, r, C); then one transpose and a reshape to the output.
_BLOCK_AXES = {("depth_to_space", "CRD"): (0, 1, 4, 2, 5, 3), ("depth_to_space", "DCR"): (0, 1, 3, 2, 4, 5),
               ("space_to_depth", "CRD"): (0, 1, 3, 5, 2, 4), ("space_to_depth", "DCR"): (0, 1, 3, 2, 4, 5)}


def build_blocks(step, plan, rt):
    """depth_to_space / space_to_depth (PixelShuffle, PixelUnshuffle) on channels-last arrays."""
    r, mode = int(step.attrs["block"]), step.attrs["mode"]
    axes = _BLOCK_AXES[step.op, mode]

    def run(ins, out, res):
        x = ins[0]
        N, Hh, Ww, C = x.shape
        if step.op == "depth_to_space":
            c = C // (r * r)
            v = x.reshape((N, Hh, Ww, c, r, r) if mode == "CRD" else (N, Hh, Ww, r, r, c))
        else:
            v = x.reshape(N, Hh // r, r, Ww // r, r, C)
        out[...] = v.transpose(axes).reshape(out.shape)

    return run


def build_copy(step, plan, rt):
    def run(ins, out, res):
        out[...] = ins[0]

    return run


def build_nested(step, plan, rt, table):
    """A step with nested steps (its gate, :attr:`cnngraph.compiler.plan.Step.gate`, or its
    expansion, :attr:`~cnngraph.compiler.plan.Step.pre`): each part's kernel from ``table``
    in turn, each reading and writing its own values. The call's ``ins`` are the step's
    :attr:`~cnngraph.compiler.plan.Step.operands`."""
    fns = [table[p.op](p, plan, rt) for p in step.parts]
    where = {v: i for i, v in enumerate(step.operands)}
    io = [([where[v] for v in p.inputs], where.get(p.output)) for p in step.parts]

    def run(ins, out, res):
        for fn, (src, dst) in zip(fns[:-1], io[:-1]):
            fn([ins[i] for i in src], ins[dst], None)
        fns[-1]([ins[i] for i in io[-1][0]], out, res)

    return run


GENERIC: dict = {
    "conv2d": build_conv2d, "conv_transpose2d": build_conv_transpose2d, "linear": build_linear, "maxpool2d": build_maxpool2d, "avgpool2d": build_avgpool2d,
    "adaptive_avgpool2d": _build_adaptive("mean"), "adaptive_maxpool2d": _build_adaptive("max"),
    "flatten": build_flatten, "batchnorm": build_batchnorm, "add": build_add, "mul": build_mul,
    "softmax": build_softmax, "log_softmax": build_log_softmax, "layernorm": _build_norm(_ln_axes, _ln_shape),
    "layernorm2d": _build_norm(lambda step, x: (x, (3,)), _channel_shape), "layer_scale": build_layer_scale,
    "groupnorm": _build_norm(_gn_axes, _channel_shape), "instancenorm": _build_norm(_gn_axes, _channel_shape),
    "lrn": build_lrn, "concat": build_concat, "slice": build_slice, "channel_shuffle": build_channel_shuffle,
    "dropout": build_copy, "identity": build_copy, "scale": build_scale, "clip": build_clip,
    "depth_to_space": build_blocks, "space_to_depth": build_blocks, "pad2d": build_pad2d,
    "pad_channels": build_pad_channels, "rbf": build_rbf, "resize": build_resize,
    "radix_softmax": build_radix_softmax,
    "blurpool2d": build_blurpool2d, "channel_conv": build_channel_conv,
    **{a: build_act for a in ops.ACTIVATIONS},  # every activation of the registry
}


# ---------------------------------------------------------------- the executor
class Executor:
    """Runs a plan on a backend; ``run(x)`` takes and returns arrays in PyTorch layout.

    Kernels are built (weights packed) once; arenas are allocated once per batch size.
    """

    def __init__(self, plan: Plan, backend, progress: Callable | None = None):
        check_numeric(plan)
        if plan.weights is None:
            raise CnnGraphError(f"{plan.name}: the plan has no weights; compile it with weights "
                                "(cnngraph.compiler.weights.init or cnngraph.compiler.weights.load)")
        self.plan, self.backend = plan, backend
        self.rt = backend.runtime()
        self.xp = self.rt.xp
        table = {**GENERIC, **backend.KERNELS}
        self.fns = []
        for i, step in enumerate(plan.steps):
            for part in step.parts:
                if part.op not in table:
                    raise CnnGraphError(f"{part.node}: op {part.op!r} has no kernel on the {backend.name} backend")
            if step.gate or step.pre:
                build = (backend.gates if step.gate else backend.expansions).get(step.op, build_nested)
                self.fns.append(build(step, plan, self.rt, table))
            else:
                self.fns.append(table[step.op](step, plan, self.rt))
            if progress:
                progress(i, step)
        self._arenas: dict = {}

    def arena(self, n: int) -> dict:
        """Views of every value for batch size ``n`` (slots allocated on first use)."""
        if n not in self._arenas:
            xp, mem = self.xp, self.plan.memory
            empty = self.rt.empty or (lambda k: xp.empty(k, np.float32))
            bufs = [empty(n * int(s)) for s in mem.slots]
            views = {}
            for name, v in self.plan.values.items():
                views[name] = bufs[v.slot][: n * int(v.size)].reshape((n,) + nhwc(v.shape))
            self._arenas = {n: views}  # keep one batch size: arenas are large
        return self._arenas[n]

    def _check_input(self, name, x):
        want = tuple(int(s) for s in self.plan.values[name].shape)
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
            raise CnnGraphError(f"{name}: input of shape {tuple(x.shape)} does not fit the model's "
                                f"N×{'×'.join(map(str, want))}")

    def run(self, *inputs, progress: Callable | None = None) -> list:
        """Outputs (host NumPy arrays, PyTorch layout) for inputs given as arrays (N, C, H, W).

        On a backend that runs batches in chunks (``Backend.chunked``), a batch larger than
        the plan's ``chunk`` runs in passes of that many images through one arena of that
        size (the results are the same: every step treats images apart)."""
        if len(inputs) != len(self.plan.inputs):
            raise CnnGraphError(f"{self.plan.name} takes {len(self.plan.inputs)} input(s), got {len(inputs)}")
        n = int(inputs[0].shape[0])
        for name, x in zip(self.plan.inputs, inputs):
            self._check_input(name, x)
        chunk = int(getattr(self.plan, "chunk", 0) or 0) if getattr(self.backend, "chunked", False) else 0
        if not chunk or n <= chunk:
            return self._run(self.arena(n), inputs, progress)
        views = self.arena(chunk)
        outs = None
        for i0 in range(0, n, chunk):
            i1 = min(n, i0 + chunk)
            part = views if i1 - i0 == chunk else {k: v[:i1 - i0] for k, v in views.items()}
            ys = self._run(part, [x[i0:i1] for x in inputs], progress)
            if outs is None:
                outs = [np.empty((n,) + y.shape[1:], y.dtype) for y in ys]
            for o, y in zip(outs, ys):
                o[i0:i1] = y
        return outs

    def _run(self, views, inputs, progress) -> list:
        """One pass: the inputs into ``views`` (an arena's), every step, the outputs out."""
        with self.rt.session():
            for name, x in zip(self.plan.inputs, inputs):
                if self.rt.load is not None:
                    self.rt.load(views[name], np.asarray(x, np.float32))
                else:
                    views[name][...] = to_nhwc(self.rt.asarray(np.asarray(x, np.float32)))
            for i, (step, fn) in enumerate(zip(self.plan.steps, self.fns)):
                fn([views[v] for v in step.operands], views[step.output], views[step.residual] if step.residual else None)
                if progress:
                    progress(i, step)
        outs = []
        for o in self.plan.outputs:
            y = from_nhwc(views[o], self.plan.values[o].shape)
            outs.append(np.ascontiguousarray(self.to_host(y)))
        return outs

    def to_host(self, y):
        return y.get() if hasattr(y, "get") else np.asarray(y)


BACKEND = numpy_backend()
