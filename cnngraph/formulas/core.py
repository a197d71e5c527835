"""Formulas of a graph: its costs as sympy expressions, shown the way the slides write them.

What a block's cost includes (the convention, stated by every report):

* ``cost`` = multiply-adds of conv and linear layers (the slides' "FLOPs" of a block:
  18HWC² for the basic block counts its two convs, not BN, ReLU or the add); ``include``
  adds the other operations of the kinds named (``norm``, ``act``, ``merge``, ``pool``,
  counted as in :mod:`cnngraph.analysis.cost`: one per element, pooling C·H'·W'·K²);
* ``params`` = conv and linear weights and biases (the slides' 25C² for a 5×5 conv);
  ``include=("norm",)`` adds batch norm's γ and β;
* ``memory`` = activation elements the block writes (not bytes; the slides' "Memory: 4HWC"),
  as :mod:`cnngraph.analysis.cost` counts them: in-place activations and views write nothing.

>>> from cnngraph.dsl import Net, conv2d
>>> from cnngraph.ir.symbols import C, H, W
>>> net = Net("conv"); x = net.input(C, 2 * H, 2 * W); y = conv2d(x, C, 3, padding=1, bias=False)
>>> f = costs(net.graph)
>>> str(f["cost"]), str(f["params"]), str(f["memory"])
('36HWC²', '9C²', '4HWC')
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from cnngraph.ir import printer as present
from cnngraph.analysis.cost import Convention, analyze
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.graph import as_graph
from cnngraph.ir.ops import tidy

KINDS = ("norm", "act", "merge", "pool")
WEIGHT_KINDS = ("conv", "linear")


def check_include(include) -> tuple:
    include = tuple(include or ())
    bad = [k for k in include if k not in KINDS]
    if bad:
        raise CnnGraphError(f"include: unknown kind {bad[0]!r}; choose among {', '.join(KINDS)}")
    return include


def convention_text(include=()) -> str:
    """One line saying what ``cost``, ``params`` and ``memory`` count."""
    extra = f" + operations of {', '.join(include)}" if include else " (BN, activations, adds, pooling not counted)"
    norm = " + batch-norm γ, β" if "norm" in include else ""
    return (f"cost = conv/linear multiply-adds{extra}; params = conv/linear weights and biases{norm}; "
            f"memory = activation elements written (in-place activations write none)")


@dataclass(frozen=True, eq=False)
class Formula:
    """A cost expression that prints itself as the slides do.

    ``form="block"`` factors the spatial and structural symbols out of a sum (``(9C + C²)HW``);
    ``form="expanded"`` keeps the polynomial expanded (whole networks: ``83410944hw + 2048000``).

    >>> from cnngraph.ir.symbols import C, H, W
    >>> f = Formula(9 * C * H * W + C**2 * H * W)
    >>> str(f), f.latex, f.json, f(C=64, H=56, W=56)
    ('(9C + C²)HW', '\\\\left(9 C + C^{2}\\\\right) H W', '(9*C + C**2)*H*W', 14651392)
    """

    expr: object
    form: str = "block"

    def __post_init__(self):
        if isinstance(self.expr, str):  # text is read by the safe parser, never by sympify
            object.__setattr__(self, "expr", present.parse(self.expr))

    @property
    def shown(self):
        """The expression laid out for printing (expanded, common factors pulled out)."""
        return present.slides_form(self.expr, factor=self.form == "block")

    @property
    def text(self) -> str:
        return present.text(self.shown)

    @property
    def latex(self) -> str:
        return present.latex(self.shown)

    @property
    def json(self) -> str:
        """A string ``sympy.sympify`` reads back (``present.parse`` restores the symbols' assumptions)."""
        return present.plain(self.shown)

    def render(self, fmt: str = "text") -> str:
        return {"text": self.text, "latex": self.latex, "json": self.json, "plain": self.json}[fmt]

    @property
    def symbols(self) -> list:
        e = sympy.sympify(self.expr)
        return sorted(e.free_symbols, key=lambda s: s.name)

    def subs(self, values=None, **kw) -> "Formula":
        """The formula with some symbols replaced: ``f.subs(K=3)`` or ``f.subs({K: 3})``."""
        return Formula(tidy(sympy.sympify(self.expr).subs(_values(self.expr, values, kw))), self.form)

    def __call__(self, values=None, **kw):
        """The value at given sizes: ``f(C=64, H=56, W=56)`` (an int when integral)."""
        v = sympy.sympify(self.expr).subs(_values(self.expr, values, kw))
        if v.free_symbols:
            missing = ", ".join(sorted(s.name for s in v.free_symbols))
            raise CnnGraphError(f"formula {self.text}: no value given for {missing}")
        return tidy(sympy.nsimplify(v) if v.is_Float else v)

    def __eq__(self, other):
        other = other.expr if isinstance(other, Formula) else other
        try:
            return sympy.expand(sympy.sympify(self.expr) - sympy.sympify(other)) == 0
        except (sympy.SympifyError, TypeError):
            return NotImplemented

    def __hash__(self):  # equal formulas (equal once expanded) hash alike
        return hash(sympy.expand(sympy.sympify(self.expr)))

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"Formula({self.text})"

    def _repr_latex_(self):
        return f"${self.latex}$"


def _values(expr, values, kw) -> dict:
    """Keyword values by symbol name, matched to the expression's own symbols."""
    by_name = {s.name: s for s in sympy.sympify(expr).free_symbols}
    out = dict(values or {})
    for k, v in kw.items():
        out[by_name.get(k, sympy.Symbol(k))] = v
    return out


@dataclass
class LayerCost:
    """One layer's share of a block: its name, slide-style label and formulas."""

    name: str
    label: str
    cost: Formula
    params: Formula
    memory: Formula


def costs(g, include=(), input=None, per_layer: bool = True) -> dict:
    """``{"cost", "macs", "params", "memory": Formula, "layers": [LayerCost]}`` of a graph.

    Follows the block convention of this module (see the module docstring).
    """
    g = as_graph(g)
    from cnngraph.ir.ops import REGISTRY

    include = check_include(include)
    report = analyze(g, input=input, convention=Convention(flops_per_mac=1, count=include, bytes_per_element=1))
    cost, macs, params, memory = [], [], [], []
    layers = []
    for r in report.rows:
        p = r.params if (r.kind in WEIGHT_KINDS or r.kind in include) else 0
        cost.append(r.flops)
        macs.append(r.macs)
        params.append(p)
        memory.append(r.memory_bytes)
        if per_layer and (r.flops != 0 or p != 0 or r.memory_bytes != 0):  # BN and add write memory: listed, so rows add up
            label = _label(REGISTRY[r.op].label(r.attrs, r.input_shapes, r.output_shape), r.attrs)
            layers.append(LayerCost(r.name, label, Formula(r.flops), Formula(p), Formula(r.memory_bytes)))
    total = lambda xs: tidy(sympy.Add(*xs))  # noqa: E731
    return dict(cost=Formula(total(cost)), macs=Formula(total(macs)), params=Formula(total(params)),
                memory=Formula(total(memory)), layers=layers)


def _label(label: str, attrs: dict) -> str:
    """A registry label with its symbolic sizes in the slides' notation (``1x1 conv, 4C``)."""
    for v in attrs.values():
        if isinstance(v, sympy.Basic) and v.free_symbols:
            label = label.replace(str(v), present.text(present.slides_form(v)))
    return label


def over_count(build, n, degree: int, fields=("cost", "macs", "params", "memory"), include=(), start: int = 1,
               check_values: dict | None = None) -> dict:
    """Costs of a block repeated ``n`` times, ``n`` a symbol: ResNeXt's G pathways, a dense
    block's L layers.

    A graph cannot hold a symbolic number of layers, so ``build(m)`` is built for
    m = start … start + degree and each field is interpolated by the polynomial of that
    degree in ``n`` (exact when the cost of m repeats is a polynomial of that degree in m).
    That premise is then checked on one more graph, ``build(start + degree + 1, values)``,
    built on numbers (``check_values``, by size name: distinct primes by default) for speed:
    the fitted polynomial must give its exact counts (a :class:`CnnGraphError` otherwise).
    The formulas hold for n ≥ ``start``: ResNeXt's pathways start at 2, since one pathway
    needs no sum node.
    """
    counts = list(range(start, start + degree + 1))
    graphs = {m: build(m) for m in counts}
    samples = {m: costs(graphs[m], include, per_layer=m == start) for m in counts}
    out = {}
    if not include and "macs" in fields and "cost" in fields:
        fields = [f for f in fields if f != "macs"]  # the cost is the MACs: fit it once
    for f in fields:
        out[f] = Formula(tidy(_newton([sympy.expand(samples[m][f].expr) for m in counts], n - start)))
    if "macs" not in out and "cost" in out:
        out["macs"] = out["cost"]
    check = start + degree + 1
    syms = set().union(*(sympy.sympify(out[f].expr).free_symbols for f in out)) - {n}
    values = check_values or {s.name: p for s, p in zip(sorted(syms, key=lambda x: x.name), _PRIMES)}
    numeric = costs(build(check, values), include, per_layer=False)
    at = {s: values[s.name] for s in syms}
    at[n] = check
    for f in out:
        want = numeric[f].expr
        got = sympy.sympify(out[f].expr).subs(at)
        if got != want:
            raise CnnGraphError(f"{f} is not a polynomial of degree {degree} in the repeat count: the fit from "
                                f"{start}..{check - 1} gives {got} for {check} at {values}, the graph {want}")
    out["layers"] = samples[start]["layers"]
    out["graph"] = graphs[start]
    out["counts"] = counts + [check]
    return out


_PRIMES = (11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53)


def _newton(ys, x):
    """The polynomial through (0, y0), (1, y1), ...: Σ Δʲy₀·binom(x, j) (Newton's forward
    differences; much cheaper than a general interpolation on symbolic values)."""
    diffs, row = [], list(ys)
    while row:
        diffs.append(row[0])
        row = [b - a for a, b in zip(row, row[1:])]  # expanded polynomials: Add collects the terms
    out, basis = sympy.Integer(0), sympy.Integer(1)
    for j, d in enumerate(diffs):
        out += d * basis
        basis = basis * (x - j) / (j + 1)
    return sympy.expand(out)
