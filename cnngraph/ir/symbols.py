"""Standard symbols for symbolic shapes: positive integers, so sympy can simplify floors.

>>> from cnngraph.ir.symbols import C, H, W
>>> (C * H * W).is_positive
True
"""
from __future__ import annotations

import functools

import sympy


@functools.lru_cache(maxsize=None)
def sym(name: str) -> sympy.Symbol:
    """A positive integer symbol, the kind every size in cnngraph is made of.

    >>> sym("G") * 2
    2*G
    """
    return sympy.Symbol(name, integer=True, positive=True)


def symbols(names: str):
    """Several symbols at once: ``G, c = symbols("G c")``."""
    return tuple(sym(n) for n in names.replace(",", " ").split())


N, C, H, W, h, w, k, G, c, K = symbols("N C H W h w k G c K")
