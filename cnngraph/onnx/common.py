"""What the ONNX importer and its op handlers share: limits, value kinds (:class:`Const`,
:class:`Act`, :class:`Pointwise`, :class:`Pending`), tensor decoding and the element-wise
functions that recognise an activation by what it computes.

May import: :mod:`cnngraph.ir`, numpy, onnx (inside functions).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError

MAX_DIM = 2**31 - 1  # largest size accepted for any dimension
MAX_ELEMENTS = 2**31  # largest tensor accepted (elements)
MAX_FOLD = 1 << 22  # largest tensor the importer itself creates while folding constants
MAX_FILE = 2**31 - 1  # protobuf's limit for one message

# ONNX TensorProto data types -> (numpy dtype, typed field holding the values when not raw)
DTYPES = {1: (np.float32, "float_data"), 2: (np.uint8, "int32_data"), 3: (np.int8, "int32_data"),
           4: (np.uint16, "int32_data"), 5: (np.int16, "int32_data"), 6: (np.int32, "int32_data"),
           7: (np.int64, "int64_data"), 9: (np.bool_, "int32_data"), 10: (np.float16, "int32_data"),
           11: (np.float64, "double_data"), 12: (np.uint32, "uint64_data"), 13: (np.uint64, "uint64_data")}
FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16 inputs run as float32


# ---------------------------------------------------------------- values
@dataclass(eq=False)
class Const:
    """A constant: an initializer, a Constant node, or folded shape arithmetic (object dtype
    when it holds symbolic sizes)."""

    value: np.ndarray
    name: str = ""
    real: bool = False  # symbolic sizes cast to a float type: Div divides exactly (then Ceil/Floor round)


@dataclass(eq=False)
class Act:
    """A tensor computed by a node of the graph; ``shape`` includes the batch."""

    node: str
    shape: tuple


@dataclass(eq=False)
class Pointwise:
    """An element-wise function of one tensor ``src``, recognised when it is used.

    ``op`` computes this node from its operands' values; operands are the source
    :class:`Act`, other :class:`Pointwise` of the same source, or scalar :class:`Const`.
    """

    src: Act
    op: object  # (*operand arrays) -> array
    where: str  # the ONNX node
    op_type: str
    operands: tuple
    chain: tuple  # ONNX node names of the whole chain
    act: Act | None = None  # the node it became, once used

    @property
    def shape(self):
        return self.src.shape

    def fn(self, t, cut=None, reached=None):
        """This node as a function of the source, or of ``cut``'s value when ``cut`` is given
        (``reached[0]`` tells whether some path still went around ``cut`` to the source)."""
        vals = []
        for o in self.operands:
            if o is cut:
                vals.append(t)
            elif isinstance(o, Pointwise):
                vals.append(o.fn(t, cut, reached))
            elif isinstance(o, Const):
                vals.append(np.full_like(t, float(np.asarray(o.value).reshape(-1)[0])))
            else:
                if reached is not None:
                    reached[0] = True
                vals.append(t)
        return self.op(*vals)

    def inner(self):
        """The Pointwise nodes this one is computed from, the source side first."""
        out, seen = [], set()

        def visit(p):
            for o in p.operands:
                if isinstance(o, Pointwise) and id(o) not in seen:
                    seen.add(id(o))
                    visit(o)
                    out.append(o)

        visit(self)
        return out


@dataclass(eq=False)
class Pending:
    """Part of a multi-node pattern (a reshape view, a strip of an adaptive pooling...)."""

    kind: str
    src: object
    shape: tuple
    where: str
    info: dict = field(default_factory=dict)
    act: Act | None = None  # the node it became, if it was used as a tensor


# ---------------------------------------------------------------- reading
def read_model(src):
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(src, onnx.ModelProto):
        return src, "model"
    if isinstance(src, (bytes, bytearray, memoryview)):
        data, label = bytes(src), "bytes"
    else:
        p = Path(src)
        if not p.is_file():
            raise CnnGraphError(f"no such ONNX file: {p}")
        size = p.stat().st_size
        if size > MAX_FILE:
            raise CnnGraphError(f"{p.name}: {size} bytes is over protobuf's 2 GB limit; models with external "
                                "data are not supported")
        data, label = p.read_bytes(), p.name
    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise CnnGraphError(f"{label}: not a readable ONNX model (truncated or not protobuf): {e}") from None
    if not m.HasField("graph"):
        raise CnnGraphError(f"{label}: not an ONNX model (no graph)")
    return m, label


def tensor_array(t, what: str) -> np.ndarray:
    """A TensorProto as an array, after checking its declared dims against its data.

    Refuses external data, unsupported types and sizes over :data:`MAX_ELEMENTS` without
    allocating anything.
    """
    if t.data_location == 1 or len(t.external_data):
        raise CnnGraphError(f"{what}: tensor {t.name!r} keeps its data in an external file; external data is "
                            "not supported (save the model as a single file)")
    if t.HasField("segment"):
        raise CnnGraphError(f"{what}: tensor {t.name!r} is segmented, which is not supported")
    if t.data_type not in DTYPES:
        raise CnnGraphError(f"{what}: tensor {t.name!r} has data type {t.data_type}, which cnngraph does not read "
                            "(numbers only: float16/32/64 and integers)")
    dims = list(t.dims)
    n = 1
    for d in dims:
        if d < 0 or d > MAX_DIM:
            raise CnnGraphError(f"{what}: tensor {t.name!r} declares dims {dims}: sizes must be 0 to {MAX_DIM}")
        n *= d
        if n > MAX_ELEMENTS:
            raise CnnGraphError(f"{what}: tensor {t.name!r} declares dims {dims}: over {MAX_ELEMENTS} elements")
    dtype, typed = DTYPES[t.data_type]
    if t.raw_data:
        size = np.dtype(dtype).itemsize
        if len(t.raw_data) != n * size:
            raise CnnGraphError(f"{what}: tensor {t.name!r} declares dims {dims} ({n} × {size} bytes) but holds "
                                f"{len(t.raw_data)} bytes")
        a = np.frombuffer(t.raw_data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
    else:
        vals = getattr(t, typed)
        if len(vals) != n:
            raise CnnGraphError(f"{what}: tensor {t.name!r} declares dims {dims} ({n} values) but holds {len(vals)}")
        if t.data_type == 10:  # float16 bits stored in int32_data
            a = np.asarray(vals, dtype=np.uint16).view(np.float16)
        else:
            a = np.asarray(vals).astype(dtype)
    return a.reshape(dims)


def node_attrs(node, where):
    import onnx

    out = {}
    for a in node.attribute:
        t = a.type
        if t == onnx.AttributeProto.INT:
            out[a.name] = int(a.i)
        elif t == onnx.AttributeProto.FLOAT:
            out[a.name] = float(a.f)
        elif t == onnx.AttributeProto.INTS:
            out[a.name] = [int(v) for v in a.ints]
        elif t == onnx.AttributeProto.FLOATS:
            out[a.name] = [float(v) for v in a.floats]
        elif t == onnx.AttributeProto.STRING:
            out[a.name] = a.s.decode("utf-8", "replace")
        elif t == onnx.AttributeProto.TENSOR:
            out[a.name] = tensor_array(a.t, where)
        elif t in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise CnnGraphError(f"{where}: sub-graphs (control flow) are not supported")
        else:
            out[a.name] = None
    return out


# ---------------------------------------------------------------- element-wise functions
verf = np.vectorize(math.erf, otypes=[np.float64])


def sigmoid64(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def _reference(op):
    """The registry's reference function of activation ``op`` in float64, default attributes."""
    return lambda v: op.activation.ref(np, verf, v, op.defaults)


# The activations an element-wise chain is recognised as (by what it computes): the registry's
# activations without weights; one with a parameter (a slope, an α) is recognised with the
# parameter it must have (see :func:`identify`).
ACTIVATIONS = {name: _reference(op) for name, op in ops.ACTIVATIONS.items() if op.weights is None}
# Sample points: both sides of every kink (0, ±3, 6) and the tails.
_SAMPLES = np.concatenate([np.linspace(-8.0, 8.0, 41) + 0.0137, [-30.0, -12.5, 12.5, 30.0]])

# Whether the DSL makes each activation in place by default (torchvision's ReLU(inplace=True)...).
INPLACE_DEFAULT = {name: op.activation.inplace for name, op in ops.ACTIVATIONS.items()}


def identify(fn, extended: bool = False):
    """What an element-wise function is: ``(op, attrs)``, ``("identity", {})`` or None.

    ``extended`` also recognises the constant arithmetic ``factor·x + shift`` with a shift
    and clamps to any bounds (``clip``); the importer tries these only when the activations
    and plain scales cannot express a chain, so that known patterns keep their one layer.

    >>> identify(lambda v: v * (1 / (1 + np.exp(-v))))
    ('silu', {})
    >>> identify(lambda v: 0.25 * v)
    ('scale', {'factor': 0.25})
    >>> identify(lambda v: 1.0 - v / 2, extended=True)
    ('scale', {'factor': -0.5, 'shift': 1.0})
    >>> identify(lambda v: np.clip(v, -1.0, 2.5), extended=True)
    ('clip', {'low': -1.0, 'high': 2.5})
    """
    with np.errstate(all="ignore"):
        y = np.asarray(fn(_SAMPLES.copy()), dtype=np.float64)
        one = float(np.asarray(fn(np.array([1.0])), dtype=np.float64)[0])
        zero = float(np.asarray(fn(np.array([0.0])), dtype=np.float64)[0])
    if y.shape != _SAMPLES.shape or not np.all(np.isfinite(y)):
        return None
    for name, f in ACTIVATIONS.items():
        op = ops.get(name)
        param = op.activation.param
        attrs = {}
        if param is not None:
            value = _fit(op, fn)
            if value is None:
                continue
            attrs = {param: short_float(value)}
            f = (lambda op, a: lambda v: op.activation.ref(np, verf, v, {**op.defaults, **a}))(op, attrs)
        with np.errstate(all="ignore"):
            if np.allclose(y, f(_SAMPLES), rtol=1e-5, atol=1e-6):
                return name, attrs
    if np.allclose(y, one * _SAMPLES, rtol=1e-6, atol=1e-9):
        if abs(one - 1.0) < 1e-7:
            return "identity", {}
        return "scale", {"factor": short_float(one)}
    if not extended:
        return None
    if np.allclose(y, (one - zero) * _SAMPLES + zero, rtol=1e-6, atol=1e-7):
        return "scale", {"factor": short_float(one - zero), "shift": short_float(zero)}
    return _clip_of(fn)


def _fit(op, fn):
    """The parameter value for which activation ``op`` could be ``fn`` (checked by the caller)."""
    act = op.activation
    with np.errstate(all="ignore"):
        if act.fit is not None:
            value = act.fit(lambda v: float(np.asarray(fn(np.array([v])), dtype=np.float64)[0]))
        else:  # linear in its parameter at -1: fit it there
            unit = float(act.ref(np, verf, np.array([-1.0]), {**op.defaults, act.param: 1.0})[0])
            value = float(np.asarray(fn(np.array([-1.0])), dtype=np.float64)[0]) / unit
    if value is None or not np.isfinite(value) or value <= 0:
        return None
    return value


_WIDE = np.concatenate([-np.logspace(-3, 30, 67)[::-1], [0.0], np.logspace(-3, 30, 67)])


def _clip_of(fn):
    """``("clip", {low, high})`` when ``fn`` clamps to bounds (None: unbounded), else None."""
    with np.errstate(all="ignore"):
        y = np.asarray(fn(_WIDE.copy()), dtype=np.float64)
    if y.shape != _WIDE.shape or np.isnan(y).any():
        return None
    lo = None if y[0] <= -1e29 else float(y[0])
    hi = None if y[-1] >= 1e29 else float(y[-1])
    if lo is None and hi is None or lo is not None and hi is not None and not lo < hi:
        return None
    grid = np.concatenate([_SAMPLES, _WIDE])
    with np.errstate(all="ignore"):
        yy = np.asarray(fn(grid.copy()), dtype=np.float64)
    if not np.allclose(yy, np.clip(grid, lo, hi), rtol=1e-6, atol=1e-7):
        return None
    return "clip", {"low": None if lo is None else short_float(lo), "high": None if hi is None else short_float(hi)}


def known_activation(found):
    """An identified function that the registry has (or the identity), else None."""
    if found is None or (found[0] not in ops.REGISTRY and found[0] != "identity"):
        return None
    return found


def short_float(x: float) -> float:
    """The shortest decimal that is the same float32 (0.30000001192 -> 0.3)."""
    return float(str(np.float32(x)))


# ---------------------------------------------------------------- helpers
def same_size(a, b):
    return ops.same(a, b) is True


def as_num(x):
    """A Python int/float or sympy value from a numpy scalar."""
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return x


def as_ints(a, where, what):
    try:
        return [int(v) for v in np.asarray(a).reshape(-1)]
    except (TypeError, ValueError):
        raise CnnGraphError(f"{where}: {what} must be numbers known when importing, got {list(np.asarray(a).reshape(-1))}") from None


def scalar_of(c: Const):
    v = np.asarray(c.value)
    if v.dtype == object or v.size == 0:
        return None
    flat = v.reshape(-1)
    if v.size == 1 or np.all(flat == flat[0]):
        return float(flat[0])
    return None


def strip_weight_suffix(name: str, suffixes=(".weight", ".bias", ".running_mean", ".running_var")):
    for s in suffixes:
        if name.endswith(s) and len(name) > len(s):
            return name[: -len(s)]
    return None


def torch_name_scopes(node) -> str | None:
    """The legacy-style scoped name (``/layer1/layer1.0/layer1.0.relu/relu_1``) of a node written
    by torch's dynamo exporter, from its ``pkg.torch.onnx.name_scopes`` metadata
    (``['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_1']``, read as quoted strings, never
    evaluated), else None."""
    import re

    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            parts = [s for s in re.findall(r"'((?:[^'\\]|\\.)*)'", p.value) if s]
            return "/" + "/".join(parts) if len(parts) >= 2 else None
    return None


def onnx_scope(onnx_name: str):
    """PyTorch's ``/layer1/layer1.0/relu/Relu_1`` -> (``layer1.0.relu``, ``relu_1``)."""
    parts = [p for p in onnx_name.split("/") if p]
    if not parts:
        return "", onnx_name
    op, scopes = parts[-1], parts[:-1]
    full = ""
    for p in scopes:
        full = p if (not full or p.startswith(full + ".")) else f"{full}.{p}"
    return full, op.lower()


# ---------------------------------------------------------------- the importer
PENDING_TEXT = {
    "view": "a reshaped view of a tensor",
    "split_channels": "a channel-split reshape",
    "swapped": "a channel-split reshape and transpose",
    "blocks": "a reshape into r×r blocks of space",
    "half_squeezed": "an N×C×1×1 tensor squeezed along its width only",
    "blocks_moved": "a reshape into r×r blocks of space and a transpose",
    "groups": "a reshape into channel groups",
    "grouped_norm": "a group-wise normalization",
    "subsample": "a strided slice",
    "neg_pad": "a padding with -inf (supported before a max pooling)",
    "spatial_slice": "a slice along height or width",
    "strip": "a pooling of one strip",
    "adaptive_partial": "an adaptive pooling along one axis",
    "square": "a square",
    "lrn_sq": "the x² of an LRN",
    "lrn_padded": "the padded x² of an LRN",
    "lrn_window": "the window sums of an LRN",
    "lrn_mean": "the window means of an LRN",
    "lrn_alpha": "an LRN's α·mean",
    "lrn_k": "an LRN's k + α·mean",
    "lrn_den": "an LRN's denominator",
    "unsqueezed": "an unsqueezed vector",
    "channels_last": "a channels-last (N×H×W×C) transpose",
    "rbf_diff": "a difference with a constant matrix",
    "rbf_square": "a squared difference with a constant matrix",
    "radix_view": "a view into (groups, radix, rest) of a split attention",
    "radix_swapped": "the radix-first transpose of a split attention",
    "radix_softmaxed": "the softmax over the radix of a split attention",
    "stack_part": "one tensor of a torch.stack",
    "zero_pad": "a zero padding",
}


