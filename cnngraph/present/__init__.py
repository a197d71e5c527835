"""Presentation: everything a person reads.

* :mod:`cnngraph.present.tables`: per-layer tables (text, markdown, csv, latex, json);
* :mod:`cnngraph.present.render`: Graphviz diagrams;
* :mod:`cnngraph.present.plots`: matplotlib charts;
* :mod:`cnngraph.present.gallery`: the static gallery of the zoo.

Sizes, shapes and formulas are printed by :mod:`cnngraph.ir.printer` (``2C×⌊H/2⌋×W``, ``18HWC²``).

May import: :mod:`cnngraph.ir`, :mod:`cnngraph.analysis`, :mod:`cnngraph.formulas`, :mod:`cnngraph.zoo`.
Never :mod:`cnngraph.cli`.
"""
