"""Exchange with other frameworks: :mod:`cnngraph.interop.torch_ref` turns a graph and its
weights into an eval-mode PyTorch module (the numeric reference of the backends).

May import: :mod:`cnngraph.ir`, :mod:`cnngraph.compiler.weights`, torch (optional, at import of the module).

>>> import torch
>>> from cnngraph import zoo
>>> from cnngraph.interop.torch_ref import TorchGraph
>>> from cnngraph.compiler.weights import init
>>> g = zoo.build("lenet5")
>>> TorchGraph(g, init(g, seed=0))(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""
