"""``cnngraph compare``: models side by side (:mod:`cnngraph.present.compare`).

>>> from cnngraph.cli import main
>>> main(["compare", "lenet5", "alexnet", "--format", "markdown"])  # doctest: +ELLIPSIS
| model | input | params (M) | MACs (G) | memory (MiB) |
|---|---|---:|---:|---:|
| lenet5 | 1×28×28 | 1.256 | 0.007 | 0.133 |
| alexnet | 3×227×227 | 61.1 | 0.717 | 2.284 |
<BLANKLINE>
activation memory = every layer output written once ...; 1 KiB = 2^10 B, 1 MiB = 2^20 B
0
"""
from __future__ import annotations

from cnngraph.cli import add_convention_args, convention_from, load_model, parse_input, parse_options


def add_compare(p):
    p.add_argument("models", nargs="+", help="zoo names, FILE.onnx or file.py:function")
    p.add_argument("--input", help="one input shape for every model, e.g. 3,224,224 or 3,32*h,32*w (closed forms)")
    p.add_argument("-O", "--option", action="append", metavar="NAME=VALUE", help="model option (every model)")
    p.add_argument("--format", choices=("text", "markdown", "latex", "json"), default="text")
    p.add_argument("--plot", metavar="FILE", help="also a grouped bar chart (.svg, .png, .pdf)")
    add_convention_args(p)
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args):
    from cnngraph.analysis.cost import analyze
    from cnngraph.present.compare import bars, compare_rows, render

    if args.plot:
        from cnngraph.io.files import check_output
        from cnngraph.present.plots import _META

        check_output(args.plot, tuple("." + f for f in _META), "--plot")
    inp, opts, conv = parse_input(args.input), parse_options(args.option), convention_from(args)
    reports = [analyze(load_model(m, inp, opts), convention=conv) for m in args.models]
    rows = compare_rows(reports)
    print(render(rows, args.format), end="")
    if args.plot:
        print(f"wrote {bars(rows, args.plot)}")
    return 0
