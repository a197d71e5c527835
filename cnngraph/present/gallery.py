"""The gallery: every zoo model drawn, tabulated, in closed form and plotted, with an index page.

``cnngraph gallery [--out gallery]`` (or ``make gallery``, or :func:`build`) writes::

    gallery/index.html            all models: diagram, cost chart, totals, links (no server needed)
    gallery/README.md             the same list as Markdown
    gallery/zoo.svg               params vs multiply-adds of the zoo (bubble: activation memory)
    gallery/reconciliation.md          the seed reconciliation (cnngraph.zoo.reconcile), when available
    gallery/design-space.svg      Pareto fronts of design-space sweeps (cnngraph.explore)
    gallery/models/NAME.svg       the diagram (folded, repeated blocks collapsed)
    gallery/models/NAME.md        totals, closed-form totals (cnngraph.formulas), per-layer table
    gallery/models/NAME-costs.svg memory / params / flop per layer (or per block)

Every output is deterministic. SVGs carry a ``<!-- cnngraph-source KEY -->`` fingerprint of
what they show (the DOT source, or the plotted numbers), so :func:`check` can tell whether a
gallery is up to date without running ``dot`` or matplotlib, and a rebuild skips files whose
fingerprint has not changed (``force=True`` redraws everything).

>>> files, entry = plan_model("alexnet")
>>> sorted(files)
['models/alexnet-costs.svg', 'models/alexnet.md', 'models/alexnet.svg']
>>> entry["params"], files["models/alexnet.svg"].kind
(61100840, 'dot')
"""
from __future__ import annotations

import html
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cnngraph import zoo
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir import printer
from cnngraph.ir.printer import fmt_bytes, memory_note
from cnngraph.present.tables import HIDDEN_BY_DEFAULT

DIAGRAM = dict(direction="TB", fold=True, collapse=3, legend=True, title=True)
MAX_TABLE_ROWS = 1000  # larger networks get a per-block table in the gallery


@dataclass
class File:
    """One output file: ``text`` written as is, or an SVG drawn from ``source`` (``dot``/``bars``/``scatter``)."""

    kind: str  # "text", "dot", "bars", "scatter", "pareto"
    content: object  # the text, the DOT source, or the plot data
    key: str = ""  # fingerprint stamped into SVGs

    @property
    def is_svg(self) -> bool:
        return self.kind != "text"


def zoo_order() -> list:
    """Zoo names in the zoo's fixed order (:func:`cnngraph.zoo.names`)."""
    return zoo.names()


# ---------------------------------------------------------------- one model
def _closed_form(name: str):
    """(markdown, one-line macs text) from cnngraph.formulas, or (None, reason) when unavailable."""
    try:
        from cnngraph import formulas
    except ImportError:
        return None, "cnngraph.formulas is not available"
    try:
        nf = formulas.network(name)
    except (CnnGraphError, ValueError, TypeError, ZeroDivisionError) as e:
        return None, f"no closed form: {e}"
    shape = printer.shape(nf.input)
    return nf.to("markdown"), f"multiply-adds on {shape}: {nf.totals['macs'].text}"


def plan_model(name: str):
    """The files of one model (``{path: File}``) and its summary entry for the index."""
    from cnngraph.present import plots
    from cnngraph.present import render
    from cnngraph.analysis.cost import analyze

    m = zoo.info(name)
    entry = dict(name=name, family=m.family, summary=m.summary, input="×".join(map(str, m.input)))
    g = zoo.build(name)
    report = analyze(g)
    t = report.total
    entry.update(params=t.params, macs=t.macs, flops=t.flops, memory=t.memory_bytes)
    dot = render.to_dot(g, **DIAGRAM)
    bars = plots.bars_data(report)
    closed, closed_line = _closed_form(name)
    entry["closed"] = closed_line if closed else ""
    entry["by"] = bars["by"]

    lines = [f"# {name}", "", f"{m.summary}. Family `{m.family}`, input {entry['input']}.", "",
             f"![{name} diagram]({name}.svg)", "",
             "| params | multiply-adds | flop | activation memory |", "|---:|---:|---:|---:|",
             f"| {t.params:,} | {t.macs:,} | {t.flops:,} | {t.memory_bytes:,} B ({fmt_bytes(t.memory_bytes)}) |", "",
             f"Convention: {report.convention}", "", memory_note("activations"), "", "## Closed form", ""]
    lines += [closed.rstrip("\n")] if closed else [f"Not available ({closed_line})."]
    lines += ["", f"## Costs {dict(layer='per layer', block='per block', stage='per stage')[bars['by']]}", "",
              f"![{name} costs]({name}-costs.svg)", ""]
    shown = sum(r.kind not in HIDDEN_BY_DEFAULT for r in report.rows)
    if shown <= MAX_TABLE_ROWS:
        lines += ["## Per-layer table", "", report.to("markdown").rstrip("\n"), ""]
    else:  # ResNet-1202's 3,600 rows would weigh more than the rest of its page many times over
        lines += ["## Per-block table", "", f"The per-layer table has {shown:,} rows: `cnngraph table {name}` prints it.",
                  "", report.to("markdown", style="groups", groups=2).rstrip("\n"), ""]
    files = {
        f"models/{name}.svg": File("dot", dot, render.source_key(dot)),
        f"models/{name}.md": File("text", "\n".join(lines)),  # also inlined as HTML in index.html
        f"models/{name}-costs.svg": File("bars", bars, plots.data_key(bars)),
    }
    entry["page"] = "\n".join(lines)
    return files, entry


def _plan_model_safe(name: str):
    try:
        return plan_model(name)
    except Exception as e:  # one broken model must not stop the gallery; the index says what failed
        m = zoo.info(name)
        entry = dict(name=name, family=m.family, summary=m.summary, input="×".join(map(str, m.input)),
                     error=f"{type(e).__name__}: {e}")
        text = f"# {name}\n\n{m.summary}.\n\nThis model could not be analyzed: `{entry['error']}`\n"
        return {f"models/{name}.md": File("text", text)}, entry


# ---------------------------------------------------------------- the whole gallery
def _reconcile():
    try:
        from cnngraph.zoo import reconcile
    except ImportError:
        return None
    return reconcile.markdown()


def _fmt(n) -> str:
    from cnngraph.present.render import human

    return human(n)


_INLINE = [(re.compile(r"`([^`]*)`"), r"<code>\1</code>"), (re.compile(r"\*\*([^*]+)\*\*"), r"<b>\1</b>"),
           (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r"<a href='\2'>\1</a>")]


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def markdown_html(text: str, base: str = "") -> str:
    """The Markdown the gallery writes (headings, pipe tables, lists, paragraphs; images left
    out, the page shows them) as HTML; ``base`` prefixes relative links (``models/``)."""
    out, table, items = [], [], []

    def flush():
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|[-:| ]+\|", r)]
            cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in cells[1:])
            head = "".join(f"<th>{_inline(c)}</th>" for c in cells[0])
            out.append(f"<table class='layers'><tr>{head}</tr>{body}</table>")
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if line.startswith("- "):
            items.append(line[2:])
            continue
        flush()
        if not line.strip() or line.startswith("!["):
            continue
        m = re.match(r"(#+) (.*)", line)
        if m:
            level = min(6, len(m.group(1)) + 3)
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        else:
            out.append(f"<p>{_inline(line)}</p>")
    flush()
    text = "\n".join(out)
    return re.sub(r"href='(?!https?:|#|/)([^']+)'", lambda m: f"href='{base}{m.group(1)}'", text) if base else text


def index_html(entries, has_reconcile: bool, reconcile_md: str = "") -> str:
    """The static index page: every model's diagram and cost chart, totals and links."""
    esc = lambda s: html.escape(str(s))  # noqa: E731
    families = list(dict.fromkeys(e["family"] for e in entries))
    rows, cards = [], []
    for e in entries:
        n = esc(e["name"])
        if "error" in e:
            rows.append(f"<tr><td><a href='#m-{n}'>{n}</a></td><td>{esc(e['family'])}</td><td>{esc(e['input'])}</td>"
                        f"<td colspan='3' class='err'>not analyzed</td></tr>")
            cards.append(f"<section class='model' id='m-{n}'><h3>{n}</h3><p>{esc(e['summary'])}</p>"
                         f"<p class='err'>{esc(e['error'])}</p></section>")
            continue
        rows.append(f"<tr data-model='{n}'><td><a href='#m-{n}'>{n}</a></td><td>{esc(e['family'])}</td><td>{esc(e['input'])}</td>"
                    f"<td title='{e['params']:,}'>{_fmt(e['params'])}</td><td title='{e['macs']:,}'>{_fmt(e['macs'])}</td>"
                    f"<td title='{e['memory']:,} B'>{fmt_bytes(e['memory'])}</td></tr>")
        closed = f"<p class='closed'>Closed form — {esc(e['closed'])}</p>" if e.get("closed") else ""
        cards.append(
            f"<section class='model' id='m-{n}'><h3>{n} <span class='fam'>{esc(e['family'])}</span></h3>"
            f"<p>{esc(e['summary'])}. Input {esc(e['input'])}: <b>{_fmt(e['params'])}</b> params, "
            f"<b>{_fmt(e['macs'])}</b> multiply-adds, {fmt_bytes(e['memory'])} of activations (fp32).</p>{closed}"
            f"<div class='figs'><figure class='diagram'>"
            f"<object data='models/{n}.svg' type='image/svg+xml' aria-label='{n} diagram' data-check='diagram'>"
            f"{n} diagram</object></figure>"
            f"<figure class='plot'><a href='models/{n}-costs.svg'><img src='models/{n}-costs.svg' alt='{n} costs "
            f"{esc(e['by'])}' data-check='plot'></a></figure></div>"
            f"<p class='links'><a href='models/{n}.md'>per-layer table and closed form (Markdown)</a> · "
            f"<a href='models/{n}.svg'>diagram</a> · <a href='models/{n}-costs.svg'>cost chart</a></p>"
            f"<details class='page'><summary>totals, closed forms per stage, per-layer table</summary>"
            f"{markdown_html(e.get('page', ''), 'models/')}</details></section>")
    nav = " · ".join(f"<a href='#f-{esc(f)}'>{esc(f)}</a>" for f in families)
    by_family = []
    for f in families:
        by_family.append(f"<h2 id='f-{esc(f)}'>{esc(f)}</h2>")
        by_family += [c for e, c in zip(entries, cards) if e["family"] == f]
    reconcile = ("<section id='reconciliation'><h2>Seed reconciliation</h2><details><summary>Every number of the "
                 "five lectures recomputed, with the reason for each difference (also "
                 "<a href='reconciliation.md'>as Markdown</a>)</summary>"
                 f"{markdown_html(reconcile_md)}</details></section>" if has_reconcile else "")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cnngraph gallery</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1400px; padding: 0 1.5em 3em; color: #212529; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ border-bottom: 1px solid #dee2e6; padding-top: 0.6em; }}
h3 {{ margin: 0.2em 0; }} .fam {{ font-size: 0.7em; color: #868e96; font-weight: normal; }}
table.summary {{ border-collapse: collapse; font-size: 0.85em; }}
table.summary td, table.summary th {{ padding: 0.15em 0.7em; border-bottom: 1px solid #f1f3f5; text-align: right; }}
table.summary td:nth-child(-n+3), table.summary th:nth-child(-n+3) {{ text-align: left; }}
.model {{ border: 1px solid #dee2e6; border-radius: 6px; padding: 0.6em 1em; margin: 1em 0; }}
.figs {{ display: flex; gap: 1em; align-items: flex-start; }}
figure {{ margin: 0; }}
.diagram {{ flex: 0 0 auto; max-width: 45%; max-height: 640px; overflow: auto; border: 1px solid #f1f3f5; }}
.diagram img {{ max-width: 100%; }}
.plot {{ flex: 1 1 auto; min-width: 0; overflow: auto; }} .plot img {{ max-width: 100%; }}
.closed {{ font-family: monospace; font-size: 0.85em; color: #495057; }}
table.layers {{ border-collapse: collapse; font-size: 0.8em; margin: 0.4em 0; }}
table.layers td, table.layers th {{ padding: 0.1em 0.5em; border-bottom: 1px solid #f1f3f5; text-align: right; }}
table.layers td:first-child, table.layers th:first-child {{ text-align: left; }}
details summary {{ cursor: pointer; color: #1864ab; font-size: 0.9em; }}
#search {{ font-size: 1em; padding: 0.3em 0.5em; width: 24em; }}
.diagram object {{ max-width: 100%; }}
.err {{ color: #c92a2a; }} .links {{ font-size: 0.85em; }}
#zoo img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>cnngraph gallery</h1>
<p>{len(entries)} models of the zoo, each drawn from the same graph its tables and formulas come from.
Regenerate with <code>cnngraph gallery</code> (or <code>make gallery</code>). Costs follow the slides' convention:
multiply-adds of conv and linear layers, params = weights + biases (batch norm's γ, β included),
activation memory = every layer output written once (output elements × 4 bytes, batch 1; not the smaller
arena <code>cnngraph plan</code> allocates after buffer reuse), printed in KiB / MiB (1 KiB = 2^10 B,
1 MiB = 2^20 B). Boxes fold batch norm and activations into the layer
before them; blue edges are shortcuts; "× n" boxes stand for n more blocks like the one drawn before them.</p>
<p>Families: {nav}</p>
<p><input id="search" type="search" placeholder="search models: name, family or description"
 aria-label="search models"> <span id="found"></span></p>
{reconcile}
<section id="zoo"><h2>The zoo at a glance</h2>
<img src="zoo.svg" alt="params vs multiply-adds of the zoo" data-check="plot"></section>
<section id="design-space"><h2>Design spaces</h2>
<p>Every width multiplier and resolution of MobileNet v2, ResNet-50 and EfficientNet-B0 on a grid, each point's cost
from the family's closed form (<code>cnngraph sweep</code>); lines are the Pareto fronts. Measured latency and the
EfficientNet scaling search: docs/design-space.md.</p>
<img src="design-space.svg" alt="Pareto fronts of design-space sweeps" data-check="plot"></section>
<h2>Models</h2>
<table class="summary"><tr><th>model</th><th>family</th><th>input</th><th>params</th><th>multiply-adds</th><th>activations</th></tr>
{chr(10).join(rows)}
</table>
{chr(10).join(by_family)}
<script>
// Search: show only the models (cards and summary rows) whose text holds every word typed.
document.getElementById("search").addEventListener("input", function (ev) {{
  var words = ev.target.value.toLowerCase().split(/\\s+/).filter(Boolean), shown = 0;
  document.querySelectorAll("section.model").forEach(function (card) {{
    var text = card.querySelector("h3").textContent + " " + card.querySelector("p").textContent;
    var hit = words.every(function (w) {{ return text.toLowerCase().indexOf(w) >= 0; }});
    card.style.display = hit ? "" : "none";
    var row = document.querySelector("tr[data-model='" + card.id.slice(2) + "']");
    if (row) row.style.display = hit ? "" : "none";
    if (hit) shown++;
  }});
  document.getElementById("found").textContent = words.length ? shown + " models" : "";
}});
// Marks every image and diagram as loaded or not, and counts the diagrams' hover texts and the
// inline tables, for the headless-browser check (tests/browser_check.py).
window.addEventListener("load", function () {{
  var imgs = document.querySelectorAll("[data-check]"), ok = 0, tips = 0;
  imgs.forEach(function (img) {{
    var good;
    if (img.tagName === "OBJECT") {{
      var doc = img.contentDocument, root = doc && doc.documentElement;
      good = !!root && root.tagName.toLowerCase() === "svg";
      var n = good ? doc.querySelectorAll("a[*|title]").length : 0;
      img.setAttribute("data-tooltips", n);
      tips += n;
    }} else {{
      good = img.complete && img.naturalWidth > 0;
    }}
    img.setAttribute("data-loaded", good ? "yes" : "no");
    if (good) ok++;
  }});
  document.body.setAttribute("data-images", ok + "/" + imgs.length);
  document.body.setAttribute("data-tooltips", tips);
  document.body.setAttribute("data-tables", document.querySelectorAll("table.layers").length);
}});
</script>
</body>
</html>
"""


def readme_md(entries, has_reconcile: bool) -> str:
    lines = ["# cnngraph gallery", "",
             f"{len(entries)} zoo models. Open `index.html` in a browser for the diagrams and charts side by side; "
             "regenerate with `cnngraph gallery` (or `make gallery`).", ""]
    if has_reconcile:
        lines += ["Seed reconciliation: [reconciliation.md](reconciliation.md).", ""]
    lines += ["![zoo](zoo.svg)", "", "Design spaces (cnngraph sweep; docs/design-space.md): "
              "![design spaces](design-space.svg)", "", "| model | family | input | params | multiply-adds | activations | files |",
              "|---|---|---|---:|---:|---:|---|"]
    for e in entries:
        n = e["name"]
        if "error" in e:
            lines.append(f"| {n} | {e['family']} | {e['input']} | | | | [notes](models/{n}.md) (not analyzed) |")
            continue
        lines.append(f"| {n} | {e['family']} | {e['input']} | {e['params']:,} | {e['macs']:,} | "
                     f"{fmt_bytes(e['memory'])} | [table](models/{n}.md) · [diagram](models/{n}.svg) · "
                     f"[chart](models/{n}-costs.svg) |")
    return "\n".join(lines) + "\n"


def _pool(jobs):
    import multiprocessing

    ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)


def _map(fn, items, jobs):
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with _pool(jobs) as ex:
        return list(ex.map(fn, items, chunksize=1))


def _plan_extra(task):
    """Work items besides the models, run in the pool alongside them."""
    if task == "reconcile":
        return _reconcile()
    if task == "design-space":
        from cnngraph.explore import pareto

        return pareto.gallery_data()
    raise ValueError(task)


def _job(item):
    kind, arg = item
    return _plan_model_safe(arg) if kind == "model" else _plan_extra(arg)


def plan(models=None, jobs=None) -> dict:
    """Every file of the gallery (``{relative path: File}``) for ``models`` (default: the zoo)."""
    from cnngraph.present import plots

    names = list(models) if models is not None else zoo_order()
    results = _map(_job, [("model", n) for n in names] + [("extra", "reconcile"), ("extra", "design-space")], jobs)
    *per_model, reconcile_md, design = results
    files, entries = {}, []
    for f, e in per_model:
        files.update(f)
        entries.append(e)
    good = [e for e in entries if "error" not in e]
    scatter = dict(points=plots.scatter_points(good), version=plots.PLOT_VERSION, ticks="plain")
    files["zoo.svg"] = File("scatter", scatter, plots.data_key(scatter))
    design = dict(design, version=plots.PLOT_VERSION)
    files["design-space.svg"] = File("pareto", design, plots.data_key(design))
    if reconcile_md is not None:
        files["reconciliation.md"] = File("text", reconcile_md)
    files["index.html"] = File("text", index_html(entries, reconcile_md is not None, reconcile_md or ""))
    files["README.md"] = File("text", readme_md(entries, reconcile_md is not None))
    return files


def _draw(item):
    """Write one file (in a worker): text as is, SVGs drawn and stamped."""
    path, f = item
    from cnngraph.io.files import write_text
    from cnngraph.present import plots
    from cnngraph.present import render

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if f.kind == "text":
        write_text(p, f.content)
    elif f.kind == "dot":
        write_text(p, render.svg_of(f.content))
    elif f.kind == "bars":
        plots.save(plots.draw_bars(f.content), p, f.key)
    elif f.kind == "scatter":
        plots.save(plots.draw_scatter(f.content), p, f.key)
    elif f.kind == "pareto":
        from cnngraph.explore import pareto

        plots.save(pareto.draw_gallery(f.content), p, f.key)
    return path


def _current(path: Path, f: File) -> bool:
    if not path.exists():
        return False
    text = path.read_text()
    if f.is_svg:
        from cnngraph.present.render import read_stamp

        return read_stamp(text) == f.key
    return text == f.content


def _generated(out: Path) -> set:
    """Files of ``out`` that the gallery writes (anything else there is left alone)."""
    found = {p.relative_to(out).as_posix() for p in (out / "models").glob("*") if p.suffix in (".svg", ".md")}
    found |= {n for n in ("index.html", "README.md", "zoo.svg", "design-space.svg", "reconciliation.md")
              if (out / n).exists()}
    return found


def build(out="gallery", models=None, jobs=None, force: bool = False) -> dict:
    """Write the gallery to ``out``; returns counts of files written, unchanged and removed."""
    out = Path(out)
    files = plan(models, jobs)
    todo = [(str(out / rel), f) for rel, f in files.items() if force or not _current(out / rel, f)]
    # Slow drawings first so the pool's last task is a short one.
    weight = {"scatter": 0, "pareto": 0, "dot": 1, "bars": 2, "text": 3}
    todo.sort(key=lambda item: weight[item[1].kind])
    _map(_draw, todo, jobs)
    stale = sorted(_generated(out) - set(files)) if models is None else []
    for rel in stale:
        (out / rel).unlink()
    return dict(written=len(todo), unchanged=len(files) - len(todo), removed=len(stale))


def committed_models(out="gallery") -> list:
    """The models a gallery folder holds, in zoo order (unknown names at the end)."""
    out = Path(out)
    have = {p.stem for p in (out / "models").glob("*.md")}
    order = [n for n in zoo_order() if n in have]
    return order + sorted(have - set(order))


def check(out="gallery", jobs=None) -> tuple[list, list]:
    """Compare a gallery folder with what :func:`build` would write for the models it holds.

    Returns ``(problems, notes)``: problems are missing, extra or outdated files (text compared
    exactly, SVGs by their source fingerprint); notes list zoo models not in the gallery yet.
    """
    out = Path(out)
    models = committed_models(out)
    if not models:
        return [f"{out}: no gallery here (run `cnngraph gallery --out {out}`)"], []
    unknown = [n for n in models if n not in zoo.MODELS]
    if unknown:
        return [f"{out}: models no longer in the zoo: {', '.join(unknown)}"], []
    files = plan(models, jobs)
    have = _generated(out)
    problems = [f"missing: {rel}" for rel in sorted(set(files) - have)]
    problems += [f"not produced by the command: {rel}" for rel in sorted(have - set(files))]
    for rel in sorted(set(files) & have):
        if not _current(out / rel, files[rel]):
            problems.append(f"out of date: {rel}")
    notes = [f"zoo model not in the gallery yet: {n}" for n in zoo_order() if n not in set(models)]
    return problems, notes
