"""ResNets (seed 000-004) and torchvision's Wide ResNets, with torchvision's module names.

A ResNet is a stem, four stages of residual blocks and a classifier; every ImageNet model of
the family (:mod:`.preact`, :mod:`.resnext`, :mod:`.senet`) is built from the pieces here:
:func:`stem`, :func:`stages`, :func:`classifier` and a block function.

Two bottleneck variants: ``variant="torchvision"`` (ResNet v1.5, stride in the 3×3 conv; the
torchvision models and their 4.09 GMAC ResNet-50) and ``variant="paper"`` (He et al. 2016,
stride in the first 1×1 conv; the 3.8 GFLOP of the paper and the slides' table).

>>> from cnngraph import zoo, analyze
>>> analyze(zoo.build("wide_resnet50_2")).total.params  # torchvision: 68,883,240
68883240
"""
from __future__ import annotations

import enum
import functools
import math

from cnngraph.dsl import (Net, add, adaptive_avgpool2d, batchnorm, block, conv2d, flatten, linear, maxpool2d, relu,
                          scope)
from cnngraph.ir.errors import CnnGraphError

from cnngraph.zoo import register


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


def bottleneck_width(planes, groups=1, base_width=64):
    """Channels of a bottleneck's 3×3 conv: torchvision's ``planes·base_width/64·groups``.

    ResNet-50's first stage has 64; ResNeXt-50 32×4d 32·4 = 128; Wide ResNet-50-2 128.
    """
    if isinstance(planes, int):
        return planes * base_width // 64 * groups
    return planes * base_width / 64 * groups


# A bottleneck's output channels per plane: torchvision's Bottleneck.expansion (BasicBlock's is 1).
EXPANSION = 4


@block("BasicBlock")
def basic_block(x, planes, stride=1, groups=1, base_width=64):
    """Two 3×3 convs and a shortcut: 18HWC² multiply-adds at stride 1. As torchvision's
    BasicBlock, only ``groups=1`` and ``base_width=64`` exist (ResNeXt and Wide ResNet widen
    bottlenecks)."""
    if groups != 1 or base_width != 64:
        raise CnnGraphError(f"basic_block supports only groups=1 and base_width=64 (torchvision's BasicBlock), "
                            f"got groups={groups}, base_width={base_width}")
    y = conv_bn(x, planes, 3, stride, conv="conv1", bn="bn1", act_name="relu1")
    y = conv_bn(y, planes, 3, 1, conv="conv2", bn="bn2", act=False)
    return relu(add(y, _shortcut(x, planes, stride), name="add"), name="relu")


def bottleneck_branch(x, planes, stride=1, groups=1, base_width=64, variant="torchvision"):
    """The residual branch of a bottleneck, up to ``bn3``: 1×1 reduce, 3×3 (grouped for
    ResNeXt), 1×1 expand to ``EXPANSION·planes``. Shared by ResNet, ResNeXt and SE-ResNet blocks."""
    width = bottleneck_width(planes, groups, base_width)
    s1, s3 = (1, stride) if variant == "torchvision" else (stride, 1)
    y = conv_bn(x, width, 1, s1, conv="conv1", bn="bn1", act_name="relu1")
    y = conv_bn(y, width, 3, s3, groups=groups, conv="conv2", bn="bn2", act_name="relu2")
    return conv_bn(y, planes * EXPANSION, 1, 1, conv="conv3", bn="bn3", act=False)


@block("Bottleneck")
def bottleneck(x, planes, stride=1, groups=1, base_width=64, variant="torchvision"):
    """1×1 reduce, 3×3, 1×1 expand (×4): 17HWC² multiply-adds for 4C in and out at stride 1."""
    y = bottleneck_branch(x, planes, stride, groups, base_width, variant)
    return relu(add(y, _shortcut(x, planes * EXPANSION, stride), name="add"), name="relu")


class BlockKind(enum.Enum):
    """torchvision's two residual blocks (``BasicBlock``, ``Bottleneck``); each family maps a
    kind to its own block function (:data:`BLOCKS` here, pre-activation blocks in :mod:`.preact`).

    >>> RESNET_LAYERS[50][0] is BlockKind.BOTTLENECK, BLOCKS[BlockKind.BASIC].__name__
    (True, 'basic_block')
    """

    BASIC = "basic"
    BOTTLENECK = "bottleneck"


BLOCKS = {BlockKind.BASIC: basic_block, BlockKind.BOTTLENECK: bottleneck}

RESNET_LAYERS = {18: (BlockKind.BASIC, [2, 2, 2, 2]), 34: (BlockKind.BASIC, [3, 4, 6, 3]),
                 50: (BlockKind.BOTTLENECK, [3, 4, 6, 3]), 101: (BlockKind.BOTTLENECK, [3, 4, 23, 3]),
                 152: (BlockKind.BOTTLENECK, [3, 8, 36, 3]),
                 200: (BlockKind.BOTTLENECK, [3, 24, 36, 3])}  # 200: fb.resnet.torch's, as the pre-act ResNet-200


def bottleneck_depth(depth: int, family: str) -> list:
    """The stage lengths of a bottleneck ResNet of ``depth`` (ResNeXt, SE-ResNet); an error
    naming ``family`` for a basic-block depth or an unknown one."""
    kind, layers = RESNET_LAYERS.get(depth, (None, None))
    if kind is not BlockKind.BOTTLENECK:
        deep = [str(d) for d, (k, _) in RESNET_LAYERS.items() if k is BlockKind.BOTTLENECK]
        raise CnnGraphError(f"{family} depth must be {', '.join(deep[:-1])} or {deep[-1]}, got {depth}")
    return layers


def stem(x, width=64, bn=True):
    """7×7/2 conv (+ BN + ReLU) and 3×3/2 max-pool: 224 → 56. ``bn=False`` for pre-activation
    nets, whose first block normalizes."""
    if bn:
        x = conv_bn(x, width, 7, 2, conv="conv1", bn="bn1", act_name="relu")
    else:
        x = conv2d(x, width, 7, stride=2, padding=3, bias=False, name="conv1")
    return maxpool2d(x, 3, 2, padding=1, name="maxpool")


def stages(x, layers, block_fn, width=64):
    """Stages ``layer1``..: ``layers[s]`` blocks of ``width·2^s`` planes; the first block of
    every stage but the first halves H and W. ``block_fn(x, planes, stride, name=...)``."""
    for s, n in enumerate(layers):
        with scope(f"layer{s + 1}", "stage"):
            for b in range(n):
                x = block_fn(x, width * 2**s, 2 if (s > 0 and b == 0) else 1, name=str(b))
    return x


def classifier(x, num_classes=1000):
    """Global average pool, flatten, one FC layer."""
    x = adaptive_avgpool2d(x, 1, name="avgpool")
    x = flatten(x, name="flatten")
    return linear(x, num_classes, name="fc")


def check_variant(variant):
    if variant not in ("torchvision", "paper"):
        raise CnnGraphError(f"variant must be 'torchvision' (stride in the 3×3 conv) or 'paper' (stride in the "
                         f"first 1×1), got {variant!r}")


def resnet(input=(3, 224, 224), depth: int = 50, num_classes: int = 1000, variant: str = "torchvision",
           groups: int = 1, width_per_group: int = 64, width: int = 64, title: str | None = None,
           width_mult=None, depth_mult: float = 1.0):
    """ImageNet ResNet; ``groups``/``width_per_group`` give ResNeXt and Wide ResNet as in torchvision.

    ``width`` is the first stage's channel count (64); stages double it. Design-space knobs:
    ``width_mult`` sets ``width`` to ``make_divisible(64·a)`` (a number or a symbolic
    :class:`~cnngraph.dsl.knobs.Multiplier`); ``depth_mult`` repeats each stage ⌈n·d⌉ times.
    """
    if depth not in RESNET_LAYERS:
        raise CnnGraphError(f"depth must be one of {sorted(RESNET_LAYERS)}, got {depth}")
    kind, layers = RESNET_LAYERS[depth]
    layers = [math.ceil(n * depth_mult) for n in layers]
    if width_mult is not None:
        from .mobile import make_divisible

        width = make_divisible(width * width_mult)
    check_variant(variant)

    fn = BLOCKS[kind] if kind is BlockKind.BASIC else functools.partial(BLOCKS[kind], variant=variant)

    def block_fn(x, planes, stride, name):
        return fn(x, planes, stride, groups, width_per_group, name=name)

    net = Net(title or f"resnet{depth}", variant=variant)
    x = stem(net.input(*input), width)
    x = stages(x, layers, block_fn, width)
    classifier(x, num_classes)
    return net.graph


for _d in (18, 34, 50, 101, 152):
    register(f"resnet{_d}", (3, 224, 224), f"ResNet-{_d} (torchvision's resnet{_d}; "
             + ("basic blocks)" if _d < 50 else "v1.5 bottleneck)"),
             family="resnet", depth=_d)(resnet)
for _d in (50, 101, 152):
    register(f"resnet{_d}_paper", (3, 224, 224), f"ResNet-{_d} as in He et al. 2016 (stride in the first 1×1)",
             family="resnet", depth=_d, variant="paper", title=f"resnet{_d}_paper")(resnet)

# Zagoruyko & Komodakis 2016 as torchvision ships them: the bottleneck's inner 1×1/3×3 convs
# twice as wide (width_per_group=128); the outer 1×1 convs keep ResNet's 256..2048 channels.
for _d in (50, 101):
    register(f"wide_resnet{_d}_2", (3, 224, 224),
             f"Wide ResNet-{_d}-2 (torchvision's wide_resnet{_d}_2: bottleneck 3×3 convs twice as wide)",
             family="wide_resnet", depth=_d, width_per_group=128, title=f"wide_resnet{_d}_2")(resnet)
