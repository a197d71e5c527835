"""The compiler: passes (:mod:`cnngraph.compiler.passes`), then lowering and memory planning
(:mod:`cnngraph.compiler.plan`); weights by torchvision name (:mod:`cnngraph.compiler.weights`).
:func:`compile` (in :mod:`cnngraph.compiler.pipeline`) chains them.

``from cnngraph.compiler import compile`` imports the pipeline on first use.

May import: :mod:`cnngraph.ir`, numpy. Read by ``cnngraph.backends``.

>>> from cnngraph import zoo
>>> from cnngraph.compiler import compile
>>> plan = compile(zoo.build("lenet5"))
>>> [s.op for s in plan.steps][:3]
['conv2d', 'maxpool2d', 'conv2d']
"""
from __future__ import annotations


def __getattr__(name: str):
    if name in ("compile", "Plan"):
        from cnngraph.compiler import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'cnngraph.compiler' has no attribute {name!r}")
