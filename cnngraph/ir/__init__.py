"""The graph IR: what every other package reads.

* :mod:`cnngraph.ir.errors`: the exceptions (no dependency);
* :mod:`cnngraph.ir.symbols`: the positive-integer sympy symbols of sizes (``C``, ``H``, ``W``, ``N``...);
* :mod:`cnngraph.ir.ops`: the op registry, the single source of what an op means;
* :mod:`cnngraph.ir.graph`: the networkx graph with symbolic shapes, and shape inference.

May import: the standard library, sympy, networkx. Nothing else of cnngraph.
"""
