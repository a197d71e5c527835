"""Closed-form cost formulas and design algebra.

Costs of blocks and networks built with the DSL on symbolic sizes, as sympy expressions
laid out the way the lecture slides write them (``18HWC²``, ``(9C + C²)HW``), and the
algebra designers do with them: ratios, limits, equal-cost conditions solved for a width,
compound scaling.

>>> from cnngraph import formulas
>>> b = formulas.block("basic")
>>> str(b.cost), b.cost.latex, b.cost.json
('18HWC²', '18 H W C^{2}', '18*H*W*C**2')
>>> formulas.study("resnext_widths").findings[0]
'equal cost when (8Cc + 9c²)HWG = 17HWC², i.e. 9Gc² + 8GCc − 17C² = 0'
>>> str(formulas.network("resnet18").totals["macs"])
'37011456hw + 512000'

What a block's cost includes is stated by :data:`CONVENTION` (conv and linear MACs by
default; ``include=("norm", "act", "merge", "pool")`` adds the others).
"""
from __future__ import annotations

from cnngraph.formulas.algebra import (STUDIES, Equation, Study, compare, efficientnet_scaling, equal_cost, limit, ratio,
                      resnext_widths, study)
from cnngraph.formulas.blocks import BLOCKS, Block, block, names
from cnngraph.formulas.core import Formula, convention_text, costs, over_count
from cnngraph.formulas.networks import NetworkFormulas, network

CONVENTION = convention_text()

__all__ = ["block", "names", "Block", "BLOCKS", "Formula", "costs", "over_count", "network", "NetworkFormulas",
           "compare", "ratio", "limit", "equal_cost", "Equation", "Study", "study", "STUDIES", "resnext_widths",
           "efficientnet_scaling", "CONVENTION", "catalogue"]


def catalogue() -> list:
    """``(kind, name, summary)`` of every named block and study (``cnngraph formula --list``)."""
    return ([("block", n, s.summary) for n, s in BLOCKS.items()]
            + [("study", n, summary) for n, (_, summary) in STUDIES.items()])
