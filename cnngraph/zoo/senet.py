"""Squeeze-and-Excitation ResNets: Hu, Shen & Sun, "Squeeze-and-excitation networks", CVPR 2018
(seed 000: "adds global context to each residual block"; won ILSVRC 2017).

The SE block (the paper's Fig. 3) recalibrates the residual branch before the addition:
global average pool (squeeze), FC C → C/16, ReLU, FC C/16 → C, sigmoid (excitation), and
the branch multiplied channel by channel. The FCs are 1×1 convs with bias on the pooled
1×1 map, as in torchvision's ``SqueezeExcitation`` (shared with :mod:`.mobile`) and the
reference implementations: same parameters (C²/8 + C + C/16 per block) and multiply-adds
(C²/8) as FC layers.

``se_resnet50/101/152`` stride the first 1×1 conv (``variant="paper"``: the authors'
released Caffe models, ResNet-50 at 3.86 GFLOPs in the paper's Table 2); ``se_resnext*`` the
3×3 conv, as ResNeXt does. Parameter counts equal the widely used reference implementations
(Cadene's pretrained-models.pytorch, osmr's imgclsmob): SE-ResNet-50 28,088,024,
SE-ResNeXt-50 27,559,896.

>>> from cnngraph import zoo, analyze
>>> analyze(zoo.build("se_resnet50")).total.params
28088024
"""
from __future__ import annotations

from cnngraph.dsl import Net, add, block, relu
from cnngraph.ir.errors import CnnGraphError

from cnngraph.zoo import register
from cnngraph.zoo.mobile import squeeze_excitation
from cnngraph.zoo.resnet import _shortcut, bottleneck_depth, bottleneck_branch, check_variant, classifier, stages, stem


def se_module(x, reduction: int = 16):
    """The SE block on ``x`` (C channels), squeezing to C/``reduction``; named ``se``."""
    C = x.C
    squeeze = C // reduction if isinstance(C, int) else C / reduction
    return squeeze_excitation(x, squeeze, act=relu, name="se")


@block("SEBottleneck")
def se_bottleneck(x, planes, stride=1, groups=1, base_width=64, variant="torchvision", reduction=16):
    """A (ResNeXt) bottleneck whose branch is rescaled by an SE block before the addition."""
    y = se_module(bottleneck_branch(x, planes, stride, groups, base_width, variant), reduction)
    return relu(add(y, _shortcut(x, planes * 4, stride), name="add"), name="relu")


def se_resnet(input=(3, 224, 224), depth: int = 50, groups: int = 1, width_per_group: int = 64,
              variant: str = "paper", reduction: int = 16, num_classes: int = 1000, title: str | None = None):
    """SE-ResNet-``depth`` (``groups`` > 1: SE-ResNeXt) with reduction ratio ``reduction``."""
    layers = bottleneck_depth(depth, "SE-ResNet")
    check_variant(variant)

    def block_fn(x, planes, stride, name):
        return se_bottleneck(x, planes, stride, groups, width_per_group, variant, reduction, name=name)

    net = Net(title or f"se_resnet{depth}", variant=variant)
    x = stem(net.input(*input), 64)
    x = stages(x, layers, block_fn, 64)
    classifier(x, num_classes)
    return net.graph


# Published parameter counts (Cadene's pretrained-models.pytorch; osmr's imgclsmob tables):
# se_resnet50 28,088,024; se_resnet101 49,326,872; se_resnet152 66,821,848;
# se_resnext50_32x4d 27,559,896; se_resnext101_32x4d 48,955,416.
for _d in (50, 101, 152):
    register(f"se_resnet{_d}", (3, 224, 224), f"SE-ResNet-{_d} (Hu et al. 2018; stride in the first 1×1)",
             family="senet", depth=_d, title=f"se_resnet{_d}")(se_resnet)
for _d in (50, 101):
    register(f"se_resnext{_d}_32x4d", (3, 224, 224), f"SE-ResNeXt-{_d} 32×4d (Hu et al. 2018)", family="senet",
             depth=_d, groups=32, width_per_group=4, variant="torchvision", title=f"se_resnext{_d}_32x4d")(se_resnet)
