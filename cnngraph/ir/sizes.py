"""Sizes a user types, read safely: the one parser for every size expression in cnngraph.

A size is an integer expression over names: ``224``, ``H``, ``32*h``, ``(H - 1)//2 + 1``,
``floor(H/4)``, ``max(H, 7)``. Every name is a positive-integer symbol (``N``, ``E``, ``S``,
``I`` and ``Q`` included: nothing is looked up in sympy or Python). The grammar is

    expr  := term (("+" | "-") term)*
    term  := unary (("*" | "/" | "//") unary)*
    unary := ("+" | "-") unary | power
    power := atom (("**" | "^") unary)?
    atom  := INTEGER | NAME | FUNC "(" expr ("," expr)* ")" | "(" expr ")"
    FUNC  := floor | ceil | ceiling | min | max

and nothing else: no attribute access, no strings, no calls of other names, no floats. The
text is at most :data:`MAX_LENGTH` characters, nested at most :data:`MAX_DEPTH` deep, an
exponent is a literal integer up to :data:`MAX_EXPONENT` and every constant stays below
:data:`MAX_MAGNITUDE`, so ``9**9**9`` is refused at once instead of hanging.

>>> parse_size("3*E + N")
3*E + N
>>> parse_shape("3,32*h,32*w")
(3, 32*h, 32*w)
>>> parse_size("__import__('os')")
Traceback (most recent call last):
...
cnngraph.ir.errors.InputError: size "__import__('os')": names start with a letter (at position 1)
"""
from __future__ import annotations

import math
import numbers
import re

from cnngraph.ir.errors import InputError

MAX_LENGTH = 200
MAX_DEPTH = 20
MAX_EXPONENT = 64
MAX_MAGNITUDE = 2**62
GRAMMAR = "integers, names, + - * / // ** and parentheses, floor/ceil/min/max"
# Names that read as numbers to a person but are not integers.
NOT_NUMBERS = frozenset({"nan", "inf", "infinity", "oo", "zoo"})

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)|(?P<name>[A-Za-z][A-Za-z0-9_]*)"
                    r"|(?P<op>\*\*|//|[-+*/^(),]))")


def _shown(text: str) -> str:
    """The user's text quoted as they typed it (double quotes when it holds single ones)."""
    return f'"{text}"' if "'" in text and '"' not in text else repr(text)


def _tokens(text: str, what: str):
    pos, out = 0, []
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            j = len(text) - len(text[pos:].lstrip())
            ch = text[j]
            rule = "names start with a letter" if ch == "_" else f"unexpected character {ch!r}; a size is {GRAMMAR}"
            raise InputError(f"{what} {_shown(text)}: {rule} (at position {j + 1})")
        kind = m.lastgroup
        tok = m.group(kind)
        if kind == "num" and not tok.isdigit():
            raise InputError(f"{what} {_shown(text)}: {tok} is not an integer (sizes are whole numbers)")
        out.append((kind, tok, m.start(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, what: str, functions=()):
        import sympy

        self.sp = sympy
        self.funcs = {"floor": sympy.floor, "ceil": sympy.ceiling, "ceiling": sympy.ceiling, "min": sympy.Min,
                      "max": sympy.Max, **{f: getattr(sympy, EXTRA_FUNCTIONS[f]) for f in functions}}
        self.text, self.what = text, what
        self.toks = _tokens(text, what)
        self.i = 0
        self.depth = 0

    def fail(self, rule: str):
        raise InputError(f"{self.what} {_shown(self.text)}: {rule}")

    def peek(self):
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self, want=None):
        if self.i >= len(self.toks):
            self.fail("unexpected end" + (f", expected {want!r}" if want else ""))
        kind, tok, pos = self.toks[self.i]
        if want is not None and tok != want:
            self.fail(f"expected {want!r} at position {pos + 1}, found {tok!r}")
        self.i += 1
        return kind, tok, pos

    def check(self, v):
        # Constants are checked as they are built, so no step can grow without bound.
        if v.is_Number and abs(v) > MAX_MAGNITUDE:
            self.fail(f"a constant exceeds 2**62 (sizes are at most {MAX_MAGNITUDE})")
        return v

    def parse(self):
        if not self.toks:
            self.fail("empty size")
        v = self.expr()
        if self.i != len(self.toks):
            _, tok, pos = self.toks[self.i]
            self.fail(f"unexpected {tok!r} at position {pos + 1}; a size is {GRAMMAR}")
        return v

    def nest(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nested more than {MAX_DEPTH} deep")

    def expr(self):
        self.nest()
        v = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            r = self.term()
            v = self.check(v + r if op == "+" else v - r)
        self.depth -= 1
        return v

    def term(self):
        v = self.unary()
        while self.peek() in ("*", "/", "//"):
            op = self.take()[1]
            r = self.unary()
            if r.is_zero:
                self.fail("division by zero")
            if op == "*":
                v = v * r
            elif op == "/":
                v = v / r
            else:
                v = self.sp.floor(v / r)
            v = self.check(v)
        return v

    def unary(self):
        if self.peek() in ("+", "-"):
            op = self.take()[1]
            self.nest()
            v = self.unary()
            self.depth -= 1
            return -v if op == "-" else v
        return self.power()

    def power(self):
        base = self.atom()
        if self.peek() in ("**", "^"):
            self.take()
            self.nest()
            e = self.unary()
            self.depth -= 1
            if not (e.is_Integer and 0 <= int(e) <= MAX_EXPONENT):
                self.fail(f"an exponent must be an integer from 0 to {MAX_EXPONENT}, got {e}")
            if base.is_Number and int(e) * math.log2(max(2, abs(float(base)))) > 62:
                self.fail(f"a constant exceeds 2**62 ({base}**{e})")
            return self.check(base ** int(e))
        return base

    def atom(self):
        kind, tok, pos = self.take()
        sp = self.sp
        if kind == "num":
            if len(tok) > 19:
                self.fail(f"the integer {tok[:12]}... is too large (sizes are at most {MAX_MAGNITUDE})")
            return self.check(sp.Integer(int(tok)))
        if kind == "name":
            low = tok.lower()
            if self.peek() == "(":
                funcs = self.funcs
                if low not in funcs:
                    self.fail(f"unknown function {tok!r} at position {pos + 1}; allowed: {', '.join(funcs)}")
                self.take("(")
                self.nest()
                args = [self.expr()]
                while self.peek() == ",":
                    self.take()
                    args.append(self.expr())
                self.take(")")
                self.depth -= 1
                if low not in ("min", "max") and len(args) != 1:
                    self.fail(f"{tok} takes one argument, got {len(args)}")
                return self.check(funcs[low](*args))
            if low in NOT_NUMBERS:
                self.fail(f"{tok} is not a finite integer")
            from cnngraph.ir.symbols import sym

            return sym(tok)
        if tok == "(":
            self.nest()
            v = self.expr()
            self.take(")")
            self.depth -= 1
            return v
        self.fail(f"unexpected {tok!r} at position {pos + 1}; a size is {GRAMMAR}")


EXTRA_FUNCTIONS = {"sqrt": "sqrt"}  # sympy functions a formula read back may use (not sizes)


def parse_expr(text: str, what: str = "size", functions=()):
    """A sympy expression (or int) from ``text``, by the grammar above; :class:`InputError` otherwise.

    No integer check: ``parse_expr("H/3")`` is ``H/3`` (the formulas use it for ratios).

    >>> parse_expr("H/3")
    H/3
    """
    if not isinstance(text, str):
        raise InputError(f"{what} must be text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise InputError(f"{what} is {len(text)} characters long (at most {MAX_LENGTH})")
    plain = text.strip()
    if plain.isascii() and plain.isdigit() and int(plain) <= MAX_MAGNITUDE:
        return int(plain)  # a plain number (``--batch 1``): no parser, no sympy
    v = _Parser(text, what, functions).parse()
    return int(v) if v.is_Integer else v


def check_size(v, what: str = "size", positive: bool = True, decided: bool = True):
    """``v`` as a size: an int, or a sympy expression integer for every value of its symbols.

    Refuses floats (``224.5``), NaN, infinities, booleans, non-integer expressions (``H/3``,
    ``sqrt(H)``) and, when ``positive``, provably non-positive values (``0``, ``-3``, ``H - H``).
    Strings are parsed with :func:`parse_expr`. Returns the value (an int when numeric).
    An expression sympy cannot prove integer is refused when it is fractional for some values
    of its integer symbols: a numeric denominator (``H/3``, ``(H + 1)/2``) or a root. A symbolic
    divisor (``C/r``) is the caller's assumption and kept, as is a real-valued symbol (a width
    multiplier α). ``decided=False`` refuses only what is provably not an integer (a padding
    ``(K - 1)/2`` for an odd symbolic kernel K).

    >>> check_size("2*H"), check_size(7)
    (2*H, 7)
    >>> check_size(4.5, "out_channels")
    Traceback (most recent call last):
    ...
    cnngraph.ir.errors.InputError: out_channels=4.5: must be an integer
    """
    if type(v) is int:  # the common case, checked without sympy
        if positive and v <= 0:
            raise InputError(f"{what}={v}: must be positive")
        return v
    import sympy

    if isinstance(v, str):
        v = parse_expr(v, what)
    if isinstance(v, bool) or v is None:
        raise InputError(f"{what}={v!r}: must be an integer")
    if isinstance(v, numbers.Integral):
        v = int(v)
    elif isinstance(v, numbers.Real) and not isinstance(v, sympy.Basic):
        f = float(v)
        rule = "must be an integer" if math.isfinite(f) else "must be a finite integer"
        raise InputError(f"{what}={v!r}: {rule}")
    elif isinstance(v, sympy.Basic):
        if not isinstance(v, sympy.Expr) or v.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
            raise InputError(f"{what}={v}: must be a finite integer")
        if v.is_Integer:
            v = int(v)
        elif v.is_Number:
            raise InputError(f"{what}={v}: must be an integer")
        elif v.is_integer is False or (decided and v.is_integer is None and _fractional(v)):
            raise InputError(f"{what}={v}: must be an integer for every value of its symbols "
                             f"(symbols are positive integers; use floor() or // to round)")
    else:
        raise InputError(f"{what}={v!r}: must be an integer, not {type(v).__name__}")
    if positive:
        bad = v <= 0 if isinstance(v, int) else bool(v.is_nonpositive)
        if bad:
            raise InputError(f"{what}={v}: must be positive")
    elif isinstance(v, int) is False and v.is_negative:
        raise InputError(f"{what}={v}: must not be negative")
    return v


def as_expr(v, what: str = "size"):
    """``v`` as a sympy object: text through the safe parser (never ``sympify``), numbers and
    sympy expressions as they are.

    >>> as_expr("2*C"), as_expr(3)
    (2*C, 3)
    """
    import sympy

    if isinstance(v, str):
        v = parse_expr(v, what)
    return sympy.sympify(v)  # an int or a sympy object here: nothing is parsed


def _fractional(v) -> bool:
    """True when ``v`` is not an integer for some values of its integer symbols."""
    import sympy

    if not all(s.is_integer for s in v.free_symbols):
        return False
    if any(p.exp.is_integer is not True for p in v.atoms(sympy.Pow)):
        return True
    den = sympy.fraction(sympy.together(v))[1]
    return bool(den.is_Number and den != 1)


def parse_size(text: str, what: str = "size"):
    """One size from text: parsed by :func:`parse_expr`, then checked by :func:`check_size`.

    >>> parse_size("N"), parse_size("(H - 1)//2 + 1")
    (N, floor(H/2 - 1/2) + 1)
    """
    return check_size(parse_expr(text, what), what)


def parse_shape(text: str, what: str = "--input"):
    """``"3,H,W"`` → ``(3, H, W)``: every part a positive integer size.

    >>> parse_shape("3,E,E")
    (3, E, E)
    """
    if not isinstance(text, str):
        raise InputError(f"{what} must be text, got {type(text).__name__}")
    if len(text) > 4 * MAX_LENGTH:
        raise InputError(f"{what} is {len(text)} characters long (at most {4 * MAX_LENGTH})")
    parts = _split_top(text)
    if len(parts) > 8:
        raise InputError(f"{what} {text!r}: {len(parts)} sizes (at most 8)")
    return tuple(parse_size(p.strip(), f"{what} size {i + 1}" if len(parts) > 1 else what)
                 for i, p in enumerate(parts))


def _split_top(text: str) -> list:
    """Split on commas outside parentheses: ``"3,max(H,7),W"`` has three parts."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur.append(ch)
    parts.append("".join(cur))
    return parts
