"""Export a graph to ONNX: standard ops only, initializers under their state_dict names.

Every op of the registry maps to standard ONNX ops (opset 13 to 21). The main ONNX node of a
layer carries the layer's name, and so does its output tensor; helper nodes of a
decomposition (SiLU = x·sigmoid(x), GELU via Erf, group norm via InstanceNormalization,
channel shuffle via Reshape/Transpose) are named ``layer/part``. The batch is a symbolic
dimension (``N``) unless given as a number; symbolic input sizes become dim_params too.

>>> from cnngraph import zoo
>>> from cnngraph.compiler import weights
>>> g = zoo.build("lenet5")
>>> m = export(g, weights.init(g, seed=0))
>>> [n.op_type for n in m.graph.node][:3], m.graph.input[0].type.tensor_type.shape.dim[0].dim_param
(['Conv', 'Relu', 'MaxPool'], 'N')
"""
from __future__ import annotations

import numpy as np
import onnx
import sympy
from onnx import TensorProto, helper

from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.graph import as_graph, outputs, topo_order
from cnngraph.compiler.weights import check as check_weights
from cnngraph.compiler.weights import init as init_weights

MIN_OPSET, MAX_OPSET = 13, 21
PRODUCER = "cnngraph"


def _int(node, what, v):
    if not ops.is_int(v):
        raise CnnGraphError(f"{node}: {what} must be a number to export, got {v} (substitute the symbols first)")
    return int(v)


def _ints(node, what, vs):
    return [_int(node, what, v) for v in vs]


def _dim(v):
    """An ONNX dimension: a number, a symbol's name, or unnamed for a derived expression."""
    if ops.is_int(v):
        return int(v)
    if isinstance(v, sympy.Symbol):
        return v.name
    if isinstance(v, str):
        return v
    return None


class _Builder:
    """Collects nodes and initializers; names helper tensors ``layer/part``.

    Initializers are written straight into the model (one copy of the weights, not three)."""

    def __init__(self, opset):
        self.opset = opset
        self.model = onnx.ModelProto()
        self.nodes, self.names = [], set()

    def init(self, name, array):
        if name in self.names:
            raise CnnGraphError(f"{name}: two initializers with this name")
        self.names.add(name)
        a = np.asarray(array, order="C")
        t = self.model.graph.initializer.add()
        t.name = name
        t.data_type = helper.np_dtype_to_tensor_dtype(a.dtype)
        t.dims.extend(a.shape)
        t.raw_data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        return name

    def const(self, name, values, dtype=np.int64):
        return self.init(name, np.asarray(values, dtype=dtype))

    def scalar(self, name, value: float):
        """A float32 scalar initializer (the registry's ONNX emitters use it)."""
        return self.init(name, np.array(value, np.float32))

    def node(self, op, inputs, output, name, **attrs):
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=name, **attrs))
        return output


def _f32(ws, key):
    return np.asarray(ws[key], dtype=np.float32)


def _norm_scale_bias(b, n, a, ws, shape, affine):
    """Scale and shift inputs of a norm: the state_dict tensors, or 1 and 0 when not affine."""
    if affine:
        return b.init(f"{n}.weight", _f32(ws, f"{n}.weight")), b.init(f"{n}.bias", _f32(ws, f"{n}.bias"))
    return (b.init(f"{n}/unit_scale", np.ones(shape, np.float32)), b.init(f"{n}/zero_shift", np.zeros(shape, np.float32)))


def _window_attrs(n, a, with_dilation=True):
    out = dict(kernel_shape=_ints(n, "kernel", a["kernel"]), strides=_ints(n, "stride", a["stride"]),
               pads=_ints(n, "padding", [a["padding"][i] for i in (0, 1, 2, 3)]))
    d = _ints(n, "dilation", a["dilation"])
    if with_dilation and d != [1, 1]:
        out["dilations"] = d
    return out


def _adaptive(b, n, x, a, in_shape, kind):
    """Adaptive pooling: global pooling, a uniform pooling, or per-window pooling + concat."""
    C, H, W = in_shape
    oh, ow = _ints(n, "output_size", a["output_size"])
    if (oh, ow) == (1, 1):
        return b.node("GlobalAveragePool" if kind == "avg" else "GlobalMaxPool", [x], n, n)
    H, W = _int(n, "height", H), _int(n, "width", W)
    pool = "AveragePool" if kind == "avg" else "MaxPool"
    if H % oh == 0 and W % ow == 0:
        kh, kw = H // oh, W // ow
        return b.node(pool, [x], n, n, kernel_shape=[kh, kw], strides=[kh, kw])
    # PyTorch's windows: [floor(i·L/o), ceil((i+1)·L/o)); pooling is separable over H then W.
    y = x
    for axis, L, o, tag in ((2, H, oh, "h"), (3, W, ow, "w")):
        parts = []
        for i in range(o):
            s, e = (i * L) // o, -(-((i + 1) * L) // o)
            st, en, ax = (b.const(f"{n}/{tag}{i}/{k}", [v]) for k, v in (("start", s), ("end", e), ("axis", axis)))
            piece = b.node("Slice", [y, st, en, ax], f"{n}/{tag}{i}/slice", f"{n}/{tag}{i}/slice")
            kernel = [e - s, 1] if axis == 2 else [1, e - s]
            parts.append(b.node(pool, [piece], f"{n}/{tag}{i}", f"{n}/{tag}{i}", kernel_shape=kernel, strides=[1, 1]))
        out = n if axis == 3 else f"{n}/rows"
        y = b.node("Concat", parts, out, out, axis=axis)
    return y


def _export_node(b, g, n, ws):
    out = _export_layer(b, g, n, ws)
    a = g.nodes[n]["attrs"]
    if "inplace" in a:  # ONNX has no notion of it; the importer reads it back (memory counts)
        b.nodes[-1].doc_string = "cnngraph: in place" if a["inplace"] else "cnngraph: not in place"
    return out


def _export_layer(b, g, n, ws):
    d = g.nodes[n]
    op, a, ins = d["op"], d["attrs"], list(d["inputs"])
    shapes = [g.nodes[i]["shape"] for i in ins]
    entry = ops.get(op)
    if entry.activation is not None:  # the registry's emitter; a weight (PReLU's slopes) as an initializer
        w = {"weight": b.init(f"{n}.weight", _f32(ws, f"{n}.weight"))} if entry.weights else {}
        return entry.activation.onnx(b, n, ins[0], {**a, **w, "in_shape": shapes[0]})
    if op not in EMITTERS:
        raise CnnGraphError(f"{n}: op {op!r} has no ONNX export yet")
    return EMITTERS[op](b, n, ins, shapes, a, ws)


def _conv(b, n, ins, shapes, a, ws):
    _int(n, "in_channels", shapes[0][0])  # clear errors for symbolic sizes
    _int(n, "out_channels", a["out_channels"])
    w = b.init(f"{n}.weight", _f32(ws, f"{n}.weight"))
    inputs = [ins[0], w] + ([b.init(f"{n}.bias", _f32(ws, f"{n}.bias"))] if a["bias"] else [])
    attrs = _window_attrs(n, a)
    attrs["dilations"] = _ints(n, "dilation", a["dilation"])
    return b.node("Conv", inputs, n, n, group=_int(n, "groups", a["groups"]), **attrs)


def _conv_transpose(b, n, ins, shapes, a, ws):
    _int(n, "in_channels", shapes[0][0])
    _int(n, "out_channels", a["out_channels"])
    w = b.init(f"{n}.weight", _f32(ws, f"{n}.weight"))
    inputs = [ins[0], w] + ([b.init(f"{n}.bias", _f32(ws, f"{n}.bias"))] if a["bias"] else [])
    attrs = _window_attrs(n, a)
    attrs["dilations"] = _ints(n, "dilation", a["dilation"])
    op = _ints(n, "output_padding", a["output_padding"])
    pads, strides = attrs["pads"], attrs["strides"]
    for ax in range(2):
        # ONNX Runtime refuses an output padding not below the stride (PyTorch allows one below the
        # dilation): cropping less at the end gives the same rows
        if op[ax] >= strides[ax]:
            take = min(op[ax], pads[2 + ax])
            op[ax], pads[2 + ax] = op[ax] - take, pads[2 + ax] - take
    if op != [0, 0]:
        attrs["output_padding"] = op
    return b.node("ConvTranspose", inputs, n, n, group=_int(n, "groups", a["groups"]), **attrs)


def _linear(b, n, ins, shapes, a, ws):
    inputs = [ins[0], b.init(f"{n}.weight", _f32(ws, f"{n}.weight"))]
    if a["bias"]:
        inputs.append(b.init(f"{n}.bias", _f32(ws, f"{n}.bias")))
    return b.node("Gemm", inputs, n, n, transB=1)


def _batchnorm(b, n, ins, shapes, a, ws):
    c = _int(n, "channels", shapes[0][0])
    scale, shift = _norm_scale_bias(b, n, a, ws, (c,), a["affine"])
    mean = b.init(f"{n}.running_mean", _f32(ws, f"{n}.running_mean"))
    var = b.init(f"{n}.running_var", _f32(ws, f"{n}.running_var"))
    return b.node("BatchNormalization", [ins[0], scale, shift, mean, var], n, n, epsilon=float(a["eps"]))


def _instancenorm(b, n, ins, shapes, a, ws):
    c = _int(n, "channels", shapes[0][0])
    scale, shift = _norm_scale_bias(b, n, a, ws, (c,), a["affine"])
    return b.node("InstanceNormalization", [ins[0], scale, shift], n, n, epsilon=float(a["eps"]))


def _layernorm(b, n, ins, shapes, a, ws):
    if b.opset < 17:
        raise CnnGraphError(f"{n}: layernorm needs opset 17 or later (LayerNormalization), got opset {b.opset}")
    shape = tuple(_ints(n, "shape", shapes[0]))
    scale, shift = _norm_scale_bias(b, n, a, ws, shape, a["affine"])
    return b.node("LayerNormalization", [ins[0], scale, shift], n, n, axis=1, epsilon=float(a["eps"]))


def _mul(b, n, ins, shapes, a, ws):
    s = ins[1]
    if len(shapes[1]) < len(shapes[0]):
        axes = list(range(1 + len(shapes[1]), 1 + len(shapes[0])))
        s = b.node("Unsqueeze", [s, b.const(f"{n}/axes", axes)], f"{n}/unsqueeze", f"{n}/unsqueeze")
    return b.node("Mul", [ins[0], s], n, n)


def _channel_shuffle(b, n, ins, shapes, a, ws):
    # (N, g, C/g, H·W) -> swap the two channel axes -> back to (N, C, H, W); H·W stays -1
    # so symbolic sizes export too.
    x = ins[0]
    grp, c = _int(n, "groups", a["groups"]), _int(n, "channels", shapes[0][0])
    shape = b.node("Shape", [x], f"{n}/shape", f"{n}/shape")
    t = b.node("Reshape", [x, b.const(f"{n}/grouped", [0, grp, c // grp, -1])], f"{n}/reshape", f"{n}/reshape")
    t = b.node("Transpose", [t], f"{n}/transpose", f"{n}/transpose", perm=[0, 2, 1, 3])
    return b.node("Reshape", [t, shape], n, n)


def _space_to_depth(b, n, ins, shapes, a, ws):
    """SpaceToDepth is DCR only: CRD (PixelUnshuffle) is SpaceToDepth followed by the channel
    shuffle that takes (i·r + j)·C + c to c·r² + i·r + j."""
    r = _int(n, "block", a["block"])
    if a["mode"] == "DCR":
        return b.node("SpaceToDepth", ins, n, n, blocksize=r)
    t = b.node("SpaceToDepth", ins, f"{n}/dcr", f"{n}/dcr", blocksize=r)
    c = _int(n, "channels", shapes[0][0])
    shape = b.node("Shape", [t], f"{n}/shape", f"{n}/shape")
    t = b.node("Reshape", [t, b.const(f"{n}/grouped", [0, r * r, c, -1])], f"{n}/reshape", f"{n}/reshape")
    t = b.node("Transpose", [t], f"{n}/transpose", f"{n}/transpose", perm=[0, 2, 1, 3])
    return b.node("Reshape", [t, shape], n, n)


def _slice(b, n, ins, shapes, a, ws):
    start, stop = _int(n, "start", a["start"]), _int(n, "stop", a["stop"])
    return b.node("Slice", [ins[0], b.const(f"{n}/start", [start]), b.const(f"{n}/stop", [stop]),
                            b.const(f"{n}/axis", [1])], n, n)


def _pad_channels(b, n, ins, shapes, a, ws):
    x = ins[0]
    sh, sw = _ints(n, "stride", a["stride"])
    before, after = _int(n, "before", a["before"]), _int(n, "after", a["after"])
    if (sh, sw) != (1, 1):
        x = b.node("Slice", [x, b.const(f"{n}/starts", [0, 0]), b.const(f"{n}/ends", [2**62, 2**62]),
                             b.const(f"{n}/axes", [2, 3]), b.const(f"{n}/steps", [sh, sw])],
                   f"{n}/subsample", f"{n}/subsample")
    return b.node("Pad", [x, b.const(f"{n}/pads", [0, before, 0, 0, 0, after, 0, 0])], n, n)


def _pad2d(b, n, ins, shapes, a, ws):
    t, l, bo, r = _ints(n, "padding", a["padding"])
    mode = {"mode": "reflect"} if a.get("mode", "constant") == "reflect" else {}
    return b.node("Pad", [ins[0], b.const(f"{n}/pads", [0, 0, t, l, 0, 0, bo, r])], n, n, **mode)


def _rbf(b, n, ins, shapes, a, ws):
    # Σ_j (x_j − w_ij)²: (N, 1, F) − (O, F) broadcasts to (N, O, F), squared, summed over F.
    u = b.node("Unsqueeze", [ins[0], b.const(f"{n}/axis1", [1])], f"{n}/unsqueeze", f"{n}/unsqueeze")
    d = b.node("Sub", [u, b.init(f"{n}.weight", _f32(ws, f"{n}.weight"))], f"{n}/diff", f"{n}/diff")
    d = b.node("Mul", [d, d], f"{n}/square", f"{n}/square")
    return b.node("ReduceSum", [d, b.const(f"{n}/axis2", [2])], n, n, keepdims=0)


def _layernorm2d(b, n, ins, shapes, a, ws):
    """Over the channels: to channels last and back, as PyTorch exports ConvNeXt's LayerNorm2d."""
    t = b.node("Transpose", ins, f"{n}/to_channels_last", f"{n}/to_channels_last", perm=[0, 2, 3, 1])
    scale, bias = _norm_scale_bias(b, n, a, ws, (_int(n, "channels", shapes[0][0]),), a["affine"])
    y = b.node("LayerNormalization", [t, scale, bias], f"{n}/norm", f"{n}/norm", axis=-1, epsilon=float(a["eps"]))
    return b.node("Transpose", [y], n, n, perm=[0, 3, 1, 2])


def _layer_scale(b, n, ins, shapes, a, ws):
    f = a["field"]
    return b.node("Mul", [ins[0], b.init(f"{n}.{f}", _f32(ws, f"{n}.{f}").reshape(-1, 1, 1))], n, n)


# The exporter's table: op -> emitter(builder, name, inputs, input shapes, attrs, weights) returning
# the output name. Activations come from the registry (their ``onnx`` emitter).
EMITTERS = {
    "conv2d": _conv,
    "conv_transpose2d": _conv_transpose,
    "maxpool2d": lambda b, n, ins, shapes, a, ws: b.node("MaxPool", ins, n, n, ceil_mode=int(bool(a["ceil_mode"])),
                                                         **_window_attrs(n, a)),
    "avgpool2d": lambda b, n, ins, shapes, a, ws: b.node(
        "AveragePool", ins, n, n, ceil_mode=int(bool(a["ceil_mode"])), count_include_pad=int(bool(a["count_include_pad"])),
        **_window_attrs(n, a, False)),
    "adaptive_avgpool2d": lambda b, n, ins, shapes, a, ws: _adaptive(b, n, ins[0], a, shapes[0], "avg"),
    "adaptive_maxpool2d": lambda b, n, ins, shapes, a, ws: _adaptive(b, n, ins[0], a, shapes[0], "max"),
    "flatten": lambda b, n, ins, shapes, a, ws: b.node("Flatten", ins, n, n, axis=1),
    "linear": _linear,
    "softmax": lambda b, n, ins, shapes, a, ws: b.node("Softmax", ins, n, n, axis=1),
    "log_softmax": lambda b, n, ins, shapes, a, ws: b.node("LogSoftmax", ins, n, n, axis=1),
    "batchnorm": _batchnorm,
    "instancenorm": _instancenorm,
    "layernorm": _layernorm,
    "groupnorm": lambda b, n, ins, shapes, a, ws: _groupnorm(b, n, ins[0], a, shapes[0], ws),
    "lrn": lambda b, n, ins, shapes, a, ws: _lrn(b, n, ins[0], a),
    "dropout": lambda b, n, ins, shapes, a, ws: b.node("Dropout", [ins[0], b.scalar(f"{n}/ratio", float(a["p"]))], n, n),
    "identity": lambda b, n, ins, shapes, a, ws: b.node("Identity", ins, n, n),
    "add": lambda b, n, ins, shapes, a, ws: b.node("Add" if len(ins) == 2 else "Sum", ins, n, n),
    "mul": _mul,
    "concat": lambda b, n, ins, shapes, a, ws: b.node("Concat", ins, n, n, axis=1),
    "channel_shuffle": _channel_shuffle,
    "slice": _slice,
    "depth_to_space": lambda b, n, ins, shapes, a, ws: b.node("DepthToSpace", ins, n, n, blocksize=int(a["block"]),
                                                             mode=a["mode"]),
    "space_to_depth": _space_to_depth,
    "scale": lambda b, n, ins, shapes, a, ws: _scale(b, n, ins[0], a),
    "clip": lambda b, n, ins, shapes, a, ws: b.node(
        "Clip", [ins[0], "" if a["low"] is None else b.scalar(f"{n}/min", float(a["low"])),
                 "" if a["high"] is None else b.scalar(f"{n}/max", float(a["high"]))], n, n),
    "pad_channels": _pad_channels,
    "pad2d": _pad2d,
    "rbf": _rbf,
    "layernorm2d": _layernorm2d,
    "layer_scale": _layer_scale,
    "resize": lambda b, n, ins, shapes, a, ws: _resize(b, n, ins, a),
    "radix_softmax": lambda b, n, ins, shapes, a, ws: _radix_softmax(b, n, ins[0], a),
    "blurpool2d": lambda b, n, ins, shapes, a, ws: _blurpool(b, n, ins[0], shapes[0], a),
    "channel_conv": lambda b, n, ins, shapes, a, ws: _channel_conv(b, n, ins[0], a, ws),
}


def _channel_conv(b, n, x, a, ws):
    """As PyTorch exports ECA: the N×C vector viewed N×1×C, a 1-D Conv, flattened back."""
    k, p = _int(n, "size", a["size"]), _int(n, "pad", a["pad"])
    t = b.node("Unsqueeze", [x, b.const(f"{n}/axis1", [1])], f"{n}/unsqueeze", f"{n}/unsqueeze")
    t = b.node("Conv", [t, b.init(f"{n}.weight", _f32(ws, f"{n}.weight"))], f"{n}/conv", f"{n}/conv",
               kernel_shape=[k], pads=[p, p], strides=[1], dilations=[1], group=1)
    return b.node("Flatten", [t], n, n, axis=1)


def _blurpool(b, n, x, shape, a):
    """A depthwise Conv whose weight is the fixed binomial filter (a constant, not a parameter),
    as PyTorch exports timm's BlurPool2d."""
    (kh, kw), s, C = _ints(n, "kernel", a["kernel"]), _ints(n, "stride", a["stride"]), _int(n, "channels", shape[0])
    f = np.broadcast_to(ops.blur_filter(kh, kw).astype(np.float32), (C, 1, kh, kw))
    return b.node("Conv", [x, b.init(f"{n}/blur_filter", f)], n, n, group=C, kernel_shape=[kh, kw], strides=list(s),
                  pads=[0, 0, 0, 0])


def _scale(b, n, x, a):
    """factor·x + shift: a Mul, then an Add when there is a shift."""
    if not a["shift"]:
        return b.node("Mul", [x, b.scalar(f"{n}/factor", float(a["factor"]))], n, n)
    if a["factor"] != 1:
        x = b.node("Mul", [x, b.scalar(f"{n}/factor", float(a["factor"]))], f"{n}/mul", f"{n}/mul")
    return b.node("Add", [x, b.scalar(f"{n}/shift", float(a["shift"]))], n, n)


def _radix_softmax(b, n, x, a):
    """As PyTorch exports timm's RadixSoftmax: Reshape (N, groups, radix, -1), Transpose,
    Softmax over the radix axis, Reshape back to the input's shape."""
    r, g = _int(n, "radix", a["radix"]), _int(n, "groups", a["groups"])
    shape = b.node("Shape", [x], f"{n}/shape", f"{n}/shape")
    t = b.node("Reshape", [x, b.const(f"{n}/grouped", [0, g, r, -1])], f"{n}/reshape", f"{n}/reshape")
    t = b.node("Transpose", [t], f"{n}/transpose", f"{n}/transpose", perm=[0, 2, 1, 3])
    t = b.node("Softmax", [t], f"{n}/softmax", f"{n}/softmax", axis=1)
    return b.node("Reshape", [t, shape], n, n)


def _resize(b, n, ins, a):
    """ONNX Resize with PyTorch's coordinate rules: nearest = asymmetric + floor, bilinear =
    linear with align_corners or pytorch_half_pixel. A scale is written as scales; a size
    (or a second input's H×W) as sizes = the input's N, C and the target H, W."""
    x = ins[0]
    if a["mode"] == "nearest":
        modes = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        modes = dict(mode="linear", coordinate_transformation_mode="align_corners" if a.get("align_corners")
                     else "pytorch_half_pixel")
    roi = b.init(f"{n}/roi", np.zeros(0, np.float32))
    if len(ins) == 1 and a.get("output_size") is None:
        scales = b.init(f"{n}/scales", np.asarray([1, 1, *(float(v) for v in a["scale"])], np.float32))
        return b.node("Resize", [x, roi, scales], n, n, **modes)
    nc = b.node("Shape", [x], f"{n}/shape", f"{n}/shape")
    nc = b.node("Slice", [nc, b.const(f"{n}/0", [0]), b.const(f"{n}/2", [2])], f"{n}/nc", f"{n}/nc")
    if len(ins) == 2:
        hw = b.node("Shape", [ins[1]], f"{n}/like_shape", f"{n}/like_shape")
        hw = b.node("Slice", [hw, b.const(f"{n}/2b", [2]), b.const(f"{n}/4", [4])], f"{n}/hw", f"{n}/hw")
    else:
        hw = b.const(f"{n}/hw", _ints(n, "output size", a["output_size"]))
    sizes = b.node("Concat", [nc, hw], f"{n}/sizes", f"{n}/sizes", axis=0)
    return b.node("Resize", [x, roi, "", sizes], n, n, **modes)


def _groupnorm(b, n, x, a, in_shape, ws):
    # PyTorch's own export: reshape to (N, G, rest), instance-normalize, reshape back, then the
    # per-channel affine.
    G = _int(n, "num_groups", a["num_groups"])
    _int(n, "channels", in_shape[0])
    shape = b.node("Shape", [x], f"{n}/shape", f"{n}/shape")
    t = b.node("Reshape", [x, b.const(f"{n}/grouped", [0, G, -1])], f"{n}/reshape", f"{n}/reshape")
    t = b.node("InstanceNormalization", [t, b.init(f"{n}/unit_scale", np.ones(G, np.float32)),
                                         b.init(f"{n}/zero_shift", np.zeros(G, np.float32))],
               f"{n}/instancenorm", f"{n}/instancenorm", epsilon=float(a["eps"]))
    if not a["affine"]:
        return b.node("Reshape", [t, shape], n, n)
    t = b.node("Reshape", [t, shape], f"{n}/unreshape", f"{n}/unreshape")
    # γ, β keep their state_dict shape (C,); Unsqueeze makes them broadcast as C×1×1.
    axes = b.const(f"{n}/axes", list(range(1, len(in_shape))))
    w = b.node("Unsqueeze", [b.init(f"{n}.weight", _f32(ws, f"{n}.weight")), axes], f"{n}/weight", f"{n}/weight")
    bias = b.node("Unsqueeze", [b.init(f"{n}.bias", _f32(ws, f"{n}.bias")), axes], f"{n}/bias", f"{n}/bias")
    t = b.node("Mul", [t, w], f"{n}/scale", f"{n}/scale")
    return b.node("Add", [t, bias], n, n)


def _lrn(b, n, x, a):
    size = _int(n, "size", a["size"])
    alpha, beta, k = float(a["alpha"]), float(a["beta"]), float(a["k"])
    if size % 2:
        return b.node("LRN", [x], n, n, size=size, alpha=alpha, beta=beta, bias=k)
    # ONNX's LRN window is [c − (size−1)//2, c + ceil((size−1)/2)], PyTorch's
    # [c − size//2, c + (size−1)//2]: they differ for an even size, which ONNX Runtime does
    # not run anyway. Spell PyTorch's out as its own exporter does: the mean of x² over a
    # zero-padded channel window, x / (k + α·mean)^β.
    sq = b.node("Mul", [x, x], f"{n}/square", f"{n}/square")
    u = b.node("Unsqueeze", [sq, b.const(f"{n}/axis1", [1])], f"{n}/unsqueeze", f"{n}/unsqueeze")
    pads = b.const(f"{n}/pads", [0, 0, size // 2, 0, 0, 0, 0, (size - 1) // 2, 0, 0])
    p = b.node("Pad", [u, pads], f"{n}/pad", f"{n}/pad")
    m = b.node("AveragePool", [p], f"{n}/window", f"{n}/window", kernel_shape=[size, 1, 1])
    m = b.node("Squeeze", [m, b.const(f"{n}/axis1b", [1])], f"{n}/squeeze", f"{n}/squeeze")
    m = b.node("Mul", [m, b.init(f"{n}/alpha", np.array(alpha, np.float32))], f"{n}/alpha_mul", f"{n}/alpha_mul")
    m = b.node("Add", [m, b.init(f"{n}/k", np.array(k, np.float32))], f"{n}/k_add", f"{n}/k_add")
    m = b.node("Pow", [m, b.init(f"{n}/beta", np.array(beta, np.float32))], f"{n}/pow", f"{n}/pow")
    return b.node("Div", [x, m], n, n)


def _value_info(name, shape, batch):
    dims = [batch] + [_dim(s) for s in shape]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def export(g, weights: dict | None = None, path=None, batch="N", opset: int = 17,
           check: bool = True) -> onnx.ModelProto:
    """The graph as an ONNX model (float32), saved to ``path`` when given.

    ``weights``: state_dict names -> arrays; ``None`` exports seeded He-initialised weights.
    ``batch``: a dim_param name (default ``N``) or a number. Symbolic input sizes (``H``,
    ``W``) become dim_params, so the model accepts any size the graph does.
    """
    g = as_graph(g)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise CnnGraphError(f"opset must be between {MIN_OPSET} and {MAX_OPSET}, got {opset}")
    if weights is None:
        weights = init_weights(g, seed=0)
    check_weights(g, weights, strict=False)
    if isinstance(batch, str) and batch.isdigit():
        batch = int(batch)
    b = _Builder(opset)
    for n in topo_order(g):
        if g.nodes[n]["op"] != "input":
            _export_node(b, g, n, weights)
    inputs = [_value_info(i, g.nodes[i]["shape"], batch) for i in g.graph["inputs"]]
    outs = [_value_info(o, g.nodes[o]["shape"], batch) for o in outputs(g)]
    for o in outputs(g):
        if g.nodes[o]["op"] == "input":
            raise CnnGraphError(f"{o}: an input cannot also be an output in ONNX")
    model = b.model
    model.graph.name = g.graph.get("name") or "cnngraph"
    model.graph.node.extend(b.nodes)
    model.graph.input.extend(inputs)
    model.graph.output.extend(outs)
    model.producer_name = PRODUCER
    model.opset_import.add(domain="", version=opset)
    # The oldest IR version that has the opset keeps the file loadable by older runtimes.
    model.ir_version = min(onnx.IR_VERSION, 8 if opset <= 18 else 9 if opset <= 20 else 10)
    data = None
    if check:
        data = model.SerializeToString()
        try:
            onnx.checker.check_model(data, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            raise CnnGraphError(f"{g.graph.get('name', '')}: exported ONNX model does not validate: {e}") from None
    if path is not None:
        from cnngraph.io.files import write_bytes

        write_bytes(path, data if data is not None else model.SerializeToString())
    return model


def save(model: onnx.ModelProto, path) -> None:
    """Write the model as a single file (no external data; 2 GB protobuf limit)."""
    from cnngraph.io.files import write_bytes

    write_bytes(path, model.SerializeToString())
