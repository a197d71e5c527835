"""The diagram's folding, collapsing and shortcut logic on any topology (hypothesis).

Random DAGs of convs, norms, activations, residual adds and concats, with arbitrary node
names (``b25``, ``s0``, dotted paths...) and scopes that need not be contiguous in the graph
(torch's dynamo exporter leaves activations and adds outside their block's scope): every
fold and collapse option gives a layout in which every layer sits in exactly one box, every
connection between boxes is drawn, and every residual add keeps one main-path input.
"""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnngraph.ir.graph import CnnGraph, add_node
from cnngraph.present.render import layout, to_dot

OPTIONS = [(True, 3), (True, 0), (True, 2), (True, 1000), (False, 3), (False, 0), (("act",), 2), (("norm",), 3)]
NAMES = st.text(alphabet="bs0123456789._ab", min_size=1, max_size=6)
SCOPES = [(), (("layer1", "stage"),), (("layer1", "stage"), ("0", "block")), (("layer1", "stage"), ("1", "block")),
          (("s0", "block"),), (("b25", "shortcut"),)]

step = st.tuples(st.sampled_from(["conv", "bn", "relu", "residual", "concat", "block"]),
                 st.integers(0, 1000), st.integers(0, len(SCOPES) - 1), NAMES)


def build(steps, repeats):
    """Every tensor is 8×6×6 so any two can be added; a concat is followed by a 1×1 conv back to 8
    channels; ``block`` repeats a conv-bn-relu-add block ``repeats`` times in consecutive scopes
    with its relu and add left outside the scope, as the dynamo exporter does."""
    g = CnnGraph(name="random", inputs=[], outputs=[], notes=[])
    names = set()

    def new(base, op, attrs, ins, path=()):
        name, k = base, 0
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.add(name)
        add_node(g, name, op, attrs, ins, path=path)
        return name

    conv = dict(out_channels=8, kernel=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1,
                bias=False)
    tensors = [new("input", "input", {"shape": (8, 6, 6)}, [])]
    for kind, pick, sc, name in steps:
        x = tensors[-1]
        other = tensors[pick % len(tensors)]
        path = SCOPES[sc]
        if kind == "conv":
            tensors.append(new(name, "conv2d", conv, [x], path))
        elif kind == "bn":
            tensors.append(new(name, "batchnorm", {"eps": 1e-5}, [x], path))
        elif kind == "relu":
            tensors.append(new(name, "relu", {"inplace": True}, [x], path))
        elif kind == "residual" and other != x:
            tensors.append(new(name, "add", {}, [x, other], path))
        elif kind == "concat":
            c = new(name, "concat", {}, [x, other], path)
            tensors.append(new(name + "p", "conv2d", {**conv, "kernel": (1, 1), "padding": (0, 0, 0, 0)}, [c], path))
        elif kind == "block":
            for r in range(repeats):
                p = (("stage" + name, "stage"), (str(r), "Block"))
                y = new(f"{name}.{r}.conv", "conv2d", conv, [x], p)
                y = new(f"{name}.{r}.bn", "batchnorm", {"eps": 1e-5}, [y], p)
                y = new(f"node_relu_{name}{r}", "relu", {"inplace": True}, [y])
                y = new(f"{name}.{r}.conv2", "conv2d", conv, [y], p)
                x = new(f"node_add_{name}{r}", "add", {}, [y, x])
                x = new(f"node_relu_{name}{r}b", "relu", {"inplace": True}, [x])
            tensors.append(x)
    g.graph["outputs"] = [tensors[-1]]
    return g


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=25), st.integers(2, 5))
def test_layout_holds_on_any_topology(steps, repeats):
    g = build(steps, repeats)
    for fold, collapse in OPTIONS:
        lay = layout(g, fold=fold, collapse=collapse)
        # every layer in exactly one box
        assert set(lay.box_of) == set(g.nodes)
        for b in lay.boxes.values():
            assert all(lay.box_of[m] == b.id for m in b.members)
        assert sum(len(b.members) for b in lay.boxes.values()) == g.number_of_nodes()
        # every connection between two boxes is drawn, once
        drawn = {(e.src, e.dst) for e in lay.edges}
        assert len(drawn) == len(lay.edges)
        want = {(lay.box_of[u], lay.box_of[v]) for u, v in g.edges if lay.box_of[u] != lay.box_of[v]}
        assert drawn == want
        # an add drawn as its own box keeps at least one main-path input (edges into and out of
        # a scope of kind "shortcut" are drawn as shortcuts whatever their length)
        def shortcut(e):
            return any(lay.boxes[x].scope and lay.boxes[x].scope[-1][1] == "shortcut" for x in (e.src, e.dst))

        for b in lay.boxes.values():
            into = [e for e in lay.edges if e.dst == b.id]
            if not b.repeat and g.nodes[b.main]["op"] == "add" and len(into) > 1 and not any(map(shortcut, into)):
                assert not all(e.skip for e in into)
        # a collapsed run is path-closed: nothing outside it lies between two of its layers
        for b in lay.summaries():
            inside = set(b.members)
            outs = {s for m in inside for s in g.successors(m)} - inside
            ins = {p for m in inside for p in g.predecessors(m)} - inside
            assert not (outs & _descendants_reaching(g, ins, inside))
    assert "digraph" in to_dot(g, collapse=2, title=False)


def _descendants_reaching(g, starts, inside):
    """Nodes outside ``inside`` that are reached from ``inside`` and reach back into it."""
    import networkx as nx

    back = set()
    for m in inside:
        back |= nx.ancestors(g, m)
    fwd = set()
    for m in inside:
        fwd |= nx.descendants(g, m)
    return (fwd & back) - inside


def test_dynamo_style_resnet_blocks_collapse():
    """The pattern of torch's default exporter: block convs in the block's scope, the relus and
    residual adds in none. Five identical blocks: one drawn, four collapsed, no crash."""
    g = build([("block", 0, 0, "layer3")], 5)
    lay = layout(g)
    (s,) = lay.summaries()
    assert s.repeat == 4
    assert any(m.startswith("node_add") for m in s.members)  # the adds between collapsed blocks go with them
    assert sum(e.skip for e in lay.edges) >= 1
