"""Import an ONNX model as a graph, with its weights under state_dict-style names.

:func:`load` reads a file (or bytes, or a ``ModelProto``) and returns a :class:`CnnGraph`
whose ``graph.graph["weights"]`` holds the weights (``{node}.weight``, ``{node}.bias``,
``{node}.running_mean``...), so ``to_torch(g, g.graph["weights"])`` runs it.

How ONNX maps to the IR:

* layers map one to one (Conv, pools, Gemm, BatchNormalization, Concat, Softmax, LRN...);
  a MatMul or a bias-less Conv followed by the Add of a constant becomes one layer with a bias;
* element-wise chains are recognised by what they compute, not by their spelling: the chain
  ``x·sigmoid(x)`` is SiLU, ``0.5·x·(1 + erf(x/√2))`` GELU, ``x·clip(x + 3, 0, 6)/6``
  hard swish, a Clip to [0, 6] ReLU6, a multiplication by a number a ``scale``;
* shape arithmetic (Shape, Gather, Unsqueeze, Concat, Cast, Div... on constants and on the
  symbolic sizes of tensors) is folded, so PyTorch's ``x.view(x.size(0), -1)`` is a flatten
  and its ``view/transpose/view`` a channel shuffle; group norm's Reshape /
  InstanceNormalization / Reshape / Mul / Add is one group norm;
* dim_params (``N``, ``H``, ``W``) become positive-integer symbols: an imported model has
  formulas, ``cnngraph.analyze(g)`` gives symbolic totals.

Node names: a layer with weights takes its name from them (initializer ``layer1.0.conv1.weight``
-> node ``layer1.0.conv1``); PyTorch's scoped names (``/layer1/layer1.0/relu/Relu``) become
module paths (``layer1.0.relu``); other ONNX node names are kept.

Bad files fail with :class:`CnnGraphError`: unsupported ops are listed with their nodes;
truncated or malformed data, declared sizes that disagree with the data, huge sizes and
external-data references are refused before any large allocation.

>>> from cnngraph import zoo, weights, analyze
>>> from cnngraph.onnx import export
>>> g = zoo.build("resnet18", input=(3, 64, 64))
>>> h = load(export(g, weights.init(g, seed=0)))
>>> analyze(h).total.macs == analyze(g).total.macs, h.nodes["layer1.0.conv1"]["op"]
(True, 'conv2d')
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy

from . import ops
from .errors import CnnGraphError, GraphError, ShapeError
from .graph import CnnGraph, add_node
from .symbols import sym

MAX_DIM = 2**31 - 1  # largest size accepted for any dimension
MAX_ELEMENTS = 2**31  # largest tensor accepted (elements)
MAX_FOLD = 1 << 22  # largest tensor the importer itself creates while folding constants
MAX_FILE = 2**31 - 1  # protobuf's limit for one message

# ONNX TensorProto data types -> (numpy dtype, typed field holding the values when not raw)
_DTYPES = {1: (np.float32, "float_data"), 2: (np.uint8, "int32_data"), 3: (np.int8, "int32_data"),
           4: (np.uint16, "int32_data"), 5: (np.int16, "int32_data"), 6: (np.int32, "int32_data"),
           7: (np.int64, "int64_data"), 9: (np.bool_, "int32_data"), 10: (np.float16, "int32_data"),
           11: (np.float64, "double_data"), 12: (np.uint32, "uint64_data"), 13: (np.uint64, "uint64_data")}
_FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16 inputs run as float32


# ---------------------------------------------------------------- values
@dataclass(eq=False)
class Const:
    """A constant: an initializer, a Constant node, or folded shape arithmetic (object dtype
    when it holds symbolic sizes)."""

    value: np.ndarray
    name: str = ""


@dataclass(eq=False)
class Act:
    """A tensor computed by a node of the graph; ``shape`` includes the batch."""

    node: str
    shape: tuple


@dataclass(eq=False)
class Pointwise:
    """An element-wise function of one tensor, recognised when it is used."""

    src: Act
    fn: object  # float64 ndarray -> ndarray
    where: str  # the last ONNX node of the chain
    op_type: str
    operands: tuple  # the values it was computed from (structural fallback)
    chain: tuple  # ONNX node names of the whole chain
    act: Act | None = None  # the node it became, once used

    @property
    def shape(self):
        return self.src.shape


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
def _read(src):
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
    if t.data_type not in _DTYPES:
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
    dtype, typed = _DTYPES[t.data_type]
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


def _attrs(node, where):
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
_verf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))


ACTIVATIONS = {
    "relu": lambda v: np.maximum(v, 0.0),
    "relu6": lambda v: np.clip(v, 0.0, 6.0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "silu": lambda v: v * _sigmoid(v),
    "hardswish": lambda v: v * np.clip(v + 3.0, 0.0, 6.0) / 6.0,
    "hardsigmoid": lambda v: np.clip(v / 6.0 + 0.5, 0.0, 1.0),
    "gelu": lambda v: 0.5 * v * (1.0 + _verf(v / math.sqrt(2.0))),
}
# Sample points: both sides of every kink (0, ±3, 6) and the tails.
_SAMPLES = np.concatenate([np.linspace(-8.0, 8.0, 41) + 0.0137, [-30.0, -12.5, 12.5, 30.0]])

UNARY = {
    "Relu": lambda a: lambda v: np.maximum(v, 0.0),
    "Sigmoid": lambda a: _sigmoid,
    "Tanh": lambda a: np.tanh,
    "Erf": lambda a: _verf,
    "Exp": lambda a: np.exp,
    "Neg": lambda a: np.negative,
    "Abs": lambda a: np.abs,
    "Sqrt": lambda a: lambda v: np.sqrt(np.abs(v)) * np.sign(v),
    "Reciprocal": lambda a: lambda v: 1.0 / v,
    "Softplus": lambda a: lambda v: np.logaddexp(0.0, v),
    "Softsign": lambda a: lambda v: v / (1.0 + np.abs(v)),
    "LeakyRelu": lambda a: lambda v: np.where(v >= 0, v, a.get("alpha", 0.01) * v),
    "Elu": lambda a: lambda v: np.where(v >= 0, v, a.get("alpha", 1.0) * np.expm1(np.minimum(v, 0))),
    "HardSigmoid": lambda a: lambda v: np.clip(a.get("alpha", 0.2) * v + a.get("beta", 0.5), 0.0, 1.0),
    "HardSwish": lambda a: ACTIVATIONS["hardswish"],
    "Gelu": lambda a: (ACTIVATIONS["gelu"] if a.get("approximate", "none") == "none" else
                       lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))),
}
# Activations the DSL makes in place by default (torchvision's ReLU(inplace=True)...).
INPLACE_DEFAULT = {"relu": True, "relu6": True, "silu": True, "hardswish": True, "hardsigmoid": True,
                   "tanh": False, "sigmoid": False, "gelu": False}
BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
          "Max": np.maximum, "Min": np.minimum, "Sum": np.add}


def identify(fn):
    """What an element-wise function is: ``(op, attrs)``, ``("identity", {})`` or None.

    >>> identify(lambda v: v * (1 / (1 + np.exp(-v))))
    ('silu', {})
    >>> identify(lambda v: 0.25 * v)
    ('scale', {'factor': 0.25})
    """
    with np.errstate(all="ignore"):
        y = np.asarray(fn(_SAMPLES.copy()), dtype=np.float64)
        one = float(np.asarray(fn(np.array([1.0])), dtype=np.float64)[0])
    if y.shape != _SAMPLES.shape or not np.all(np.isfinite(y)):
        return None
    for name, f in ACTIVATIONS.items():
        if np.allclose(y, f(_SAMPLES), rtol=1e-5, atol=1e-6):
            return name, {}
    if np.allclose(y, one * _SAMPLES, rtol=1e-6, atol=1e-9):
        if abs(one - 1.0) < 1e-7:
            return "identity", {}
        return "scale", {"factor": _short(one)}
    return None


def _short(x: float) -> float:
    """The shortest decimal that is the same float32 (0.30000001192 -> 0.3)."""
    return float(str(np.float32(x)))


# ---------------------------------------------------------------- helpers
def _same(a, b):
    return ops.same(a, b) is True


def _num(x):
    """A Python int/float or sympy value from a numpy scalar."""
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return x


def _ints(a, where, what):
    try:
        return [int(v) for v in np.asarray(a).reshape(-1)]
    except (TypeError, ValueError):
        raise CnnGraphError(f"{where}: {what} must be numbers known when importing, got {list(np.asarray(a).reshape(-1))}") from None


def _scalar(c: Const):
    v = np.asarray(c.value)
    if v.dtype == object or v.size == 0:
        return None
    flat = v.reshape(-1)
    if v.size == 1 or np.all(flat == flat[0]):
        return float(flat[0])
    return None


def _strip_suffix(name: str, suffixes=(".weight", ".bias", ".running_mean", ".running_var")):
    for s in suffixes:
        if name.endswith(s) and len(name) > len(s):
            return name[: -len(s)]
    return None


def _scope(onnx_name: str):
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
class _Importer:
    def __init__(self, model, label):
        self.m, self.label = model, label
        self.opset = 1
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                self.opset = o.version
        self.g = CnnGraph(name=model.graph.name or label, inputs=[], outputs=[], notes=[])
        self.values: dict = {}
        self.weights: dict = {}  # node -> {field: array}
        self.prefix: dict = {}  # node -> state_dict prefix found in initializer names
        self.onnx_name: dict = {}  # node -> ONNX node name it came from (last one fused)
        self.batch = None
        self.docs = {n.name: n.doc_string for n in model.graph.node if n.doc_string}

    # -------------------------------------------------------- value access
    def val(self, name, where):
        if name not in self.values:
            raise CnnGraphError(f"{where}: input {name!r} is produced by no node, initializer or graph input "
                                "(truncated or malformed model)")
        return self.values[name]

    def const(self, name, where, what):
        v = self.val(name, where)
        if not isinstance(v, Const):
            raise CnnGraphError(f"{where}: {what} ({name!r}) must be a constant (an initializer or folded "
                                "shape arithmetic), not a computed tensor")
        return v

    def act(self, v, where) -> Act:
        """A value as a graph tensor: element-wise chains and patterns become nodes here."""
        if isinstance(v, Act):
            return v
        if isinstance(v, Pointwise):
            return self._materialize(v)
        if isinstance(v, Pending):
            if v.act is not None:
                return v.act
            if v.kind == "square":  # x·x that did not turn out to be part of an LRN
                v.act = self.new("mul", {}, [v.src, v.src], v.where)
                return v.act
            if v.kind == "spatial_slice" and isinstance(v.src, Act) and "pad2d" in ops.REGISTRY:
                v.act = self._crop(v)
                return v.act
            raise CnnGraphError(f"{v.where}: {_PENDING_TEXT.get(v.kind, v.kind)} is used by {where}, which does "
                                "not complete the pattern; cnngraph cannot express it")
        raise CnnGraphError(f"{where}: expects a computed tensor, got a constant; constant-only branches are "
                            "not supported")

    # -------------------------------------------------------- nodes
    def new(self, op, attrs, inputs, where, prefix=None, weights=None):
        """Add a layer named after ``prefix`` (from initializer names) or the ONNX node."""
        base = prefix or where
        name, k = base, 1
        while name in self.g:
            name, k = f"{base}_{k}", k + 1
        try:
            shape = add_node(self.g, name, op, attrs, [a.node for a in inputs])
        except ShapeError as e:
            raise ShapeError(f"{where} ({op})", e.rule, e.numbers) from None
        if prefix:
            self.prefix[name] = prefix
        self.onnx_name[name] = where
        if weights:
            self.weights[name] = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        return Act(name, (self.batch,) + tuple(shape))

    def _materialize(self, pw: Pointwise) -> Act:
        if pw.act is not None:
            return pw.act
        found = identify(pw.fn)
        if found is not None:
            op, attrs = found
            if op == "identity":
                pw.act = pw.src
                return pw.src
            if op in ops.REGISTRY:
                if op in INPLACE_DEFAULT:
                    attrs = {"inplace": self._inplace(pw.where, INPLACE_DEFAULT[op]), **attrs}
                pw.act = self.new(op, attrs, [pw.src], pw.where)
                return pw.act
        # Not an activation: a sum or product of tensors is still expressible as add / mul.
        parts = [o for o in pw.operands if not isinstance(o, Const)]
        if pw.op_type in ("Add", "Sum", "Mul") and len(parts) == len(pw.operands) >= 2:
            acts = [self.act(o, pw.where) for o in parts]
            pw.act = self._merge(pw.op_type, acts, pw.where)
            return pw.act
        raise CnnGraphError(f"{pw.where}: the element-wise function computed by {', '.join(pw.chain)} is not one of "
                            f"cnngraph's activations ({', '.join(ACTIVATIONS)}, scale by a number)")

    def _merge(self, op_type, acts, where):
        if op_type == "Mul":
            a, b = acts

            def is_scale(t):
                return len(t.shape) == 2 or all(s == 1 for s in t.shape[2:])

            if is_scale(a) and not is_scale(b):  # mul(x, s): the feature map first
                a, b = b, a
            return self.new("mul", {}, [a, b], where)
        return self.new("add", {}, acts, where)

    def _inplace(self, where, default):
        """cnngraph's export says whether an activation is in place; else the DSL's default."""
        doc = self.docs.get(where, "")
        if "cnngraph: not in place" in doc:
            return False
        if "cnngraph: in place" in doc:
            return True
        return default

    def _crop(self, p: Pending) -> Act:
        x = p.src
        axis, s, e = p.info["axis"], p.info["start"], p.info["end"]
        L = x.shape[axis]
        pads = [0, 0, 0, 0]
        pads[axis - 2] = -s  # top or left
        pads[axis] = -(int(L) - e)  # bottom or right
        return self.new("pad2d", {"padding": tuple(ops.tidy(v) for v in pads)}, [x], p.where)

    # -------------------------------------------------------- driver
    def run(self):
        gp = self.m.graph
        if gp.sparse_initializer:
            raise CnnGraphError(f"{self.label}: sparse initializers are not supported")
        for t in gp.initializer:
            self.values[t.name] = Const(tensor_array(t, f"initializer {t.name!r}"), t.name)
        real_inputs = [i for i in gp.input if i.name not in self.values]
        if not real_inputs:
            raise CnnGraphError(f"{self.label}: the model has no input tensor")
        for i in real_inputs:
            self._input(i)
        if not gp.output:
            raise CnnGraphError(f"{self.label}: the model declares no output")
        nodes = self._needed(gp)
        self._check_supported(nodes)
        for node in nodes:
            self._node(node)
        outs = []
        for o in gp.output:
            a = self.act(self.val(o.name, f"output {o.name!r}"), f"output {o.name!r}")
            outs.append(a.node)
        self.g.graph["outputs"] = outs
        return self._finish()

    def _input(self, vi):
        import onnx

        where = f"input {vi.name!r}"
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if tt is None:
            raise CnnGraphError(f"{where}: only tensor inputs are supported")
        if tt.elem_type not in _FLOAT_TYPES:
            raise CnnGraphError(f"{where}: element type {onnx.TensorProto.DataType.Name(tt.elem_type)} is not a "
                                "floating-point image or vector")
        if not tt.HasField("shape"):
            raise CnnGraphError(f"{where}: the input has no declared shape (rank unknown)")
        dims = []
        rank = len(tt.shape.dim)
        default = {4: ["N", "C", "H", "W"], 2: ["N", "F"]}.get(rank)
        if default is None:
            raise CnnGraphError(f"{where}: rank {rank} inputs are not supported (N×C×H×W images or N×F vectors)")
        for k, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                if not 0 < d.dim_value <= MAX_DIM:
                    raise CnnGraphError(f"{where}: dimension {k} is {d.dim_value}; sizes must be 1 to {MAX_DIM}")
                dims.append(int(d.dim_value))
            elif d.dim_param:
                dims.append(sym(_symbol_name(d.dim_param)))
            else:
                dims.append(sym(default[k]))
        batch = dims[0]
        if self.batch is None:
            self.batch = batch
            self.g.graph["batch"] = batch
        elif not _same(batch, self.batch):
            raise CnnGraphError(f"{where}: batch {batch} differs from the first input's {self.batch}")
        add_node(self.g, vi.name, "input", {"shape": tuple(dims[1:])})
        self.onnx_name[vi.name] = vi.name
        self.values[vi.name] = Act(vi.name, tuple(dims))

    def _needed(self, gp):
        """The nodes the outputs depend on, in a dependency order (not trusting the file's)."""
        producer = {}
        for idx, n in enumerate(gp.node):
            for o in n.output:
                if o:
                    producer[o] = idx
        need, stack = set(), [o.name for o in gp.output]
        while stack:
            v = stack.pop()
            idx = producer.get(v)
            if idx is None or idx in need:
                continue
            need.add(idx)
            stack.extend(i for i in gp.node[idx].input if i)
        order = self._order([gp.node[i] for i in sorted(need)], producer, gp, need)
        self.consumers = {}
        for n in order:
            for i in n.input:
                self.consumers[i] = self.consumers.get(i, 0) + 1
        for o in gp.output:
            self.consumers[o.name] = self.consumers.get(o.name, 0) + 1
        return order

    def _order(self, nodes, producer, gp, need):
        """The file's order when it is a valid one (the usual case), else a depth-first order."""
        ready = set(self.values)
        for n in nodes:
            if any(i and i not in ready and i in producer for i in n.input):
                break
            ready.update(o for o in n.output if o)
        else:
            return nodes
        order, state = [], {}
        for start in sorted(need):
            if state.get(start):
                continue
            stack = [(start, False)]
            while stack:
                idx, done = stack.pop()
                if done:
                    state[idx] = 2
                    order.append(gp.node[idx])
                    continue
                if state.get(idx):
                    continue
                state[idx] = 1  # on the current path until its exit marker pops
                stack.append((idx, True))
                for i in gp.node[idx].input:
                    j = producer.get(i)
                    if j is not None and j in need:
                        if state.get(j) == 1:
                            raise GraphError(f"{gp.node[idx].name or gp.node[idx].op_type}: the ONNX graph has a cycle")
                        if not state.get(j):
                            stack.append((j, False))
        return order

    def _check_supported(self, nodes):
        bad = {}
        for n in nodes:
            key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
            if n.domain not in ("", "ai.onnx") or n.op_type not in HANDLERS:
                bad.setdefault(key, []).append(n.name or (n.output[0] if n.output else "?"))
        if bad:
            parts = [f"{k} ({', '.join(v[:4])}{' ...' if len(v) > 4 else ''})" for k, v in sorted(bad.items())]
            raise CnnGraphError(f"{self.label}: unsupported ONNX op types: " + "; ".join(parts))

    def _node(self, node):
        where = node.name or f"{node.op_type}({node.output[0] if node.output else ''})"
        attrs = _attrs(node, where)
        try:
            out = HANDLERS[node.op_type](self, node, attrs, where)
        except CnnGraphError:
            raise
        except (IndexError, KeyError, ValueError, TypeError) as e:
            raise CnnGraphError(f"{where}: malformed {node.op_type} node ({type(e).__name__}: {e})") from None
        if not isinstance(out, (list, tuple)):
            out = [out]
        for name, v in zip(node.output, out):
            if name:
                self.values[name] = v

    def _finish(self):
        g = self.g
        names = self._final_names()
        ws = {}
        for old, fields in self.weights.items():
            for f, arr in fields.items():
                if not f.startswith("_"):  # "_bias_open": bookkeeping of a fusion
                    ws[f"{names[old]}.{f}"] = arr
        h = CnnGraph(**{k: v for k, v in g.graph.items()})
        for n in g.nodes:
            d = dict(g.nodes[n])
            new = names[n]
            d["inputs"] = [names[i] for i in d["inputs"]]
            d["path"] = tuple((p, "module") for p in new.split(".")[:-1]) if "." in new else ()
            h.add_node(new, **d)
        for u, v, d in g.edges(data=True):
            h.add_edge(names[u], names[v], **d)
        h.graph["inputs"] = [names[i] for i in g.graph["inputs"]]
        h.graph["outputs"] = [names[o] for o in g.graph["outputs"]]
        h.graph["weights"] = ws
        h.graph["opset"] = self.opset
        h.graph["producer"] = f"{self.m.producer_name} {self.m.producer_version}".strip()
        return h

    def _final_names(self):
        """Initializer prefixes first, then PyTorch scopes as module paths, then ONNX names."""
        g = self.g
        final, scoped = {}, {}
        for n in g.nodes:
            if n in self.prefix:
                final[n] = self.prefix[n]
            elif self.onnx_name.get(n, n).startswith("/"):
                scoped[n] = _scope(self.onnx_name[n])
            else:
                final[n] = n
        taken_scopes = {}
        for n, (s, _) in scoped.items():
            taken_scopes[s] = taken_scopes.get(s, 0) + 1
        named = set(final.values())
        for n, (s, op) in scoped.items():
            inner = any(v.startswith(s + ".") for v in named) or any(t.startswith(s + ".") for t in taken_scopes)
            if s and taken_scopes[s] == 1 and not inner and s not in named:
                final[n] = s
            else:
                final[n] = f"{s}.{op}" if s else op
        out, used = {}, set()
        for n in g.nodes:  # insertion order: the first keeps the name
            base = final[n]
            name, k = base, 1
            while name in used:
                name, k = f"{base}_{k}", k + 1
            used.add(name)
            out[n] = name
        return out


def _symbol_name(p: str) -> str:
    """dim_params that are not identifiers ('batch size', 'unk__12') still make usable symbols."""
    s = "".join(c if c.isalnum() or c == "_" else "_" for c in p.strip())
    if not s or s[0].isdigit():
        s = "d_" + s
    return s


_PENDING_TEXT = {
    "view": "a reshaped view of a tensor",
    "split_channels": "a channel-split reshape",
    "swapped": "a channel-split reshape and transpose",
    "groups": "a reshape into channel groups",
    "grouped_norm": "a group-wise normalization",
    "subsample": "a strided slice",
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
    "rbf_diff": "a difference with a constant matrix",
    "rbf_square": "a squared difference with a constant matrix",
}


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
            p = _strip_suffix(v.name if isinstance(v, Const) and v.name else name)
            if p:
                return p
    return None


def _float_const(imp, node, k, where, what):
    c = imp.const(node.input[k], where, what)
    a = np.asarray(c.value)
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
        raise CnnGraphError(f"{where}: {what} must be numbers")
    return a.astype(np.float32), c


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
    x = imp.act(imp.val(node.input[0], where), where)
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
    ws = {"weight": w}
    if _in(node, 2):
        b, _ = _float_const(imp, node, 2, where, "the bias")
        if b.shape != (w.shape[0],):
            raise ShapeError(where, "bias must have one value per output channel", f"bias {list(b.shape)}, C_out {w.shape[0]}")
        ws["bias"] = b
    attrs = dict(out_channels=int(w.shape[0]), kernel=tuple(kernel), stride=stride, padding=pads, dilation=dil,
                 groups=groups, bias="bias" in ws)
    return imp.new("conv2d", attrs, [x], where, _prefix_of(imp, node, (1, 2)), ws)


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
        axes = _ints(imp.const(node.input[1], where, "axes").value, where, "axes")
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
        axes = _ints(imp.const(node.input[1], where, "axes").value, where, "axes")
    f = np.mean if node.op_type == "ReduceMean" else np.max
    return Const(f(arr, axis=tuple(axes) if axes else None, keepdims=bool(a.get("keepdims", 1))))


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
    w = w * np.float32(a.get("alpha", 1.0))
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
    x = imp.act(imp.val(node.input[0], where), where)
    _need_rank(x, (2,), where, "MatMul with a weight matrix")
    w, _ = _float_const(imp, node, 1, where, "the weight")
    if w.ndim != 2 or ops.same(w.shape[0], x.shape[1]) is False:
        raise ShapeError(where, "MatMul weight does not fit the input features", f"weight {list(w.shape)}, input {ops.fmt_shape(x.shape)}")
    return imp.new("linear", dict(out_features=int(w.shape[1]), bias=False), [x], where, _prefix_of(imp, node, (1,)),
                   {"weight": w.T})


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
    attrs = dict(num_features=x.shape[1], eps=_short(a.get("epsilon", 1e-5)), affine=affine)
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
    eps = _short(a.get("epsilon", 1e-5))
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
    x = imp.act(imp.val(node.input[0], where), where)
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
    return imp.new("layernorm", dict(eps=_short(a.get("epsilon", 1e-5)), affine=affine), [x], where,
                   _prefix_of(imp, node, (1, 2)) if affine else None, ws)


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
    return imp.new("groupnorm", dict(num_groups=G, eps=_short(a.get("epsilon", 1e-5)), affine=True), [x], where,
                   _prefix_of(imp, node, (1, 2)), ws)


@handler("LRN")
def _lrn(imp, node, a, where):
    v = imp.val(node.input[0], where)
    size = a.get("size")
    attrs = dict(size=size, alpha=_short(a.get("alpha", 1e-4)), beta=_short(a.get("beta", 0.75)),
                 k=_short(a.get("bias", 1.0)))
    x = imp.act(v, where)
    if size % 2 == 0:
        raise CnnGraphError(f"{where}: LRN with an even size ({size}) sums channels [c-{size // 2 - 1}, c+{size // 2}] "
                            f"in ONNX but [c-{size // 2}, c+{size // 2 - 1}] in PyTorch and cnngraph; not supported")
    return imp.new("lrn", attrs, [x], where)


@handler("Softmax")
def _softmax(imp, node, a, where):
    x = imp.act(imp.val(node.input[0], where), where)
    r = len(x.shape)
    axis = a.get("axis", -1 if imp.opset >= 13 else 1) % r
    ok = axis == 1 and (r == 2 or imp.opset >= 13)
    if not ok:
        raise CnnGraphError(f"{where}: Softmax is supported over the channel/feature axis, got axis {a.get('axis')} "
                            f"of shape {ops.fmt_shape(x.shape)} (opset {imp.opset})")
    return imp.new("softmax", {}, [x], where)


@handler("Flatten")
def _flatten(imp, node, a, where):
    v = imp.val(node.input[0], where)
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        ax = a.get("axis", 1) % max(arr.ndim, 1)
        return Const(arr.reshape(int(np.prod(arr.shape[:ax])), -1))
    x = imp.act(v, where)
    if a.get("axis", 1) % len(x.shape) != 1:
        raise CnnGraphError(f"{where}: Flatten is supported from axis 1 (keeping the batch), got axis {a.get('axis')}")
    return imp.new("flatten", {}, [x], where)


@handler("Dropout")
def _dropout(imp, node, a, where):
    x = imp.act(imp.val(node.input[0], where), where)
    p = a.get("ratio", 0.5)
    if _in(node, 1):
        s = _scalar(imp.const(node.input[1], where, "the ratio"))
        p = s if s is not None else p
    if _in(node, 2):
        t = imp.const(node.input[2], where, "training_mode")
        if np.any(np.asarray(t.value)):
            raise CnnGraphError(f"{where}: Dropout in training mode is not supported")
    if len(node.output) > 1 and node.output[1] and imp.consumers.get(node.output[1]):
        raise CnnGraphError(f"{where}: Dropout's mask output is used; not supported")
    return imp.new("dropout", {"p": _short(p)}, [x], where)


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
        if arr.dtype == object:
            return v
        if to not in _DTYPES:
            raise CnnGraphError(f"{where}: Cast to {onnx.TensorProto.DataType.Name(to)} is not supported")
        return Const(arr.astype(_DTYPES[to][0]))
    if to not in _FLOAT_TYPES:
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
    shape = _ints(imp.const(node.input[0], where, "the shape").value, where, "the shape")
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


def _check_fold(arr, where):
    if np.size(arr) > MAX_FOLD:
        raise CnnGraphError(f"{where}: folding would create {np.size(arr)} elements (limit {MAX_FOLD})")
    return arr


@handler("Gather")
def _gather(imp, node, a, where):
    data, idx = _const_only(imp, node, where, "only shape arithmetic on constants is folded")
    return Const(_check_fold(np.take(data, idx.astype(np.int64), axis=a.get("axis", 0)), where))


@handler("Squeeze", "Unsqueeze")
def _squeeze(imp, node, a, where):
    v = imp.val(node.input[0], where)
    axes = a.get("axes")
    if axes is None and _in(node, 1):
        axes = _ints(imp.const(node.input[1], where, "axes").value, where, "axes")
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
    if node.op_type == "Squeeze":
        x = imp.act(v, where)
        axes = sorted(k % len(x.shape) for k in (axes if axes is not None else
                                                  [i for i, s in enumerate(x.shape) if s == 1 and i > 0]))
        if len(x.shape) == 4 and axes == [2, 3] and x.shape[2] == 1 and x.shape[3] == 1:
            return imp.new("flatten", {}, [x], where)
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
        sizes = _ints(imp.const(node.input[1], where, "split sizes").value, where, "split sizes")
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
            return _ints(imp.const(node.input[k], where, what).value, where, what) if _in(node, k) else None

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
    if a.get("mode", "constant") != "constant":
        raise CnnGraphError(f"{where}: Pad mode {a.get('mode')!r} is not supported (zero padding only)")
    pads = a.get("pads") or _ints(imp.const(node.input[1], where, "pads").value, where, "pads")
    value = a.get("value", 0.0)
    if _in(node, 2):
        s = _scalar(imp.const(node.input[2], where, "the pad value"))
        value = s if s is not None else 1.0
    if _in(node, 3):
        raise CnnGraphError(f"{where}: Pad with an axes input is not supported")
    if value != 0:
        raise CnnGraphError(f"{where}: Pad with value {value} is not supported (zero padding only)")
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
        return imp.new("pad2d", dict(padding=(t, l, b, r)), [x], where)
    raise CnnGraphError(f"{where}: Pad {pads} pads channels and height/width at once; not supported")


@handler("Reshape")
def _reshape(imp, node, a, where):
    v = imp.val(node.input[0], where)
    target = imp.const(node.input[1], where, "the target shape").value
    target = list(np.asarray(target).reshape(-1))
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        return Const(arr.reshape(_ints(target, where, "the shape")), v.name)
    src_shape = v.shape
    shape = _resolve_shape(src_shape, target, a.get("allowzero", 0), where)
    return _reshape_value(imp, v, shape, where)


def _resolve_shape(src, target, allowzero, where):
    out, infer = [], None
    for i, t in enumerate(target):
        t = _num(t)
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
    return tuple(ops.tidy(sympy.sympify(d)) if not isinstance(d, int) else d for d in out)


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
        raise CnnGraphError(f"{where}: Reshape of {_PENDING_TEXT.get(v.kind, v.kind)} to {list(shape)} is not supported")
    x = imp.act(src, where)
    if not _same(shape[0], x.shape[0]):
        raise CnnGraphError(f"{where}: Reshape that moves data into the batch dimension is not supported "
                            f"({ops.fmt_shape(x.shape)} -> {ops.fmt_shape(shape)})")
    if _same_shape(shape, x.shape):
        return x
    if len(shape) == 2:
        return imp.new("flatten", {}, [x], where)
    if len(x.shape) == 2 and len(shape) == 4 and _same(shape[1], x.shape[1]) and shape[2] == 1 and shape[3] == 1:
        return Pending("view", x, shape, where)
    if len(x.shape) == 4 and len(shape) in (4, 5) and _same(ops.prod(shape[1:3]), x.shape[1]):
        rest_ok = _same(ops.prod(shape[3:]), ops.prod(x.shape[2:]))
        if rest_ok and (len(shape) == 4 or (_same(shape[3], x.shape[2]) and _same(shape[4], x.shape[3]))):
            return Pending("split_channels", x, shape, where, dict(groups=shape[1]))
    if len(x.shape) == 4 and len(shape) == 3:
        G = shape[1]
        if ops.is_int(G) and divides(G, x.shape[1]):
            return Pending("groups", x, shape, where, dict(groups=int(G)))
    raise CnnGraphError(f"{where}: Reshape {ops.fmt_shape(x.shape)} -> {ops.fmt_shape(shape)} is not a flatten, "
                        "channel shuffle or group norm; not supported")


def divides(d, n):
    return ops.divides(d, n) is True


def _same_shape(a, b):
    return len(a) == len(b) and all(_same(p, q) for p, q in zip(a, b))


@handler("Expand")
def _expand(imp, node, a, where):
    v = imp.val(node.input[0], where)
    shape = np.asarray(imp.const(node.input[1], where, "the shape").value).reshape(-1)
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        target = np.broadcast_shapes(arr.shape, tuple(_ints(shape, where, "the shape")))
        if int(np.prod(target)) > MAX_FOLD:
            raise CnnGraphError(f"{where}: folding would create {int(np.prod(target))} elements (limit {MAX_FOLD})")
        return Const(np.broadcast_to(arr, target).copy(), v.name)
    # Broadcasting before a Mul/Add (x * s.expand_as(x)): the element-wise op broadcasts anyway.
    return v


@handler("Transpose")
def _transpose(imp, node, a, where):
    v = imp.val(node.input[0], where)
    perm = a.get("perm")
    if isinstance(v, Const):
        return Const(np.transpose(np.asarray(v.value), perm))
    if isinstance(v, Pending) and v.kind == "split_channels":
        want = [0, 2, 1] + list(range(3, len(v.shape)))
        if perm == want:
            shape = (v.shape[0], v.shape[2], v.shape[1]) + tuple(v.shape[3:])
            return Pending("swapped", v.src, shape, where, dict(groups=v.info["groups"]))
    raise CnnGraphError(f"{where}: Transpose is supported as the channel swap of a channel shuffle, got perm {perm}")


@handler("ReduceSum")
def _reduce_sum(imp, node, a, where):
    v = imp.val(node.input[0], where)
    axes = a.get("axes")
    if axes is None and _in(node, 1):
        axes = _ints(imp.const(node.input[1], where, "axes").value, where, "axes")
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        return Const(np.sum(arr, axis=tuple(axes) if axes else None, keepdims=bool(a.get("keepdims", 1))))
    if isinstance(v, Pending) and v.kind == "rbf_square" and [k % 3 for k in axes or []] == [2] and not a.get("keepdims", 1):
        w = v.info["weight"]
        return imp.new("rbf", {"out_features": int(w.shape[0])}, [v.src], where, v.info.get("prefix"), {"weight": w})
    raise CnnGraphError(f"{where}: ReduceSum of a computed tensor is supported only as the sum of an RBF layer")


# ---- element-wise ops
def _as_pointwise(v, where):
    if isinstance(v, Pointwise):
        return v
    if isinstance(v, Act):
        return Pointwise(v, lambda t: t, where, "Identity", (v,), ())
    return None


@handler(*UNARY)
def _unary(imp, node, a, where):
    v = imp.val(node.input[0], where)
    f = UNARY[node.op_type](a)
    if isinstance(v, Const):
        arr = np.asarray(v.value)
        if arr.dtype == object:
            raise CnnGraphError(f"{where}: {node.op_type} of symbolic sizes is not supported")
        return Const(f(arr.astype(np.float64)).astype(arr.dtype))
    p = _as_pointwise(imp.act(v, where) if isinstance(v, Pending) else v, where)
    inner = p.fn
    return Pointwise(p.src, lambda t, inner=inner, f=f: f(inner(t)), where, node.op_type, (v,), p.chain + (where,))


@handler("Clip")
def _clip(imp, node, a, where):
    lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
    if _in(node, 1):
        lo = _scalar(imp.const(node.input[1], where, "min"))
    if _in(node, 2):
        hi = _scalar(imp.const(node.input[2], where, "max"))
    if lo is None or hi is None:
        raise CnnGraphError(f"{where}: Clip bounds must be single numbers")
    v = imp.val(node.input[0], where)
    if isinstance(v, Const):
        return Const(np.clip(np.asarray(v.value), lo, hi))
    p = _as_pointwise(imp.act(v, where) if isinstance(v, Pending) else v, where)
    inner = p.fn
    return Pointwise(p.src, lambda t: np.clip(inner(t), lo, hi), where, "Clip", (v,), p.chain + (where,))


@handler(*BINARY)
def _binary(imp, node, a, where):
    names = [i for i in node.input if i]
    vals = [imp.val(i, where) for i in names]
    op = node.op_type
    if all(isinstance(v, Const) for v in vals):
        return Const(_check_fold(_fold_binary(op, [np.asarray(v.value) for v in vals], where), where))
    if len(vals) > 2:
        if op != "Sum" or not all(isinstance(v, (Act, Pointwise)) for v in vals):
            raise CnnGraphError(f"{where}: {op} of more than two tensors is supported as a sum of tensors")
        if all(isinstance(v, Act) for v in vals):
            return imp.new("add", {}, vals, where)
        return imp.new("add", {}, [imp.act(v, where) for v in vals], where)
    x, y = vals
    # patterns with a constant tensor (not a number): biases, group norm's affine, RBF
    for first, second in ((x, y), (y, x)):
        if isinstance(second, Const) and _scalar(second) is None:
            return _with_const_tensor(imp, node, op, first, second, first is x, where)
    if op == "Mul" and x is y and isinstance(x, Act):  # maybe the x² of a spelled-out LRN
        return Pending("square", x, x.shape, where)
    if isinstance(x, Pending) or isinstance(y, Pending):
        return _binary_pending(imp, node, op, x, y, where)
    return _binary_generic(imp, node, op, x, y, where)


def _const_fn(c):
    s = _scalar(c)
    return lambda t: np.full_like(t, s)


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
        if w.ndim == 2 and _same(w.shape[1], v.src.shape[1]):
            return Pending("rbf_diff", v.src, (v.shape[0], w.shape[0], w.shape[1]), where,
                           dict(weight=w, prefix=_strip_suffix(c.name or node.input[1 if v_first else 0])))
    x = imp.act(v, where) if not isinstance(v, Act) else v
    d = imp.g.nodes[x.node]
    single = imp.consumers.get(node.input[0 if v_first else 1], 0) == 1
    per = _per_channel(c, x)
    cname = _strip_suffix(c.name) if c.name else None
    if op == "Add" and per is not None and single:
        if d["op"] in ("conv2d", "linear") and not d["attrs"]["bias"]:
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
    raise CnnGraphError(f"{where}: {op} of a tensor and a constant tensor {list(np.shape(c.value))} is supported only as "
                        "the bias of a Conv/MatMul or the affine part of a group norm")


LRN_STEPS = {"lrn_mean": ("Mul", "alpha"), "lrn_alpha": ("Add", "k"), "lrn_k": ("Pow", "beta")}


def _binary_pending(imp, node, op, x, y, where):
    # LRN spelled out (PyTorch's export): x / (k + α·mean_window(x²))^β
    if isinstance(x, Pending) and x.kind in LRN_STEPS and isinstance(y, Const) and LRN_STEPS[x.kind][0] == op:
        key = LRN_STEPS[x.kind][1]
        kind = {"alpha": "lrn_alpha", "k": "lrn_k", "beta": "lrn_den"}[key]
        return Pending(kind, x.src, x.shape, where, {**x.info, key: _short(_scalar(y))})
    if op == "Div" and isinstance(y, Pending) and y.kind == "lrn_den" and x is y.src:
        return imp.new("lrn", {k: y.info[k] for k in ("size", "alpha", "beta", "k")}, [x], where)
    if op == "Mul":
        for a, b in ((x, y), (y, x)):
            if isinstance(b, Pending) and b.kind == "view" and not isinstance(a, Pending):
                return imp.new("mul", {}, [imp.act(a, where), b.src], where)
            if isinstance(a, Pending) and a.kind == "rbf_diff" and b is a:
                return Pending("rbf_square", a.src, a.shape, where, a.info)
    if op == "Pow" and isinstance(x, Pending) and x.kind == "rbf_diff" and isinstance(y, Const) and _scalar(y) == 2.0:
        return Pending("rbf_square", x.src, x.shape, where, x.info)
    return _binary_generic(imp, node, op, imp.act(x, where) if isinstance(x, Pending) else x,
                           imp.act(y, where) if isinstance(y, Pending) else y, where)


def _binary_generic(imp, node, op, x, y, where):
    if isinstance(x, Act) and isinstance(y, Act) and op in ("Add", "Sum", "Mul"):
        return imp._merge(op, [x, y], where)
    return _binary_values(imp, node, op, x, y, where)


def _binary_values(imp, node, op, x, y, where):
    """Two tensors make an add / mul layer, unless both are element-wise functions of one
    tensor (x·sigmoid(x)): then the result is one more element-wise function of it."""
    px, py = _as_pointwise(x, where), _as_pointwise(y, where)
    if px is not None and py is not None and px.src is not py.src:
        if op in ("Add", "Sum", "Mul"):
            return imp._merge(op, [imp.act(x, where), imp.act(y, where)], where)
        raise CnnGraphError(f"{where}: {op} of two different tensors is not supported (only add and mul are)")
    src = px.src if px is not None else py.src
    f = BINARY[op]
    fx = px.fn if px is not None else _const_fn(x)
    fy = py.fn if py is not None else _const_fn(y)
    chain = (px.chain if px else ()) + (py.chain if py and py is not px else ()) + (where,)
    return Pointwise(src, lambda t: f(fx(t), fy(t)), where, op, (x, y), chain)


def load(src):
    """The graph of an ONNX model (a path, bytes or a ``ModelProto``); weights in
    ``g.graph["weights"]``, the batch size (a number or a symbol) in ``g.graph["batch"]``."""
    model, label = _read(src)
    return _Importer(model, label).run()
