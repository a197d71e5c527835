"""The ``cnngraph`` command-line tool: every command, and the only package that parses arguments.

:data:`COMMANDS` lists each command with its module and help line; only the module of the
command being run is imported, and each imports the library (sympy, networkx, numba) inside
its handler, so ``cnngraph --help`` starts at once. A command module defines
``add_<command>(parser)``, which adds the arguments and sets ``func``. No library module
imports this package.

A MODEL argument is a zoo name (``resnet50``), an ONNX file (``model.onnx``) or a Python
function building a graph (``mynet.py:build`` or ``package.module:build``).

>>> parse_options(["depth=50", "variant=paper", "block_config=6,12,24,16", "width=64*a"])
{'depth': 50, 'variant': 'paper', 'block_config': (6, 12, 24, 16), 'width': 64*a}
>>> parse_input("3,32*h,32*w")
(3, 32*h, 32*w)
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from cnngraph.ir.errors import CnnGraphError, InputError, UserCodeError

# command -> (module defining add_<command>, help line); the order of `cnngraph --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "zoo": ("cnngraph.cli.core", "list the models of the zoo"),
    "table": ("cnngraph.cli.core", "per-layer table: shapes, memory, params, flop"),
    "ops": ("cnngraph.cli.core", "list the ops of the registry"),
    "run": ("cnngraph.cli.run", "run a model on a backend (PyTorch layout in and out)"),
    "bench": ("cnngraph.cli.run", "time a model: ms per batch, images/s, GFLOP/s against the SGEMM ceiling, memory"),
    "plan": ("cnngraph.cli.run", "the execution plan: fused steps and the memory plan (symbolic inputs allowed)"),
    "init-weights": ("cnngraph.cli.run", "write seeded weights (torchvision state_dict names) to .safetensors or .npz"),
    "compare": ("cnngraph.cli.compare", "models side by side: params, multiply-adds, memory, closed forms; a bar chart"),
    "reconcile": ("cnngraph.cli.reconcile", "the seeds' numbers beside cnngraph's, with the reason for each difference"),
    "render": ("cnngraph.cli.render", "draw a model as a Graphviz diagram (SVG, PNG, PDF or DOT)"),
    "export": ("cnngraph.cli.export", "export a model to ONNX (weights: --weights FILE, else seeded init)"),
    "plot": ("cnngraph.cli.plot", "bar charts of per-layer costs, or a comparison of models (SVG, PNG, PDF)"),
    "gallery": ("cnngraph.cli.gallery", "write the gallery: diagrams, tables, formulas and plots of every zoo model"),
    "formula": ("cnngraph.cli.formula", "closed-form cost formulas of a named block, a design study or a model"),
    "receptive": ("cnngraph.cli.formula", "receptive field (size, jump, start) of every layer of a model"),
    "sweep": ("cnngraph.cli.sweep", "costs of a model family over a design space (grid or random samples)"),
}


def parse_input(text: str | None, what: str = "--input"):
    """``"3,227,227"`` or ``"3,32*h,32*w"`` -> a shape tuple (symbols are positive integers).

    Read by the safe parser of :mod:`cnngraph.sizes`: nothing the user types is evaluated.
    """
    if text is None:
        return None
    from cnngraph.ir.sizes import parse_shape

    return parse_shape(text, what)


def parse_options(items) -> dict:
    """``["depth=50", "variant=paper"]`` -> dict with ints, floats, booleans and int tuples converted.

    A word (``variant=paper``, ``width=W``) stays text; anything else that is not a number
    must be a size expression (``width=64*a``), read by the safe parser, never evaluated.
    """
    import re

    from cnngraph.ir.sizes import MAX_LENGTH, parse_expr

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
    from cnngraph import zoo
    from cnngraph.ir.graph import with_input

    options = options or {}
    if spec.endswith(".onnx"):
        from cnngraph import onnx as cg_onnx

        from cnngraph.ir.graph import check_weights

        g = cg_onnx.load(spec)
        if input is None:
            check_weights(g)  # a file with symbolic H, W but weights made for one size
            return g
        return with_input(g, input)  # checks the weights against the new shapes
    if ":" in spec:
        path, fn_name = spec.rsplit(":", 1)
        from cnngraph.interop.user_model import build_user_model

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
    from cnngraph.analysis.cost import Convention

    from cnngraph.analysis.cost import KINDS_OTHER
    from cnngraph.ir.sizes import parse_size

    count = () if args.count in ("none", "") else tuple(c.strip() for c in args.count.split(","))
    bad = [c for c in count if c not in KINDS_OTHER]
    if bad:
        raise InputError(f"--count {args.count!r}: unknown kind {bad[0]!r}; kinds are {', '.join(KINDS_OTHER)} or none")
    if not 1 <= args.bytes <= 16:
        raise InputError(f"--bytes {args.bytes}: bytes per element must be from 1 to 16")
    batch = parse_size(args.batch, "--batch")
    return Convention(flops_per_mac=args.flops_per_mac, count=count, bytes_per_element=args.bytes, batch=batch)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line too (``cnngraph run --help`` shows the usage)."""

    def error(self, message):
        self.exit(2, f"cnngraph: error: {self.prog}: {message} ({self.prog} --help for the usage)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported to add its arguments
    (every command's when ``command`` is ``"*"``)."""
    p = _Parser(prog="cnngraph", description="Symbolic graph compiler and visualizer for CNNs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help) in COMMANDS.items():
        sp = sub.add_parser(name, help=help, description=help)
        if command in (name, "*"):
            getattr(importlib.import_module(module), f"add_{name.replace('-', '_')}")(sp)
    return p


def main(argv=None) -> int:
    """Run one command. Every failure is one line on stderr and a non-zero exit: 2 for bad
    input (:class:`CnnGraphError`), 1 for anything else; ``--debug`` shows the traceback.
    An error raised inside the user's own ``file.py:function`` gets its traceback, as Python's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
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
    except BrokenPipeError:  # `cnngraph zoo | head`: the reader has seen enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
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
