"""cnngraph: a symbolic graph compiler and visualizer for convolutional networks.

The package is lazy (PEP 562): ``import cnngraph`` imports no sympy, networkx or numba; each
name below is imported on first use, so the command line starts at once.

>>> import cnngraph
>>> r = cnngraph.analyze(cnngraph.zoo.build("resnet50"))
>>> r.total.params
25557032

Layout (docs/architecture.md): :mod:`cnngraph.ir` (graph, op registry, symbols, errors) →
:mod:`cnngraph.analysis` and :mod:`cnngraph.formulas` (costs, receptive fields, formulas) →
:mod:`cnngraph.present` (tables, diagrams, plots, gallery) and :mod:`cnngraph.compiler`
(passes, plan, weights) → ``cnngraph.backends``; :mod:`cnngraph.onnx` and
:mod:`cnngraph.interop` exchange graphs with other tools; :mod:`cnngraph.zoo` holds the
models; :mod:`cnngraph.cli` the commands.
"""
from __future__ import annotations

import importlib
import sys

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_LAZY = {
    "analyze": ("cnngraph.analysis.cost", "analyze"),
    "Convention": ("cnngraph.analysis.cost", "Convention"),
    "Report": ("cnngraph.analysis.cost", "Report"),
    "CnnGraph": ("cnngraph.ir.graph", "CnnGraph"),
    "check": ("cnngraph.ir.graph", "check"),
    "infer_shapes": ("cnngraph.ir.graph", "infer_shapes"),
    "topo_order": ("cnngraph.ir.graph", "topo_order"),
    "with_input": ("cnngraph.ir.graph", "with_input"),
    "CnnGraphError": ("cnngraph.ir.errors", "CnnGraphError"),
    "ShapeError": ("cnngraph.ir.errors", "ShapeError"),
    "GraphError": ("cnngraph.ir.errors", "GraphError"),
    "FitWarning": ("cnngraph.ir.errors", "FitWarning"),
    "InputError": ("cnngraph.ir.errors", "InputError"),
    "ops": ("cnngraph.ir.ops", None),
    "symbols": ("cnngraph.ir.symbols", None),
}
# subpackages reachable as attributes (``cnngraph.zoo.build(...)`` after ``import cnngraph``)
_SUBPACKAGES = ("zoo", "dsl", "formulas", "ir", "analysis", "present", "compiler", "onnx", "interop", "backends", "cli", "io")

__all__ = list(_LAZY) + ["zoo", "from_torch"]


def from_torch(module, input=None, name=None):
    """A PyTorch ``nn.Module`` as a graph (see :func:`cnngraph.interop.torch_import.from_torch`);
    imports torch only when called.

    >>> import torch
    >>> from_torch(torch.nn.Conv2d(3, 8, 3), input=(3, 5, 5)).nodes["input"]["shape"]
    (3, 5, 5)
    """
    from cnngraph.interop.torch_import import from_torch as convert
    from cnngraph.ir.symbols import H, W

    return convert(module, input=input if input is not None else (3, H, W), name=name)


def svg(g) -> str:
    """The SVG diagram of graph ``g`` (:func:`cnngraph.present.render.to_svg`): what a
    notebook shows for a graph."""
    from cnngraph.present.render import to_svg

    return to_svg(g)


def notebook_display(shell=None) -> bool:
    """Make IPython (``shell``, default the running one) draw every graph as its SVG diagram.

    Registered by the class's name, so neither the graph module nor the renderer is imported
    until a graph is shown; called when cnngraph is imported inside IPython. True when a shell
    took it.
    """
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None:
        return False
    shell.display_formatter.formatters["image/svg+xml"].for_type_by_name("cnngraph.ir.graph", "CnnGraph", svg)
    return True


notebook_display()


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"cnngraph.{name}")
    if name not in _LAZY:
        raise AttributeError(f"module 'cnngraph' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))
