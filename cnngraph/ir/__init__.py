"""The graph IR: what every other package reads.

* :mod:`cnngraph.ir.errors`: the exceptions (no dependency);
* :mod:`cnngraph.ir.symbols`: the positive-integer sympy symbols of sizes (``C``, ``H``, ``W``, ``N``...);
* :mod:`cnngraph.ir.ops`: the op registry, the single source of what an op means;
* :mod:`cnngraph.ir.graph`: the networkx graph with symbolic shapes, and shape inference.

May import: the standard library, sympy, networkx. Nothing else of cnngraph.

>>> from cnngraph.dsl import Net, conv2d
>>> from cnngraph.ir import ops, printer
>>> from cnngraph.ir.symbols import C, H, W
>>> y = conv2d(Net("one").input(C, H, W), 2 * C, 3, stride=2, padding=1)
>>> printer.shape(y.shape), ops.REGISTRY["conv2d"].kind
('2C×(⌊H/2 − 1/2⌋ + 1)×(⌊W/2 − 1/2⌋ + 1)', 'conv')
"""
