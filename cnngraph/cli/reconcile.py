"""``cnngraph reconcile``: the seeds' numbers beside cnngraph's (:mod:`cnngraph.zoo.reconcile`).

>>> import os, tempfile
>>> from cnngraph.cli import main
>>> out = os.path.join(tempfile.mkdtemp(), "reconciliation.md")
>>> main(["reconcile", "-o", out])  # doctest: +ELLIPSIS
wrote .../reconciliation.md
0
>>> open(out).read().startswith("#")
True
"""
from __future__ import annotations


def add_reconcile(p):
    p.add_argument("-o", "--out", help="write to this file (default: print)")
    p.add_argument("--format", choices=("markdown", "json"), default="markdown")
    p.set_defaults(func=_cli)


def _cli(args):
    from cnngraph.io.files import check_output, write_text
    from cnngraph.zoo.reconcile import markdown, to_json

    if args.out:
        check_output(args.out)
    text = markdown() if args.format == "markdown" else to_json()
    if args.out:
        write_text(args.out, text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0
