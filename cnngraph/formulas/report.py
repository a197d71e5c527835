"""Text, LaTeX and JSON renderings of blocks, comparisons and networks.

>>> from cnngraph import formulas
>>> print(block_text(formulas.block("basic")))  # doctest: +ELLIPSIS
basic: ResNet basic block: ...
  input → output: C×H×W → C×H×W
  ...
  cost               18HWC²
  params             18C²
  memory (elements)  5HWC
...
"""
from __future__ import annotations

import json

from cnngraph.ir import printer as present
from cnngraph.ir.printer import memory_note


def _io(b) -> str:
    g = b.graph
    ins = [g.nodes[i]["shape"] for i in g.graph["inputs"]]
    outs = [g.nodes[o]["shape"] for o in g.graph["outputs"]]
    return f"{' + '.join(present.shape(s) for s in ins)} → {' + '.join(present.shape(s) for s in outs)}"


def _table(rows, head=None) -> list[str]:
    """Left-aligned columns (unicode-width naive: the formulas are plain BMP text)."""
    rows = ([head] if head else []) + rows
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def block_text(b, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(block_dict(b), indent=1, ensure_ascii=False)
    if fmt == "latex":
        return block_latex(b) + "\n"
    lines = [f"{b.name}: {b.summary}", f"  input → output: {_io(b)}"]
    if b.seed:
        lines.append(f"  the seeds: {b.seed}")
    lines += [f"  {line}" for line in _table([
        ["cost", b.cost.text], ["params", b.params.text], ["memory (elements)", b.memory.text],
        ["receptive field", str(b.receptive)]])]
    if b.layers:
        lines.append("  per layer (cost, params, memory in elements):")
        lines += [f"    {line}" for line in _table(
            [[layer.name, layer.label, layer.cost.text, layer.params.text, layer.memory.text] for layer in b.layers])]
    lines.append(f"  convention: {b.convention}")
    lines.append(f"  memory: {memory_note('elements')}")
    lines += [f"  note: {n}" for n in b.notes]
    return "\n".join(lines) + "\n"


def block_latex(b) -> str:
    rows = [(r"\text{cost}", b.cost.latex), (r"\text{params}", b.params.latex), (r"\text{memory (elements)}", b.memory.latex),
            (r"\text{receptive field}", present.latex(b.receptive.size[0]))]
    body = r" \\ ".join(f"{k} &= {v}" for k, v in rows)
    return r"\begin{aligned} " + body + r" \end{aligned}"


def block_dict(b) -> dict:
    return dict(
        name=b.name, summary=b.summary, seed=b.seed, sizes={k: present.plain(v) if not isinstance(v, int) else v
                                                            for k, v in b.sizes.items()},
        cost=b.cost.json, macs=b.macs.json, params=b.params.json, memory=b.memory.json,
        text=dict(cost=b.cost.text, params=b.params.text, memory=b.memory.text),
        latex=dict(cost=b.cost.latex, params=b.params.latex, memory=b.memory.latex),
        receptive_field=dict(size=[present.plain(s) for s in b.receptive.size],
                             jump=[present.plain(s) for s in b.receptive.jump],
                             start=[present.plain(s) for s in b.receptive.start], whole=b.receptive.whole),
        layers=[dict(name=x.name, label=x.label, cost=x.cost.json, params=x.params.json, memory=x.memory.json)
                for x in b.layers],
        convention=b.convention, include=list(b.include), notes=list(b.notes),
        units=dict(cost="multiply-adds", params="count", memory="elements"), memory_note=memory_note("elements"),
        symbols=sorted({s.name for f in (b.cost, b.params, b.memory) for s in f.symbols}))


def values_lines(formulas: dict, values: dict) -> list[str]:
    """``name = formula = number`` lines for ``--at`` substitutions."""
    out = []
    for k, f in formulas.items():
        try:
            v = f(**values)
            out.append([k, f.text, f"{v:,}" if isinstance(v, int) else str(v)])
        except Exception as e:  # a symbol without a value: say which
            out.append([k, f.text, str(e)])
    return _table(out)

