"""The one printer of sizes, shapes and formulas, in the form a person writes them: tables,
diagrams, formulas and error messages all print through it, so one expression reads the same
everywhere (``2C×⌊H/2⌋×W``, ``18HWC²``).

:func:`size` and :func:`shape` print a size or a shape (digits for numbers, without importing
sympy); :func:`text`, :func:`latex`, :func:`plain` and :func:`render` print an expression;
:func:`fmt_bytes` a byte count.

Three syntaxes for one layout: unicode ``text`` (``18HWC²``, ``(8Cc + 9c²)HWG``), ``latex``
(``18 H W C^{2}``) and ``plain`` (``18*H*W*C**2``, a string ``sympy.sympify`` reads back; use
:func:`parse` to get cnngraph's positive-integer symbols back).

The layout follows the lecture slides:

* a product is written number first, then the batch ``N``, then spatial sizes (``H``, ``W``,
  ``h``, ``w``), then channel counts (``C``, ``c``, ``C_in``, ...), then everything else
  (``K``, ``G``, ``t``, ...): ``18HWC²``, ``HWC_inC_outK²/G``;
* :func:`slides_form` factors the spatial and structural symbols common to every term out of
  a sum and keeps the channel polynomial inside: ``(9C + C²)HW``, ``(8Cc + 9c²)HWG``;
* terms of a sum come with the highest spatial power first (``83410944hw + 2048000``), then
  by ascending degree in the channels (``9C + C²``);
* an equation is written in descending powers of its unknown, the unknown last in each
  product: ``9Gc² + 8GCc − 17C² = 0`` (:func:`equation`).

>>> from cnngraph.ir.symbols import C, H, W, G, c
>>> text(18 * H * W * C**2), latex(18 * H * W * C**2), plain(18 * H * W * C**2)
('18HWC²', '18 H W C^{2}', '18*H*W*C**2')
>>> text(slides_form(8*C*c*H*W*G + 9*c**2*H*W*G))
'(8Cc + 9c²)HWG'
>>> plain(slides_form(9*C*H*W + C**2*H*W))
'(9*C + C**2)*H*W'
>>> (parse('(9*C + C**2)*H*W') - (9*C*H*W + C**2*H*W)).expand()
0
>>> shape((2 * C, sympy.floor(H / 2), W)), shape((64, 56, 56))
('2C×⌊H/2⌋×W', '64×56×56')
"""
from __future__ import annotations

import functools

from cnngraph.ir.lazy import is_sym, sympy  # sympy imported only for a symbolic value

SPATIAL = ("H", "W", "h", "w")
BATCH = ("N",)
CHANNEL_NAMES = ("k",)  # DenseNet's growth rate is a channel count
GREEK = {n: chr(0x3B1 + i) for i, n in enumerate(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma_ tau upsilon "
    "phi chi psi omega".split())}
_SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_SUB = dict(zip("0123456789aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ"))


# ---------------------------------------------------------------- symbol roles and order
def role(s) -> str:
    """``batch``, ``spatial``, ``channel`` or ``other``: decides factor order and factoring."""
    name = s.name
    base = name.split("_")[0]
    if name in BATCH:
        return "batch"
    if base in SPATIAL:
        return "spatial"
    if base[:1] in ("C", "c") or name in CHANNEL_NAMES:
        return "channel"
    return "other"


_GROUPS = {"batch": 0, "spatial": 1, "channel": 2, "other": 3}
_GROUPS_EQUATION = {"batch": 0, "other": 1, "spatial": 2, "channel": 3}


def _rank(s, unknown=None):
    r = role(s)
    group = 9 if s == unknown else (_GROUPS_EQUATION if unknown is not None else _GROUPS)[r]
    name = s.name
    if r == "spatial":
        within = (SPATIAL.index(name.split("_")[0]), name)
    elif r == "other":
        within = (name != "K", name.lower(), name)  # the kernel size first: C_in·C_out·K²
    else:
        within = (name.lower(), name.islower(), name)  # C before c, C_in after both
    return (group, within)


# ---------------------------------------------------------------- symbol rendering
@functools.lru_cache(maxsize=4096)
def _sym_text(name: str) -> tuple[str, bool]:
    """Unicode form of a symbol name and whether it is one glyph (safe to juxtapose)."""
    base, _, sub = name.partition("_")
    base = GREEK.get(base, base)
    single = len(base) == 1
    if not sub:
        return base, single
    if all(ch in _SUB for ch in sub):
        return base + "".join(_SUB[ch] for ch in sub), single
    return f"{base}_{sub}", False


# ---------------------------------------------------------------- term ordering
def _degrees(term):
    """(spatial, channel, other) degrees of one product, counting a function of a size as 1."""
    deg = {"batch": 0, "spatial": 0, "channel": 0, "other": 0}
    for base, exp in term.as_powers_dict().items():
        if base.is_Symbol:
            e = exp if exp.is_Number else 1
            deg[role(base)] += e
        elif not base.is_Number:
            for s in base.free_symbols:
                deg[role(s)] += 1 if role(s) == "spatial" else 0
    return deg


def _term_key(term, chans, unknown=None):
    """Highest spatial power first, then ascending channel degree, ties broken by the powers
    of the channels in order (``8Cc`` before ``9c²``)."""
    if unknown is not None:
        return (-sympy.degree(term, unknown) if term.is_polynomial(unknown) else 0, sympy.default_sort_key(term))
    d = _degrees(term)
    powers = term.as_powers_dict()
    return (-d["spatial"], d["channel"], -d["other"], tuple(-powers.get(s, 0) for s in chans),
            sympy.default_sort_key(term))


# ---------------------------------------------------------------- the slides form
def _monomial(term):
    """(coefficient, {symbol: exponent}) of a product of powers of symbols, else None."""
    coeff, rest = term.as_coeff_Mul()
    powers = {}
    for base, exp in rest.as_powers_dict().items():
        if base == 1:
            continue
        if not (base.is_Symbol and exp.is_Integer):
            return None
        powers[base] = int(exp)
    return coeff, powers


def _has_denominator(expr) -> bool:
    return any(p.exp.is_negative for p in expr.atoms(sympy.Pow))


def slides_form(expr, factor: bool = True):
    """``expr`` expanded, with the spatial and structural symbols common to all terms
    factored out as the slides write them: ``(9C + C²)HW``; a single product stays one.

    Expressions with floors or other functions are returned with nested floors collapsed
    (:func:`collapse_floors`) and otherwise unchanged.

    >>> from cnngraph.ir.symbols import C, H, W
    >>> text(slides_form(C * H * W * (C + 9)))
    '(9C + C²)HW'
    """
    expr = sympy.sympify(expr, strict=True)
    if not expr.free_symbols or (not expr.is_Add and _monomial(expr)):
        return expr  # a number or a single product: nothing to lay out
    if expr.atoms(sympy.Function):
        return collapse_floors(expr)
    num, den = sympy.fraction(sympy.together(expr)) if _has_denominator(expr) else (expr, sympy.Integer(1))
    if den.free_symbols and not _monomial(sympy.expand(den)):
        # a ratio of polynomials: lay out each side, 9C/(9 + C)
        return sympy.Mul(slides_form(num, factor), sympy.Pow(slides_form(den, factor), -1), evaluate=False)
    e = sympy.expand(expr)
    terms = sympy.Add.make_args(e)
    monos = [_monomial(t) for t in terms]
    if len(terms) < 2 or not factor or any(m is None for m in monos):
        return e
    common = {}
    for s in set().union(*(m[1] for m in monos)):
        if role(s) == "channel":
            continue  # channels stay in the polynomial: (9C + C²), not C(9 + C)
        exps = [m[1].get(s, 0) for m in monos]
        lo, hi = min(exps), max(exps)
        if lo > 0:
            common[s] = lo
        elif hi < 0:
            common[s] = hi
    if not common:
        return e
    outer = sympy.Mul(*(s**p for s, p in common.items()))
    inner = sympy.Add(*(t / outer for t in terms))
    return sympy.Mul(inner, outer, evaluate=False)


def collapse_floors(expr):
    """Nested floors merged: ``⌊(⌊y⌋ + m)/n⌋ = ⌊(y + m)/n⌋`` for integers m and n > 0
    (ceilings alike), so a chain of stride-2 layers reads ``⌊(H − 1)/4⌋``.

    >>> from cnngraph.ir.symbols import H
    >>> collapse_floors(sympy.floor(sympy.floor(H/2 - sympy.Rational(1, 2))/2))
    floor(H/4 - 1/4)
    """
    def merge(kind):
        def rule(f):
            arg = sympy.expand(f.args[0])
            inner = [t for t in sympy.Add.make_args(arg) if t.as_coeff_Mul()[1].func is kind]
            if len(inner) != 1:
                return f
            q, g = inner[0].as_coeff_Mul()
            if not (q.is_Rational and q > 0 and q.p == 1):
                return f
            n = q.q
            rest = arg - inner[0]
            if not (rest * n).is_integer:
                return f
            return kind(g.args[0] / n + rest)

        return rule

    for kind in (sympy.floor, sympy.ceiling):
        expr = expr.replace(lambda e, k=kind: e.func is k, merge(kind))
    return expr


# ---------------------------------------------------------------- printing
def _flat_mul(e) -> list:
    """Factors of a product, nested unevaluated products (the slides form) flattened."""
    out = []
    for a in sympy.Mul.make_args(e):
        out.extend(_flat_mul(a) if a.is_Mul else [a])
    return out


def _surely_ge(a, b) -> bool:
    """a ≥ b for every value of the (positive integer) symbols: with each symbol s = 1 + t,
    t ≥ 0, a − b is a polynomial in t whose coefficients are all non-negative."""
    d = sympy.sympify(a - b, strict=True)
    free = sorted(d.free_symbols, key=str)
    if not free:
        return bool(d >= 0)
    if not all(x.is_positive and x.is_integer for x in free):
        return False
    t = [sympy.Dummy() for _ in free]
    d = sympy.expand(d.subs(dict(zip(free, [1 + u for u in t]))))
    try:
        return all(c >= 0 for c in sympy.Poly(d, *t).coeffs())
    except sympy.PolynomialError:
        return False


def simplify_max(expr):
    """Max(...) with every argument that another argument always exceeds dropped (sizes are
    positive integers): ``4·Max(1000, 512hw, 2048hw)`` is ``8192hw``.

    >>> from cnngraph.ir.symbols import h, w
    >>> simplify_max(4 * sympy.Max(1000, 512 * h * w, 2048 * h * w))
    8192*h*w
    """
    def one(m):
        args = list(m.args)
        keep = [a for i, a in enumerate(args)
                if not any(j != i and _surely_ge(b, a) and not (_surely_ge(a, b) and j > i) for j, b in enumerate(args))]
        return sympy.Max(*keep) if len(keep) > 1 else keep[0]

    return sympy.sympify(expr, strict=True).replace(lambda e: isinstance(e, sympy.Max), one)


# How each syntax writes a relation: a size's condition H + 4 ≥ 11
_RELATIONS = {op: dict(zip(("text", "latex", "plain"), forms)) for op, forms in {
    ">=": ("≥", r"\geq", ">="), "<=": ("≤", r"\leq", "<="), ">": (">", ">", ">"), "<": ("<", "<", "<"),
    "==": ("=", "=", "=="), "!=": ("≠", r"\neq", "!=")}.items()}


def _decimal_text(x) -> str:
    """A float as a plain decimal, never with an exponent: 0.000032, 0.0276, 1.5."""
    out = f"{float(x):.12f}".rstrip("0").rstrip(".")
    return out if out not in ("", "-0") else "0"


class _Printer:
    """One layout, three syntaxes (``text``, ``latex``, ``plain``)."""

    def __init__(self, style: str, unknown=None):
        if style not in ("text", "latex", "plain"):
            raise ValueError(f"unknown style {style!r}: use text, latex or plain")
        self.style, self.unknown = style, unknown

    # atoms
    def symbol(self, s):
        if self.style == "plain":
            return s.name
        if self.style == "latex":
            return sympy.latex(s)
        return _sym_text(s.name)[0]

    def integer(self, n):
        return str(n) if n >= 0 else self.minus() + str(-n)

    def minus(self):
        return "−" if self.style == "text" else "-"

    def paren(self, s):
        return rf"\left({s}\right)" if self.style == "latex" else f"({s})"

    # expressions
    def __call__(self, e) -> str:
        e = sympy.sympify(e, strict=True)
        if e.is_Add:
            return self.add(e)
        if e.is_Mul or (e.is_Rational and not e.is_Integer):
            return self.mul(e)
        if e.is_Pow:
            return self.mul(e) if (e.exp.is_negative) else self.pow(e.base, e.exp)
        if e.is_Integer:
            return self.integer(int(e))
        if e.is_Symbol:
            return self.symbol(e)
        if e.is_Float:
            return _decimal_text(e)
        if e.is_Relational:
            return f"{self(e.lhs)} {_RELATIONS[e.rel_op][self.style]} {self(e.rhs)}"
        if isinstance(e, sympy.Function) or e.is_Function:
            return self.function(e)
        if e is sympy.oo:
            return {"text": "∞", "latex": r"\infty", "plain": "oo"}[self.style]
        return sympy.latex(e) if self.style == "latex" else str(e)

    def function(self, e):
        name = e.func.__name__
        args = [self(a) for a in e.args]
        if self.style == "text" and name in ("floor", "ceiling"):
            return ("⌊{}⌋" if name == "floor" else "⌈{}⌉").format(args[0])
        if self.style == "latex" and name in ("floor", "ceiling"):
            lr = ("lfloor", "rfloor") if name == "floor" else ("lceil", "rceil")
            return rf"\left\{lr[0]} {args[0]} \right\{lr[1]}"
        if self.style == "latex":
            return sympy.latex(e)
        return f"{name}({', '.join(args)})"

    def add(self, e):
        chans = sorted((s for s in e.free_symbols if role(s) == "channel"), key=_rank)
        terms = sorted(sympy.Add.make_args(e), key=lambda t: _term_key(t, chans, self.unknown))
        out = ""
        for i, t in enumerate(terms):
            neg = t.could_extract_minus_sign()
            body = self(-t if neg else t)
            if i == 0:
                out = (self.minus() + body) if neg else body
            else:
                out += (f" {self.minus()} " if neg else " + ") + body
        return out

    def pow(self, base, exp):
        b = self(base)
        if base.is_Add or base.is_Mul or (base.is_Number and (base < 0 or not base.is_Integer)) or base.is_Pow:
            b = self.paren(b)
        if exp == sympy.Rational(1, 2):
            if self.style == "latex":
                return rf"\sqrt{{{self(base)}}}"
            if self.style == "plain":
                return f"sqrt({self(base)})"
            return "√" + (b if (base.is_Atom or b.startswith("(")) else self.paren(b))
        if self.style == "latex":
            return f"{b}^{{{self(exp)}}}"
        if self.style == "plain":
            return f"{b}**{exp}" if exp.is_Integer and exp > 0 else f"{b}**({self(exp)})"
        if exp.is_Integer:
            return b + str(int(exp)).translate(_SUP)
        return f"{b}^{self.paren(self(exp))}"

    def _factors(self, e):
        """(sign, numeric coefficient, numerator factors, denominator factors), ordered."""
        args = _flat_mul(e)
        coeff = sympy.Integer(1)
        num, den = [], []
        for a in args:
            if a.is_Number:
                coeff *= a
            elif a.is_Pow and a.exp.is_negative:
                den.append(a.base if a.exp == -1 else a.base**(-a.exp))
            else:
                num.append(a)
        sign = coeff < 0
        coeff = abs(coeff)
        return sign, coeff, self._order(num), self._order(den)

    def _order(self, factors):
        def key(f):
            if f.is_Add:
                return (0, 0, sympy.default_sort_key(f))
            base = f.base if f.is_Pow else f
            if base.is_Symbol:
                return (1, _rank(base, self.unknown), sympy.default_sort_key(f))
            return (2, 0, sympy.default_sort_key(f))

        return sorted(factors, key=key)

    def _product(self, coeff, factors, lone_sum_bare=False):
        coeff_text = _decimal_text(coeff) if coeff.is_Float else str(coeff)  # decimals as written: 0.0276C
        parts = []
        bare = lone_sum_bare and coeff == 1 and len(factors) == 1
        for f in factors:
            s = self(f)
            if f.is_Add and not bare:
                s = self.paren(s)
            parts.append(s)
        if self.style == "plain":
            if coeff != 1 or not parts:
                parts.insert(0, coeff_text)
            return "*".join(parts)
        if self.style == "latex":
            if coeff != 1 or not parts:
                parts.insert(0, coeff_text)
            return " ".join(parts)
        if not parts:
            return coeff_text
        sep = "" if all(self._juxtaposable(f) for f in factors) else "·"
        body = sep.join(parts)
        return body if coeff == 1 else coeff_text + sep + body

    def _juxtaposable(self, f):
        syms = [f] if f.is_Symbol else ([f.base] if f.is_Pow and f.base.is_Symbol else None)
        if syms is None:
            return True  # sums, floors: bracketed, so juxtaposition is unambiguous
        return all(_sym_text(s.name)[1] for s in syms)

    def mul(self, e):
        if e.is_Rational and not e.is_Integer:
            sign, coeff, num, den = e < 0, abs(e), [], []
        else:
            sign, coeff, num, den = self._factors(e)
        p, q = sympy.fraction(coeff)
        top = self._product(p, num)
        s = top
        if den or q != 1:
            bottom = self._product(q, den, lone_sum_bare=self.style == "latex")
            if self.style == "latex":
                s = rf"\frac{{{top}}}{{{bottom}}}"
            else:
                several = len(den) + (q != 1) > 1
                s = f"{top}/{self.paren(bottom) if several else bottom}"
        return (self.minus() + s) if sign else s


def text(expr, unknown=None) -> str:
    """Unicode: ``18HWC²``, ``(9C + C²)HW``, ``HWCᵢₙCₒᵤₜK²/G``."""
    return _Printer("text", unknown)(expr)


def latex(expr, unknown=None) -> str:
    r"""LaTeX: ``18 H W C^{2}``, ``\left(9 C + C^{2}\right) H W``."""
    return _Printer("latex", unknown)(expr)


def plain(expr, unknown=None) -> str:
    """``18*H*W*C**2``: what ``sympy.sympify`` reads back (see :func:`parse`)."""
    return _Printer("plain", unknown)(expr)


def render(expr, fmt: str = "text", unknown=None) -> str:
    """``fmt`` is ``text``, ``latex`` or ``plain`` (``json`` is an alias of ``plain``)."""
    return _Printer("plain" if fmt == "json" else fmt, unknown)(expr)


def parse(s: str):
    """A ``plain`` string back to an expression over cnngraph's positive-integer symbols.

    Symbols whose names sympy already uses (``N``, ``S``, ``E``, ``I``, ``beta``, ...) are read
    as symbols, not as sympy's objects.

    >>> parse("(9*C + C**2)*H*W").expand()
    C**2*H*W + 9*C*H*W
    """
    from cnngraph.ir.sizes import parse_expr

    return sympy.sympify(parse_expr(s, "formula", functions=("sqrt",)), strict=True)  # the safe parser: no eval


def equation(lhs, unknown, rhs=0, fmt: str = "text") -> str:
    """``lhs = rhs`` in descending powers of ``unknown``: ``9Gc² + 8GCc − 17C² = 0``."""
    left = render(sympy.expand(lhs), fmt, unknown)
    right = render(sympy.sympify(rhs, strict=True), fmt, unknown)
    return f"{left} = {right}"


def relation(rel, fmt: str = "text") -> str:
    """A condition on sizes, each side laid out as :func:`size` does: ``⌊H/4 − 7/4⌋ + 1 ≥ 3``.

    >>> from cnngraph.ir.symbols import H
    >>> relation(sympy.Ge(sympy.floor(H / 4 - sympy.Rational(7, 4)) + 1, 3))
    '⌊H/4 − 7/4⌋ + 1 ≥ 3'
    """
    return f"{size(rel.lhs, fmt)} {_RELATIONS[rel.rel_op]['plain' if fmt == 'json' else fmt]} {size(rel.rhs, fmt)}"


def size(x, fmt: str = "text") -> str:
    """A size or a count as people read it: digits for a number (no sympy involved), an
    expression in the slides' layout (:func:`slides_form`) in syntax ``fmt``.

    >>> from cnngraph.ir.symbols import C, H, W
    >>> size(224), size(2 * C), size(sympy.floor(H / 2)), size(18 * C**2 * H * W), size(C * H * W * (C + 9))
    ('224', '2C', '⌊H/2⌋', '18HWC²', '(9C + C²)HW')
    >>> size(18 * C**2 * H * W, "latex")
    '18 H W C^{2}'
    """
    if not is_sym(x):
        return str(x)
    if x.is_Integer:
        return str(int(x))
    return render(slides_form(x), fmt)


_TIMES = {"text": "×", "latex": r" \times ", "plain": "x", "json": "x"}


def shape(dims, fmt: str = "text") -> str:
    """A shape: its sizes (:func:`size`) joined by ``×`` (`` \\times `` in LaTeX, ``x`` in
    plain), a size that is a sum in parentheses.

    >>> from cnngraph.ir.symbols import C, H, W
    >>> shape((64, 56, 56)), shape((2 * C, sympy.floor(H / 2 - sympy.Rational(1, 2)) + 1, W))
    ('64×56×56', '2C×(⌊H/2 − 1/2⌋ + 1)×W')
    """
    p = _Printer("plain" if fmt == "json" else fmt)
    times = _TIMES[fmt]
    if times == "x" and any(is_sym(s) and not s.is_Number for s in dims):
        times = " x "  # ``3 x 32*h x 32*w``: the separator stays apart from a size's letters
    return times.join(p.paren(size(s, fmt)) if is_sym(s) and s.is_Add else size(s, fmt) for s in dims)


# ---------------------------------------------------------------- memory: one vocabulary
# Every output that shows memory says what it counts with these words and prints bytes with
# fmt_bytes: binary units, written KiB / MiB / GiB (1 KiB = 2^10 B, 1 MiB = 2^20 B).
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
UNITS = "1 KiB = 2^10 B, 1 MiB = 2^20 B"
MEMORY_TERMS = {
    "activations": "activation memory = every layer output written once (in-place outputs not counted), "
                   "not the planned arena of cnngraph plan",
    "arena": "planned arena = the buffers an executor allocates once dead values are reused (cnngraph plan)",
    "naive": "naive = every value of the compiled plan (BN and activations fused into their layer) in a buffer "
             "of its own",
    "weights": "weights = parameters × 4 B (fp32)",
    "elements": "block formulas count elements (multiply by 4 for fp32 bytes); model totals are in bytes",
}


def memory_note(*terms: str) -> str:
    """The line that says what a memory number counts, and its units.

    >>> memory_note("activations").endswith("1 KiB = 2^10 B, 1 MiB = 2^20 B")
    True
    """
    return "; ".join(MEMORY_TERMS[t] for t in terms) + "; " + UNITS


def fmt_bytes(b) -> str:
    """A byte count for people: ``1.5 MiB`` (binary units, one decimal), a formula as printed.

    >>> fmt_bytes(802816), fmt_bytes(512), fmt_bytes(3 * 2**30)
    ('784.0 KiB', '512 B', '3.0 GiB')
    """
    if not (isinstance(b, int) or (is_sym(b) and b.is_Integer)):
        return text(b) + " B"  # a formula, through the one printer
    b = int(b)
    for unit, f in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if b >= f:
            return f"{b / f:.1f} {unit}"
    return f"{b} B"
