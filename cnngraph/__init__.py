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

__all__ = ["analyze", "Convention", "Report", "zoo", "ops", "symbols", "CnnGraph", "check", "infer_shapes",
           "topo_order", "with_input", "CnnGraphError", "ShapeError", "GraphError", "FitWarning"]
