"""What each ONNX op type becomes in the graph: one handler per op type, used by
:mod:`cnngraph.onnx.importer`.

A handler takes the importer, the ONNX node, its attributes and a name for messages, and
returns the value(s) of the node's outputs: a :class:`Const` (folded), an :class:`Act` (a
layer it added), a :class:`Pointwise` (an element-wise chain, recognised when used) or a
:class:`Pending` (part of a multi-node pattern such as group norm or a channel shuffle).
Supporting a new op type is one more ``@handler("OpType")`` function.

>>> HANDLERS["Conv"].__name__, "Relu" in HANDLERS
('_conv', True)
"""
from __future__ import annotations

import math

import numpy as np
import sympy

from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError, ShapeError
from cnngraph.onnx.common import (ACTIVATIONS, DTYPES, FLOAT_TYPES, MAX_DIM, MAX_FOLD, PENDING_TEXT, Act, Const, Pending,
                                  Pointwise, as_ints, as_num, same_size, scalar_of, short_float, sigmoid64,
                                  strip_weight_suffix, verf)

# ONNX element-wise ops as functions of their attributes returning float64 functions.
UNARY = {
    "Relu": lambda a: lambda v: np.maximum(v, 0.0),
    "Sigmoid": lambda a: sigmoid64,
    "Tanh": lambda a: np.tanh,
    "Erf": lambda a: verf,
    "Exp": lambda a: np.exp,
    "Neg": lambda a: np.negative,
    "Abs": lambda a: np.abs,
    "Sqrt": lambda a: lambda v: np.sqrt(np.abs(v)) * np.sign(v),
    "Reciprocal": lambda a: lambda v: 1.0 / v,
    "Softplus": lambda a: lambda v: np.logaddexp(0.0, v),
    "Softsign": lambda a: lambda v: v / (1.0 + np.abs(v)),
    "Ceil": lambda a: np.ceil,  # shape arithmetic ("same" padding computed in the graph)
    "Floor": lambda a: np.floor,
    "LeakyRelu": lambda a: lambda v: np.where(v >= 0, v, a.get("alpha", 0.01) * v),
    "Elu": lambda a: lambda v: np.where(v >= 0, v, a.get("alpha", 1.0) * np.expm1(np.minimum(v, 0))),
    "HardSigmoid": lambda a: lambda v: np.clip(a.get("alpha", 0.2) * v + a.get("beta", 0.5), 0.0, 1.0),
    "HardSwish": lambda a: ACTIVATIONS["hardswish"],
    "Mish": lambda a: ACTIVATIONS["mish"],
    "Gelu": lambda a: (ACTIVATIONS["gelu"] if a.get("approximate", "none") == "none" else
                       lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))),
}
BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
          "Max": np.maximum, "Min": np.minimum, "Sum": np.add}


# ---------------------------------------------------------------- handlers
HANDLERS = {}


def handler(*names):
    def wrap(fn):
        for n in names:
            HANDLERS[n] = fn
        return fn

    return wrap


def _in(node, k):
    return node.input[k] if len(node.input) > k and node.input[k] else None


def _prefix_of(imp, node, positions):
    for k in positions:
        name = _in(node, k)
        if name:
            v = imp.values.get(name)
            p = strip_weight_suffix(v.name if isinstance(v, Const) and v.name else name)
            if p:
                return p
    return None


def _float_const(imp, node, k, where, what):
    c = imp.const(node.input[k], where, what)
    a = np.asarray(c.value)
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
        raise CnnGraphError(f"{where}: {what} must be numbers")
    return a.astype(np.float32, copy=False), c


def _window(imp, x, attrs, where, kernel, has_dilation=True):
    """Stride, dilation and (top, left, bottom, right) padding, resolving auto_pad."""
    strides = attrs.get("strides", [1, 1])
    dil = attrs.get("dilations", [1, 1]) if has_dilation else [1, 1]
    if len(kernel) != 2 or len(strides) != 2 or len(dil) != 2:
        raise CnnGraphError(f"{where}: only 2-D windows are supported (kernel {kernel})")
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        p = attrs.get("pads", [0, 0, 0, 0])
        if len(p) != 4:
            raise CnnGraphError(f"{where}: pads must have 4 values for a 2-D window, got {p}")
        pads = (p[0], p[1], p[2], p[3])
    elif auto == "VALID":
        pads = (0, 0, 0, 0)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        total = []
        for L, k, s, d in zip(x.shape[2:], kernel, strides, dil):
            span = d * (k - 1) + 1
            if s == 1:
                total.append(span - 1)
            elif ops.is_int(L):
                out = -(-int(L) // s)
                total.append(max((out - 1) * s + span - int(L), 0))
            else:
                raise CnnGraphError(f"{where}: auto_pad={auto} with stride {s} pads by an amount that depends on "
                                    f"the size {L} modulo {s}; give the input a numeric size")
        lo = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        hi = [t - a for t, a in zip(total, lo)]
        pads = (lo[0], lo[1], hi[0], hi[1])
    else:
        raise CnnGraphError(f"{where}: unknown auto_pad {auto!r}")
    if any(v < 0 for v in pads):
        raise CnnGraphError(f"{where}: negative pads {list(pads)} are not supported")
    return tuple(strides), tuple(dil), pads


def _need_rank(x, ranks, where, what):
    if len(x.shape) not in ranks:
        raise CnnGraphError(f"{where}: {what} needs a rank {' or '.join(map(str, ranks))} input, got shape "
                            f"{ops.fmt_shape(x.shape)}")


@handler("Conv")
def _conv(imp, node, a, where):
    v = imp.val(node.input[0], where)
    if isinstance(v, Pending) and v.kind == "unsqueezed":
        return _channel_conv(imp, node, a, where, v)
    extra = (0, 0, 0, 0)
    if isinstance(v, Pending) and v.kind == "zero_pad" and a.get("auto_pad", "NOTSET") in ("NOTSET", ""):
        v, extra = v.src, v.info["padding"]
    x = imp.act(v, where)
    _need_rank(x, (4,), where, "Conv")
    w, _ = _float_const(imp, node, 1, where, "the weight")
    if w.ndim != 4:
        raise CnnGraphError(f"{where}: Conv weight must be 4-D (C_out, C_in/groups, kh, kw), got {list(w.shape)}")
    kernel = a.get("kernel_shape", list(w.shape[2:]))
    if list(kernel) != list(w.shape[2:]):
        raise ShapeError(where, "kernel_shape disagrees with the weight", f"kernel_shape {kernel}, weight {list(w.shape)}")
    groups = a.get("group", 1)
    if groups < 1 or ops.same(w.shape[1] * groups, x.shape[1]) is False:
        raise ShapeError(where, "weight input channels × groups must equal the input channels",
                         f"{w.shape[1]} × {groups} vs {x.shape[1]}")
    stride, dil, pads = _window(imp, x, a, where, kernel)
    pads = tuple(ops.tidy(p + q) for p, q in zip(pads, extra))
    blur = _blur(imp, node, w, groups, stride, dil, pads)
    if blur is not None:
        return imp.new("blurpool2d", blur, [x], where)
    ws = {"weight": w}
    if _in(node, 2):
        b, _ = _float_const(imp, node, 2, where, "the bias")
        if b.shape != (w.shape[0],):
            raise ShapeError(where, "bias must have one value per output channel", f"bias {list(b.shape)}, C_out {w.shape[0]}")
        ws["bias"] = b
    attrs = dict(out_channels=int(w.shape[0]), kernel=tuple(kernel), stride=stride, padding=pads, dilation=dil,
                 groups=groups, bias="bias" in ws)
    return imp.new("conv2d", attrs, [x], where, _prefix_of(imp, node, (1, 2)), ws)


def _channel_conv(imp, node, a, where, v):
    """A 1-D Conv(1 → 1) of an N×C vector viewed N×1×C: ECA's Conv1d along the channels."""
    w, _ = _float_const(imp, node, 1, where, "the weight")
    pads = list(a.get("pads", [0, 0]))
    if w.ndim != 3 or w.shape[:2] != (1, 1) or _in(node, 2) or a.get("group", 1) != 1 or \
            set(a.get("strides", [1])) != {1} or set(a.get("dilations", [1])) != {1} or len(pads) != 2 or \
            pads[0] != pads[1] or a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise CnnGraphError(f"{where}: a Conv of an N×1×C view is supported as a 1-D convolution along the channels "
                            f"(one 1→1 filter, stride 1, equal padding, no bias; ECA), got weight {list(w.shape)}")
    y = imp.new("channel_conv", dict(size=int(w.shape[2]), pad=int(pads[0])), [imp.act(v.src, where)], where,
                _prefix_of(imp, node, (1,)), {"weight": w})
    return Pending("unsqueezed", y, (y.shape[0], 1, y.shape[1]), where)


def _blur(imp, node, w, groups, stride, dil, pads):
    """Blur pooling's attributes when a Conv is one: depthwise, no bias, no padding, every
    channel's filter the fixed binomial one, and that filter a constant rather
    than a parameter (its name is not a module's ``.weight``)."""
    kh, kw = w.shape[2:]
    name = imp.values[node.input[1]].name or node.input[1]
    if _in(node, 2) or groups != w.shape[0] or w.shape[1] != 1 or set(dil) != {1} or any(pads) or \
            name.endswith(".weight") or not np.allclose(w, ops.blur_filter(kh, kw)[None, None], rtol=0, atol=1e-7):
        return None
    return dict(kernel=(int(kh), int(kw)), stride=tuple(int(v) for v in stride))


@handler("ConvTranspose")
def _conv_transpose(imp, node, a, where):
    """Transposed convolution: weight (C_in, C_out/group, kh, kw); pads from ``pads``, from
    ``auto_pad`` or from ``output_shape`` (the total the spec derives, split as ``auto_pad`` says)."""
    x = imp.act(imp.val(node.input[0], where), where)
    _need_rank(x, (4,), where, "ConvTranspose")
    w, _ = _float_const(imp, node, 1, where, "the weight")
    if w.ndim != 4:
        raise CnnGraphError(f"{where}: ConvTranspose weight must be 4-D (C_in, C_out/groups, kh, kw), got {list(w.shape)}")
    kernel = list(a.get("kernel_shape", list(w.shape[2:])))
    if kernel != list(w.shape[2:]):
        raise ShapeError(where, "kernel_shape disagrees with the weight", f"kernel_shape {kernel}, weight {list(w.shape)}")
    groups = a.get("group", 1)
    if groups < 1 or ops.same(w.shape[0], x.shape[1]) is False:
        raise ShapeError(where, "the weight's first axis must equal the input channels", f"{w.shape[0]} vs {x.shape[1]}")
    strides, dil = list(a.get("strides", [1, 1])), list(a.get("dilations", [1, 1]))
    out_pad = list(a.get("output_padding", [0, 0]))
    if len(kernel) != 2 or len(strides) != 2 or len(dil) != 2 or len(out_pad) != 2:
        raise CnnGraphError(f"{where}: only 2-D transposed convolutions are supported (kernel {kernel})")
    auto = a.get("auto_pad", "NOTSET")
    target = a.get("output_shape")
    if target is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [[0, 0], [0, 0]]
        for ax in range(2):
            L, s, d, k = x.shape[2 + ax], strides[ax], dil[ax], kernel[ax]
            want = target[-2 + ax] if target is not None else L * s
            total = ops.tidy(s * (L - 1) + out_pad[ax] + (k - 1) * d + 1 - want)
            if not ops.is_int(total):
                raise CnnGraphError(f"{where}: output_shape {list(target)} gives padding {total}, which depends on "
                                    "the input size; give the input a numeric size")
            total = int(total)
            if total < 0:
                raise CnnGraphError(f"{where}: output_shape {list(target)} is larger than the transposed convolution "
                                    f"gives without padding along axis {2 + ax}; not supported")
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pads[ax] = [lo, total - lo]
        pads = (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
    elif auto == "VALID":
        pads = (0, 0, 0, 0)
    elif auto in ("NOTSET", ""):
        p = a.get("pads", [0, 0, 0, 0])
        if len(p) != 4:
            raise CnnGraphError(f"{where}: pads must have 4 values for a 2-D window, got {p}")
        pads = tuple(p)
    else:
        raise CnnGraphError(f"{where}: unknown auto_pad {auto!r}")
    if any(v < 0 for v in pads):
        raise CnnGraphError(f"{where}: negative pads {list(pads)} are not supported")
    ws = {"weight": w}
    cout = int(w.shape[1]) * groups
    if _in(node, 2):
        b, _ = _float_const(imp, node, 2, where, "the bias")
        if b.shape != (cout,):
            raise ShapeError(where, "bias must have one value per output channel", f"bias {list(b.shape)}, C_out {cout}")
        ws["bias"] = b
    attrs = dict(out_channels=cout, kernel=tuple(kernel), stride=tuple(strides), padding=pads,
                 output_padding=tuple(out_pad), dilation=tuple(dil), groups=groups, bias="bias" in ws)
    return imp.new("conv_transpose2d", attrs, [x], where, _prefix_of(imp, node, (1, 2)), ws)


def _pool_attrs(imp, x, a, where, op):
    kernel = a.get("kernel_shape")
    if kernel is None:
        raise CnnGraphError(f"{where}: {op} has no kernel_shape")
    stride, dil, pads = _window(imp, x, a, where, kernel, has_dilation=(op == "MaxPool"))
    attrs = dict(kernel=tuple(kernel), stride=stride, padding=pads, ceil_mode=bool(a.get("ceil_mode", 0)))
    if op == "MaxPool":
        attrs["dilation"] = dil
    else:
        if list(a.get("dilations", [1, 1])) != [1, 1]:
            raise CnnGraphError(f"{where}: dilated average pooling is not supported")
        attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
    return attrs


@handler("MaxPool", "AveragePool")
def _pool(imp, node, a, where):
    if len(node.output) > 1 and node.output[1] and imp.consumers.get(node.output[1]):
        raise CnnGraphError(f"{where}: MaxPool indices output is used; not supported")
    v = imp.val(node.input[0], where)
    kind = "max" if node.op_type == "MaxPool" else "avg"
    if isinstance(v, Pending) and v.kind == "lrn_padded" and kind == "avg":
        size = (a.get("kernel_shape") or [0])[0]
        if list(a.get("kernel_shape", [])) == [size, 1, 1] and (v.info["before"], v.info["after"]) == \
                (size // 2, (size - 1) // 2) and not any(a.get("pads", [])) and set(a.get("strides", [1])) == {1}:
            return Pending("lrn_window", v.src, v.shape, where, dict(size=size))
    if isinstance(v, Pending) and v.kind == "spatial_slice":
        strip = _strip(v, a, kind)
        if strip is not None:
            return strip
    if isinstance(v, Pending) and v.kind == "neg_pad" and kind == "max" and not a.get("ceil_mode", 0):
        # the -inf padding is the max pooling's own: one layer with both paddings
        attrs = _pool_attrs(imp, v, a, where, node.op_type)
        attrs["padding"] = tuple(p + q for p, q in zip(attrs["padding"], v.info["padding"]))
        return imp.new("maxpool2d", attrs, [v.src], where)
    x = imp.act(v, where)
    _need_rank(x, (4,), where, node.op_type)
    attrs = _pool_attrs(imp, x, a, where, node.op_type)
    return imp.new("maxpool2d" if kind == "max" else "avgpool2d", attrs, [x], where)


def _strip(v, a, kind):
    """One window of a separable adaptive pooling: the pool covers the whole slice."""
    axis, s, e = v.info["axis"], v.info["start"], v.info["end"]
    want = [e - s, 1] if axis == 2 else [1, e - s]
    if list(a.get("kernel_shape", [])) != want or any(a.get("pads", [0, 0, 0, 0])) or \
            a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", "") or a.get("ceil_mode", 0):
        return None
    shape = list(v.shape)
    shape[axis] = 1
    return Pending("strip", v.src, tuple(shape), v.where, dict(axis=axis, start=s, end=e, kind=kind))


@handler("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(imp, node, a, where):
    x = imp.act(imp.val(node.input[0], where), where)
    _need_rank(x, (4,), where, node.op_type)
    op = "adaptive_avgpool2d" if node.op_type == "GlobalAveragePool" else "adaptive_maxpool2d"
    return imp.new(op, {"output_size": (1, 1)}, [x], where)


@handler("ReduceMean", "ReduceMax")
def _reduce(imp, node, a, where):
    v = imp.val(node.input[0], where)
    if isinstance(v, Const):
        return _fold_reduce(imp, node, a, where, v)
    x = imp.act(v, where)
    axes = a.get("axes")
    if axes is None and _in(node, 1):
        axes = as_ints(imp.const(node.input[1], where, "axes").value, where, "axes")
    axes = sorted(k % len(x.shape) for k in (axes or []))
    if len(x.shape) != 4 or axes != [2, 3]:
        raise CnnGraphError(f"{where}: {node.op_type} is supported over height and width (global pooling), got "
                            f"axes {axes} of shape {ops.fmt_shape(x.shape)}")
    op = "adaptive_avgpool2d" if node.op_type == "ReduceMean" else "adaptive_maxpool2d"
    y = imp.new(op, {"output_size": (1, 1)}, [x], where)
    if a.get("keepdims", 1):
        return y
    return imp.new("flatten", {}, [y], f"{where}/flatten")


def _fold_reduce(imp, node, a, where, v):
    arr = np.asarray(v.value)
    if arr.dtype == object:
        raise CnnGraphError(f"{where}: reduction of symbolic sizes is not supported")
    axes = a.get("axes")
    if axes is None and _in(node, 1):
        axes = as_ints(imp.const(node.input[1], where, "axes").value, where, "axes")
    f = np.mean if node.op_type == "ReduceMean" else np.max
    return Const(f(arr, axis=tuple(axes) if axes else None, keepdims=bool(a.get("keepdims", 1))))


@handler("PRelu")
def _prelu(imp, node, a, where):
    x = imp.act(imp.val(node.input[0], where), where)
    slope, _ = _float_const(imp, node, 1, where, "the slope")
    C = x.shape[1]
    if slope.size == 1:
        n = 1
    elif ops.is_int(C) and slope.size == int(C) and slope.ndim <= len(x.shape) - 1 and slope.shape[0] == int(C):
        n = int(C)  # per channel: (C,), (C, 1, 1)
    else:
        raise ShapeError(where, "PRelu slope must be one number or one per channel",
                         f"slope {list(slope.shape)}, input {ops.fmt_shape(x.shape)}")
    return imp.new("prelu", dict(num_parameters=n), [x], where, _prefix_of(imp, node, (1,)),
                   {"weight": slope.reshape(-1).copy()})


@handler("Gemm")
def _gemm(imp, node, a, where):
    x = imp.act(imp.val(node.input[0], where), where)
    _need_rank(x, (2,), where, "Gemm")
    if a.get("transA", 0):
        raise CnnGraphError(f"{where}: Gemm with transA=1 is not supported")
    w, _ = _float_const(imp, node, 1, where, "the weight (B)")
    if w.ndim != 2:
        raise ShapeError(where, "Gemm weight must be 2-D", f"got {list(w.shape)}")
    w = w if a.get("transB", 0) else w.T
    if a.get("alpha", 1.0) != 1.0:
        w = w * np.float32(a["alpha"])
    if ops.same(w.shape[1], x.shape[1]) is False:
        raise ShapeError(where, "Gemm weight does not fit the input features", f"weight {list(w.shape)} (out, in), input {ops.fmt_shape(x.shape)}")
    ws = {"weight": w}
    if _in(node, 2):
        c, _ = _float_const(imp, node, 2, where, "the bias (C)")
        try:
            ws["bias"] = np.broadcast_to(c * np.float32(a.get("beta", 1.0)), (1, w.shape[0])).reshape(-1).copy()
        except ValueError:
            raise ShapeError(where, "Gemm bias must broadcast to the output features", f"C {list(c.shape)}, out {w.shape[0]}") from None
    attrs = dict(out_features=int(w.shape[0]), bias="bias" in ws)
    return imp.new("linear", attrs, [x], where, _prefix_of(imp, node, (1, 2)), ws)


@handler("MatMul")
def _matmul(imp, node, a, where):
    v = imp.val(node.input[0], where)
    if isinstance(v, Pending) and v.kind == "channels_last":
        return _matmul_channels_last(imp, node, where, v)
    x = imp.act(v, where)
    _need_rank(x, (2,), where, "MatMul with a weight matrix")
    w, _ = _float_const(imp, node, 1, where, "the weight")
    if w.ndim != 2 or ops.same(w.shape[0], x.shape[1]) is False:
        raise ShapeError(where, "MatMul weight does not fit the input features", f"weight {list(w.shape)}, input {ops.fmt_shape(x.shape)}")
    return imp.new("linear", dict(out_features=int(w.shape[1]), bias=False), [x], where, _prefix_of(imp, node, (1,)),
                   {"weight": w.T})


def _matmul_channels_last(imp, node, where, v):
    """A MatMul by a weight over the last axis of an N×H×W×C tensor (nn.Linear on a
    channels-last tensor, ConvNeXt's MLP) is a 1×1 convolution of the N×C×H×W one."""
    x = imp.act(v.src, where)
    w, _ = _float_const(imp, node, 1, where, "the weight")
    if w.ndim != 2 or ops.same(w.shape[0], x.shape[1]) is False:
        raise ShapeError(where, "MatMul weight does not fit the channels of a channels-last tensor",
                         f"weight {list(w.shape)}, input {ops.fmt_shape(v.shape)}")
    attrs = dict(out_channels=int(w.shape[1]), kernel=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                 groups=1, bias=False)
    y = imp.new("conv2d", attrs, [x], where, _prefix_of(imp, node, (1,)),
                {"weight": w.T.reshape(w.shape[1], w.shape[0], 1, 1)})
    return Pending("channels_last", y, (y.shape[0], y.shape[2], y.shape[3], y.shape[1]), where, {})


# Element-wise ops, MatMul by a weight and layer norm read a channels-last (N×H×W×C) tensor
# as its N×C×H×W source: the layout is undone before them and kept after them.
CHANNELS_LAST_OPS = set(UNARY) | set(BINARY) | {"Clip"}


def channels_last(imp, node, a, where):
    """An element-wise node of channels-last tensors (and constants broadcast over their last
    axis) computed on their N×C×H×W sources; its result is channels-last again. The same for
    an N×1×C view of a vector (ECA's gate) with numbers."""
    kinds = {v.kind for i in node.input if isinstance(v := imp.values.get(i), Pending) and v.kind in LAYOUTS}
    if len(kinds) != 1:
        raise CnnGraphError(f"{where}: {node.op_type} of tensors in different layouts ({', '.join(sorted(kinds))})")
    kind = kinds.pop()
    saved = {}
    for name in node.input:
        if not name or name in saved:
            continue
        v = imp.values.get(name)
        if isinstance(v, Pending) and v.kind == kind:
            sub = v.src
        elif kind == "unsqueezed" and isinstance(v, Const) and np.size(v.value) > 1:
            imp.values.update(saved)
            return None  # not a gate: a difference with a matrix (LeNet-5's RBF) has its own handler
        elif isinstance(v, Const) and np.size(v.value) > 1:
            arr = np.asarray(v.value)
            if arr.ndim > 4:
                raise CnnGraphError(f"{where}: {node.op_type} of a channels-last tensor and a rank-{arr.ndim} constant")
            arr4 = arr.reshape((1,) * (4 - arr.ndim) + arr.shape)
            sub = Const(np.transpose(arr4, (0, 3, 1, 2)), v.name)
        elif isinstance(v, Const) or v is None:
            continue
        else:
            raise CnnGraphError(f"{where}: {node.op_type} of a channels-last (N×H×W×C) tensor and an N×C×H×W one")
        saved[name] = v
        imp.values[name] = sub
    try:
        out = HANDLERS[node.op_type](imp, node, a, where)
    finally:
        imp.values.update(saved)
    if isinstance(out, Const):
        return out
    shape = out.shape
    if kind == "unsqueezed":
        return Pending(kind, out, (shape[0], 1, shape[1]), where)
    return Pending("channels_last", out, (shape[0], shape[2], shape[3], shape[1]), where, {})


LAYOUTS = ("channels_last", "unsqueezed")


@handler("BatchNormalization")
def _bn(imp, node, a, where):
    if a.get("training_mode", 0) or any(o and imp.consumers.get(o) for o in node.output[1:]):
        raise CnnGraphError(f"{where}: BatchNormalization in training mode is not supported (export in eval mode)")
    x = imp.act(imp.val(node.input[0], where), where)
    _need_rank(x, (2, 4), where, "BatchNormalization")
    arrs = []
    for k, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")):
        arr, _ = _float_const(imp, node, k, where, f"the {what}")
        if arr.shape != (x.shape[1],):
            raise ShapeError(where, f"batch norm {what} must have one value per channel", f"{list(arr.shape)} vs {x.shape[1]} channels")
        arrs.append(arr)
    scale, bias, mean, var = arrs
    ws = {"running_mean": mean, "running_var": var}
    affine = not _unit_affine(imp, node, scale, bias)
    if affine:
        ws.update(weight=scale, bias=bias)
    attrs = dict(num_features=x.shape[1], eps=short_float(a.get("epsilon", 1e-5)), affine=affine)
    return imp.new("batchnorm", attrs, [x], where, _prefix_of(imp, node, (1, 2, 3, 4)), ws)


def _unit_affine(imp, node, scale, bias):
    """A scale of exactly 1 and shift of 0 that are not named as parameters: not affine."""
    names = [imp.values[node.input[k]].name or node.input[k] for k in (1, 2)]
    named = any(n.endswith((".weight", ".bias")) for n in names)
    return not named and np.all(scale == 1) and np.all(bias == 0)


@handler("InstanceNormalization")
def _instancenorm(imp, node, a, where):
    v = imp.val(node.input[0], where)
    scale, _ = _float_const(imp, node, 1, where, "the scale")
    bias, _ = _float_const(imp, node, 2, where, "the bias")
    eps = short_float(a.get("epsilon", 1e-5))
    if isinstance(v, Pending) and v.kind == "groups":
        G = v.info["groups"]
        if scale.shape != (G,) or not (np.all(scale == 1) and np.all(bias == 0)):
            raise CnnGraphError(f"{where}: group-wise InstanceNormalization must have a unit scale and zero bias")
        return Pending("grouped_norm", v.src, v.shape, where, dict(groups=G, eps=eps))
    x = imp.act(v, where)
    _need_rank(x, (4,), where, "InstanceNormalization")
    if scale.shape != (x.shape[1],) or bias.shape != (x.shape[1],):
        raise ShapeError(where, "instance norm scale and bias need one value per channel", f"{list(scale.shape)} vs {x.shape[1]}")
    affine = not _unit_affine(imp, node, scale, bias)
    ws = dict(weight=scale, bias=bias) if affine else None
    return imp.new("instancenorm", dict(eps=eps, affine=affine), [x], where, _prefix_of(imp, node, (1, 2)) if affine else None, ws)


@handler("LayerNormalization")
def _layernorm(imp, node, a, where):
    v = imp.val(node.input[0], where)
    if isinstance(v, Pending) and v.kind == "channels_last":
        return _layernorm_channels(imp, node, a, where, v)
    x = imp.act(v, where)
    axis = a.get("axis", -1) % len(x.shape)
    if axis != 1:
        raise CnnGraphError(f"{where}: LayerNormalization is supported over the whole sample (axis 1), got axis "
                            f"{a.get('axis', -1)} of shape {ops.fmt_shape(x.shape)}")
    if any(o and imp.consumers.get(o) for o in node.output[1:]):
        raise CnnGraphError(f"{where}: LayerNormalization mean/inv-std outputs are used; not supported")
    per = tuple(x.shape[1:])
    scale, _ = _float_const(imp, node, 1, where, "the scale")
    if _in(node, 2):
        bias, _ = _float_const(imp, node, 2, where, "the bias")
    else:
        bias = np.zeros_like(scale)
    try:
        scale = np.broadcast_to(scale, tuple(int(s) for s in per)).copy()
        bias = np.broadcast_to(bias, scale.shape).copy()
    except (TypeError, ValueError):
        raise ShapeError(where, "layer norm scale must broadcast to the sample shape", f"{list(scale.shape)} vs {ops.fmt_shape(per)}") from None
    affine = not _unit_affine(imp, node, scale, bias) if _in(node, 2) else not np.all(scale == 1)
    ws = dict(weight=scale, bias=bias) if affine else None
    return imp.new("layernorm", dict(eps=short_float(a.get("epsilon", 1e-5)), affine=affine), [x], where,
                   _prefix_of(imp, node, (1, 2)) if affine else None, ws)


def _layernorm_channels(imp, node, a, where, v):
    """Transpose(0,2,3,1) → LayerNormalization(axis=-1) → …: a layer norm over the channels
    (ConvNeXt's LayerNorm2d); the result stays channels-last until transposed back."""
    if a.get("axis", -1) % 4 != 3:
        raise CnnGraphError(f"{where}: LayerNormalization of a channels-last tensor over axis {a.get('axis')} "
                            "(only the channels, axis -1)")
    src = imp.act(v.src, where)
    C = int(src.shape[1])
    scale, _ = _float_const(imp, node, 1, where, "the scale")
    bias = _float_const(imp, node, 2, where, "the bias")[0] if _in(node, 2) else np.zeros(C, np.float32)
    ws = dict(weight=np.broadcast_to(scale, (C,)).copy(), bias=np.broadcast_to(bias, (C,)).copy())
    y = imp.new("layernorm2d", dict(eps=short_float(a.get("epsilon", 1e-5)), affine=True), [src], where,
                _prefix_of(imp, node, (1, 2)), ws)
    return Pending("channels_last", y, v.shape, where, {})


@handler("GroupNormalization")
def _groupnorm_op(imp, node, a, where):
    x = imp.act(imp.val(node.input[0], where), where)
    _need_rank(x, (4,), where, "GroupNormalization")
    G = a.get("num_groups")
    C = int(x.shape[1]) if ops.is_int(x.shape[1]) else None
    scale, _ = _float_const(imp, node, 1, where, "the scale")
    bias, _ = _float_const(imp, node, 2, where, "the bias")
    if C is not None and scale.shape == (G,) and G != C:  # opset 18: one scale per group
        scale, bias = np.repeat(scale, C // G), np.repeat(bias, C // G)
    ws = dict(weight=scale, bias=bias)
    return imp.new("groupnorm", dict(num_groups=G, eps=short_float(a.get("epsilon", 1e-5)), affine=True), [x], where,
                   _prefix_of(imp, node, (1, 2)), ws)


@handler("LRN")
def _lrn(imp, node, a, where):
    v = imp.val(node.input[0], where)
    size = a.get("size")
    attrs = dict(size=size, alpha=short_float(a.get("alpha", 1e-4)), beta=short_float(a.get("beta", 0.75)),
                 k=short_float(a.get("bias", 1.0)))
    x = imp.act(v, where)
    if size % 2 == 0:
        raise CnnGraphError(f"{where}: LRN with an even size ({size}) sums channels [c-{size // 2 - 1}, c+{size // 2}] "
                            f"in ONNX but [c-{size // 2}, c+{size // 2 - 1}] in PyTorch and cnngraph; not supported")
    return imp.new("lrn", attrs, [x], where)


@handler("Softmax", "LogSoftmax")
def _softmax(imp, node, a, where):
    v = imp.val(node.input[0], where)
    if node.op_type == "Softmax" and isinstance(v, Pending) and v.kind in ("radix_swapped", "swapped", "split_channels"):
        return _radix_softmax(imp, node, a, where, v)
    x = imp.act(v, where)
    r = len(x.shape)
    axis = a.get("axis", -1 if imp.opset >= 13 else 1) % r
    ok = axis == 1 and (r == 2 or imp.opset >= 13)
    if not ok:
        raise CnnGraphError(f"{where}: {node.op_type} is supported over the channel/feature axis, got axis "
                            f"{a.get('axis')} of shape {ops.fmt_shape(x.shape)} (opset {imp.opset})")
    return imp.new("softmax" if node.op_type == "Softmax" else "log_softmax", {}, [x], where)


def _radix_softmax(imp, node, a, where, v):
    """Softmax over the radix axis of split attention: after timm's RadixSoftmax view and
    transpose (N×radix×groups×rest, ResNeSt), or of a N×paths×C×1×1 view (SKNet)."""
    axis = a.get("axis", -1 if imp.opset >= 13 else 1) % len(v.shape)
    if axis != 1 or (imp.opset < 13 and len(v.shape) > 2):
        raise CnnGraphError(f"{where}: Softmax of {PENDING_TEXT.get(v.kind, v.kind)} is supported over axis 1 "
                            f"(the radix of a split attention), got axis {a.get('axis')}")
    x = imp.act(v.src, where)
    if v.kind == "split_channels":  # N×radix×C×… : channels (radix, C), groups 1
        y = imp.new("radix_softmax", dict(radix=int(v.info["groups"]), groups=1), [x], where)
        return Pending("split_channels", y, v.shape, where, v.info)
    if v.kind == "radix_swapped":
        radix, groups = v.info["radix"], v.info["groups"]
    else:  # a channel-split reshape N×g×C/g×rest, transposed: radix C/g, groups g
        radix, groups = int(v.shape[1]), int(v.info["groups"])
    # the layer is the tensor of the Reshape that closes the pattern (its name, as PyTorch and
    # cnngraph's exporter write it), when that Reshape is the softmax's one reader
    readers = getattr(imp, "readers", {}).get(node.output[0], [])
    name = readers[0].name if len(readers) == 1 and readers[0].op_type == "Reshape" and readers[0].name else where
    y = imp.new("radix_softmax", dict(radix=radix, groups=groups), [x], name)
    return Pending("radix_softmaxed", y, v.shape, where, {})


@handler("Flatten")
def _flatten(imp, node, a, where):
    v = imp.val(node.input[0], where)
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        ax = a.get("axis", 1) % max(arr.ndim, 1)
        return Const(arr.reshape(int(np.prod(arr.shape[:ax])), -1))
    if isinstance(v, Pending) and v.kind == "unsqueezed" and isinstance(v.src, (Act, Pointwise)) and a.get("axis", 1) == 1:
        return v.src
    x = imp.act(v, where)
    if a.get("axis", 1) % len(x.shape) != 1:
        raise CnnGraphError(f"{where}: Flatten is supported from axis 1 (keeping the batch), got axis {a.get('axis')}")
    return imp.new("flatten", {}, [x], where)


@handler("DepthToSpace", "SpaceToDepth")
def _blocks(imp, node, a, where):
    """DepthToSpace (mode DCR, ONNX's default, or CRD: PyTorch's pixel shuffle) and SpaceToDepth (DCR)."""
    x = imp.act(imp.val(node.input[0], where), where)
    _need_rank(x, (4,), where, node.op_type)
    mode = a.get("mode", "DCR") if node.op_type == "DepthToSpace" else "DCR"
    if "blocksize" not in a:
        raise CnnGraphError(f"{where}: {node.op_type} needs its blocksize attribute")
    op = "depth_to_space" if node.op_type == "DepthToSpace" else "space_to_depth"
    return imp.new(op, dict(block=int(a["blocksize"]), mode=mode), [x], where)


@handler("Dropout")
def _dropout(imp, node, a, where):
    x = imp.act(imp.val(node.input[0], where), where)
    p = a.get("ratio", 0.5)
    if _in(node, 1):
        s = scalar_of(imp.const(node.input[1], where, "the ratio"))
        p = s if s is not None else p
    if _in(node, 2):
        t = imp.const(node.input[2], where, "training_mode")
        if np.any(np.asarray(t.value)):
            raise CnnGraphError(f"{where}: Dropout in training mode is not supported")
    if len(node.output) > 1 and node.output[1] and imp.consumers.get(node.output[1]):
        raise CnnGraphError(f"{where}: Dropout's mask output is used; not supported")
    return imp.new("dropout", {"p": short_float(p)}, [x], where)


@handler("Identity")
def _identity(imp, node, a, where):
    v = imp.val(node.input[0], where)
    if isinstance(v, Const):
        return Const(v.value, node.output[0])  # PyTorch names shared buffers through Identity
    return imp.new("identity", {}, [imp.act(v, where)], where)


@handler("Cast")
def _cast(imp, node, a, where):
    import onnx

    v = imp.val(node.input[0], where)
    to = a.get("to")
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        if arr.dtype == object:  # symbolic sizes: a float type divides exactly, an int type truncates
            if to in FLOAT_TYPES:
                return Const(arr, real=True)
            return Const(_sym_map(sympy.floor, arr) if v.real else arr)
        if to not in DTYPES:
            raise CnnGraphError(f"{where}: Cast to {onnx.TensorProto.DataType.Name(to)} is not supported")
        return Const(arr.astype(DTYPES[to][0]))
    if to not in FLOAT_TYPES:
        raise CnnGraphError(f"{where}: Cast of a computed tensor to a non-float type is not supported")
    return v  # compute precision does not change the graph


@handler("Constant")
def _constant(imp, node, a, where):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in a:
            val = a[key]
            if key == "value":
                return Const(val, node.output[0])
            return Const(np.asarray(val, dtype=np.float32 if "float" in key else np.int64))
    raise CnnGraphError(f"{where}: Constant with {sorted(a)} is not supported (numbers only)")


@handler("ConstantOfShape")
def _constant_of_shape(imp, node, a, where):
    shape = as_ints(imp.const(node.input[0], where, "the shape").value, where, "the shape")
    n = int(np.prod(shape)) if shape else 1
    if any(s < 0 for s in shape) or n > MAX_FOLD:
        raise CnnGraphError(f"{where}: ConstantOfShape of {shape} is over the {MAX_FOLD}-element folding limit")
    val = a.get("value")
    fill = np.asarray(val).reshape(-1)[0] if val is not None else np.float32(0)
    return Const(np.full(shape, fill, dtype=np.asarray(fill).dtype))


@handler("Shape")
def _shape(imp, node, a, where):
    v = imp.val(node.input[0], where)
    shape = list(np.shape(v.value)) if isinstance(v, Const) else list(v.shape)
    start, end = a.get("start", 0), a.get("end", len(shape))
    return Const(_shape_array(shape[start:end] if (start, end) != (0, len(shape)) else shape))


def _shape_array(dims):
    if all(ops.is_int(d) for d in dims):
        return np.asarray([int(d) for d in dims], dtype=np.int64)
    out = np.empty(len(dims), dtype=object)
    for i, d in enumerate(dims):
        out[i] = int(d) if ops.is_int(d) else d
    return out


@handler("Size")
def _size(imp, node, a, where):
    v = imp.val(node.input[0], where)
    return Const(np.asarray(ops.numel(np.shape(v.value) if isinstance(v, Const) else v.shape), dtype=object))


def _const_only(imp, node, where, what):
    vals = [imp.val(i, where) if i else None for i in node.input]
    for v in vals:
        if v is not None and not isinstance(v, Const):
            raise CnnGraphError(f"{where}: {node.op_type} of a computed tensor is not supported ({what})")
    return [None if v is None else np.asarray(v.value) for v in vals]


def _check_fold(arr, where, *inputs):
    """A folded array no larger than :data:`MAX_FOLD` elements or than its largest input (a scaled
    or standardised weight is the weight's size; a tiny tensor expanded to a huge one is refused)."""
    limit = max([MAX_FOLD] + [np.size(i) for i in inputs])
    if np.size(arr) > limit:
        raise CnnGraphError(f"{where}: folding would create {np.size(arr)} elements (limit {limit})")
    return arr


@handler("Gather")
def _gather(imp, node, a, where):
    data, idx = _const_only(imp, node, where, "only shape arithmetic on constants is folded")
    return Const(_check_fold(np.take(data, idx.astype(np.int64), axis=a.get("axis", 0)), where))


def _axes(imp, node, a, where):
    """The ``axes`` of a reduction or (un)squeeze: an attribute before opset 13/18, a constant input since."""
    if a.get("axes") is not None or not _in(node, 1):
        return a.get("axes")
    return as_ints(imp.const(node.input[1], where, "axes").value, where, "axes")


@handler("Squeeze", "Unsqueeze")
def _squeeze(imp, node, a, where):
    v, axes = imp.val(node.input[0], where), _axes(imp, node, a, where)
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        if node.op_type == "Unsqueeze":
            r = arr.ndim + len(axes)
            for ax in sorted(k % r for k in axes):
                arr = np.expand_dims(arr, ax)
            return Const(arr, v.name)
        if axes is None:
            return Const(np.squeeze(arr), v.name)
        return Const(np.squeeze(arr, axis=tuple(k % arr.ndim for k in axes)), v.name)
    if node.op_type == "Squeeze" and isinstance(v, Pending) and v.kind == "lrn_window" and \
            [k % 5 for k in (axes or [1])] == [1]:
        return Pending("lrn_mean", v.src, v.src.shape, where, v.info)
    if node.op_type == "Squeeze" and isinstance(v, Pending) and v.kind == "half_squeezed" and axes is not None \
            and [k % 3 for k in axes] == [2]:
        return imp.new("flatten", {}, [v.src], where)  # x.squeeze(-1).squeeze(-1), second step
    if node.op_type == "Squeeze":
        x = imp.act(v, where)
        axes = sorted(k % len(x.shape) for k in (axes if axes is not None else
                                                  [i for i, s in enumerate(x.shape) if s == 1 and i > 0]))
        if len(x.shape) == 4 and axes == [2, 3] and x.shape[2] == 1 and x.shape[3] == 1:
            return imp.new("flatten", {}, [x], where)
        if len(x.shape) == 4 and axes == [3] and x.shape[2] == 1 and x.shape[3] == 1:
            return Pending("half_squeezed", x, tuple(x.shape[:3]), where)
        raise CnnGraphError(f"{where}: Squeeze is supported for N×C×1×1 -> N×C, got axes {axes} of {ops.fmt_shape(x.shape)}")
    if isinstance(v, Pending) and v.kind == "square" and [k % 5 for k in axes] == [1]:
        return Pending("lrn_sq", v.src, (v.shape[0], 1) + tuple(v.shape[1:]), where)
    src = v.src if isinstance(v, Pending) and v.kind == "unsqueezed" else v
    x = imp.act(src, where)
    r = len(x.shape) + len(axes)
    axes = sorted(k % r for k in axes)
    if len(x.shape) == 2 and axes == [2, 3]:
        return Pending("view", x, tuple(x.shape) + (1, 1), where)
    if len(x.shape) == 2 and axes == [1]:
        return Pending("unsqueezed", x, (x.shape[0], 1, x.shape[1]), where)
    if len(x.shape) == 4 and axes == [1]:  # torch.stack(paths, dim=1), one part
        return Pending("stack_part", x, (x.shape[0], 1) + tuple(x.shape[1:]), where)
    raise CnnGraphError(f"{where}: Unsqueeze of a computed tensor is supported as N×C -> N×C×1×1 (a broadcast "
                        f"scale), got axes {axes} of {ops.fmt_shape(x.shape)}")


@handler("Concat")
def _concat(imp, node, a, where):
    vals = [imp.val(i, where) for i in node.input if i]
    axis = a.get("axis")
    if all(isinstance(v, Const) for v in vals):
        arrs = [np.asarray(v.value) for v in vals]
        if any(x.dtype == object for x in arrs):
            arrs = [x.astype(object) for x in arrs]
        return Const(_check_fold(np.concatenate(arrs, axis=axis), where))
    if all(isinstance(v, Pending) and v.kind in ("strip", "adaptive_strip") for v in vals):
        return _concat_strips(imp, vals, axis, where)
    if all(isinstance(v, Pending) and v.kind == "stack_part" for v in vals) and axis is not None and axis % 5 == 1:
        # torch.stack(paths, dim=1): the paths concatenated along channels, viewed N×paths×C×H×W
        srcs = [v.src for v in vals]
        if any(not _same_shape(t.shape, srcs[0].shape) for t in srcs):
            raise CnnGraphError(f"{where}: stacked tensors of different shapes")
        y = imp.new("concat", {}, srcs, where)
        return Pending("split_channels", y, (y.shape[0], len(srcs)) + tuple(srcs[0].shape[1:]), where,
                       dict(groups=len(srcs)))
    acts = [imp.act(v, where) for v in vals]
    r = len(acts[0].shape)
    if axis is None or axis % r != 1:
        raise CnnGraphError(f"{where}: Concat is supported along channels (axis 1), got axis {axis}")
    return imp.new("concat", {}, acts, where)


def _concat_strips(imp, strips, axis, where):
    """The strips of a separable adaptive pooling, concatenated: one axis is done."""
    first = strips[0]
    ax = first.info["axis"]
    base = first.src
    if axis % 4 != ax or any(s.src is not base or s.info["axis"] != ax or s.info["kind"] != first.info["kind"]
                             for s in strips):
        raise CnnGraphError(f"{where}: Concat of pooled strips that do not form an adaptive pooling")
    x = base if isinstance(base, Act) else base.src
    L = x.shape[ax]
    o = len(strips)
    if not ops.is_int(L):
        raise CnnGraphError(f"{where}: adaptive pooling pattern over a symbolic size")
    L = int(L)
    for i, s in enumerate(strips):
        if (s.info["start"], s.info["end"]) != ((i * L) // o, -(-((i + 1) * L) // o)):
            raise CnnGraphError(f"{where}: pooled strips are not the windows of an adaptive pooling to {o}")
    kind = first.info["kind"]
    shape = list(base.shape)
    shape[ax] = o
    if isinstance(base, Act):
        return Pending("adaptive_partial", base, tuple(shape), where, dict(kind=kind, axis=ax, size=o))
    if base.kind == "adaptive_partial" and base.info["kind"] == kind and base.info["axis"] != ax:
        sizes = {base.info["axis"]: base.info["size"], ax: o}
        op = "adaptive_avgpool2d" if kind == "avg" else "adaptive_maxpool2d"
        return imp.new(op, {"output_size": (sizes[2], sizes[3])}, [base.src], where)
    raise CnnGraphError(f"{where}: Concat of pooled strips that do not form an adaptive pooling")


@handler("Split")
def _split(imp, node, a, where):
    x = imp.act(imp.val(node.input[0], where), where)
    axis = a.get("axis", 0) % len(x.shape)
    if axis != 1:
        raise CnnGraphError(f"{where}: Split is supported along channels (axis 1), got axis {a.get('axis', 0)}")
    n = len(node.output)
    sizes = a.get("split")
    if sizes is None and _in(node, 1):
        sizes = as_ints(imp.const(node.input[1], where, "split sizes").value, where, "split sizes")
    C = x.shape[1]
    if sizes is None:
        if not ops.is_int(C):
            raise CnnGraphError(f"{where}: equal Split of symbolic channels {C}")
        C, k = int(C), a.get("num_outputs", n)
        step = -(-C // k)
        sizes = [min(step, C - i * step) for i in range(k)]
    if len(sizes) != n or (ops.is_int(C) and sum(sizes) != int(C)):
        raise ShapeError(where, "split sizes must add up to the channels", f"{sizes} vs {C}")
    outs, start = [], 0
    for name, s in zip(node.output, sizes):
        outs.append(imp.new("slice", dict(start=start, stop=start + s), [x], name or f"{where}_{start}"))
        start += s
    return outs


@handler("Slice")
def _slice(imp, node, a, where):
    v = imp.val(node.input[0], where)
    if "starts" in a:  # opset < 10: attributes
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        def get(k, what):
            return as_ints(imp.const(node.input[k], where, what).value, where, what) if _in(node, k) else None

        starts, ends, axes, steps = get(1, "starts"), get(2, "ends"), get(3, "axes"), get(4, "steps")
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps or [1] * len(starts)
        idx = [slice(None)] * arr.ndim
        for ax, s, e, st in zip(axes, starts, ends, steps):
            idx[ax % arr.ndim] = slice(s, e, st)
        return Const(arr[tuple(idx)])
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps or [1] * len(starts)
    if isinstance(v, Pending) and v.kind == "adaptive_partial":
        return _spatial_slice(v, axes, starts, ends, steps, where)
    if isinstance(v, Pending) and v.kind == "subsample" and {k % 4 for k in axes} <= {2, 3}:
        # x[:, :, ::s, ::s] written as one Slice per axis: one subsampling
        stride = list(v.info["stride"])
        for ax, s, e, st in zip(axes, starts, ends, steps):
            ax = ax % 4
            if s != 0 or e < _int_or(v.shape[ax], MAX_DIM) or st < 1:
                raise CnnGraphError(f"{where}: strided Slice is supported as x[:, :, ::s, ::s], got axis {ax} "
                                    f"[{s}:{e}:{st}]")
            stride[ax - 2] *= st
        x = v.src
        shape = (x.shape[0], x.shape[1], ops.ceildiv(x.shape[2], stride[0]), ops.ceildiv(x.shape[3], stride[1]))
        return Pending("subsample", x, shape, where, dict(stride=tuple(stride)))
    x = imp.act(v, where)
    r = len(x.shape)
    axes = [k % r for k in axes]
    spec = {ax: (s, e, st) for ax, s, e, st in zip(axes, starts, ends, steps)}
    if set(spec) == {1}:
        s, e, st = spec[1]
        C = x.shape[1]
        if st != 1:
            raise CnnGraphError(f"{where}: channel Slice with step {st} is not supported")
        if not ops.is_int(C):
            if s >= 0 and e < MAX_DIM:
                return imp.new("slice", dict(start=s, stop=e), [x], where)
            raise CnnGraphError(f"{where}: channel Slice [{s}:{e}] of symbolic channels {C}")
        s, e = _clamp(s, int(C), 1), _clamp(e, int(C), 1)
        return imp.new("slice", dict(start=s, stop=e), [x], where)
    if r == 4 and set(spec) <= {2, 3} and spec:
        if any(st != 1 for _, _, st in spec.values()):
            stride = [1, 1]
            for ax, (s, e, st) in spec.items():
                if s != 0 or e < _int_or(x.shape[ax], MAX_DIM) or st < 1:
                    raise CnnGraphError(f"{where}: strided Slice is supported as x[:, :, ::s, ::s], got {spec}")
                stride[ax - 2] = st
            shape = (x.shape[0], x.shape[1], ops.ceildiv(x.shape[2], stride[0]), ops.ceildiv(x.shape[3], stride[1]))
            return Pending("subsample", x, shape, where, dict(stride=tuple(stride)))
        return _spatial_slice(x, axes, starts, ends, steps, where)
    raise CnnGraphError(f"{where}: Slice of a computed tensor is supported along channels or height/width, got axes {axes}")


def _int_or(v, default):
    return int(v) if ops.is_int(v) else default


def _clamp(i, L, step):
    if i < 0:
        i += L
    return max(0, min(i, L)) if step > 0 else max(-1, min(i, L - 1))


def _spatial_slice(x, axes, starts, ends, steps, where):
    if len(axes) != 1 or steps != [1]:
        raise CnnGraphError(f"{where}: Slice along height/width is supported one axis at a time, step 1")
    ax = axes[0] % 4
    L = x.shape[ax]
    if not ops.is_int(L):
        raise CnnGraphError(f"{where}: Slice along a symbolic size {L}")
    L = int(L)
    s, e = _clamp(starts[0], L, 1), _clamp(ends[0], L, 1)
    if e <= s:
        raise ShapeError(where, "empty slice", f"[{starts[0]}:{ends[0]}] of {L}")
    shape = list(x.shape)
    shape[ax] = e - s
    return Pending("spatial_slice", x, tuple(shape), where, dict(axis=ax, start=s, end=e))


@handler("Pad")
def _pad(imp, node, a, where):
    v = imp.val(node.input[0], where)
    mode = a.get("mode", "constant")
    if mode not in ("constant", "reflect"):
        raise CnnGraphError(f"{where}: Pad mode {mode!r} is not supported (constant and reflect are)")
    pads = a.get("pads") or _sizes(imp.const(node.input[1], where, "pads").value, where, "pads")
    if mode == "reflect":
        if len(pads) != 8 or any(pads[:2] + pads[4:6]) or _in(node, 3):
            raise CnnGraphError(f"{where}: reflect Pad is supported over height and width, got pads {pads}")
        x = imp.act(v, where)
        return imp.new("pad2d", dict(padding=(pads[2], pads[3], pads[6], pads[7]), mode="reflect"), [x], where)
    value = a.get("value", 0.0)
    if _in(node, 2):
        s = scalar_of(imp.const(node.input[2], where, "the pad value"))
        value = s if s is not None else 1.0
    if _in(node, 3):
        raise CnnGraphError(f"{where}: Pad with an axes input is not supported")
    if value == -np.inf and len(pads) == 8 and not any(pads[:2] + pads[4:6]) and min(pads) >= 0:
        # F.pad(x, ..., value=-inf) before a max pooling ("same" max pooling, timm's MaxPool2dSame)
        x = imp.act(v, where)
        t, l, b, r = pads[2], pads[3], pads[6], pads[7]
        shape = (x.shape[0], x.shape[1], ops.tidy(x.shape[2] + t + b), ops.tidy(x.shape[3] + l + r))
        return Pending("neg_pad", x, shape, where, dict(padding=(t, l, b, r)))
    if value != 0:
        raise CnnGraphError(f"{where}: Pad with value {value} is not supported (zero padding only, or -inf before "
                            "a max pooling)")
    if isinstance(v, Pending) and v.kind == "lrn_sq" and len(pads) == 10 and \
            [p for i, p in enumerate(pads) if i not in (2, 7)] == [0] * 8:
        return Pending("lrn_padded", v.src, v.shape, where, dict(before=pads[2], after=pads[7]))
    if len(pads) != 8:
        raise CnnGraphError(f"{where}: Pad is supported on N×C×H×W tensors, got pads {pads}")
    if isinstance(v, Pending) and v.kind == "subsample":
        x, stride = v.src, v.info["stride"]
    else:
        x, stride = imp.act(v, where), (1, 1)
    nb, cb, t, l, na, ca, b, r = pads
    if nb or na:
        raise CnnGraphError(f"{where}: padding the batch is not supported")
    if (cb or ca) and not (t or l or b or r) and cb >= 0 and ca >= 0:
        return imp.new("pad_channels", dict(before=cb, after=ca, stride=stride), [x], where)
    if stride != (1, 1):
        x = imp.act(v, where)
    if not (cb or ca) and "pad2d" in ops.REGISTRY:
        if not any(ops.negative(p) for p in (t, l, b, r)):
            # zero padding: the next Conv takes it as its own padding (timm's Conv2dSame, pad_same)
            shape = (x.shape[0], x.shape[1], ops.tidy(x.shape[2] + t + b), ops.tidy(x.shape[3] + l + r))
            return Pending("zero_pad", x, shape, where, dict(padding=(t, l, b, r)))
        return imp.new("pad2d", dict(padding=(t, l, b, r)), [x], where)
    raise CnnGraphError(f"{where}: Pad {pads} pads channels and height/width at once; not supported")


def _sizes(a, where, what):
    """Integers, or symbolic sizes (sympy integer expressions) computed from dim_params."""
    arr = np.asarray(a).reshape(-1)
    if arr.dtype != object:
        return as_ints(arr, where, what)
    out = []
    for v in arr:
        v = sympy.sympify(v, strict=True)  # computed sizes only: a string is never read
        if v.is_integer is False or v.free_symbols == set() and not v.is_Integer:
            raise CnnGraphError(f"{where}: {what} must be integers, got {list(arr)}")
        out.append(ops.tidy(v))
    return out


@handler("Reshape")
def _reshape(imp, node, a, where):
    v = imp.val(node.input[0], where)
    target = imp.const(node.input[1], where, "the target shape").value
    target = list(np.asarray(target).reshape(-1))
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        return Const(arr.reshape(as_ints(target, where, "the shape")), v.name)
    src_shape = v.shape
    shape = _resolve_shape(src_shape, target, a.get("allowzero", 0), where)
    return _reshape_value(imp, v, shape, where)


def _resolve_shape(src, target, allowzero, where):
    out, infer = [], None
    for i, t in enumerate(target):
        t = as_num(t)
        if ops.is_int(t) and int(t) == 0 and not allowzero:
            if i >= len(src):
                raise ShapeError(where, "Reshape copies a dimension the input does not have", f"target {target}")
            out.append(src[i])
        elif ops.is_int(t) and int(t) == -1:
            if infer is not None:
                raise ShapeError(where, "Reshape has two -1 dimensions", f"target {target}")
            infer = i
            out.append(None)
        else:
            out.append(int(t) if ops.is_int(t) else t)
    total = ops.numel(src)
    if infer is not None:
        known = ops.numel([d for d in out if d is not None])
        q = ops.div(total, known)
        out[infer] = q
    if ops.same(ops.numel(out), total) is False:
        raise ShapeError(where, "Reshape changes the number of elements", f"{ops.fmt_shape(src)} -> {target}")
    return tuple(ops.tidy(sympy.sympify(d, strict=True)) if not isinstance(d, int) else d for d in out)


def _reshape_value(imp, v, shape, where):
    src = v.src if isinstance(v, Pending) else v
    if isinstance(v, Pending):
        base = v.src
        if v.kind == "swapped" and _same_shape(shape, base.shape):
            return imp.new("channel_shuffle", {"groups": v.info["groups"]}, [base], where)
        if v.kind == "grouped_norm" and _same_shape(shape, base.shape):
            return imp.new("groupnorm", dict(num_groups=v.info["groups"], eps=v.info["eps"], affine=False), [base], where)
        if v.kind == "view" and _same_shape(shape, base.shape):
            return base
        if v.kind == "view" and len(shape) == 4 and _same_shape(shape, v.shape):
            return v
        if v.kind == "blocks_moved" and _same_shape(shape, (v.shape[0], ops.prod(v.shape[1:4])) + v.shape[4:]):
            return imp.new("space_to_depth", dict(block=v.info["block"], mode=v.info["mode"]), [base], where)
        if v.kind == "view" and len(shape) == 5 and same_size(ops.prod(shape[1:3]), base.shape[1]) and \
                all(ops.is_int(d) and int(d) == 1 for d in shape[3:]):
            # an attention vector N×C viewed as N×radix×C/radix×1×1 (ResNeSt's x_attn.reshape)
            return Pending("split_channels", base, shape, where, dict(groups=shape[1]))
        if v.kind == "unsqueezed" and isinstance(base, (Act, Pointwise)) and len(base.shape) == 2:
            base = imp.act(base, where)
            if _same_shape(shape, base.shape):
                return base
            if len(shape) == 4 and same_size(shape[1], base.shape[1]) and shape[2] == 1 and shape[3] == 1:
                return Pending("view", base, shape, where)
        if v.kind == "radix_softmaxed":
            y = v.src
            if _same_shape(shape, y.shape):
                return y
            if len(shape) == 2 and len(y.shape) == 4 and all(ops.is_int(d) and int(d) == 1 for d in y.shape[2:]):
                return imp.new("flatten", {}, [y], where)
            if len(shape) == 2 and len(y.shape) == 2:
                return y
        raise CnnGraphError(f"{where}: Reshape of {PENDING_TEXT.get(v.kind, v.kind)} to {list(shape)} is not supported")
    x = imp.act(src, where)
    if not same_size(shape[0], x.shape[0]):
        raise CnnGraphError(f"{where}: Reshape that moves data into the batch dimension is not supported "
                            f"({ops.fmt_shape(x.shape)} -> {ops.fmt_shape(shape)})")
    if _same_shape(shape, x.shape):
        return x
    if len(shape) == 2:
        return imp.new("flatten", {}, [x], where)
    if len(x.shape) == 2 and len(shape) == 4 and same_size(shape[1], x.shape[1]) and shape[2] == 1 and shape[3] == 1:
        return Pending("view", x, shape, where)
    if len(x.shape) == 2 and len(shape) == 3 and shape[1] == 1 and same_size(shape[2], x.shape[1]):
        return Pending("unsqueezed", x, shape, where)  # ECA's view(N, 1, C) of the pooled channels
    if len(x.shape) == 4 and len(shape) in (4, 5) and same_size(ops.prod(shape[1:3]), x.shape[1]):
        rest_ok = same_size(ops.prod(shape[3:]), ops.prod(x.shape[2:]))
        if rest_ok and (len(shape) == 4 or (same_size(shape[3], x.shape[2]) and same_size(shape[4], x.shape[3]))):
            return Pending("split_channels", x, shape, where, dict(groups=shape[1]))
    if len(x.shape) == 4 and len(shape) == 6 and ops.is_int(shape[3]) and shape[3] == shape[5] \
            and same_size(shape[1], x.shape[1]) and same_size(shape[2] * shape[3], x.shape[2]) \
            and same_size(shape[4] * shape[5], x.shape[3]):
        # N×C×(H/r)×r×(W/r)×r: the first step of PixelUnshuffle / TResNet's space-to-depth
        return Pending("blocks", x, shape, where, dict(block=int(shape[3])))
    if len(x.shape) in (2, 4) and len(shape) == 4 and ops.is_int(shape[1]) and ops.is_int(shape[2]) and \
            divides(int(shape[1]) * int(shape[2]), x.shape[1]) and same_size(ops.prod(shape[1:]), ops.prod(x.shape[1:])):
        # N×C×H×W viewed as N×groups×radix×(rest): the first step of a radix softmax
        return Pending("radix_view", x, shape, where, dict(groups=int(shape[1]), radix=int(shape[2])))
    if len(x.shape) == 4 and len(shape) == 3:
        G = shape[1]
        if ops.is_int(G) and divides(G, x.shape[1]):
            return Pending("groups", x, shape, where, dict(groups=int(G)))
    raise CnnGraphError(f"{where}: Reshape {ops.fmt_shape(x.shape)} -> {ops.fmt_shape(shape)} is not a flatten, "
                        "channel shuffle or group norm; not supported")


def divides(d, n):
    return ops.divides(d, n) is True


def _same_shape(a, b):
    return len(a) == len(b) and all(same_size(p, q) for p, q in zip(a, b))


@handler("Expand")
def _expand(imp, node, a, where):
    v = imp.val(node.input[0], where)
    shape = np.asarray(imp.const(node.input[1], where, "the shape").value).reshape(-1)
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        target = np.broadcast_shapes(arr.shape, tuple(as_ints(shape, where, "the shape")))
        if int(np.prod(target)) > MAX_FOLD:
            raise CnnGraphError(f"{where}: folding would create {int(np.prod(target))} elements (limit {MAX_FOLD})")
        return Const(np.broadcast_to(arr, target).copy(), v.name)
    # Broadcasting before a Mul/Add (x * s.expand_as(x)): the element-wise op broadcasts anyway,
    # but only to a shape that broadcasts with the input, as ONNX Runtime checks.
    # The target may hold symbolic sizes (a dynamic exporter's Shape arithmetic): compare numbers only.
    target = tuple(int(t) if isinstance(t, (int, np.integer)) else ops.tidy(t) for t in shape)
    have = tuple(v.shape)
    for p, q in zip(reversed(have), reversed(target)):
        if ops.same(p, q) is False and not any(ops.is_int(s) and int(s) == 1 for s in (p, q)):
            raise CnnGraphError(f"{where}: Expand to {list(target)} does not broadcast with the input's "
                                f"{ops.fmt_shape(have)} ({p} vs {q})")
    if len(target) > len(have):
        raise CnnGraphError(f"{where}: Expand to rank {len(target)} from rank {len(have)} is not supported")
    return v


@handler("Transpose")
def _transpose(imp, node, a, where):
    v = imp.val(node.input[0], where)
    perm = a.get("perm")
    if isinstance(v, Const):
        return Const(np.transpose(np.asarray(v.value), perm))
    if isinstance(v, Pending) and v.kind == "channels_last" and perm == [0, 3, 1, 2]:
        return v.src  # back to N×C×H×W
    if not isinstance(v, Pending) and perm == [0, 2, 3, 1] and len(v.shape) == 4:
        x = imp.act(v, where)
        return Pending("channels_last", x, (x.shape[0], x.shape[2], x.shape[3], x.shape[1]), where, {})
    if isinstance(v, Pending) and v.kind == "blocks" and perm in ([0, 1, 3, 5, 2, 4], [0, 3, 5, 1, 2, 4]):
        # C, r, r first: PixelUnshuffle's channel order c·r² + i·r + j (CRD); r, r, C first: DCR
        shape = tuple(v.shape[k] for k in perm)
        mode = "CRD" if perm[1] == 1 else "DCR"
        return Pending("blocks_moved", v.src, shape, where, dict(block=v.info["block"], mode=mode))
    if isinstance(v, Pending) and v.kind == "radix_view" and perm == [0, 2, 1, 3]:
        return Pending("radix_swapped", v.src, (v.shape[0], v.shape[2], v.shape[1], v.shape[3]), where, v.info)
    if isinstance(v, Pending) and v.kind == "split_channels":
        want = [0, 2, 1] + list(range(3, len(v.shape)))
        if perm == want:
            shape = (v.shape[0], v.shape[2], v.shape[1]) + tuple(v.shape[3:])
            return Pending("swapped", v.src, shape, where, dict(groups=v.info["groups"]))
    raise CnnGraphError(f"{where}: Transpose is supported as the channel swap of a channel shuffle, got perm {perm}")


@handler("ReduceSum")
def _reduce_sum(imp, node, a, where):
    v, axes = imp.val(node.input[0], where), _axes(imp, node, a, where)
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        return Const(np.sum(arr, axis=tuple(axes) if axes else None, keepdims=bool(a.get("keepdims", 1))))
    if isinstance(v, Pending) and v.kind == "rbf_square" and [k % 3 for k in axes or []] == [2] and not a.get("keepdims", 1):
        w = v.info["weight"]
        return imp.new("rbf", {"out_features": int(w.shape[0])}, [v.src], where, v.info.get("prefix"), {"weight": w})
    if isinstance(v, Pending) and v.kind == "split_channels" and len(v.shape) == 5 and \
            [k % 5 for k in axes or []] == [1] and not a.get("keepdims", 1):
        return _radix_sum(imp, v, where)
    raise CnnGraphError(f"{where}: ReduceSum of a computed tensor is supported as the sum over the radix splits "
                        "of a split attention (N×radix×C×H×W over axis 1) or the sum of an RBF layer")


def _radix_sum(imp, v, where):
    """x.sum(dim=1) of N×radix×C×H×W: the sum of the radix channel slices of the source."""
    x = imp.act(v.src, where)
    r, C = int(v.info["groups"]), v.shape[2]
    parts = [imp.new("slice", dict(start=ops.tidy(i * C), stop=ops.tidy((i + 1) * C)), [x], f"{where}/split{i}")
             for i in range(r)]
    return parts[0] if r == 1 else imp.new("add", {}, parts, where)


# ---- element-wise ops
MAX_CHAIN = 32  # element-wise nodes composed before the chain is made a layer (bounds recursion)


def _as_pointwise(v, where, imp):
    """``(source, chain, operand)`` of an element-wise operand, None for a constant."""
    if isinstance(v, Pending):
        v = imp.act(v, where)
    if isinstance(v, Pointwise) and len(v.chain) >= MAX_CHAIN:
        v = imp.act(v, where)
    if isinstance(v, Pointwise):
        return v.src, v.chain, v
    if isinstance(v, Act):
        return v, (), v
    return None


@handler(*UNARY)
def _unary(imp, node, a, where):
    v = imp.val(node.input[0], where)
    f = UNARY[node.op_type](a)
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        if arr.dtype == object and node.op_type in SYMBOLIC_UNARY:
            return Const(_sym_map(SYMBOLIC_UNARY[node.op_type], arr), real=v.real)
        if arr.dtype == object:
            raise CnnGraphError(f"{where}: {node.op_type} of symbolic sizes is not supported")
        return Const(f(arr.astype(np.float64)).astype(arr.dtype))
    src, chain, operand = _as_pointwise(v, where, imp)
    return Pointwise(src, f, where, node.op_type, (operand,), chain + (where,))


@handler("Clip")
def _clip(imp, node, a, where):
    lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
    if _in(node, 1):
        lo = scalar_of(imp.const(node.input[1], where, "min"))
    if _in(node, 2):
        hi = scalar_of(imp.const(node.input[2], where, "max"))
    if lo is None or hi is None:
        raise CnnGraphError(f"{where}: Clip bounds must be single numbers")
    v = imp.val(node.input[0], where)
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        if arr.dtype == object:  # timm's "same" padding: clamp(..., min=0) of symbolic sizes
            lo_, hi_ = (sympy.oo if b == np.inf else -sympy.oo if b == -np.inf else _exact(b) for b in (lo, hi))
            return Const(_sym_map(lambda t: sympy.Min(sympy.Max(t, lo_), hi_), arr), real=v.real)
        return Const(np.clip(arr, lo, hi))
    src, chain, operand = _as_pointwise(v, where, imp)
    return Pointwise(src, lambda t: np.clip(t, lo, hi), where, "Clip", (operand,), chain + (where,))


@handler(*BINARY)
def _binary(imp, node, a, where):
    names = [i for i in node.input if i]
    vals = [imp.val(i, where) for i in names]
    op = node.op_type
    if all(isinstance(v, Const) for v in vals):
        arrs = [np.asarray(v.value) for v in vals]
        real = any(v.real for v in vals)
        if any(x.dtype == object for x in arrs) and (real or op in ("Max", "Min")):
            f = SYMBOLIC_BINARY[op]
            out = arrs[0]
            for other in arrs[1:]:
                out = np.vectorize(lambda p, q: ops.tidy(f(_exact(p), _exact(q))), otypes=[object])(out, other)
            return Const(_check_fold(np.asarray(out, dtype=object), where, *arrs), real=real)
        return Const(_check_fold(_fold_binary(op, arrs, where), where, *arrs), real=real)
    if len(vals) > 2:
        if op != "Sum" or not all(isinstance(v, (Act, Pointwise)) for v in vals):
            raise CnnGraphError(f"{where}: {op} of more than two tensors is supported as a sum of tensors")
        if all(isinstance(v, Act) for v in vals):
            return imp.new("add", {}, vals, where)
        return imp.new("add", {}, [imp.act(v, where) for v in vals], where)
    x, y = vals
    # patterns with a constant tensor (not a number): biases, group norm's affine, RBF
    for first, second in ((x, y), (y, x)):
        if isinstance(second, Const) and (scalar_of(second) is None or _named_tensor(second) or
                                          (op == "Mul" and _channel_shaped(second, first))):
            return _with_const_tensor(imp, node, op, first, second, first is x, where)
    if op == "Mul" and x is y and isinstance(x, Act):  # maybe the x² of a spelled-out LRN
        return Pending("square", x, x.shape, where)
    if isinstance(x, Pending) or isinstance(y, Pending):
        return _binary_pending(imp, node, op, x, y, where)
    return _binary_generic(imp, node, op, x, y, where)


# Shape arithmetic on symbolic sizes (object arrays of sympy expressions): PyTorch's
# (x / s).ceil() of a size cast to float, clamp(min=0), max() (timm's "same" padding).
SYMBOLIC_UNARY = {"Ceil": sympy.ceiling, "Floor": sympy.floor, "Neg": lambda t: -t, "Abs": sympy.Abs}
SYMBOLIC_BINARY = {"Add": lambda p, q: p + q, "Sum": lambda p, q: p + q, "Sub": lambda p, q: p - q,
                   "Mul": lambda p, q: p * q, "Div": lambda p, q: p / q, "Pow": lambda p, q: p ** q,
                   "Max": sympy.Max, "Min": sympy.Min}


def _exact(t):
    """A size or a shape-arithmetic number as an exact sympy value (2.0 -> 2, 0.5 -> 1/2)."""
    if isinstance(t, (float, np.floating)) and math.isfinite(t):
        return sympy.sympify(ops.exact_scale(float(t)), strict=True)
    return sympy.sympify(t, strict=True)


def _sym_map(f, arr):
    return np.asarray(np.vectorize(lambda t: ops.tidy(f(_exact(t))), otypes=[object])(arr), dtype=object)


def _named_tensor(c):
    """A constant of several numbers named as a module's parameter (``stages.0.blocks.0.gamma``):
    a per-channel tensor even when its values are all equal (a freshly initialised layer scale)."""
    return np.size(c.value) > 1 and bool(c.name) and not c.name.startswith(("onnx::", "/")) and "." in c.name


def _channel_shaped(c, v):
    """A C×1×1 / 1×C×1×1 constant (C > 1) multiplying an N×C×H×W tensor: a per-channel tensor
    even when its values are all equal (an exporter writes a number as one value, not C)."""
    shape = np.shape(c.value)
    C = getattr(v, "shape", (None, None))[1] if len(getattr(v, "shape", ())) == 4 else None
    return C is not None and ops.is_int(C) and int(C) > 1 and shape in ((int(C), 1, 1), (1, int(C), 1, 1))


def _fold_binary(op, arrs, where):
    if len(arrs) == 1:
        return arrs[0]
    a, b = arrs[0], arrs[1]
    if op == "Div" and (a.dtype == object or b.dtype == object or np.issubdtype(a.dtype, np.integer)):
        return np.asarray(a // b) if a.dtype != object else np.vectorize(lambda p, q: ops.floordiv(p, q), otypes=[object])(a, b)
    f = BINARY[op]
    out = arrs[0]
    for other in arrs[1:]:
        out = f(out, other)
    return np.asarray(out)


def _per_channel(c, x):
    """A constant shaped C, C×1×1 or 1×C×1×1 (or 1×F for vectors) as a flat per-channel array."""
    arr = np.asarray(c.value, dtype=np.float32)
    C = x.shape[1]
    if not ops.is_int(C):
        return None
    C = int(C)
    if len(x.shape) == 4 and arr.shape in ((C, 1, 1), (1, C, 1, 1)):
        return arr.reshape(C)
    if len(x.shape) == 2 and arr.shape in ((C,), (1, C)):
        return arr.reshape(C)
    return None


def _with_const_tensor(imp, node, op, v, c, v_first, where):
    if isinstance(v, Pending) and v.kind == "unsqueezed" and op == "Sub" and v_first:
        w = np.asarray(c.value, dtype=np.float32)
        if w.ndim == 2 and same_size(w.shape[1], v.src.shape[1]):
            return Pending("rbf_diff", v.src, (v.shape[0], w.shape[0], w.shape[1]), where,
                           dict(weight=w, prefix=strip_weight_suffix(c.name or node.input[1 if v_first else 0])))
    x = imp.act(v, where) if not isinstance(v, Act) else v
    d = imp.g.nodes[x.node]
    single = imp.consumers.get(node.input[0 if v_first else 1], 0) == 1
    per = _per_channel(c, x)
    cname = strip_weight_suffix(c.name) if c.name else None
    if op == "Add" and per is not None and single:
        if ops.get(d["op"]).absorbs_norm and not d["attrs"]["bias"]:  # a per-output-channel add is its bias
            d["attrs"] = {**d["attrs"], "bias": True}
            imp.weights.setdefault(x.node, {})["bias"] = per
            if cname and x.node not in imp.prefix:
                imp.prefix[x.node] = cname
            imp.onnx_name[x.node] = where
            return x
        if d["op"] == "groupnorm" and d["attrs"].get("affine") and imp.weights.get(x.node, {}).get("_bias_open"):
            del imp.weights[x.node]["_bias_open"]
            imp.weights[x.node]["bias"] = per
            imp.onnx_name[x.node] = where
            if cname:
                imp.prefix[x.node] = cname
            return x
    if op == "Mul" and per is not None and single and d["op"] == "groupnorm" and not d["attrs"].get("affine"):
        d["attrs"] = {**d["attrs"], "affine": True}
        imp.weights[x.node] = {"weight": per, "bias": np.zeros_like(per), "_bias_open": True}
        imp.onnx_name[x.node] = where
        if cname:
            imp.prefix[x.node] = cname
        return x
    if op == "Mul" and per is not None and len(x.shape) == 4:
        # γ·x with a named per-channel parameter (ConvNeXt's layer scale): its name is the state_dict's
        owner, _, field = c.name.rpartition(".")
        if not owner or not _named_tensor(c):  # a folded, renamed tensor (onnx::Mul_12): named by its node
            owner, field = None, "weight"
        return imp.new("layer_scale", dict(field=field), [x], where, owner or None, {field: per})
    raise CnnGraphError(f"{where}: {op} of a tensor and a constant tensor {list(np.shape(c.value))} is supported only as "
                        "the bias of a Conv/ConvTranspose/MatMul or the affine part of a group norm")


LRN_STEPS = {"lrn_mean": ("Mul", "alpha"), "lrn_alpha": ("Add", "k"), "lrn_k": ("Pow", "beta")}


def _binary_pending(imp, node, op, x, y, where):
    # LRN spelled out (PyTorch's export): x / (k + α·mean_window(x²))^β
    if isinstance(x, Pending) and x.kind in LRN_STEPS and isinstance(y, Const) and LRN_STEPS[x.kind][0] == op:
        key = LRN_STEPS[x.kind][1]
        kind = {"alpha": "lrn_alpha", "k": "lrn_k", "beta": "lrn_den"}[key]
        return Pending(kind, x.src, x.shape, where, {**x.info, key: short_float(scalar_of(y))})
    if op == "Div" and isinstance(y, Pending) and y.kind == "lrn_den" and x is y.src:
        return imp.new("lrn", {k: y.info[k] for k in ("size", "alpha", "beta", "k")}, [x], where)
    if op == "Mul" and all(isinstance(t, Pending) and t.kind == "split_channels" and len(t.shape) == 5 for t in (x, y)) \
            and x.info["groups"] == y.info["groups"]:
        # split attention: N×radix×C×H×W maps times their N×radix×C×1×1 weights
        a, b = (x, y) if ops.numel(x.shape[3:]) != 1 or ops.numel(y.shape[3:]) == 1 else (y, x)
        m = imp._merge("Mul", [imp.act(a.src, where), imp.act(b.src, where)], where)
        return Pending("split_channels", m, a.shape, where, a.info)
    if op == "Mul":
        for a, b in ((x, y), (y, x)):
            if isinstance(b, Pending) and b.kind == "view" and not isinstance(a, Pending):
                return imp.new("mul", {}, [imp.act(a, where), b.src], where)
            if isinstance(a, Pending) and a.kind == "rbf_diff" and b is a:
                return Pending("rbf_square", a.src, a.shape, where, a.info)
    if op == "Pow" and isinstance(x, Pending) and x.kind == "rbf_diff" and isinstance(y, Const) and scalar_of(y) == 2.0:
        return Pending("rbf_square", x.src, x.shape, where, x.info)
    return _binary_generic(imp, node, op, imp.act(x, where) if isinstance(x, Pending) else x,
                           imp.act(y, where) if isinstance(y, Pending) else y, where)


def _binary_generic(imp, node, op, x, y, where):
    if isinstance(x, Act) and isinstance(y, Act) and op in ("Add", "Sum", "Mul"):
        return imp._merge(op, [x, y], where)
    if isinstance(x, Act) and isinstance(y, Act) and op == "Sub" and x is not y:
        return _difference(imp, x, y, where)
    return _binary_values(imp, node, op, x, y, where)


def _difference(imp, x, y, where):
    """x − y of two tensors: x + (−1)·y (a scale and an add layer)."""
    if not _same_shape(x.shape, y.shape):
        raise CnnGraphError(f"{where}: Sub of tensors of different shapes ({ops.fmt_shape(x.shape)} and "
                            f"{ops.fmt_shape(y.shape)}) is not supported")
    return imp._merge("Sub", [x, y], where)


def _binary_values(imp, node, op, x, y, where):
    """Two tensors make an add / mul layer, unless both are element-wise functions of one
    tensor (x·sigmoid(x)): then the result is one more element-wise function of it."""
    px, py = _as_pointwise(x, where, imp), _as_pointwise(y, where, imp)
    if px is not None and py is not None and px[0] is not py[0]:
        if op in ("Add", "Sum", "Mul"):
            return imp._merge(op, [imp.act(x, where), imp.act(y, where)], where)
        if op == "Sub":
            return _difference(imp, imp.act(x, where), imp.act(y, where), where)
        raise CnnGraphError(f"{where}: {op} of two different tensors is not supported (only add, sub and mul are)")
    src = (px or py)[0]
    chain = tuple(dict.fromkeys((px[1] if px else ()) + (py[1] if py else ()) + (where,)))
    operands = (px[2] if px else x, py[2] if py else y)
    return Pointwise(src, BINARY[op], where, op, operands, chain)


# ---------------------------------------------------------------- constant sub-graphs
# What a node computes when all its inputs are constants, for op types whose handler expects
# a computed tensor (ops that fold constants in their handler, Mul, Reshape, Transpose,
# ReduceMean..., are not repeated here). So weight standardisation (a training-mode batch
# norm over the weight itself, as timm's ScaledStdConv2d exports), scaled and reshaped
# weights fold at import into the weight the layer uses.
def _eval_batchnorm(a, x, scale, bias, mean, var):
    axes = tuple(k for k in range(x.ndim) if k != 1)
    per = (1, -1) + (1,) * (x.ndim - 2)
    x64 = x.astype(np.float64)
    if a.get("training_mode", 0):  # statistics of the tensor itself (biased variance, as ONNX)
        m = float(a.get("momentum", 0.9))
        cur_mean, cur_var = x64.mean(axis=axes), x64.var(axis=axes)
        stats = [mean * m + cur_mean * (1 - m), var * m + cur_var * (1 - m)]
        mean, var = cur_mean, cur_var
    else:
        stats = []
    y = (x64 - np.reshape(mean, per)) / np.sqrt(np.reshape(var, per) + a.get("epsilon", 1e-5))
    y = y * np.reshape(scale, per) + np.reshape(bias, per)
    return [y.astype(x.dtype)] + [s.astype(x.dtype) for s in stats]


def _eval_gemm(a, x, w, c=None):
    x = x.T if a.get("transA", 0) else x
    w = w.T if a.get("transB", 0) else w
    y = a.get("alpha", 1.0) * (x.astype(np.float64) @ w)
    if c is not None:
        y = y + a.get("beta", 1.0) * c
    return y.astype(x.dtype)


def _eval_pad(a, x, pads=None, value=None, axes=None):
    if a.get("mode", "constant") != "constant" or axes is not None:
        raise ValueError("constant padding over all axes only")
    p = [int(v) for v in (a["pads"] if pads is None else pads)]
    if min(p) < 0:
        raise ValueError("negative pads")
    fill = a.get("value", 0.0) if value is None else np.asarray(value).reshape(-1)[0]
    return np.pad(x, list(zip(p[:x.ndim], p[x.ndim:])), constant_values=fill)


def _eval_pool(op_type):
    """MaxPool / AveragePool of a constant N×C×H×W (floor mode, no dilation)."""

    def pool(a, x):
        if x.ndim != 4 or a.get("ceil_mode", 0) or set(a.get("dilations", [1])) != {1} or \
                a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise ValueError("floor-mode pooling of an N×C×H×W constant only")
        kh, kw = a["kernel_shape"]
        sh, sw = a.get("strides", [1, 1])
        t, l, b, r = (a.get("pads") or [0, 0, 0, 0])
        mx = op_type == "MaxPool"
        xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (t, b), (l, r)], constant_values=-np.inf if mx else 0.0)
        win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        if mx:
            return win.max(axis=(-2, -1)).astype(x.dtype)
        count = kh * kw
        if not a.get("count_include_pad", 0):
            ones = np.pad(np.ones(x.shape[2:]), [(t, b), (l, r)])
            count = np.lib.stride_tricks.sliding_window_view(ones, (kh, kw))[::sh, ::sw].sum(axis=(-2, -1))
        return (win.sum(axis=(-2, -1)) / count).astype(x.dtype)

    return pool


CONST_EVAL = {
    "MaxPool": _eval_pool("MaxPool"),
    "AveragePool": _eval_pool("AveragePool"),
    "BatchNormalization": _eval_batchnorm,
    "Pad": _eval_pad,
    "Gemm": _eval_gemm,
    "MatMul": lambda a, x, y: np.matmul(x.astype(np.float64), y).astype(x.dtype),
}


def fold_constants(node, a, where, arrays):
    """The outputs of ``node`` evaluated with NumPy on constant ``arrays`` (its inputs, None
    for an omitted optional one), or None when cnngraph has no evaluator for its op type."""
    f = CONST_EVAL.get(node.op_type)
    if f is None or any(x is not None and (x.dtype == object or not np.issubdtype(x.dtype, np.number))
                        for x in arrays):
        return None
    try:
        with np.errstate(all="ignore"):
            out = f(a, *arrays)
    except (ValueError, TypeError, IndexError) as e:
        raise CnnGraphError(f"{where}: {node.op_type} of constants cannot be evaluated ({e})") from None
    out = out if isinstance(out, list) else [out]
    return [Const(_check_fold(np.asarray(y), where, *[x for x in arrays if x is not None])) for y in out]


@handler("Resize", "Upsample")
def _resize(imp, node, a, where):
    """PyTorch's interpolations as ONNX writes them: nearest with asymmetric coordinates and
    floor rounding, linear with align_corners or (pytorch_)half_pixel; by scales or sizes."""
    x = imp.act(imp.val(node.input[0], where), where)
    mode = a.get("mode", "nearest")
    ctm = a.get("coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize" else "asymmetric")
    if a.get("antialias"):
        raise CnnGraphError(f"{where}: Resize with antialias is not supported")
    if mode == "nearest" and ctm == "asymmetric" and a.get("nearest_mode", "round_prefer_floor") == "floor":
        attrs = dict(mode="nearest", align_corners=False)
    elif mode == "nearest" and node.op_type == "Upsample":
        attrs = dict(mode="nearest", align_corners=False)
    elif mode in ("linear", "bilinear") and ctm in ("align_corners", "pytorch_half_pixel", "half_pixel"):
        attrs = dict(mode="bilinear", align_corners=ctm == "align_corners")
    else:
        raise CnnGraphError(f"{where}: Resize mode {mode!r} with coordinate_transformation_mode {ctm!r}"
                            f"{' and nearest_mode ' + repr(a.get('nearest_mode')) if mode == 'nearest' else ''} "
                            "is not supported (PyTorch's nearest and bilinear are)")
    if a.get("axes") is not None:
        raise CnnGraphError(f"{where}: Resize with an axes attribute is not supported")
    scales_at, sizes_at = (1, None) if node.op_type == "Upsample" or len(node.input) == 2 else (2, 3)
    like = _size_source(imp, _in(node, sizes_at)) if sizes_at is not None else None
    if like is not None:
        return imp.new("resize", attrs, [x, like], where)
    if sizes_at is not None and _in(node, sizes_at):
        sizes = list(np.asarray(imp.const(node.input[sizes_at], where, "Resize sizes").value).reshape(-1))
        if len(sizes) != 4:
            raise CnnGraphError(f"{where}: Resize sizes {sizes} must give N, C, H, W")
        attrs["output_size"] = (ops.tidy(sympy.sympify(sizes[2], strict=True)), ops.tidy(sympy.sympify(sizes[3], strict=True)))
    else:
        scales, _ = _float_const(imp, node, scales_at, where, "Resize scales")
        scales = [float(v) for v in scales.reshape(-1)]
        if len(scales) != 4 or scales[0] != 1 or scales[1] != 1:
            raise CnnGraphError(f"{where}: Resize scales {scales} must be 1, 1, s_h, s_w")
        attrs["scale"] = (ops.exact_scale(scales[2]), ops.exact_scale(scales[3]))
    return imp.new("resize", attrs, [x], where)


def _size_source(imp, name):
    """The tensor whose H×W a Resize's sizes copy, when they are Concat(…, Slice(Shape(t), 2, 4))
    (cnngraph's and PyTorch's exports of interpolate(x, size=t.shape[-2:])): then the resize
    keeps following t at any input size."""
    if not name:
        return None
    if not hasattr(imp, "producers"):
        imp.producers = {o: n for n in imp.m.graph.node for o in n.output}
    cat = imp.producers.get(name)
    if cat is None or cat.op_type != "Concat" or len(cat.input) != 2:
        return None
    sl = imp.producers.get(cat.input[1])
    if sl is None or sl.op_type != "Slice" or len(sl.input) < 3:
        return None
    shape = imp.producers.get(sl.input[0])
    try:
        starts = [int(v) for v in np.asarray(imp.values[sl.input[1]].value).reshape(-1)]
        ends = [int(v) for v in np.asarray(imp.values[sl.input[2]].value).reshape(-1)]
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
    if shape is None or shape.op_type != "Shape" or starts != [2] or ends[0] < 4 or len(sl.input) > 3 and sl.input[3]:
        return None
    src = imp.values.get(shape.input[0])
    return src if isinstance(src, Act) and len(src.shape) == 4 else None
