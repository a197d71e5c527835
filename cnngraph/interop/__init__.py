"""Exchange with other frameworks: :mod:`cnngraph.interop.torch_ref` turns a graph and its
weights into an eval-mode PyTorch module (the numeric reference of the backends).

May import: :mod:`cnngraph.ir`, :mod:`cnngraph.compiler.weights`, torch (optional, at import of the module).
"""
