"""Plots of costs with matplotlib (imported lazily): per-layer bars and a comparison of models.

* :func:`layer_bars` draws the seeds' AlexNet chart for any model: three panels of bars per
  layer — memory (KiB), params (k) and flop (M), in the slide table's units and convention
  (flop = multiply-adds + pooling operations; under ``count=()`` the panel is multiply-adds) —
  with one colour per kind of op (the diagrams' palette). Deep networks are drawn per block
  (``by="block"``) or per stage so the bars stay readable; ``by="auto"`` picks.
* :func:`zoo_scatter` compares models: multiply-adds against params on log axes, bubble area
  proportional to activation memory, each point labelled.

Output is deterministic (fixed SVG hash salt, no dates): the same data give the same bytes,
and every SVG carries a ``<!-- cnngraph-source KEY -->`` fingerprint of the data it shows.

>>> from cnngraph import zoo, analyze
>>> data = bars_data(analyze(zoo.build("alexnet")))
>>> data["labels"][:3], data["params"][0]
(['conv1', 'pool1', 'conv2'], 23.296)
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir import printer
from cnngraph.present.render import KIND_COLOURS, stamp

PLOT_VERSION = "4"  # bump when the drawing code changes
HIDDEN = ("act", "dropout", "input")
PANELS = (("memory", "memory (KiB)"), ("params", "params (k)"), ("flops", "flop (M)"))
_RC = {"svg.hashsalt": "cnngraph", "svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 8,
       "axes.spines.top": False, "axes.spines.right": False, "path.simplify": True}
_META = {"svg": {"Date": None, "Creator": "cnngraph"}, "pdf": {"CreationDate": None, "ModDate": None, "Creator": "cnngraph"},
         "png": {"Software": "cnngraph"}}


def _numeric(report):
    if not report.is_symbolic:
        return
    free = sorted({str(x) for v in report.total.items() if hasattr(v[1], "free_symbols") for x in v[1].free_symbols}
                  | {str(x) for s in report.input_shape if hasattr(s, "free_symbols") for x in s.free_symbols})
    if any(hasattr(s, "free_symbols") and s.free_symbols for s in report.input_shape):
        raise CnnGraphError(f"{report.name}: plots need numbers; the input {'×'.join(map(str, report.input_shape))} "
                            "is symbolic (give e.g. --input 3,224,224)")
    raise CnnGraphError(f"{report.name}: plots need numbers; the input is numeric but the model has symbolic "
                        f"sizes ({', '.join(free)}): build it with numbers through its options, e.g. -O width=64 "
                        "for a width parameter")


# ---------------------------------------------------------------- per-layer bars
def _group_key(row, by: str) -> str:
    """``layer``: the row; ``stage``: its first scope; ``block``: its scopes down to the first
    one that is not a stage (``layer3.5``, ``features.2.0``, ``Mixed_5b``), or the row itself
    when it sits directly in a stage."""
    if by == "layer" or not row.path:
        return row.title
    if by == "stage":
        return row.path[0][0]
    names = []
    for name, kind in row.path:
        names.append(name)
        if kind != "stage":
            return ".".join(names)
    return row.title  # a layer directly in a stage (a stem conv) is a bar of its own


def bars_data(report, by: str = "auto", max_bars: int = 64) -> dict:
    """The numbers a :func:`layer_bars` chart shows, in the slide table's units (JSON-able).

    ``by``: ``layer`` (one bar per layer, as the table), ``block`` (per block: ``layer3.2``, the
    scopes down to the first that is not a stage), ``stage`` (``layer3``) or ``auto`` (the
    finest of these with at most ``max_bars`` bars).
    Activations, dropout and the input are left out, as in the table.
    """
    _numeric(report)
    rows = [r for r in report.rows if r.kind not in HIDDEN]
    if by == "auto":
        for level in ("layer", "block", "stage"):
            if len({_group_key(r, level) for r in rows}) <= max_bars or level == "stage":
                by = level
                break
    if by not in ("layer", "block", "stage"):
        raise CnnGraphError(f"plot grouping must be layer, block, stage or auto, got {by!r}")
    groups: dict = {}
    for r in rows:
        groups.setdefault(_group_key(r, by), []).append(r)
    labels, kinds, memory, params, flops = [], [], [], [], []
    for key, rs in groups.items():
        labels.append(key)
        # A block's colour: its heaviest kind by multiply-adds (conv for a residual block).
        kinds.append(max(rs, key=lambda r: (r.macs, r.params, r.kind == "conv")).kind if len(rs) > 1 else rs[0].kind)
        memory.append(sum(r.memory_bytes for r in rs) / printer.KIB)
        params.append(sum(r.params for r in rs) / 1000)
        flops.append(sum(r.flops for r in rs) / 1e6)
    t = report.total
    conv = report.convention
    flop_label = "multiply-adds (M)" if (conv.flops_per_mac == 1 and not conv.count) else "flop (M)"
    return dict(name=report.name, by=by, flop_label=flop_label, input=[int(s) for s in report.input_shape], labels=labels, kinds=kinds,
                memory=memory, params=params, flops=flops,
                totals=dict(memory=t.memory_bytes / printer.KIB, params=t.params / 1000, flops=t.flops / 1e6),
                convention=str(report.convention))


def data_key(data: dict) -> str:
    """Fingerprint of a plot's data (and of this module's drawing version)."""
    text = json.dumps([PLOT_VERSION, data], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _compound_bars(ax, xs, heights, colour, width=0.8):
    """All bars of one colour as one path: a small SVG, however many layers."""
    import numpy as np
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MPath

    polys = [[(x - width / 2, 0), (x - width / 2, h), (x + width / 2, h), (x + width / 2, 0), (x - width / 2, 0)]
             for x, h in zip(xs, heights)]
    if not polys:
        return
    path = MPath.make_compound_path_from_polys(np.array(polys, dtype=float))
    ax.add_patch(PathPatch(path, facecolor=colour, edgecolor="#495057", linewidth=0.4))


def _fmt_total(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:,.2f}"


def draw_bars(data: dict):
    """A matplotlib Figure of :func:`bars_data` numbers: three panels sharing the x axis."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(data["labels"])
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(min(24.0, max(6.5, 1.5 + 0.17 * n)), 7.2), layout="constrained")
        axes = fig.subplots(3, 1, sharex=True)
        xs = list(range(n))
        kinds = data["kinds"]
        for ax, (field, title) in zip(axes, PANELS):
            values = data[field]
            for kind in dict.fromkeys(kinds):
                sel = [i for i in xs if kinds[i] == kind]
                _compound_bars(ax, sel, [values[i] for i in sel], KIND_COLOURS.get(kind, "#dee2e6"))
            ax.set_xlim(-0.7, n - 0.3)
            ax.set_ylim(0, max(values + [1e-9]) * 1.08)
            ax.set_ylabel(data.get("flop_label", title) if field == "flops" else title)
            ax.text(1.0, 1.0, f"total {_fmt_total(data['totals'][field])}", transform=ax.transAxes, ha="right", va="bottom")
            ax.grid(axis="y", color="#e9ecef", linewidth=0.6)
            ax.set_axisbelow(True)
        for ax in axes[:-1]:
            ax.tick_params(axis="x", bottom=False)
        size = 8 if n <= 30 else 6.5 if n <= 60 else 5
        axes[-1].set_xticks(xs, data["labels"], rotation=90, fontsize=size)
        shown = [k for k in KIND_COLOURS if k in kinds]
        axes[0].legend([Patch(facecolor=KIND_COLOURS[k], edgecolor="#495057", linewidth=0.4) for k in shown], shown,
                       loc="upper right", ncols=len(shown), frameon=False, fontsize=7, bbox_to_anchor=(1.0, 0.92))
        per = {"layer": "per layer", "block": "per block", "stage": "per stage"}[data["by"]]
        fig.suptitle(f"{data['name']} — input {'×'.join(map(str, data['input']))} — costs {per} "
                     f"(memory: every layer output written once, fp32; 1 KiB = 2^10 B)", fontsize=10)
    return fig


def save(fig, path, key: str | None = None) -> Path:
    """Save a figure as SVG, PNG or PDF (by suffix), deterministically; SVGs get ``key`` stamped."""
    import matplotlib

    from cnngraph.io.files import atomic_path, write_text

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in _META:
        raise CnnGraphError(f"cannot save a plot to {path.name!r}: use .svg, .png or .pdf")
    with matplotlib.rc_context(_RC):
        if fmt == "svg":
            import io

            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata=_META["svg"])
            text = buf.getvalue()
            text = compact(text)
            write_text(path, stamp(text, key) if key else text)
        else:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, metadata=_META[fmt], dpi=110)
    return path


def compact(svg: str) -> str:
    """matplotlib's SVG without indentation and with coordinates rounded to 0.1 pt."""
    import re

    from cnngraph.present.render import drop_unused_ids, round_geometry

    svg = drop_unused_ids(round_geometry(re.sub(r"\n[ \t]+", "\n", svg)))
    return re.sub(r"<g>\n(<use [^>]*/>)\n</g>", r"\1", svg)  # tick marks: one element each, not three


def layer_bars(report, path=None, by: str = "auto"):
    """Per-layer (or per-block) bars of memory, params and flop; saved to ``path`` if given.

    >>> from cnngraph import zoo, analyze
    >>> fig = layer_bars(analyze(zoo.build("alexnet")))
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['memory (KiB)', 'params (k)', 'flop (M)']
    """
    data = bars_data(report, by)
    fig = draw_bars(data)
    if path is not None:
        save(fig, path, data_key(data))
    return fig


# ---------------------------------------------------------------- comparison across models
def scatter_points(items) -> list:
    """Points from dicts with name, family, params, macs, memory (bytes); equal totals share a point."""
    points: dict = {}
    for e in items:
        key = (e["params"], e["macs"])
        if key in points:
            points[key]["names"].append(e["name"])
        else:
            points[key] = dict(names=[e["name"]], family=e["family"], params=e["params"] / 1e6, macs=e["macs"] / 1e9,
                               memory=e["memory"] / printer.MIB)
    return list(points.values())


def scatter_data(reports, families=None) -> dict:
    """Points of :func:`zoo_scatter`: one per distinct (params, MACs), names of equal models joined."""
    for r in reports:
        _numeric(r)
    items = [dict(name=r.name, family=(families or {}).get(r.name, ""), params=r.total.params, macs=r.total.macs,
                  memory=r.total.memory_bytes) for r in reports]
    return dict(points=scatter_points(items), version=PLOT_VERSION)


def _place_labels(ax, pts, radii, texts, fontsize):
    """Offsets (in points) for labels near their points, avoiding other labels and bubbles (greedy)."""
    fig = ax.figure
    k = fig.dpi / 72  # pixels per point
    h = fontsize * 1.3 * k
    xy = [tuple(ax.transData.transform(p)) for p in pts]
    widths = [0.58 * fontsize * k * len(t) for t in texts]
    # Bubbles are obstacles too (shrunk a little: a label may touch a big bubble's rim).
    taken = [(x - 0.7 * r, y - 0.7 * r, x + 0.7 * r, y + 0.7 * r) for (x, y), r in zip(xy, radii)]

    def overlap(a, b):
        return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))

    out = {}
    for i in sorted(range(len(pts)), key=lambda i: (xy[i][0], xy[i][1])):
        x, y = xy[i]
        r, w = radii[i] + 2 * k, widths[i]
        best = None
        for ring in (0, 1, 2, 3, 4, 6, 8):
            dy = ring * h
            for cx, cy in ((x + r, y - h / 2), (x - r - w, y - h / 2), (x - w / 2, y + r), (x - w / 2, y - r - h)):
                for sy in ((0,) if ring == 0 else (dy, -dy)):
                    box = (cx, cy + sy, cx + w, cy + sy + h)
                    own = [t for j, t in enumerate(taken) if j != i]
                    cost = sum(overlap(box, t) for t in own)
                    if best is None or cost < best[0]:
                        best = (cost, box)
                    if cost == 0:
                        break
                if best[0] == 0:
                    break
            if best[0] == 0:
                break
        box = best[1]
        taken.append(box)
        out[i] = ((box[0] - x) / k, (box[1] + h / 2 - y) / k)
    return out


def draw_scatter(data: dict, title: str = "cnngraph zoo: multiply-adds vs params"):
    import math

    import matplotlib
    from matplotlib.figure import Figure

    pts = data["points"]
    families = sorted({p["family"] for p in pts})
    with matplotlib.rc_context(_RC):
        cmap = matplotlib.colormaps["tab20"]
        colour = {f: cmap((2 * i) % 20 + (i // 10) % 2) for i, f in enumerate(families)}
        fig = Figure(figsize=(14, 10), dpi=100)
        ax = fig.add_axes([0.06, 0.06, 0.92, 0.89])  # fixed axes: label placement needs final transforms
        xs = [p["macs"] for p in pts]
        ys = [p["params"] for p in pts]
        mem_max = max([p["memory"] for p in pts] + [1e-9])
        sizes = [12 + 900 * p["memory"] / mem_max for p in pts]
        for f in families:
            sel = [i for i, p in enumerate(pts) if p["family"] == f]
            ax.scatter([xs[i] for i in sel], [ys[i] for i in sel], s=[sizes[i] for i in sel], color=colour[f], alpha=0.6,
                       edgecolors="#343a40", linewidths=0.5, label=f or "other")
        ax.set_xscale("log")
        ax.set_yscale("log")
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        for axis in (ax.xaxis, ax.yaxis):  # plain numbers (40, not 4×10¹) at 1, 2, 5 × 10ⁿ
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("multiply-adds (G), batch 1")
        ax.set_ylabel("params (M)")
        ax.set_title(title + " — bubble area ∝ activation memory (every layer output, fp32, batch 1)", fontsize=10)
        ax.grid(True, which="major", color="#e9ecef", linewidth=0.6)
        ax.set_axisbelow(True)
        if xs:
            ax.set_xlim(min(xs) / 1.6, max(xs) * 2.5)
            ax.set_ylim(min(ys) / 1.6, max(ys) * 1.6)
        texts = [", ".join(p["names"]) for p in pts]
        radii = [math.sqrt(s) / 2 * fig.dpi / 72 for s in sizes]
        offsets = _place_labels(ax, list(zip(xs, ys)), radii, texts, 6)
        for i, t in enumerate(texts):
            dx, dy = offsets[i]
            far = math.hypot(dx, dy) > math.sqrt(sizes[i]) / 2 + 14
            ax.annotate(t, (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", fontsize=6, va="center",
                        ha="left", color="#212529",
                        arrowprops=dict(arrowstyle="-", color="#adb5bd", linewidth=0.5, shrinkA=0, shrinkB=2) if far else None)
        leg = ax.legend(loc="upper left", fontsize=7, frameon=False, ncols=2 if len(families) > 10 else 1)
        for handle in leg.legend_handles:
            handle.set_sizes([30])
    return fig


def zoo_scatter(reports, path=None, families=None):
    """Params vs multiply-adds of several reports (bubble area: activation memory), labelled."""
    data = scatter_data(reports, families)
    from cnngraph import zoo

    everything = len(reports) >= len(zoo.names())
    fig = draw_scatter(data, "cnngraph zoo: multiply-adds vs params" if everything else
                       f"{len(reports)} models: multiply-adds vs params")
    if path is not None:
        save(fig, path, data_key(data))
    return fig


# ---------------------------------------------------------------- command line
