"""Per-layer tables of a :class:`~cnngraph.analysis.cost.Report`: text, Markdown, CSV, LaTeX, JSON.

Two unit styles: ``slides`` (memory in KiB, params in thousands, flop in millions, rounded
like the lecture tables) and ``exact`` (bytes, params, MACs, flops as full integers).

>>> from cnngraph import zoo, analyze
>>> md = analyze(zoo.build("alexnet")).to("markdown")
>>> "| conv1 | 3 | 227 | 64 | 11 | 4 | 2 | 64 | 56 | 784 | 23 | 73 |" in md
True
"""
from __future__ import annotations

import csv
import io
import json
import math
import re

from cnngraph.ir import ops, printer
from cnngraph.ir.lazy import sympy  # imported where a value is symbolic

HIDDEN_BY_DEFAULT = ("act", "dropout", "input")

SLIDE_HEAD = ["Layer", "C in", "H/W in", "filters", "kernel", "stride", "pad", "C out", "H/W out",
              "memory (KiB)", "params (k)", "flop (M)"]
EXACT_HEAD = ["Layer", "op", "input", "output", "params", "buffers", "MACs", "other ops", "flops", "memory (B)", "share"]


def _expr(v, syntax="text"):
    """A symbolic cell as the one printer writes it in ``syntax``: ``18HWC²`` (text), ``18*H*W*C**2``
    (plain: CSV and JSON, what a spreadsheet or ``sympy.sympify`` reads), ``$18 H W C^{2}$``
    (latex); numbers stay numbers."""
    if ops.is_sym(v) and not v.is_Number:
        out = printer.size(v, syntax)
        return f"${out}$" if syntax == "latex" else out
    return v


def _decimal(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, no exponent, trailing zeros dropped:
    0.52, 0.0276, 0.000085, 1.5."""
    if x == 0:
        return "0"
    places = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    out = f"{x:.{places}f}"
    return out.rstrip("0").rstrip(".") if "." in out else out


def _round(v, unit, syntax="text"):
    """Value in ``unit`` as the slides print it: an integer (half up) from 10 up; below 10 the
    three significant digits it needs (LeNet's conv1 is 0.52 k params, not 1); a symbolic value
    as a polynomial with decimal coefficients (``0.0276C``), through the one printer."""
    if ops.is_sym(v) and not v.is_Number:
        e = sympy.expand(v / unit)
        terms = []
        for mono, coeff in e.as_coefficients_dict().items():
            c = float(coeff)
            c = int(c + 0.5) if abs(c) >= 10 else float(_decimal(c))
            terms.append((sympy.Integer(c) if float(c).is_integer() else sympy.Float(_decimal(c))) * mono)
        out = printer.render(sympy.Add(*terms), syntax)
        return f"${out}$" if syntax == "latex" else out
    x = float(v) / unit
    if abs(x) >= 10:
        return int(x + 0.5)
    out = _decimal(x)
    return int(out) if out.lstrip("-").isdigit() else out


def _hw(shape, syntax="text"):
    if len(shape) == 3:
        h, w = shape[1], shape[2]
        if ops.same(h, w):
            return _expr(h, syntax)
        out = printer.shape((h, w), syntax)
        return f"${out}$" if syntax == "latex" else out
    return ""


def _shape(dims, syntax):
    out = printer.shape(dims, syntax)
    return f"${out}$" if syntax == "latex" else out


def _pad(p):
    t, l, b, r = p
    if t == l == b == r:
        return t
    if t == b and l == r:
        return f"{t},{l}"
    return ",".join(map(str, p))


def slide_cells(r, syntax="text"):
    """One row of the slides' table; ``syntax`` is the printer's (text, plain or latex)."""
    a = r.attrs
    x = r.input_shapes[0] if r.input_shapes else ()
    filters = kernel = stride = pad = ""
    entry = ops.get(r.op)  # the registry says which attribute is the width and which ops slide a window
    if entry.filters:
        filters = _expr(a[entry.filters], syntax)
    if entry.window:
        w = entry.window(a)
        kernel = w.kernel[0] if w.kernel[0] == w.kernel[1] else f"{w.kernel[0]}x{w.kernel[1]}"
        stride, pad = w.stride[0], _pad(w.padding)
    c_in = _expr(x[0], syntax) if x else ""
    c_out = _expr(r.output_shape[0], syntax)
    return [r.title, c_in, _hw(x, syntax), filters, kernel, stride, pad, c_out, _hw(r.output_shape, syntax),
            _round(r.costs.memory_bytes, printer.KIB, syntax), _round(r.costs.params, 1000, syntax),
            _round(r.costs.flops, 10**6, syntax)]


def exact_cells(report, r, syntax="text"):
    """One row of the exact table; ``syntax`` is the printer's (text, plain or latex)."""
    share = report.share(r, "flops")
    share = f"{100 * share:.1f}%" if isinstance(share, float) else _expr(share, syntax)
    e = lambda v: _expr(v, syntax)
    return [r.title, r.op, " + ".join(_shape(s, syntax) for s in r.input_shapes), _shape(r.output_shape, syntax),
            e(r.params), e(r.buffers), e(r.macs), e(r.ops), e(r.flops), e(r.memory_bytes), share]


def _rows(report, style, hide, receptive=None, syntax="text"):
    rows = [r for r in report.rows if r.kind not in hide]
    if style == "slides":
        head, body = SLIDE_HEAD, [slide_cells(r, syntax) for r in rows]
    else:
        head, body = EXACT_HEAD, [exact_cells(report, r, syntax) for r in rows]
    if receptive is not None:  # optional receptive-field column: {node: label}, cnngraph.analysis.receptive.column(g)
        head, body = head + ["RF"], [cells + [receptive.get(r.name, "")] for cells, r in zip(body, rows)]
    return head, body


def _total_cells(report, style, syntax="text"):
    t = report.total
    if style == "slides":
        return ["total"] + [""] * 8 + [_round(t.memory_bytes, printer.KIB, syntax), _round(t.params, 1000, syntax),
                                       _round(t.flops, 10**6, syntax)]
    e = lambda v: _expr(v, syntax)
    return ["total", "", "", "", e(t.params), e(t.buffers), e(t.macs), e(t.ops), e(t.flops), e(t.memory_bytes), "100%"]


GROUP_HEAD = ["Group", "params", "MACs", "flops", "memory (B)", "share of flops"]


def _group_rows(report, depth, syntax="text"):
    e = lambda v: _expr(v, syntax)
    body = []
    for name, t in report.groups(depth).items():
        share = report.share_of(t.flops, "flops")
        share = f"{100 * share:.1f}%" if isinstance(share, float) else e(share)
        body.append([name, e(t.params), e(t.macs), e(t.flops), e(t.memory_bytes), share])
    t = report.total
    return body + [["total", e(t.params), e(t.macs), e(t.flops), e(t.memory_bytes), "100%"]]


def render(report, fmt: str = "text", style: str = "slides", hide=HIDDEN_BY_DEFAULT, groups: int = 0,
           receptive=None) -> str:
    """The report as ``text``, ``markdown``, ``csv``, ``latex`` or ``json``.

    ``style="groups"`` tabulates totals per group instead of per layer: ``groups=1`` per stage
    (``layer3``), ``groups=2`` per block (``layer3.2``). ``receptive`` (``{node: label}``, from
    :func:`cnngraph.analysis.receptive.column`) adds a receptive-field column to the per-layer tables.
    """
    if fmt == "json":
        return to_json(report)
    # CSV cells in the plain syntax a spreadsheet or sympy reads back, LaTeX cells in math mode
    syntax = {"csv": "plain", "latex": "latex"}.get(fmt, "text")
    if style == "groups":
        head, body = GROUP_HEAD, _group_rows(report, groups or 1, syntax)
    else:
        head, body = _rows(report, style, set(hide), receptive, syntax)
        body = body + [_total_cells(report, style, syntax) + ([""] if receptive is not None else [])]
    title = f"{report.name} — input {ops.fmt_shape(report.input_shape)}"
    foot = f"Convention: {report.convention}"
    memory = printer.memory_note("activations")
    if fmt == "markdown":
        lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
        return "\n".join(lines + ["", foot, "", memory] + [f"- {n}" for n in summarize_notes(report.notes, _titles(report))]) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(head)
        w.writerows([str(c).replace("×", "x") for c in row] for row in body)  # plain ASCII for spreadsheets
        return buf.getvalue()
    if fmt == "latex":
        def esc(s):
            s = str(s)
            if len(s) > 1 and s[0] == s[-1] == "$":  # a formula in math mode, from the printer
                return s
            return s.replace("_", r"\_").replace("%", r"\%").replace("×", r"$\times$").replace("·", r"$\cdot$")
        lines = [r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}", r"\hline",
                 " & ".join(esc(h) for h in head) + r" \\", r"\hline"]
        lines += [" & ".join(esc(c) for c in row) + r" \\" for row in body[:-1]]
        lines += [r"\hline", " & ".join(esc(c) for c in body[-1]) + r" \\", r"\hline", r"\end{tabular}",
                  "% " + foot, "% " + memory]
        return "\n".join(lines) + "\n"
    if fmt == "text":
        return _rich_text(title, head, body, foot, [memory] + summarize_notes(report.notes, _titles(report)))
    raise ValueError(f"unknown table format {fmt!r}: use text, markdown, csv, latex or json")


_FIT = re.compile(r"(?P<layer>[^:]+): (?P<rule>.*?) along (?P<axis>\w+) \(\((?P<L>\d+) \+ (?P<P>\d+) − (?P<K>\d+)\) / "
                  r"(?P<S>\d+) = (?P<room>\d+)/\d+ is not an integer\); (?P<tail>.*)")


def _fit_item(m, name) -> tuple[bool, str]:
    """(routine?, the arithmetic): routine when the floor gives ⌈L/S⌉, the size the layer is
    meant to give (a stride-2 layer with 'same' padding on an even size: ResNet's 7×7/2 stem)."""
    L, P, K, S, room = (int(m[k]) for k in ("L", "P", "K", "S", "room"))
    out = room // S + 1
    top = f"({L} + {P} − {K})" if P else f"({L} − {K})"
    text = f"{name}: {top}/{S} = {_decimal(room / S, 6)}, floored to {room // S}, so {out} outputs"
    return out == -(-L // S), text


def _titles(report) -> dict:
    return {r.name: r.title for r in report.rows}


def summarize_notes(notes, titles=None) -> list:
    """The notes, one line each, under the names the table's rows use (``titles``: node -> row name).

    A stride that does not fit is explained with its arithmetic (``pool1: (56 − 3)/2 = 26.5,
    floored to 26, so 27 outputs``); when the floor only drops a half and the output is ⌈L/S⌉
    (routine for stride-2 layers with 'same' padding), the layers share one line. A layer whose H
    and W notes are the same is named once.
    """
    titles = titles or {}
    routine, special, other = [], [], []
    for n in notes:
        m = _FIT.match(n)
        if not m:
            if n not in other:
                other.append(n)
            continue
        name = titles.get(m["layer"], m["layer"])
        is_routine, text = _fit_item(m, name)
        if is_routine and name not in routine:
            routine.append(name)
        elif not is_routine and text not in special:
            special.append(text)
    out = []
    if routine:
        out.append("stride 2 with 'same' padding on an even size drops a half, as intended (output = input/stride, "
                   f"floored as PyTorch does) at: {', '.join(routine)}")
    if special:
        out.append("stride does not fit the padded input, output size floored: " + "; ".join(special))
    return out + other


# What rich would read as markup (``[bold]``) or an emoji code (``:smile:``): such text goes to rich.
_RICH_SYNTAX = re.compile(r"\[|:\S*?:|\t|\r")
TEXT_WIDTH = 200  # the text table's console width


def _wrap(line: str, width: int) -> list:
    """``line`` word-wrapped to ``width`` columns as rich wraps it: words keep the spaces after
    them, a line's trailing spaces are cut only where they pass ``width``, a word longer than
    ``width`` is folded."""
    out, cur = [], ""
    for word in re.findall(r"\s*\S+\s*", line) or [line]:
        if len(cur) + len(word.rstrip()) <= width:
            cur += word
            continue
        if cur:
            out.append(cur)
        if len(word.rstrip()) > width:  # folded into pieces of ``width``, the last one continues
            pieces = [word[i:i + width] for i in range(0, len(word), width)]
            out += pieces[:-1]
            word = pieces[-1]
        cur = word
    out.append(cur)
    return [ln[:width] + ln[width:].lstrip() if len(ln) > width else ln for ln in out]


def _center(text: str, width: int) -> list:
    """``text`` wrapped to ``width`` and each line centred in it (a table's title and caption)."""
    lines = []
    for ln in _wrap(text, width):
        ln = ln.rstrip()[:width]
        left = (width - len(ln)) // 2
        lines.append(" " * left + ln + " " * (width - len(ln) - left))
    return lines


def _box_text(title, head, body, foot, notes, width=TEXT_WIDTH):
    """The table as rich draws it (heavy head, right-aligned numbers, a rule above the total,
    centred title and caption, notes wrapped under it), written directly: rich's layout takes
    a quarter of a second for ResNet-50. None when rich is needed: the table is wider than
    ``width`` (rich shrinks and wraps columns), a cell spans lines or is wider than its
    length, or a text holds what rich reads as markup or an emoji code."""
    from rich.cells import cell_len

    rows = [[str(c) for c in head]] + [[str(c) for c in row] for row in body]
    texts = [c for row in rows for c in row] + [title, foot] + list(notes)
    if len(body) < 2 or any("\n" in t or cell_len(t) != len(t) or _RICH_SYNTAX.search(t) for t in texts):
        return None
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    inner = sum(w + 2 for w in widths) + len(widths) - 1
    if inner + 2 > width:
        return None

    def rule(left, fill, cross, right):
        return left + cross.join(fill * (w + 2) for w in widths) + right

    def line(cells, bar):
        parts = [f" {c.ljust(w) if i == 0 else c.rjust(w)} " for i, (c, w) in enumerate(zip(cells, widths))]
        return bar + bar.join(parts) + bar

    out = _center(title, inner + 2)
    out += [rule("┏", "━", "┳", "┓"), line(rows[0], "┃"), rule("┡", "━", "╇", "┩")]
    out += [line(r, "│") for r in rows[1:-1]]
    out += [rule("├", "─", "┼", "┤"), line(rows[-1], "│"), rule("└", "─", "┴", "┘")]
    out += _center(foot, inner + 2)
    for n in notes:
        out += _wrap(f"note: {n}", width)
    return "\n".join(out) + "\n"


def _rich_text(title, head, body, foot, notes):
    fast = _box_text(title, head, body, foot, notes)
    if fast is not None:
        return fast
    return _rich_table(title, head, body, foot, notes)


def _rich_table(title, head, body, foot, notes):
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, caption=foot, show_lines=False)
    for i, h in enumerate(head):
        t.add_column(h, justify="left" if i == 0 else "right")
    for row in body[:-1]:
        t.add_row(*(str(c) for c in row))
    t.add_section()
    t.add_row(*(str(c) for c in body[-1]), style="bold")
    console = Console(file=io.StringIO(), width=TEXT_WIDTH, record=True, color_system=None)
    console.print(t)
    for n in notes:
        console.print(f"note: {n}")
    return console.export_text()


def _jsonable(v):
    if ops.is_sym(v):
        return int(v) if v.is_Integer else str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def to_dict(report) -> dict:
    rows = []
    for r in report.rows:
        rows.append(dict(name=r.name, title=r.title, op=r.op, kind=r.kind, path=[p for p, _ in r.path],
                         input_shape=_jsonable([list(s) for s in r.input_shapes]), output_shape=_jsonable(list(r.output_shape)),
                         attrs=_jsonable(r.attrs), **{f: _jsonable(v) for f, v in r.costs.items()}))
    return dict(name=report.name, input_shape=_jsonable(list(report.input_shape)), convention=report.convention.as_dict(),
                rows=rows, total={f: _jsonable(v) for f, v in report.total.items()},
                groups={k: {f: _jsonable(v) for f, v in c.items()} for k, c in report.groups(1).items()},
                notes=list(report.notes), memory=printer.memory_note("activations"),
                units=dict(memory_bytes="bytes", params="count", macs="multiply-adds", flops="operations"))


def to_json(report) -> str:
    return json.dumps(to_dict(report), indent=1)
