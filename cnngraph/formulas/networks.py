"""Whole networks as closed forms: totals and per-stage totals in symbolic sizes.

On an input of 3×32h×32w every stride-2 layer of a ResNet divides exactly, so the totals
are polynomials in h and w (exact for every input whose sides are multiples of 32); a
width multiplier passed as a model option (``width=64*a`` for the ResNets) gives
polynomials in ``a``.

>>> from cnngraph.ir.symbols import h, w
>>> nf = network("resnet50")
>>> str(nf.totals["macs"])
'83410944hw + 2048000'
>>> nf.totals["macs"](h=7, w=7)
4089184256
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import sympy

from cnngraph.ir import printer as present
from cnngraph.ir.printer import memory_note
from cnngraph.analysis.cost import analyze, total
from cnngraph.ir.ops import is_int, tidy
from cnngraph.ir.symbols import h, w
from cnngraph.formulas.core import Formula

FIELDS = ("params", "macs", "flops", "memory_bytes")
DIVISOR = 32  # the total stride of most ImageNet networks


@dataclass
class NetworkFormulas:
    """Totals and per-stage totals of a network as :class:`Formula` objects (expanded form)."""

    name: str
    input: tuple
    assumption: str
    totals: dict
    stages: dict
    convention: str
    checks: list = field(default_factory=list)  # (text, ok) comparisons with a numeric analysis
    conditions: tuple = ()  # (layer, rule, relation) the symbols must meet: the formulas' domain

    def outside(self, values: dict):
        """Why ``values`` (by symbol name) lie outside the formulas' domain, or None.

        >>> from cnngraph.ir.symbols import H, W
        >>> network("alexnet", input=(3, H, W)).outside({"H": 8, "W": 8}) is not None
        True
        """
        from cnngraph.ir.graph import outside_domain

        return outside_domain(self.conditions, values)

    def to(self, fmt: str = "text") -> str:
        if fmt == "json":
            return json.dumps(dict(name=self.name, input=[present.plain(s) for s in self.input],
                                   assumption=self.assumption, convention=self.convention,
                                   totals={k: f.json for k, f in self.totals.items()},
                                   stages={s: {k: f.json for k, f in fs.items()} for s, fs in self.stages.items()},
                                   checks=[dict(text=t, ok=ok) for t, ok in self.checks],
                                   memory=memory_note("activations")), indent=1, ensure_ascii=False)
        if fmt == "latex":
            lines = [rf"\text{{{k.replace('_', ' ')}}} &= {f.latex}" for k, f in self.totals.items()]
            return r"\begin{aligned} " + r" \\ ".join(lines) + r" \end{aligned}" + "\n"
        if fmt == "markdown":
            head = "| stage | " + " | ".join(FIELDS) + " |\n|---|" + "---|" * len(FIELDS) + "\n"
            body = "".join(f"| {s} | " + " | ".join(f"`{fs[k].text}`" for k in FIELDS) + " |\n"
                           for s, fs in self.stages.items())
            body += "| **total** | " + " | ".join(f"`{self.totals[k].text}`" for k in FIELDS) + " |\n"
            return (f"**{self.name}** on {present.shape(self.input)} ({self.assumption})\n\n"
                    + head + body + "\n" + "".join(f"- {t}\n" for t, _ in self.checks) + f"\nConvention: {self.convention}\n\n"
                    f"memory_bytes: {memory_note('activations')}\n")
        from cnngraph.formulas.report import _table

        lines = [f"{self.name}: closed-form totals on {present.shape(self.input)} ({self.assumption})"]
        lines += ["  " + x for x in _table([[k, f.text] for k, f in self.totals.items()])]
        lines.append("  per stage:")
        lines += ["    " + x for x in _table([[s] + [fs[k].text for k in FIELDS] for s, fs in self.stages.items()],
                                             ["stage"] + list(FIELDS))]
        lines += [f"  check: {t}" for t, _ in self.checks]
        lines.append(f"  convention: {self.convention}")
        lines.append(f"  memory_bytes: {memory_note('activations')}")
        return "\n".join(lines) + "\n"

    def __str__(self):
        return self.to("text")

    def _repr_markdown_(self):
        return self.to("markdown")


def stage_rows(report) -> dict:
    """Rows grouped by stage: the top-level scope, with unscoped layers before the first stage
    as ``stem`` and after it as ``head``."""
    groups: dict = {}
    seen_stage = False
    for r in report.rows:
        if r.op == "input":
            continue
        if r.path:
            key = r.path[0][0]
            seen_stage = True
        else:
            key = "head" if seen_stage else "stem"
        groups.setdefault(key, []).append(r)
    return groups


def network(model, input=None, **options) -> NetworkFormulas:
    """Closed-form totals of a zoo model (by name) or a graph, on a symbolic input.

    The default input is C×32h×32w with the model's input channels (an assumption printed
    with the result); when the model's usual input has sides divisible by 32, the formulas
    are checked against a numeric analysis at that input.
    """
    from cnngraph import zoo

    if isinstance(model, str):
        info = zoo.info(model)
        usual = info.input
        if input is None:
            input = (usual[0], DIVISOR * h, DIVISOR * w)
        g = zoo.build(model, input=input, **options)
        name = model
    else:
        g, name, usual = model, model.graph.get("name", "graph"), None
        if input is not None:
            from cnngraph.ir.graph import with_input

            g = with_input(g, input)
        input = g.nodes[g.graph["inputs"][0]]["shape"]
    report = analyze(g)
    syms = sorted(set().union(*(sympy.sympify(s).free_symbols for s in input)), key=lambda s: s.name)
    spatial = [s for s in input[1:] if not is_int(s)]
    written = [f"{'HW'[i]} = {present.text(s)}" for i, s in enumerate(input[1:]) if not is_int(s) and not s.is_Symbol]
    assumption = "; ".join(filter(None, [", ".join(written), ", ".join(x.name for x in syms) + " positive integers"
                                         if syms else "", "⌊⌋ where a stride does not divide" if any(
                                             sympy.sympify(getattr(report.total, k)).has(sympy.floor, sympy.ceiling)
                                             for k in FIELDS) else ""])) or "numeric"
    per_stage = {s: total(rows) for s, rows in stage_rows(report).items()}
    stages = {s: {k: Formula(getattr(c, k), "expanded") for k in FIELDS} for s, c in per_stage.items()}
    # the network's totals as sums of the few stage totals, not of every layer again
    totals = {k: Formula(tidy(sympy.Add(*(sympy.sympify(getattr(c, k)) for c in per_stage.values()))), "expanded")
              for k in FIELDS}
    nf = NetworkFormulas(name, tuple(input), assumption, totals, stages, str(report.convention),
                         conditions=tuple(g.graph.get("conditions", ())))
    if usual is not None and spatial and not options:
        _check(nf, g, usual)
    return nf


def _check(nf, g, usual):
    """Evaluate the formulas at the model's usual input and compare with a numeric analysis."""
    values = {}
    for got, want in zip(nf.input, usual):
        e = sympy.sympify(got)
        free = list(e.free_symbols)
        if len(free) != 1:
            if e != want:
                return
            continue
        sol = sympy.solve(sympy.Eq(e, want), free[0])
        if len(sol) != 1 or not sol[0].is_Integer:
            return
        values[free[0]] = int(sol[0])
    numeric = analyze(g, input=tuple(usual)).total
    for k in ("params", "macs"):
        got = nf.totals[k](values)
        want = getattr(numeric, k)
        at = ", ".join(f"{s.name} = {v}" for s, v in values.items())
        nf.checks.append((f"{k} at {at} ({'×'.join(map(str, usual))}): {got:,} "
                          f"{'=' if got == want else '≠'} {want:,} from the numeric analysis", got == want))
