"""The user's own model from ``file.py:function`` or ``package.module:function``.

The function may return a cnngraph graph, a DSL ``Net`` or a PyTorch ``nn.Module`` (turned
into a graph by :func:`cnngraph.interop.torch_import.from_torch`, with its state_dict as weights).
It receives ``input=`` (the shape asked for) only when its signature takes it, plus the
``-O name=value`` options.

>>> g = build_user_model("cnngraph.zoo", "build", (1, 32, 32), {"name": "lenet5"})
>>> g.nodes["conv1"]["shape"]
(20, 32, 32)
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from cnngraph.ir.errors import CnnGraphError, UserCodeError


def _module(path: str):
    if path.endswith(".py"):
        if not Path(path).exists():
            raise CnnGraphError(f"no such file: {path}")
        spec = importlib.util.spec_from_file_location(Path(path).stem, path)
        if spec is None:
            raise CnnGraphError(f"{path}: not a Python file")
        mod = importlib.util.module_from_spec(spec)
        loader = spec.loader.exec_module
        run = lambda: loader(mod)  # noqa: E731
    else:
        mod = None
        run = lambda: importlib.import_module(path)  # noqa: E731
    try:
        return user_code(run) or mod
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("torch", "torchvision", "timm"):
            raise CnnGraphError(f"{path} imports {e.name}, which is not installed: "
                                "pip install 'cnngraph[torch]' (PyTorch is optional)") from None
        if mod is None and e.name == path.split(".")[0]:
            raise CnnGraphError(f"no module named {path!r} (use file.py:function for a file)") from None
        raise


def user_code(fn, *args, **kwargs):
    """Call into the user's own code: their exceptions become a :class:`UserCodeError`
    holding their traceback as Python prints it, without cnngraph's frames; cnngraph's own
    errors (from the DSL their code calls) and a missing module pass through unchanged."""
    try:
        return fn(*args, **kwargs)
    except (CnnGraphError, ModuleNotFoundError, KeyboardInterrupt, MemoryError):
        raise
    except Exception as e:
        import traceback

        tb = e.__traceback__.tb_next  # this function's own frame
        while tb is not None and (tb.tb_frame.f_code.co_filename.startswith("<frozen")
                                  or tb.tb_frame.f_code.co_filename == __file__):
            tb = tb.tb_next
        raise UserCodeError("".join(traceback.format_exception(type(e), e, tb))) from None


def _takes(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _check_arguments(fn, where: str, kwargs: dict) -> None:
    """Every ``-O`` option names a parameter; every parameter without a default is given."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for k in kwargs:
        if k not in named:
            raise CnnGraphError(f"{where} has no parameter {k!r} for -O {k}=...; its parameters: "
                                f"{', '.join(named) or 'none'}")
    for n in named:
        if params[n].default is inspect.Parameter.empty and n not in kwargs:
            raise CnnGraphError(f"{where} needs {n!r}: give it with -O {n}=VALUE" + (" or --input" if n == "input" else ""))


def build_user_model(path: str, fn_name: str, input=None, options=None):
    """Call ``fn_name`` of the module at ``path`` and return its graph."""
    mod = _module(path)
    fn = getattr(mod, fn_name, None)
    if fn is None or not callable(fn):
        raise CnnGraphError(f"{path} has no function {fn_name!r}")
    kwargs = dict(options or {})
    if input is not None and _takes(fn, "input"):
        kwargs["input"] = input
    _check_arguments(fn, f"{path}:{fn_name}", kwargs)
    result = user_code(fn, **kwargs)
    return as_graph(result, input, f"{path}:{fn_name}")


def as_graph(result, input=None, where="model"):
    """A graph from what a model function returned."""
    from cnngraph.ir.graph import CnnGraph, with_input

    if isinstance(result, CnnGraph):
        return result if input is None or _same_input(result, input) else with_input(result, input)
    if hasattr(result, "graph") and isinstance(getattr(result, "graph", None), CnnGraph):  # a DSL Net
        g = result.graph
        return g if input is None or _same_input(g, input) else with_input(g, input)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(result, torch.nn.Module):
        from cnngraph.ir.symbols import H, W
        from cnngraph.interop.torch_import import from_torch

        return from_torch(result, input=input if input is not None else (3, H, W),
                          name=where.rsplit(":", 1)[-1])
    raise CnnGraphError(f"{where} returned a {type(result).__name__}; expected a graph, a DSL Net or a torch.nn.Module")


def _same_input(g, input):
    return tuple(g.nodes[g.graph["inputs"][0]]["shape"]) == tuple(input)
