"""Pre-activation ResNets: He, Zhang, Ren & Sun, "Identity mappings in deep residual networks",
ECCV 2016 (seed 000/002: the "Pre-Activation ResNet block").

The block is the paper's Fig. 1(b) / Fig. 4(e), "full pre-activation": BN → ReLU → conv,
twice (basic) or three times (bottleneck), and the sum is left alone — no ReLU after the
addition, so the shortcut is a pure identity from block to block. As the paper prescribes
for the ends of the network (§4.1, and Fig. 5's "asymmetric after-addition activation"), the
first block's BN-ReLU is the activation right after conv1, taken before the split, and the
last block is followed by an extra BN-ReLU (``bn_final``, ``relu_final``). A projection
shortcut (1×1 conv, no BN) reads the pre-activated input, as in the authors' code
(github.com/KaimingHe/resnet-1k-layers, ``resnet-pre-act.lua``).

ImageNet models: ``preact_resnet18/34/50/101/152/200``; the stem is the bare 7×7 conv and
max-pool (Big Transfer's and timm's ResNetV2 layout). ``stem_bn=True`` gives the stem its own
BN-ReLU as MXNet Gluon's ResNetV2 (and osmr's imgclsmob PreResNet) do: 2·64 parameters more.
CIFAR models: ``preact_resnet164`` and ``preact_resnet1001``, the paper's CIFAR-10 nets
(bottleneck blocks, 9n+2 layers), listed with 1.7M and 10.2M parameters.

>>> from cnngraph import zoo, analyze
>>> analyze(zoo.build("preact_resnet164")).total.params  # the paper: 1.7M
1703258
"""
from __future__ import annotations

import functools

from cnngraph.dsl import (Net, add, adaptive_avgpool2d, batchnorm, block, conv2d, dropout, flatten, linear, relu,
                          scope)
from cnngraph.ir.errors import CnnGraphError

from cnngraph.zoo import register
from cnngraph.zoo.resnet import EXPANSION, RESNET_LAYERS, BlockKind, check_variant, classifier, stages, stem


def _preact(x):
    return relu(batchnorm(x, name="bn1"), name="relu1")


def _projection(a, c, stride):
    with scope("downsample", "shortcut"):
        return conv2d(a, c, 1, stride=stride, bias=False, name="0")


@block("PreActBasicBlock")
def preact_basic_block(x, planes, stride=1, dropout_p: float = 0.0):
    """BN-ReLU-conv3×3, BN-ReLU-(dropout)-conv3×3, plus the shortcut; nothing after the sum.

    ``dropout_p`` > 0 puts dropout between the convs (Wide ResNets, Zagoruyko & Komodakis
    2016, Fig. 1(d)). Multiply-adds as the basic block: 18HWC² at stride 1.
    """
    a = _preact(x)
    y = conv2d(a, planes, 3, stride=stride, padding=1, bias=False, name="conv1")
    y = relu(batchnorm(y, name="bn2"), name="relu2")
    if dropout_p:
        y = dropout(y, dropout_p, name="dropout")
    y = conv2d(y, planes, 3, padding=1, bias=False, name="conv2")
    shortcut = x if (stride == 1 and x.C == planes) else _projection(a, planes, stride)
    return add(y, shortcut, name="add")


@block("PreActBottleneck")
def preact_bottleneck(x, planes, stride=1, variant="torchvision"):
    """BN-ReLU-conv1×1 (4C → C), BN-ReLU-conv3×3, BN-ReLU-conv1×1 (C → 4C), plus the
    shortcut: 17HWC² multiply-adds at stride 1, as the original bottleneck.

    ``variant="torchvision"`` strides the 3×3 conv (fb.resnet.torch's ``preresnet.lua``, Big
    Transfer, timm); ``"paper"`` the first 1×1 (the authors' CIFAR code).
    """
    s1, s3 = (1, stride) if variant == "torchvision" else (stride, 1)
    a = _preact(x)
    y = conv2d(a, planes, 1, stride=s1, bias=False, name="conv1")
    y = relu(batchnorm(y, name="bn2"), name="relu2")
    y = conv2d(y, planes, 3, stride=s3, padding=1, bias=False, name="conv2")
    y = relu(batchnorm(y, name="bn3"), name="relu3")
    y = conv2d(y, planes * EXPANSION, 1, bias=False, name="conv3")
    shortcut = x if (stride == 1 and x.C == planes * EXPANSION) else _projection(a, planes * EXPANSION, stride)
    return add(y, shortcut, name="add")


def final_activation(x):
    """The extra BN-ReLU after the last block's addition (the paper's §4.1)."""
    return relu(batchnorm(x, name="bn_final"), name="relu_final")


def preact_resnet(input=(3, 224, 224), depth: int = 50, num_classes: int = 1000, variant: str = "torchvision",
                  stem_bn: bool = False, width: int = 64):
    """ImageNet pre-activation ResNet (``depth`` 18, 34, 50, 101, 152 or 200)."""
    if depth not in RESNET_LAYERS:
        raise CnnGraphError(f"depth must be one of {sorted(RESNET_LAYERS)}, got {depth}")
    kind, layers = RESNET_LAYERS[depth]
    check_variant(variant)

    fn = {BlockKind.BASIC: preact_basic_block,
          BlockKind.BOTTLENECK: functools.partial(preact_bottleneck, variant=variant)}[kind]

    def block_fn(x, planes, stride, name):
        return fn(x, planes, stride, name=name)

    net = Net(f"preact_resnet{depth}", variant=variant)
    x = stem(net.input(*input), width, bn=stem_bn)
    x = stages(x, layers, block_fn, width)
    classifier(final_activation(x), num_classes)
    return net.graph


for _d in (18, 34, 50, 101, 152, 200):
    register(f"preact_resnet{_d}", (3, 224, 224),
             f"Pre-activation ResNet-{_d} (He et al. 2016, Identity mappings, Fig. 4(e))",
             family="preact_resnet", depth=_d)(preact_resnet)


def preact_resnet_cifar(input=(3, 32, 32), depth: int = 164, num_classes: int = 10):
    """The paper's CIFAR pre-activation ResNets: 3×3 conv to 16 channels, three stages of n =
    (depth − 2)/9 bottleneck blocks with 64, 128, 256 output channels (32², 16², 8²), final
    BN-ReLU, global average pool, FC. Stride in the first 1×1, as the authors' code."""
    if (depth - 2) % 9:
        raise CnnGraphError(f"a CIFAR pre-activation ResNet has 9n+2 layers (164, 1001), got {depth}")
    n = (depth - 2) // 9
    net = Net(f"preact_resnet{depth}")
    x = conv2d(net.input(*input), 16, 3, padding=1, bias=False, name="conv1")
    for s, planes in enumerate((16, 32, 64)):
        with scope(f"layer{s + 1}", "stage"):
            for b in range(n):
                x = preact_bottleneck(x, planes, 2 if (s > 0 and b == 0) else 1, "paper", name=str(b))
    x = final_activation(x)
    x = adaptive_avgpool2d(x, 1, name="avgpool")
    linear(flatten(x, name="flatten"), num_classes, name="fc")
    return net.graph


# The paper lists ResNet-164 with 1.7M and ResNet-1001 with 10.2M parameters (CIFAR-10); ours,
# exact: 1,703,258 and 10,327,706.
register("preact_resnet164", (3, 32, 32), "Pre-activation ResNet-164 for CIFAR-10 (He et al. 2016b, 1.7M params)",
         family="preact_resnet", depth=164)(preact_resnet_cifar)
register("preact_resnet1001", (3, 32, 32), "Pre-activation ResNet-1001 for CIFAR-10 (He et al. 2016b, 10.2M params)",
         family="preact_resnet", depth=1001)(preact_resnet_cifar)
