"""ONNX export and import (``import cnngraph.onnx``; needs the ``onnx`` extra).

``export(g, weights)`` writes standard ONNX; ``load(path)`` reads a model back as a graph
whose weights are in ``g.graph["weights"]``.

>>> from cnngraph import zoo
>>> from cnngraph.compiler import weights
>>> from cnngraph import onnx as cg_onnx
>>> g = zoo.build("lenet5")
>>> m = cg_onnx.export(g, weights.init(g, seed=0))
>>> m.graph.node[0].name, m.graph.initializer[0].name
('conv1', 'conv1.weight')
>>> h = cg_onnx.load(m)
>>> sorted(h.graph["weights"])[:2], h.nodes["conv1"]["attrs"]["kernel"]
(['conv1.bias', 'conv1.weight'], (5, 5))
"""
from cnngraph.onnx.exporter import export, save
from cnngraph.onnx.common import tensor_array
from cnngraph.onnx.importer import load

__all__ = ["export", "save", "load", "tensor_array"]
