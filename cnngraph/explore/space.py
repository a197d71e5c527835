"""Design spaces: named knobs and their values, parsed from a small strict grammar.

    space  := item ("," item)*
    item   := NAME "=" values
    values := NUM ".." NUM [":" NUM]        a range, both ends included (step 1 by default)
            | NUM ("|" NUM)*                 a list
    NUM    := an int or a decimal (1, 0.25, 1e3 is not allowed)

Nothing is evaluated: numbers are read as exact decimals, so ``0.25..2:0.05`` has exactly
36 values and ``0.3`` is the float nearest 3/10, not ``0.25 + 0.05`` rounded differently.

>>> s = parse_space("a=0.25..2:0.05, d=1..4, r=128..320:32")
>>> [len(v) for v in s.knobs.values()], s.size
([36, 4, 7], 1008)
>>> parse_space("k=3|5|7").knobs["k"].tolist()
[3, 5, 7]
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from cnngraph.ir.errors import CnnGraphError

_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")
_NUM = re.compile(r"-?\d+(\.\d+)?\Z")
MAX_VALUES = 10_000_000


def _num(text: str, item: str) -> Decimal:
    t = text.strip()
    if not _NUM.match(t):
        raise CnnGraphError(f"--space {item!r}: {t!r} is not a number (ints and decimals only)")
    try:
        return Decimal(t)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise CnnGraphError(f"--space {item!r}: {t!r} is not a number") from None


def _values(text: str, item: str) -> np.ndarray:
    if ".." in text:
        lo_t, rest = text.split("..", 1)
        hi_t, step_t = rest.split(":", 1) if ":" in rest else (rest, "1")
        lo, hi, step = _num(lo_t, item), _num(hi_t, item), _num(step_t, item)
        if step <= 0 or hi < lo:
            raise CnnGraphError(f"--space {item!r}: a range needs low ≤ high and a positive step "
                                f"(got {lo}..{hi}:{step})")
        n = int((hi - lo) / step) + 1
        if n > MAX_VALUES:
            raise CnnGraphError(f"--space {item!r}: {n:,} values, more than {MAX_VALUES:,}")
        vals = [lo + i * step for i in range(n)]
    else:
        vals = [_num(v, item) for v in text.split("|")]
    if all(v == v.to_integral_value() for v in vals):
        return np.array([int(v) for v in vals], dtype=np.int64)
    return np.array([float(v) for v in vals], dtype=np.float64)


@dataclass
class Space:
    """Knob name -> the values it takes (NumPy arrays, in the order given)."""

    knobs: dict

    @property
    def size(self) -> int:
        n = 1
        for v in self.knobs.values():
            n *= len(v)
        return n

    def grid(self) -> dict:
        """Every combination: knob -> array of length :attr:`size` (last knob fastest)."""
        mesh = np.meshgrid(*self.knobs.values(), indexing="ij")
        return {k: m.ravel() for k, m in zip(self.knobs, mesh)}

    def sample(self, n: int, seed: int = 0) -> dict:
        """``n`` random design points, each knob drawn uniformly from its values."""
        rng = np.random.default_rng(seed)
        return {k: v[rng.integers(0, len(v), n)] for k, v in self.knobs.items()}

    def __str__(self):
        def show(v):
            return f"{v[0]}..{v[-1]} ({len(v)} values)" if len(v) > 4 else "|".join(map(str, v.tolist()))

        return ", ".join(f"{k}={show(v)}" for k, v in self.knobs.items())


def parse_space(text: str) -> Space:
    """A :class:`Space` from ``"a=0.25..2:0.05, d=1..4, r=128..320:32"`` (see the module doc)."""
    knobs: dict = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if "=" not in item:
            raise CnnGraphError(f"--space {item!r}: each knob must look like name=low..high[:step] or name=v1|v2")
        name, values = (s.strip() for s in item.split("=", 1))
        if not _NAME.match(name):
            raise CnnGraphError(f"--space {item!r}: {name!r} is not a knob name (letters, digits, _)")
        if name in knobs:
            raise CnnGraphError(f"--space: knob {name!r} given twice")
        knobs[name] = _values(values, item)
    if not knobs:
        raise CnnGraphError("--space is empty; give knobs like 'a=0.25..2:0.05, r=128..320:32'")
    return Space(knobs)


def as_space(space) -> Space:
    """A :class:`Space` from a Space, a grammar string or a dict of value lists."""
    if isinstance(space, Space):
        return space
    if isinstance(space, str):
        return parse_space(space)
    return Space({k: np.asarray(v) for k, v in dict(space).items()})
