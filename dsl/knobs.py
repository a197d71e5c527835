"""Symbolic knobs: a width multiplier that stays a symbol while a model is built.

Part of the DSL because builders meet it where they meet sizes: ``make_divisible(32 * m)``
in a zoo model is a channel count like any other (design-space sweeps, :mod:`cnngraph.explore`,
pass it in).

A width multiplier ``a`` scales every channel count ``c`` of a model to a rounded
``make_divisible(c·a)``; the rounding is not a polynomial, so the builder does not see ``a``
itself. It sees a :class:`Multiplier`: ``make_divisible(c * m)`` returns ``8·a_c``, a fresh
positive-integer symbol per base count ``c``, and the multiplier remembers how to compute
``a_c`` from ``a`` (the same rounding, vectorised in NumPy). Costs of the built graph are
then polynomials in the ``a_c`` (and the resolution), exact at every design point.

>>> m = Multiplier("a")
>>> from cnngraph.zoo.mobile import make_divisible
>>> make_divisible(32 * m)
8*a32
>>> import numpy as np
>>> m.values(np.array([0.35, 1.0, 1.4]))["a32"].tolist()  # make_divisible(32·a) / 8
[2.0, 4.0, 6.0]
"""
from __future__ import annotations

from dataclasses import dataclass


def make_divisible_np(v, divisor: int = 8, min_value: int | None = None):
    """``cnngraph.zoo.mobile.make_divisible`` on a NumPy array (same float operations, same results)."""
    import numpy as np

    min_value = divisor if min_value is None else min_value
    new = np.maximum(min_value, np.floor(v + divisor / 2) // divisor * divisor)
    return np.where(new < 0.9 * v, new + divisor, new)


@dataclass(frozen=True)
class Scaled:
    """``base · multiplier`` before rounding: what ``32 * m`` is inside a builder."""

    base: int
    mult: "Multiplier"


class Multiplier:
    """A width multiplier left symbolic (see the module doc).

    ``at_least(1.0)`` is ``max(1, a)`` (MobileNet v2's last conv never narrows).
    """

    def __init__(self, name: str, low: float | None = None, _derived: dict | None = None):
        self.name, self.low = name, low
        self.derived = {} if _derived is None else _derived  # symbol name -> (base, divisor, min_value, low)

    def __rmul__(self, base):
        if isinstance(base, Multiplier) or not isinstance(base, (int, float)) or base != int(base):
            raise TypeError(f"a multiplier scales an integer channel count, got {base!r}")
        return Scaled(int(base), self)

    __mul__ = __rmul__

    def at_least(self, low: float) -> "Multiplier":
        return Multiplier(self.name, low, self.derived)

    def channels(self, base: int, divisor: int = 8, min_value: int | None = None):
        """``make_divisible(base·a)`` as ``divisor·symbol``."""
        tag = f"{self.name}{base}" + (f"_d{divisor}" if divisor != 8 else "") + \
              (f"_m{min_value}" if min_value is not None else "") + (f"_ge{self.low:g}".replace(".", "p")
                                                                     if self.low is not None else "")
        from cnngraph.ir.symbols import sym  # sympy: only a symbolic multiplier needs it

        self.derived[tag] = (base, divisor, min_value, self.low)
        return divisor * sym(tag)

    def values(self, a) -> dict:
        """Each derived symbol's value (channels / divisor) for an array of multiplier values."""
        import numpy as np

        a = np.asarray(a, dtype=np.float64)
        out = {}
        for tag, (base, divisor, min_value, low) in self.derived.items():
            m = a if low is None else np.maximum(low, a)
            out[tag] = make_divisible_np(base * m, divisor, min_value) / divisor
        return out

    def __repr__(self):
        return f"Multiplier({self.name!r})"


def at_least(mult, low: float):
    """``max(low, mult)`` for a number or a :class:`Multiplier`."""
    return mult.at_least(low) if isinstance(mult, Multiplier) else max(low, mult)
