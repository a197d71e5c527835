"""Analyses of a graph: costs (:mod:`cnngraph.analysis.cost`), receptive fields
(:mod:`cnngraph.analysis.receptive`) and pooling matrices (:mod:`cnngraph.analysis.pooling_matrix`).

May import: :mod:`cnngraph.ir`, and :mod:`cnngraph.present` only to print (inside functions).
"""
