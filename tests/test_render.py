"""Diagrams: labels, folding, shortcuts, clusters, collapsed repeats, shapes and costs, output files."""
import json
import shutil

import pytest
import sympy

import cnngraph

from cnngraph import analyze, zoo
from cnngraph.cli import main
from cnngraph.dsl import Net, add, batchnorm, concat, conv2d, maxpool2d, relu, scope
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.graph import topo_order
from cnngraph.present.render import (dot_to, fmt_shape, fmt_size, human, layout, read_stamp, render, source_key, to_dot,
                             to_svg)
from cnngraph.ir.symbols import C, H, W, h, w

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def labels(lay):
    return [b.label for b in lay.boxes.values()]


def test_alexnet_slide_labels_in_order():
    lay = layout(zoo.build("alexnet"))
    assert labels(lay) == ["Input 3×227×227", "11x11 conv, 64, /4", "3x3 max pool, /2", "5x5 conv, 192",
                           "3x3 max pool, /2", "3x3 conv, 384", "3x3 conv, 256", "3x3 conv, 256", "3x3 max pool, /2",
                           "FC 4096", "FC 4096", "FC 1000"]
    # ReLU and dropout are folded into the layer they follow; nothing is lost.
    assert lay.boxes[lay.box_of["features.0"]].chain == "conv · relu"
    assert lay.boxes[lay.box_of["flatten"]].chain == "pool · flatten"
    assert lay.boxes[lay.box_of["classifier.1"]].chain == "dropout 0.5 · FC · relu · dropout 0.5"
    assert set(lay.box_of) == set(zoo.build("alexnet").nodes)


def test_no_fold_draws_every_layer_and_fold_kinds_select():
    g = zoo.build("resnet18")
    assert len(layout(g, fold=False, collapse=0).boxes) == g.number_of_nodes()
    only_act = labels(layout(g, fold=("act",), collapse=0))
    assert only_act.count("BN") == 20  # 17 convs' BN + 3 downsample BN... counted below from the graph
    assert only_act.count("BN") == sum(d["op"] == "batchnorm" for _, d in g.nodes(data=True))
    assert "relu" not in only_act


def test_resnet50_expanded_boxes_from_first_principles():
    # 53 convs (1 stem + 16 blocks × 3 + 4 projections), input, max pool, 16 adds, avg pool (+flatten), fc.
    lay = layout(zoo.build("resnet50"), collapse=0)
    kinds = [b.kind for b in lay.boxes.values()]
    assert kinds.count("conv") == 53 and kinds.count("merge") == 16
    assert len(lay.boxes) == 53 + 1 + 1 + 16 + 1 + 1
    chains = {lay.boxes[lay.box_of[n]].chain for n in ("layer1.0.conv1", "layer1.0.conv3", "layer1.0.downsample.0")}
    assert chains == {"conv · BN · relu", "conv · BN"}


def test_residual_shortcuts_are_skip_edges():
    g = zoo.build("resnet18")
    lay = layout(g, collapse=0)
    adds = [b for b in lay.boxes.values() if g.nodes[b.main]["op"] == "add"]
    assert len(adds) == 8
    for b in adds:
        into = [e for e in lay.edges if e.dst == b.id]
        assert len(into) == 2 and sum(e.skip for e in into) == 1  # one main path, one shortcut
    # 5 identity shortcuts (x -> add) + 3 projections (x -> 1x1 conv -> add, both edges).
    assert sum(e.skip for e in lay.edges) == 5 + 3 * 2


def test_resnet152_stages_clusters_and_collapsed_repeats():
    g = zoo.build("resnet152")
    lay = layout(g)
    stages = [c.label for c in lay.clusters if c.depth == 1]
    assert stages == ["layer1 · 3 × Bottleneck", "layer2 · 8 × Bottleneck", "layer3 · 36 × Bottleneck",
                      "layer4 · 3 × Bottleneck"]
    summaries = [(b.repeat, b.first, b.last, b.like) for b in lay.summaries()]
    assert summaries == [(6, "2", "7", "1"), (34, "2", "35", "1")]
    # Blocks drawn plus blocks summarized = the 3 + 8 + 36 + 3 blocks of the network.
    drawn = {n.split(".")[1] and ".".join(n.split(".")[:2]) for n in g.nodes if n.startswith("layer")
             and lay.boxes[lay.box_of[n]].repeat == 0}
    assert len(drawn) + 6 + 34 == 50
    # Every layer belongs to exactly one box, and the box graph keeps every connection.
    assert set(lay.box_of) == set(g.nodes)
    box_edges = {(e.src, e.dst) for e in lay.edges}
    for u, v in g.edges:
        a, b = lay.box_of[u], lay.box_of[v]
        assert a == b or (a, b) in box_edges
    assert len(lay.boxes) < 60  # readable: 516 layers in 51 boxes


def test_expand_on_request():
    g = zoo.build("resnet152")
    lay = layout(g, collapse=0)
    assert not lay.summaries()
    assert sum(g.nodes[b.main]["op"] == "add" for b in lay.boxes.values()) == 50


def test_densenet_dense_layers_collapse_despite_growing_inputs():
    from cnngraph.zoo.densenet import DENSENETS

    for name in ("densenet121", "densenet201"):
        lay = layout(zoo.build(name))
        _, blocks, _ = DENSENETS[int(name[8:])]
        # Each dense block: its first layer drawn, the others in one summary box.
        assert [b.repeat for b in lay.summaries()] == [n - 1 for n in blocks]
        assert len(lay.boxes) < 40


def test_inception_branches_side_by_side():
    g = zoo.build("googlenet")
    lay = layout(g)
    block = [c for c in lay.clusters if c.label.startswith("inception3a")][0]
    concat_boxes = [b for b in lay.boxes.values() if g.nodes[b.main]["op"] == "concat" and b.scope[:1] == block.scope]
    assert len(concat_boxes) == 1
    cat = concat_boxes[0]
    sources = {e.src for e in lay.edges if e.dst == cat.id}
    assert len(sources) == 4  # the four branches meet at the filter concatenation
    if shutil.which("dot") is None:
        pytest.skip("dot not installed: layout positions not checked")
    # Graphviz places the four branches side by side, in the order written: their first boxes
    # on one rank, branch1 (a lone 1×1 conv, in a cluster of its own) leftmost.
    placed = json.loads(dot_to(to_dot(g, title=False), "json"))
    pos = {o["name"]: tuple(map(float, o["pos"].split(","))) for o in placed["objects"] if "pos" in o}
    branches = [lay_c for lay_c in lay.clusters if lay_c.id in block.children]
    assert [c.label for c in branches] == ["branch1", "branch2", "branch3", "branch4"]
    firsts = [c.boxes[0] for c in branches]
    assert len({pos[b][1] for b in firsts}) == 1
    xs = [pos[b][0] for b in firsts]
    assert xs == sorted(xs) and len(set(xs)) == 4


def test_symbolic_shapes_on_edges_and_sizes_text():
    g = zoo.build("resnet18", input=(3, 32 * h, 32 * w))
    dot = to_dot(g, shapes=True)
    for s in ("3×32h×32w", "64×16h×16w", "64×8h×8w", "512×h×w", "512 "):
        assert s in dot
    assert fmt_size(2 * C) == "2C" and fmt_size(18 * H * W * C**2) == "18HWC²"
    assert fmt_shape((2 * C, sympy.floor(H / 2), sympy.floor(W / 2))) == "2C×⌊H/2⌋×⌊W/2⌋"
    assert human(61_100_840) == "61.1M" and human(999) == "999" and human(1_500) == "1.5k"


def test_one_printer_for_diagrams_tables_formulas_and_errors():
    from cnngraph.dsl import add as add_
    from cnngraph.ir import ops, printer
    from cnngraph.ir.errors import ShapeError
    from cnngraph.present import tables

    shape = (2 * C, sympy.floor(H / 2 - sympy.Rational(1, 2)) + 1, W)
    assert fmt_shape(shape) == ops.fmt_shape(shape) == printer.shape(shape) == "2C×(⌊H/2 − 1/2⌋ + 1)×W"
    cost = 18 * C**2 * H * W  # a basic block's multiply-adds: the slides write 18HWC²
    assert fmt_size(cost) == human(cost) == tables._expr(cost) == printer.text(printer.slides_form(cost)) == "18HWC²"
    from cnngraph.formulas import block

    assert str(block("basic").cost) == "18HWC²"
    net = Net("bad")
    x = net.input(C, H, W)
    with pytest.raises(ShapeError, match="2C×H×W"):
        add_(conv2d(x, 2 * C, 1), x)


def test_costs_on_boxes_match_the_cost_model():
    g = zoo.build("alexnet")
    r = analyze(g)
    share = 100 * 72_855_552 / r.total.macs
    dot = to_dot(g, costs=True)
    assert f"23.3k params · 72.9M MAC · {share:.1f}%" in dot  # conv1: 64·3·11·11 + 64; 64·56·56·363
    assert "37.8M params · 37.7M MAC" in dot  # fc6: 9216·4096 + 4096; 9216·4096


def test_direction_title_legend_and_bad_options():
    g = zoo.build("lenet5")
    dot = to_dot(g, direction="LR", legend=True)
    assert "rankdir=LR" in dot and "convolution" in dot and f"{human(analyze(g).total.params)} params" in dot
    assert "rankdir=BT" in to_dot(g, direction="bt")
    with pytest.raises(CnnGraphError, match="direction"):
        to_dot(g, direction="diagonal")
    assert to_dot(g) == to_dot(g)  # deterministic


def test_dsl_graph_without_scopes_and_skip_in_user_code():
    net = Net("mini")
    x = net.input(16, 8, 8)
    with scope("body", "stage"):
        y = relu(batchnorm(conv2d(x, 16, 3, padding=1, bias=False)))
        y = add(y, x)
    z = concat(maxpool2d(y, 2), maxpool2d(x, 2))
    lay = layout(net.graph)
    assert [b.label for b in lay.boxes.values()] == ["Input 16×8×8", "3x3 conv, 16", "+", "2x2 max pool, /2",
                                                     "2x2 max pool, /2", "concat"]
    assert sum(e.skip for e in lay.edges) == 1


@needs_dot
def test_render_files_and_stamp(tmp_path):
    g = zoo.build("resnet18")
    svg = to_svg(g)
    assert "<svg" in svg and read_stamp(svg) == source_key(to_dot(g))
    assert svg == to_svg(g)
    assert render(g, tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert render(g, tmp_path / "r.pdf").read_bytes()[:4] == b"%PDF"
    assert render(g, tmp_path / "r.dot").read_text().startswith("digraph resnet18")
    with pytest.raises(CnnGraphError, match="use a .svg"):
        render(g, tmp_path / "r.jpeg")
    assert cnngraph.svg(g) == svg  # what a notebook shows: registered with IPython by name
    registered = []

    class Formatter:
        def for_type_by_name(self, module, name, fn):
            registered.append((module, name, fn))

    shell = type("Shell", (), {"display_formatter": type("D", (), {"formatters": {"image/svg+xml": Formatter()}})()})()
    assert cnngraph.notebook_display(shell)
    (module, name, fn), = registered
    assert type(g).__module__ == module and type(g).__name__ == name and fn(g) == svg


@needs_dot
def test_cli_render(tmp_path, capsys):
    out = tmp_path / "alexnet.svg"
    assert main(["render", "alexnet", "-o", str(out)]) == 0
    text = out.read_text()
    assert "11x11 conv, 64, /4" in text and "FC 1000" in text
    out = tmp_path / "r.dot"
    assert main(["render", "resnet50", "--input", "3,32*h,32*w", "--shapes", "--costs", "--expand", "--direction", "LR",
                 "--no-fold", "-o", str(out)]) == 0
    dot = out.read_text()
    assert "256×8h×8w" in dot and "rankdir=LR" in dot and "label=<BN<BR/>" in dot
    assert main(["render", "alexnet", "-o", str(tmp_path / "x.gif")]) == 2
    assert "must end with .svg or .png or .pdf or .dot" in capsys.readouterr().err
