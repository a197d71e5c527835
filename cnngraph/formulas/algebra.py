"""Design algebra: compare two blocks, solve an equal-cost condition, take limits.

>>> from cnngraph.formulas import block
>>> str(ratio(block("standard").cost, block("separable").cost))
'9C/(9 + C)'
>>> eq = equal_cost(block("resnext_grouped").cost, block("bottleneck").cost, "c")
>>> eq.text
'9Gc² + 8GCc − 17C² = 0'
>>> [str(x) for x in eq.roots(C=64, G=1)]
['64']
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import reduce

import sympy

from cnngraph.ir import printer as present
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.symbols import sym
from cnngraph.formulas.blocks import Block, block
from cnngraph.formulas.core import Formula


def _expr(x):
    return sympy.sympify(x.expr if isinstance(x, Formula) else x)


def ratio(a, b) -> Formula:
    """``a / b`` with common factors cancelled: 9HWC² / (9C + C²)HW = 9C/(9 + C)."""
    return Formula(sympy.cancel(_expr(a) / _expr(b)))


def limit(expr, symbol, to=sympy.oo):
    """The limit of ``expr`` as ``symbol`` (a symbol or its name) goes to ``to`` (default ∞)."""
    e = _expr(expr)
    s = _symbol(e, symbol)
    return sympy.limit(e, s, to)


def _symbol(e, symbol):
    if isinstance(symbol, str):
        for s in e.free_symbols:
            if s.name == symbol:
                return s
        return sym(symbol)
    return symbol


# ---------------------------------------------------------------- equal-cost equations
@dataclass
class Equation:
    """``lhs = 0``, reduced: the equal-cost condition of two formulas, divided by the factors
    every term shares (``HW``) and by the integer content of its coefficients."""

    lhs: object
    unknown: object
    sides: tuple = ()  # the two formulas that were set equal

    @property
    def text(self) -> str:
        return present.equation(self.lhs, self.unknown)

    @property
    def latex(self) -> str:
        return present.equation(self.lhs, self.unknown, fmt="latex")

    @property
    def json(self) -> str:
        return present.plain(self.lhs)

    def _solve(self, lhs) -> list:
        # The sizes are integer symbols and sympy.solve drops roots that break a symbol's
        # assumptions: solve for a positive real stand-in, since widths come out irrational.
        x = sympy.Symbol(self.unknown.name, positive=True)
        return [r for r in sympy.solve(lhs.subs(self.unknown, x), x)]

    def solution(self):
        """The positive root in closed form (symbolic in the other sizes)."""
        poly = sympy.Poly(self.lhs, self.unknown) if self.lhs.is_polynomial(self.unknown) else None
        if poly is not None and poly.degree() == 2:
            # the quadratic formula keeps the radicand expanded: C(−4G + √(16G² + 153G))/(9G)
            a, b, c0 = poly.all_coeffs()
            out, inside = _square_part(sympy.expand(b**2 - 4 * a * c0))
            disc = sympy.Dummy("disc", positive=True)  # keep the radicand whole while factoring
            root = sympy.factor_terms((-b + out * disc) / (2 * a)).subs(disc, sympy.sqrt(inside))
            if _positive([root], self.lhs.free_symbols - {self.unknown}):
                return root
        roots = _positive(self._solve(self.lhs), self.lhs.free_symbols - {self.unknown})
        if len(roots) != 1:
            raise CnnGraphError(f"{self.text}: expected one positive root, found {len(roots)}")
        return sympy.factor_terms(roots[0])

    def roots(self, **values) -> list:
        """Positive real roots, exact, at given values of the other sizes."""
        lhs = self.lhs.subs({_symbol(self.lhs, k): v for k, v in values.items()})
        return [sympy.factor_terms(sympy.nsimplify(r) if r.is_Float else r)
                for r in _positive(self._solve(lhs), lhs.free_symbols - {self.unknown})]

    def __str__(self):
        return self.text


def _square_part(d):
    """``d = out²·inside`` with the largest square monomial factor out of the radicand:
    √(64C²G² + 612C²G) = 2C·√(16G² + 153G)."""
    terms = sympy.Add.make_args(d)
    content = reduce(math.gcd, [abs(int(t.as_coeff_Mul()[0])) for t in terms])
    powers = None
    for t in terms:
        p = {x: e for x, e in t.as_coeff_Mul()[1].as_powers_dict().items() if x.is_Symbol and e.is_Integer}
        powers = p if powers is None else {x: min(e, p.get(x, 0)) for x, e in powers.items()}
    out = sympy.Integer(1)
    for prime, e in sympy.factorint(content).items():
        out *= prime ** (e // 2)
    for x, e in (powers or {}).items():
        out *= x ** (e // 2)
    return out, sympy.expand(d / out**2)


def _positive(roots, others) -> list:
    """Roots that are positive reals (tested at the other sizes = 1, 2, 3 when undecidable)."""
    out = []
    for r in roots:
        if r.is_positive:
            out.append(r)
        elif r.is_positive is None and r.is_real is not False:
            samples = [r.subs({s: v for s in others}) for v in (1, 2, 3)]
            if all(complex(x).imag == 0 and complex(x).real > 0 for x in samples):
                out.append(r)
    return out


def equal_cost(a, b, unknown) -> Equation:
    """The condition ``a = b`` as a reduced polynomial equation in ``unknown``.

    ResNeXt (G pathways of width c) against the bottleneck: (8Cc + 9c²)HWG = 17HWC² reduces
    to 9Gc² + 8GCc − 17C² = 0.
    """
    d = sympy.expand(_expr(a) - _expr(b))
    if d == 0:
        raise CnnGraphError("the two formulas are identical: equal for every value")
    u = _symbol(d, unknown)
    terms = sympy.Add.make_args(d)
    common = None
    for t in terms:
        coeff, rest = t.as_coeff_Mul()
        powers = {s: e for s, e in rest.as_powers_dict().items() if s.is_Symbol and e.is_Integer}
        common = powers if common is None else {s: min(e, powers.get(s, 0)) for s, e in common.items()}
    content = reduce(math.gcd, [abs(int(t.as_coeff_Mul()[0])) for t in terms if t.as_coeff_Mul()[0].is_Integer] or [1])
    divisor = sympy.Mul(*(s**e for s, e in (common or {}).items() if e > 0)) * max(content, 1)
    lhs = sympy.expand(d / divisor)
    lead = sympy.Poly(lhs, u).LC() if lhs.is_polynomial(u) else 1
    if lead.could_extract_minus_sign():
        lhs = -lhs
    return Equation(lhs, u, (a, b))


# ---------------------------------------------------------------- studies
@dataclass
class Study:
    """A worked comparison of the seeds, with its rows and findings, renderable three ways."""

    name: str
    summary: str
    seed: str
    headers: list
    rows: list  # list of lists of str
    findings: list
    data: dict = field(default_factory=dict)
    latex_lines: list = field(default_factory=list)

    def to(self, fmt: str = "text") -> str:
        if fmt == "json":
            return json.dumps(dict(name=self.name, summary=self.summary, seed=self.seed, headers=self.headers,
                                   rows=self.rows, findings=self.findings, **self.data), indent=1, ensure_ascii=False)
        if fmt == "latex":
            return r"\begin{aligned} " + r" \\ ".join(self.latex_lines) + r" \end{aligned}" + "\n"
        from cnngraph.formulas.report import _table

        lines = [f"{self.name}: {self.summary}"]
        if self.seed:
            lines.append(f"  the seeds: {self.seed}")
        lines += ["  " + x for x in _table(self.rows, self.headers)]
        lines += [f"  → {f}" for f in self.findings]
        return "\n".join(lines) + "\n"

    def __str__(self):
        return self.to("text")

    def _repr_latex_(self):
        return "$$" + self.to("latex").strip() + "$$"


def compare(a, b, name=None, summary="", seed="", include=()) -> Study:
    """Two blocks side by side: cost, params, memory with their ratios, and receptive fields."""
    A = a if isinstance(a, Block) else block(a, include=include)
    B = b if isinstance(b, Block) else block(b, include=include)
    rows, latex, data = [], [], {"a": A.name, "b": B.name}
    for f in ("cost", "params", "memory"):
        fa, fb = getattr(A, f), getattr(B, f)
        q = ratio(fa, fb)
        rows.append([f, fa.text, fb.text, q.text])
        latex.append(rf"\text{{{f}}}: {fa.latex} &\text{{ vs }} {fb.latex} \quad (\text{{ratio }} {q.latex})")
        data[f] = dict(a=fa.json, b=fb.json, ratio=q.json)
    rows.append(["receptive field", A.receptive.label, B.receptive.label, ""])
    data["receptive_field"] = dict(a=[present.plain(s) for s in A.receptive.size],
                                   b=[present.plain(s) for s in B.receptive.size])
    return Study(name or f"{A.name}_vs_{B.name}", summary or f"{A.name} vs {B.name}", seed, ["", A.name, B.name, "ratio"],
                 rows, [], data, latex)


STUDIES: dict = {}


def _study(name, summary):
    def wrap(fn):
        STUDIES[name] = (fn, summary)
        return fn

    return wrap


@_study("5x5_vs_3x3", "one 5×5 conv vs two 3×3 convs (C→C)")
def five_vs_three():
    s = compare("conv5x5", "conv3x3_x2", "5x5_vs_3x3", "one 5×5 conv vs two 3×3 convs (C→C)",
                "Two 3x3 conv has same receptive field as a single 5x5 conv, but has fewer parameters and takes "
                "less computation! (seed 000)")
    s.findings.append("same receptive field (5×5); two 3×3 convs cost 18/25 of one 5×5 in compute and params")
    return s


@_study("7x7_vs_3x3", "one 7×7 conv vs three 3×3 convs (C→C)")
def seven_vs_three():
    s = compare("conv7x7", "conv3x3_x3", "7x7_vs_3x3", "one 7×7 conv vs three 3×3 convs (C→C)",
                "Stack of three 3x3 conv (stride 1) layers has same effective receptive field as one 7x7 conv "
                "layer ... fewer parameters: 3·(3²C²) vs. 7²C² (seed 002)")
    s.findings.append("same receptive field (7×7); params 27C² = 3·(3²C²) vs 49C² = 7²C²")
    return s


@_study("vgg_resolution", "a VGG 3×3 conv at C×2H×2W vs at 2C×H×W")
def vgg_resolution():
    s = compare("vgg_conv_2h", "vgg_conv_2c", "vgg_resolution", "a VGG 3×3 conv at C×2H×2W vs at 2C×H×W",
                "Conv layers at each spatial resolution take the same amount of computation! (seed 000)")
    s.findings.append("equal cost 36HWC²; halving the resolution and doubling the channels halves the memory "
                      "(4HWC → 2HWC) and quadruples the params (9C² → 36C²)")
    return s


@_study("basic_vs_bottleneck", "basic block on C channels vs bottleneck block on 4C channels")
def basic_vs_bottleneck():
    s = compare("basic", "bottleneck", "basic_vs_bottleneck",
                "basic block (C→C) vs bottleneck block (4C in and out)",
                "“Bottleneck”: more layers, less computational cost! 18HWC² vs 17HWC² (seed 000)")
    s.findings.append("the bottleneck block works on 4× the channels for 17/18 of the basic block's cost")
    return s


@_study("resnext_forms", "ResNeXt block: G pathways vs one grouped convolution")
def resnext_forms():
    s = compare("resnext_paths", "resnext_grouped", "resnext_forms", "ResNeXt block: G pathways vs grouped conv",
                "(8Cc + 9c²)·HWG for both: equivalent formulation with grouped convolution (seed 000)")
    same = block("resnext_paths").cost == block("resnext_grouped").cost
    s.findings.append(f"cost identical for every C, c, G, H, W: {same}; params identical: "
                      f"{block('resnext_paths').params == block('resnext_grouped').params}; memory differs "
                      "(the zoo's grouped form has batch norm after each conv; the pathway form here has none)")
    return s


@_study("separable_vs_standard", "standard 3×3 conv block vs depthwise-separable block")
def separable_vs_standard():
    s = compare("standard", "separable", "separable_vs_standard", "standard 3×3 conv block vs depthwise separable",
                "Speedup = 9C²/(9C+C²) = 9C/(9+C) => 9 (as C->inf) (seed 000)")
    q = ratio(block("standard").cost, block("separable").cost)
    lim = limit(q, "C")
    s.findings.append(f"speedup {q.text} → {present.text(lim)} as C → ∞; at C = 64: {q(C=64)} ≈ {float(q(C=64)):.2f}")
    s.data["speedup"] = q.json
    s.data["limit"] = present.plain(lim)
    s.latex_lines.append(rf"\text{{speedup}} &= {q.latex} \to {present.latex(lim)} \quad (C \to \infty)")
    return s


PAPER_RESNEXT = ((1, 64), (2, 40), (4, 24), (8, 14), (32, 4))  # (groups, group width): seed 000's table


def resnext_widths(C=64, table=PAPER_RESNEXT) -> Study:
    """Solve the ResNeXt equal-cost condition for the group width c, per group count G.

    The equation comes from the two graphs' costs; each row gives the exact positive root,
    its decimal value, the width the paper picked, whether the pick rounds the root up or
    down, and the cost at the pick relative to the bottleneck's.
    """
    grouped, base = block("resnext_grouped"), block("bottleneck")
    eq = equal_cost(grouped.cost, base.cost, "c")
    general = eq.solution()
    rows, data_rows = [], []
    ratio_f = ratio(grouped.cost, base.cost)
    for G, pick in table:
        (root,) = eq.roots(C=C, G=G)
        x = float(root)
        how = "exact" if root == pick else ("rounded up" if pick > x else "rounded down")
        nearest = "nearest integer" if abs(pick - x) <= 0.5 else "not the nearest integer"
        q = ratio_f(C=C, G=G, c=pick)
        rows.append([str(G), present.text(root), f"{x:.3f}", str(pick), how, nearest, f"{float(q):.4f}"])
        data_rows.append(dict(G=G, root=present.plain(root), value=x, paper=pick, rounding=how,
                              cost_ratio=present.plain(sympy.sympify(q))))
    findings = [f"equal cost when {grouped.cost.text} = {base.cost.text}, i.e. {eq.text}",
                f"positive root: c = {present.text(general)}"]
    how = {k: [r[0] for r in rows if r[4] == k] for k in ("exact", "rounded up", "rounded down")}
    nearest = all(r[5] == "nearest integer" for r in rows)
    findings.append(f"at C = {C}: the paper's widths are {'all ' if nearest else 'not all '}the nearest integers to "
                    "the roots; " + "; ".join(f"{k} for G = {', '.join(v)}" for k, v in how.items() if v)
                    + ("; none rounded down" if not how["rounded down"] else ""))
    findings += _resnext_networks(table)
    latex = [rf"{present.latex(grouped.cost.shown)} &= {present.latex(base.cost.shown)}", rf"{eq.latex.replace('=', '&=')}",
             rf"c &= {present.latex(general)}"]
    return Study("resnext_widths", f"ResNeXt group width c for the cost of a ResNet bottleneck (C = {C})",
                 "Equal cost when 9Gc² + 8GCc – 17C² = 0. Example: C=64, G=4, c=24; C=64, G=32, c=4; table: "
                 "groups 1, 2, 4, 8, 32 with widths 64, 40, 24, 14, 4 (seed 000)",
                 ["G", "exact root c", "≈", "paper", "pick vs root", "", "cost / ResNet"], rows, findings,
                 dict(equation=eq.json, root=present.plain(general), table=data_rows), latex)


def _resnext_networks(table) -> list:
    """The whole ResNeXt-50 variants of the zoo against ResNet-50 (MACs), when they are there."""
    from cnngraph import analyze, zoo

    names = [f"resnext50_{G}x{c}d" for G, c in table]
    if not all(n in zoo.names() for n in names[1:]):
        return []
    base = analyze(zoo.build("resnet50")).total.macs
    parts = []
    for (G, c), n in zip(table, names):
        if G == 1:
            continue
        m = analyze(zoo.build(n)).total.macs
        parts.append(f"{n} {m:,} ({m / base:.3f}×)")
    return [f"whole networks (zoo, 224×224): resnet50 {base:,} MACs; " + ", ".join(parts)]


_study("resnext_widths", "ResNeXt: solve 9Gc² + 8GCc − 17C² = 0 for the group width, G = 1, 2, 4, 8, 32")(resnext_widths)


# ---------------------------------------------------------------- EfficientNet compound scaling
ALPHA, BETA, GAMMA = sympy.Rational(6, 5), sympy.Rational(11, 10), sympy.Rational(23, 20)  # Tan & Le 2019


def efficientnet_scaling() -> Study:
    """Compound scaling against the zoo's EfficientNet B0–B7.

    FLOPs of a conv net grow linearly in depth and quadratically in width and resolution, so
    scaling depth by α^φ, width by β^φ and resolution by γ^φ multiplies them by (αβ²γ²)^φ,
    and α·β²·γ² = 1.92 ≈ 2 (Tan & Le 2019). The quadratic growth in resolution is exact and
    derived here from B0's symbolic totals on a 3×32h×32w input; each variant's actual MACs
    ratio to B0 (from its own graph at its own resolution) is compared with d·w²·(r/224)²
    from its published multipliers and with 2^φ for the φ its resolution implies.
    """
    try:
        from cnngraph.zoo import efficientnet as eff
    except ImportError:
        raise CnnGraphError("efficientnet_scaling needs cnngraph.zoo.efficientnet (EfficientNet B0–B7), "
                            "which is not in the zoo yet") from None
    from cnngraph import analyze, zoo
    from cnngraph.ir.symbols import h, w

    scaling = getattr(eff, "EFFICIENTNET_SCALING")
    law = ALPHA * BETA**2 * GAMMA**2
    b0 = analyze(zoo.build("efficientnet_b0", input=(3, 32 * h, 32 * w))).total.macs
    poly = sympy.Poly(sympy.expand(b0), h, w)
    resolution_law = poly.total_degree() == 2 and poly.coeff_monomial(h * w) != 0
    base = None
    rows, data = [], []
    for name in sorted(scaling):
        wm, dm, res = scaling[name][:3]
        macs = analyze(zoo.build(f"efficientnet_{name}")).total.macs
        base = base or macs
        actual = macs / base
        predicted = dm * wm**2 * (res / 224) ** 2
        phi = math.log(res / 224) / math.log(float(GAMMA))
        rows.append([name, f"{wm}", f"{dm}", str(res), f"{macs:,}", f"{actual:.3f}", f"{predicted:.3f}",
                     f"{actual / predicted:.3f}", f"{phi:.2f}", f"{float(law) ** phi:.3f}", f"{2 ** phi:.3f}"])
        data.append(dict(variant=name, width=wm, depth=dm, resolution=res, macs=macs, ratio=actual,
                         predicted=predicted, phi=phi))
    findings = [f"α·β²·γ² = {present.text(law)} = {float(law):.4f} ≈ 2",
                f"B0 on 3×32h×32w: MACs = {Formula(b0, 'expanded').text}: "
                + ("quadratic in the resolution, as the law assumes" if resolution_law else "NOT quadratic in h, w"),
                "actual/predicted > 1 mostly from depth rounding (ceil of d × layers per stage) and channel "
                "rounding to multiples of 8"]
    dev = [d["ratio"] / float(law) ** d["phi"] for d in data if d["phi"] > 0]
    findings.append(f"with φ implied by each variant's resolution, MACs/B0 = {min(dev):.2f}–{max(dev):.2f} × "
                    f"(αβ²γ²)^φ: FLOPs grow about 1.92^φ ≈ 2^φ")
    return Study("efficientnet_scaling", "EfficientNet compound scaling: FLOPs ≈ (αβ²γ²)^φ ≈ 2^φ vs the zoo's B0–B7",
                 "Increase network capacity by scaling width, depth, and resolution (seed 002)",
                 ["variant", "width β^φ", "depth α^φ", "res", "MACs", "MACs/B0", "d·w²·r²", "actual/law",
                  "φ (from res)", "1.92^φ", "2^φ"], rows, findings,
                 dict(law=present.plain(law), table=data))


_study("efficientnet_scaling", "EfficientNet compound scaling checked against the zoo's B0–B7")(efficientnet_scaling)


def study(name: str) -> Study:
    key = name.replace("-", "_").lower()
    if key not in STUDIES:
        raise CnnGraphError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
    return STUDIES[key][0]()
