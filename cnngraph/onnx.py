"""ONNX export and import (``import cnngraph.onnx``; needs the ``onnx`` extra).

>>> from cnngraph import zoo, weights
>>> from cnngraph import onnx as cg_onnx
>>> g = zoo.build("lenet5")
>>> m = cg_onnx.export(g, weights.init(g, seed=0))
>>> m.graph.node[0].name, m.graph.initializer[0].name
('conv1', 'conv1.weight')
"""
from .onnx_export import export, save

__all__ = ["export", "save"]
