"""Presentation: everything a person reads.

* :mod:`cnngraph.present.printer`: the one printer of sizes, shapes and formulas (``18HWC²``);
* :mod:`cnngraph.present.tables`: per-layer tables (text, markdown, csv, latex, json);
* :mod:`cnngraph.present.render`: Graphviz diagrams;
* :mod:`cnngraph.present.plots`: matplotlib charts;
* :mod:`cnngraph.present.gallery`: the static gallery of the zoo.

May import: :mod:`cnngraph.ir`, :mod:`cnngraph.analysis`, :mod:`cnngraph.formulas`, :mod:`cnngraph.zoo`.
Never :mod:`cnngraph.cli`.
"""
