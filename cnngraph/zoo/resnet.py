"""ResNets (seed 000-004), with torchvision's module names.

Two bottleneck variants: ``variant="torchvision"`` (ResNet v1.5, stride in the 3×3 conv; the
torchvision models and their 4.09 GMAC ResNet-50) and ``variant="paper"`` (He et al. 2016,
stride in the first 1×1 conv; the 3.8 GFLOP of the paper and the slides' table).
"""
from __future__ import annotations

from cnngraph.dsl import (Net, add, adaptive_avgpool2d, batchnorm, block, conv2d, flatten, linear, maxpool2d, relu,
                          scope)

from . import register


def conv_bn(x, c, k, stride=1, groups=1, conv="conv", bn="bn", act=True, act_name=None, dilation=1):
    x = conv2d(x, c, k, stride=stride, padding=dilation * (k - 1) // 2, groups=groups, bias=False, name=conv,
               dilation=dilation)
    x = batchnorm(x, name=bn)
    return relu(x, name=act_name) if act else x


def _shortcut(x, c, stride):
    if stride == 1 and x.C == c:
        return x
    with scope("downsample", "shortcut"):
        return conv_bn(x, c, 1, stride, conv="0", bn="1", act=False)


@block("BasicBlock")
def basic_block(x, planes, stride=1, groups=1, base_width=64):
    """Two 3×3 convs and a shortcut: 18HWC² multiply-adds at stride 1."""
    y = conv_bn(x, planes, 3, stride, conv="conv1", bn="bn1", act_name="relu1")
    y = conv_bn(y, planes, 3, 1, conv="conv2", bn="bn2", act=False)
    return relu(add(y, _shortcut(x, planes, stride), name="add"), name="relu")


@block("Bottleneck")
def bottleneck(x, planes, stride=1, groups=1, base_width=64, variant="torchvision"):
    """1×1 reduce, 3×3, 1×1 expand (×4): 17HWC² multiply-adds for 4C in and out at stride 1."""
    width = planes * base_width // 64 * groups if isinstance(planes, int) else planes * base_width / 64 * groups
    s1, s3 = (1, stride) if variant == "torchvision" else (stride, 1)
    y = conv_bn(x, width, 1, s1, conv="conv1", bn="bn1", act_name="relu1")
    y = conv_bn(y, width, 3, s3, groups=groups, conv="conv2", bn="bn2", act_name="relu2")
    y = conv_bn(y, planes * 4, 1, 1, conv="conv3", bn="bn3", act=False)
    return relu(add(y, _shortcut(x, planes * 4, stride), name="add"), name="relu")


RESNET_LAYERS = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]), 50: ("bottleneck", [3, 4, 6, 3]),
                 101: ("bottleneck", [3, 4, 23, 3]), 152: ("bottleneck", [3, 8, 36, 3])}


def resnet(input=(3, 224, 224), depth: int = 50, num_classes: int = 1000, variant: str = "torchvision",
           groups: int = 1, width_per_group: int = 64, width: int = 64, title: str | None = None):
    """ImageNet ResNet; ``groups``/``width_per_group`` give ResNeXt and Wide ResNet as in torchvision.

    ``width`` is the first stage's channel count (64); stages double it.
    """
    kind, layers = RESNET_LAYERS[depth]
    if variant not in ("torchvision", "paper"):
        raise ValueError(f"variant must be 'torchvision' or 'paper', got {variant!r}")
    net = Net(title or f"resnet{depth}", variant=variant)
    x = net.input(*input)
    x = conv_bn(x, width, 7, 2, conv="conv1", bn="bn1", act_name="relu")
    x = maxpool2d(x, 3, 2, padding=1, name="maxpool")
    for s, n in enumerate(layers):
        planes = width * 2**s
        with scope(f"layer{s + 1}", "stage"):
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                if kind == "basic":
                    x = basic_block(x, planes, stride, name=str(b))
                else:
                    x = bottleneck(x, planes, stride, groups, width_per_group, variant, name=str(b))
    x = adaptive_avgpool2d(x, 1, name="avgpool")
    x = flatten(x, name="flatten")
    linear(x, num_classes, name="fc")
    return net.graph


for _d in RESNET_LAYERS:
    register(f"resnet{_d}", (3, 224, 224), f"ResNet-{_d} (torchvision's resnet{_d}; v1.5 bottleneck)",
             family="resnet", depth=_d)(resnet)
for _d in (50, 101, 152):
    register(f"resnet{_d}_paper", (3, 224, 224), f"ResNet-{_d} as in He et al. 2016 (stride in the first 1×1)",
             family="resnet", depth=_d, variant="paper", title=f"resnet{_d}_paper")(resnet)
