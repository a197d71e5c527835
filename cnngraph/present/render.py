"""Graphviz diagrams of a graph, drawn the way the lecture slides draw networks.

Boxes carry the registry's slide-style labels ("7x7 conv, 64, /2", "3x3 max pool, /2",
"FC 1000") and a colour per kind of op; batch norm, activations and dropout fold into the
box they follow ("conv + BN + relu" is one box); residual shortcuts are blue skip edges;
parallel branches sit side by side; stages and blocks (node ``path``) are clusters; and a
run of identical blocks inside a stage collapses to its first block plus a summary box
("× 21 Bottleneck"), so ResNet-152 stays readable.

>>> from cnngraph import zoo
>>> from cnngraph.present.render import to_dot, layout
>>> lay = layout(zoo.build("resnet152"))
>>> [c.label for c in lay.clusters if c.depth == 1]
['layer1 · 3 × Bottleneck', 'layer2 · 8 × Bottleneck', 'layer3 · 36 × Bottleneck', 'layer4 · 3 × Bottleneck']
>>> "11x11 conv, 64, /4" in to_dot(zoo.build("alexnet"))
True

``render(g, "net.svg")`` writes SVG, PNG, PDF or DOT (by suffix); ``to_svg(g)`` returns the
SVG text (Jupyter shows a graph through it). Options (all keyword arguments):

``direction``  "TB" (default), "LR", "BT" or "RL"
``fold``       True: fold norm/act/dropout/flatten into their neighbour; False: one box
               per layer; or a tuple of kinds to fold, e.g. ``("act",)``
``collapse``   minimum run of identical blocks to collapse (default 3); 0 expands all
``shapes``     tensor shapes on edges (numeric, or symbolic such as 2C×H/2×W/2)
``costs``      params, multiply-adds and share of the total multiply-adds on boxes
``legend``     a colour key of the kinds of op drawn
``title``      the model name, input and totals above the diagram (default True)
"""
from __future__ import annotations

import hashlib
import html
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cnngraph.ir import graph as _graph
from cnngraph.ir import ops, printer
from cnngraph.ir.lazy import sympy  # imported where a value is symbolic
from cnngraph.ir.errors import CnnGraphError

# One colour per kind of op (fill); plots use the same palette.
KIND_COLOURS = {
    "input": "#e9ecef",
    "conv": "#a5d8ff",
    "pool": "#ffc9c9",
    "norm": "#d0bfff",
    "act": "#b2f2bb",
    "linear": "#ffe066",
    "merge": "#ffffff",
    "reshape": "#e9ecef",
    "dropout": "#f1f3f5",
}
KIND_NAMES = {"input": "input", "conv": "convolution", "pool": "pooling", "norm": "normalization",
              "act": "activation", "linear": "fully connected", "merge": "merge (+, ×, concat)",
              "reshape": "reshape / slice", "dropout": "dropout / identity"}
SKIP_COLOUR = "#1c7ed6"
INK = "#495057"  # outlines, edges and small text
FOLD_KINDS = ("norm", "act", "dropout")
FOLD_OPS = ("flatten", "identity")
FORMATS = ("svg", "png", "pdf", "dot")
FONT = "Helvetica"

# Words for the folded chain line ("conv · BN · relu") when the label is long.
_SHORT = {"conv": "conv", "pool": "pool", "linear": "FC", "merge": "merge", "reshape": "reshape", "input": "input"}


# ---------------------------------------------------------------- sizes as text
def fmt_size(x) -> str:
    """A size as the one printer writes it (:func:`cnngraph.ir.printer.size`): ``2C``, ``⌊H/2⌋``.

    >>> from cnngraph.ir.symbols import C, H
    >>> fmt_size(2 * C), fmt_size(sympy.floor(H / 2)), fmt_size(9 * C**2)
    ('2C', '⌊H/2⌋', '9C²')
    """
    return printer.size(x)


def fmt_shape(shape) -> str:
    """``(64, 56, 56)`` -> ``64×56×56``; symbolic sizes as the one printer writes them."""
    return printer.shape(shape)


def human(x) -> str:
    """23296 -> 23.3k, 72855552 -> 72.9M; symbolic values print compactly.

    >>> human(23296), human(72855552), human(4089184256), human(512)
    ('23.3k', '72.9M', '4.09G', '512')
    """
    if ops.is_sym(x) and not x.is_Number:
        return printer.size(x)
    x = int(x)
    for div, unit in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k")):
        if abs(x) >= div:
            v = x / div
            return (f"{v:.3g}" if v < 100 else f"{v:.0f}") + unit
    return str(x)


# ---------------------------------------------------------------- the visual graph
@dataclass
class Box:
    """One drawn node: a layer with the layers folded into it, or a summary of blocks."""

    id: str
    members: list  # raw node names, in graph order
    main: str  # the member whose label and colour the box takes
    kind: str
    label: str
    chain: str = ""  # the folded chain, e.g. "conv · BN · relu" ("" when nothing folded)
    scope: tuple = ()  # (name, kind) path of the cluster the box sits in
    repeat: int = 0  # > 0 for a summary box: how many blocks it stands for
    first: str = ""  # summary: first and last collapsed block
    last: str = ""
    like: str = ""  # summary: the expanded block the collapsed ones repeat
    full: str = ""  # a stage or block box: the scope's full name (its label may be short)


@dataclass
class Edge:
    src: str
    dst: str
    tensor: str  # raw node whose output the edge carries
    skip: bool = False


@dataclass
class Cluster:
    id: str
    scope: tuple  # (name, kind) pairs
    depth: int
    label: str
    boxes: list = field(default_factory=list)
    children: list = field(default_factory=list)


@dataclass
class Layout:
    """The diagram before Graphviz: boxes, edges and nested clusters (testable without ``dot``)."""

    name: str
    boxes: dict
    edges: list
    clusters: list  # every cluster, parents before children
    top: list  # box ids outside any cluster
    roots: list  # top-level clusters
    box_of: dict  # raw node -> box id

    def summaries(self) -> list:
        return [b for b in self.boxes.values() if b.repeat]


def _fold_set(fold):
    if fold is True:
        return set(FOLD_KINDS), set(FOLD_OPS)
    if not fold:
        return set(), set()
    return set(fold), set()


def _scope_name(scope) -> str:
    return ".".join(name for name, _ in scope)


def _attrs_sig(d):
    # num_features repeats the input channels: dense layers differ only there.
    return repr(sorted((k, v) for k, v in d["attrs"].items() if k != "num_features"))


def _signature(g, nodes, scope):
    """Structure of a segment (a block and the loose nodes after it), ignoring names and sizes."""
    pos = {n: k for k, n in enumerate(nodes)}
    ext: dict = {}
    sig = []
    L = len(scope)
    for n in nodes:
        d = g.nodes[n]
        ins = tuple(("i", pos[i]) if i in pos else ("e", ext.setdefault(i, len(ext))) for i in d["inputs"])
        if ops.get(d["op"]).arity[1] is None and any(r[0] == "e" for r in ins):
            # A variadic merge (DenseNet's concat of all earlier maps): the count may grow.
            ins = tuple(r for r in ins if r[0] == "i") + (("e*",),)
        inside = tuple(d["path"][:L]) == tuple(scope)
        sig.append((d["path"][L:] if inside else None, d["op"], _attrs_sig(d), ins))
    return scope[-1][1], tuple(sig)


def _scope_tree(g, order):
    """children[scope] = ordered items ("node", n) / ("scope", sub); nodes_in[scope] = raw nodes."""
    children: dict = {(): []}
    nodes_in: dict = {(): []}
    for n in order:
        path = tuple(g.nodes[n].get("path") or ())
        for k in range(len(path) + 1):
            s = path[:k]
            nodes_in.setdefault(s, []).append(n)
            if k < len(path):
                sub = path[:k + 1]
                if sub not in children:
                    children[sub] = []
                    children[s].append(("scope", sub))
        children[path].append(("node", n))
    return children, nodes_in


def _hull(g, order, rank, nodes):
    """``nodes`` plus every node on a path between two of them, in graph order.

    A block whose activations or merges sit outside its scope (torch's dynamo exporter names
    them after no module) would otherwise be collapsed around a hole, and the boxes would
    form a cycle; the hull makes every collapsed set path-closed.
    """
    inside = set(nodes)
    lo, hi = min(rank[n] for n in nodes), max(rank[n] for n in nodes)
    span = order[lo:hi + 1]
    after = set()  # reached from a member
    for n in span:
        if n in inside or any(i in after for i in g.nodes[n]["inputs"]):
            after.add(n)
    before = set()  # reaches a member
    for n in reversed(span):
        if n in inside or any(s in before for s in g.successors(n)):
            before.add(n)
    return [n for n in span if n in inside or (n in after and n in before)]


def _collapse(g, order, children, nodes_in, min_run):
    """Runs of identical blocks: {raw node: summary index}, [(parent scope, run of scopes)]."""
    collapsed: dict = {}
    runs: list = []
    if not min_run or min_run < 2:
        return collapsed, runs
    rank = {n: k for k, n in enumerate(order)}

    def visit(scope):
        items = children[scope]
        segments = []  # (sub-scope, nodes): a block and the loose nodes it alone feeds
        for kind, item in items:
            if kind == "scope":
                segments.append((item, list(nodes_in[item])))
            elif segments and all(i in segments[-1][1] for i in g.nodes[item]["inputs"]):
                # A loose node fed only by the block before it (an activation the exporter
                # left outside the block's scope) belongs to that block; a merge of several
                # blocks (ResNeXt's sum of pathways) belongs to none.
                segments[-1][1].append(item)
        segments = [(sub, _hull(g, order, rank, nodes)) for sub, nodes in segments]
        sigs = [_signature(g, nodes, sub) for sub, nodes in segments]
        i = 0
        while i < len(segments):
            j = i
            while j + 1 < len(segments) and sigs[j + 1] == sigs[i]:
                j += 1
            run = segments[i:j + 1]
            hidden = _hull(g, order, rank, [n for _, nodes in run[1:] for n in nodes]) if len(run) > 1 else []
            if len(run) >= min_run and not any(n in collapsed for n in hidden):
                index = len(runs)
                runs.append((scope, run, hidden))
                for n in hidden:
                    collapsed[n] = index
            i = j + 1
        for kind, item in items:
            if kind == "scope" and nodes_in[item][0] not in collapsed:
                visit(item)

    visit(())
    return collapsed, runs


def _no_op_merge(g, n) -> bool:
    """A merge of a single tensor (DenseNet's first concat): drawn as nothing, folded away."""
    d = g.nodes[n]
    return ops.get(d["op"]).kind == "merge" and len(d["inputs"]) == 1


def _label(g, n) -> str:
    d = g.nodes[n]
    op = ops.get(d["op"])
    ins = _graph.layer_inputs(g, n)
    if op.label is None:
        return d["op"]
    try:
        return op.label(d["attrs"], ins, d["shape"])
    except Exception:  # a label must never stop a diagram
        return d["op"]


DEPTHS = {"stage": 1, "block": 2, "layer": 0}


def wrappers(g, order) -> set:
    """Scopes that wrap most of the network rather than group part of it (torchvision's
    ``features``): a scope holding more than half of the layers whose sibling scopes hold
    no sub-scopes (``classifier``); ResNet-152's ``layer3`` is big but its siblings are
    stages of blocks too, so it is a stage.

    >>> from cnngraph import zoo
    >>> from cnngraph.ir import graph
    >>> g = graph.as_graph(zoo.build("mobilenet_v2"))
    >>> sorted(wrappers(g, graph.topo_order(g)))
    [(('features', 'stage'),)]
    """
    size: dict = {}
    for n in order:
        p = tuple(g.nodes[n].get("path") or ())
        for k in range(1, len(p) + 1):
            size[p[:k]] = size.get(p[:k], 0) + 1
    nested = {s[:-1] for s in size if len(s) > 1}  # scopes with sub-scopes
    out = set()
    for s in size:
        if 2 * size[s] > len(order) and (len(s) == 1 or s[:-1] in out):
            siblings = [t for t in size if len(t) == len(s) and t[:-1] == s[:-1] and t != s]
            if not any(t in nested for t in siblings):
                out.add(s)
    return out


def units(g, order, depth: str) -> dict:
    """{raw node: scope drawn as one box} for ``depth`` ``stage`` or ``block`` ({} for ``layer``).

    A stage is a top-level scope, or a child of a :func:`wrappers` scope (torchvision's
    ``features``); a block is one level below, unless that level only wraps the stage's layers
    (MobileNet v3's ``features.4.block`` holds all of ``features.4`` but its residual add):
    then the stage is the block.
    """
    if depth not in DEPTHS:
        raise CnnGraphError(f"depth must be stage, block or layer, got {depth!r}")
    level = DEPTHS[depth]
    if not level:
        return {}
    wrap = wrappers(g, order)
    held: dict = {}  # scope -> its layers that are not merges
    for n in order:
        if ops.get(g.nodes[n]["op"]).kind != "merge":
            p = tuple(g.nodes[n].get("path") or ())
            for k in range(1, len(p) + 1):
                held[p[:k]] = held.get(p[:k], 0) + 1
    out, promoted = {}, set()
    for n in order:
        p = tuple(g.nodes[n].get("path") or ())
        start = 0
        while start < len(p) and p[:start + 1] in wrap:
            start += 1
        if len(p) >= start + level:
            u = p[:start + level]
            if level > 1 and held.get(u, 0) == held.get(u[:-1], -1):
                u = u[:-1]  # a wrapper of its parent's layers: the parent is the block
                promoted.add(u)
            out[n] = u
    for n in order:  # the promoted block's own layers (its residual add) join it
        p = tuple(g.nodes[n].get("path") or ())
        if n not in out and p in promoted:
            out[n] = p
    return out


def layout(g, fold=True, collapse: int = 3, order=None, depth: str = "layer") -> Layout:
    """Boxes, edges and clusters of the diagram of ``g`` (see the module docstring).

    ``order``: the nodes in topological order when the caller has it (a checked graph).
    ``depth``: ``layer`` (every layer, BN and activations folded), ``block`` or ``stage`` (one
    box per block or per stage, see :func:`units`).
    """
    g = _graph.as_graph(g)
    if order is None:
        _graph.check(g)
        order = _graph.topo_order(g)
    children, nodes_in = _scope_tree(g, order)
    unit_of = units(g, order, depth)
    collapsed, runs = _collapse(g, order, children, nodes_in, collapse if depth != "stage" else 0)
    unit_of = {n: u for n, u in unit_of.items() if n not in collapsed}
    fold_kinds, fold_ops = _fold_set(fold)

    def foldable(n):
        d = g.nodes[n]
        return d["op"] in fold_ops or ops.get(d["op"]).kind in fold_kinds or _no_op_merge(g, n)

    # Fold: backward into the producer (its only consumer), else forward into the consumer.
    group: dict = {}  # raw node -> group head
    members: dict = {}  # head -> raw nodes
    for n in order:
        if n in collapsed or n in unit_of:
            continue
        d = g.nodes[n]
        ins = list(dict.fromkeys(d["inputs"]))
        if len(ins) == 1 and ins[0] not in collapsed and ins[0] not in unit_of:
            p = ins[0]
            hp = group[p]
            joinable = members[hp][-1] == p and g.out_degree(p) == 1 and ops.get(g.nodes[hp]["op"]).kind != "input"
            same = joinable and g.nodes[p]["path"] == d["path"] and g.nodes[hp]["path"] == d["path"]
            # A block's closing activation may sit in the enclosing scope (n's path a prefix of p's).
            inner = joinable and tuple(g.nodes[hp]["path"][:len(d["path"])]) == tuple(d["path"])
            if inner and foldable(n):
                group[n] = hp
                members[hp].append(n)
                continue
            if same and not foldable(n) and all(foldable(m) for m in members[hp]):
                group[n] = hp  # pre-activation: BN + relu fold into the conv after them
                members[hp].append(n)
                continue
        group[n] = n
        members[n] = [n]

    boxes: dict = {}
    box_of: dict = {}
    for k, (head, ms) in enumerate(members.items()):
        main = next((m for m in ms if not foldable(m)), ms[0])
        kind = ops.get(g.nodes[main]["op"]).kind
        chain = ""
        words = [(_SHORT.get(kind, _label(g, m)) if m == main else _label(g, m)) for m in ms
                 if m == main or not _no_op_merge(g, m)]
        if len(words) > 1:
            chain = " · ".join(words)
        b = Box(f"b{k}", ms, main, kind, _label(g, main), chain, tuple(g.nodes[main]["path"]))
        boxes[b.id] = b
        for m in ms:
            box_of[m] = b.id
    grouped: dict = {}
    for n, u in unit_of.items():
        grouped.setdefault(u, []).append(n)
    for k, (u, ms) in enumerate(grouped.items()):
        main = next((m for m in ms if ops.get(g.nodes[m]["op"]).kind in ("conv", "linear")), ms[0])
        subs = [item for t, item in children[u] if t == "scope"]
        rep = _repeats(g, nodes_in, subs) if depth == "stage" else ""
        if rep:
            inner = rep  # a stage of repeated blocks
        else:
            inner = "" if u[-1][1] in GENERIC_KINDS or u[-1][1].lower() in u[-1][0].lower() else u[-1][1]
        shape = fmt_shape(g.nodes[ms[-1]]["shape"])
        b = Box(f"u{k}", ms, main, ops.get(g.nodes[main]["op"]).kind, _short_name(u),
                f"{inner} · {shape}" if inner else shape, u[:-1] if depth == "block" else (), full=_scope_name(u))
        boxes[b.id] = b
        for m in ms:
            box_of[m] = b.id
    for index, (scope, run, ms) in enumerate(runs):
        sub_first, sub_last = run[1][0], run[-1][0]
        b = Box(f"s{index}", ms, ms[0], "summary", f"× {len(run) - 1}", "", scope, repeat=len(run) - 1,
                first=sub_first[-1][0], last=sub_last[-1][0], like=run[0][0][-1][0])
        b.label = f"{b.label} {sub_first[-1][1]}"
        boxes[b.id] = b
        for m in ms:
            box_of[m] = b.id
    # Boxes in graph order (a summary sits where its first collapsed layer was).
    rank = {n: i for i, n in enumerate(order)}
    boxes = dict(sorted(boxes.items(), key=lambda kv: rank[kv[1].members[0]]))

    # Edges between boxes, deduplicated; the edge carries its raw producer's tensor.
    edges, seen = [], set()
    for n in order:
        for i in g.nodes[n]["inputs"]:
            s, t = box_of[i], box_of[n]
            if s == t or (s, t) in seen:
                continue
            seen.add((s, t))
            edges.append(Edge(s, t, i))
    _mark_skips(g, order, boxes, box_of, edges)
    clusters, top, roots = _clusters(g, boxes, children, nodes_in, edges, wrappers(g, order))
    return Layout(g.graph.get("name", ""), boxes, edges, clusters, top, roots, box_of)


def _mark_skips(g, order, boxes, box_of, edges):
    """Residual shortcuts: inputs of an add/mul that arrive by a shorter path than the others.

    A tensor's depth is the number of layers on the longest path to it that would be boxes of
    their own (norm, activations, dropout and no-op merges do not count), measured on the
    layer graph: acyclic whatever the boxes are, and the same whether blocks are collapsed
    (ResNeXt's pathway summary is as deep as the pathway drawn beside it) or not.
    """
    depth: dict = {}
    for n in order:
        depth[n] = max((depth[i] for i in g.nodes[n]["inputs"]), default=0) + (not _light(g, n))
    preds: dict = {b: [] for b in boxes}
    for e in edges:
        preds[e.dst].append(e)
    for b, box in boxes.items():
        if ops.get(g.nodes[box.main]["op"]).elementwise and len(preds[b]) > 1:
            deepest = max(depth[e.tensor] for e in preds[b])
            for e in preds[b]:
                e.skip = depth[e.tensor] < deepest
    # Edges into and out of projection shortcuts (scopes of kind "shortcut") are shortcuts too.
    for e in edges:
        for end in (boxes[e.src], boxes[e.dst]):
            if end.scope and end.scope[-1][1] == "shortcut" and not end.repeat:
                e.skip = True


# Kinds that say nothing a cluster's name does not ("branch3 · branch"): left off titles.
GENERIC_KINDS = ("stage", "block", "branch", "layers", "pathway", "path")


def _short_name(scope) -> str:
    """The scope's own name ("branch3" in "inception3a"; the frame around says the rest), a
    bare index with its parent's name ("layer1.0", "features.3", "block.1")."""
    names = [scope[-1][0]]
    if names[0].isdigit() and len(scope) > 1:
        names.insert(0, scope[-2][0])
    return ".".join(names)


def _light(g, n) -> bool:
    """A layer that never makes a box of its own when folded: norm, activation, dropout,
    flatten / identity, a merge of one tensor."""
    d = g.nodes[n]
    return d["op"] in FOLD_OPS or ops.get(d["op"]).kind in FOLD_KINDS or _no_op_merge(g, n)


def _repeats(g, nodes_in, subs) -> str:
    """"6 × Bottleneck" when ``subs`` are two or more blocks of one kind, one feeding the next,
    each with at least two layers of its own (convs, pools, merges); "" otherwise:
    Inception-v3's seven BasicConv2d (conv + BN + ReLU) in a module are its layers, and
    Inception-ResNet's three branches side by side are not a repetition."""
    kinds = {s[-1][1] for s in subs}
    if len(subs) < 2 or len(kinds) > 1:
        return ""
    if any(sum(not _light(g, n) for n in nodes_in[s]) < 2 for s in subs):
        return ""
    for a, b in zip(subs, subs[1:]):  # one after another: side-by-side branches are not repeats
        before = set(nodes_in[a])
        if not any(i in before for n in nodes_in[b] for i in g.nodes[n]["inputs"]):
            return ""
    return f"{len(subs)} × {subs[0][-1][1]}"


def _cluster_label(g, scope, nodes_in, subs, top: bool) -> str:
    """A short title: the scope's own name ("branch3", not "inception3a.branch3"), a bare
    index with its parent's name ("layer1.0"), the kind when it adds something
    ("layer1.0 · Bottleneck"), and at the top level the count of repeated blocks inside
    ("layer3 · 6 × Bottleneck").
    """
    label = _short_name(scope)
    kind = scope[-1][1]
    if kind not in GENERIC_KINDS and kind.lower() not in label.lower():
        label += f" · {kind}"
    rep = _repeats(g, nodes_in, subs) if top else ""
    return label + (f" · {rep}" if rep else "")


def _clusters(g, boxes, children, nodes_in, edges, wrap=frozenset()):
    """Nested clusters where the architecture has groups: scopes of two or more boxes, and a
    one-box scope fed by the same box as sibling branches and parallel to them all
    (GoogLeNet's ``branch1``, a lone 1×1 conv, is a branch as much as ``branch2``; SE-ResNet's
    ``downsample`` beside the block's ``se`` is not). No cluster for a wrapper (a scope of :func:`wrappers`,
    or one holding all its parent holds but the merge that closes it: MobileNet v2's ``conv``
    inside an inverted residual)."""
    inside: dict = {}  # scope -> box ids
    for b in boxes.values():
        for k in range(1, len(b.scope) + 1):
            inside.setdefault(b.scope[:k], []).append(b.id)
    succ: dict = {b: [] for b in boxes}
    for e in edges:
        succ[e.src].append(e.dst)

    def reaches(src, dst, within):
        seen, todo = set(src), list(src)
        while todo:
            for t in succ[todo.pop()]:
                if t in dst:
                    return True
                if t in within and t not in seen:
                    seen.add(t)
                    todo.append(t)
        return False

    def parent_of(scope, chosen):
        return next((scope[:k] for k in range(len(scope) - 1, 0, -1) if scope[:k] in chosen), None)

    chosen: dict = {}  # scope -> None (ordered set), parents before children
    singles = []
    for scope in children:  # insertion order: graph order, parents first
        if not scope or scope in wrap or scope not in inside:
            continue
        mine = set(inside[scope])
        parent = parent_of(scope, chosen)
        if parent is not None:
            rest = [boxes[b] for b in inside[parent] if b not in mine]
            if not rest or all(b.kind == "merge" and not b.repeat for b in rest):
                continue  # a frame around all its parent holds, or all but the closing merge
        if len(mine) >= 2:
            chosen[scope] = None
        else:
            singles.append(scope)
    def sources(scope):  # boxes outside the scope that feed it
        mine = set(inside[scope])
        return {e.src for e in edges if e.dst in mine and e.src not in mine}

    for scope in singles:  # a lone box fed like sibling branches and parallel to them all is a branch too
        within = set(inside.get(scope[:-1], boxes)) if scope[:-1] else set(boxes)
        mine = set(inside[scope])
        sibs = [t for kind, t in children[scope[:-1]] if kind == "scope" and t != scope and t in inside]
        if any(t in chosen and sources(t) & sources(scope) for t in sibs) and all(
                not reaches(mine, set(inside[t]), within) and not reaches(set(inside[t]), mine, within) for t in sibs):
            chosen[scope] = None
    order = [s for s in children if s in chosen]  # parents before children, graph order
    clusters: dict = {}
    for scope in order:
        parent = parent_of(scope, clusters)
        subs = [item for t, item in children[scope] if t == "scope"]
        label = _cluster_label(g, scope, nodes_in, subs, parent is None)
        if len(inside[scope]) == 1:
            label = label.split(" · ")[0]  # a lone branch: its name ("branch1"), not its layer's kind
        clusters[scope] = Cluster(f"cluster_{len(clusters)}", scope, len(scope), label)
    top = []
    for b in boxes.values():
        home = next((b.scope[:k] for k in range(len(b.scope), 0, -1) if b.scope[:k] in clusters), None)
        if home is None:
            top.append(b.id)
        else:
            clusters[home].boxes.append(b.id)
    roots = []
    for scope, c in clusters.items():
        parent = parent_of(scope, clusters)
        (clusters[parent].children if parent else roots).append(c.id)
    return list(clusters.values()), top, roots


# ---------------------------------------------------------------- Graphviz
def _esc(s) -> str:
    return html.escape(str(s), quote=False)


def _costs_line(rows, total_macs, members) -> str:
    params = _sum(rows[m].params for m in members if m in rows)
    macs = _sum(rows[m].macs for m in members if m in rows)
    if params == 0 and macs == 0:
        return ""
    text = f"{human(params)} params · {human(macs)} MAC"
    if isinstance(macs, int) and isinstance(total_macs, int) and total_macs:
        text += f" · {100 * macs / total_macs:.1f}%"
    return text


def _sum(values):
    values = list(values)
    if all(isinstance(v, int) for v in values):
        return sum(values)
    return ops.tidy(sympy.Add(*values))


def to_graphviz(g, direction: str = "TB", fold=True, collapse: int = 3, shapes: bool = False, costs: bool = False,
                legend: bool = False, title: bool = True, depth: str = "layer", names: bool = False,
                wrap=None, size: str | None = None, dpi: int | None = None):
    """The diagram as a ``graphviz.Digraph`` (``.source`` is the DOT text).

    ``depth``: ``layer``, ``block`` or ``stage`` (one box per stage: the slide overview).
    ``names``: each box also shows its layer's (or group's) name. ``wrap``: lay a long chain
    out in columns for a 16:9 slide (default: on at ``depth="stage"``). ``size``: ``"1920x1080"``
    (pixels at 96 dpi) scales the drawing down to fit; ``dpi`` sets PNG resolution.
    """
    g = _graph.as_graph(g)
    import graphviz

    direction = direction.upper()
    if direction not in ("TB", "LR", "BT", "RL"):
        raise CnnGraphError(f"direction must be TB, LR, BT or RL, got {direction!r}")
    report = None
    if costs or title:
        from cnngraph.analysis.cost import analyze

        report = analyze(g)  # checks the graph; its rows are in topological order
    lay = layout(g, fold=fold, collapse=collapse, order=[r.name for r in report.rows] if report else None,
                 depth=depth)
    if wrap is None:
        wrap = depth == "stage"
    rows = {r.name: r for r in report.rows} if report else {}
    total_macs = report.total.macs if report else 0

    dot = graphviz.Digraph(name=_graph_id(lay.name))
    dot.attr(rankdir=direction, nodesep="0.25", ranksep="0.3", fontname=FONT, fontsize="12", newrank="true",
             bgcolor="white", pad="0.2")
    if size:
        w, _, h = size.lower().partition("x")
        try:
            dot.attr(size=f"{float(w) / 96:g},{float(h) / 96:g}")
        except ValueError:
            raise CnnGraphError(f"size must look like 1920x1080 (pixels), got {size!r}") from None
    if dpi:
        dot.attr(dpi=str(int(dpi)))
    dot.attr("node", shape="box", style="filled", fontname=FONT, fontsize="11", height="0.3", margin="0.1,0.04",
             color=INK, penwidth="0.9")
    dot.attr("edge", color=INK, arrowsize="0.6", penwidth="0.9", fontname=FONT, fontsize="9", fontcolor=INK)
    if title and report is not None:
        t = report.total
        text = (f"<<B>{_esc(lay.name or 'graph')}</B>  input {_esc(fmt_shape(report.input_shape))} · "
                f"{_esc(human(t.params))} params · {_esc(human(t.macs))} multiply-adds>")
        dot.attr(label=text, labelloc="t", labeljust="l" if direction in ("LR", "RL") else "c", fontsize="14")

    by_id = {c.id: c for c in lay.clusters}
    layer_name = {r.name: r.title for r in report.rows} if report else _graph.layer_names(g)
    small_pt = 8 if depth == "layer" else 10  # an overview is for slides: every text at least 13 px

    def emit_box(sub, b: Box):
        attrs = {"tooltip": _tooltip(b, g, rows)}
        small = []
        if names and not b.repeat and b.id[0] != "u" and b.kind != "input":
            small.append(layer_name[b.main])
        if b.repeat:
            small.append(f"{b.first} … {b.last}" if b.repeat > 1 else b.first)
            small.append(f"same as {b.like}")
            attrs.update(shape="box3d", style="filled", fillcolor="#f8f9fa", color="#868e96")
            big = f"<B>{_esc(b.label)}</B>"
        elif ops.get(g.nodes[b.main]["op"]).elementwise:
            attrs.update(shape="circle", fillcolor=KIND_COLOURS["merge"], width="0.3", height="0.3", fixedsize="true",
                         fontsize="14", margin="0")
            folded = [_label(g, m) for m in b.members if m != b.main]
            if folded:
                attrs["xlabel"] = f"<<FONT POINT-SIZE='{small_pt}' COLOR='#495057'>" + _esc(" · ".join(folded)) + "</FONT>>"
            sub.node(b.id, label=b.label, **attrs)
            return
        else:
            attrs["fillcolor"] = KIND_COLOURS.get(b.kind, "#ffffff")
            big = _esc(b.label)
            if b.chain:
                small.append(b.chain)
        if costs:
            line = _costs_line(rows, total_macs, b.members)
            if line:
                small.append(line)
        label = big + "".join(f"<BR/><FONT POINT-SIZE='{small_pt}' COLOR='#495057'>{_esc(s)}</FONT>" for s in small)
        sub.node(b.id, label=f"<{label}>", **attrs)

    def emit_cluster(parent, cid):
        c = by_id[cid]
        with parent.subgraph(name=c.id) as sub:
            shade = "#f8f9fa" if c.depth % 2 else "#ffffff"
            sub.attr(label=f"<<FONT POINT-SIZE='10' COLOR='#343a40'>{_esc(c.label)}</FONT>>", labeljust="l",
                     style="filled" if c.depth == 1 else "dashed,filled", fillcolor=shade,
                     color="#adb5bd", penwidth="0.8", margin="8")
            for bid in c.boxes:
                emit_box(sub, lay.boxes[bid])
            for child in c.children:
                emit_cluster(sub, child)

    for bid in lay.top:
        emit_box(dot, lay.boxes[bid])
    for cid in lay.roots:
        emit_cluster(dot, cid)
    across = _wrap_columns(dot, lay) if wrap and not lay.clusters else set()
    ports = branch_ports(lay, direction)
    fans: dict = {}
    for src, dst in ports:
        fans.setdefault(src, []).append(dst)
    for heads in fans.values():  # the branches start side by side, a lone box too
        with dot.subgraph() as same:
            same.attr(rank="same")
            for b in heads:
                same.node(b)
    for e in lay.edges:
        attrs = {}
        if (e.src, e.dst) in ports:
            attrs["tailport"] = ports[(e.src, e.dst)]
        if (e.src, e.dst) in across:
            attrs["constraint"] = "false"
        if e.skip:
            attrs.update(color=SKIP_COLOUR, penwidth="1.3", weight="0")
        else:
            attrs["weight"] = "4"
        if shapes:
            attrs["label"] = " " + fmt_shape(g.nodes[e.tensor]["shape"]) + " "
        dot.edge(e.src, e.dst, **attrs)
    if legend:
        _legend(dot, lay)
    return dot


# Where the edges into side-by-side branches leave their common source, left to right.
_FAN_PORTS = {2: ("sw", "se"), 3: ("sw", "s", "se"), 4: ("w", "sw", "se", "e"), 5: ("w", "sw", "s", "se", "e")}


def branch_ports(lay: Layout, direction: str = "TB") -> dict:
    """{(src, dst): tailport} for the edges from one box into sibling clusters that sit side by
    side (GoogLeNet's four branches), so ``dot`` draws the branches in the order written:
    left to right as the ports leave the source. (``dot`` orders sibling clusters by its own
    crossing heuristics otherwise, and drew GoogLeNet's branches 1, 4, 3, 2.)"""
    if direction not in ("TB", "BT"):
        return {}
    by_id = {c.id: c for c in lay.clusters}
    home = {b: c.id for c in lay.clusters for b in c.boxes}

    def top(b, siblings):  # the sibling cluster holding box b (or b, a sibling summary), if any
        if b in siblings:
            return b
        c = home.get(b)
        while c is not None and c not in siblings:
            c = next((p.id for p in lay.clusters if c in p.children), None)
        return c

    out = {}
    rank = {b: k for k, b in enumerate(lay.boxes)}
    first = {c.id: min((rank[b] for b in _all_boxes(c, by_id)), default=0) for c in lay.clusters}
    for parent in lay.clusters:
        # Side by side: sub-clusters, boxes (a branch drawn as one box at --depth block) and
        # summaries of collapsed sub-clusters (ResNeXt's "× 31 pathway"), not the closing merge.
        sibs = sorted(parent.children + [b for b in parent.boxes if lay.boxes[b].kind != "merge"],
                      key=lambda i: first[i] if i in first else rank[i])
        if len(sibs) < 2:
            continue
        into: dict = {}  # source box -> [(sibling index, edge)]
        for e in lay.edges:
            t, s = top(e.dst, sibs), top(e.src, sibs)
            if t is not None and s != t:
                into.setdefault(e.src, []).append((sibs.index(t), e))
        for src, fans in into.items():
            fans.sort(key=lambda x: x[0])
            ports = _FAN_PORTS.get(len(fans))
            if ports and len({k for k, _ in fans}) == len(fans):
                for port, (_, e) in zip(ports, fans):
                    out[(e.src, e.dst)] = port if direction == "TB" else port.replace("s", "n")
    return out


def _all_boxes(c: Cluster, by_id) -> list:
    return c.boxes + [b for child in c.children for b in _all_boxes(by_id[child], by_id)]


def _tooltip(b: Box, g=None, rows=None) -> str:
    """Hover text: the name, output shape, params and multiply-adds of the box's layers."""
    if b.repeat:
        head = f"{b.repeat} blocks {b.first} … {b.last}, each like {b.like}"
    else:
        head = b.full or b.main
    if g is None or not rows:
        return head
    shape = fmt_shape(g.nodes[b.members[-1]]["shape"])
    params = _sum(rows[m].params for m in b.members if m in rows)
    macs = _sum(rows[m].macs for m in b.members if m in rows)
    return f"{head}: output {shape}, {human(params)} params, {human(macs)} MACs"


# A slide is 16:9; a box with its gap is about 0.65 in tall and 2.3 in wide.
ROW_IN, COLUMN_IN = 0.65, 2.3


def _wrap_columns(dot, lay: Layout) -> set:
    """Lay the boxes out in columns read top to bottom, left to right, the count of columns chosen
    so the drawing is closest to 16:9; returns the edges between columns (they bend, not rank)."""
    import math

    ids = list(lay.boxes)
    n = len(ids)
    best = min(range(1, n + 1), key=lambda c: max(math.ceil(n / c) * ROW_IN / 9, c * COLUMN_IN / 16))
    rows = math.ceil(n / best)
    if best == 1:
        return set()
    col = {b: i // rows for i, b in enumerate(ids)}
    for r in range(rows):
        same = [ids[c * rows + r] for c in range(best) if c * rows + r < n]
        with dot.subgraph() as sub:
            sub.attr(rank="same")
            for a, b in zip(same, same[1:]):
                sub.edge(a, b, style="invis")
    for c in range(best):  # keep each column's order even where a column has no edge
        chain = [b for b in ids if col[b] == c]
        for a, b in zip(chain, chain[1:]):
            dot.edge(a, b, style="invis", weight="10")
    return {(e.src, e.dst) for e in lay.edges if col[e.src] != col[e.dst]}


def _legend(dot, lay: Layout):
    kinds = [k for k in KIND_COLOURS if any(b.kind == k for b in lay.boxes.values())]
    cells = "".join(f"<TR><TD BGCOLOR='{KIND_COLOURS[k]}' BORDER='1' COLOR='{INK}' WIDTH='14'> </TD>"
                    f"<TD ALIGN='LEFT'>{_esc(KIND_NAMES[k])}</TD></TR>" for k in kinds)
    cells += f"<TR><TD><FONT COLOR='{SKIP_COLOUR}'>→</FONT></TD><TD ALIGN='LEFT'>shortcut</TD></TR>"
    dot.node("legend", label=f"<<TABLE BORDER='0' CELLBORDER='0' CELLSPACING='2'>{cells}</TABLE>>", shape="plain",
             style="", fontsize="9")


def _graph_id(name: str) -> str:
    return re.sub(r"\W", "_", name) or "graph"


def to_dot(g, **options) -> str:
    """DOT source of the diagram (no ``dot`` program needed)."""
    return to_graphviz(g, **options).source


def _need_dot():
    if shutil.which("dot") is None:
        raise CnnGraphError("Graphviz's `dot` program is not installed: `make dot` or `apt-get install graphviz`")


def dot_to(source: str, fmt: str) -> bytes:
    """Run ``dot`` on DOT source, returning SVG/PNG/PDF bytes."""
    import graphviz

    _need_dot()
    return graphviz.Source(source).pipe(format=fmt)


SVG_VERSION = "2"  # bump when compact_svg changes what is written for the same DOT source


def source_key(source: str) -> str:
    """Fingerprint of a diagram's DOT source, stamped into SVGs so the gallery check needs no ``dot``."""
    return hashlib.sha256((SVG_VERSION + source).encode()).hexdigest()[:16]


def stamp(svg: str, key: str) -> str:
    """Insert ``<!-- cnngraph-source KEY -->`` after the XML prologue of an SVG document."""
    mark = f"<!-- cnngraph-source {key} -->\n"
    at = svg.find("<svg")
    return svg[:at] + mark + svg[at:] if at >= 0 else mark + svg


def read_stamp(svg: str) -> str | None:
    m = re.search(r"<!-- cnngraph-source (\w+) -->", svg)
    return m.group(1) if m else None


_NOISE = re.compile(r"<!--.*?-->\n?", re.S)
_GEOMETRY = re.compile(r' (d|points|x|y|x1|x2|y1|y2|width|height|transform|viewBox)="([^"]*)"')
_DECIMALS = re.compile(r"(\d+\.\d)\d+")
_UNUSED_IDS = re.compile(r' id="([^"]*)"')


def round_geometry(svg: str) -> str:
    """Coordinates in an SVG's geometry attributes rounded to 0.1 (text is left alone)."""
    return _GEOMETRY.sub(lambda m: f' {m.group(1)}="{_DECIMALS.sub(lambda n: n.group(1), m.group(2))}"', svg)


def drop_unused_ids(svg: str) -> str:
    """``id`` attributes nothing refers to (``#id`` in a link or ``url(#id)``) removed."""
    used = set(re.findall(r'#([\w.:-]+)', svg))
    return _UNUSED_IDS.sub(lambda m: m.group(0) if m.group(1) in used else "", svg)


def compact_svg(svg: str) -> str:
    """Graphviz's SVG made smaller for the gallery: comments, element titles and ids dropped,
    the font moved to one style rule, coordinates rounded to 0.1 pt (invisible at any zoom
    a page uses)."""
    svg = _NOISE.sub("", svg)
    svg = re.sub(r"<title>[^<]*</title>\n", "", svg)
    svg = re.sub(r' id="[^"]*"', "", svg)
    svg = svg.replace(' font-family="Helvetica,sans-Serif"', "")
    svg = round_geometry(svg)
    # The outline every box and edge shares, said once on the top group (children inherit it).
    common = f' stroke="{INK}" stroke-width="0.9"'
    svg = svg.replace(common, "").replace('<g class="graph"', '<g class="graph"' + common, 1)
    head = svg.find(">", svg.find("<svg")) + 1
    style = "\n<style>text{font-family:Helvetica,Arial,sans-serif;stroke:none}</style>"
    return svg[:head] + style + svg[head:]


def svg_of(source: str) -> str:
    """SVG text of DOT source, compacted and stamped with the source's key."""
    svg = dot_to(source, "svg").decode()
    return stamp(compact_svg(svg), source_key(source))


def to_svg(g, **options) -> str:
    """The diagram as SVG text."""
    return svg_of(to_dot(g, **options))


def render(g, path, format: str | None = None, **options) -> Path:
    """Write the diagram of ``g`` to ``path`` as SVG, PNG, PDF or DOT (from the suffix unless ``format``).

    >>> from cnngraph import zoo
    >>> import tempfile, os
    >>> p = render(zoo.build("lenet5"), os.path.join(tempfile.mkdtemp(), "lenet5.dot"))
    >>> p.read_text().startswith("digraph lenet5")
    True
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    fmt = "dot" if fmt == "gv" else fmt
    if fmt not in FORMATS:
        raise CnnGraphError(f"cannot render to {path.name!r}: use a .svg, .png, .pdf or .dot file (or format=)")
    from cnngraph.io.files import write_bytes, write_text

    source = to_dot(g, **options)
    if fmt == "dot":
        write_text(path, source)
    elif fmt == "svg":
        write_text(path, svg_of(source))
    else:
        write_bytes(path, dot_to(source, fmt))
    return path
