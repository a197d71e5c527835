"""Compiler passes: functions from a graph to a graph (or to a schedule / fusion groups).

Each pass leaves its input untouched and returns a new :class:`~cnngraph.ir.graph.CnnGraph`
that every graph function (``infer_shapes``, ``analyze``...) still accepts:

* :func:`schedule` — a deterministic topological order;
* :func:`eliminate_dead` — dropout/identity removal, nodes that reach no output dropped;
* :func:`fold_batchnorm` — inference-time batch norm folded into the preceding conv or
  linear layer (seed 001: "during testing batchnorm becomes a linear operator ... can be
  fused with the previous conv"), only when that layer's output has no other consumer;
* :func:`fuse_epilogues` — groups an anchor (conv, linear, standalone batch norm, add)
  with the element-wise tail it feeds: activation, residual add, activation.

>>> from cnngraph import zoo
>>> from cnngraph.compiler.weights import init
>>> g = zoo.build("resnet18")
>>> h, ws = fold_batchnorm(g, init(g, seed=0))
>>> sum(d["op"] == "batchnorm" for _, d in h.nodes(data=True)), h.nodes["conv1"]["attrs"]["bias"]
(0, True)
>>> f = fuse_epilogues(h)
>>> f["layer1.0.conv2"].residual, f["layer1.0.conv2"].act2, f["layer1.0.conv2"].output
('maxpool', 'relu', 'layer1.0.relu')
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from cnngraph.ir import ops
from cnngraph.ir.graph import outputs, topo_order


def _role(g, n):
    return ops.get(g.nodes[n]["op"])


def schedule(g) -> list:
    """The execution order: a topological order, insertion order breaking ties.

    >>> from cnngraph import zoo
    >>> schedule(zoo.build("lenet5"))[:3]
    ['input', 'conv1', 'relu1']
    """
    return topo_order(g)


# ---------------------------------------------------------------- graph surgery helpers
def _consumers(g, n) -> list:
    return list(g.successors(n))


def _is_output(g, n) -> bool:
    return n in outputs(g)


def _rewire(g, old, new) -> None:
    """Every use of ``old`` (as an input or a graph output) becomes a use of ``new``; drop ``old``."""
    for s in list(g.successors(old)):
        d = g.nodes[s]
        d["inputs"] = [new if i == old else i for i in d["inputs"]]
        g.remove_edge(old, s)
        if not g.has_edge(new, s):
            g.add_edge(new, s, port=d["inputs"].index(new))
    if g.graph.get("outputs"):
        g.graph["outputs"] = [new if o == old else o for o in g.graph["outputs"]]
    g.remove_node(old)


def _copy(g):
    h = g.copy()
    h.graph = dict(g.graph)
    h.graph["outputs"] = list(outputs(g))  # pin the outputs: removing nodes must not create sinks
    h.graph["inputs"] = list(g.graph.get("inputs", []))
    for n in h.nodes:
        h.nodes[n]["inputs"] = list(h.nodes[n]["inputs"])
    return h


# ---------------------------------------------------------------- dead-node elimination
def eliminate_dead(g):
    """Drop dropout and identity nodes (the identity at inference) and nodes that reach no output.

    >>> from cnngraph import zoo
    >>> h = eliminate_dead(zoo.build("alexnet"))
    >>> [n for n in h if h.nodes[n]["op"] == "dropout"], h.nodes["classifier.1"]["inputs"]
    ([], ['flatten'])
    """
    h = _copy(g)
    for n in schedule(g):
        if _role(h, n).passthrough:
            _rewire(h, n, h.nodes[n]["inputs"][0])
    keep = set(outputs(h)) | set(h.graph["inputs"])
    for o in outputs(h):
        keep |= nx.ancestors(h, o)
    h.remove_nodes_from([n for n in list(h.nodes) if n not in keep])
    return h


# ---------------------------------------------------------------- batch-norm folding
def fold_batchnorm(g, weights: dict | None = None, in_place: bool = False):
    """Fold every batch norm that directly follows a conv or linear layer into it.

    Returns ``(graph, weights)``: the producer gets ``bias=True`` and, when ``weights`` is
    given, weights ``W·s`` and bias ``(b − μ)·s + β`` with ``s = γ/√(σ² + ε)``. A batch norm
    is left alone when the producer's output has another consumer or is a graph output.
    The weights dict is copied, never changed in place, unless ``in_place``: then the
    folded arrays replace the originals in ``weights`` itself (and the batch norms' entries
    are removed), so each original can be freed as soon as it is folded (ResNet-50's
    weights are 97 MB: folding a copy holds both).
    """
    h = _copy(g)
    ws = (weights if in_place else dict(weights)) if weights is not None else None
    for n in schedule(g):
        d = h.nodes[n]
        if not _role(h, n).folds:
            continue
        (p,) = d["inputs"]
        pd = h.nodes[p]
        if not _role(h, p).absorbs_norm or len(_consumers(h, p)) != 1 or _is_output(h, p):
            continue
        if ws is not None:
            cout = int(pd["shape"][0])
            scale, shift = ops.bn_scale_shift(ws, n, d["attrs"], cout)
            w = ws[f"{p}.weight"]
            b = ws[f"{p}.bias"].astype(np.float64) if pd["attrs"]["bias"] else np.zeros(cout)
            # scale and shift are computed in float64; the product rounds once to the weights' type
            along = _role(h, p).scale_outputs  # which weight axis holds the output channels: the registry says
            ws[f"{p}.weight"] = (along(w, scale.astype(w.dtype), pd["attrs"]) if along is not None
                                 else w * scale.astype(w.dtype).reshape((-1,) + (1,) * (w.ndim - 1)))
            ws[f"{p}.bias"] = (b * scale + shift).astype(w.dtype)
            for f in ("weight", "bias", "running_mean", "running_var"):
                ws.pop(f"{n}.{f}", None)
        pd["attrs"] = {**pd["attrs"], "bias": True}
        _rewire(h, n, p)
    return h, ws


# ---------------------------------------------------------------- epilogue fusion
@dataclass
class Fusion:
    """An anchor and the element-wise tail folded into its output loop.

    The fused step computes ``act2(act1(anchor(...)) + residual)``; ``output`` is the node
    whose value it produces, ``absorbed`` the nodes it replaces (activations, the add).
    """

    anchor: str
    output: str
    act1: str | None = None
    residual: str | None = None
    act2: str | None = None
    absorbed: list = field(default_factory=list)


def _single_use(g, n) -> str | None:
    """The only consumer of ``n``, when it has exactly one (one edge, one port) and is no output."""
    cs = _consumers(g, n)
    if len(cs) != 1 or _is_output(g, n) or g.nodes[cs[0]]["inputs"].count(n) != 1:
        return None
    return cs[0]


def fuse_epilogues(g, order=None) -> dict:
    """``{anchor: Fusion}`` for every conv, linear, batch norm and add of ``g``.

    Walking down single-consumer edges from a conv, linear or batch norm: an activation
    (act1), then a two-input add whose other operand (the residual) is scheduled before the
    add, then an activation (act2). An add that is not absorbed this way is an anchor
    itself: its second input is the residual and a following activation its act2. When
    both operands of an add could absorb it, the first anchor in the schedule does; the
    fused step runs where the add was, so the other operand is ready by then.
    """
    order = order or schedule(g)
    pos = {n: i for i, n in enumerate(order)}
    taken: set = set()
    out: dict = {}

    def follow(n, fusion):
        c = _single_use(g, n)
        return c if c is not None and c not in taken and _role(g, c).fusion == fusion else None

    def is_merge(n):  # an anchor that sums its inputs (add): it takes the residual itself
        return _role(g, n).kind == "merge"

    for n in order:
        if _role(g, n).fusion != "anchor" or n in taken:
            continue
        f = Fusion(n, n)
        if is_merge(n):
            ins = g.nodes[n]["inputs"]
            f.residual = ins[1] if len(ins) == 2 else None
        else:
            c = follow(f.output, "act")
            if c:
                f.act1, f.output = g.nodes[c]["op"], c
                f.absorbed.append(c)
            c = _single_use(g, f.output)
            c = c if c is not None and c not in taken and is_merge(c) and _role(g, c).fusion == "anchor" else None
            if c and len(g.nodes[c]["inputs"]) == 2:
                other = [i for i in g.nodes[c]["inputs"] if i != f.output][0]
                if pos[other] < pos[c]:
                    f.residual, f.output = other, c
                    f.absorbed.append(c)
        if f.residual is not None:
            c = follow(f.output, "act")
            if c:
                f.act2, f.output = g.nodes[c]["op"], c
                f.absorbed.append(c)
        taken.update(f.absorbed)
        out[n] = f
    return out
