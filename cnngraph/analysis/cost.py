"""The cost model: per-layer and total params, multiply-adds, operations and memory.

Counting follows the slides by default and every report states its convention:

* memory: output elements × ``bytes_per_element`` (4, fp32); in-place activations, dropout
  and views write nothing;
* params: weights + biases (batch norm's γ and β count; running statistics are *buffers*);
* MACs: conv ``C_out·H'·W'·(C_in/G)·K²``, linear ``C_in·C_out``;
* other operations: pooling ``C·H'·W'·K²``, one per element for activations, normalization
  and adds;
* "flop" = ``flops_per_mac`` × MACs + the other operations of the kinds in ``count``. The
  slides call one multiply-add a flop and count pooling (``flops_per_mac=1``,
  ``count=("pool",)``); tools that say 2 FLOPs per MAC use ``flops_per_mac=2``.

>>> from cnngraph import zoo, analyze
>>> r = analyze(zoo.build("alexnet"))
>>> r.total.params, r.total.macs
(61100840, 716767232)
>>> r.row("conv1").memory_bytes
802816
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Iterable

from cnngraph.ir import graph as _graph
from cnngraph.ir import ops
from cnngraph.ir.lazy import sympy  # imported where a value is symbolic

KINDS_OTHER = ("pool", "act", "norm", "merge")  # kinds whose other operations a convention may count


@dataclass(frozen=True)
class Convention:
    """How costs are counted; ``str(conv)`` says it in one line for every report."""

    flops_per_mac: int = 1
    count: tuple = ("pool",)  # kinds whose other operations add to "flop"
    bytes_per_element: int = 4
    batch: object = 1  # int or sympy symbol (e.g. N)
    count_inplace: bool = False  # count the outputs of in-place activations as memory

    def __post_init__(self):
        # Checked where a convention is made, so the API and every command refuse the same values.
        from cnngraph.ir.errors import InputError
        from cnngraph.ir.sizes import check_size

        if self.flops_per_mac not in (1, 2) or isinstance(self.flops_per_mac, bool):
            raise InputError(f"flops_per_mac={self.flops_per_mac!r}: must be 1 or 2")
        unknown = [c for c in self.count if c not in KINDS_OTHER]
        if isinstance(self.count, str) or unknown:
            raise InputError(f"count={self.count!r}: kinds are {', '.join(KINDS_OTHER)} (or none)")
        if isinstance(self.bytes_per_element, bool) or not isinstance(self.bytes_per_element, int) \
                or not 1 <= self.bytes_per_element <= 16:
            raise InputError(f"bytes_per_element={self.bytes_per_element!r}: must be an integer from 1 to 16")
        object.__setattr__(self, "batch", check_size(self.batch, "batch"))

    @classmethod
    def named(cls, name: str, **over) -> "Convention":
        """``slides`` (the default), ``macs`` (MACs only), ``flops2`` (2 FLOPs per MAC, MACs only)."""
        base = {"slides": cls(), "macs": cls(count=()), "flops2": cls(flops_per_mac=2, count=())}[name]
        return replace(base, **over)

    def __str__(self):
        counted = ", ".join(self.count) if self.count else "nothing else"
        dtype = {4: "fp32", 2: "fp16", 1: "int8", 8: "fp64"}.get(self.bytes_per_element, f"{self.bytes_per_element} B")
        return (f"flop = {self.flops_per_mac}×MAC + operations of: {counted}; memory = output elements × "
                f"{self.bytes_per_element} B ({dtype}); batch = {self.batch}; params = weights + biases "
                f"(BN γ, β; running stats are buffers)")

    def as_dict(self):
        return dict(flops_per_mac=self.flops_per_mac, count=list(self.count), bytes_per_element=self.bytes_per_element,
                    batch=str(self.batch), count_inplace=self.count_inplace, text=str(self))


@dataclass
class Costs:
    params: object = 0
    buffers: object = 0
    macs: object = 0
    ops: object = 0  # other operations of the counted kinds
    all_ops: object = 0  # other operations of every kind
    memory_bytes: object = 0
    flops: object = 0

    FIELDS = ("params", "buffers", "macs", "ops", "all_ops", "memory_bytes", "flops")

    def items(self):
        return [(f, getattr(self, f)) for f in self.FIELDS]


@dataclass
class Row:
    """One layer of a report."""

    name: str
    title: str
    op: str
    kind: str
    path: tuple
    input_shapes: list
    output_shape: tuple
    attrs: dict
    costs: Costs

    def __getattr__(self, item):  # row.params, row.macs, ... read through to the costs
        if item in Costs.FIELDS:
            return getattr(self.costs, item)
        raise AttributeError(item)


@functools.lru_cache(maxsize=65536)
def _node_costs(op_name, attrs_key, in_shapes, out_shape):
    op = ops.get(op_name)
    a, ins = dict(attrs_key), list(in_shapes)
    return (op.params(a, ins, out_shape), op.buffers(a, ins, out_shape), op.macs(a, ins, out_shape),
            op.ops(a, ins, out_shape), op.memory(a, ins, out_shape), ops.numel(out_shape))


def layer_costs(op_name: str, attrs: dict, in_shapes, out_shape, conv: Convention = Convention()) -> Costs:
    """Costs of one layer under a convention (cached on the layer's signature)."""
    p, b, m, o, mem, n_out = _node_costs(op_name, _graph.freeze(attrs), tuple(map(tuple, in_shapes)), tuple(out_shape))
    kind = ops.get(op_name).kind
    if conv.count_inplace and mem == 0 and kind == "act":
        mem = n_out
    N = conv.batch
    counted = o if kind in conv.count else 0
    macs = ops.tidy(m * N) if N != 1 else m
    cnt = ops.tidy(counted * N) if N != 1 else counted
    return Costs(params=p, buffers=b, macs=macs, ops=cnt, all_ops=ops.tidy(o * N) if N != 1 else o,
                 memory_bytes=ops.tidy(mem * conv.bytes_per_element * N),
                 flops=ops.tidy(conv.flops_per_mac * macs + cnt))


def _sum(values):
    values = list(values)
    if all(isinstance(v, int) for v in values):
        return sum(values)
    return ops.tidy(sympy.Add(*values))


def total(rows: Iterable[Row]) -> Costs:
    rows = list(rows)
    return Costs(**{f: _sum(getattr(r.costs, f) for r in rows) for f in Costs.FIELDS})


@dataclass
class Report:
    """Per-layer rows and totals of one graph under one convention.

    ``report.total.params``, ``report.total.macs``, ``report.total.memory_bytes`` are ints
    for a numeric input and sympy expressions for a symbolic one.
    """

    name: str
    rows: list
    convention: Convention
    input_shape: tuple
    notes: list = field(default_factory=list)
    _total: Costs = None

    @property
    def total(self) -> Costs:
        if self._total is None:
            self._total = total(self.rows)
        return self._total

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name or r.title == name:
                return r
        raise KeyError(name)

    @property
    def symbols(self) -> list:
        found = set()
        for f in ("macs", "params", "memory_bytes"):
            v = getattr(self.total, f)
            if ops.is_sym(v):
                found |= v.free_symbols
        return sorted(found, key=str)

    @property
    def is_symbolic(self) -> bool:
        return bool(self.symbols)

    def groups(self, depth: int = 1) -> dict:
        """Totals per group: ``depth=1`` stages (``layer3``), ``depth=2`` blocks (``layer3.2``)."""
        out: dict = {}
        for r in self.rows:
            key = ".".join(p for p, _ in r.path[:depth]) or "(top)"
            out.setdefault(key, []).append(r)
        return {k: total(v) for k, v in out.items()}

    def share(self, row: Row, field_name: str = "flops"):
        """A layer's share of the total (a float for numeric reports)."""
        return self.share_of(getattr(row.costs, field_name), field_name)

    def share_of(self, v, field_name: str = "flops"):
        """``v`` as a share of the total ``field_name`` (a float for numeric reports)."""
        t = getattr(self.total, field_name)
        if isinstance(t, int) and isinstance(v, int):
            return v / t if t else 0.0
        return ops.tidy(sympy.sympify(v) / t)

    def subs(self, values: dict) -> "Report":
        """The same report with symbols replaced by numbers (or other expressions)."""
        def s(x):
            return ops.tidy(x.subs(values)) if ops.is_sym(x) else x

        rows = [replace(r, input_shapes=[tuple(s(v) for v in sh) for sh in r.input_shapes],
                        output_shape=tuple(s(v) for v in r.output_shape),
                        costs=Costs(**{f: s(getattr(r.costs, f)) for f in Costs.FIELDS})) for r in self.rows]
        return Report(self.name, rows, self.convention, tuple(s(v) for v in self.input_shape), list(self.notes))

    def totals_function(self, fields=("params", "macs", "flops", "memory_bytes")):
        """A compiled function of the report's symbols returning the totals as a dict.

        >>> from cnngraph import zoo, analyze
        >>> from cnngraph.ir.symbols import H, W
        >>> f = analyze(zoo.build("resnet18"), input=(3, H, W)).totals_function()
        >>> f(H=224, W=224)["macs"]
        1814073344
        """
        syms = self.symbols
        exprs = [sympy.sympify(getattr(self.total, f)) for f in fields]
        fn = sympy.lambdify(syms, exprs, modules=["math"])
        names = [str(x) for x in syms]

        def evaluate(**values):
            out = fn(*[values[n] for n in names])
            return {f: int(round(v)) for f, v in zip(fields, out)}

        evaluate.symbols = names
        return evaluate

    # presentation lives in cnngraph.present.tables
    def to(self, fmt: str = "text", **kw) -> str:
        from cnngraph.present import tables

        return tables.render(self, fmt, **kw)

    def __repr__(self):
        t = self.total
        shape = "×".join(map(str, self.input_shape))
        return (f"<Report {self.name!r}: input {shape}, {len(self.rows)} layers, params={t.params}, macs={t.macs}, "
                f"memory_bytes={t.memory_bytes}>")

    def __str__(self):
        return self.to("text")

    def _repr_markdown_(self):  # pragma: no cover - notebooks
        return self.to("markdown")


def analyze(g, input=None, convention: Convention | None = None, strict: bool = False, **conv) -> Report:
    """Analyze a graph: per-layer rows and totals.

    ``input`` replaces the stored input shape (ints or sympy expressions); keyword arguments
    override fields of the convention (``flops_per_mac=2``, ``batch=N``, ...).
    """
    g = _graph.as_graph(g)
    convention = replace(convention or Convention(), **conv) if conv else (convention or Convention())
    if input is not None or strict:  # the notes of this input; strict re-checks the stored input too
        shapes, notes = _graph.infer(g, input if input is None or isinstance(input, dict) else tuple(input), strict)
    else:
        _graph.check(g)
        shapes, notes = {n: d["shape"] for n, d in g.nodes(data=True)}, g.graph.get("notes", [])
        _graph.check_weights(g)  # no numbers from a graph whose own weights do not fit it
    rows = []
    order = _graph.topo_order(g)
    names = _graph.layer_names(g, order)
    for n in order:
        d = g.nodes[n]
        ins = [shapes[i] for i in d["inputs"]]
        attrs = d["attrs"] if d["op"] != "input" else {**d["attrs"], "shape": shapes[n]}
        rows.append(Row(n, names[n], d["op"], ops.get(d["op"]).kind, d.get("path", ()), ins, shapes[n],
                        attrs, layer_costs(d["op"], attrs, ins, shapes[n], convention)))
    first = g.graph["inputs"][0]
    return Report(g.graph.get("name", ""), rows, convention, shapes[first], list(notes))
