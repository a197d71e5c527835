"""Presentation: everything a person reads.

* :mod:`cnngraph.present.tables`: per-layer tables (text, markdown, csv, latex, json);
* :mod:`cnngraph.present.render`: Graphviz diagrams;
* :mod:`cnngraph.present.plots`: matplotlib charts;
* :mod:`cnngraph.present.gallery`: the static gallery of the zoo.

Sizes, shapes and formulas are printed by :mod:`cnngraph.ir.printer` (``2C×⌊H/2⌋×W``, ``18HWC²``).

May import: :mod:`cnngraph.ir`, :mod:`cnngraph.analysis`, :mod:`cnngraph.formulas`, :mod:`cnngraph.zoo`.
Never :mod:`cnngraph.cli`.

>>> from cnngraph import zoo, analyze
>>> from cnngraph.present.render import layout
>>> "| conv1 | 1 | 28 | 20 | 5 | 1 | 2 | 20 | 28 | 61 | 0.52 | 0.392 |" in analyze(zoo.build("lenet5")).to("markdown")
True
>>> [b.label for b in layout(zoo.build("lenet5")).boxes.values()][:2]
['Input 1×28×28', '5x5 conv, 20']
"""
