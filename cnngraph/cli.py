"""The ``cnngraph`` command-line tool.

Core commands live here (``zoo``, ``table``, ``ops``); other modules add theirs through an
``add_cli(subparsers)`` function listed in :data:`PLUGINS`, importing heavy dependencies only
inside their handlers so ``cnngraph --help`` stays fast.

A MODEL argument is a zoo name (``resnet50``), an ONNX file (``model.onnx``) or a Python
function building a graph (``mynet.py:build`` or ``package.module:build``).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from .errors import CnnGraphError, InputError, UserCodeError

# Modules that add sub-commands: each defines add_cli(subparsers).
PLUGINS: list[str] = [
    "cnngraph.runner",
    "cnngraph.reconcile",
    "cnngraph.render",
    "cnngraph.onnx_cli",
    "cnngraph.plots",
    "cnngraph.gallery",
    "cnngraph.formulas.cli",
    "cnngraph.explore.cli",
]


def parse_input(text: str | None, what: str = "--input"):
    """``"3,227,227"`` or ``"3,32*h,32*w"`` -> a shape tuple (symbols are positive integers).

    Read by the safe parser of :mod:`cnngraph.sizes`: nothing the user types is evaluated.
    """
    if text is None:
        return None
    from .sizes import parse_shape

    return parse_shape(text, what)


def parse_options(items) -> dict:
    """``["depth=50", "variant=paper"]`` -> dict with ints, floats, booleans and int tuples converted.

    A word (``variant=paper``, ``width=W``) stays text; anything else that is not a number
    must be a size expression (``width=64*a``), read by the safe parser, never evaluated.
    """
    import re

    from .sizes import MAX_LENGTH, parse_expr

    out = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"model option {item!r} must look like name=value")
        k, v = item.split("=", 1)
        if not k.isidentifier():
            raise InputError(f"model option {item!r}: {k!r} is not an option name")
        if len(v) > MAX_LENGTH:
            raise InputError(f"model option {k}: value is {len(v)} characters long (at most {MAX_LENGTH})")
        low = v.lower()
        if low in ("true", "false"):
            out[k] = low == "true"
        elif "," in v and all(p.strip().lstrip("-").isdigit() for p in v.split(",")):
            out[k] = tuple(int(p) for p in v.split(","))  # -O block_config=6,12,24,16
        else:
            try:
                out[k] = int(v)
            except ValueError:
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", v) else parse_expr(v, f"model option {k}")
    return out


def load_model(spec: str, input=None, options=None):
    """A graph from a zoo name, an ONNX file or ``file.py:function`` / ``package.module:function``
    (a function returning a graph, a DSL ``Net`` or a PyTorch ``nn.Module``)."""
    from . import zoo
    from .graph import with_input

    options = options or {}
    if spec.endswith(".onnx"):
        from . import onnx as cg_onnx

        g = cg_onnx.load(spec)
        return with_input(g, input) if input is not None else g
    if ":" in spec:
        path, fn_name = spec.rsplit(":", 1)
        from .user_model import build_user_model

        return build_user_model(path, fn_name, input, options)
    return zoo.build(spec, input=input, **options)


def add_model_args(p, input_help="input shape C,H,W (symbols allowed: 3,H,W or 3,32*h,32*w)"):
    p.add_argument("model", help="zoo name, FILE.onnx, or file.py:function / package.module:function "
                                 "(returning a DSL Net or graph, or a PyTorch nn.Module)")
    p.add_argument("--input", help=input_help)
    p.add_argument("-O", "--option", action="append", metavar="NAME=VALUE", help="model option, e.g. -O variant=paper")


def add_convention_args(p):
    g = p.add_argument_group("counting convention (defaults follow the slides)")
    g.add_argument("--flops-per-mac", type=int, choices=(1, 2), default=1, help="FLOPs per multiply-add (default 1)")
    g.add_argument("--count", default="pool",
                   help="kinds whose other operations add to flop: comma list of pool,act,norm,merge or 'none' (default pool)")
    g.add_argument("--bytes", type=int, default=4, help="bytes per element: 4 fp32, 2 fp16, 1 int8")
    g.add_argument("--batch", default="1", help="batch size (int or symbol such as N)")
    g.add_argument("--strict", action="store_true", help="a stride that does not fit exactly is an error")


def convention_from(args):
    from .cost import Convention

    from .cost import KINDS_OTHER
    from .sizes import parse_size

    count = () if args.count in ("none", "") else tuple(c.strip() for c in args.count.split(","))
    bad = [c for c in count if c not in KINDS_OTHER]
    if bad:
        raise InputError(f"--count {args.count!r}: unknown kind {bad[0]!r}; kinds are {', '.join(KINDS_OTHER)} or none")
    if not 1 <= args.bytes <= 16:
        raise InputError(f"--bytes {args.bytes}: bytes per element must be from 1 to 16")
    batch = parse_size(args.batch, "--batch")
    return Convention(flops_per_mac=args.flops_per_mac, count=count, bytes_per_element=args.bytes, batch=batch)


def cmd_zoo(args):
    from . import zoo

    names = zoo.names()
    if args.names:
        print("\n".join(names))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"cnngraph zoo: {len(names)} models")
    for col in ("model", "family", "input", "description"):
        t.add_column(col)
    for n in names:
        m = zoo.info(n)
        t.add_row(n, m.family, "×".join(map(str, m.input)), m.summary)
    Console().print(t)
    return 0


def cmd_table(args):
    from .cost import analyze
    from .tables import HIDDEN_BY_DEFAULT

    g = load_model(args.model, parse_input(args.input), parse_options(args.option))
    report = analyze(g, convention=convention_from(args), strict=args.strict,
                     input=None if args.input is None else parse_input(args.input))
    hide = () if args.all else HIDDEN_BY_DEFAULT
    style, groups = ("groups", args.groups) if args.groups else (args.style, 0)
    print(report.to(args.format, style=style, hide=hide, groups=groups), end="")
    return 0


def cmd_ops(args):
    from .ops import describe

    for name, kind, doc in describe():
        print(f"{name:20s} {kind:8s} {doc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnngraph", description="Symbolic graph compiler and visualizer for CNNs.")
    sub = p.add_subparsers(dest="command", required=True)

    z = sub.add_parser("zoo", help="list the models of the zoo")
    z.add_argument("--names", action="store_true", help="names only, one per line")
    z.set_defaults(func=cmd_zoo)

    t = sub.add_parser("table", help="per-layer table: shapes, memory, params, flop")
    add_model_args(t)
    t.add_argument("--format", choices=("text", "markdown", "csv", "latex", "json"), default="text")
    t.add_argument("--style", choices=("slides", "exact"), default="slides",
                   help="slides: KB / thousands / millions as in the lectures; exact: full integers")
    t.add_argument("--all", action="store_true", help="also list activations and dropout")
    t.add_argument("--groups", type=int, default=0, metavar="DEPTH",
                   help="totals per group instead of per layer: 1 = per stage, 2 = per block")
    add_convention_args(t)
    t.set_defaults(func=cmd_table)

    o = sub.add_parser("ops", help="list the ops of the registry")
    o.set_defaults(func=cmd_ops)

    for mod in PLUGINS:
        importlib.import_module(mod).add_cli(sub)
    return p


def main(argv=None) -> int:
    """Run one command. Every failure is one line on stderr and a non-zero exit: 2 for bad
    input (:class:`CnnGraphError`), 1 for anything else; ``--debug`` shows the traceback.
    An error raised inside the user's own ``file.py:function`` gets its traceback, as Python's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    args = build_parser().parse_args(argv)
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _note  # a warning (a dtype conversion, a cache repair) is one line too
            return args.func(args) or 0
    except CnnGraphError as e:
        if debug:
            raise
        print(f"cnngraph: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except UserCodeError as e:
        print(e.traceback_text, file=sys.stderr, end="")
        return 1
    except KeyboardInterrupt:
        print("cnngraph: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug or an environment failure: still one line, traceback on --debug
        if debug:
            raise
        print(f"cnngraph: error: {_describe(e)} (run with --debug for the traceback)", file=sys.stderr)
        return 1


def _note(message, category, filename, lineno, file=None, line=None):
    print(f"cnngraph: note: {_one_line(message)}", file=sys.stderr)


def _one_line(e) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _describe(e: BaseException) -> str:
    if isinstance(e, MemoryError):
        return "out of memory"
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or _one_line(e)}"
    return f"{type(e).__name__}: {_one_line(e)}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
