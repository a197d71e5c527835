"""Side-by-side comparison of models: params, multiply-adds, activation memory and their closed
forms, as text, Markdown, LaTeX or JSON, and a grouped bar chart.

Memory here is the table's: every layer output written once, fp32 unless the convention says
otherwise, in bytes (JSON) or MiB (text); :func:`cnngraph.ir.printer.memory_note` says so
under every format.

>>> from cnngraph import zoo, analyze
>>> rows = compare_rows([analyze(zoo.build("resnet18")), analyze(zoo.build("resnet34"))])
>>> [r["params"] for r in rows]
[11689512, 21797672]
"""
from __future__ import annotations

import json

import sympy

from cnngraph.ir import printer

MEMORY_NOTE = printer.memory_note("activations")
HEAD = ["model", "input", "params (M)", "MACs (G)", "memory (MiB)"]


def compare_rows(reports) -> list:
    """One dict per report: name, input, params, macs, memory_bytes (ints or sympy expressions)."""
    return [dict(name=r.name, input=r.input_shape, params=r.total.params, macs=r.total.macs,
                 memory_bytes=r.total.memory_bytes) for r in reports]


def _cell(v, unit, fmt):
    if isinstance(v, sympy.Basic) and not v.is_Number:
        e = sympy.expand(v / unit)
        e = sum((sympy.Float(f"{float(c):.3g}") if not c.is_Integer else c) * m
                for m, c in e.as_coefficients_dict().items())
        return printer.latex(e) if fmt == "latex" else printer.text(e)
    return f"{float(v) / unit:.3f}" if float(v) / unit < 10 else f"{float(v) / unit:.1f}"


def render(rows, fmt: str = "text") -> str:
    """The comparison as ``text``, ``markdown``, ``latex`` or ``json``."""
    if fmt == "json":
        def js(v):
            return int(v) if isinstance(v, int) or (isinstance(v, sympy.Basic) and v.is_Integer) else str(v)
        return json.dumps({"memory": MEMORY_NOTE, "models": [
            {k: (list(map(js, v)) if k == "input" else js(v) if k != "name" else v) for k, v in r.items()}
            for r in rows]}, indent=1) + "\n"
    body = [[r["name"], "×".join(printer.text(s) if fmt != "latex" else printer.latex(s) for s in r["input"]),
             _cell(r["params"], 10**6, fmt), _cell(r["macs"], 10**9, fmt), _cell(r["memory_bytes"], printer.MIB, fmt)]
            for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(HEAD) + " |", "|---|---|---:|---:|---:|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines + ["", MEMORY_NOTE]) + "\n"
    if fmt == "latex":
        def esc(s):
            s = str(s).replace("_", r"\_")
            return s if "\\" in s and "_" not in str(s) else s.replace("×", r"$\times$")
        lines = [r"\begin{tabular}{llrrr}", r"\hline", " & ".join(HEAD) + r" \\", r"\hline"]
        lines += [" & ".join(esc(c) if i < 2 else f"${c}$" for i, c in enumerate(row)) + r" \\" for row in body]
        return "\n".join(lines + [r"\hline", r"\end{tabular}", "% " + MEMORY_NOTE]) + "\n"
    if fmt == "text":
        widths = [max(len(str(x)) for x in col) for col in zip(HEAD, *body)]
        line = lambda cells: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)  # noqa: E731
                                      for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        return "\n".join([line(HEAD)] + [line(row) for row in body] + [MEMORY_NOTE]) + "\n"
    raise ValueError(f"unknown format {fmt!r}: use text, markdown, latex or json")


def bars(rows, path):
    """Grouped bar chart: one group per quantity (params, MACs, memory), one bar per model, each
    bar relative to the largest model of its group and labelled with its value."""
    import matplotlib
    from matplotlib.figure import Figure

    from cnngraph.present.plots import _RC, save

    if any(isinstance(r[k], sympy.Basic) and not r[k].is_Number for r in rows for k in ("params", "macs")):
        from cnngraph.ir.errors import CnnGraphError

        raise CnnGraphError("a bar chart needs numbers: give a numeric --input (e.g. 3,224,224)")
    groups = [("params", 10**6, "M"), ("macs", 10**9, "G MAC"), ("memory_bytes", printer.MIB, "MiB")]
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(2.2 + 1.6 * len(rows), 4), dpi=100)
        ax = fig.add_subplot()
        width = 0.8 / len(rows)
        cmap = matplotlib.colormaps["tab10"]
        for i, r in enumerate(rows):
            xs, hs, texts = [], [], []
            for j, (key, unit, label) in enumerate(groups):
                top = max(float(q[key]) for q in rows) or 1.0
                xs.append(j + (i - (len(rows) - 1) / 2) * width)
                hs.append(float(r[key]) / top)
                texts.append(f"{float(r[key]) / unit:.3g}")
            bars_ = ax.bar(xs, hs, width * 0.95, color=cmap(i % 10), label=r["name"])
            for b, t in zip(bars_, texts):
                ax.annotate(t, (b.get_x() + b.get_width() / 2, b.get_height()), xytext=(0, 2),
                            textcoords="offset points", ha="center", fontsize=7)
        ax.set_xticks(range(len(groups)), ["params (M)", "multiply-adds (G)", "activation memory (MiB)"])
        ax.set_ylabel("relative to the largest")
        ax.set_ylim(0, 1.15)
        ax.set_title(" vs ".join(r["name"] for r in rows), fontsize=10)
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
        fig.tight_layout()
    return save(fig, path)
