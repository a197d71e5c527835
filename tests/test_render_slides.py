"""Slide overviews: ``--depth stage`` diagrams fit a 1920×1080 slide with text of at least 12 px.

Measured on the SVG Graphviz writes: its ``width``/``height`` (pt, 96 px = 72 pt) give the
scale that fits the slide (never enlarged), and every ``font-size`` (user units = pt) times
that scale must be at least 12 px.
"""
import re
import shutil

import pytest

from cnngraph import zoo
from cnngraph.present.render import layout, to_dot, to_svg

SLIDE = (1920, 1080)
PX_PER_PT = 96 / 72
SIX = ["resnet50", "mobilenet_v2", "nasnet_a_mobile", "googlenet", "shufflenet_v2_x1_0", "resnext50_32x4d"]


def slide_fit(svg: str) -> tuple[float, float, float]:
    """(width px, height px, smallest text px once scaled to fit the slide)."""
    m = re.search(r'<svg[^>]*width="([\d.]+)pt"[^>]*height="([\d.]+)pt"', svg)
    w, h = float(m.group(1)) * PX_PER_PT, float(m.group(2)) * PX_PER_PT
    scale = min(1.0, SLIDE[0] / w, SLIDE[1] / h)
    fonts = [float(f) for f in re.findall(r'font-size="([\d.]+)"', svg)]
    return w, h, min(fonts) * PX_PER_PT * scale


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
@pytest.mark.parametrize("model", SIX)
def test_stage_overview_fits_a_slide(model):
    w, h, text_px = slide_fit(to_svg(zoo.build(model), depth="stage"))
    assert text_px >= 12, f"{model}: {w:.0f}×{h:.0f} px, smallest text {text_px:.1f} px at 1920×1080"


def test_stage_boxes_are_the_stages():
    lay = layout(zoo.build("resnet50"), depth="stage")
    labels = [b.label for b in lay.boxes.values()]
    assert ["layer1", "layer2", "layer3", "layer4"] == [l for l in labels if l.startswith("layer")]
    assert next(b for b in lay.boxes.values() if b.label == "layer3").chain == "6 × Bottleneck · 1024×14×14"
    # torchvision's `features` wraps all of MobileNet v2: its children are the stages.
    lay = layout(zoo.build("mobilenet_v2"), depth="stage")
    assert sum(b.label.startswith("features.") for b in lay.boxes.values()) == 19 and not lay.clusters


def test_block_depth_keeps_stage_clusters():
    lay = layout(zoo.build("resnet50"), depth="block", collapse=0)
    blocks = [b for b in lay.boxes.values() if b.id.startswith("u")]
    assert len(blocks) == 16 and [c.label.split(" ")[0] for c in lay.clusters] == ["layer1", "layer2", "layer3", "layer4"]


def test_tooltips_names_size_and_dpi():
    dot = to_dot(zoo.build("alexnet"), names=True, size="1920x1080", dpi=150)
    assert 'tooltip="features.0: output 64×56×56, 23.3k params, 72.9M MACs"' in dot
    assert "size=\"20,11.25\"" in dot and "dpi=150" in dot and ">conv1</FONT>" in dot
