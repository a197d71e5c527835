"""The cnngraph DSL: write a network as Python calls, in the style of Keras' functional API.

Each layer call takes and returns a symbolic :class:`Tensor`; blocks are plain functions
(optionally decorated with :func:`block` so tables and diagrams can group them) and stages
are loops inside :func:`scope`. Every size may be an int or a sympy expression.

>>> from cnngraph.dsl import Net, conv2d, relu, maxpool2d, flatten, linear
>>> from cnngraph.ir.symbols import H, W
>>> net = Net("tiny")
>>> x = net.input(3, H, W)
>>> x = relu(conv2d(x, 16, 3, padding=1))
>>> x = maxpool2d(x, 2)
>>> x.shape
(16, floor(H/2), floor(W/2))
>>> g = net.graph
>>> sorted(g.nodes)
['conv1', 'input', 'maxpool1', 'relu1']
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from dataclasses import dataclass

from cnngraph.ir import graph as _graph
from cnngraph.ir.errors import CnnGraphError, ShapeError
from cnngraph.ir import ops
from cnngraph.ir.graph import CnnGraph
from cnngraph.ir.ops import exact_scale

__all__ = [
    "Net", "Tensor", "scope", "block",
    "conv2d", "maxpool2d", "avgpool2d", "adaptive_avgpool2d", "adaptive_maxpool2d", "global_avgpool",
    "flatten", "linear", "relu", "relu6", "tanh", "sigmoid", "silu", "hardswish", "hardsigmoid", "gelu",
    "softmax", "log_softmax", "batchnorm", "layernorm", "groupnorm", "instancenorm", "lrn", "dropout", "identity",
    "add", "mul", "concat", "channel_shuffle", "channel_slice", "chunk", "pad2d", "scale", "clip", "pad_channels", "rbf",
    "depth_to_space", "space_to_depth",
    "leaky_relu", "elu", "mish", "softplus", "gelu_tanh", "prelu",
    "resize", "layernorm2d", "layer_scale", "radix_softmax", "conv_transpose2d", "blurpool2d", "channel_conv",
]

_SCOPES: contextvars.ContextVar[tuple] = contextvars.ContextVar("cnngraph_scopes", default=())


@contextlib.contextmanager
def scope(name, kind: str = "block"):
    """Group the layers created inside: their names get the prefix ``name.``.

    ``kind`` says what the group is (``stage``, ``block``, ``BasicBlock``, ``Inception``...);
    tables total per group and diagrams draw each group as a cluster.
    """
    token = _SCOPES.set(_SCOPES.get() + ((str(name), kind),))
    try:
        yield
    finally:
        _SCOPES.reset(token)


def block(kind: str):
    """Decorate a block function so each call is a group: ``basic_block(x, 64, name="0")``.

    The ``name`` keyword (default: kind and a counter) becomes the scope name.
    """

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, name=None, **kwargs):
            if name is None:
                net = _find_net(args, kwargs)
                name = net._auto(kind)
            with scope(name, kind):
                return fn(*args, **kwargs)

        return call

    return wrap


def _find_net(args, kwargs):
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, Tensor):
            return a.net
        if isinstance(a, (list, tuple)) and a and isinstance(a[0], Tensor):
            return a[0].net
    raise CnnGraphError("a block needs at least one Tensor argument")


@dataclass(frozen=True, eq=False)
class Tensor:
    """A symbolic tensor: the output of one layer of a :class:`Net`."""

    net: "Net"
    name: str

    @property
    def shape(self) -> tuple:
        return self.net.g.nodes[self.name]["shape"]

    @property
    def channels(self):
        return self.shape[0]

    C = channels

    @property
    def H(self):
        return self.shape[1]

    @property
    def W(self):
        return self.shape[2]

    def __add__(self, other):
        return add(self, other)

    def __mul__(self, other):
        return mul(self, other)

    def __repr__(self):
        return f"Tensor({self.name!r}, {'×'.join(map(str, self.shape))})"


class Net:
    """A network under construction; ``net.graph`` is the finished graph.

    ``strict=True`` makes a stride that does not fit exactly an error instead of a warning.
    """

    def __init__(self, name: str = "net", strict: bool = False, **meta):
        self.g = CnnGraph(name=name, inputs=[], outputs=[], notes=[], **meta)
        self.strict = strict
        self._counts: dict = {}

    def _auto(self, base: str) -> str:
        key = (_SCOPES.get(), base)
        self._counts[key] = self._counts.get(key, 0) + 1
        return f"{base}{self._counts[key]}"

    def _qualify(self, local: str) -> tuple[str, tuple]:
        path = _SCOPES.get()
        return ".".join([p for p, _ in path] + [local]), path

    def input(self, *shape, name: str = "input") -> Tensor:
        """Declare an input of per-sample shape ``(C, H, W)`` or ``(F,)``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        _graph.add_node(self.g, name, "input", {"shape": tuple(shape)}, strict=self.strict)
        return Tensor(self, name)

    def layer(self, op: str, inputs, attrs: dict, name=None, title=None, base=None) -> Tensor:
        inputs = list(inputs)
        for t in inputs:
            if not isinstance(t, Tensor):
                raise CnnGraphError(f"{op}: inputs must be Tensors, got {type(t).__name__}")
            if t.net is not self:
                raise CnnGraphError(f"{op}: input {t.name!r} belongs to another Net")
        full, path = self._qualify(name if name is not None else self._auto(base or op))
        _graph.add_node(self.g, full, op, attrs, [t.name for t in inputs], path, title, self.strict)
        return Tensor(self, full)

    def output(self, *tensors: Tensor) -> "Net":
        """Declare the outputs (default: every layer nobody consumes)."""
        self.g.graph["outputs"] = [t.name for t in tensors]
        return self

    @property
    def graph(self) -> CnnGraph:
        if not self.g.graph["outputs"]:
            self.g.graph["outputs"] = _graph.outputs(self.g)
        _graph.check(self.g)
        return self.g


# ---------------------------------------------------------------- argument normalization
def _pair(v, what: str, layer: str):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ShapeError(layer, f"{what} must be a number or a pair", f"got {v!r}")
        return tuple(v)
    return (v, v)


def _pads(padding, kernel, dilation, layer):
    """Padding as (top, left, bottom, right) from an int, a pair, a 4-tuple, 'valid' or 'same'."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            if isinstance(total, int) and total % 2:
                raise ShapeError(layer, "padding='same' needs an odd effective kernel here", f"kernel {k}, dilation {d}")
            pads.append(total // 2 if isinstance(total, int) else total / 2)
        return (pads[0], pads[1], pads[0], pads[1])
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return tuple(padding)
    ph, pw = _pair(padding, "padding", layer)
    return (ph, pw, ph, pw)


def _layer_name(name, op):
    return name or op


# ---------------------------------------------------------------- layers
def conv2d(x: Tensor, out_channels, kernel_size=3, stride=1, padding=0, dilation=1, groups=1,
           bias: bool = True, name=None, title=None) -> Tensor:
    """2-D convolution, as ``torch.nn.Conv2d`` (``groups=C`` is depthwise)."""
    ln = _layer_name(name, "conv2d")
    k = _pair(kernel_size, "kernel_size", ln)
    d = _pair(dilation, "dilation", ln)
    attrs = dict(out_channels=out_channels, kernel=k, stride=_pair(stride, "stride", ln),
                 padding=_pads(padding, k, d, ln), dilation=d, groups=groups, bias=bool(bias))
    return x.net.layer("conv2d", [x], attrs, name, title, base="conv")


def conv_transpose2d(x: Tensor, out_channels, kernel_size=2, stride=1, padding=0, output_padding=0, groups=1,
                     bias: bool = True, dilation=1, name=None, title=None) -> Tensor:
    """Transposed 2-D convolution, as ``torch.nn.ConvTranspose2d`` (same argument order):
    ``padding`` crops (an int, a pair or top, left, bottom, right), ``output_padding`` adds
    rows and columns at the end.

    >>> from cnngraph.ir.symbols import H, W
    >>> net = Net("up")
    >>> conv_transpose2d(net.input(64, H, W), 32, 2, stride=2).shape
    (32, 2*H, 2*W)
    >>> conv_transpose2d(Net("up2").input(8, 5, 5), 4, 3, stride=2, padding=1, output_padding=1).shape
    (4, 10, 10)
    """
    ln = _layer_name(name, "conv_transpose2d")
    k = _pair(kernel_size, "kernel_size", ln)
    d = _pair(dilation, "dilation", ln)
    attrs = dict(out_channels=out_channels, kernel=k, stride=_pair(stride, "stride", ln),
                 padding=_pads(padding, k, d, ln), output_padding=_pair(output_padding, "output_padding", ln),
                 dilation=d, groups=groups, bias=bool(bias))
    return x.net.layer("conv_transpose2d", [x], attrs, name, title, base="upconv")


def _pool(op, base, x, kernel_size, stride, padding, ceil_mode, name, title, **extra):
    ln = _layer_name(name, op)
    k = _pair(kernel_size, "kernel_size", ln)
    s = k if stride is None else _pair(stride, "stride", ln)
    attrs = dict(kernel=k, stride=s, padding=_pads(padding, k, (1, 1), ln), ceil_mode=bool(ceil_mode), **extra)
    return x.net.layer(op, [x], attrs, name, title, base=base)


def maxpool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, name=None, title=None):
    """Max pooling, as ``torch.nn.MaxPool2d`` (stride defaults to the kernel size)."""
    return _pool("maxpool2d", "maxpool", x, kernel_size, stride, padding, ceil_mode, name, title,
                 dilation=_pair(dilation, "dilation", name or "maxpool2d"))


def avgpool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, name=None, title=None):
    """Average pooling, as ``torch.nn.AvgPool2d``."""
    return _pool("avgpool2d", "avgpool", x, kernel_size, stride, padding, ceil_mode, name, title,
                 count_include_pad=bool(count_include_pad))


def adaptive_avgpool2d(x, output_size=1, name=None, title=None):
    """Adaptive average pooling to ``output_size``; ``1`` is global average pooling."""
    return x.net.layer("adaptive_avgpool2d", [x], dict(output_size=_pair(output_size, "output_size", name or "pool")),
                       name, title, base="avgpool")


def adaptive_maxpool2d(x, output_size=1, name=None, title=None):
    return x.net.layer("adaptive_maxpool2d", [x], dict(output_size=_pair(output_size, "output_size", name or "pool")),
                       name, title, base="maxpool")


def global_avgpool(x, name=None, title=None):
    """Global average pooling: C×H×W → C×1×1."""
    return adaptive_avgpool2d(x, 1, name=name, title=title)


def flatten(x, name=None, title=None):
    return x.net.layer("flatten", [x], {}, name, title)


def linear(x, out_features, bias: bool = True, name=None, title=None):
    """Fully connected layer on a flattened input, as ``torch.nn.Linear``."""
    return x.net.layer("linear", [x], dict(out_features=out_features, bias=bool(bias)), name, title, base="fc")


def _act(op):
    entry = ops.get(op)
    params = ", ".join(f"{k}={v!r}" for k, v in entry.defaults.items() if k != "inplace")

    def act(x, inplace: bool | None = None, name=None, title=None, **attrs):
        if inplace is not None:
            attrs["inplace"] = bool(inplace)
        return x.net.layer(op, [x], attrs, name, title)

    act.__name__ = act.__qualname__ = op
    act.__doc__ = (f"{entry.doc}.\n\n``inplace`` defaults to {entry.defaults['inplace']} (as PyTorch's module"
                   f"{', which then adds no activation memory' if entry.defaults['inplace'] else ''})"
                   + (f"; attributes: {params}" if params else "") + ".")
    return act


# One builder per activation of the registry: relu(x), leaky_relu(x, negative_slope=0.2),
# prelu(x, num_parameters=C)... torchvision's Tanh, Sigmoid and GELU are not in place.
for _name in ops.ACTIVATIONS:
    globals()[_name] = _act(_name)


def softmax(x, name=None, title=None):
    return x.net.layer("softmax", [x], {}, name, title)


def log_softmax(x, name=None, title=None):
    """``F.log_softmax(x, dim=1)``: the log of the softmax over channels/features."""
    return x.net.layer("log_softmax", [x], {}, name, title)


def batchnorm(x, eps: float = 1e-5, affine: bool = True, name=None, title=None):
    """Batch norm over channels (``BatchNorm2d``/``BatchNorm1d``)."""
    return x.net.layer("batchnorm", [x], dict(num_features=x.shape[0], eps=eps, affine=affine), name, title, base="bn")


def layernorm(x, eps: float = 1e-5, affine: bool = True, name=None, title=None):
    return x.net.layer("layernorm", [x], dict(eps=eps, affine=affine), name, title, base="ln")


def groupnorm(x, num_groups, eps: float = 1e-5, affine: bool = True, name=None, title=None):
    return x.net.layer("groupnorm", [x], dict(num_groups=num_groups, eps=eps, affine=affine), name, title, base="gn")


def instancenorm(x, eps: float = 1e-5, affine: bool = False, name=None, title=None):
    return x.net.layer("instancenorm", [x], dict(eps=eps, affine=affine), name, title, base="in")


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=1.0, name=None, title=None):
    """Local response normalization across channels (AlexNet), as ``torch.nn.LocalResponseNorm``:
    x / (k + alpha/size·Σx²)^beta over ``size`` neighbouring channels; ``k > 0`` and ``alpha ≥ 0``
    (the base stays positive, so the output is finite for every input)."""
    return x.net.layer("lrn", [x], dict(size=size, alpha=alpha, beta=beta, k=k), name, title, base="norm")


def dropout(x, p: float = 0.5, name=None, title=None):
    return x.net.layer("dropout", [x], dict(p=p), name, title)


def identity(x, name=None, title=None):
    return x.net.layer("identity", [x], {}, name, title)


def add(*xs, name=None, title=None):
    """Element-wise sum of two or more tensors of the same shape (residual shortcut)."""
    xs = _flat(xs)
    return xs[0].net.layer("add", xs, {}, name, title)


def mul(x, scale, name=None, title=None):
    """``x * scale`` with ``scale`` of shape C×1×1 or C (squeeze-and-excitation)."""
    return x.net.layer("mul", [x, scale], {}, name, title)


def concat(*xs, name=None, title=None):
    """Concatenate along channels (Inception, DenseNet)."""
    xs = _flat(xs)
    return xs[0].net.layer("concat", xs, {}, name, title)


def channel_shuffle(x, groups, name=None, title=None):
    return x.net.layer("channel_shuffle", [x], dict(groups=groups), name, title, base="shuffle")


def channel_slice(x, start, stop, name=None, title=None):
    """Channels ``start:stop`` of ``x`` (a view)."""
    return x.net.layer("slice", [x], dict(start=start, stop=stop), name, title)


def pad2d(x, padding, mode: str = "constant", name=None, title=None):
    """Zero padding by ``padding`` = int or (top, left, bottom, right); negative values crop.
    ``mode="reflect"`` mirrors the border instead (blur pooling).

    ``pad2d(x, (-1, -1, 1, 1))`` shifts the map up-left by one pixel (NASNet's factorized
    reduction). Note the order: ``torch.nn.ZeroPad2d`` takes (left, right, top, bottom).
    """
    p = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    if len(p) != 4:
        raise ShapeError(name or "pad2d", "padding must be an int or (top, left, bottom, right)", f"got {padding!r}")
    return x.net.layer("pad2d", [x], dict(padding=p, mode=mode), name, title, base="pad")


def chunk(x, n: int, name=None):
    """Split channels into ``n`` equal parts, as ``torch.chunk(x, n, dim=1)``."""
    C = x.shape[0]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:  # a count of tensors, so a number
        raise ShapeError(name or "chunk", "chunk count must be a positive integer", f"n={n!r}")
    step = ops.div(C, n)  # an int when n divides C, else a sympy quotient
    if not ops.is_int(step) and step.is_integer is False:
        raise ShapeError(name or "chunk", "chunk count must divide the channels", f"{n} chunks of {C} channels")
    step = ops.tidy(step)
    base = name or "split"
    return [channel_slice(x, i * step, (i + 1) * step, name=f"{base}{i}" if name else None) for i in range(n)]


def _flat(xs):
    if len(xs) == 1 and isinstance(xs[0], (list, tuple)):
        return list(xs[0])
    return list(xs)


def scale(x, factor, shift=0.0, name=None, title=None):
    """``x * factor + shift`` for constant numbers, no parameters (Inception-ResNet's residual
    scaling; ``x * 0.5 + 1.0`` in a user's forward)."""
    return x.net.layer("scale", [x], dict(factor=factor, shift=shift), name, title, base="scale")


def depth_to_space(x, block, mode="CRD", name=None, title=None):
    """C·r² channels into r×r blocks of space: ``nn.PixelShuffle(block)`` (mode CRD) or ONNX's
    DepthToSpace in DCR order."""
    return x.net.layer("depth_to_space", [x], dict(block=block, mode=mode), name, title, base="depth_to_space")


def space_to_depth(x, block, mode="CRD", name=None, title=None):
    """r×r blocks of space into C·r² channels: ``nn.PixelUnshuffle(block)`` (mode CRD) or ONNX's
    SpaceToDepth and TResNet's SpaceToDepth (mode DCR)."""
    return x.net.layer("space_to_depth", [x], dict(block=block, mode=mode), name, title, base="space_to_depth")


def clip(x, low=None, high=None, inplace: bool = False, name=None, title=None):
    """``torch.clamp(x, low, high)`` (``nn.Hardtanh(low, high)``); None leaves a side unbounded."""
    attrs = dict(low=None if low is None else float(low), high=None if high is None else float(high),
                 inplace=bool(inplace))
    return x.net.layer("clip", [x], attrs, name, title, base="clip")


def pad_channels(x, after, stride=1, before=0, name=None, title=None):
    """``x[:, :, ::stride, ::stride]`` with ``before`` zero channels in front and ``after`` behind
    (the CIFAR ResNets' parameter-free option-A shortcut)."""
    attrs = dict(before=before, after=after, stride=(stride, stride))
    return x.net.layer("pad_channels", [x], attrs, name, title, base="pad")


def rbf(x, out_features, name=None, title=None):
    """Euclidean radial basis units with fixed prototypes (LeNet-5's output layer)."""
    return x.net.layer("rbf", [x], dict(out_features=out_features), name, title, base="rbf")


def resize(x, scale=None, size=None, like=None, mode: str = "nearest", align_corners: bool = False,
           name=None, title=None):
    """Upsample or resize, as ``F.interpolate``: by ``scale`` (a number or a pair), to ``size``
    (H, W), or to the spatial size of the tensor ``like`` (kept symbolic: a decoder's skip).

    >>> from cnngraph.ir.symbols import H, W
    >>> net = Net("up")
    >>> x = net.input(8, H, W)
    >>> resize(x, 2, mode="bilinear").shape
    (8, 2*H, 2*W)
    """
    given = [v is not None for v in (scale, size, like)]
    if sum(given) != 1:
        raise ShapeError(name or "resize", "resize takes exactly one of scale, size, like",
                         f"scale={scale!r}, size={size!r}, like={like!r}")
    attrs = dict(mode=mode, align_corners=bool(align_corners) if mode == "bilinear" else False)
    if scale is not None:
        attrs["scale"] = tuple(exact_scale(v) for v in _pair(scale, "scale", name or "resize"))
    if size is not None:
        attrs["output_size"] = _pair(size, "size", name or "resize")
    inputs = [x] if like is None else [x, like]
    return x.net.layer("resize", inputs, attrs, name, title)


def layernorm2d(x, eps: float = 1e-6, affine: bool = True, name=None, title=None):
    """Layer norm over the channels at each pixel, γ and β per channel (ConvNeXt's LayerNorm2d)."""
    return x.net.layer("layernorm2d", [x], dict(eps=eps, affine=affine), name, title, base="ln")


def layer_scale(x, field: str = "weight", name=None, title=None):
    """A learned per-channel scale γ·x (ConvNeXt); its weight is ``{name}.{field}``."""
    return x.net.layer("layer_scale", [x], dict(field=field), name, title)


def radix_softmax(x, radix: int, groups: int = 1, name=None, title=None):
    """Split attention's softmax over ``radix`` groups of channels (ResNeSt's rSoftMax with
    ``groups`` = cardinality; SKNet's selection over its paths with groups 1): channels read as
    (groups, radix, k), softmax over radix, written as (radix, groups, k).

    >>> net = Net("attn")
    >>> radix_softmax(net.input(8, 1, 1), radix=2).shape
    (8, 1, 1)
    """
    return x.net.layer("radix_softmax", [x], dict(radix=radix, groups=groups), name, title, base="rsoftmax")


def blurpool2d(x, kernel: int = 3, stride: int = 2, name=None, title=None):
    """Blur pooling: each channel filtered by the fixed ``kernel``×``kernel`` binomial filter,
    subsampled by ``stride`` (timm's BlurPool2d after its reflect padding; no parameters).

    >>> net = Net("blur")
    >>> blurpool2d(pad2d(net.input(8, 16, 16), 1, mode="reflect")).shape
    (8, 8, 8)
    """
    attrs = dict(kernel=_pair(kernel, "kernel", name or "blurpool2d"), stride=_pair(stride, "stride", name or "blurpool2d"))
    return x.net.layer("blurpool2d", [x], attrs, name, title, base="blur")


def channel_conv(x, size: int = 3, pad: int | None = None, name=None, title=None):
    """A 1-D convolution of one ``size``-tap filter sliding along a vector of channels (ECA's
    Conv1d over the pooled channels); ``pad`` defaults to (size − 1)/2, keeping C.

    >>> net = Net("eca")
    >>> channel_conv(net.input(64), 5).shape
    (64,)
    """
    p = (size - 1) // 2 if pad is None else pad
    return x.net.layer("channel_conv", [x], dict(size=size, pad=p), name, title, base="conv1d")
