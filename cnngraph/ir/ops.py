"""The op registry: one entry per op, holding its shape rule and every cost it has.

Each :class:`Op` keeps together what the rest of cnngraph needs to know about a layer:
how its output shape follows from its inputs, how many parameters (and buffers) it owns,
how many multiply-accumulates and other operations it performs, how much output memory it
writes and how a diagram labels it. Adding an op is one :func:`register` call.

Shapes are per sample, without the batch dimension: ``(C, H, W)`` for feature maps and
``(F,)`` for vectors. Sizes are Python ints or sympy expressions; rules keep plain ints on
the numeric path (fast) and fall back to sympy only when a size is symbolic.

>>> op = REGISTRY["conv2d"]
>>> a = dict(out_channels=64, kernel=(11, 11), stride=(4, 4), padding=(2, 2, 2, 2),
...          dilation=(1, 1), groups=1, bias=True)
>>> out = op.shape(a, [(3, 227, 227)], Ctx("conv1"))
>>> out, op.params(a, [(3, 227, 227)], out), op.macs(a, [(3, 227, 227)], out)
((64, 56, 56), 23296, 72855552)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy

from cnngraph.ir.errors import ShapeError

Shape = tuple
Size = "int | sympy.Expr"


# ---------------------------------------------------------------- arithmetic helpers
def is_int(x) -> bool:
    return isinstance(x, int) or isinstance(x, sympy.Integer)


def tidy(x):
    """Plain int for numeric sympy values, so the numeric path stays in Python ints."""
    if isinstance(x, sympy.Integer):
        return int(x)
    if isinstance(x, sympy.Rational) and x.q == 1:
        return int(x.p)
    return x


def prod(xs) -> Size:
    r = 1
    for x in xs:
        r = r * x
    return tidy(r)


def numel(shape: Shape) -> Size:
    return prod(shape)


def floordiv(a, b):
    if is_int(a) and is_int(b):
        return int(a) // int(b)
    return tidy(sympy.floor(sympy.sympify(a) / b))


def div(a, b):
    """Exact division: an int when both are ints that divide, else a sympy expression."""
    if is_int(a) and is_int(b) and int(a) % int(b) == 0:
        return int(a) // int(b)
    return tidy(sympy.sympify(a) / b)


def ceildiv(a, b):
    if is_int(a) and is_int(b):
        return -(-int(a) // int(b))
    return tidy(sympy.ceiling(sympy.sympify(a) / b))


def divides(d, n) -> bool | None:
    """True/False when decidable, None when symbolic and undecided."""
    if is_int(d) and is_int(n):
        return int(n) % int(d) == 0
    q = sympy.sympify(n) / d
    if q.is_integer:
        return True
    if q.is_integer is False:
        return False
    return None


def negative(x) -> bool:
    """Provably negative (numerically, or for every value of the symbols)."""
    if is_int(x):
        return int(x) < 0
    return bool(sympy.sympify(x).is_negative)


def nonpositive(x) -> bool:
    if is_int(x):
        return int(x) <= 0
    return bool(sympy.sympify(x).is_nonpositive)


def same(a, b) -> bool | None:
    """Equality of two sizes: True/False when decidable, None when undecided."""
    if is_int(a) and is_int(b):
        return int(a) == int(b)
    d = sympy.expand(sympy.sympify(a) - b)
    if d == 0:
        return True
    if d.is_zero is False:
        return False
    return None


def fmt_shape(shape: Shape) -> str:
    return "×".join(str(s) for s in shape)


# ---------------------------------------------------------------- rule context
@dataclass
class Ctx:
    """Where a rule is applied: the layer's name, strict mode, and warnings it raised."""

    name: str
    strict: bool = False
    notes: list = field(default_factory=list)

    def fail(self, rule: str, numbers: str = ""):
        raise ShapeError(self.name, rule, numbers)

    def unfit(self, rule: str, numbers: str):
        """A stride that does not fit exactly: an error when strict, else a warning."""
        if self.strict:
            self.fail(rule, numbers)
        self.notes.append(f"{rule} ({numbers}); output size floored")


# ---------------------------------------------------------------- the Op record
def _zero(a, ins, out):
    return 0


def _out_numel(a, ins, out):
    return numel(out)


def _inplace_numel(a, ins, out):
    return 0 if a.get("inplace") else numel(out)


@dataclass(frozen=True)
class Op:
    """One op of the registry.

    ``shape(attrs, in_shapes, ctx) -> out_shape`` raises :class:`ShapeError` on bad input;
    the cost functions take ``(attrs, in_shapes, out_shape)`` and return a size.
    ``kind`` groups ops for colours and counting conventions: input, conv, pool, norm,
    act, linear, merge, reshape, dropout.
    """

    name: str
    kind: str
    arity: tuple  # (min, max) number of inputs; max None = any
    shape: Callable
    params: Callable = _zero
    buffers: Callable = _zero
    macs: Callable = _zero
    ops: Callable = _zero  # other operations: comparisons, activations, adds, normalization
    memory: Callable = _out_numel  # output elements written (0 for in-place and views)
    label: Callable = None
    doc: str = ""
    # (attrs, in_shapes) -> {field: (shape, role)}: the layer's weight tensors as a state_dict
    # holds them (``{node}.{field}``), role "param" or "buffer"; sizes may be symbolic
    tensors: Callable = lambda a, ins: {}


REGISTRY: dict[str, Op] = {}


def register(op: Op) -> Op:
    REGISTRY[op.name] = op
    return op


def get(name: str) -> Op:
    try:
        return REGISTRY[name]
    except KeyError:
        from cnngraph.ir.errors import GraphError

        raise GraphError(f"unknown op {name!r}; known ops: {', '.join(sorted(REGISTRY))}") from None


# ---------------------------------------------------------------- shared shape rules
def _need_chw(ctx: Ctx, shape: Shape, what: str):
    if len(shape) != 3:
        ctx.fail(f"{what} needs a C×H×W feature map", f"got shape {fmt_shape(shape)}")


def window_out(ctx, L, k, s, p0, p1, d, ceil_mode, axis: str):
    """floor((L + p0 + p1 − d·(k−1) − 1)/s) + 1 (ceiling with ceil_mode), with checks."""
    span = d * (k - 1) + 1
    room = L + p0 + p1 - span
    if negative(room):
        ctx.fail(
            f"kernel larger than padded input along {axis}",
            f"input {L} + padding {p0}+{p1} = {tidy(sympy.sympify(L + p0 + p1))} < effective kernel {span}",
        )
    if is_int(room) and is_int(s) and room % s:
        if not ceil_mode:
            ctx.unfit(
                f"stride does not fit the padded input along {axis}",
                f"({L} + {p0 + p1} − {span}) / {s} = {room}/{s} is not an integer",
            )
    if ceil_mode:
        out = ceildiv(room, s) + 1
        # PyTorch/ONNX rule: the last window must start inside the input or left padding.
        if is_int(out) and is_int(L) and (out - 1) * s >= L + p0:
            out -= 1
    else:
        out = floordiv(room, s) + 1
    out = tidy(out)
    if nonpositive(out):
        ctx.fail(f"output size along {axis} is not positive", f"{out}")
    return out


def _conv_shape(a, ins, ctx):
    (x,) = ins
    _need_chw(ctx, x, "conv2d")
    cin, H, W = x
    cout, g = a["out_channels"], a["groups"]
    for name, v in (("out_channels", cout), ("groups", g)):
        if nonpositive(v):
            ctx.fail(f"{name} must be positive", f"{name}={v}")
    if divides(g, cin) is False:
        ctx.fail("groups must divide in_channels", f"groups={g}, in_channels={cin}")
    if divides(g, cout) is False:
        ctx.fail("groups must divide out_channels", f"groups={g}, out_channels={cout}")
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = a["kernel"], a["stride"], a["padding"], a["dilation"]
    Ho = window_out(ctx, H, kh, sh, pt, pb, dh, False, "H")
    Wo = window_out(ctx, W, kw, sw, pl, pr, dw, False, "W")
    return (cout, Ho, Wo)


def _conv_params(a, ins, out):
    kh, kw = a["kernel"]
    weights = a["out_channels"] * div(ins[0][0], a["groups"]) * kh * kw
    return tidy(weights + (a["out_channels"] if a["bias"] else 0))


def _conv_macs(a, ins, out):
    kh, kw = a["kernel"]
    return tidy(numel(out) * div(ins[0][0], a["groups"]) * kh * kw)


def _conv_label(a, ins, out):
    kh, kw = a["kernel"]
    s = f"{kh}x{kw} conv, {a['out_channels']}"
    if a["stride"][0] != 1:
        s += f", /{a['stride'][0]}"
    g = a["groups"]
    if g != 1:
        s += ", dw" if ins and same(g, ins[0][0]) else f", g={g}"
    if tuple(a["dilation"]) != (1, 1):
        s += f", d={a['dilation'][0]}"
    return s


def _conv_tensors(a, ins):
    cout = a["out_channels"]
    out = {"weight": ((cout, tidy(div(ins[0][0], a["groups"])), *a["kernel"]), "param")}
    if a["bias"]:
        out["bias"] = ((cout,), "param")
    return out


def _linear_tensors(role):
    def tensors(a, ins):
        out = {"weight": ((a["out_features"], ins[0][0]), role)}
        if a.get("bias") and role == "param":
            out["bias"] = ((a["out_features"],), "param")
        return out

    return tensors


def _norm_tensors(affine_default, stats=False, whole=False):
    """γ and β per channel (per element for a layer norm), running statistics for batch norm."""

    def tensors(a, ins):
        shape = tuple(ins[0]) if whole else (ins[0][0],)
        out = {}
        if a.get("affine", affine_default):
            out = {"weight": (shape, "param"), "bias": (shape, "param")}
        if stats:
            out.update(running_mean=(shape, "buffer"), running_var=(shape, "buffer"))
        return out

    return tensors


register(Op("conv2d", "conv", (1, 1), _conv_shape, params=_conv_params, macs=_conv_macs, tensors=_conv_tensors,
            label=_conv_label, doc="2-D convolution (cross-correlation), grouped when groups > 1"))


def _pool_shape(a, ins, ctx):
    (x,) = ins
    _need_chw(ctx, x, "pooling")
    C, H, W = x
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = a["kernel"], a["stride"], a["padding"]
    dh, dw = a.get("dilation", (1, 1))
    if is_int(kh) and (2 * max(pt, pb) > kh or 2 * max(pl, pr) > kw):
        ctx.fail("pooling padding must be at most half the kernel", f"kernel {kh}x{kw}, padding {a['padding']}")
    ceil = a.get("ceil_mode", False)
    return (C, window_out(ctx, H, kh, sh, pt, pb, dh, ceil, "H"), window_out(ctx, W, kw, sw, pl, pr, dw, ceil, "W"))


def _pool_ops(a, ins, out):
    kh, kw = a["kernel"]
    return tidy(numel(out) * kh * kw)


def _pool_label(kind):
    def label(a, ins, out):
        kh, kw = a["kernel"]
        s = f"{kh}x{kw} {kind} pool"
        if a["stride"][0] != 1:
            s += f", /{a['stride'][0]}"
        return s

    return label


register(Op("maxpool2d", "pool", (1, 1), _pool_shape, ops=_pool_ops, label=_pool_label("max"),
            doc="max pooling; operations = C·H'·W'·K² comparisons, as the slides count"))
register(Op("avgpool2d", "pool", (1, 1), _pool_shape, ops=_pool_ops, label=_pool_label("avg"),
            doc="average pooling; operations = C·H'·W'·K²"))


def _adaptive_shape(a, ins, ctx):
    (x,) = ins
    _need_chw(ctx, x, "adaptive pooling")
    oh, ow = a["output_size"]
    return (x[0], oh, ow)


def _adaptive_ops(a, ins, out):
    # Each output averages a window of about H/oh × W/ow inputs: every input is read once
    # when the windows tile the input, which is the case for global pooling.
    C, H, W = ins[0]
    oh, ow = out[1], out[2]
    if is_int(H) and is_int(oh):
        kh = max(((i + 1) * H + oh - 1) // oh - (i * H) // oh for i in range(oh))
        kw = max(((j + 1) * W + ow - 1) // ow - (j * W) // ow for j in range(ow))
        return tidy(C * oh * ow * kh * kw)
    return tidy(C * H * W)


register(Op("adaptive_avgpool2d", "pool", (1, 1), _adaptive_shape, ops=_adaptive_ops,
            label=lambda a, ins, out: "global avg pool" if tuple(a["output_size"]) == (1, 1) else f"adaptive avg pool {a['output_size'][0]}x{a['output_size'][1]}",
            doc="adaptive average pooling to a fixed output size; (1, 1) is global average pooling"))
register(Op("adaptive_maxpool2d", "pool", (1, 1), _adaptive_shape, ops=_adaptive_ops,
            label=lambda a, ins, out: f"adaptive max pool {a['output_size'][0]}x{a['output_size'][1]}",
            doc="adaptive max pooling to a fixed output size"))


def _flatten_shape(a, ins, ctx):
    (x,) = ins
    return (numel(x),)


register(Op("flatten", "reshape", (1, 1), _flatten_shape, label=lambda a, ins, out: "flatten",
            doc="flatten C×H×W to a vector (the slides count its output memory)"))


def _linear_shape(a, ins, ctx):
    (x,) = ins
    if len(x) != 1:
        ctx.fail("linear layer needs a flattened vector input; add flatten() first",
                 f"got shape {fmt_shape(x)}")
    if nonpositive(a["out_features"]):
        ctx.fail("out_features must be positive", f"out_features={a['out_features']}")
    return (a["out_features"],)


register(Op("linear", "linear", (1, 1), _linear_shape,
            params=lambda a, ins, out: tidy(ins[0][0] * a["out_features"] + (a["out_features"] if a["bias"] else 0)),
            macs=lambda a, ins, out: tidy(ins[0][0] * a["out_features"]),
            label=lambda a, ins, out: f"FC {a['out_features']}", tensors=_linear_tensors("param"),
            doc="fully connected layer; MACs = C_in·C_out"))

# LeNet-5's output layer (LeCun et al. 1998): y_i = Σ_j (x_j − w_ij)². Its prototypes w were
# chosen by hand and kept fixed, so they are buffers, not trained parameters: that is what
# makes the paper's "60,000 trainable parameters" exact.
register(Op("rbf", "linear", (1, 1), _linear_shape,
            buffers=lambda a, ins, out: tidy(ins[0][0] * a["out_features"]),
            macs=lambda a, ins, out: tidy(ins[0][0] * a["out_features"]),
            ops=lambda a, ins, out: tidy(ins[0][0] * a["out_features"]),  # the subtractions
            label=lambda a, ins, out: f"RBF {a['out_features']}", tensors=_linear_tensors("buffer"),
            doc="Euclidean radial basis units with fixed prototypes (LeNet-5 output): MACs = in·out, prototypes are buffers"))


def _same_shape(a, ins, ctx):
    return tuple(ins[0])


def _elementwise(name, label, doc):
    register(Op(name, "act", (1, 1), _same_shape, ops=lambda a, ins, out: numel(out), memory=_inplace_numel,
                label=lambda a, ins, out: label, doc=doc))


for _n, _l in (("relu", "relu"), ("relu6", "relu6"), ("tanh", "tanh"), ("sigmoid", "sigmoid"),
               ("silu", "swish"), ("hardswish", "hswish"), ("hardsigmoid", "hsigmoid"), ("gelu", "gelu")):
    _elementwise(_n, _l, f"{_l} activation (one operation per element)")


def _softmax_shape(a, ins, ctx):
    return tuple(ins[0])


register(Op("softmax", "act", (1, 1), _softmax_shape, ops=lambda a, ins, out: tidy(3 * numel(out)),
            label=lambda a, ins, out: "softmax", doc="softmax over the channel/feature axis (exp, sum, divide)"))


def _channels(x):
    return x[0]


def _bn_shape(a, ins, ctx):
    (x,) = ins
    if a.get("num_features") is not None and same(a["num_features"], x[0]) is False:
        ctx.fail("batch norm features must equal the input channels", f"num_features={a['num_features']}, channels={x[0]}")
    return tuple(x)


register(Op("batchnorm", "norm", (1, 1), _bn_shape,
            params=lambda a, ins, out: tidy(2 * ins[0][0]) if a.get("affine", True) else 0,
            buffers=lambda a, ins, out: tidy(2 * ins[0][0]),
            ops=lambda a, ins, out: numel(out),
            label=lambda a, ins, out: "BN", tensors=_norm_tensors(True, stats=True),
            doc="batch norm: γ, β are parameters; running mean and variance are buffers"))


def _gn_shape(a, ins, ctx):
    (x,) = ins
    if divides(a["num_groups"], x[0]) is False:
        ctx.fail("num_groups must divide the channels", f"num_groups={a['num_groups']}, channels={x[0]}")
    return tuple(x)


register(Op("groupnorm", "norm", (1, 1), _gn_shape,
            params=lambda a, ins, out: tidy(2 * ins[0][0]) if a.get("affine", True) else 0,
            ops=lambda a, ins, out: tidy(2 * numel(out)), label=lambda a, ins, out: f"GN {a['num_groups']}",
            tensors=_norm_tensors(True),
            doc="group norm over groups of channels; γ, β per channel"))
register(Op("instancenorm", "norm", (1, 1), _same_shape,
            params=lambda a, ins, out: tidy(2 * ins[0][0]) if a.get("affine", False) else 0,
            ops=lambda a, ins, out: tidy(2 * numel(out)), label=lambda a, ins, out: "IN", tensors=_norm_tensors(False),
            doc="instance norm (per sample, per channel); affine off by default as in PyTorch"))
register(Op("layernorm", "norm", (1, 1), _same_shape,
            params=lambda a, ins, out: tidy(2 * numel(out)) if a.get("affine", True) else 0,
            ops=lambda a, ins, out: tidy(2 * numel(out)), label=lambda a, ins, out: "LN",
            tensors=_norm_tensors(True, whole=True),
            doc="layer norm over the whole per-sample tensor, element-wise affine as nn.LayerNorm"))
register(Op("lrn", "norm", (1, 1), _same_shape,
            ops=lambda a, ins, out: tidy(numel(out) * a["size"]), label=lambda a, ins, out: f"LRN {a['size']}",
            doc="local response normalization across `size` neighbouring channels (AlexNet)"))

register(Op("dropout", "dropout", (1, 1), _same_shape, memory=_zero,
            label=lambda a, ins, out: f"dropout {a.get('p', 0.5)}", doc="dropout: the identity at inference"))
register(Op("identity", "dropout", (1, 1), _same_shape, memory=_zero,
            label=lambda a, ins, out: "identity", doc="identity"))


def _add_shape(a, ins, ctx):
    first = ins[0]
    for other in ins[1:]:
        if len(other) != len(first):
            ctx.fail("add needs inputs of the same rank", f"{fmt_shape(first)} + {fmt_shape(other)}")
        for axis, (p, q) in enumerate(zip(first, other)):
            if same(p, q) is False:
                what = "channels" if axis == 0 else f"sizes along {'CHW'[axis] if len(first) == 3 else axis}"
                ctx.fail(f"add of tensors with different {what}", f"{p} and {q}: {fmt_shape(first)} + {fmt_shape(other)}")
    return tuple(first)


register(Op("add", "merge", (2, None), _add_shape, ops=lambda a, ins, out: tidy(numel(out) * (len(ins) - 1)),
            label=lambda a, ins, out: "+", doc="element-wise sum (residual shortcut, ResNeXt pathways)"))


def _mul_shape(a, ins, ctx):
    x, s = ins
    if len(s) == 1:
        s = (s[0],) + (1,) * (len(x) - 1)
    if len(s) != len(x):
        ctx.fail("mul needs a scale broadcastable to the input", f"{fmt_shape(x)} * {fmt_shape(s)}")
    for p, q in zip(x, s):
        if not (q == 1 or same(p, q) is not False):
            ctx.fail("mul needs a scale broadcastable to the input", f"{fmt_shape(x)} * {fmt_shape(s)}")
    return tuple(x)


register(Op("mul", "merge", (2, 2), _mul_shape, ops=lambda a, ins, out: numel(out),
            label=lambda a, ins, out: "×", doc="element-wise product, broadcasting a C×1×1 or C scale (squeeze-and-excitation)"))
register(Op("scale", "act", (1, 1), _same_shape, ops=lambda a, ins, out: numel(out),
            label=lambda a, ins, out: f"×{a['factor']}",
            doc="multiply by a constant factor, no parameters (Inception-ResNet's residual scaling)"))


def _concat_shape(a, ins, ctx):
    first = ins[0]
    for other in ins[1:]:
        if len(other) != len(first):
            ctx.fail("concat needs inputs of the same rank", f"{fmt_shape(first)} and {fmt_shape(other)}")
        for axis in range(1, len(first)):
            if same(first[axis], other[axis]) is False:
                ctx.fail("concat needs equal spatial sizes", f"{fmt_shape(first)} and {fmt_shape(other)}")
    return (tidy(sum((sympy.sympify(s[0]) for s in ins), sympy.Integer(0))),) + tuple(first[1:])


register(Op("concat", "merge", (1, None), _concat_shape, label=lambda a, ins, out: "concat",
            doc="concatenation along channels (Inception, DenseNet)"))


def _shuffle_shape(a, ins, ctx):
    (x,) = ins
    if divides(a["groups"], x[0]) is False:
        ctx.fail("channel shuffle groups must divide the channels", f"groups={a['groups']}, channels={x[0]}")
    return tuple(x)


register(Op("channel_shuffle", "reshape", (1, 1), _shuffle_shape, label=lambda a, ins, out: f"shuffle g={a['groups']}",
            doc="channel shuffle (ShuffleNet): reshape to (g, C/g), transpose, flatten"))


def _slice_shape(a, ins, ctx):
    (x,) = ins
    start, stop = a["start"], a["stop"]
    if negative(start) or (is_int(stop) and is_int(x[0]) and stop > x[0]) or nonpositive(tidy(stop - start)):
        ctx.fail("channel slice out of range", f"[{start}:{stop}] of {x[0]} channels")
    return (tidy(stop - start),) + tuple(x[1:])


register(Op("slice", "reshape", (1, 1), _slice_shape, memory=_zero,
            label=lambda a, ins, out: f"channels {a['start']}:{a['stop']}",
            doc="a contiguous range of channels (a view): ShuffleNet's channel split, grouped-conv pathways"))


def _pad2d_shape(a, ins, ctx):
    (x,) = ins
    _need_chw(ctx, x, "pad2d")
    C, H, W = x
    pt, pl, pb, pr = a["padding"]
    Ho, Wo = tidy(H + pt + pb), tidy(W + pl + pr)
    if nonpositive(Ho) or nonpositive(Wo):
        ctx.fail("pad2d crops the feature map away", f"{H}×{W} padded by {a['padding']} gives {Ho}×{Wo}")
    return (C, Ho, Wo)


register(Op("pad2d", "reshape", (1, 1), _pad2d_shape,
            label=lambda a, ins, out: f"pad {tuple(a['padding'])}",
            doc="zero padding (top, left, bottom, right); negative values crop, as torch.nn.functional.pad "
                "(NASNet's one-pixel shift in its factorized reduction)"))


def _pad_channels_shape(a, ins, ctx):
    (x,) = ins
    _need_chw(ctx, x, "pad_channels")
    C, H, W = x
    before, after = a["before"], a["after"]
    sh, sw = a["stride"]
    if negative(before) or negative(after) or nonpositive(sh) or nonpositive(sw):
        ctx.fail("pad_channels needs non-negative padding and a positive stride",
                 f"before={before}, after={after}, stride={sh}x{sw}")
    # x[:, :, ::s, ::s] keeps ceil(H/s) rows: the size a 3×3 stride-s conv with padding 1 gives.
    return (tidy(C + before + after), ceildiv(H, sh), ceildiv(W, sw))


register(Op("pad_channels", "reshape", (1, 1), _pad_channels_shape,
            label=lambda a, ins, out: f"pad C +{a['before'] + a['after']}" + (f", /{a['stride'][0]}" if a["stride"][0] != 1 else ""),
            doc="zero channels added before/after x[:, :, ::s, ::s] (CIFAR ResNets' parameter-free option-A shortcut)"))


def _input_shape(a, ins, ctx):
    shape = tuple(tidy(sympy.sympify(s)) if not isinstance(s, int) else s for s in a["shape"])
    for s in shape:
        if nonpositive(s):
            ctx.fail("input sizes must be positive", f"shape {fmt_shape(shape)}")
    return shape


register(Op("input", "input", (0, 0), _input_shape, memory=_zero,
            label=lambda a, ins, out: f"Input {fmt_shape(out)}", doc="graph input (per sample, no batch)"))


def describe() -> list[tuple[str, str, str]]:
    """(name, kind, doc) of every registered op, for ``cnngraph ops``."""
    return [(o.name, o.kind, o.doc) for o in sorted(REGISTRY.values(), key=lambda o: (o.kind, o.name))]
