"""``cnngraph zoo``, ``cnngraph table`` and ``cnngraph ops``.

>>> from cnngraph.cli import main
>>> main(["table", "lenet5", "--format", "csv"])  # doctest: +ELLIPSIS
Layer,C in,H/W in,filters,kernel,stride,pad,C out,H/W out,memory (KiB),params (k),flop (M)
conv1,1,28,20,5,1,2,20,28,61,0.52,0.392
pool1,20,28,,2,2,0,20,14,15,0,0.0157
...
0
>>> main(["zoo", "--names"])  # doctest: +ELLIPSIS
alexnet
alexnet_v1
...
0
"""
from __future__ import annotations

from cnngraph.cli import add_convention_args, add_model_args, convention_from, load_model, parse_input, parse_options


def _natural(name: str):
    """resnet18 before resnet101: digits compare as numbers."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def cmd_zoo(args):
    import sys

    from cnngraph import zoo

    names = sorted(zoo.names(), key=lambda n: (zoo.info(n).family, _natural(n)))
    if args.names:
        print("\n".join(names))
        return 0
    from cnngraph.analysis.cost import analyze

    head = ["model", "family", "input", "params (M)", "MACs (G)", "description"]
    body = []
    for n in names:
        m = zoo.info(n)
        t = analyze(zoo.build(n)).total
        body.append([n, m.family, "×".join(map(str, m.input)), f"{t.params / 1e6:.2f}", f"{t.macs / 1e9:.3f}", m.summary])
    title = f"cnngraph zoo: {len(names)} models, by family (params and MACs at each model's input, batch 1)"
    if not sys.stdout.isatty():  # piped: plain aligned columns, one model per line, never wrapped
        widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head) - 1)]
        print(title)
        for r in [head] + body:
            print("  ".join(c.rjust(w) if i in (3, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                  + "  " + r[-1])
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in head:
        t.add_column(col, justify="right" if col.startswith(("params", "MACs")) else "left")
    for r in body:
        t.add_row(*r)
    Console().print(t)
    return 0


def cmd_table(args):
    from cnngraph.analysis.cost import analyze
    from cnngraph.present.tables import HIDDEN_BY_DEFAULT

    g = load_model(args.model, parse_input(args.input), parse_options(args.option))
    report = analyze(g, convention=convention_from(args), strict=args.strict,
                     input=None if args.input is None else parse_input(args.input))
    hide = () if args.all else HIDDEN_BY_DEFAULT
    style, groups = ("groups", args.groups) if args.groups else (args.style, 0)
    print(report.to(args.format, style=style, hide=hide, groups=groups), end="")
    return 0


def cmd_ops(args):
    from cnngraph.ir.ops import describe

    for name, kind, doc in describe():
        print(f"{name:20s} {kind:8s} {doc}")
    return 0


def add_zoo(z):
    z.add_argument("--names", action="store_true", help="names only, one per line")
    z.set_defaults(func=cmd_zoo)


def add_table(t):
    add_model_args(t)
    t.add_argument("--format", choices=("text", "markdown", "csv", "latex", "json"), default="text")
    t.add_argument("--style", choices=("slides", "exact"), default="slides",
                   help="slides: KiB / thousands / millions as in the lectures; exact: full integers")
    t.add_argument("--all", action="store_true", help="also list activations and dropout")
    t.add_argument("--groups", type=int, default=0, metavar="DEPTH",
                   help="totals per group instead of per layer: 1 = per stage, 2 = per block")
    add_convention_args(t)
    t.set_defaults(func=cmd_table)


def add_ops(o):
    o.set_defaults(func=cmd_ops)
