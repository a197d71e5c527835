"""Questions answered exactly: the largest width under a budget, the resolution of equal cost,
EfficientNet's compound-scaling grid search.

Costs are step functions of a width multiplier (every channel count is rounded), so the
largest multiplier under a budget is found among the steps: the rounding's breakpoints are
exact fractions, each step's cost an exact integer from the closed form. Where a family has
one rounded width (the ResNets), the unrounded answer is also given as the exact root of the
polynomial (sympy). Resolutions are solved on ``r = 32h``, where every stride divides and
the costs are polynomials in ``h``; the exact integer crossing is then found on the closed
form with its floors.

>>> ans = largest_multiplier("resnet50", 600_000_000, fixed={"r": 224})
>>> ans.width, ans.value, ans.text.split(";")[0]
(Fraction(5, 18), 278085632, 'largest a with macs ≤ 600,000,000 at r=224: a ≤ 5/18 (≈ 0.2778)')
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy

from cnngraph.analysis.cost import analyze
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.symbols import sym
from cnngraph.explore.families import family
from cnngraph.dsl.knobs import Multiplier
from cnngraph.explore.sweep import closed_form, evaluate


@dataclass
class Answer:
    """An exact answer with the numbers behind it and one line saying it."""

    text: str
    width: object = None
    value: object = None
    details: dict = field(default_factory=dict)

    def __str__(self):
        return self.text


def _breakpoints(mult: Multiplier, lo: Fraction, hi: Fraction) -> list:
    """Every multiplier value in (lo, hi) where a rounded width changes, as exact fractions.

    ``make_divisible(v)`` = 8q for v in [8q − 4, 8q + 4), bumped by 8 when 8q < 0.9·v: the
    steps change at v = 8q + 4 (a new q) and v = 80q/9 (the bump)."""
    points = set()
    for base, d, _min, low in mult.derived.values():
        qmax = int(hi * base / d) + 2
        for q in range(0, qmax + 1):
            for v in (Fraction(2 * d * q + d, 2), Fraction(10 * d * q, 9)):
                a = v / base
                if lo < a < hi and (low is None or a > Fraction(low).limit_denominator(1000)):
                    points.add(a)
    return sorted(points)


def largest_multiplier(model, budget: int, field: str = "macs", fixed: dict | None = None, knob: str = "a",
                       lo: float = 0.05, hi: float = 4.0) -> Answer:
    """The largest width multiplier with ``field`` ≤ ``budget`` (other knobs in ``fixed``).

    Exact: the answer is the right end of the last step of the cost (a fraction; included or
    not, as the rounding says), with the cost there from the closed form and checked against
    ``analyze()`` of the graph built just below it.
    """
    fam = family(model)
    fixed = dict(fixed or {})
    if fam.kind(knob) != "multiplier":
        raise CnnGraphError(f"{fam.name}: knob {knob!r} is not a width multiplier")
    form = closed_form(fam, {knob: "multiplier"}, fixed, fields=(field,))
    lo_f, hi_f = Fraction(lo).limit_denominator(1000), Fraction(hi).limit_denominator(1000)
    cuts = [lo_f] + _breakpoints(form.multipliers[knob], lo_f, hi_f) + [hi_f]
    mids = np.array([float((x + y) / 2) for x, y in zip(cuts, cuts[1:])])
    cost = _eval_fixed(fam, knob, mids, fixed, field)
    ok = np.nonzero(cost <= budget)[0]
    at = ", ".join(f"{k}={v}" for k, v in fixed.items())
    if not len(ok):
        raise CnnGraphError(f"{fam.name}: no {knob} in {lo}..{hi} has {field} ≤ {budget:,}" + (f" at {at}" if at else ""))
    i = int(ok[-1])
    if i == len(mids) - 1:
        raise CnnGraphError(f"{fam.name}: {field} ≤ {budget:,} up to {knob} = {hi}; raise hi")
    end = cuts[i + 1]
    # included when the step ends at a bump (v = 80q/9: 8q < 0.9 v is false there)
    included = float(cost[i]) == float(_eval_fixed(fam, knob, np.array([float(end)]), fixed, field)[0])
    g = fam.build(**{**fixed, knob: float(mids[i])})
    got = getattr(analyze(g).total, field)
    if got != int(cost[i]):
        raise CnnGraphError(f"{fam.name}: closed form {int(cost[i]):,} ≠ analyze() {got:,} at {knob}={mids[i]}")
    widths = {n: int(v[0] * base_d[1]) for n, v, base_d in
              ((n, form.multipliers[knob].values(np.array([mids[i]]))[n], form.multipliers[knob].derived[n])
               for n in form.multipliers[knob].derived)}
    text = (f"largest {knob} with {field} ≤ {budget:,}" + (f" at {at}" if at else "") +
            f": {knob} {'≤' if included else '<'} {end} (≈ {float(end):.4f}); {field} there {int(cost[i]):,} "
            f"(= analyze()); rounded widths {widths}")
    details = dict(widths=widths, included=included)
    root = _unrounded_root(fam, form, knob, field, budget)
    if root is not None:
        details["unrounded"] = root
        text += f"; unrounded (width {root['base']}·{knob} not rounded): {knob} = {root['text']} ≈ {root['value']:.4f}"
    return Answer(text, end, int(cost[i]), details)


def _eval_fixed(fam, knob, values, fixed, field):
    pts = {knob: values}
    for k, v in fixed.items():
        pts[k] = np.full(len(values), v)
    return evaluate(fam, pts, fields=(field,))[field]


def _unrounded_root(fam, form, knob, field, budget):
    """For one rounded width ``8·s`` = make_divisible(base·a): solve cost(s) = budget over the
    reals with ``8·s = base·a`` (no rounding), exactly."""
    derived = form.multipliers[knob].derived
    if len(derived) != 1:
        return None
    (name, (base, d, _m, low)), = derived.items()
    if low is not None:
        return None
    s = sym(name)
    a = sympy.Symbol(knob, positive=True)
    expr = sympy.expand(form.exprs[field].subs(s, base * a / d))
    if expr.free_symbols - {a}:
        return None
    roots = [r for r in sympy.solve(sympy.Eq(expr, budget), a) if r.is_real and r > 0]
    if len(roots) != 1:
        return None
    r = sympy.nsimplify(roots[0]) if roots[0].is_Rational else sympy.radsimp(roots[0])
    return dict(text=str(r), value=float(r), base=base, expr=str(expr))


def equal_cost_resolution(model, point: dict, target_model, target_point: dict, field: str = "macs",
                          knob: str = "r", lo: int = 32, hi: int = 1024) -> Answer:
    """The resolution at which ``model`` (other knobs in ``point``) costs what ``target_model``
    costs at ``target_point``: the exact real root on r = 32h (sympy), then the exact integer
    resolutions around it from the closed form with its floors."""
    fam, tfam = family(model), family(target_model)
    target = getattr(analyze(tfam.build(**target_point)).total, field)
    h = sym("h")
    # r = 32h: every stride divides, so the cost is a polynomial in h
    form = closed_form(fam, {knob: "size"}, point, fields=(field,))
    poly = sympy.expand(form.exprs[field].subs(sym(knob), 32 * h))
    hr = sympy.Symbol("h", positive=True)
    roots = [x for x in sympy.solve(sympy.Eq(poly.subs(h, hr), target), hr) if x.is_real and x > 0]
    if not roots:
        raise CnnGraphError(f"{fam.name}: no resolution gives {field} = {target:,}")
    root = roots[0]
    r_real = 32 * root
    rs = np.arange(lo, hi + 1)
    pts = {knob: rs, **{k: np.full(len(rs), v) for k, v in point.items()}}
    cost = evaluate(fam, pts, fields=(field,))[field]
    below = rs[cost <= target]
    best = int(below.max()) if len(below) else None
    exact = [int(x) for x in rs[cost == target]]
    tp = ", ".join(f"{k}={v}" for k, v in target_point.items())
    pp = ", ".join(f"{k}={v}" for k, v in point.items())
    text = (f"{fam.name}{f' ({pp})' if pp else ''} costs {field} = {target:,} (as {tfam.name} at {tp}) at "
            f"r = 32h with h = {sympy.radsimp(root)}, i.e. r ≈ {float(r_real):.2f}; "
            + (f"exactly equal at r = {exact}" if exact else "no integer r gives exactly equal cost")
            + (f"; the largest integer r not costing more is {best} ({int(cost[rs == best][0]):,})" if best else ""))
    return Answer(text, float(r_real), target, dict(root=str(root), poly=str(poly), exact=exact, largest=best))


# ---------------------------------------------------------------- EfficientNet compound scaling
PAPER = (1.2, 1.1, 1.15)  # Tan & Le 2019: depth α, width β, resolution γ


def efficientnet_search(step: float = 0.05, top: int = 10, tolerance: float = 0.1) -> Answer:
    """EfficientNet's grid search reproduced on the cost side, from the DSL's B0.

    Grid α, β, γ ∈ {1, 1+step, ..., 2} (depth multiplier α, width multiplier β, resolution
    round(224·γ)); the paper's constraint α·β²·γ² ≈ 2 (here within ±``tolerance``, 10 % by
    default, which admits the paper's 1.92) and, exactly, each point's MACs over B0's from the closed form
    (depth ⌈n·α⌉ per stage, widths rounded to 8, floors of the strides). The paper chose
    among the constrained points by ImageNet accuracy, which a cost model cannot reproduce;
    what is checked here is the cost side: where (1.2, 1.1, 1.15) falls among the points
    the constraint admits, ranked by how close their *actual* MACs ratio is to 2.
    """
    vals = np.round(np.arange(1.0, 2.0 + 1e-9, step), 4)
    A, B, G = np.meshgrid(vals, vals, vals, indexing="ij")
    A, B, G = A.ravel(), B.ravel(), G.ravel()
    law = A * B**2 * G**2
    keep = np.abs(law - 2) <= tolerance * 2
    A, B, G, law = A[keep], B[keep], G[keep], law[keep]
    if not (np.isclose(A, PAPER[0]) & np.isclose(B, PAPER[1]) & np.isclose(G, PAPER[2])).any():
        # the paper's point is ranked even when the tolerance band leaves it out
        A, B, G, law = (np.append(A, PAPER[0]), np.append(B, PAPER[1]), np.append(G, PAPER[2]),
                        np.append(law, PAPER[0] * PAPER[1] ** 2 * PAPER[2] ** 2))
    R = np.rint(224 * G).astype(np.int64)
    fam = family("efficientnet_b0")
    base = evaluate(fam, {"a": np.array([1.0]), "d": np.array([1.0]), "r": np.array([224])}, fields=("macs",))["macs"][0]
    macs = evaluate(fam, {"a": B, "d": A, "r": R}, fields=("macs",))["macs"]
    ratio = macs / base
    order = np.argsort(np.abs(ratio - 2), kind="stable")
    paper = np.isclose(A, PAPER[0]) & np.isclose(B, PAPER[1]) & np.isclose(G, PAPER[2])
    rank = int(np.nonzero(paper[order])[0][0]) + 1
    i = int(order[rank - 1])
    rows = [dict(alpha=float(A[j]), beta=float(B[j]), gamma=float(G[j]), r=int(R[j]), law=float(law[j]),
                 macs=int(macs[j]), ratio=float(ratio[j])) for j in order[:top]]
    text = (f"EfficientNet-B0 grid α, β, γ ∈ 1..2 step {step}: {len(A)} points with α·β²·γ² within ±{tolerance:.0%}"
            f" of 2; the paper's (1.2, 1.1, 1.15): α·β²·γ² = {law[i]:.4f}, r = {R[i]}, MACs {int(macs[i]):,} = "
            f"{ratio[i]:.3f}× B0 ({int(base):,}); rank {rank} of {len(A)} by |MACs ratio − 2|")
    return Answer(text, None, float(ratio[i]), dict(rank=rank, points=len(A), base=int(base), top=rows,
                                                     paper=dict(law=float(law[i]), r=int(R[i]), macs=int(macs[i]),
                                                                ratio=float(ratio[i]))))
