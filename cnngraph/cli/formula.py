"""``cnngraph formula`` and ``cnngraph receptive``.

>>> from cnngraph.cli import main
>>> main(["formula", "basic"])  # doctest: +ELLIPSIS
basic: ResNet basic block: ...
  input → output: C×H×W → C×H×W
  the seeds: Total FLOPs: 18HWC² (seed 000)
  cost               18HWC²
  params             18C²
  memory (elements)  5HWC
...
0
"""
from __future__ import annotations


def add_formula(f):
    f.description = ("Formulas derived from the graph on symbolic sizes: a named block "
                     "(cnngraph formula basic), a design study (cnngraph formula resnext_widths) or "
                     "a whole model (cnngraph formula resnet50 --input 3,32*h,32*w). "
                     "--list shows the blocks and studies.")
    f.add_argument("name", nargs="?", help="block, study, zoo model, FILE.onnx or file.py:function")
    f.add_argument("--list", action="store_true", help="list the named blocks and studies")
    f.add_argument("--format", choices=("text", "latex", "json", "markdown"), default="text")
    f.add_argument("--include", default="",
                   help="blocks: also count these kinds in cost (comma list of norm,act,merge,pool; default: "
                        "conv/linear MACs only, as the slides)")
    f.add_argument("--at", default="", metavar="S=V,...",
                   help="evaluate the formulas at these values, e.g. C=64,H=56,W=56 (or h=7,w=7 for a model)")
    f.add_argument("--set", default="", metavar="S=V,...",
                   help="blocks: build with these sizes instead of symbols, e.g. K=5 or G=32,c=4")
    f.add_argument("--input", help="model input shape, e.g. 3,32*h,32*w (default: C,32h,32w)")
    f.add_argument("-O", "--option", action="append", metavar="NAME=VALUE",
                   help="model option, e.g. -O width=64*a for a width multiplier")
    f.set_defaults(func=cmd_formula)


def add_receptive(r):
    r.add_argument("model", help="zoo name, FILE.onnx, file.py:function or a block name")
    r.add_argument("--input", help="input shape C,H,W (symbols allowed)")
    r.add_argument("-O", "--option", action="append", metavar="NAME=VALUE", help="model option")
    r.add_argument("--format", choices=("text", "markdown", "csv", "json"), default="text")
    r.add_argument("--all", action="store_true", help="also list activations, norms and other element-wise layers")
    r.add_argument("--table", action="store_true",
                   help="print the per-layer cost table (cnngraph table) with a receptive-field column instead")
    r.set_defaults(func=cmd_receptive)


def _pairs(text: str, option: str) -> dict:
    from cnngraph.ir.errors import CnnGraphError
    from cnngraph.ir.sizes import parse_size

    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        if "=" not in item:
            raise CnnGraphError(f"{option} {item!r} must look like NAME=VALUE")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k.isidentifier():
            raise CnnGraphError(f"{option} {item!r}: {k!r} is not a symbol name")
        out[k] = parse_size(v, f"{option} {k}")
    return out


def model_options(items) -> dict:
    """``-O`` options; a value written as an expression (``width=64*a``) becomes a sympy
    expression over positive-integer symbols, so a width multiplier stays symbolic."""
    import re

    from cnngraph.cli import parse_options
    from cnngraph.ir.sizes import parse_expr

    out = parse_options(items)
    for k, v in out.items():
        if isinstance(v, str) and re.search(r"[*/+()^-]", v):
            out[k] = parse_expr(v, f"model option {k}")
    return out


def cmd_formula(args):
    from cnngraph import formulas
    from cnngraph.cli import load_model, parse_input
    from cnngraph.ir.errors import CnnGraphError
    from cnngraph.formulas.report import values_lines

    if args.list or not args.name:
        from cnngraph.formulas.report import _table

        rows = [[kind, name, summary] for kind, name, summary in formulas.catalogue()]
        print("\n".join(_table(rows, ["kind", "name", "what"])))
        print("\nAlso any zoo model (cnngraph zoo), FILE.onnx or file.py:function: closed-form totals per stage.")
        return 0
    fmt = args.format
    key = args.name.replace("-", "_").lower()
    values = _pairs(args.at, "--at")
    if key in formulas.BLOCKS:
        include = tuple(x.strip() for x in args.include.split(",") if x.strip())
        b = formulas.block(key, include=include, **_pairs(args.set, "--set"))
        print(b.to("text" if fmt == "markdown" else fmt), end="")
        if values and fmt == "text":
            print(f"  at {', '.join(f'{k} = {v}' for k, v in values.items())}:")
            print("\n".join("    " + x for x in values_lines(
                dict(cost=b.cost, params=b.params, memory=b.memory), values)))
        return 0
    if args.include or args.set:
        raise CnnGraphError("--include and --set apply to named blocks only")
    if key in formulas.STUDIES:
        print(formulas.study(key).to("text" if fmt == "markdown" else fmt), end="")
        return 0
    options = model_options(args.option)
    if ":" in args.name or args.name.endswith(".onnx"):
        g = load_model(args.name, parse_input(args.input), options)
        nf = formulas.network(g)
    else:
        nf = formulas.network(args.name, input=parse_input(args.input), **options)
    why = nf.outside(values) if values else None
    if why:
        raise CnnGraphError(f"{args.name} at {args.at} is outside the model's domain: {why}")
    print(nf.to(fmt), end="")
    if values and fmt == "text":
        print(f"  at {', '.join(f'{k} = {v}' for k, v in values.items())}:")
        print("\n".join("    " + x for x in values_lines(nf.totals, values)))
    return 0


def cmd_receptive(args):
    from cnngraph import formulas
    from cnngraph.cli import load_model, parse_input
    from cnngraph.analysis.receptive import receptive_fields

    name = args.model.replace("-", "_").lower()
    if name in formulas.BLOCKS and not (":" in args.model or args.model.endswith(".onnx")):
        g = formulas.block(name).graph
    else:
        g = load_model(args.model, parse_input(args.input), model_options(args.option))
    if args.table:
        from cnngraph.analysis.cost import analyze
        from cnngraph.analysis.receptive import column

        report = analyze(g)
        fmt = "markdown" if args.format == "markdown" else ("csv" if args.format == "csv" else
                                                           "json" if args.format == "json" else "text")
        print(report.to(fmt, receptive=column(g)), end="")
        return 0
    print(receptive_table(g, receptive_fields(g), args.format, args.all), end="")
    return 0


SHOWN_KINDS = ("input", "conv", "pool", "merge", "linear", "reshape")


def receptive_table(g, fields, fmt="text", everything=False) -> str:
    import csv
    import io
    import json

    from cnngraph.ir import printer as present
    from cnngraph.ir.ops import REGISTRY
    from cnngraph.formulas.report import _table
    from cnngraph.ir.printer import shape as shape_text

    from cnngraph.ir.graph import layer_names

    names = layer_names(g)
    rows = []
    for n, f in fields.items():
        d = g.nodes[n]
        if not everything and REGISTRY[d["op"]].kind not in SHOWN_KINDS:
            continue
        label = REGISTRY[d["op"]].label(d["attrs"], [g.nodes[i]["shape"] for i in d["inputs"]], d["shape"])
        pair = lambda v: (lambda a, b: a if a == b else f"{a}×{b}")(*(present.text(x) for x in v))  # noqa: E731
        note = ", ".join(x for x, on in (("whole input", f.whole), ("max over paths", f.merged and
                                                                     REGISTRY[d["op"]].kind == "merge"),
                                         ("approximate", f.approximate)) if on)
        rows.append([names[n], label, shape_text(d["shape"]), pair(f.size), pair(f.jump), pair(f.start),
                     note])
    head = ["layer", "op", "output", "RF size", "jump", "start", "note"]
    if fmt == "json":
        return json.dumps([dict(zip(head, r)) for r in rows], indent=1, ensure_ascii=False) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(head)
        w.writerows(rows)
        return buf.getvalue()
    if fmt == "markdown":
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                         + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
    foot = ("RF size: input pixels one output unit sees (padding included); jump: input pixels between "
            "neighbouring units; start: centre of the first unit's field (pixel i at i). Merges take the max over "
            "their input paths.")
    return "\n".join(_table(rows, head) + ["", foot]) + "\n"
