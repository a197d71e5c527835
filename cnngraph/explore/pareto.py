"""Pareto fronts of a sweep and their plots.

An objective is a column name, minimised, or ``max:NAME``, maximised. With costs alone every
objective is a cost, and the cheapest point beats all others; the useful fronts pair a cost
to pay with a quantity to buy: the most multiply-adds (work, capacity) per millisecond of
measured latency, the most parameters per multiply-add, the most multiply-adds per byte of
activation memory. (With an accuracy column the usual front is ``max:accuracy`` against a cost.)

>>> import numpy as np
>>> from cnngraph.explore.table import Table
>>> t = Table({"macs": np.array([3, 1, 2, 2]), "latency_ms": np.array([1.0, 3.0, 2.0, 2.5])})
>>> front(t, ("macs", "latency_ms")).tolist()  # row 3 is dominated by row 2
[1, 2, 0]
>>> front(t, ("latency_ms", "max:macs")).tolist()  # the most work per ms: row 0 beats them all
[0]
"""
from __future__ import annotations

import numpy as np

from cnngraph.ir.errors import CnnGraphError

LABELS = {"params": "parameters", "macs": "multiply-adds", "flops": "flop", "memory_bytes": "activation memory (B)",
          "latency_ms": "predicted latency (ms)", "measured_ms": "measured latency (ms)"}


def _column(o: str) -> tuple:
    return (o[4:], -1.0) if o.startswith("max:") else (o, 1.0)


def front(table, objectives=("macs", "latency_ms")) -> np.ndarray:
    """Rows of ``table`` no other row beats on every objective (lower is better; ``max:NAME``
    higher), ordered by the first objective. Rows with a NaN objective are left out."""
    cols = [_column(o) for o in objectives]
    missing = [c for c, _ in cols if c not in table]
    if missing:
        raise CnnGraphError(f"pareto: the table has no column {missing[0]!r} (columns: {', '.join(table.names)})")
    vals = np.stack([sign * np.asarray(table[c], dtype=np.float64) for c, sign in cols], axis=1)
    rows = np.nonzero(~np.isnan(vals).any(axis=1))[0]
    order = rows[np.lexsort(vals[rows].T[::-1])]
    kept: list = []
    for i in order:
        v = vals[i]
        if kept:
            k = vals[kept]
            if ((k <= v).all(axis=1) & (k < v).any(axis=1)).any() or (k == v).all(axis=1).any():
                continue
        kept.append(i)
    return np.array(kept, dtype=np.int64)


def plot_data(tables: dict, x: str, y: str, label: str | None = None) -> dict:
    """JSON-able data of a front plot: per named table, every point and its front."""
    series = []
    for name, t in tables.items():
        f = front(t, (x, y))
        series.append(dict(name=name, x=np.asarray(t[_column(x)[0]], float).tolist(),
                           y=np.asarray(t[_column(y)[0]], float).tolist(),
                           front=f.tolist(), label=(np.asarray(t[label]).tolist() if label and label in t else None)))
    return dict(x=x, y=y, series=series)


COLOURS = ["#1c7ed6", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599"]


def draw(data: dict, title: str = "", ax=None):
    """A scatter of every design point (faint) with its Pareto front (line) per series."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, s in enumerate(data["series"]):
        c = COLOURS[i % len(COLOURS)]
        x, y = np.array(s["x"]), np.array(s["y"])
        ax.scatter(x, y, s=6, color=c, alpha=0.25, linewidths=0, rasterized=False)
        f = np.array(s["front"], dtype=int)
        if len(f):
            ax.plot(x[f], y[f], "-o", color=c, markersize=3, linewidth=1.2, label=f"{s['name']} (front: {len(f)})")
    for axis, o in (("x", data["x"]), ("y", data["y"])):
        name, sign = _column(o)
        getattr(ax, f"set_{axis}label")(LABELS.get(name, name) + (" (more is better)" if sign < 0 else ""))
        if name in ("macs", "params", "flops", "memory_bytes"):
            getattr(ax, f"set_{axis}scale")("log")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig if fig is not None else ax.figure


def draw_panels(panels: list, title: str = ""):
    """Several front plots side by side: ``panels`` is a list of :func:`plot_data` results."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(panels)
    cols = min(n, 2)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 4.2 * rows), squeeze=False)
    for ax, d in zip(axes.ravel(), panels):
        draw(d, ax=ax)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def save_plot(fig, path, key: str | None = None):
    from cnngraph.present.plots import save

    return save(fig, path, key)


# ---------------------------------------------------------------- the gallery's design-space page
GALLERY_SPACES = [("mobilenet_v2", "a=0.35..1.4:0.05, r=96..224:32"), ("resnet50", "a=0.25..1:0.05, r=96..224:32"),
                  ("efficientnet_b0", "a=1..1.4:0.1, d=1..1.4:0.2, r=224..288:32")]


def gallery_data() -> dict:
    """Counted-cost fronts of the gallery's spaces (exact integers: the SVG is deterministic)."""
    from cnngraph.explore.sweep import sweep

    tables = {m: sweep(m, s) for m, s in GALLERY_SPACES}
    return dict(spaces=[f"{m}: {s}" for m, s in GALLERY_SPACES],
                panels=[plot_data(tables, "macs", "max:params"), plot_data(tables, "memory_bytes", "max:macs")])


def draw_gallery(data: dict):
    return draw_panels(data["panels"], "Pareto fronts of counted cost: the most parameters per multiply-add, "
                                       "the most multiply-adds per byte of activations")
