"""The model zoo: architectures of the seeds written in the DSL, under torchvision's names.

>>> from cnngraph import zoo
>>> g = zoo.build("resnet50")
>>> g.nodes["layer3.5.conv2"]["shape"]
(256, 14, 14)
>>> "alexnet" in zoo.names()
True
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from cnngraph.ir.errors import CnnGraphError


@dataclass
class ModelInfo:
    name: str
    fn: Callable
    input: tuple
    summary: str
    options: dict = field(default_factory=dict)
    family: str = ""


MODELS: dict[str, ModelInfo] = {}

# Modules holding zoo models, in the zoo's order; each registers its models on import.
MODULES = ("classic", "resnet", "mobile", "efficientnet", "inception", "densenet", "preact", "cifar", "resnext",
           "senet", "nasnet")


def register(name: str, input: tuple, summary: str, family: str = "", **options):
    """Register ``fn(input=..., **options) -> graph`` under ``name``; options fix variants."""

    def wrap(fn):
        MODELS[name] = ModelInfo(name, fn, tuple(input), summary, dict(options), family or fn.__module__.rsplit(".", 1)[-1])
        return fn

    return wrap


def _load(until: str | None = None):
    """Import the zoo modules in order (each registers its models); stop once ``until`` is
    registered, so building one model imports only the modules up to its own."""
    for m in MODULES:
        if until is not None and until in MODELS:
            return
        importlib.import_module(f"{__name__}.{m}")


def names() -> list:
    """Every model's name in a fixed order: by zoo module (:data:`MODULES`), then as the module
    registers them, whatever was imported first (models registered elsewhere come last)."""
    _load()
    modules = {f"{__name__}.{m}": i for i, m in enumerate(MODULES)}
    rank = {n: i for i, n in enumerate(MODELS)}
    return sorted(MODELS, key=lambda n: (modules.get(MODELS[n].fn.__module__, len(modules)), rank[n]))


def info(name: str) -> ModelInfo:
    _load(until=name)
    try:
        return MODELS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(MODELS), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise CnnGraphError(f"unknown model {name!r}; {hint}`cnngraph zoo` lists the {len(MODELS)} models") from None


def build(name: str, input=None, **options):
    """Build zoo model ``name`` on ``input`` (default: the model's usual input) as a graph."""
    m = info(name)
    return m.fn(input=tuple(input) if input is not None else m.input, **{**m.options, **options})
