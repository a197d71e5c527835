"""Heavy modules imported on first use: ``from cnngraph.ir.lazy import sympy`` gives a stand-in
that imports sympy the first time one of its names is read, so a module can write
``sympy.floor(...)`` in its symbolic branches and still be imported, and run on plain ints,
without sympy.

>>> from cnngraph.ir.lazy import sympy, loaded
>>> sympy.Integer(6) / 4
3/2
>>> loaded("sympy")
True
"""
from __future__ import annotations

import importlib
import sys


class LazyModule:
    """A module imported when one of its attributes is first read."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):  # only for names not read before: those are kept on the instance
        value = getattr(importlib.import_module(self._name), attr)
        setattr(self, attr, value)
        return value

    def __repr__(self):
        return f"<lazy module {self._name!r}{' (loaded)' if loaded(self._name) else ''}>"


def is_sym(x) -> bool:
    """``x`` is a sympy object. Never imports sympy: without sympy loaded there is none.

    >>> from cnngraph.ir.symbols import H
    >>> is_sym(H), is_sym(2 * H), is_sym(224)
    (True, True, False)
    """
    sp = sys.modules.get("sympy")
    return sp is not None and isinstance(x, sp.Basic)


def loaded(name: str) -> bool:
    """Whether module ``name`` has been imported (by anyone)."""
    return name in sys.modules


sympy = LazyModule("sympy")
