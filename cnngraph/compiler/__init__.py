"""The compiler: passes (:mod:`cnngraph.compiler.passes`), then lowering and memory planning
(:mod:`cnngraph.compiler.plan`); weights by torchvision name (:mod:`cnngraph.compiler.weights`).
:func:`compile` (in :mod:`cnngraph.compiler.pipeline`) chains them.

``from cnngraph.compiler import compile`` imports the pipeline on first use.

May import: :mod:`cnngraph.ir`, numpy. Read by ``cnngraph.backends``.
"""
from __future__ import annotations


def __getattr__(name: str):
    if name in ("compile", "Plan"):
        from cnngraph.compiler import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'cnngraph.compiler' has no attribute {name!r}")
