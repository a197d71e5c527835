"""cnngraph: a symbolic graph compiler and visualizer for convolutional networks.

>>> import cnngraph
>>> r = cnngraph.analyze(cnngraph.zoo.build("resnet50"))
>>> r.total.params
25557032
"""
from . import ops, symbols, zoo
from .cost import Convention, Report, analyze
from .errors import CnnGraphError, FitWarning, GraphError, ShapeError
from .graph import CnnGraph, check, infer_shapes, topo_order, with_input

__version__ = "0.1.0"


def from_torch(module, input=None, name=None):
    """A PyTorch ``nn.Module`` as a graph (see :func:`cnngraph.torch_import.from_torch`);
    imports torch only when called.

    >>> import torch
    >>> from_torch(torch.nn.Conv2d(3, 8, 3), input=(3, 5, 5)).nodes["input"]["shape"]
    (3, 5, 5)
    """
    from .symbols import H, W
    from .torch_import import from_torch as convert

    return convert(module, input=input if input is not None else (3, H, W), name=name)


__all__ = ["analyze", "from_torch", "Convention", "Report", "zoo", "ops", "symbols", "CnnGraph", "check", "infer_shapes",
           "topo_order", "with_input", "CnnGraphError", "ShapeError", "GraphError", "FitWarning"]
