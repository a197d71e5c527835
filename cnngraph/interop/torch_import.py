"""A PyTorch module as a cnngraph graph: ``from_torch(module, input=(3, H, W))``.

The module is traced with ``torch.fx`` symbolic tracing, then its fx graph is interpreted
once with *symbolic* tensors: every value is either a cnngraph node (a tensor) or a plain
Python/sympy value (a size, a tuple of sizes, a dimension index). Sizes therefore stay
symbolic: ``x.shape[-2:]`` of a 3×H×W input is ``(H, W)`` and ``F.interpolate(..., size=...)``
keeps following it.

Why fx and not ``torch.export``: fx records each call of a sub-module as one node named
by its qualified name (``layer1.0.conv1``: the state_dict's names, so weights load
unchanged) and never runs a tensor, so tracing costs the same for every input size and
no size is ever specialised. ``torch.export`` lowers modules to ATen operators (a conv is
``aten.convolution``, batch norm ``_native_batch_norm_legit_no_training``), keeps module
names only in metadata, runs fake tensors through every op and guards on the sizes it
sees (``H`` becomes ``s0`` with range constraints); it also takes several times longer.
What fx cannot trace (Python control flow on a tensor's value or size) is reported with
the module it happened in.

Each fx node maps through one table: module classes, functions and method names to a
converter. Element-wise activations are derived from the registry's activation table
(:data:`cnngraph.ir.ops.ACTIVATIONS`): ``nn.ReLU``, ``F.relu``, ``torch.relu`` and
``x.relu()`` all become the registry's ``relu``.

>>> import torch
>>> from cnngraph.ir.symbols import H, W
>>> m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
>>> g = from_torch(m, input=(3, H, W))
>>> [(n, g.nodes[n]["op"], g.nodes[n]["shape"]) for n in g]  # doctest: +NORMALIZE_WHITESPACE
[('input', 'input', (3, H, W)), ('0', 'conv2d', (8, H, W)), ('1', 'relu', (8, H, W)),
 ('2', 'maxpool2d', (8, floor(H/2), floor(W/2)))]
>>> sorted(g.graph["weights"])
['0.bias', '0.weight']
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import sympy

from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError, GraphError, ShapeError
from cnngraph.ir.graph import CnnGraph, add_node, check

try:
    import torch
    import torch.fx
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - exercised without torch
    raise CnnGraphError("from_torch needs PyTorch: pip install 'cnngraph[torch]'") from e

from cnngraph.ir.symbols import H, W


class TraceError(CnnGraphError):
    """A module could not be traced or converted: names the module (or call) and the reason."""


# ---------------------------------------------------------------- values of the interpretation
BATCH = sympy.Symbol("N_batch", integer=True, positive=True)  # the batch dimension while tracing


@dataclass(frozen=True)
class T:
    """A tensor: a node of the graph. ``layout`` is ``chw`` (NCHW), ``hwc`` (NHWC, after a
    ``permute(0, 2, 3, 1)``) or ``vec`` (N×F)."""

    node: str
    layout: str = "chw"


class Dims(tuple):
    """A tensor's torch-order sizes that remember the tensor (so ``x.shape[-2:]`` can say
    "the spatial size of x" to an upsampling)."""

    def __new__(cls, values, src=None, axes=None):
        d = super().__new__(cls, values)
        d.src = src
        d.axes = tuple(axes) if axes is not None else tuple(range(len(values)))
        return d

    def __getitem__(self, k):
        if isinstance(k, slice):
            return Dims(tuple(self)[k], self.src, self.axes[k])
        return tuple.__getitem__(self, k)


@dataclass(frozen=True)
class Chunks:
    """``x.chunk(n, 1)`` / ``torch.split``: slices made only when an element is used."""

    src: T
    bounds: tuple


@dataclass(frozen=True)
class Grouped:
    """``x.view(N, g, C/g, H, W)`` (then ``Swapped`` after ``transpose(1, 2)``): a channel shuffle under way."""

    src: T
    groups: int
    swapped: bool = False


# ---------------------------------------------------------------- tracing
class _Tracer(torch.fx.Tracer):
    """fx tracer that records, for every node, the stack of modules it was created in."""

    def __init__(self):
        super().__init__()
        self.stack: list = []
        self.failed_in = None

    def call_module(self, m, forward, args, kwargs):
        self.stack.append((self.path_of_module(m), type(m).__name__))
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:  # the innermost module: where tracing broke
                self.failed_in = self.stack[-1]
            raise
        finally:
            self.stack.pop()

    def is_leaf_module(self, m, qualname):
        return type(m) in MODULES or super().is_leaf_module(m, qualname)

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        node.meta["cg_stack"] = tuple(self.stack)
        return node


def trace(module):
    """The fx graph of ``module`` (in eval mode), or a :class:`TraceError` naming the
    sub-module that could not be traced and why."""
    tracer = _Tracer()
    was_training = module.training
    module.eval()
    try:
        graph = tracer.trace(module)
    except Exception as e:  # fx raises TraceError, TypeError, RuntimeError... all mean "untraceable"
        where = tracer.failed_in or ("", type(module).__name__)
        name = where[0] or "(top level)"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TraceError(f"{name} ({where[1]}): torch.fx cannot trace it: {reason}") from None
    finally:
        module.train(was_training)
    return graph


# ---------------------------------------------------------------- the converter
def _as_size(v, what, where):
    """A size from the user: an int or a sympy expression (never a string: no user text is evaluated)."""
    if isinstance(v, bool) or not isinstance(v, (int, sympy.Expr)):
        raise TraceError(f"{where}: {what} must be an int or a sympy expression, got {v!r}")
    return v


class _Converter:
    def __init__(self, module, name, input):
        self.module = module
        self.modules = dict(module.named_modules())
        self.g = CnnGraph(name=name, inputs=[], outputs=[], notes=[], source="pytorch")
        self.input = tuple(_as_size(v, "an input size", "from_torch") for v in input)
        self.weights: dict = {}
        self.used: set = set()  # modules whose parameters the graph holds
        self.counts: dict = {}
        self.node = None  # the fx node being converted
        self.scales: dict = {}  # scale layers made from arithmetic with numbers -> their fx node

    # -- naming
    def _scope(self):
        return self.node.meta.get("cg_stack", ())

    def fresh(self, base: str, scope=None) -> str:
        """A unique node name ``scope.base`` (``layer1.0.add``), numbered from the second on."""
        scope = self._scope() if scope is None else scope
        prefix = scope[-1][0] if scope else ""
        full = f"{prefix}.{base}" if prefix else base
        k = self.counts.get(full, 0)
        self.counts[full] = k + 1
        name = full if k == 0 else f"{full}_{k}"
        while name in self.g:
            k += 1
            self.counts[full] = k + 1
            name = f"{full}_{k}"
        return name

    def _path(self, scope):
        out = []
        prev = ""
        for qual, kind in scope:
            local = qual[len(prev) + 1:] if prev and qual.startswith(prev + ".") else qual
            out.append((local, kind))
            prev = qual
        return tuple(out)

    # -- adding layers
    def add(self, op, inputs, attrs, name=None, module=None, layout=None, base=None):
        """Add one layer; ``module`` (a qualified name) gives the node its name and weights."""
        scope = self._scope()
        if module is not None and module in self.g:
            name = self.fresh(module.rsplit(".", 1)[-1], scope=scope[:-1] if scope else scope)
        if module is not None and scope and scope[-1][0] == module:
            scope = scope[:-1]
        name = name or (module if module is not None and module not in self.g else self.fresh(base or op))
        ins = [t.node for t in inputs]
        try:
            add_node(self.g, name, op, attrs, ins, self._path(scope), None)
        except (ShapeError, GraphError) as e:
            raise TraceError(f"{self.where()}: {e}") from None
        lay = layout or (inputs[0].layout if inputs else "chw")
        if len(self.g.nodes[name]["shape"]) == 1:
            lay = "vec"
        return T(name, lay)

    def weights_of(self, qual, node, reshape=None):
        mod = self.modules[qual]
        if qual in self.used:
            raise TraceError(f"{self.where()}: module {qual} is called twice; shared weights are not supported")
        self.used.add(qual)
        for k, v in mod.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            a = v.detach().cpu().numpy().astype(np.float32)
            if reshape and k in reshape:
                a = a.reshape(reshape[k])
            self.weights[f"{node}.{k}"] = np.ascontiguousarray(a)

    def fresh_module(self, qual: str) -> str:
        """A node name for a module that computes through its parameters (not a call)."""
        name, k = qual, 0
        while name in self.g:
            k += 1
            name = f"{qual}_{k}"
        return name

    def shape(self, t: T):
        return self.g.nodes[t.node]["shape"]

    def dims(self, t: T) -> Dims:
        s = self.shape(t)
        if t.layout == "hwc":
            return Dims((BATCH, s[1], s[2], s[0]), t, (0, 2, 3, 1))
        return Dims((BATCH,) + tuple(s), t, tuple(range(len(s) + 1)))

    def where(self):
        n = self.node
        scope = self._scope()
        what = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))
        if n.op == "call_module":
            return f"{n.target} ({type(self.modules[n.target]).__name__})"
        return f"{scope[-1][0] + ': ' if scope else ''}{n.op} {what}"

    def fail(self, reason):
        raise TraceError(f"{self.where()}: {reason}")

    def tensor(self, v, what="input") -> T:
        if isinstance(v, Grouped):
            self.fail("a channel-group view that is not a channel shuffle")
        if not isinstance(v, T):
            self.fail(f"{what} must be a tensor here, got {type(v).__name__}")
        return v

    def chw(self, v, what="input") -> T:
        t = self.tensor(v, what)
        if t.layout != "chw":
            self.fail(f"needs an N×C×H×W tensor, got {'channels-last' if t.layout == 'hwc' else 'a vector'}")
        return t

    # -- the interpretation
    def run(self, graph):
        env = {}
        unsupported = []
        for node in graph.nodes:
            self.node = node
            args = torch.fx.node.map_arg(node.args, lambda n: env[n])
            kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n])
            if node.op == "placeholder":
                if env:
                    self.fail("models with several inputs are not supported yet")
                add_node(self.g, "input", "input", {"shape": self.input})
                env[node] = T("input", "chw" if len(self.input) == 3 else "vec")
            elif node.op == "get_attr":
                env[node] = _get_attr(self.module, node.target)
            elif node.op == "output":
                if not unsupported:
                    self.outputs(args[0])
            else:
                conv = self.converter(node)
                try:
                    env[node] = conv(self, *args, **kwargs)
                except TraceError as e:
                    unsupported.append(str(e))
                    if len(unsupported) >= 8:
                        break
                    env[node] = _Failed()
                except _FailedInput:
                    env[node] = _Failed()
        if unsupported:
            raise TraceError("cannot convert: " + "; ".join(unsupported))
        check(self.g)
        return self.g

    def converter(self, node):
        if node.op == "call_module":
            mod = self.modules[node.target]
            fn = MODULES.get(type(mod))
            if fn is None:
                for cls in type(mod).__mro__[1:]:
                    if cls in MODULES and cls.forward is type(mod).forward:
                        fn = MODULES[cls]
                        break
            if fn is None:
                return _unsupported(f"module type {type(mod).__name__} has no cnngraph equivalent")
            return _known(lambda cv, *a, **k: fn(cv, mod, node.target, *a, **k))
        if node.op == "call_method":
            fn = METHODS.get(node.target)
            return fn or _unsupported(f"tensor method .{node.target}() has no cnngraph equivalent")
        fn = FUNCTIONS.get(node.target)
        return fn or _unsupported(f"function {getattr(node.target, '__name__', node.target)} has no cnngraph equivalent")

    def outputs(self, v):
        outs = []

        def walk(x):
            if isinstance(x, T):
                outs.append(x.node)
            elif isinstance(x, dict):
                for y in x.values():
                    walk(y)
            elif isinstance(x, (list, tuple)):
                for y in x:
                    walk(y)
            elif x is not None:
                self.fail(f"an output that is not a tensor ({type(x).__name__})")

        walk(v)
        self.g.graph["outputs"] = list(dict.fromkeys(outs))


class _Failed:
    """The value of a node that could not be converted (its users are skipped, not reported)."""


class _FailedInput(Exception):
    pass


def _unsupported(reason):
    def conv(cv, *args, **kwargs):
        if any(isinstance(a, _Failed) for a in _flat(args) + _flat(list(kwargs.values()))):
            raise _FailedInput
        cv.fail(reason)

    return conv


def _flat(xs):
    out = []
    for x in xs:
        if isinstance(x, (list, tuple)):
            out.extend(_flat(x))
        else:
            out.append(x)
    return out


@dataclass(frozen=True, eq=False)
class Param:
    """A parameter or buffer read directly (``self.layer_scale``), not through a module call."""

    target: str  # its state_dict name
    value: np.ndarray

    @property
    def owner(self):
        return self.target.rsplit(".", 1)[0] if "." in self.target else ""

    @property
    def field(self):
        return self.target.rsplit(".", 1)[-1]


def _get_attr(module, target):
    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, torch.Tensor):
        return Param(target, obj.detach().cpu().numpy().astype(np.float32))
    return obj


def _bind(names, defaults, args, kwargs, where):
    """Arguments by name, as a function with parameters ``names`` would bind them."""
    out = dict(defaults)
    if len(args) > len(names):
        raise TraceError(f"{where}: too many arguments")
    out.update(zip(names, args))
    for k, v in kwargs.items():
        out[k] = v
    return out


def _pair(v):
    if isinstance(v, (list, tuple)):
        return tuple(v) if len(v) == 2 else (v[0], v[0])
    return (v, v)


def _dim(cv, d, rank):
    if not isinstance(d, int):
        cv.fail(f"dimension {d!r} must be a number")
    return d + rank if d < 0 else d


def _known(fn):
    """Make a converter skip (without a second report) when an input already failed."""

    def conv(cv, *args, **kwargs):
        if any(isinstance(a, _Failed) for a in _flat(args) + _flat(list(kwargs.values()))):
            raise _FailedInput
        return fn(cv, *args, **kwargs)

    conv.__name__ = getattr(fn, "__name__", "conv")
    return conv


# ---------------------------------------------------------------- converters: layers with weights
def _conv_attrs(cv, m):
    if m.padding_mode != "zeros":
        cv.fail(f"padding_mode={m.padding_mode!r} (only zero padding)")
    k, d = tuple(m.kernel_size), tuple(m.dilation)
    if isinstance(m.padding, str):
        if m.padding == "valid":
            p = (0, 0)
        else:  # "same" with stride 1: total d·(k−1), the extra pixel at the end as PyTorch
            tot = [dd * (kk - 1) for kk, dd in zip(k, d)]
            return dict(out_channels=m.out_channels, kernel=k, stride=tuple(m.stride),
                        padding=(tot[0] // 2, tot[1] // 2, tot[0] - tot[0] // 2, tot[1] - tot[1] // 2),
                        dilation=d, groups=m.groups, bias=m.bias is not None)
    else:
        p = tuple(m.padding)
    return dict(out_channels=m.out_channels, kernel=k, stride=tuple(m.stride), padding=(p[0], p[1], p[0], p[1]),
                dilation=d, groups=m.groups, bias=m.bias is not None)


def m_conv2d(cv, m, qual, x):
    t = cv.add("conv2d", [cv.chw(x)], _conv_attrs(cv, m), module=qual)
    cv.weights_of(qual, t.node)
    return t


def m_conv_transpose2d(cv, m, qual, x, output_size=None):
    """``nn.ConvTranspose2d``; an ``output_size`` argument sets the output padding, as PyTorch does,
    when it is the same number at every input size."""
    if m.padding_mode != "zeros":
        cv.fail(f"padding_mode={m.padding_mode!r} (only zero padding)")
    k, s, d, p = tuple(m.kernel_size), tuple(m.stride), tuple(m.dilation), tuple(m.padding)
    op = tuple(m.output_padding)
    x = cv.chw(x)
    if output_size is not None:
        L = cv.shape(x)[1:]
        want = tuple(output_size)[-2:]
        op = tuple(ops.tidy(sympy.expand(sympy.sympify(w, strict=True) - ((l - 1) * ss - 2 * pp + dd * (kk - 1) + 1)))
                   for w, l, ss, pp, dd, kk in zip(want, L, s, p, d, k))
        if not all(ops.is_int(v) for v in op):
            cv.fail(f"output_size {want} gives an output padding {op} that depends on the input size")
    attrs = dict(out_channels=m.out_channels, kernel=k, stride=s, padding=(p[0], p[1], p[0], p[1]),
                 output_padding=tuple(int(v) for v in op), dilation=d, groups=m.groups, bias=m.bias is not None)
    t = cv.add("conv_transpose2d", [x], attrs, module=qual)
    cv.weights_of(qual, t.node)
    return t


def m_linear(cv, m, qual, x):
    x = cv.tensor(x)
    if x.layout == "hwc":  # a Linear over the channels of a channels-last map is a 1×1 conv
        attrs = dict(out_channels=m.out_features, kernel=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0),
                     dilation=(1, 1), groups=1, bias=m.bias is not None)
        t = cv.add("conv2d", [T(x.node, "chw")], attrs, module=qual, layout="hwc")
        cv.weights_of(qual, t.node, reshape={"weight": (m.out_features, m.in_features, 1, 1)})
        return t
    if x.layout != "vec":
        cv.fail("nn.Linear on an N×C×H×W tensor (over its width) has no cnngraph equivalent")
    t = cv.add("linear", [x], dict(out_features=m.out_features, bias=m.bias is not None), module=qual)
    cv.weights_of(qual, t.node)
    return t


def m_batchnorm(cv, m, qual, x):
    x = cv.tensor(x)
    if not m.track_running_stats or m.running_mean is None:
        cv.fail("batch norm without running statistics normalizes with batch statistics at inference")
    if x.layout == "hwc":
        cv.fail("batch norm on a channels-last tensor")
    t = cv.add("batchnorm", [x], dict(num_features=m.num_features, eps=float(m.eps), affine=bool(m.affine)),
               module=qual)
    cv.weights_of(qual, t.node)
    return t


def f_batch_norm(cv, *args, **kwargs):
    """``F.batch_norm`` at inference with one module's running statistics, weight and bias
    (timm's ``BatchNormAct2d`` calls it from its own ``forward``, then its activation): a
    batchnorm node named after that module, whose state_dict names its weights."""
    a = _bind(("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
              dict(weight=None, bias=None, training=False, momentum=0.1, eps=1e-5), args, kwargs, cv.where())
    x = cv.tensor(a["input"])
    if a["training"] is not False:
        cv.fail("batch_norm with training=True normalizes with batch statistics at inference")
    stats = [a[k] for k in ("running_mean", "running_var", "weight", "bias") if a[k] is not None]
    fields = {p.field: p for p in stats if isinstance(p, Param)}
    if (len(fields) != len(stats) or len({p.owner for p in stats}) != 1
            or not {"running_mean", "running_var"} <= set(fields) <= {"running_mean", "running_var", "weight", "bias"}):
        cv.fail("batch_norm whose running statistics (and weight, bias) are not one module's buffers")
    if x.layout == "hwc":
        cv.fail("batch norm on a channels-last tensor")
    C = cv.shape(x)[0]
    affine = {"weight", "bias"} <= set(fields)
    t = cv.add("batchnorm", [x], dict(num_features=C, eps=float(a["eps"]), affine=affine),
               name=cv.fresh_module(stats[0].owner))
    for p in stats:
        cv.weights[f"{t.node}.{p.field}"] = np.ascontiguousarray(p.value.reshape(C), np.float32)
    return t


def f_linear(cv, *args, **kwargs):
    """``F.linear`` with one module's own weight (and bias), as timm's ``Linear`` calls it
    from its ``forward``: a linear node (a 1×1 convolution over the channels of a
    channels-last map) named after that module."""
    a = _bind(("input", "weight", "bias"), dict(bias=None), args, kwargs, cv.where())
    x = cv.tensor(a["input"])
    w, b = a["weight"], a["bias"]
    if not isinstance(w, Param) or w.value.ndim != 2 or (b is not None and (not isinstance(b, Param) or b.owner != w.owner)):
        cv.fail("linear whose weight (and bias) are not one module's parameters")
    out_f, in_f = w.value.shape
    if x.layout == "hwc":
        attrs = dict(out_channels=out_f, kernel=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                     groups=1, bias=b is not None)
        t = cv.add("conv2d", [T(x.node, "chw")], attrs, name=cv.fresh_module(w.owner), layout="hwc")
        cv.weights[f"{t.node}.weight"] = np.ascontiguousarray(w.value.reshape(out_f, in_f, 1, 1), np.float32)
    elif x.layout == "vec":
        t = cv.add("linear", [x], dict(out_features=out_f, bias=b is not None), name=cv.fresh_module(w.owner))
        cv.weights[f"{t.node}.weight"] = np.ascontiguousarray(w.value, np.float32)
    else:
        cv.fail("linear on an N×C×H×W tensor (over its width) has no cnngraph equivalent")
    if b is not None:
        cv.weights[f"{t.node}.bias"] = np.ascontiguousarray(b.value.reshape(out_f), np.float32)
    return t


def _compare(op):
    """A comparison of sizes (``x.ndim == 4``), evaluated while converting; of tensors, not supported."""
    def conv(cv, a, b):
        if isinstance(a, T) or isinstance(b, T):
            cv.fail(f"comparing tensors ({op.__name__})")
        return op(a, b)

    conv.__name__ = op.__name__
    return conv


def f_assert(cv, condition, message=""):
    """``torch._assert`` (timm checks a tensor's rank with it): nothing in the graph; a
    condition that is already false when traced is reported."""
    if condition is False:
        cv.fail(f"assertion failed: {message}")


def m_prelu(cv, m, qual, x):
    t = cv.add("prelu", [cv.tensor(x)], dict(num_parameters=m.num_parameters), module=qual)
    cv.weights_of(qual, t.node)
    return t


def m_groupnorm(cv, m, qual, x):
    t = cv.add("groupnorm", [cv.chw(x)], dict(num_groups=m.num_groups, eps=float(m.eps), affine=bool(m.affine)),
               module=qual)
    cv.weights_of(qual, t.node)
    return t


def m_layernorm(cv, m, qual, x):
    x = cv.tensor(x)
    shape = cv.shape(x)
    if x.layout == "hwc" and tuple(m.normalized_shape) == (shape[0],):  # over the channels
        t = cv.add("layernorm2d", [x], dict(eps=float(m.eps), affine=bool(m.elementwise_affine)), module=qual)
        cv.weights_of(qual, t.node)
        return t
    if x.layout == "hwc" or tuple(m.normalized_shape) != tuple(shape):
        cv.fail(f"LayerNorm over {tuple(m.normalized_shape)} of a {'×'.join(map(str, shape))} tensor "
                "(only the whole per-sample tensor)")
    t = cv.add("layernorm", [x], dict(eps=float(m.eps), affine=bool(m.elementwise_affine)), module=qual)
    cv.weights_of(qual, t.node)
    return t


def f_layer_norm(cv, *args, **kwargs):
    """``F.layer_norm`` over the channels of a channels-last tensor with the module's own
    weight and bias (torchvision's and timm's LayerNorm2d): layernorm2d named after that module."""
    a = _bind(("input", "normalized_shape", "weight", "bias", "eps"), dict(weight=None, bias=None, eps=1e-5),
              args, kwargs, cv.where())
    x = cv.tensor(a["input"])
    C = cv.shape(x)[0]
    w, b = a["weight"], a["bias"]
    if x.layout != "hwc" or tuple(a["normalized_shape"]) != (C,):
        cv.fail(f"layer_norm over {tuple(a['normalized_shape'])} (only the channels of a channels-last tensor)")
    if not (isinstance(w, Param) and isinstance(b, Param) and w.owner == b.owner):
        cv.fail("layer_norm whose weight and bias are not one module's parameters")
    t = cv.add("layernorm2d", [x], dict(eps=float(a["eps"]), affine=True), name=cv.fresh_module(w.owner))
    cv.weights[f"{t.node}.weight"] = w.value.reshape(C)
    cv.weights[f"{t.node}.bias"] = b.value.reshape(C)
    return t


def _layer_scale(cv, x, p):
    C = cv.shape(x)[0]
    if p.value.size != C or p.value.shape[0] != C and p.value.shape[-1] != C:
        cv.fail(f"product with parameter {p.target} of shape {p.value.shape} (only a per-channel scale)")
    t = cv.add("layer_scale", [x], dict(field=p.field), name=cv.fresh_module(p.owner))
    cv.weights[f"{t.node}.{p.field}"] = p.value.reshape(C)
    return t


def m_lrn(cv, m, qual, x):
    return cv.add("lrn", [cv.chw(x)], dict(size=m.size, alpha=float(m.alpha), beta=float(m.beta), k=float(m.k)),
                  module=qual)


# ---------------------------------------------------------------- converters: pooling
def _pool(cv, op, x, kernel, stride, padding, ceil_mode, name=None, module=None, **extra):
    k = _pair(kernel)
    s = k if stride is None or stride == [] or stride == () else _pair(stride)
    p = _pair(padding)
    attrs = dict(kernel=k, stride=s, padding=(p[0], p[1], p[0], p[1]), ceil_mode=bool(ceil_mode), **extra)
    return cv.add(op, [cv.chw(x)], attrs, module=module, base=op.replace("2d", ""))


def m_maxpool(cv, m, qual, x):
    if m.return_indices:
        cv.fail("max pooling with return_indices")
    return _pool(cv, "maxpool2d", x, m.kernel_size, m.stride, m.padding, m.ceil_mode, module=qual,
                 dilation=_pair(m.dilation))


def m_avgpool(cv, m, qual, x):
    if m.divisor_override:
        cv.fail("average pooling with divisor_override")
    return _pool(cv, "avgpool2d", x, m.kernel_size, m.stride, m.padding, m.ceil_mode, module=qual,
                 count_include_pad=bool(m.count_include_pad))


def f_maxpool(cv, *args, **kwargs):
    a = _bind(("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
              dict(stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False), args, kwargs, cv.where())
    if a["return_indices"]:
        cv.fail("max pooling with return_indices")
    return _pool(cv, "maxpool2d", a["input"], a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                 dilation=_pair(a["dilation"]))


def f_avgpool(cv, *args, **kwargs):
    a = _bind(("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
              dict(stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None),
              args, kwargs, cv.where())
    if a["divisor_override"]:
        cv.fail("average pooling with divisor_override")
    return _pool(cv, "avgpool2d", a["input"], a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                 count_include_pad=bool(a["count_include_pad"]))


def _adaptive(op):
    def module(cv, m, qual, x):
        return _adaptive_to(cv, op, x, m.output_size, module=qual)

    def function(cv, *args, **kwargs):
        a = _bind(("input", "output_size", "return_indices"), dict(return_indices=False), args, kwargs, cv.where())
        return _adaptive_to(cv, op, a["input"], a["output_size"])

    return module, function


def _adaptive_to(cv, op, x, size, module=None):
    x = cv.chw(x)
    oh, ow = _pair(size)
    _, Hs, Ws = cv.shape(x)
    oh, ow = (Hs if oh is None else oh), (Ws if ow is None else ow)
    return cv.add(op, [x], dict(output_size=(oh, ow)), module=module, base=op.replace("adaptive_", "").replace("2d", ""))


def method_mean(cv, x, dim=None, keepdim=False, dtype=None):
    """``x.mean([2, 3])`` (MNASNet, ShuffleNet v2): global average pooling (then a flatten)."""
    x = cv.chw(x)
    dims = sorted(_dim(cv, d, 4) for d in (dim if isinstance(dim, (list, tuple)) else [dim]))
    if dims != [2, 3]:
        cv.fail(f"mean over dimensions {dims} (only the spatial mean [2, 3])")
    t = cv.add("adaptive_avgpool2d", [x], dict(output_size=(1, 1)), base="mean")
    return t if keepdim else cv.add("flatten", [t], {}, base="flatten")


# ---------------------------------------------------------------- converters: shapes and merges
def _flatten_from(cv, x, start, end=-1, module=None):
    x = cv.tensor(x)
    if isinstance(x, T) and x.layout == "vec":
        return x
    if _dim(cv, start, 4) == 1 and _dim(cv, end, 4) == 3 and x.layout == "chw":
        return cv.add("flatten", [x], {}, module=module)
    if isinstance(x, T) and x.layout == "hwc":
        cv.fail("flattening a channels-last tensor")
    cv.fail(f"flatten from dimension {start} to {end} (only torch.flatten(x, 1))")


def f_flatten(cv, *args, **kwargs):
    a = _bind(("input", "start_dim", "end_dim"), dict(start_dim=0, end_dim=-1), args, kwargs, cv.where())
    if isinstance(a["input"], Grouped):
        return _shuffle_done(cv, a["input"], a["start_dim"], a["end_dim"])
    return _flatten_from(cv, a["input"], a["start_dim"], a["end_dim"])


def m_flatten(cv, m, qual, x):
    return _flatten_from(cv, x, m.start_dim, m.end_dim, module=qual)


def _reshape(cv, x, *shape):
    """``view``/``reshape``: a flatten, the steps of a channel shuffle, or a no-op."""
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = tuple(shape[0])
    if isinstance(x, Grouped):
        if x.swapped and len(shape) == 4:
            return cv.add("channel_shuffle", [x.src], dict(groups=x.groups), base="channel_shuffle")
        cv.fail("a channel-group view that is not a channel shuffle")
    x = cv.tensor(x)
    full = cv.dims(x)
    if len(shape) == 2 and _same(shape[0], BATCH) and x.layout != "hwc":
        return x if x.layout == "vec" else cv.add("flatten", [x], {})
    if x.layout == "vec" and len(shape) == 4 and _same(shape[0], BATCH) and shape[2:] == (1, 1) \
            and (shape[1] == -1 or _same(shape[1], full[1])):
        return x  # y.view(b, c, 1, 1) of a vector: a per-channel scale (squeeze-and-excitation)
    if (x.layout == "chw" and len(shape) == 5 and _same(shape[0], BATCH) and isinstance(shape[1], int)
            and _same(shape[3], full[2]) and _same(shape[4], full[3])):
        return Grouped(x, shape[1])  # N, g, C/g, H, W: the first step of a channel shuffle
    if len(shape) == len(full) and all(s == -1 or _same(s, f) for s, f in zip(shape, full)):
        return x
    cv.fail(f"reshape of {'×'.join(map(str, full))} to {tuple(shape)}")


def _same(a, b):
    if isinstance(a, (int, sympy.Expr)) and isinstance(b, (int, sympy.Expr)):
        return ops.same(a, b) is True
    return False


def method_view(cv, x, *shape):
    return _reshape(cv, x, *shape)


def f_reshape(cv, x, shape):
    return _reshape(cv, x, *shape)


def _transpose(cv, x, d0, d1):
    if isinstance(x, Grouped) and sorted((_dim(cv, d0, 5), _dim(cv, d1, 5))) == [1, 2]:
        return Grouped(x.src, x.groups, not x.swapped)
    cv.fail(f"transpose of dimensions {d0} and {d1}")


def _shuffle_done(cv, x, start, end):
    if x.swapped and _dim(cv, start, 5) == 1 and _dim(cv, end, 5) == 2:
        return cv.add("channel_shuffle", [x.src], dict(groups=x.groups), base="channel_shuffle")
    cv.fail("a channel-group view that is not a channel shuffle")


def _permute(cv, x, *dims):
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = tuple(dims[0])
    if isinstance(x, Grouped) and tuple(_dim(cv, d, 5) for d in dims) == (0, 2, 1, 3, 4):
        return Grouped(x.src, x.groups, not x.swapped)  # the transpose(1, 2) of a channel shuffle
    x = cv.tensor(x)
    dims = tuple(_dim(cv, d, 4) for d in dims)
    if x.layout == "chw" and dims == (0, 2, 3, 1):
        return T(x.node, "hwc")
    if x.layout == "hwc" and dims == (0, 3, 1, 2):
        return T(x.node, "chw")
    cv.fail(f"permute {dims} of a {'channels-last' if x.layout == 'hwc' else x.layout} tensor")


def m_permute(cv, m, qual, x):  # torchvision.ops.misc.Permute
    return _permute(cv, x, *m.dims)


def _identity(cv, x, *args, **kwargs):
    return x


def _expand_as(cv, x, other):
    """``y.expand_as(x)`` of a per-channel scale (a C vector, C×1×1) before ``x * y``: the
    product broadcasts it anyway."""
    y, o = cv.tensor(x), cv.chw(other, "expand_as's target")
    sy, so = cv.shape(y), cv.shape(o)
    if ops.same(sy[0], so[0]) is True and all(v == 1 for v in sy[1:]):
        return y
    if tuple(sy) == tuple(so):
        return y
    cv.fail(f"expand_as of a {'×'.join(map(str, sy))} tensor to {'×'.join(map(str, so))} (only a per-channel scale)")


def m_identity(cv, m, qual, x, *args, **kwargs):
    return x


def m_dropout(cv, m, qual, x):
    return cv.add("dropout", [cv.tensor(x)], dict(p=float(m.p)), module=qual)


def f_dropout(cv, *args, **kwargs):
    a = _bind(("input", "p", "training", "inplace"), dict(p=0.5, training=True, inplace=False), args, kwargs, cv.where())
    return cv.add("dropout", [cv.tensor(a["input"])], dict(p=float(a["p"])))


def _arith(py, merge):
    """``a + b`` / ``a * b``...: sizes computed in Python, tensors merged in the graph, a tensor
    times a per-channel parameter a layer scale, a tensor and a number the registry's
    ``scale`` (factor·x + shift)."""

    def conv(cv, a, b, *rest, **kw):
        if not isinstance(a, T) and not isinstance(b, T):
            return py(a, b)
        if isinstance(a, T) and isinstance(b, T) and merge is not None:
            if kw.get("alpha", rest[0] if rest else 1) != 1:
                cv.fail(f"{py.__name__} of two tensors with alpha={kw.get('alpha', rest[0] if rest else 1)}")
            return merge(cv, a, b)
        if py is operator.mul and isinstance(a, Param) != isinstance(b, Param):
            return _layer_scale(cv, *((b, a) if isinstance(a, Param) else (a, b)))
        alpha = kw.get("alpha", rest[0] if rest else 1)
        if _number(alpha) and py in (operator.add, operator.sub) and alpha != 1:  # torch.add(x, y, alpha=2)
            if isinstance(b, T) or not _number(b):
                cv.fail(f"{py.__name__} with alpha={alpha} of a tensor")
            b = b * alpha
        if isinstance(a, T) != isinstance(b, T) and _number(b if isinstance(a, T) else a):
            affine = _AFFINE.get((py, isinstance(a, T)))
            if affine is not None:
                return _scale(cv, a if isinstance(a, T) else b, *affine(float(b if isinstance(a, T) else a)))
        what = "two tensors" if isinstance(a, T) and isinstance(b, T) else "a tensor and a constant"
        cv.fail(f"{py.__name__} of {what} has no cnngraph equivalent")

    return conv


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# (operator, tensor on the left) -> the (factor, shift) of tensor ∘ number as factor·x + shift
_AFFINE = {
    (operator.add, True): lambda c: (1.0, c), (operator.add, False): lambda c: (1.0, c),
    (operator.sub, True): lambda c: (1.0, -c), (operator.sub, False): lambda c: (-1.0, c),
    (operator.mul, True): lambda c: (c, 0.0), (operator.mul, False): lambda c: (c, 0.0),
    (operator.truediv, True): lambda c: (1.0 / c, 0.0) if c else (None, None),
}


def _scale(cv, x, factor, shift):
    """The registry's ``scale`` (factor·x + shift); a chain of them (``x * 0.5 + 1.0``) is one
    layer when the one before has no other user."""
    x = cv.tensor(x)
    if factor is None:
        cv.fail("division of a tensor by zero")
    prev = cv.scales.get(x.node)
    if prev is not None and len(prev.users) == 1:
        attrs = cv.g.nodes[x.node]["attrs"]
        attrs["factor"], attrs["shift"] = factor * attrs["factor"], factor * attrs["shift"] + shift
        cv.scales[x.node] = cv.node
        return x
    t = cv.add("scale", [x], dict(factor=factor, shift=shift), base="scale")
    cv.scales[t.node] = cv.node
    return t


def _neg(cv, x):
    if not isinstance(x, T):
        return operator.neg(x)
    return _scale(cv, x, -1.0, 0.0)


def _clamp(cv, *args, **kwargs):
    """``torch.clamp(x, min, max)`` / ``x.clamp(...)`` / ``F.hardtanh``: the registry's clip
    (ReLU6 when the bounds are 0 and 6, as ``nn.ReLU6``)."""
    a = _bind(("input", "min", "max"), dict(min=None, max=None), args, kwargs, cv.where())
    return _clip(cv, a["input"], a["min"], a["max"], inplace=bool(kwargs.get("inplace", False)))


def _clip(cv, x, lo, hi, inplace=False, module=None):
    x = cv.tensor(x)
    for v in (lo, hi):
        if v is not None and not _number(v):
            cv.fail(f"clamp to a bound that is not a number ({type(v).__name__})")
    if lo is not None and float(lo) == 0 and (hi is None or float(hi) == 6):  # what ONNX's Clip imports as
        op = "relu" if hi is None else "relu6"
        return cv.add(op, [x], dict(inplace=inplace), module=module, base=op)
    return cv.add("clip", [x], dict(low=None if lo is None else float(lo), high=None if hi is None else float(hi),
                                    inplace=inplace), module=module, base="clip")


def f_hardtanh(cv, *args, **kwargs):
    a = _bind(("input", "min_val", "max_val", "inplace"), dict(min_val=-1.0, max_val=1.0, inplace=False), args,
              kwargs, cv.where())
    return _clip(cv, a["input"], a["min_val"], a["max_val"], bool(a["inplace"]))


def m_hardtanh(cv, m, qual, x):
    return _clip(cv, x, m.min_val, m.max_val, bool(m.inplace), module=qual)


SOFTPLUS_THRESHOLD = 15.0  # from it on, PyTorch's x·beta > threshold → x shortcut changes no float32 value


def _softplus_checked(cv, x, beta, threshold, module=None, qual=None):
    if threshold < SOFTPLUS_THRESHOLD:
        cv.fail(f"Softplus(threshold={threshold}): below {SOFTPLUS_THRESHOLD:g}, PyTorch's linear shortcut "
                "differs from softplus by more than float32 rounding; cnngraph's softplus switches at 20")
    return cv.add("softplus", [cv.tensor(x)], dict(beta=float(beta)), module=qual, base="softplus")


def m_softplus(cv, m, qual, x):
    return _softplus_checked(cv, x, m.beta, m.threshold, qual=qual)


def f_softplus(cv, *args, **kwargs):
    a = _bind(("input", "beta", "threshold"), dict(beta=1.0, threshold=20.0), args, kwargs, cv.where())
    return _softplus_checked(cv, a["input"], a["beta"], a["threshold"])


def m_pixel_shuffle(cv, m, qual, x):
    return cv.add("depth_to_space", [cv.chw(x)], dict(block=int(m.upscale_factor), mode="CRD"), module=qual)


def m_pixel_unshuffle(cv, m, qual, x):
    return cv.add("space_to_depth", [cv.chw(x)], dict(block=int(m.downscale_factor), mode="CRD"), module=qual)


def f_pixel_shuffle(cv, x, upscale_factor):
    return cv.add("depth_to_space", [cv.chw(x)], dict(block=int(upscale_factor), mode="CRD"), base="pixel_shuffle")


def f_pixel_unshuffle(cv, x, downscale_factor):
    return cv.add("space_to_depth", [cv.chw(x)], dict(block=int(downscale_factor), mode="CRD"), base="pixel_unshuffle")


def m_instancenorm(cv, m, qual, x):
    """``nn.InstanceNorm2d``: the registry's instance norm; with running statistics (used at
    inference) it normalizes like a batch norm with those statistics."""
    x = cv.chw(x)
    if m.track_running_stats and m.running_mean is not None:
        t = cv.add("batchnorm", [x], dict(num_features=m.num_features, eps=float(m.eps), affine=bool(m.affine)),
                   module=qual)
    else:
        if cv.shape(x)[0] != m.num_features and ops.same(cv.shape(x)[0], m.num_features) is False:
            cv.fail(f"InstanceNorm2d({m.num_features}) of a tensor with {cv.shape(x)[0]} channels")
        t = cv.add("instancenorm", [x], dict(eps=float(m.eps), affine=bool(m.affine)), module=qual)
    cv.weights_of(qual, t.node)
    return t


def f_instance_norm(cv, *args, **kwargs):
    a = _bind(("input", "running_mean", "running_var", "weight", "bias", "use_input_stats", "momentum", "eps"),
              dict(running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True, momentum=0.1,
                   eps=1e-5), args, kwargs, cv.where())
    if a["weight"] is not None or a["bias"] is not None or not a["use_input_stats"]:
        cv.fail("F.instance_norm with weights or running statistics (use nn.InstanceNorm2d)")
    return cv.add("instancenorm", [cv.chw(a["input"])], dict(eps=float(a["eps"]), affine=False), base="instance_norm")


def _merge_add(cv, a, b):
    if a.layout != b.layout:
        cv.fail("add of tensors in different layouts")
    return cv.add("add", [a, b], {})


def _merge_sub(cv, a, b):
    """a − b of two tensors: a + (−1)·b."""
    if a.layout != b.layout or any(ops.same(p, q) is False for p, q in zip(cv.shape(a), cv.shape(b))):
        cv.fail("sub of tensors of different layouts or shapes (no broadcasting)")
    neg = cv.add("scale", [b], dict(factor=-1.0), base="neg")
    return cv.add("add", [a, neg], {}, base="sub")


def _merge_mul(cv, a, b):
    sa, sb = cv.shape(a), cv.shape(b)
    x, s = (a, b) if ops.numel(sa) == ops.numel(sb) or ops.same(ops.numel(sb), sb[0]) else (b, a)
    if x.layout != "chw" or s.layout == "hwc":
        cv.fail("product of channels-last tensors")
    return cv.add("mul", [x, T(s.node, "chw")], {})


def f_cat(cv, tensors, dim=0, *, out=None):
    ts = [cv.tensor(t) for t in tensors]
    rank = len(cv.dims(ts[0]))
    if _dim(cv, dim, rank) != 1 or any(t.layout != "chw" for t in ts):
        cv.fail(f"concatenation along dimension {dim} (only channels of N×C×H×W)")
    return cv.add("concat", ts, {}, base="cat")


def _chunk(cv, x, chunks, dim=0):
    x = cv.chw(x)
    C = cv.shape(x)[0]
    if _dim(cv, dim, 4) != 1 or not isinstance(C, int) or C % chunks:
        cv.fail(f"chunk along dimension {dim} into {chunks} (only equal parts of the channels)")
    step = C // chunks
    return Chunks(x, tuple((i * step, (i + 1) * step) for i in range(chunks)))


def _split(cv, x, split_size_or_sections, dim=0):
    x = cv.chw(x)
    C = cv.shape(x)[0]
    if _dim(cv, dim, 4) != 1 or not isinstance(C, int):
        cv.fail(f"split along dimension {dim} (only the channels)")
    sizes = split_size_or_sections
    if isinstance(sizes, int):
        sizes = [sizes] * (C // sizes) + ([C % sizes] if C % sizes else [])
    bounds, start = [], 0
    for s in sizes:
        bounds.append((start, start + s))
        start += s
    return Chunks(x, tuple(bounds))


def f_getitem(cv, x, k):
    if isinstance(x, Chunks):
        start, stop = x.bounds[k]
        return cv.add("slice", [x.src], dict(start=start, stop=stop), base="slice")
    if isinstance(x, T):
        return _slice(cv, x, k)
    return operator.getitem(x, k)


def _slice(cv, x, k):
    k = k if isinstance(k, tuple) else (k,)
    full = slice(None)
    if x.layout == "chw" and len(k) >= 2 and k[0] == full and isinstance(k[1], slice) and all(s == full for s in k[2:]):
        sl = k[1]
        C = cv.shape(x)[0]
        start, stop, step = sl.start or 0, C if sl.stop is None else sl.stop, sl.step or 1
        if step == 1 and isinstance(start, int) and start >= 0:
            return cv.add("slice", [x], dict(start=start, stop=stop), base="slice")
    cv.fail(f"indexing {k} (only a range of channels x[:, a:b])")


def f_getattr(cv, x, attr):
    if isinstance(x, T) and attr == "shape":
        return cv.dims(x)
    if isinstance(x, T) and attr == "ndim":
        return len(cv.dims(x))
    if isinstance(x, T):
        cv.fail(f"tensor attribute .{attr}")
    return getattr(x, attr)


def method_size(cv, x, dim=None):
    d = cv.dims(cv.tensor(x))
    return d if dim is None else d[dim]


def method_dim(cv, x):
    return len(cv.dims(cv.tensor(x)))


@dataclass(frozen=True)
class HalfSqueezed:
    """``x.squeeze(-1)`` of an N×C×1×1 tensor: a flatten once the height goes too."""

    src: T


def _squeeze(cv, x, dim=None):
    """``x.squeeze()``, ``x.squeeze(-1).squeeze(-1)``, ``x.squeeze((2, 3))`` of a globally
    pooled N×C×1×1 tensor: a flatten."""
    if isinstance(x, HalfSqueezed):
        if dim is not None and _dim(cv, dim, 3) == 2:
            return cv.add("flatten", [x.src], {}, base="flatten")
        cv.fail(f"squeeze({dim}) of an N×C×1 tensor")
    x = cv.tensor(x)
    if x.layout == "vec":
        return x
    shape = cv.shape(x)
    if x.layout != "chw" or len(shape) != 3 or shape[1] != 1 or shape[2] != 1:
        cv.fail(f"squeeze of a {'×'.join(map(str, shape))} tensor (only N×C×1×1 after global pooling)")
    dims = None if dim is None else sorted(_dim(cv, d, 4) for d in (dim if isinstance(dim, (list, tuple)) else [dim]))
    if dims is None or dims == [2, 3]:
        return cv.add("flatten", [x], {}, base="flatten")
    if dims == [3]:
        return HalfSqueezed(x)
    cv.fail(f"squeeze of dimension(s) {dims} (only the 1×1 spatial ones)")


def f_squeeze(cv, input, dim=None):
    return _squeeze(cv, input, dim)


def f_mean(cv, *args, **kwargs):
    a = _bind(("input", "dim", "keepdim", "dtype"), dict(dim=None, keepdim=False, dtype=None), args, kwargs, cv.where())
    return method_mean(cv, a["input"], a["dim"], a["keepdim"])


def _zero_pad(cv, x, pad, module=None, mode="constant"):
    x = cv.chw(x)
    pad = tuple(pad)
    if len(pad) == 2:
        pad = pad + (0, 0)
    if len(pad) != 4 or not all(isinstance(p, int) for p in pad):
        cv.fail(f"padding {pad} (only the last two dimensions, in numbers)")
    left, right, top, bottom = pad  # PyTorch's order: last dimension first
    attrs = dict(padding=(top, left, bottom, right))
    if mode != "constant":
        attrs["mode"] = mode
    return cv.add("pad2d", [x], attrs, module=module, base="pad")


def f_pad(cv, *args, **kwargs):
    """``F.pad(x, (left, right, top, bottom))`` with zeros (negative values crop) or
    ``mode="reflect"``: pad2d."""
    a = _bind(("input", "pad", "mode", "value"), dict(mode="constant", value=None), args, kwargs, cv.where())
    if a["mode"] not in ("constant", "reflect") or a["value"] not in (None, 0, 0.0):
        cv.fail(f"F.pad with mode={a['mode']!r}, value={a['value']!r} (zero or reflect padding only)")
    return _zero_pad(cv, a["input"], a["pad"], mode=a["mode"])


def m_zero_pad(cv, m, qual, x):
    """``nn.ZeroPad2d`` (and ``nn.ConstantPad2d`` with value 0)."""
    if float(getattr(m, "value", 0.0)) != 0.0:
        cv.fail(f"{type(m).__name__} with value {m.value} (zero padding only)")
    return _zero_pad(cv, x, m.padding, module=qual)


def m_reflect_pad(cv, m, qual, x):
    """``nn.ReflectionPad2d``: the border mirrored without repeating it (pad2d, mode reflect)."""
    return _zero_pad(cv, x, m.padding, module=qual, mode="reflect")


def m_log_softmax(cv, m, qual, x):
    x = cv.tensor(x)
    if m.dim is None or _dim(cv, m.dim, len(cv.dims(x))) != 1:
        cv.fail(f"log softmax over dimension {m.dim} (only dim=1)")
    return cv.add("log_softmax", [x], {}, module=qual)


def f_log_softmax(cv, *args, **kwargs):
    a = _bind(("input", "dim", "_stacklevel", "dtype"), dict(dim=None), args, kwargs, cv.where())
    x = cv.tensor(a["input"])
    if a["dim"] is None or _dim(cv, a["dim"], len(cv.dims(x))) != 1:
        cv.fail(f"log_softmax over dimension {a['dim']} (only the channels / features, dim=1)")
    return cv.add("log_softmax", [x], {}, base="log_softmax")


def f_softmax(cv, *args, **kwargs):
    a = _bind(("input", "dim", "_stacklevel", "dtype"), dict(dim=None), args, kwargs, cv.where())
    return _softmax(cv, a["input"], a["dim"])


def _softmax(cv, x, dim):
    x = cv.tensor(x)
    if dim is None or _dim(cv, dim, len(cv.dims(x))) != 1:
        cv.fail(f"softmax over dimension {dim} (only the channels / features, dim=1)")
    return cv.add("softmax", [x], {})


def m_softmax(cv, m, qual, x):
    x = cv.tensor(x)
    if m.dim is None or _dim(cv, m.dim, len(cv.dims(x))) != 1:
        cv.fail(f"softmax over dimension {m.dim} (only dim=1)")
    return cv.add("softmax", [x], {}, module=qual)


def _interpolate(cv, x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None, antialias=False, module=None):
    """``F.interpolate`` / ``nn.Upsample``: the registry's resize. A size read from another
    tensor (``x.shape[-2:]``) stays a reference to it, so it follows any input size."""
    x = cv.chw(x)
    if mode not in ("nearest", "bilinear") or antialias:
        cv.fail(f"interpolation mode {mode!r}{' with antialias' if antialias else ''} (nearest and bilinear only)")
    attrs = dict(mode=mode, align_corners=bool(align_corners) if mode == "bilinear" else False)
    if size is not None:
        if isinstance(size, Dims) and isinstance(size.src, T) and size.src.layout == "chw" and size.axes == (2, 3):
            return cv.add("resize", [x, size.src], attrs, module=module)
        attrs["output_size"] = _pair(size)
        return cv.add("resize", [x], attrs, module=module)
    if scale_factor is None:
        cv.fail("interpolate needs a size or a scale factor")
    scale = tuple(ops.exact_scale(v) for v in _pair(scale_factor))
    if recompute_scale_factor and not all(isinstance(v, int) for v in scale):
        cv.fail("recompute_scale_factor=True with a fractional scale")
    attrs["scale"] = scale
    return cv.add("resize", [x], attrs, module=module)


def f_interpolate(cv, *args, **kwargs):
    a = _bind(("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias"),
              dict(size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                   antialias=False), args, kwargs, cv.where())
    return _interpolate(cv, a.pop("input"), **a)


def m_upsample(cv, m, qual, x):
    return _interpolate(cv, x, m.size, m.scale_factor, m.mode, m.align_corners,
                        getattr(m, "recompute_scale_factor", None), module=qual)


# ---------------------------------------------------------------- element-wise activations, derived
# PyTorch's approximate= forms of an activation: (op, approximate) -> the registry's op.
APPROXIMATE = {("gelu", "none"): "gelu", ("gelu", "tanh"): "gelu_tanh"}


def _approximate(cv, op, approximate):
    if approximate == "none" and (op, approximate) not in APPROXIMATE:
        return op
    found = APPROXIMATE.get((op, approximate))
    if found is None:
        cv.fail(f"{op}(approximate={approximate!r}) has no cnngraph equivalent")
    return found


def _act_module(op):
    param = ops.get(op).activation.param  # LeakyReLU's negative_slope, ELU's alpha

    def conv(cv, m, qual, x):
        name = _approximate(cv, op, getattr(m, "approximate", "none"))
        attrs = dict(inplace=bool(getattr(m, "inplace", False)))
        if param is not None:
            attrs[param] = float(getattr(m, param))
        return cv.add(name, [cv.tensor(x)], attrs, module=qual)

    return conv


def _act_function(op):
    param = ops.get(op).activation.param

    def conv(cv, x, *args, **kwargs):
        op_name = _approximate(cv, op, kwargs.get("approximate", "none"))
        if op_name != op:
            return cv.add(op_name, [cv.tensor(x)], dict(inplace=bool(kwargs.get("inplace", False))), base=op)
        attrs = dict(inplace=bool(kwargs.get("inplace", False)))
        if param is not None and (args or param in kwargs):  # else the registry's default
            attrs[param] = float(args[0] if args else kwargs[param])
        return cv.add(op, [cv.tensor(x)], attrs, base=op)

    return conv


def _activation_tables():
    """Module classes, functions and methods of every activation of the registry that has no
    weights: the class of ``torch.nn`` with the op's name (``nn.ReLU`` for ``relu``,
    ``nn.LeakyReLU`` for ``leaky_relu``), ``torch.nn.functional.<op>``, ``torch.<op>`` and the
    tensor method ``x.<op>()``."""
    classes = {c.__name__.lower(): c for c in vars(nn).values() if isinstance(c, type) and issubclass(c, nn.Module)}
    mods, fns, methods = {}, {}, {}
    for name, op in ops.ACTIVATIONS.items():
        if op.weights:  # PReLU: a module with a parameter (MODULES)
            continue
        if name.replace("_", "") in classes:
            mods[classes[name.replace("_", "")]] = _act_module(name)
        for where in (F, torch):
            f = getattr(where, name, None)
            if callable(f):
                fns[f] = _act_function(name)
        if hasattr(torch.Tensor, name):
            methods[name] = _act_function(name)
    return mods, fns, methods


# ---------------------------------------------------------------- the tables
_ACT_MODULES, _ACT_FUNCTIONS, _ACT_METHODS = _activation_tables()
_AAP = _adaptive("adaptive_avgpool2d")
_AMP = _adaptive("adaptive_maxpool2d")

MODULES = {
    nn.Conv2d: m_conv2d, nn.ConvTranspose2d: m_conv_transpose2d, nn.Linear: m_linear, nn.BatchNorm2d: m_batchnorm, nn.BatchNorm1d: m_batchnorm,
    nn.GroupNorm: m_groupnorm, nn.LayerNorm: m_layernorm, nn.LocalResponseNorm: m_lrn,
    nn.MaxPool2d: m_maxpool, nn.AvgPool2d: m_avgpool, nn.AdaptiveAvgPool2d: _AAP[0], nn.AdaptiveMaxPool2d: _AMP[0],
    nn.Flatten: m_flatten, nn.Dropout: m_dropout, nn.Dropout2d: m_dropout, nn.Identity: m_identity,
    nn.Softmax: m_softmax, nn.PReLU: m_prelu, nn.Upsample: m_upsample,
    nn.UpsamplingNearest2d: m_upsample, nn.UpsamplingBilinear2d: m_upsample, **_ACT_MODULES,
    nn.Softplus: m_softplus, nn.Hardtanh: m_hardtanh, nn.InstanceNorm2d: m_instancenorm,
    nn.PixelShuffle: m_pixel_shuffle, nn.PixelUnshuffle: m_pixel_unshuffle, nn.ZeroPad2d: m_zero_pad,
    nn.ConstantPad2d: m_zero_pad, nn.ReflectionPad2d: m_reflect_pad, nn.LogSoftmax: m_log_softmax,
}

FUNCTIONS = {
    F.max_pool2d: _known(f_maxpool), F.avg_pool2d: _known(f_avgpool), torch.max_pool2d: _known(f_maxpool),
    F.adaptive_avg_pool2d: _known(_AAP[1]), F.adaptive_max_pool2d: _known(_AMP[1]),
    torch.flatten: _known(f_flatten), torch.reshape: _known(f_reshape), torch.cat: _known(f_cat),
    torch.concat: _known(f_cat), torch.chunk: _known(_chunk), torch.split: _known(_split),
    torch.transpose: _known(_transpose), torch.permute: _known(_permute),
    F.interpolate: _known(f_interpolate), F.layer_norm: _known(f_layer_norm), F.dropout: _known(f_dropout), F.softmax: _known(f_softmax), torch.softmax: _known(f_softmax),
    operator.add: _known(_arith(operator.add, _merge_add)), operator.iadd: _known(_arith(operator.add, _merge_add)),
    torch.add: _known(_arith(operator.add, _merge_add)),
    operator.mul: _known(_arith(operator.mul, _merge_mul)), operator.imul: _known(_arith(operator.mul, _merge_mul)),
    torch.mul: _known(_arith(operator.mul, _merge_mul)),
    operator.sub: _known(_arith(operator.sub, _merge_sub)), torch.sub: _known(_arith(operator.sub, _merge_sub)),
    operator.isub: _known(_arith(operator.sub, _merge_sub)),
    operator.floordiv: _arith(operator.floordiv, None),
    operator.truediv: _known(_arith(operator.truediv, None)), torch.div: _known(_arith(operator.truediv, None)),
    operator.neg: _known(_neg), torch.neg: _known(_neg), operator.getitem: _known(f_getitem),
    torch.clamp: _known(_clamp), torch.clip: _known(_clamp), F.hardtanh: _known(f_hardtanh),
    F.instance_norm: _known(f_instance_norm), F.pixel_shuffle: _known(f_pixel_shuffle),
    F.pixel_unshuffle: _known(f_pixel_unshuffle), torch.pixel_shuffle: _known(f_pixel_shuffle),
    torch.pixel_unshuffle: _known(f_pixel_unshuffle), torch.squeeze: _known(f_squeeze), torch.mean: _known(f_mean),
    F.pad: _known(f_pad), F.log_softmax: _known(f_log_softmax), torch.log_softmax: _known(f_log_softmax),
    getattr: _known(f_getattr), F.batch_norm: _known(f_batch_norm),
    torch._assert: _known(f_assert), F.linear: _known(f_linear),
    **{op: _known(_compare(op)) for op in (operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge)},
    **{f: _known(c) for f, c in _ACT_FUNCTIONS.items()},
    F.softplus: _known(f_softplus),  # after the derived table: it checks PyTorch's threshold
}

METHODS = {
    "size": _known(method_size), "dim": _known(method_dim), "view": _known(method_view),
    "reshape": _known(method_view), "flatten": _known(lambda cv, x, start_dim=0, end_dim=-1: f_flatten(cv, x, start_dim, end_dim)),
    "contiguous": _known(_identity), "expand_as": _known(_expand_as), "transpose": _known(_transpose), "permute": _known(_permute),
    "chunk": _known(_chunk), "split": _known(_split), "mean": _known(method_mean),
    "add": _known(_arith(operator.add, _merge_add)), "add_": _known(_arith(operator.add, _merge_add)),
    "mul": _known(_arith(operator.mul, _merge_mul)), "mul_": _known(_arith(operator.mul, _merge_mul)),
    "sub": _known(_arith(operator.sub, _merge_sub)), "div": _known(_arith(operator.truediv, None)),
    "squeeze": _known(_squeeze), "log_softmax": _known(lambda cv, x, dim=None, **k: f_log_softmax(cv, x, dim)),
    "neg": _known(_neg), "clamp": _known(_clamp), "clip": _known(_clamp), "clamp_": _known(_clamp),
    "softmax": _known(lambda cv, x, dim=None, **k: _softmax(cv, x, dim)),
    **{m: _known(c) for m, c in _ACT_METHODS.items()},
}


def f_stochastic_depth(cv, input, p, mode, training=True):
    """torchvision's stochastic depth: the identity at inference."""
    if training:
        cv.fail("stochastic depth in training mode")
    return input


try:  # torchvision's channels-last permutation module (ConvNeXt) and its stochastic depth
    import torchvision.ops

    MODULES[torchvision.ops.misc.Permute] = m_permute
    FUNCTIONS[torchvision.ops.stochastic_depth] = _known(f_stochastic_depth)
except ImportError:  # pragma: no cover
    pass


# ---------------------------------------------------------------- the entry point
def from_torch(module, input=(3, H, W), name: str | None = None):
    """The graph of a PyTorch ``nn.Module`` for per-sample input ``input`` (sizes may be
    sympy expressions), with its ``state_dict`` as weights in ``g.graph["weights"]``.

    Node names are the modules' qualified names (``layer1.0.conv1``); functional calls are
    named after their enclosing module (``layer1.0.add``). Parameters of modules the
    forward pass never calls (GoogLeNet's auxiliary heads in eval mode) are listed in
    ``g.graph["unused_params"]`` with their element count. The module is traced in eval
    mode and left in the mode it was in.

    Raises :class:`TraceError` naming each module or call that could not be traced or has
    no cnngraph equivalent, with the reason.
    """
    if not isinstance(module, nn.Module):
        raise TraceError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    if type(module) in MODULES:  # a single layer: traced as the one layer of a Sequential
        module = nn.Sequential(module)
    graph = trace(module)
    cv = _Converter(module, name or type(module).__name__.lower(), tuple(input))
    g = cv.run(graph)
    g.graph["weights"] = cv.weights
    taken = set(cv.weights)
    unused = {}
    for k, v in module.named_parameters():
        if k not in taken:
            unused[k] = int(v.numel())
    g.graph["unused_params"] = unused
    return g
