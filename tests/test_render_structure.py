"""Diagram structure the lecture needs: branches in the order written, clusters only where the
architecture has groups (with short titles), no one-input concat, collapsed pathways alike.

Each test fails on the diagrams drawn before issue 15's fixes (reversed GoogLeNet branches with
branch1 outside the clusters, MobileNet v2's extra ``conv · layers`` frame, ResNeXt's × 30 / × 31,
DenseNet's one-input concat box).
"""
import json
import re
import shutil

import pytest

from cnngraph import zoo
from cnngraph.ir import graph
from cnngraph.present.render import branch_ports, dot_to, layout, to_dot


def _cluster(lay, label_start):
    return next(c for c in lay.clusters if c.label.startswith(label_start))


def test_googlenet_branches_are_clusters_in_written_order_with_short_titles():
    g = graph.as_graph(zoo.build("googlenet"))
    lay = layout(g)
    block = _cluster(lay, "inception3a")
    kids = [c for c in lay.clusters if c.id in block.children]
    assert [c.label for c in kids] == ["branch1", "branch2", "branch3", "branch4"]
    # branch1 is one box (a 1×1 conv) and still a branch, in a frame of its own
    assert [lay.boxes[b].main for b in kids[0].boxes] == ["inception3a.branch1.conv"]
    assert not any("×" in c.label or "inception3a." in c.label for c in kids)
    # The edges from the max pool into the branches leave it left to right in the written order.
    pool = lay.box_of["maxpool2"]
    ports = branch_ports(lay)
    assert [ports[(pool, c.boxes[0])] for c in kids] == ["w", "sw", "se", "e"]
    src = to_dot(g)
    fans = re.findall(rf"^\t{pool} -> (b\d+) \[tailport=(\w+)", src, re.M)
    assert fans == [(c.boxes[0], p) for c, p in zip(kids, ["w", "sw", "se", "e"])]


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
@pytest.mark.parametrize("model", ["googlenet", "shufflenet_v2_x1_0", "inception_v4"])
def test_branches_drawn_left_to_right_in_written_order(model):
    """Measured on the laid-out drawing: sibling branch clusters that share a source are placed
    left to right as written (dot drew GoogLeNet's 1, 4, 3, 2 and ShuffleNet's 2, 1 before)."""
    lay = layout(zoo.build(model))
    placed = json.loads(dot_to(to_dot(zoo.build(model)), "json"))
    x0 = {o["name"]: float(o["bb"].split(",")[0]) for o in placed["objects"] if o["name"].startswith("cluster_")}
    groups = 0
    for parent in lay.clusters:
        kids = [c for c in lay.clusters if c.id in parent.children and c.label.startswith("branch")]
        fed: dict = {}  # source box -> the sibling branches it feeds, in written order
        for c in kids:
            for e in lay.edges:
                if e.dst == c.boxes[0] and e.src not in c.boxes:
                    fed.setdefault(e.src, []).append(c)
        for src, cs in fed.items():
            if len(cs) >= 2:
                xs = [x0[c.id] for c in cs]
                assert xs == sorted(xs), (parent.label, [c.label for c in sorted(cs, key=lambda c: x0[c.id])])
                groups += 1
    assert groups >= 3


def test_mobilenet_v2_blocks_have_no_wrapper_frame():
    lay = layout(zoo.build("mobilenet_v2"))
    assert not any(c.scope[-1][1] == "layers" for c in lay.clusters)
    block = _cluster(lay, "features.3 ")
    assert block.label == "features.3 · InvertedResidual" and not block.children
    kinds = [lay.boxes[b].kind for b in block.boxes]
    assert kinds == ["conv", "conv", "conv", "merge"]  # 1×1 expand, 3×3 dw, 1×1 project, + (like a Bottleneck)
    # torchvision's `features` wraps the whole net: no frame around everything either
    assert not any(c.scope == (("features", "stage"),) for c in lay.clusters)


def test_densenet_draws_concat_only_where_it_joins_two_or_more():
    g = graph.as_graph(zoo.build("densenet121"))
    lay = layout(g, collapse=0)
    for b in lay.boxes.values():
        if g.nodes[b.main]["op"] == "concat":
            assert len(g.nodes[b.main]["inputs"]) >= 2, b.main
    first = lay.boxes[lay.box_of["features.denseblock1.denselayer1.conv1"]]
    assert first.main == "features.denseblock1.denselayer1.conv1"
    assert first.chain == "BN · relu · conv · BN · relu" and "concat" not in first.chain
    # the one-input concat is folded into that box, not dropped from the graph
    assert lay.box_of["features.denseblock1.denselayer1.concat"] == first.id


def test_resnext_pathways_collapse_alike_and_the_summary_edge_is_not_a_shortcut():
    g = graph.as_graph(zoo.build("resnext50_32x4d", form="pathways"))
    lay = layout(g)
    paths = [s for s in lay.summaries() if s.like == "path0"]
    blocks = [c for c in lay.clusters if c.label.endswith("· ResNeXtPathways")]
    assert len(paths) == len(blocks) == 10  # 16 blocks, runs of identical blocks collapsed too
    # every drawn block: path0 and "× 31 pathway" (path1 … path31), the first of a stage too
    assert {(s.repeat, s.first, s.last) for s in paths} == {(31, "path1", "path31")}
    for s in paths:
        out = [e for e in lay.edges if e.src == s.id]
        assert len(out) == 1 and not out[0].skip  # into the sum of pathways, drawn as a normal edge
    # the identity and projection shortcuts are still shortcuts: one into each block's add
    skips = [e for e in lay.edges if e.skip and lay.boxes[e.dst].main.endswith(".add")]
    assert len(skips) == len({e.dst for e in skips}) == len(blocks)


def test_block_depth_names_are_short_and_branches_ordered():
    lay = layout(zoo.build("googlenet"), depth="block")
    block = _cluster(lay, "inception3a")
    assert [lay.boxes[b].label for b in block.boxes if lay.boxes[b].kind != "merge"] == \
        ["branch1", "branch2", "branch3", "branch4"]
    assert lay.boxes[block.boxes[1]].chain == "128×28×28" and lay.boxes[block.boxes[1]].full == "inception3a.branch2"


def test_counts_only_for_repeated_blocks_and_names_are_the_scopes_own():
    # Inception-v3's modules hold seven BasicConv2d (one conv each): layers, not repeated blocks.
    lay = layout(zoo.build("inception_v3"))
    assert _cluster(lay, "Mixed_5b").label == "Mixed_5b · InceptionA"
    assert not any("BasicConv2d" in c.label for c in lay.clusters)
    # ResNet-152's stages repeat bottlenecks (3 convs and an add each); layer3 holds 36 of them.
    lay = layout(zoo.build("resnet152"))
    assert [c.label for c in lay.clusters if c.depth == 1][2] == "layer3 · 36 × Bottleneck"
    # A frame's title is its own name even when the frames between are not drawn.
    lay = layout(zoo.build("efficientnet_b0"))
    assert "block.1 · SqueezeExcitation" in [c.label for c in lay.clusters]
    assert not any(c.label.startswith("1.0.") for c in lay.clusters)


def test_names_only_when_asked():
    g = zoo.build("alexnet")
    plain, named = to_dot(g), to_dot(g, names=True)
    assert ">conv1</FONT>" not in plain and ">conv1</FONT>" in named
    assert ">input</FONT>" not in named  # the input box says "Input 3×227×227" already


def test_side_by_side_branches_are_not_counted_as_repeats():
    lay = layout(zoo.build("inception_resnet_v2"), depth="block")
    assert _cluster(lay, "mixed_7a").label == "mixed_7a"  # not "mixed_7a · 3 × branch"
    assert _cluster(lay, "repeat_1").label == "repeat_1 · 20 × Block17"


def test_a_lone_box_is_framed_only_as_a_branch_of_a_common_source():
    # SE-ResNet's projection shortcut is parallel to the block's `se` frame but not fed like it:
    # no frame, as in plain ResNet-50.
    for model in ("se_resnet50", "resnet50"):
        assert not any(c.label == "downsample" for c in layout(zoo.build(model)).clusters), model


def test_block_depth_never_draws_a_wrapper_as_the_block():
    # MobileNet v3's features.N.block wraps all of features.N but the residual add: the inverted
    # residual itself is the block, its add inside the box.
    g = graph.as_graph(zoo.build("mobilenet_v3_large"))
    lay = layout(g, depth="block", collapse=0)
    labels = [b.label for b in lay.boxes.values()]
    assert "block" not in labels and labels.count("features.5") == 1
    assert lay.box_of["features.5.add"] == lay.box_of["features.5.block.0.0"]
    assert not any(b.kind == "merge" for b in lay.boxes.values())
