"""The op registry: one entry per op, the single source of what an op means.

Each :class:`Op` keeps together what the rest of cnngraph needs to know about a layer:
its attribute defaults (applied once, where a node is made), how its output shape follows
from its inputs, its weights (:class:`Weight`: names, shapes, param or buffer, from which
parameters and buffers are counted, weights initialised and plans bound), its sliding
window (:class:`Window`, read by receptive fields, pooling matrices, tables and diagrams),
its roles in the compiler (in-place ports, epilogue fusion, batch-norm folding), how many
multiply-accumulates and other operations it performs, how much output memory it writes
and how a diagram labels it. Element-wise activations also have an :class:`Activation`:
their kernel code, reference function, PyTorch function and ONNX emitter.
Adding an op is one :func:`register` call.

Shapes are per sample, without the batch dimension: ``(C, H, W)`` for feature maps and
``(F,)`` for vectors. Sizes are Python ints or sympy expressions; rules keep plain ints on
the numeric path and fall back to sympy only when a size is symbolic. sympy is imported only
then (``sympy`` here is :mod:`cnngraph.ir.lazy`'s stand-in): a numeric graph is built and
costed with Python ints alone.

>>> op = REGISTRY["conv2d"]
>>> a = dict(out_channels=64, kernel=(11, 11), stride=(4, 4), padding=(2, 2, 2, 2),
...          dilation=(1, 1), groups=1, bias=True)
>>> out = op.shape(a, [(3, 227, 227)], Ctx("conv1"))
>>> out, op.params(a, [(3, 227, 227)], out), op.macs(a, [(3, 227, 227)], out)
((64, 56, 56), 23296, 72855552)
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from typing import Callable

from cnngraph.ir.errors import ShapeError
from cnngraph.ir.lazy import is_sym, sympy
from cnngraph.ir.printer import shape as fmt_shape  # the one printer of shapes

Shape = tuple
Size = "int | sympy.Expr"


# ---------------------------------------------------------------- arithmetic helpers
def is_int(x) -> bool:
    """An integer size: a Python int or a sympy Integer.

    >>> is_int(3), is_int(1.5)
    (True, False)
    """
    return isinstance(x, int) or (is_sym(x) and x.is_Integer)


def tidy(x):
    """Plain int for numeric sympy values, so the numeric path stays in Python ints."""
    if isinstance(x, int) or not is_sym(x):
        return x
    if x.is_Integer:
        return int(x)
    if x.is_Rational and x.q == 1:
        return int(x.p)
    return x


def prod(xs) -> Size:
    r = 1
    for x in xs:
        r = r * x
    return tidy(r)


def numel(shape: Shape) -> Size:
    return prod(shape)


def _unnest(a, rounding, b):
    """``a`` with one rounding of the same kind opened up when that is exact: for a positive
    integer ``b`` and integer ``k``, floor((floor(x) + k)/b) = floor((x + k)/b) (and the same for
    ceiling), so a stack of stride-2 layers gives one floor per stage, ⌊H/4 − 1/4⌋, not
    ⌊⌊H/2 − 1/2⌋/2⌋."""
    if not (is_int(b) and int(b) > 0) or not isinstance(a, sympy.Expr):
        return a
    terms = sympy.Add.make_args(sympy.expand(a))
    inner = [t for t in terms if isinstance(t, rounding)]
    rest = [t for t in terms if not isinstance(t, rounding)]
    if len(inner) != 1 or not all(t.is_integer for t in rest):
        return a
    return inner[0].args[0] + sympy.Add(*rest)


def floordiv(a, b):
    """floor(a/b), one floor where a nested one can be opened exactly.

    >>> from cnngraph.ir.symbols import H
    >>> floordiv(floordiv(H - 1, 2), 2)
    floor(H/4 - 1/4)
    """
    if is_int(a) and is_int(b):
        return int(a) // int(b)
    return tidy(sympy.floor(_unnest(sympy.sympify(a), sympy.floor, b) / b))


def div(a, b):
    """Exact division: an int when both are ints that divide, else a sympy expression."""
    if is_int(a) and is_int(b) and int(a) % int(b) == 0:
        return int(a) // int(b)
    return tidy(sympy.sympify(a) / b)


def ceildiv(a, b):
    if is_int(a) and is_int(b):
        return -(-int(a) // int(b))
    return tidy(sympy.ceiling(_unnest(sympy.sympify(a), sympy.ceiling, b) / b))


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


# ---------------------------------------------------------------- rule context
@dataclass
class Ctx:
    """Where a rule is applied: the layer's name, strict mode, and warnings it raised."""

    name: str
    strict: bool = False
    notes: list = field(default_factory=list)
    conditions: list = field(default_factory=list)  # (rule, relation) a symbolic size needs to hold

    def fail(self, rule: str, numbers: str = ""):
        raise ShapeError(self.name, rule, numbers)

    def unfit(self, rule: str, numbers: str):
        """A stride that does not fit exactly: an error when strict, else a warning."""
        if self.strict:
            self.fail(rule, numbers)
        self.notes.append(f"{rule} ({numbers}); output size floored")

    def require(self, rule: str, relation):
        """A condition the symbols must meet for this layer to exist (``H + 2 ≥ 11``);
        a formula evaluated where it fails is outside the model's domain."""
        if relation is not sympy.true:
            self.conditions.append((rule, relation))


# ---------------------------------------------------------------- attribute values
# What a value of each attribute may be, by attribute name (the same meaning in every op):
# sizes are positive integers (or integer expressions), offsets any integers (each op's rule
# bounds their sign), and the float hyper-parameters finite numbers in their range.
SIZE_ATTRS = frozenset({"out_channels", "out_features", "groups", "num_groups", "num_features", "size",
                        "kernel", "stride", "dilation", "output_size", "shape", "block"})
OFFSET_ATTRS = frozenset({"padding", "start", "stop", "before", "after", "output_padding"})
FLOAT_ATTRS = {"eps": (0.0, None, "a positive number"), "p": (0.0, 1.0, "a probability in [0, 1)"),
               "alpha": (None, None, "a finite number"), "beta": (None, None, "a finite number"),
               "k": (None, None, "a finite number"), "factor": (None, None, "a finite number"),
               "momentum": (None, None, "a finite number"), "shift": (None, None, "a finite number"),
               "low": (None, None, "a finite number"), "high": (None, None, "a finite number")}


def check_attrs(layer: str, attrs: dict) -> dict:
    """``attrs`` with every size checked (strings parsed by :mod:`cnngraph.sizes`); a
    :class:`ShapeError` naming the layer, the attribute, the value and the rule otherwise.

    >>> check_attrs("conv1", dict(out_channels="2*C", kernel=(3, 3)))["out_channels"]
    2*C
    >>> check_attrs("conv1", dict(out_channels=4.5))
    Traceback (most recent call last):
    ...
    cnngraph.ir.errors.ShapeError: conv1: out_channels must be an integer (out_channels=4.5)
    """
    import math

    from cnngraph.ir.errors import InputError
    from cnngraph.ir.sizes import check_size

    out = dict(attrs)
    for key, v in attrs.items():
        if key in SIZE_ATTRS or key in OFFSET_ATTRS:
            items = v if isinstance(v, (tuple, list)) else (v,)
            if all(type(x) is int and (x > 0 or key in OFFSET_ATTRS) for x in items):
                continue  # the common case, plain valid ints: no sympy, no parsing
            try:
                got = tuple(check_size(x, key, positive=key in SIZE_ATTRS, decided=key in SIZE_ATTRS) for x in items)
            except InputError as e:
                rule = str(e).split(": ", 1)[-1]
                shown = tuple(v) if isinstance(v, list) else v
                raise ShapeError(layer, f"{'input sizes' if key == 'shape' else key} {rule}", f"{key}={shown!r}" if not hasattr(shown, "free_symbols")
                                 else f"{key}={shown}") from None
            out[key] = got if isinstance(v, (tuple, list)) else got[0]
        elif key in FLOAT_ATTRS and v is not None:
            lo, hi, rule = FLOAT_ATTRS[key]
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
                (lo is None or v > lo or (key == "p" and v == lo)) and (hi is None or v < hi)
            if not ok:
                raise ShapeError(layer, f"{key} must be {rule}", f"{key}={v!r}")
    return out


# ---------------------------------------------------------------- the Op record
@dataclass(frozen=True)
class Weight:
    """One tensor an op owns, under ``{node}.{name}`` (torchvision's state_dict names).

    ``role`` is ``"param"`` (trained) or ``"buffer"`` (running statistics, fixed prototypes);
    ``init`` names how :func:`cnngraph.compiler.weights.init` draws it: ``he`` (N(0, 2/fan_out)),
    ``fc`` (N(0, 0.01)), ``bias``, ``scale`` (1), ``mean`` (0), ``var`` (1), ``prelu`` (0.25).
    """

    name: str
    shape: tuple
    role: str = "param"
    init: str = "bias"


@dataclass(frozen=True)
class Window:
    """A sliding window: kernel, stride, dilation as (h, w); padding (top, left, bottom, right)."""

    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple = (1, 1)
    ceil_mode: bool = False


@dataclass(frozen=True)
class Activation:
    """What an element-wise activation is, for every part that runs or exports it.

    * ``code``: the kernels' activation code (explicit and stable; 0 means none). Each
      backend's kernel table maps it to its own code (a Numba branch, a CUDA expression);
    * ``ref(xp, erf, v, a)``: PyTorch's definition on any array module ``xp`` (NumPy,
      CuPy), ``erf`` the error function for that module, ``a`` the node's attributes;
    * ``torch(F, x, a)``: the PyTorch function (``F`` is ``torch.nn.functional``);
    * ``onnx(b, name, x, a)``: emits the ONNX nodes computing it with the exporter's builder
      (``b.node(op_type, inputs, output, name, **attrs)``, ``b.scalar(name, value)``,
      ``b.const(name, ints)``) and returns the output name, for ``opset`` ``b.opset``; ``a``
      also holds ``in_shape`` (per sample) and, for an activation with weights, the weight's
      initializer name under ``weight``;
    * ``inplace``: the DSL's default (torchvision's ``ReLU(inplace=True)``); ``False`` when
      PyTorch makes a new tensor;
    * ``param``: the attribute passed to the kernels as the activation's one float (the
      LeakyReLU slope, the ELU α), or None;
    * ``fit(f)``: the ``param`` value for which the activation could be the float64 function
      ``f`` of a float (the ONNX importer then checks it everywhere), or None; by default the
      activation is taken to be linear in its parameter at −1 (a slope, an α);
    * ``clamp``: ``(lo, hi)`` when the activation is ``min(max(v, lo), hi)`` (ReLU, ReLU6),
      which a GEMM kernel can apply while its accumulators are still in registers; else None.
    """

    code: int
    ref: Callable
    torch: Callable
    onnx: Callable
    inplace: bool = True
    param: str | None = None
    fit: Callable | None = None
    clamp: tuple | None = None


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
    params: Callable = _zero  # derived from ``weights`` when that is given
    buffers: Callable = _zero  # derived from ``weights`` when that is given
    macs: Callable = _zero
    ops: Callable = _zero  # other operations: comparisons, activations, adds, normalization
    memory: Callable = _out_numel  # output elements written (0 for in-place and views)
    label: Callable = None
    doc: str = ""
    defaults: dict = field(default_factory=dict)  # attribute defaults, applied where a node is made
    weights: Callable = None  # weights(attrs, in_shapes) -> [Weight]
    window: Callable = None  # window(attrs) -> Window, for ops that slide a window
    spatial: str = "same"  # how output positions see the input: same, window, transposed, adaptive, whole
    reduce: str = None  # pooling reduction: "max" or "avg"
    filters: str = None  # the attribute giving the output width (out_channels, out_features)
    inplace_ports: tuple = ()  # input ports the kernel may overwrite with its output
    fusion: str = None  # "anchor": a step that takes an epilogue; "act": an epilogue activation
    absorbs_norm: bool = False  # a following batch norm folds into its weights (conv, linear)
    scale_outputs: Callable = None  # (weight, per-output-channel scale, attrs) -> scaled weight; None: along axis 0
    folds: bool = False  # folds into the conv or linear layer before it (batch norm)
    passthrough: bool = False  # the identity at inference (dropout, identity)
    elementwise: bool = False  # combines its inputs element by element (add, mul): drawn as a circle, shallower inputs are shortcuts
    activation: Activation = None
    is_input: bool = False  # a graph input: no inputs, its shape is given (not computed), no kernel
    chooses_algorithm: bool = False  # the compiler picks its algorithm by cost (direct, im2col, Winograd, FFT)
    gates: bool = False  # multiplies its first input by a per-channel gate: a squeeze-and-excitation gate computing it may run inside the step

    def weight_specs(self, attrs: dict, in_shapes) -> list:
        """The :class:`Weight` list of a node (empty for ops without weights)."""
        return list(self.weights(attrs, in_shapes)) if self.weights else []

    def tensors(self, attrs: dict, in_shapes) -> dict:
        """``{field: (shape, role)}``: the node's weight tensors as a state_dict holds them
        (``{node}.{field}``), role ``"param"`` or ``"buffer"``; sizes may be symbolic."""
        return {w.name: (tuple(w.shape), w.role) for w in self.weight_specs(attrs, in_shapes)}


REGISTRY: dict[str, Op] = {}
ACTIVATIONS: dict[str, Op] = {}  # the ops that have an Activation, by name
ACT_CODES: dict[int, str] = {0: None}  # kernel code -> activation name


def _count(role):
    def count(self_weights):
        def f(a, ins, out):
            return tidy(sum((numel(w.shape) for w in self_weights(a, ins) if w.role == role), 0))

        return f

    return count


def register(op: Op) -> Op:
    """Add ``op`` to the registry; its parameter and buffer counts follow from its weights."""
    if op.weights is not None:
        op = replace(op, params=_count("param")(op.weights), buffers=_count("buffer")(op.weights))
    if op.activation is not None:
        code = op.activation.code
        if code in ACT_CODES:
            raise ValueError(f"activation code {code} of {op.name} is taken by {ACT_CODES[code]}")
        ACT_CODES[code] = op.name
        ACTIVATIONS[op.name] = op
    REGISTRY[op.name] = op
    return op


def is_input(name: str) -> bool:
    """Whether op ``name`` is a graph input (its shape is given, it has no kernel).

    >>> is_input("input"), is_input("conv2d")
    (True, False)
    """
    return get(name).is_input


def act_code(name: str | None) -> int:
    """The kernels' code of activation ``name`` (0 for None)."""
    return 0 if name is None else REGISTRY[name].activation.code


def act_clamp(name: str | None) -> tuple | None:
    """``(lo, hi)`` of activation ``name`` when it is a clamp (``(-inf, inf)`` for None), else None.

    >>> act_clamp("relu6"), act_clamp(None), act_clamp("silu")
    ((0.0, 6.0), (-inf, inf), None)
    """
    return (-math.inf, math.inf) if name is None else REGISTRY[name].activation.clamp


def act_param(name: str | None, attrs: dict) -> float:
    """The one float the kernels receive with activation ``name`` (its ``param`` attribute, else 0)."""
    param = None if name is None else REGISTRY[name].activation.param
    return 0.0 if param is None else float(attrs[param])


def with_defaults(op_name: str, attrs: dict) -> dict:
    """``attrs`` completed with the op's defaults (what :func:`cnngraph.ir.graph.add_node` stores)."""
    d = get(op_name).defaults
    return {**d, **attrs} if d and not d.keys() <= attrs.keys() else dict(attrs)


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


def _nonnegative_padding(ctx: Ctx, padding):
    if any(negative(p) for p in padding):
        ctx.fail("padding must not be negative (pad2d crops)", f"padding={tuple(padding)}")


def window_out(ctx, L, k, s, p0, p1, d, ceil_mode, axis: str):
    """floor((L + p0 + p1 − d·(k−1) − 1)/s) + 1 (ceiling with ceil_mode), with checks."""
    span = d * (k - 1) + 1
    room = L + p0 + p1 - span
    if negative(room):
        ctx.fail(
            f"kernel larger than padded input along {axis}",
            f"input {L} + padding {p0}+{p1} = {tidy(sympy.sympify(L + p0 + p1))} < effective kernel {span}",
        )
    if not is_int(room) and not sympy.sympify(room).is_nonnegative:
        ctx.require(f"kernel fits the padded input along {axis}", sympy.Ge(L + p0 + p1, span))
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
    _nonnegative_padding(ctx, a["padding"])
    Ho = window_out(ctx, H, kh, sh, pt, pb, dh, False, "H")
    Wo = window_out(ctx, W, kw, sw, pl, pr, dw, False, "W")
    return (cout, Ho, Wo)


def _conv_weights(a, ins):
    cout = a["out_channels"]
    yield Weight("weight", (cout, div(ins[0][0], a["groups"]), *a["kernel"]), "param", "he")
    if a["bias"]:
        yield Weight("bias", (cout,), "param", "bias")


def _window(a) -> Window:
    return Window(tuple(a["kernel"]), tuple(a["stride"]), tuple(a["padding"]), tuple(a["dilation"]),
                  bool(a.get("ceil_mode", False)))


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


register(Op("conv2d", "conv", (1, 1), _conv_shape, macs=_conv_macs, label=_conv_label,
            doc="2-D convolution (cross-correlation), grouped when groups > 1",
            defaults=dict(stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1, bias=True),
            weights=_conv_weights, window=_window, spatial="window", filters="out_channels", fusion="anchor",
            absorbs_norm=True, chooses_algorithm=True))


def _conv_transpose_shape(a, ins, ctx):
    """PyTorch's ConvTranspose2d: (L − 1)·s − p₀ − p₁ + d·(k − 1) + output_padding + 1 per axis."""
    (x,) = ins
    _need_chw(ctx, x, "conv_transpose2d")
    cin, H, W = x
    cout, g = a["out_channels"], a["groups"]
    if divides(g, cin) is False:
        ctx.fail("groups must divide in_channels", f"groups={g}, in_channels={cin}")
    if divides(g, cout) is False:
        ctx.fail("groups must divide out_channels", f"groups={g}, out_channels={cout}")
    _nonnegative_padding(ctx, a["padding"])
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = a["kernel"], a["stride"], a["padding"], a["dilation"]
    out = []
    for axis, L, k, s, p0, p1, d, op in (("H", H, kh, sh, pt, pb, dh, a["output_padding"][0]),
                                         ("W", W, kw, sw, pl, pr, dw, a["output_padding"][1])):
        if negative(op) or (is_int(op) and is_int(s) and is_int(d) and int(op) >= max(int(s), int(d))):
            ctx.fail(f"output_padding along {axis} must be smaller than the stride or the dilation",
                     f"output_padding={op}, stride={s}, dilation={d}")
        o = tidy((L - 1) * s - p0 - p1 + d * (k - 1) + op + 1)
        if nonpositive(o):
            ctx.fail(f"output size along {axis} is not positive", f"({L} − 1)·{s} − {p0} − {p1} + {d}·({k} − 1) + "
                     f"{op} + 1 = {o}")
        if not is_int(o) and not sympy.sympify(o).is_positive:
            ctx.require(f"output size along {axis} is positive", sympy.Gt(o, 0))
        out.append(o)
    return (cout, out[0], out[1])


def _conv_transpose_weights(a, ins):
    # PyTorch's and ONNX's layout: (C_in, C_out/groups, kh, kw)
    yield Weight("weight", (ins[0][0], div(a["out_channels"], a["groups"]), *a["kernel"]), "param", "he")
    if a["bias"]:
        yield Weight("bias", (a["out_channels"],), "param", "bias")


def _conv_transpose_macs(a, ins, out):
    # Every input pixel times every tap (fvcore's, ptflops' and torch.utils.flop_counter's
    # count): C_in·H·W·(C_out/groups)·kh·kw, taps that land in the cropped padding included.
    kh, kw = a["kernel"]
    return tidy(numel(ins[0]) * div(a["out_channels"], a["groups"]) * kh * kw)


def _conv_transpose_scale_outputs(w, s, a):
    """The weight with output channel g·(C_out/G) + o scaled by s: the axis 1 of each group's
    (C_in/G, C_out/G, kh, kw) block (a batch norm folded into the transposed convolution)."""
    G = int(a["groups"])
    cin, og = w.shape[0], w.shape[1]
    return (w.reshape(G, cin // G, og, *w.shape[2:]) * s.reshape(G, 1, og, 1, 1)).reshape(w.shape)


def _conv_transpose_label(a, ins, out):
    kh, kw = a["kernel"]
    s = f"{kh}x{kw} conv^T, {a['out_channels']}"
    if a["stride"][0] != 1:
        s += f", ×{a['stride'][0]}"
    if a["groups"] != 1:
        s += f", g={a['groups']}"
    if tuple(a["dilation"]) != (1, 1):
        s += f", d={a['dilation'][0]}"
    return s


register(Op("conv_transpose2d", "conv", (1, 1), _conv_transpose_shape, macs=_conv_transpose_macs,
            label=_conv_transpose_label,
            doc="transposed 2-D convolution (decoders, U-Nets), as nn.ConvTranspose2d: output "
                "(L − 1)·s − pads + d·(k − 1) + output_padding + 1; weight C_in × C_out/groups × kh × kw; "
                "MACs = C_in·H·W·(C_out/groups)·kh·kw (every input pixel times every tap, as fvcore and ptflops)",
            defaults=dict(stride=(1, 1), padding=(0, 0, 0, 0), output_padding=(0, 0), dilation=(1, 1), groups=1,
                          bias=True),
            weights=_conv_transpose_weights, window=_window, spatial="transposed", filters="out_channels",
            fusion="anchor", absorbs_norm=True, scale_outputs=_conv_transpose_scale_outputs))


def _pool_shape(a, ins, ctx):
    (x,) = ins
    _need_chw(ctx, x, "pooling")
    C, H, W = x
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = a["kernel"], a["stride"], a["padding"]
    dh, dw = a["dilation"]
    _nonnegative_padding(ctx, a["padding"])
    if is_int(kh) and (2 * max(pt, pb) > kh or 2 * max(pl, pr) > kw):
        ctx.fail("pooling padding must be at most half the kernel", f"kernel {kh}x{kw}, padding {a['padding']}")
    ceil = a["ceil_mode"]
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


_POOL = dict(padding=(0, 0, 0, 0), dilation=(1, 1), ceil_mode=False)
register(Op("maxpool2d", "pool", (1, 1), _pool_shape, ops=_pool_ops, label=_pool_label("max"),
            doc="max pooling; operations = C·H'·W'·K² comparisons, as the slides count",
            defaults=_POOL, window=_window, spatial="window", reduce="max"))
register(Op("avgpool2d", "pool", (1, 1), _pool_shape, ops=_pool_ops, label=_pool_label("avg"),
            doc="average pooling; operations = C·H'·W'·K²",
            defaults={**_POOL, "count_include_pad": True}, window=_window, spatial="window", reduce="avg"))



def blur_filter(kh: int, kw: int | None = None):
    """The kh×kw binomial low-pass filter of blur pooling (timm's BlurPool2d, TResNet's
    anti-aliasing): the outer product of the binomial rows (k−1 choose i)/2^(k−1).

    >>> (blur_filter(3) * 16).tolist()
    [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    import numpy as np
    from math import comb

    def row(k):
        return np.array([comb(k - 1, i) for i in range(k)], dtype=np.float64) / 2.0 ** (k - 1)

    return np.outer(row(kh), row(kh if kw is None else kw))


def _blur_shape(a, ins, ctx):
    (x,) = ins
    _need_chw(ctx, x, "blurpool2d")
    C, H, W = x
    (kh, kw), (sh, sw) = a["kernel"], a["stride"]
    if not all(is_int(v) and v >= 1 for v in (kh, kw, sh, sw)):
        ctx.fail("blur pooling kernel and stride must be positive integers", f"kernel={a['kernel']}, stride={a['stride']}")
    return (C, window_out(ctx, H, kh, sh, 0, 0, 1, False, "H"), window_out(ctx, W, kw, sw, 0, 0, 1, False, "W"))


def _blur_label(a, ins, out):
    (kh, kw), (sh, _) = a["kernel"], a["stride"]
    return f"{kh}x{kw} blur pool" + (f", /{sh}" if sh != 1 else "")


register(Op("blurpool2d", "pool", (1, 1), _blur_shape, ops=_pool_ops, label=_blur_label,
            defaults=dict(kernel=(3, 3), stride=(2, 2)),
            window=lambda a: Window(tuple(a["kernel"]), tuple(a["stride"]), (0, 0, 0, 0)), spatial="window",
            doc="blur pooling: each channel filtered by the fixed binomial filter (blur_filter), then "
                "subsampled by the stride (anti-aliased downsampling: timm's BlurPool2d, TResNet); no parameters, "
                "K² operations per output"))


def _adaptive_shape(a, ins, ctx):
    (x,) = ins
    _need_chw(ctx, x, "adaptive pooling")
    oh, ow = a["output_size"]
    return (x[0], oh, ow)


def adaptive_reads(n, o):
    """The summed window sizes of an adaptive pool of ``n`` inputs to ``o`` outputs.

    Window i spans ⌊i·n/o⌋ … ⌈(i+1)·n/o⌉ (PyTorch's rule), so the sizes telescope to
    n + Σ_{0<i<o} (⌈i·n/o⌉ − ⌊i·n/o⌋) = n + o − gcd(n, o): neighbours share an input unless
    i·n/o is whole. Numeric sizes give the closed form; a symbolic ``n`` keeps the sum, so a
    formula evaluates to the numeric count at every size (and is plain ``n`` when o = 1).

    >>> adaptive_reads(7, 7), adaptive_reads(14, 7), adaptive_reads(13, 7), adaptive_reads(1, 6)
    (7, 14, 19, 6)
    >>> from cnngraph.ir.symbols import H
    >>> adaptive_reads(H, 1), adaptive_reads(H, 2).subs(H, 5)
    (H, 6)
    """
    if is_int(n):
        return int(n) + o - math.gcd(int(n), o)
    return n + sum(sympy.ceiling(sympy.Rational(i, o) * n) - sympy.floor(sympy.Rational(i, o) * n)
                   for i in range(1, o))


def _adaptive_ops(a, ins, out):
    # Every output reads its window: C · (summed window sizes along H) · (along W), which is
    # C·H·W when the windows tile the input (global pooling, or o dividing the size).
    C, H, W = ins[0]
    return tidy(C * adaptive_reads(H, int(out[1])) * adaptive_reads(W, int(out[2])))


register(Op("adaptive_avgpool2d", "pool", (1, 1), _adaptive_shape, ops=_adaptive_ops,
            label=lambda a, ins, out: "global avg pool" if tuple(a["output_size"]) == (1, 1) else f"adaptive avg pool {a['output_size'][0]}x{a['output_size'][1]}",
            doc="adaptive average pooling to a fixed output size; (1, 1) is global average pooling",
            spatial="adaptive", reduce="avg"))
register(Op("adaptive_maxpool2d", "pool", (1, 1), _adaptive_shape, ops=_adaptive_ops,
            label=lambda a, ins, out: f"adaptive max pool {a['output_size'][0]}x{a['output_size'][1]}",
            doc="adaptive max pooling to a fixed output size", spatial="adaptive", reduce="max"))


def _flatten_shape(a, ins, ctx):
    (x,) = ins
    return (numel(x),)


register(Op("flatten", "reshape", (1, 1), _flatten_shape, label=lambda a, ins, out: "flatten",
            doc="flatten C×H×W to a vector (the slides count its output memory)", spatial="whole"))


def _linear_shape(a, ins, ctx):
    (x,) = ins
    if len(x) != 1:
        ctx.fail("linear layer needs a flattened vector input; add flatten() first",
                 f"got shape {fmt_shape(x)}")
    if nonpositive(a["out_features"]):
        ctx.fail("out_features must be positive", f"out_features={a['out_features']}")
    return (a["out_features"],)


def _linear_weights(a, ins):
    yield Weight("weight", (a["out_features"], ins[0][0]), "param", "fc")
    if a["bias"]:
        yield Weight("bias", (a["out_features"],), "param", "bias")


register(Op("linear", "linear", (1, 1), _linear_shape,
            macs=lambda a, ins, out: tidy(ins[0][0] * a["out_features"]),
            label=lambda a, ins, out: f"FC {a['out_features']}",
            doc="fully connected layer; MACs = C_in·C_out", defaults=dict(bias=True),
            weights=_linear_weights, spatial="whole", filters="out_features", fusion="anchor", absorbs_norm=True))

def _channel_conv_shape(a, ins, ctx):
    (x,) = ins
    k, p = a["size"], a["pad"]
    if len(x) != 1:
        ctx.fail("channel_conv slides along a vector of channels; pool and flatten first", f"got shape {fmt_shape(x)}")
    if not (is_int(k) and is_int(p) and k >= 1 and p >= 0):
        ctx.fail("channel_conv size must be positive and pad non-negative", f"size={k}, pad={p}")
    out = tidy(x[0] + 2 * p - k + 1)
    if nonpositive(out):
        ctx.fail("channel_conv filter is longer than the padded channels", f"{x[0]} channels, size {k}, pad {p}")
    return (out,)


register(Op("channel_conv", "conv", (1, 1), _channel_conv_shape,
            macs=lambda a, ins, out: tidy(out[0] * a["size"]),
            label=lambda a, ins, out: f"conv1d k={a['size']} over channels",
            defaults=dict(size=3, pad=1),
            weights=lambda a, ins: [Weight("weight", (1, 1, a["size"]), "param", "he")],
            doc="a 1-D convolution sliding one filter of `size` taps along a vector of channels, `pad` zeros on both ends, "
                "no bias (ECA's nn.Conv1d(1, 1, k) over the pooled channels); MACs = C_out·size"))

# LeNet-5's output layer (LeCun et al. 1998): y_i = Σ_j (x_j − w_ij)². Its prototypes w were
# chosen by hand and kept fixed, so they are buffers, not trained parameters: that is what
# makes the paper's "60,000 trainable parameters" exact.
register(Op("rbf", "linear", (1, 1), _linear_shape,
            weights=lambda a, ins: [Weight("weight", (a["out_features"], ins[0][0]), "buffer", "scale")],
            macs=lambda a, ins, out: tidy(ins[0][0] * a["out_features"]),
            ops=lambda a, ins, out: tidy(ins[0][0] * a["out_features"]),  # the subtractions
            label=lambda a, ins, out: f"RBF {a['out_features']}",
            doc="Euclidean radial basis units with fixed prototypes (LeNet-5 output): MACs = in·out, prototypes are buffers"))


def _same_shape(a, ins, ctx):
    return tuple(ins[0])


def activation(name: str, label: str, act: Activation, doc: str = "", defaults: dict | None = None, weights=None,
               shape=None):
    """Register an element-wise activation: one operation per element, in place when the
    node says so, fused into the epilogue of the conv, linear or add before it."""
    # Epilogues take parameter-free activations only (a kernel's act2 has no parameter slot).
    fusable = weights is None and act.param is None
    return register(Op(name, "act", (1, 1), shape or _same_shape, ops=lambda a, ins, out: numel(out), memory=_inplace_numel,
                       label=lambda a, ins, out: label, doc=doc or f"{label} activation (one operation per element)",
                       defaults={"inplace": act.inplace, **(defaults or {})}, weights=weights, inplace_ports=(0,),
                       fusion="act" if fusable else None, activation=act))


# ---- the activation table: PyTorch's definitions. ``ref`` works on any array module.
def _sigmoid(xp, v):
    return 1 / (1 + xp.exp(-v))


def _onnx_scalar_clip(b, n, x, lo, hi):
    return b.node("Clip", [x, b.scalar(f"{n}/min", lo), b.scalar(f"{n}/max", hi)], n, n)


def _onnx_hardswish(b, n, x, a):
    if b.opset >= 14:
        return b.node("HardSwish", [x], n, n)
    s = b.node("HardSigmoid", [x], f"{n}/hardsigmoid", f"{n}/hardsigmoid", alpha=1.0 / 6, beta=0.5)
    return b.node("Mul", [x, s], n, n)


def _onnx_gelu(b, n, x, a):
    if b.opset >= 20:
        return b.node("Gelu", [x], n, n)
    # 0.5·x·(1 + erf(x/√2)), PyTorch's exact GELU
    r, one, half = b.scalar(f"{n}/sqrt2", 2.0 ** 0.5), b.scalar(f"{n}/one", 1.0), b.scalar(f"{n}/half", 0.5)
    t = b.node("Div", [x, r], f"{n}/div", f"{n}/div")
    t = b.node("Erf", [t], f"{n}/erf", f"{n}/erf")
    t = b.node("Add", [t, one], f"{n}/add", f"{n}/add")
    t = b.node("Mul", [x, t], f"{n}/mul", f"{n}/mul")
    return b.node("Mul", [t, half], n, n)


def _onnx_silu(b, n, x, a):
    s = b.node("Sigmoid", [x], f"{n}/sigmoid", f"{n}/sigmoid")
    return b.node("Mul", [x, s], n, n)


activation("relu", "relu", Activation(
    1, lambda xp, erf, v, a: xp.maximum(v, 0), lambda F, x, a: F.relu(x),
    lambda b, n, x, a: b.node("Relu", [x], n, n), clamp=(0.0, math.inf)))
activation("relu6", "relu6", Activation(
    2, lambda xp, erf, v, a: xp.clip(v, 0, 6), lambda F, x, a: F.relu6(x),
    lambda b, n, x, a: _onnx_scalar_clip(b, n, x, 0.0, 6.0), clamp=(0.0, 6.0)))
activation("tanh", "tanh", Activation(
    4, lambda xp, erf, v, a: xp.tanh(v), lambda F, x, a: F.tanh(x),
    lambda b, n, x, a: b.node("Tanh", [x], n, n), inplace=False))
activation("sigmoid", "sigmoid", Activation(
    3, lambda xp, erf, v, a: _sigmoid(xp, v), lambda F, x, a: F.sigmoid(x),
    lambda b, n, x, a: b.node("Sigmoid", [x], n, n), inplace=False))
activation("silu", "swish", Activation(
    5, lambda xp, erf, v, a: v * _sigmoid(xp, v), lambda F, x, a: F.silu(x), _onnx_silu))
activation("hardswish", "hswish", Activation(
    6, lambda xp, erf, v, a: v * xp.clip(v + 3, 0, 6) / 6, lambda F, x, a: F.hardswish(x), _onnx_hardswish))
activation("hardsigmoid", "hsigmoid", Activation(
    7, lambda xp, erf, v, a: xp.clip(v + 3, 0, 6) / 6, lambda F, x, a: F.hardsigmoid(x),
    lambda b, n, x, a: b.node("HardSigmoid", [x], n, n, alpha=1.0 / 6, beta=0.5)))
activation("gelu", "gelu", Activation(
    8, lambda xp, erf, v, a: 0.5 * v * (1 + erf(v * 0.7071067811865476)), lambda F, x, a: F.gelu(x), _onnx_gelu,
    inplace=False))


_GELU_TANH_C = 0.7978845608028654  # √(2/π)


def _onnx_gelu_tanh(b, n, x, a):
    if b.opset >= 20:
        return b.node("Gelu", [x], n, n, approximate="tanh")
    # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    t = b.node("Pow", [x, b.scalar(f"{n}/three", 3.0)], f"{n}/cube", f"{n}/cube")
    t = b.node("Mul", [t, b.scalar(f"{n}/k", 0.044715)], f"{n}/k3", f"{n}/k3")
    t = b.node("Add", [x, t], f"{n}/inner", f"{n}/inner")
    t = b.node("Mul", [t, b.scalar(f"{n}/c", _GELU_TANH_C)], f"{n}/scaled", f"{n}/scaled")
    t = b.node("Tanh", [t], f"{n}/tanh", f"{n}/tanh")
    t = b.node("Add", [t, b.scalar(f"{n}/one", 1.0)], f"{n}/add", f"{n}/add")
    t = b.node("Mul", [x, t], f"{n}/mul", f"{n}/mul")
    return b.node("Mul", [t, b.scalar(f"{n}/half", 0.5)], n, n)


activation("gelu_tanh", "gelu (tanh)", Activation(
    14, lambda xp, erf, v, a: 0.5 * v * (1 + xp.tanh(_GELU_TANH_C * (v + 0.044715 * v * v * v))),
    lambda F, x, a: F.gelu(x, approximate="tanh"), _onnx_gelu_tanh, inplace=False),
    doc="GELU's tanh approximation, nn.GELU(approximate='tanh'): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) "
        "(one operation per element)")


def _softplus(xp, v):  # log(1 + eˣ) without overflow
    return xp.maximum(v, 0) + xp.log1p(xp.exp(-xp.abs(v)))


def _onnx_mish(b, n, x, a):
    if b.opset >= 18:
        return b.node("Mish", [x], n, n)
    t = b.node("Softplus", [x], f"{n}/softplus", f"{n}/softplus")
    t = b.node("Tanh", [t], f"{n}/tanh", f"{n}/tanh")
    return b.node("Mul", [x, t], n, n)


def _onnx_softplus(b, n, x, a):
    beta = float(a["beta"])
    if beta == 1.0:
        return b.node("Softplus", [x], n, n)
    t = b.node("Mul", [x, b.scalar(f"{n}/beta", beta)], f"{n}/mul", f"{n}/mul")
    t = b.node("Softplus", [t], f"{n}/softplus", f"{n}/softplus")
    return b.node("Div", [t, b.scalar(f"{n}/beta_div", beta)], n, n)


def _fit_softplus(f):
    """beta of a function that may be softplus(beta): f(0) = log(2)/beta."""
    import math

    y0 = float(f(0.0))
    return math.log(2.0) / y0 if y0 > 0 else None


def _softplus_shape(a, ins, ctx):
    if not a["beta"] > 0:
        ctx.fail("softplus needs beta > 0", f"beta={a['beta']}")
    return tuple(ins[0])


def _onnx_prelu(b, n, x, a):
    # ONNX broadcasts from the last axis: per-channel slopes of a C×H×W map become C×1×1.
    slope = a["weight"]
    if a["num_parameters"] != 1 and len(a["in_shape"]) > 1:
        axes = list(range(1, len(a["in_shape"])))
        slope = b.node("Unsqueeze", [slope, b.const(f"{n}/axes", axes)], f"{n}/slope", f"{n}/slope")
    return b.node("PRelu", [x, slope], n, n)


def _prelu_shape(a, ins, ctx):
    (x,) = ins
    if a["num_parameters"] != 1 and same(a["num_parameters"], x[0]) is False:
        ctx.fail("prelu num_parameters must be 1 or the channels", f"num_parameters={a['num_parameters']}, channels={x[0]}")
    return tuple(x)


activation("leaky_relu", "leaky relu", Activation(
    9, lambda xp, erf, v, a: xp.where(v >= 0, v, a["negative_slope"] * v),
    lambda F, x, a: F.leaky_relu(x, a["negative_slope"]),
    lambda b, n, x, a: b.node("LeakyRelu", [x], n, n, alpha=float(a["negative_slope"])), param="negative_slope"),
    defaults=dict(negative_slope=0.01), doc="leaky ReLU: x, or negative_slope·x below 0 (one operation per element)")
activation("elu", "elu", Activation(
    10, lambda xp, erf, v, a: xp.where(v > 0, v, a["alpha"] * xp.expm1(xp.minimum(v, 0))),
    lambda F, x, a: F.elu(x, a["alpha"]),
    lambda b, n, x, a: b.node("Elu", [x], n, n, alpha=float(a["alpha"])), param="alpha", inplace=False),
    defaults=dict(alpha=1.0), doc="ELU: x, or α·(eˣ − 1) below 0 (one operation per element)")
activation("mish", "mish", Activation(
    11, lambda xp, erf, v, a: v * xp.tanh(_softplus(xp, v)), lambda F, x, a: F.mish(x), _onnx_mish, inplace=False),
    doc="Mish: x·tanh(softplus(x)) (one operation per element)")
activation("softplus", "softplus", Activation(
    13, lambda xp, erf, v, a: xp.where(a["beta"] * v > 20, v, _softplus(xp, a["beta"] * v) / a["beta"]),
    lambda F, x, a: F.softplus(x, a["beta"]),
    _onnx_softplus, param="beta", inplace=False, fit=_fit_softplus),
    defaults=dict(beta=1.0), shape=_softplus_shape,
    doc="softplus: log(1 + e^(beta·x))/beta, and x where beta·x > 20 as PyTorch's default threshold (the "
        "difference is below float32 rounding there; one operation per element)")
activation("prelu", "prelu", Activation(
    12, lambda xp, erf, v, a: xp.where(v >= 0, v, a["weight"] * v), lambda F, x, a: F.prelu(x, a["weight"]),
    _onnx_prelu, inplace=False),
    defaults=dict(num_parameters=1), shape=_prelu_shape,
    weights=lambda a, ins: [Weight("weight", (a["num_parameters"],), "param", "prelu")],
    doc="PReLU: x, or a learnt slope·x below 0; one slope, or one per channel (num_parameters = C)")


register(Op("softmax", "act", (1, 1), _same_shape, inplace_ports=(0,), ops=lambda a, ins, out: tidy(3 * numel(out)),
            label=lambda a, ins, out: "softmax", doc="softmax over the channel/feature axis (exp, sum, divide)"))
register(Op("log_softmax", "act", (1, 1), _same_shape, inplace_ports=(0,), ops=lambda a, ins, out: tidy(3 * numel(out)),
            label=lambda a, ins, out: "log softmax",
            doc="log softmax over the channel/feature axis, x − max − log Σ exp(x − max) (exp, sum, subtract; "
                "MNIST-style classifiers' F.log_softmax)"))


def _radix_softmax_shape(a, ins, ctx):
    (x,) = ins
    r, g = a["radix"], a["groups"]
    if not (is_int(r) and is_int(g) and r >= 1 and g >= 1) or divides(r * g, x[0]) is False:
        ctx.fail("radix × groups must divide the channels", f"radix={r}, groups={g}, channels={x[0]}")
    return tuple(x)


register(Op("radix_softmax", "act", (1, 1), _radix_softmax_shape, ops=lambda a, ins, out: tidy(3 * numel(out)),
            label=lambda a, ins, out: f"softmax over {a['radix']} splits",
            defaults=dict(radix=2, groups=1),
            doc="split attention's softmax over radix groups (ResNeSt's rSoftMax, SKNet's selection): channels "
                "read as (groups, radix, C/(groups·radix)), softmax over the radix axis, written as (radix, groups, "
                "C/(groups·radix))"))


def _bn_shape(a, ins, ctx):
    (x,) = ins
    if a.get("num_features") is not None and same(a["num_features"], x[0]) is False:
        ctx.fail("batch norm features must equal the input channels", f"num_features={a['num_features']}, channels={x[0]}")
    return tuple(x)


def _affine(shape_of):
    """γ (``weight``) and β (``bias``) of a norm, when its ``affine`` attribute says so."""

    def weights(a, ins):
        if a["affine"]:
            shape = shape_of(ins[0])
            return [Weight("weight", shape, "param", "scale"), Weight("bias", shape, "param", "bias")]
        return []

    return weights


def _bn_weights(a, ins):
    c = (ins[0][0],)
    return _affine(lambda x: c)(a, ins) + [Weight("running_mean", c, "buffer", "mean"),
                                           Weight("running_var", c, "buffer", "var")]


def bn_scale_shift(weights: dict, bn: str, attrs: dict, channels: int):
    """Per-channel ``(scale, shift)`` of batch norm ``bn`` at inference, in float64: ``y = x·scale + shift``
    with ``scale = γ/√(σ² + ε)``, ``shift = β − μ·scale`` (γ = 1, β = 0 when not affine). What
    folding a batch norm into the layer before it and every backend's batch-norm kernel compute.

    >>> import numpy as np
    >>> ws = {"bn.running_mean": np.array([1.0]), "bn.running_var": np.array([3.0]),
    ...       "bn.weight": np.array([2.0]), "bn.bias": np.array([0.5])}
    >>> [v.tolist() for v in bn_scale_shift(ws, "bn", dict(eps=1.0, affine=True), 1)]
    [[1.0], [-0.5]]
    """
    import numpy as np

    eps = float(attrs["eps"])
    var = weights[f"{bn}.running_var"].astype(np.float64)
    mean = weights[f"{bn}.running_mean"].astype(np.float64)
    if attrs["affine"]:
        gamma, beta = weights[f"{bn}.weight"].astype(np.float64), weights[f"{bn}.bias"].astype(np.float64)
    else:
        gamma, beta = np.ones(channels), np.zeros(channels)
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


_NORM = dict(eps=1e-5, affine=True)
register(Op("batchnorm", "norm", (1, 1), _bn_shape,
            ops=lambda a, ins, out: numel(out),
            label=lambda a, ins, out: "BN",
            doc="batch norm: γ, β are parameters; running mean and variance are buffers",
            defaults=_NORM, weights=_bn_weights, inplace_ports=(0,), fusion="anchor", folds=True))


def _gn_shape(a, ins, ctx):
    (x,) = ins
    if divides(a["num_groups"], x[0]) is False:
        ctx.fail("num_groups must divide the channels", f"num_groups={a['num_groups']}, channels={x[0]}")
    return tuple(x)


register(Op("groupnorm", "norm", (1, 1), _gn_shape,
            ops=lambda a, ins, out: tidy(2 * numel(out)), label=lambda a, ins, out: f"GN {a['num_groups']}",
            doc="group norm over groups of channels; γ, β per channel",
            defaults=_NORM, weights=_affine(lambda x: (x[0],))))
register(Op("instancenorm", "norm", (1, 1), _same_shape,
            ops=lambda a, ins, out: tidy(2 * numel(out)), label=lambda a, ins, out: "IN",
            doc="instance norm (per sample, per channel); affine off by default as in PyTorch",
            defaults={**_NORM, "affine": False}, weights=_affine(lambda x: (x[0],))))
register(Op("layernorm", "norm", (1, 1), _same_shape,
            ops=lambda a, ins, out: tidy(2 * numel(out)), label=lambda a, ins, out: "LN",
            doc="layer norm over the whole per-sample tensor, element-wise affine as nn.LayerNorm",
            defaults=_NORM, weights=_affine(tuple)))
register(Op("layernorm2d", "norm", (1, 1), _same_shape,
            ops=lambda a, ins, out: tidy(2 * numel(out)), label=lambda a, ins, out: "LN (channels)",
            doc="layer norm over the channels at each pixel, γ and β per channel (ConvNeXt's LayerNorm2d, "
                "nn.LayerNorm on a channels-last tensor)",
            defaults=_NORM, weights=_affine(lambda x: (x[0],))))
register(Op("layer_scale", "act", (1, 1), _same_shape,
            ops=lambda a, ins, out: numel(out), label=lambda a, ins, out: "layer scale",
            doc="a learned per-channel scale γ·x (ConvNeXt's layer scale); its weight is named `field` "
                "(torchvision: `layer_scale`, timm: `gamma`)",
            defaults=dict(field="weight"), fusion="anchor",  # the residual add after it fuses into its epilogue
            weights=lambda a, ins: [Weight(a["field"], (ins[0][0],), "param", "scale")]))
def _lrn_shape(a, ins, ctx):
    # x / (k + α/n·Σx²)^β is finite for every input only while the base stays positive.
    if not (a["k"] > 0 and a["alpha"] >= 0):
        ctx.fail("LRN needs k > 0 and alpha ≥ 0 so that its base k + alpha/size·Σx² stays positive",
                 f"k={a['k']}, alpha={a['alpha']}")
    return tuple(ins[0])


register(Op("lrn", "norm", (1, 1), _lrn_shape,
            ops=lambda a, ins, out: tidy(numel(out) * a["size"]), label=lambda a, ins, out: f"LRN {a['size']}",
            doc="local response normalization across `size` neighbouring channels (AlexNet)",
            defaults=dict(size=5, alpha=1e-4, beta=0.75, k=1.0)))

register(Op("dropout", "dropout", (1, 1), _same_shape, memory=_zero,
            label=lambda a, ins, out: f"dropout {a['p']}", doc="dropout: the identity at inference",
            defaults=dict(p=0.5), passthrough=True))
register(Op("identity", "dropout", (1, 1), _same_shape, memory=_zero,
            label=lambda a, ins, out: "identity", doc="identity", passthrough=True))


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
            label=lambda a, ins, out: "+", doc="element-wise sum (residual shortcut, ResNeXt pathways)",
            inplace_ports=(0,), fusion="anchor", elementwise=True))


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


register(Op("mul", "merge", (2, 2), _mul_shape, ops=lambda a, ins, out: numel(out), inplace_ports=(0,), elementwise=True,
            gates=True, label=lambda a, ins, out: "×", doc="element-wise product, broadcasting a C×1×1 or C scale (squeeze-and-excitation)"))
def _scale_label(a, ins, out):
    f, s = a["factor"], a["shift"]
    text = "" if f == 1 else f"×{f:g}" if isinstance(f, float) else f"×{f}"
    return (text + (f" {s:+g}" if s else "")).strip() or "×1"


register(Op("scale", "act", (1, 1), _same_shape, ops=lambda a, ins, out: tidy(numel(out) * (1 + (a["shift"] != 0))),
            inplace_ports=(0,), label=_scale_label, defaults=dict(shift=0.0),
            doc="factor·x + shift for constant numbers, no parameters (Inception-ResNet's residual scaling, "
                "x * 0.5 + 1.0 in a forward); one operation per element, two with a shift"))


def _clip_shape(a, ins, ctx):
    lo, hi = a["low"], a["high"]
    if lo is None and hi is None or lo is not None and hi is not None and not lo < hi:
        ctx.fail("clip needs low < high (one of them may be None: unbounded)", f"low={lo}, high={hi}")
    return tuple(ins[0])


def _clip_label(a, ins, out):
    lo, hi = a["low"], a["high"]
    return f"clip [{'-∞' if lo is None else f'{lo:g}'}, {'∞' if hi is None else f'{hi:g}'}]"


register(Op("clip", "act", (1, 1), _clip_shape, ops=lambda a, ins, out: numel(out), inplace_ports=(0,),
            memory=_inplace_numel, label=_clip_label, defaults=dict(low=None, high=None, inplace=False),
            doc="clamp to [low, high] (nn.Hardtanh, torch.clamp, ONNX Clip); None leaves a side unbounded; "
                "one operation per element"))


def _concat_shape(a, ins, ctx):
    first = ins[0]
    for other in ins[1:]:
        if len(other) != len(first):
            ctx.fail("concat needs inputs of the same rank", f"{fmt_shape(first)} and {fmt_shape(other)}")
        for axis in range(1, len(first)):
            if same(first[axis], other[axis]) is False:
                ctx.fail("concat needs equal spatial sizes", f"{fmt_shape(first)} and {fmt_shape(other)}")
    return (tidy(sum((s[0] for s in ins), 0)),) + tuple(first[1:])


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
    if a["mode"] not in ("constant", "reflect"):
        ctx.fail("pad2d mode must be constant or reflect", f"mode={a['mode']!r}")
    if a["mode"] == "reflect":
        for p, L in ((pt, H), (pb, H), (pl, W), (pr, W)):
            if negative(p) or (is_int(p) and is_int(L) and p >= L):
                ctx.fail("reflect padding must be non-negative and smaller than the size it reflects",
                         f"padding {tuple(a['padding'])} of {H}×{W}")
    Ho, Wo = tidy(H + pt + pb), tidy(W + pl + pr)
    if nonpositive(Ho) or nonpositive(Wo):
        ctx.fail("pad2d crops the feature map away", f"{H}×{W} padded by {a['padding']} gives {Ho}×{Wo}")
    return (C, Ho, Wo)


register(Op("pad2d", "reshape", (1, 1), _pad2d_shape,
            label=lambda a, ins, out: f"{'reflect ' if a['mode'] == 'reflect' else ''}pad {tuple(a['padding'])}",
            defaults=dict(mode="constant"),
            doc="zero padding (top, left, bottom, right); negative values crop, as torch.nn.functional.pad "
                "(NASNet's one-pixel shift in its factorized reduction); mode reflect mirrors the border "
                "without repeating it (blur pooling's F.pad(..., mode='reflect'))"))


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


def exact_scale(v):
    """A scale factor as an exact number: an int, or a sympy Rational (1.5 -> 3/2), so
    floor(H·scale) stays exact and symbolic.

    >>> exact_scale(2.0), exact_scale(1.5)
    (2, 3/2)
    """
    from fractions import Fraction

    f = Fraction(v).limit_denominator(10**6)
    return int(f) if f.denominator == 1 else sympy.Rational(f.numerator, f.denominator)


def _ratio(v) -> tuple:
    """(numerator, denominator) of a scale: an int, a float or a sympy Rational.

    >>> _ratio(2), _ratio(1.5)
    ((2, 1), (3, 2))
    """
    if isinstance(v, int):
        return v, 1
    if is_sym(v):
        r = sympy.Rational(v)
        return int(r.p), int(r.q)
    from fractions import Fraction

    f = Fraction(v)
    return f.numerator, f.denominator


def _resize_shape(a, ins, ctx):
    x = ins[0]
    _need_chw(ctx, x, "resize")
    if a["mode"] not in ("nearest", "bilinear"):
        ctx.fail("resize mode must be nearest or bilinear", f"mode={a['mode']!r}")
    if a.get("align_corners") and a["mode"] != "bilinear":
        ctx.fail("align_corners applies to bilinear resizing only", f"mode={a['mode']!r}")
    C, H, W = x
    if len(ins) == 2:  # to the spatial size of another tensor (a decoder's skip, the input)
        _need_chw(ctx, ins[1], "resize's size reference")
        return (C, ins[1][1], ins[1][2])
    if a.get("output_size") is not None:
        oh, ow = a["output_size"]
    else:
        (sh, sw) = a["scale"]
        if nonpositive(sh) or nonpositive(sw):
            ctx.fail("resize scale must be positive", f"scale={a['scale']}")
        # PyTorch and ONNX: floor(size · scale)
        (ph, qh), (pw, qw) = _ratio(sh), _ratio(sw)
        oh, ow = floordiv(H * ph, qh), floordiv(W * pw, qw)
    if nonpositive(oh) or nonpositive(ow):
        ctx.fail("resize output size must be positive", f"{fmt_shape(x)} to {oh}×{ow}")
    return (C, tidy(oh), tidy(ow))


def _resize_label(a, ins, out):
    if len(ins) == 2:
        to = "to match"
    elif a.get("output_size") is not None:
        to = f"to {a['output_size'][0]}×{a['output_size'][1]}"
    else:
        sh, sw = a["scale"]
        to = f"×{sh}" if sh == sw else f"×{sh}×{sw}"
    return f"{a['mode']} resize {to}" + (", corners" if a.get("align_corners") else "")


BLOCK_MODES = ("CRD", "DCR")  # channel order of the r×r block's values: c·r² + (i·r + j), or (i·r + j)·C + c


def _block_checks(ctx, a, x, what):
    _need_chw(ctx, x, what)
    r = a["block"]
    if a["mode"] not in BLOCK_MODES:
        ctx.fail(f"{what} mode must be CRD (PyTorch's pixel shuffle) or DCR (ONNX's default)", f"mode={a['mode']!r}")
    if not (is_int(r) and int(r) >= 1):
        ctx.fail(f"{what} block must be a positive integer", f"block={r}")
    return int(r)


def _depth_to_space_shape(a, ins, ctx):
    (x,) = ins
    r = _block_checks(ctx, a, x, "depth_to_space")
    C, H, W = x
    if divides(r * r, C) is False:
        ctx.fail("depth_to_space needs channels divisible by block²", f"{C} channels, block {r}")
    return (div(C, r * r), tidy(H * r), tidy(W * r))


def _space_to_depth_shape(a, ins, ctx):
    (x,) = ins
    r = _block_checks(ctx, a, x, "space_to_depth")
    C, H, W = x
    for axis, L in (("H", H), ("W", W)):
        if divides(r, L) is False:
            ctx.fail(f"space_to_depth needs {axis} divisible by the block", f"{axis}={L}, block {r}")
    # a symbolic size is taken to be a multiple of the block (PyTorch refuses the others)
    return (tidy(C * r * r), floordiv(H, r), floordiv(W, r))


register(Op("depth_to_space", "reshape", (1, 1), _depth_to_space_shape,
            label=lambda a, ins, out: f"depth→space ×{a['block']}" + (" (DCR)" if a["mode"] == "DCR" else ""),
            defaults=dict(mode="CRD"),
            doc="rearrange C·r² channels into r×r blocks of space: nn.PixelShuffle (mode CRD), ONNX DepthToSpace "
                "(CRD or DCR); a copy, no arithmetic"))
register(Op("space_to_depth", "reshape", (1, 1), _space_to_depth_shape,
            label=lambda a, ins, out: f"space→depth /{a['block']}" + (" (DCR)" if a["mode"] == "DCR" else ""),
            defaults=dict(mode="CRD"),
            doc="rearrange r×r blocks of space into C·r² channels: nn.PixelUnshuffle (mode CRD), ONNX SpaceToDepth "
                "and TResNet's SpaceToDepth (DCR); a copy, no arithmetic"))


register(Op("resize", "reshape", (1, 2), _resize_shape,
            ops=lambda a, ins, out: tidy(4 * numel(out)) if a["mode"] == "bilinear" else 0,
            label=_resize_label,
            doc="upsampling/resizing, nearest or bilinear (align_corners either way), by a scale, to a size, "
                "or to the H×W of a second input; bilinear counts 4 operations per output (its weighted taps)"))


def _input_shape(a, ins, ctx):
    # check_attrs has made every size an int or an integer expression (strings parsed safely)
    shape = tuple(tidy(s) for s in a["shape"])
    for s in shape:
        if nonpositive(s):
            ctx.fail("input sizes must be positive", f"shape {fmt_shape(shape)}")
    return shape


register(Op("input", "input", (0, 0), _input_shape, memory=_zero,
            label=lambda a, ins, out: f"Input {fmt_shape(out)}", doc="graph input (per sample, no batch)", is_input=True))


def describe() -> list[tuple[str, str, str]]:
    """(name, kind, doc) of every registered op, for ``cnngraph ops``."""
    return [(o.name, o.kind, o.doc) for o in sorted(REGISTRY.values(), key=lambda o: (o.kind, o.name))]
