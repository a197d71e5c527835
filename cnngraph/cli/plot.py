"""``cnngraph plot``: charts of per-layer costs or of the zoo (:mod:`cnngraph.present.plots`).

>>> import os, tempfile
>>> from cnngraph.cli import main
>>> main(["plot", "lenet5", "-o", os.path.join(tempfile.mkdtemp(), "lenet5.svg")])  # doctest: +ELLIPSIS
wrote .../lenet5.svg
0
"""
from __future__ import annotations

from cnngraph.cli import add_convention_args, convention_from, load_model, parse_input, parse_options
from cnngraph.ir.errors import CnnGraphError


def add_plot(p):
    p.add_argument("models", nargs="*", help="zoo names, FILE.onnx or file.py:function (default with --compare: the zoo)")
    p.add_argument("-o", "--output", required=True, help="output file: .svg, .png or .pdf")
    p.add_argument("--compare", action="store_true", help="params vs multiply-adds scatter of the models")
    p.add_argument("--by", default="auto", choices=("auto", "layer", "block", "stage"), help="bars per layer, block or stage")
    p.add_argument("--input", help="input shape C,H,W (numbers)")
    p.add_argument("-O", "--option", action="append", metavar="NAME=VALUE", help="model option")
    add_convention_args(p)
    p.set_defaults(func=_cmd_plot)


def _cmd_plot(args):
    from cnngraph import zoo
    from cnngraph.analysis.cost import analyze
    from cnngraph.io.files import check_output
    from cnngraph.present.plots import _META, layer_bars, zoo_scatter

    check_output(args.output, tuple("." + f for f in _META))
    inp, opts, conv = parse_input(args.input), parse_options(args.option), convention_from(args)
    if args.compare:
        names = args.models or zoo.names()
        reports = [analyze(load_model(n, inp, opts), convention=conv) for n in names]
        fams = {r.name: zoo.info(n).family for n, r in zip(names, reports) if n in zoo.MODELS}
        zoo_scatter(reports, args.output, fams)
    else:
        if len(args.models) != 1:
            raise CnnGraphError("plot takes one model (or --compare and any number)")
        layer_bars(analyze(load_model(args.models[0], inp, opts), convention=conv), args.output, by=args.by)
    print(f"wrote {args.output}")
    return 0
