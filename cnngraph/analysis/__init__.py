"""Analyses of a graph: costs (:mod:`cnngraph.analysis.cost`), receptive fields
(:mod:`cnngraph.analysis.receptive`) and pooling matrices (:mod:`cnngraph.analysis.pooling_matrix`).

May import: :mod:`cnngraph.ir`, and :mod:`cnngraph.present` only to print (inside functions).

>>> from cnngraph import zoo
>>> from cnngraph.analysis.cost import analyze
>>> from cnngraph.analysis.receptive import receptive_fields
>>> g = zoo.build("alexnet")
>>> analyze(g).total.params, receptive_fields(g)["features.12"].size
(61100840, (195, 195))
"""
