"""Receptive fields of every node of a graph: size, jump (stride in input pixels) and start.

For each node and each spatial axis (H, then W):

* ``size``  how many input pixels one output unit sees (padding included);
* ``jump``  the distance in input pixels between two neighbouring output units;
* ``start`` the centre of the first output unit's field, in input pixel coordinates (pixel
  ``i`` at coordinate ``i``; negative or half-integer where padding or even kernels put it).

A window layer (conv, pooling) of kernel ``k``, dilation ``d``, stride ``s`` and leading
padding ``p`` maps ``(size, jump, start)`` to ``(size + d(k−1)·jump, jump·s,
start + (d(k−1)/2 − p)·jump)``; a transposed convolution (an output every 1/s input pixels) maps
it to ``(size + (⌈(d(k−1) + 1)/s⌉ − 1)·jump, jump/s, start + (p − d(k−1)/2)·jump/s)``, fractions of an
input pixel (its size counts the most input pixels one output sees: ⌈(d(k−1) + 1)/s⌉ − 1 more
than the field before it, in steps of ``jump``); element-wise layers keep the field. Global pooling and
``flatten`` see the whole input (``whole=True``; the size is then the span of the last
feature map). A node with several inputs (add, concat, mul) takes the **largest** field
over its inputs (``merged=True``): the max over paths, so a residual block's output counts
its longest path and a squeeze-and-excitation scale makes every later field whole.

Sizes stay symbolic when kernels are: three stacked stride-1 3×3 convs see 7×7, three K×K
convs see (3K − 2)×(3K − 2).

>>> from cnngraph.dsl import Net, conv2d
>>> net = Net("three"); x = net.input(64, 56, 56)
>>> for i in range(3): x = conv2d(x, 64, 3, padding=1)
>>> receptive_field(net.graph)
Field(size=(7, 7), jump=(1, 1), start=(0, 0))
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from cnngraph.ir import graph as _graph
from cnngraph.ir import ops
from cnngraph.ir.ops import is_int, tidy


@dataclass(frozen=True)
class Field:
    """The receptive field of one node along (H, W)."""

    size: tuple
    jump: tuple
    start: tuple
    whole: bool = False  # sees the whole input (global pooling, flatten, a fully connected layer)
    merged: bool = False  # the max over several input paths was taken here or upstream
    approximate: bool = False  # an adaptive pool whose windows do not tile its input evenly

    def __repr__(self):
        flags = "".join(f", {f}=True" for f in ("whole", "merged", "approximate") if getattr(self, f))
        return f"Field(size={self.size}, jump={self.jump}, start={self.start}{flags})"

    def __str__(self):
        def pair(v):
            a, b = (_show(x) for x in v)
            return a if a == b else f"{a}×{b}"

        s = f"{pair(self.size)}, jump {pair(self.jump)}, start {pair(self.start)}"
        if self.whole:
            s += " (whole input)"
        return s

    @property
    def label(self) -> str:
        """Short form for a table column: ``7``, ``7×5``, ``427 (all)``."""
        a, b = (_show(x) for x in self.size)
        s = a if a == b else f"{a}×{b}"
        return s + (" (all)" if self.whole else "") + ("~" if self.approximate else "")


def _show(x):
    if isinstance(x, sympy.Basic) and not x.is_Integer:
        from cnngraph.ir.printer import text

        return text(x)
    return str(x)


INPUT = Field((1, 1), (1, 1), (0, 0))


def _window(f: Field, kernel, stride, pad_lead, dilation=(1, 1), **flags) -> Field:
    size, jump, start = [], [], []
    for ax in range(2):
        span = tidy(dilation[ax] * (kernel[ax] - 1))
        size.append(tidy(f.size[ax] + span * f.jump[ax]))
        start.append(tidy(f.start[ax] + (sympy.Rational(1, 2) * span - pad_lead[ax]) * f.jump[ax]))
        jump.append(tidy(f.jump[ax] * stride[ax]))
    return Field(tuple(size), tuple(jump), tuple(start), f.whole or flags.get("whole", False), f.merged,
                 f.approximate or flags.get("approximate", False))


def _transposed(f: Field, kernel, stride, pad_lead, dilation) -> Field:
    """Output o of a transposed convolution takes input (o + p − i·d)/s for the taps i that
    land on an input pixel: at most ⌈(d(k−1) + 1)/s⌉ of them, centred on (p − d(k−1)/2)/s, a
    step of 1/s between outputs.

    >>> _transposed(INPUT, (2, 3), (2, 2), (0, 1), (1, 1))
    Field(size=(1, 2), jump=(1/2, 1/2), start=(-1/4, 0))
    """
    size, jump, start = [], [], []
    for ax in range(2):
        s = sympy.sympify(stride[ax])
        span = dilation[ax] * (kernel[ax] - 1)
        seen = ops.ceildiv(span + 1, s)
        size.append(tidy(f.size[ax] + (seen - 1) * f.jump[ax]))
        start.append(tidy(f.start[ax] + (pad_lead[ax] - sympy.Rational(1, 2) * span) / s * f.jump[ax]))
        jump.append(tidy(f.jump[ax] / s))
    return Field(tuple(size), tuple(jump), tuple(start), f.whole, f.merged, f.approximate)


def _adaptive(f: Field, in_hw, out_hw) -> Field:
    kernel, stride, approx = [], [], False
    for L, o in zip(in_hw, out_hw):
        if is_int(L) and is_int(o):
            L, o = int(L), int(o)
            k = max(-(-(i + 1) * L // o) - (i * L) // o for i in range(o))
            approx |= L % o != 0
        else:
            q = sympy.sympify(L) / o
            k = tidy(q) if q.is_integer else tidy(sympy.ceiling(q) + 1)
            approx |= not q.is_integer
        kernel.append(k)
        stride.append(tidy(sympy.sympify(L) / o))
    whole = tuple(out_hw) == (1, 1)
    return _window(f, kernel, stride, (0, 0), whole=whole, approximate=approx and not whole)


def _bigger(a, b) -> bool | None:
    """a ≥ b when decidable (numbers, or for every value of the symbols), else None."""
    if is_int(a) and is_int(b):
        return int(a) >= int(b)
    d = sympy.expand(sympy.sympify(a) - b)
    if d.is_nonnegative:
        return True
    if d.is_negative:
        return False
    return None


def _merge(fields: list) -> Field:
    """The largest field over several inputs; sizes that cannot be ordered give sympy Max."""
    if len(fields) == 1:
        return fields[0]
    best = fields[0]
    size = list(best.size)
    for f in fields[1:]:
        for ax in range(2):
            cmp = _bigger(f.size[ax], size[ax])
            if cmp is None:
                size[ax] = sympy.Max(size[ax], f.size[ax])
            elif cmp and f.size[ax] != size[ax]:
                size[ax] = f.size[ax]
        if all(_bigger(f.size[ax], best.size[ax]) for ax in range(2)) and f.size != best.size:
            best = f
    return Field(tuple(size), best.jump, best.start, any(f.whole for f in fields), True,
                 any(f.approximate for f in fields))


def receptive_fields(g, input=None) -> dict:
    """The :class:`Field` of every node, in topological order.

    ``input`` re-infers shapes for a new input shape first (only global pooling and flatten
    depend on it).
    """
    g = _graph.as_graph(g)
    shapes = _graph.infer_shapes(g, input) if input is not None else {n: d["shape"] for n, d in g.nodes(data=True)}
    out: dict = {}
    for n in _graph.topo_order(g):
        d = g.nodes[n]
        op, a = d["op"], d["attrs"]
        ins = [out[i] for i in d["inputs"]]
        if op == "input":
            out[n] = INPUT
            continue
        f = _merge(ins)
        x = shapes[d["inputs"][0]]
        entry = ops.get(op)  # how the op's outputs see its input: the registry says
        if entry.spatial == "window":
            w = entry.window(a)
            out[n] = _window(f, w.kernel, w.stride, w.padding[:2], w.dilation)
        elif entry.spatial == "transposed":
            w = entry.window(a)
            out[n] = _transposed(f, w.kernel, w.stride, w.padding[:2], w.dilation)
        elif entry.spatial == "adaptive":
            out[n] = _adaptive(f, x[1:], a["output_size"])
        elif entry.spatial == "whole" and len(x) == 3 and not f.whole:
            out[n] = _window(f, x[1:], x[1:], (0, 0), whole=True)
        else:
            out[n] = f
    return out


def receptive_field(g, node=None, input=None) -> Field:
    """The :class:`Field` of ``node`` (default: the graph's first output)."""
    g = _graph.as_graph(g)
    fields = receptive_fields(g, input)
    return fields[node if node is not None else _graph.outputs(g)[0]]


def column(g, input=None) -> dict:
    """``{node: short label}`` for the receptive-field column of :mod:`cnngraph.present.tables`;
    nodes with several inputs say that they took the max over their paths: ``19 (max)``."""
    g = _graph.as_graph(g)
    return {n: f.label + (" (max)" if len(g.nodes[n]["inputs"]) > 1 else "")
            for n, f in receptive_fields(g, input).items()}
