"""``cnngraph render``: a model as a Graphviz diagram (:mod:`cnngraph.present.render`).

>>> import os, tempfile
>>> from cnngraph.cli import main
>>> out = os.path.join(tempfile.mkdtemp(), "lenet5.dot")
>>> main(["render", "lenet5", "-o", out])  # doctest: +ELLIPSIS
wrote .../lenet5.dot
0
>>> "5x5 conv, 20" in open(out).read()
True
"""
from __future__ import annotations

import argparse

from cnngraph.cli import add_model_args, load_model, parse_input, parse_options


def add_render(p):
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="output file: .svg, .png, .pdf or .dot")
    p.add_argument("--direction", default="TB", choices=("TB", "LR", "BT", "RL"),
                   help="TB top to bottom (default), LR left to right, BT bottom to top as in the slides")
    p.add_argument("--expand", action="store_true", help="draw every block (no collapsing of repeated blocks)")
    p.add_argument("--collapse", type=int, default=3, metavar="N",
                   help="collapse runs of at least N identical blocks (default 3)")
    p.add_argument("--no-fold", action="store_true", help="one box per layer (BN, activations, dropout too)")
    p.add_argument("--fold", metavar="KINDS", help="fold only these kinds, e.g. act or act,norm")
    p.add_argument("--shapes", action="store_true", help="tensor shapes on the edges")
    p.add_argument("--costs", action="store_true", help="params, multiply-adds and share on the boxes")
    p.add_argument("--legend", action="store_true", help="a colour key")
    p.add_argument("--no-title", action="store_true", help="no title line")
    p.add_argument("--depth", choices=("stage", "block", "layer"), default="layer",
                   help="one box per stage (the slide overview), per block, or per layer (default)")
    p.add_argument("--names", action="store_true", help="layer names on the boxes")
    p.add_argument("--wrap", action=argparse.BooleanOptionalAction, default=None,
                   help="columns for a 16:9 slide (default: on at --depth stage)")
    p.add_argument("--size", metavar="WxH", help="fit within W×H pixels (96 dpi), e.g. 1920x1080")
    p.add_argument("--dpi", type=int, help="resolution of PNG output (Graphviz default 96)")
    p.set_defaults(func=_cmd_render)


def _cmd_render(args):
    from cnngraph.io.files import check_output
    from cnngraph.present.render import FORMATS, render

    check_output(args.output, tuple("." + f for f in FORMATS) + (".gv",))
    g = load_model(args.model, parse_input(args.input), parse_options(args.option))
    fold = False if args.no_fold else (tuple(k.strip() for k in args.fold.split(",")) if args.fold else True)
    path = render(g, args.output, direction=args.direction, fold=fold, collapse=0 if args.expand else args.collapse,
                  shapes=args.shapes, costs=args.costs, legend=args.legend, title=not args.no_title,
                  depth=args.depth, names=args.names, wrap=args.wrap, size=args.size, dpi=args.dpi)
    print(f"wrote {path}")
    return 0
