"""Sweep a model family over a design space: closed forms compiled once, evaluated on arrays.

For each value of the structural knobs (depth, kernel size, groups, expansion ratio) the
family is built once with its multiplier and size knobs left symbolic; :func:`analyze` gives
the totals as sympy expressions, which are compiled with ``lambdify`` to NumPy and evaluated
on every design point of that group at once. The rounding of multiplied widths happens in
NumPy before the polynomial (see :mod:`cnngraph.dsl.knobs`).

Where two rounded widths coincide at a point (MobileNet's 24·a and 32·a both round to 16 at
a = 0.5) the model may change structure (a shortcut appears), so such multiplier values get a
closed form of their own: built with the multipliers as numbers and the sizes symbolic.

>>> t = sweep("resnet50", "a=0.5|1, r=224")
>>> t["macs"].tolist()  # resnet50 at 224: 4,089,184,256 MACs
[1052311552, 4089184256]
>>> check(t, "resnet50", n=2)
2
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import sympy

from cnngraph.analysis.cost import Convention, analyze
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.symbols import sym
from cnngraph.explore.families import Family, family
from cnngraph.dsl.knobs import Multiplier
from cnngraph.explore.space import Space, as_space
from cnngraph.explore.table import Table

FIELDS = ("params", "macs", "flops", "memory_bytes")
CHUNK = 1 << 15  # design points per NumPy evaluation (see ClosedForm.__call__)


@dataclass
class ClosedForm:
    """The totals of one graph of a family as compiled functions of its symbols."""

    exprs: dict  # field -> sympy expression
    args: list  # symbol names, in the compiled function's order
    fn: object
    multipliers: dict  # knob -> Multiplier (its derived symbols)
    sizes: list  # size knobs

    def __call__(self, columns: dict, n: int) -> dict:
        """Totals (int64 arrays of length ``n``) for knob columns (arrays).

        Evaluated in chunks of :data:`CHUNK` points: the temporaries of one chunk stay in
        cache and are reused, where whole-array temporaries of millions of points would each
        be fresh memory (page faults cost more than the arithmetic)."""
        out = {f: np.empty(n, np.int64) for f in self.exprs}
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            env = {k: np.asarray(columns[k][lo:hi], dtype=np.float64) for k in self.sizes}
            for k, m in self.multipliers.items():
                env.update(m.values(columns[k][lo:hi]))
            for f, v in zip(self.exprs, self.fn(*[env[a] for a in self.args])):
                out[f][lo:hi] = np.rint(v)
        return out

    def symbolic(self, field: str = "macs"):
        return self.exprs[field]


def closed_form(fam: Family, symbolic: dict, fixed: dict, convention: Convention | None = None,
                fields=FIELDS) -> ClosedForm:
    """Build ``fam`` once with the knobs of ``symbolic`` (knob -> kind) as symbols and the
    knobs of ``fixed`` as numbers; compile its totals."""
    point, mults, sizes = dict(fixed), {}, []
    for k, kind in symbolic.items():
        if kind == "multiplier":
            point[k] = mults[k] = Multiplier(k)
        else:
            point[k] = sym(k)
            sizes.append(k)
    report = analyze(fam.build(**point), convention=convention)
    exprs = {f: sympy.sympify(getattr(report.total, f)) for f in fields}
    free = sorted(set().union(*(e.free_symbols for e in exprs.values())), key=lambda s: s.name)
    fn = sympy.lambdify(free, list(exprs.values()), modules="numpy", cse=True)
    return ClosedForm(exprs, [s.name for s in free], fn, mults, sizes)


def _collisions(form: ClosedForm, columns: dict, index: np.ndarray):
    """Rows of ``index`` whose rounded widths coincide (two derived symbols equal)."""
    if not form.multipliers:
        return np.zeros(len(index), bool)
    vals = {}
    for k, m in form.multipliers.items():
        vals.update(m.values(columns[k][index]))
    if len(vals) < 2:
        return np.zeros(len(index), bool)
    stack = np.sort(np.stack(list(vals.values()), axis=1), axis=1)
    return (np.diff(stack, axis=1) == 0).any(axis=1)


def evaluate(fam: Family, points: dict, convention: Convention | None = None, fields=FIELDS, stats: dict | None = None):
    """Totals of ``fam`` at every design point of ``points`` (knob -> array): field -> int64 array."""
    n = len(next(iter(points.values())))
    kinds = {k: fam.kind(k) for k in points}
    symbolic = {k: v for k, v in kinds.items() if v != "structural"}
    structural = [k for k, v in kinds.items() if v == "structural"]
    out = {f: np.empty(n, np.int64) for f in fields}
    stats = {} if stats is None else stats
    for k in ("graphs", "derive_s", "eval_s"):
        stats.setdefault(k, 0)
    if structural:
        keys = np.stack([np.asarray(points[k], dtype=np.float64) for k in structural], axis=1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        groups = [(dict(zip(structural, map(_num, u))), np.nonzero(inverse == i)[0]) for i, u in enumerate(uniq)]
    else:
        groups = [({}, np.arange(n))]
    for fixed, index in groups:
        t0 = time.perf_counter()
        form = closed_form(fam, symbolic, fixed, convention, fields)
        stats["graphs"] += 1
        clash = _collisions(form, points, index)
        parts = [(form, index[~clash])]
        if clash.any():
            mk = list(form.multipliers)
            sub = index[clash]
            keys = np.stack([points[k][sub] for k in mk], axis=1)
            uniq, inv = np.unique(keys, axis=0, return_inverse=True)
            inv = inv.ravel()
            rest = {k: v for k, v in symbolic.items() if k not in mk}
            for i, u in enumerate(uniq):
                parts.append((closed_form(fam, rest, {**fixed, **dict(zip(mk, map(_num, u)))}, convention, fields),
                              sub[inv == i]))
                stats["graphs"] += 1
        t2 = time.perf_counter()
        for f_, idx in parts:
            if len(idx):
                whole = len(idx) == n
                vals = f_(points if whole else {k: points[k][idx] for k in symbolic}, len(idx))
                for f in fields:
                    if whole:
                        out[f] = np.ascontiguousarray(vals[f])
                    else:
                        out[f][idx] = vals[f]
        t3 = time.perf_counter()
        stats["derive_s"] += t2 - t0  # the group's closed form and any for coinciding widths
        stats["eval_s"] += t3 - t2
    return out


def _num(v):
    v = float(v)
    return int(v) if v.is_integer() else v


def points_of(space: Space, samples: int | None = None, seed: int = 0) -> dict:
    return space.grid() if samples is None else space.sample(samples, seed)


def sweep(builder, space, samples: int | None = None, seed: int = 0, kinds: dict | None = None,
          convention: Convention | None = None, fields=FIELDS) -> Table:
    """Costs of ``builder`` (a zoo name, a :class:`Family` or a function of the knobs) at every
    point of ``space`` (a grid, or ``samples`` random points).

    ``space`` is a :class:`Space`, a string in the grammar of :mod:`cnngraph.explore.space`
    or a dict of value lists. Returns a :class:`Table`: one column per knob, then ``fields``.
    """
    fam = family(builder, kinds)
    space = as_space(space)
    t0 = time.perf_counter()
    points = points_of(space, samples, seed)
    stats: dict = {}
    totals = evaluate(fam, points, convention, fields, stats)
    dt = time.perf_counter() - t0
    n = len(next(iter(points.values())))
    meta = dict(model=fam.name, space=str(space), points=n, samples=samples, seed=seed,
                kinds={k: fam.kind(k) for k in space.knobs}, graphs_built=stats["graphs"], seconds=round(dt, 4),
                derive_seconds=round(stats["derive_s"], 4), eval_seconds=round(stats["eval_s"], 4),
                convention=str(convention or Convention()))
    return Table({**points, **totals}, meta)


def knob_columns(table: Table) -> list:
    """The knob columns of a sweep's table (not costs, not latencies)."""
    return [k for k in table.names if k not in FIELDS and not k.startswith(("latency", "measured"))]


def check(table: Table, builder, n: int = 5, seed: int = 0, kinds: dict | None = None,
          convention: Convention | None = None) -> int:
    """Build and analyze the graph at ``n`` random rows of ``table``; raise if any total differs.

    Returns the number of rows checked.
    """
    fam = family(builder, kinds)
    knobs = knob_columns(table)
    fields = [f for f in FIELDS if f in table]
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(table), size=min(n, len(table)), replace=False)
    for i in rows:
        row = table.row(int(i))
        got = analyze(fam.build(**{k: row[k] for k in knobs}), convention=convention).total
        for f in fields:
            if getattr(got, f) != row[f]:
                at = ", ".join(f"{k}={row[k]}" for k in knobs)
                raise CnnGraphError(f"{fam.name} at {at}: {f} {row[f]:,} from the closed form ≠ "
                                    f"{getattr(got, f):,} from analyze()")
    return len(rows)
