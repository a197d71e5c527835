"""The graph IR: a networkx DiGraph whose nodes are layers, plus free functions over it.

Node attributes:
  ``op``      registry name (see :mod:`cnngraph.ir.ops`)
  ``attrs``   the op's canonical attributes (dict)
  ``inputs``  ordered list of input node names (edges mirror it)
  ``path``    tuple of ``(scope, kind)`` pairs: the stages and blocks the node belongs to
  ``title``   display name (the slides' ``conv1`` for torchvision's ``features.0``), optional
  ``shape``   the inferred per-sample output shape

Graph attributes: ``name``, ``inputs`` (input node names), ``outputs``, ``notes`` (warnings
raised by shape rules, such as a stride that does not fit).

>>> from cnngraph import zoo
>>> g = zoo.build("lenet5")
>>> g.nodes["conv1"]["shape"]
(20, 28, 28)
>>> infer_shapes(g, (1, 32, 32))["conv1"]
(20, 32, 32)
"""
from __future__ import annotations

import functools

import networkx as nx

from cnngraph.ir import ops, printer
from cnngraph.ir.errors import CnnGraphError, GraphError, ShapeError


class CnnGraph(nx.DiGraph):
    """A networkx DiGraph with a short repr; Jupyter draws it as SVG (the display is
    registered by the top-level package, :func:`cnngraph.notebook_display`, since a diagram
    is presentation's business, not the IR's)."""

    def __repr__(self):
        return f"<CnnGraph {self.graph.get('name', '')!r}: {self.number_of_nodes()} nodes>"


def freeze(value):
    """A hashable version of an attribute value (lists become tuples, dicts sorted items)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


@functools.lru_cache(maxsize=65536)
def _apply(op_name: str, attrs_key, in_shapes: tuple, strict: bool):
    """Shape rule, cached: repeated blocks cost one sympy evaluation, not one per node."""
    op = ops.get(op_name)
    ctx = ops.Ctx("?", strict)
    out = op.shape(ops.check_attrs("?", dict(attrs_key)), list(in_shapes), ctx)
    return tuple(out), tuple(ctx.notes), tuple(ctx.conditions)


def apply_rule(name: str, op_name: str, attrs: dict, in_shapes, strict: bool = False, conditions=None):
    """Output shape of one layer; errors and notes name the layer.

    ``conditions``, a list, receives ``(layer, rule, relation)`` for each condition the
    symbols must meet (``H ≥ 11`` for an 11×11 valid conv): see :func:`outside_domain`.

    >>> apply_rule("p", "maxpool2d", dict(kernel=(3, 3), stride=(2, 2), padding=(0, 0, 0, 0)), [(64, 55, 55)])
    ((64, 27, 27), ())
    >>> apply_rule("p", "maxpool2d", dict(kernel=(3, 3), stride=(2, 2), padding=(0, 0, 0, 0)), [(64, 56, 56)])[1][0]
    'p: stride does not fit the padded input along H ((56 + 0 − 3) / 2 = 53/2 is not an integer); output size floored'
    """
    op = ops.get(op_name)
    attrs = ops.with_defaults(op_name, attrs)
    lo, hi = op.arity
    n = len(in_shapes)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
        raise ShapeError(name, f"{op_name} takes {want} inputs", f"got {n}")
    try:
        out, notes, conds = _apply(op_name, freeze(attrs), tuple(tuple(s) for s in in_shapes), strict)
    except ShapeError as e:
        raise ShapeError(name, e.rule, e.numbers) from None
    if conditions is not None:
        conditions.extend((name, rule, rel) for rule, rel in conds)
    return out, tuple(f"{name}: {m}" for m in notes)


def outside_domain(g, values: dict):
    """The first condition of ``g``'s symbolic sizes (or of a list of ``(layer, rule,
    relation)``) that ``values`` (by symbol name) break, as a message; else None.

    >>> from cnngraph import zoo
    >>> from cnngraph.ir.symbols import H, W
    >>> g = zoo.build("alexnet", input=(3, H, W))
    >>> outside_domain(g, {"H": 8, "W": 8})
    'features.2: kernel fits the padded input along H needs ⌊H/4 − 7/4⌋ + 1 ≥ 3, false at H = 8, W = 8'
    >>> outside_domain(g, {"H": 224, "W": 224}) is None
    True
    """
    import sympy

    conditions = g.graph.get("conditions", ()) if hasattr(g, "graph") else g
    at = {s: values[s.name] for _, _, rel in conditions for s in rel.free_symbols if s.name in values}
    for layer, rule, rel in conditions:
        v = rel.subs(at)
        if v is sympy.false:
            shown = ", ".join(f"{k} = {x}" for k, x in values.items())
            return f"{layer}: {rule} needs {printer.relation(rel)}, false at {shown}"
    return None


def add_node(g, name: str, op: str, attrs: dict, inputs=(), path=(), title=None, strict=False):
    """Add a layer to ``g`` after checking it against its inputs; returns its output shape.

    The op's attribute defaults (:attr:`cnngraph.ir.ops.Op.defaults`) are applied here, once:
    every reader of ``g.nodes[name]["attrs"]`` finds every attribute.
    """
    attrs = ops.with_defaults(op, attrs)
    if name in g:
        raise GraphError(f"{name}: a layer with this name already exists")
    attrs = ops.check_attrs(name, attrs)
    for i in inputs:
        if i not in g:
            raise GraphError(f"{name}: input {i!r} is not in the graph (dangling input)")
    shape, notes = apply_rule(name, op, attrs, [g.nodes[i]["shape"] for i in inputs], strict,
                              g.graph.setdefault("conditions", []))
    # Reported, not warned: a floored stride is routine (every stride-2 ResNet conv at 224).
    g.graph.setdefault("notes", []).extend(notes)
    g.add_node(name, op=op, attrs=attrs, inputs=list(inputs), path=tuple(path), title=title, shape=shape)
    for port, i in enumerate(inputs):
        if not g.has_edge(i, name):  # add(x, x) has one edge; `inputs` keeps both ports
            g.add_edge(i, name, port=port)
    if op == "input":
        g.graph.setdefault("inputs", []).append(name)
    return shape


def topo_order(g) -> list:
    """Nodes in a deterministic topological order (insertion order breaks ties).

    Graphs built by the DSL are already in order (every layer is added after its inputs), so
    the common case is one linear check; other graphs are sorted.
    """
    seen = set()
    for n, d in g.nodes(data=True):
        if not all(i in seen for i in d.get("inputs", ())) or not all(p in seen for p in g.pred[n]):
            break
        seen.add(n)
    else:
        return list(g.nodes)
    try:
        return list(nx.lexicographical_topological_sort(g, key=_order_key(g)))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(g)
        raise GraphError("the graph has a cycle: " + " -> ".join(f"{u}" for u, _ in cycle) + f" -> {cycle[0][0]}") from None


def _order_key(g):
    index = {n: i for i, n in enumerate(g.nodes)}
    return index.__getitem__


def check(g) -> None:
    """Raise :class:`GraphError` on a cycle, a dangling input or an unknown op."""
    for n, d in g.nodes(data=True):
        if "op" not in d:
            raise GraphError(f"{n}: node has no op (an edge names a layer that was never added)")
        ops.get(d["op"])
        for i in d.get("inputs", []):
            if i not in g:
                raise GraphError(f"{n}: input {i!r} is not in the graph (dangling input)")
        if d["op"] != "input" and not d.get("inputs"):
            raise GraphError(f"{n}: {d['op']} has no input")
    topo_order(g)
    if not g.graph.get("inputs"):
        raise GraphError("the graph has no input")


def as_graph(obj):
    """The graph of ``obj``: a graph is returned as is, a DSL ``Net`` gives its finished ``.graph``.

    Every public function taking a graph calls this, so ``analyze(net)`` works like
    ``analyze(net.graph)``.

    >>> from cnngraph.dsl import Net, conv2d
    >>> net = Net("one"); _ = conv2d(net.input(3, 8, 8), 4, 3)
    >>> as_graph(net) is as_graph(net.graph)
    True
    """
    if isinstance(obj, nx.DiGraph):
        return obj
    g = getattr(obj, "graph", None)  # a cnngraph.dsl.Net (graph.py cannot import the DSL)
    if isinstance(g, nx.DiGraph):
        return g
    raise GraphError(f"expected a cnngraph graph or a cnngraph.dsl.Net, got {type(obj).__name__}")


# Kinds of layer that, untitled in a titled model, take the name of the layer they follow.
FOLLOWER_KINDS = ("act", "dropout", "norm")


def layer_names(g, order=None) -> dict:
    """{node: the name tables, notes and diagrams show}: the layer's ``title``; in a model that
    titles its layers (the slides' ``conv1`` for torchvision's ``features.0``), an untitled
    activation, dropout or norm with one input is named after that input and its own op
    (``conv1.relu``, ``fc6.dropout``); otherwise the node name. Names stay unique (a clash
    keeps the node name).

    >>> from cnngraph import zoo
    >>> names = layer_names(as_graph(zoo.build("alexnet")))
    >>> [names[n] for n in ("features.0", "features.1", "flatten", "classifier.0", "classifier.2", "classifier.3")]
    ['conv1', 'conv1.relu', 'flatten', 'flatten.dropout', 'fc6.relu', 'fc6.dropout']
    """
    order = order or topo_order(g)
    titled = any(g.nodes[n].get("title") for n in order)
    out: dict = {}
    base: dict = {}  # node -> the name a follower's name starts from
    used = {g.nodes[n].get("title") for n in order} | set(order)
    for n in order:
        d = g.nodes[n]
        ins = d["inputs"]
        name = d.get("title") or n
        if titled and not d.get("title") and len(ins) == 1 and ops.get(d["op"]).kind in FOLLOWER_KINDS:
            derived = f"{base[ins[0]]}.{d['op']}"
            if derived not in used:
                name = derived
                used.add(name)
                base[n] = base[ins[0]]
        out[n] = name
        base.setdefault(n, name)
    return out


def outputs(g) -> list:
    """Output nodes: those declared, else the sinks."""
    return list(g.graph.get("outputs") or [n for n in g.nodes if g.out_degree(n) == 0])


def input_shape(g, name=None) -> tuple:
    return g.nodes[name or g.graph["inputs"][0]]["shape"]


def infer_shapes(g, input_shape=None, strict: bool = False, conditions=None) -> dict:
    """Shapes of every node for a new input shape (or the stored one), without changing ``g``.

    ``input_shape`` is a tuple for the first input or a dict ``{input_name: shape}``;
    ``conditions`` (a list) receives the symbolic sizes' conditions, as in :func:`apply_rule`.
    Weights the graph carries (``g.graph["weights"]``, an imported model's) must fit the new
    shapes (:func:`check_weights`).
    """
    return infer(g, input_shape, strict, conditions)[0]


def infer(g, input_shape=None, strict: bool = False, conditions=None) -> tuple[dict, list]:
    """``(shapes, notes)`` for a new input shape: :func:`infer_shapes` and the stride notes
    of that input (each rule's notes are recomputed, never copied from ``g``).

    >>> from cnngraph import zoo
    >>> g = zoo.build("resnet18")
    >>> [n for n in infer(g, (3, 225, 225))[1] if n.startswith("conv1")]
    []
    >>> infer(g, (3, 224, 224))[1][0]
    'conv1: stride does not fit the padded input along H ((224 + 6 − 7) / 2 = 223/2 is not an integer); output size floored'
    """
    g = as_graph(g)
    shapes, notes = _infer(g, input_shape, strict, conditions)
    if g.graph.get("weights"):  # an imported model carries weights made for one input size
        check_weights(g, g.graph["weights"], shapes)
    return shapes, notes


def _infer(g, input_shape, strict=False, conditions=None) -> tuple[dict, list]:
    check(g)
    if input_shape is None:
        given = {}
    elif isinstance(input_shape, dict):
        given = {k: tuple(v) for k, v in input_shape.items()}
    else:
        given = {g.graph["inputs"][0]: tuple(input_shape)}
    shapes, notes = {}, []
    for n in topo_order(g):
        d = g.nodes[n]
        attrs = d["attrs"]
        if d["op"] == "input" and n in given:
            attrs = ops.check_attrs(n, {**attrs, "shape": given[n]})
        shape, msgs = apply_rule(n, d["op"], attrs, [shapes[i] for i in d["inputs"]], strict, conditions)
        shapes[n] = shape
        notes.extend(msgs)
    return shapes, notes


def check_weights(g, weights=None, shapes=None) -> None:
    """Raise :class:`CnnGraphError` when a weight tensor does not have the shape the graph
    infers for its input (``shapes``: the shapes in use, default the stored ones).

    The one check of weights against shapes: ONNX files re-inferred for another ``--input``,
    ``--weights`` files, any graph carrying ``g.graph["weights"]``. The message is one line:
    the layer, the weights' shape, the inferred one, and the input size the weights fit.
    Tensors the graph does not expect, or that are missing, are not this check's business.

    >>> from cnngraph import zoo
    >>> g = zoo.build("lenet5")
    >>> check_weights(g, {"fc1.weight": __import__("numpy").zeros((500, 800))})
    Traceback (most recent call last):
    ...
    cnngraph.ir.errors.CnnGraphError: fc1: weight fc1.weight is 500×800 but the graph infers 500×2450 for input 1×28×28; the weights fit 1×S×S inputs for S from 16 to 19
    """
    weights = g.graph.get("weights") if weights is None else weights
    if not weights:
        return
    shapes = shapes or {n: d["shape"] for n, d in g.nodes(data=True)}
    for n, key, have, want in _misfits(g, weights, shapes):
        first = g.graph["inputs"][0]
        raise CnnGraphError(f"{n}: weight {key} is {ops.fmt_shape(have)} but the graph infers {ops.fmt_shape(want)} "
                            f"for input {ops.fmt_shape(shapes[first])}; {_fitting_input(g, weights, key, have)}")


def _misfits(g, weights, shapes, keys=None):
    """(layer, key, weights' shape, inferred shape) of every tensor that does not fit."""
    for n in topo_order(g):
        d = g.nodes[n]
        tensors = ops.get(d["op"]).tensors(d["attrs"], [shapes[i] for i in d["inputs"]])
        for f, (want, _) in tensors.items():
            key = f"{n}.{f}"
            if key not in weights or (keys is not None and key not in keys):
                continue
            have = tuple(int(v) for v in getattr(weights[key], "shape", ()))
            if len(have) != len(want) or not all(ops.same(a, b) is True for a, b in zip(have, want)):
                yield n, key, have, tuple(want)


def _fitting_input(g, weights, key, have) -> str:
    """Which input size the weights were made for: the size they were read at (an ONNX
    file's), else the square sizes S solving the tensor's symbolic shape for C×S×S."""
    first = g.graph["inputs"][0]
    made_for = g.graph.get("weights_input")
    if made_for is not None and not list(_misfits(g, weights, _infer(g, made_for)[0])):
        return f"the weights fit {ops.fmt_shape(made_for)} inputs"
    shape = g.nodes[first]["shape"]
    if len(shape) != 3 or not ops.is_int(shape[0]):
        return "no input size was found for which they fit"
    import sympy  # only on this error path: keep sympy solving off the hot path

    S = sympy.Symbol("S", positive=True, integer=True)
    try:
        want = dict(((k, w) for _, k, _, w in _misfits(g, weights, _infer(g, (shape[0], S, S))[0], {key})))
    except CnnGraphError:
        want = {}
    if key not in want or len(want[key]) != len(have) or sympy.Mul(*want[key]).free_symbols - {S}:
        return "no input size was found for which they fit"
    size = sympy.lambdify(S, sympy.Mul(*want[key]), "math")
    target = 1
    for v in have:
        target *= v

    def first_reaching(t, lo=1, hi=1 << 16):  # the sizes grow with S (floors of increasing terms)
        while lo < hi:
            mid = (lo + hi) // 2
            if size(mid) >= t:
                hi = mid
            else:
                lo = mid + 1
        return lo

    lo, hi = first_reaching(target), first_reaching(target + 1) - 1
    fits = [s for s in (lo, hi) if lo <= hi and not list(_misfits(g, weights, _infer(g, (shape[0], s, s))[0]))]
    if not fits:
        return _fitting_channels(g, weights, key, have, shape)
    c = shape[0]
    return (f"the weights fit {c}×{lo}×{lo} inputs" if lo == hi else
            f"the weights fit {c}×S×S inputs for S from {lo} to {hi}")


def _fitting_channels(g, weights, key, have, shape) -> str:
    """The input channels the weights fit (a first conv made for another C), else a plain no."""
    import sympy

    C = sympy.Symbol("C", positive=True, integer=True)
    try:
        want = {k: w for _, k, _, w in _misfits(g, weights, _infer(g, (C,) + tuple(shape[1:]))[0], {key})}
    except CnnGraphError:
        want = {}
    for e, v in zip(want.get(key, ()), have):
        if C in getattr(e, "free_symbols", ()):
            for c in sympy.solve(sympy.Eq(e, v), C):
                if c.is_Integer and c > 0 and not list(_misfits(g, weights, _infer(g, (int(c),) + tuple(shape[1:]))[0])):
                    return f"the weights fit {ops.fmt_shape((int(c),) + tuple(shape[1:]))} inputs"
    return "no input size of this form makes them fit"


def with_input(g, input_shape, strict: bool = False):
    """A copy of ``g`` whose shapes, stride notes and size conditions are re-inferred for a new input shape."""
    g = as_graph(g)
    conditions = []
    shapes, notes = infer(g, input_shape, strict, conditions)
    h = g.copy()
    h.graph = {**g.graph, "notes": notes, "conditions": conditions}
    for n, s in shapes.items():
        h.nodes[n]["shape"] = s
        if h.nodes[n]["op"] == "input":
            h.nodes[n]["attrs"] = {**h.nodes[n]["attrs"], "shape": s}  # checked by infer_shapes
    return h


def layer_inputs(g, n) -> list:
    """Input shapes of node ``n`` in port order."""
    return [g.nodes[i]["shape"] for i in g.nodes[n]["inputs"]]

