"""Which knob goes where: the sweepable model families and the kinds of knobs.

A knob is of one of three kinds:

* ``multiplier``: a width multiplier, passed to the builder as a symbolic
  :class:`~cnngraph.dsl.knobs.Multiplier` (closed form in the rounded widths);
* ``size``: an integer size (the input resolution), passed as a positive-integer symbol;
* ``structural``: changes the graph (depth, kernel size, groups, expansion ratio): one
  graph per value, built with the symbolic knobs left symbolic.

A :class:`Family` turns a design point (knob -> value, numbers or symbols) into a graph.

>>> f = family("resnet50")
>>> f.kinds
{'a': 'multiplier', 'r': 'size', 'd': 'structural', 'g': 'structural'}
>>> f.build(a=0.5, r=160).nodes["input"]["shape"]
(3, 160, 160)
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

from cnngraph.ir.errors import CnnGraphError

KINDS = ("multiplier", "size", "structural")


@dataclass
class Family:
    """A builder ``fn(**point) -> graph`` and the kind of each knob it takes.

    ``defaults`` are the values of knobs a space leaves out; knobs not in ``kinds`` are
    structural options passed to ``fn`` by name.
    """

    name: str
    fn: Callable
    kinds: dict
    defaults: dict = field(default_factory=dict)
    doc: str = ""

    def kind(self, knob: str) -> str:
        return self.kinds.get(knob, "structural")

    def build(self, **point):
        return self.fn(**{**self.defaults, **point})


def _zoo_input(name, r):
    from cnngraph import zoo

    c = zoo.info(name).input[0]
    return (c, r, r)


def _resnet(model):
    def build(a=1.0, r=224, d=1, g=1):
        from cnngraph import zoo

        if 64 % g:
            raise CnnGraphError(f"{model}: groups g={g} must divide 64")
        return zoo.build(model, input=_zoo_input(model, r), width_mult=a, depth_mult=d, groups=g,
                         width_per_group=64 // g)

    return Family(model, build, dict(a="multiplier", r="size", d="structural", g="structural"),
                  doc="a: width multiplier (first stage make_divisible(64·a)); r: resolution; d: depth multiplier "
                      "(⌈n·d⌉ blocks per stage); g: groups of the 3×3 convs at the same width")


def _mobilenet_v2():
    def build(a=1.0, r=224, d=1, e=6, k=3):
        from cnngraph import zoo

        return zoo.build("mobilenet_v2", input=(3, r, r), width_mult=a, depth_mult=d, expand_ratio=e, kernel=k)

    return Family("mobilenet_v2", build, dict(a="multiplier", r="size", d="structural", e="structural",
                                              k="structural"),
                  doc="a: width multiplier; r: resolution; d: depth multiplier; e: expansion ratio t; "
                      "k: depthwise kernel")


def _efficientnet():
    def build(a=1.0, r=224, d=1.0):
        from cnngraph import zoo

        return zoo.build("efficientnet_b0", input=(3, r, r), width_mult=a, depth_mult=d)

    return Family("efficientnet_b0", build, dict(a="multiplier", r="size", d="structural"),
                  doc="B0 scaled: a: width multiplier β^φ; d: depth multiplier α^φ (⌈n·d⌉ per stage); "
                      "r: resolution")


FAMILIES = {**{f"resnet{n}": (lambda n=n: _resnet(f"resnet{n}")) for n in (18, 34, 50, 101, 152)},
            "mobilenet_v2": _mobilenet_v2, "efficientnet_b0": _efficientnet}


def family(model, kinds: dict | None = None) -> Family:
    """The :class:`Family` of a zoo name, or one around a builder function.

    A zoo model with no family gets ``r`` (resolution) as a size knob and its options as
    structural knobs. A function gets ``a``/``w`` as multipliers and ``r`` as a size unless
    ``kinds`` says otherwise.
    """
    if isinstance(model, Family):
        return model
    if callable(model):
        default = {k: ("multiplier" if k in ("a", "w") else "size" if k == "r" else "structural")
                   for k in inspect.signature(model).parameters}
        bad = [k for k, v in (kinds or {}).items() if v not in KINDS]
        if bad:
            raise CnnGraphError(f"knob {bad[0]!r}: kind must be one of {', '.join(KINDS)}")
        return Family(getattr(model, "__name__", "builder"), model, {**default, **(kinds or {})})
    if model in FAMILIES:
        f = FAMILIES[model]()
        if kinds:
            f.kinds.update(kinds)
        return f
    from cnngraph import zoo

    zoo.info(model)  # an unknown name fails here with the zoo's message

    def build(r=None, **options):
        return zoo.build(model, input=None if r is None else _zoo_input(model, r), **options)

    return Family(model, build, {"r": "size", **(kinds or {})}, doc="r: resolution; other knobs: model options")
