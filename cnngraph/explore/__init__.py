"""Design-space exploration: sweeps over a model family's knobs, exact answers, measured latency.

>>> from cnngraph import explore
>>> t = explore.sweep("mobilenet_v2", "a=0.5|1.0, r=160|224")
>>> t["macs"].tolist()
[50184000, 97131840, 154083200, 300774272]

Modules: :mod:`.space` (the ``--space`` grammar), :mod:`cnngraph.dsl.knobs` (symbolic width
multipliers), :mod:`.families` (which knob goes where), :mod:`.sweep` (closed forms over
arrays), :mod:`.table` (results), :mod:`.questions` (exact answers with sympy),
:mod:`.latency` (measured per-layer tables, Dask), :mod:`.pareto` (fronts and plots).
"""
from __future__ import annotations

from cnngraph.explore.families import FAMILIES, Family, family
from cnngraph.dsl.knobs import Multiplier
from cnngraph.explore.space import Space, parse_space
from cnngraph.explore.sweep import FIELDS, check, closed_form, evaluate, sweep
from cnngraph.explore.table import Table

__all__ = ["sweep", "check", "evaluate", "closed_form", "Space", "parse_space", "Family", "family", "FAMILIES",
           "Multiplier", "Table", "FIELDS"]
