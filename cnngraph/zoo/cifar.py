"""CIFAR-10 ResNets and plain nets (He et al. 2015, §4.2) and Wide ResNets (Zagoruyko &
Komodakis 2016).

He et al.'s CIFAR nets (seed 002: "152 layers on ImageNet, 1202 on Cifar"; seed 004: "56-layer
plain net has higher training error than 20-layer"): a 3×3 conv to 16 channels, three
stages of 2n 3×3 convs with 16, 32, 64 filters on 32², 16², 8² maps, global average pool and
a 10-way FC: 6n + 2 weighted layers. BN follows every conv. The residual nets use the
paper's option A shortcuts: identity, and where a stage halves the map and doubles the
filters, the input subsampled by 2 with zero channels appended — no parameters (the
``pad_channels`` op; fb.resnet.torch's "strided, zero-padded identity" puts the zeros after
the input's channels, as here). The plain nets are the same stacks without shortcuts.

Wide ResNets WRN-d-k: pre-activation basic blocks (:func:`.preact.preact_basic_block`),
(d − 4)/6 per stage with 16k, 32k, 64k filters, a 1×1 projection where the width changes,
dropout between the convs optional.

>>> from cnngraph import zoo, analyze
>>> [analyze(zoo.build(f"resnet{d}")).total.params for d in (20, 110)]  # the paper: 0.27M, 1.7M
[269722, 1727962]
"""
from __future__ import annotations

from cnngraph.dsl import Net, adaptive_avgpool2d, add, block, conv2d, flatten, linear, pad_channels, relu, scope
from cnngraph.ir.errors import CnnGraphError

from cnngraph.zoo import register
from cnngraph.zoo.preact import final_activation, preact_basic_block
from cnngraph.zoo.resnet import conv_bn


def _option_a(x, planes, stride):
    """The paper's option A: identity, or subsample + zero-padded channels (no parameters)."""
    if stride == 1 and x.C == planes:
        return x
    return pad_channels(x, planes - x.C, stride, name="shortcut")


def _option_b(x, planes, stride):
    """Option B: projection (1×1 conv + BN) only where the shape changes."""
    if stride == 1 and x.C == planes:
        return x
    with scope("downsample", "shortcut"):
        return conv_bn(x, planes, 1, stride, conv="0", bn="1", act=False)


@block("BasicBlock")
def cifar_basic_block(x, planes, stride=1, shortcut="A"):
    """conv-BN-ReLU, conv-BN, add the shortcut, ReLU: the paper's Fig. 2 block."""
    y = conv_bn(x, planes, 3, stride, conv="conv1", bn="bn1", act_name="relu1")
    y = conv_bn(y, planes, 3, 1, conv="conv2", bn="bn2", act=False)
    s = _option_a(x, planes, stride) if shortcut == "A" else _option_b(x, planes, stride)
    return relu(add(y, s, name="add"), name="relu")


@block("PlainBlock")
def plain_block(x, planes, stride=1):
    """The same two conv-BN-ReLU layers without the shortcut (the paper's plain baseline)."""
    y = conv_bn(x, planes, 3, stride, conv="conv1", bn="bn1", act_name="relu1")
    return conv_bn(y, planes, 3, 1, conv="conv2", bn="bn2", act_name="relu")


def _head(x, num_classes):
    x = adaptive_avgpool2d(x, 1, name="avgpool")
    return linear(flatten(x, name="flatten"), num_classes, name="fc")


def resnet_cifar(input=(3, 32, 32), depth: int = 20, num_classes: int = 10, plain: bool = False,
                 shortcut: str = "A"):
    """He et al.'s CIFAR-10 net with 6n + 2 layers; ``plain=True`` drops the shortcuts,
    ``shortcut="B"`` uses projections where the shape changes."""
    if (depth - 2) % 6:
        raise CnnGraphError(f"a CIFAR ResNet has 6n+2 layers (20, 32, 44, 56, 110, 1202), got {depth}")
    if shortcut not in ("A", "B"):
        raise CnnGraphError(f"shortcut must be 'A' (zero-padded identity) or 'B' (projection), got {shortcut!r}")
    n = (depth - 2) // 6
    net = Net(f"plain{depth}" if plain else f"resnet{depth}")
    x = conv_bn(net.input(*input), 16, 3, conv="conv1", bn="bn1", act_name="relu")
    for s, planes in enumerate((16, 32, 64)):
        with scope(f"layer{s + 1}", "stage"):
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                if plain:
                    x = plain_block(x, planes, stride, name=str(b))
                else:
                    x = cifar_basic_block(x, planes, stride, shortcut, name=str(b))
    _head(x, num_classes)
    return net.graph


# He et al. 2015, Table 6: parameters 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M. Ours, exact
# (conv weights + BN γ, β + FC; option A adds none): 269,722; 464,154; 658,586; 853,018;
# 1,727,962; 19,421,274 = 97,216·n − 21,926 for n = (depth − 2)/6 (derivation in docs/zoo-resnets.md).
CIFAR_PAPER_PARAMS = {20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M", 1202: "19.4M"}
for _d, _p in CIFAR_PAPER_PARAMS.items():
    register(f"resnet{_d}", (3, 32, 32), f"CIFAR-10 ResNet-{_d}, option A shortcuts (He et al. 2015 §4.2; {_p} params)",
             family="resnet_cifar", depth=_d)(resnet_cifar)
for _d in (20, 56):
    register(f"plain{_d}", (3, 32, 32), f"CIFAR-10 plain {_d}-layer net (He et al. 2015 §4.2, Fig. 6 left)",
             family="resnet_cifar", depth=_d, plain=True)(resnet_cifar)


def wide_resnet_cifar(input=(3, 32, 32), depth: int = 28, widen: int = 10, num_classes: int = 10,
                      dropout_p: float = 0.0):
    """WRN-depth-widen: conv 3×3 to 16, three stages of (depth − 4)/6 pre-activation basic
    blocks with 16·widen, 32·widen, 64·widen filters, BN-ReLU, global average pool, FC.
    ``dropout_p=0.3`` is the paper's dropout between the convs (a no-op for counting)."""
    if (depth - 4) % 6:
        raise CnnGraphError(f"a Wide ResNet has 6n+4 layers (16, 22, 28, 40), got {depth}")
    n = (depth - 4) // 6
    net = Net(f"wrn{depth}_{widen}")
    x = conv2d(net.input(*input), 16, 3, padding=1, bias=False, name="conv1")
    for s, planes in enumerate((16 * widen, 32 * widen, 64 * widen)):
        with scope(f"layer{s + 1}", "stage"):
            for b in range(n):
                x = preact_basic_block(x, planes, 2 if (s > 0 and b == 0) else 1, dropout_p, name=str(b))
    _head(final_activation(x), num_classes)
    return net.graph


# Zagoruyko & Komodakis 2016 list WRN-28-10 with 36.5M parameters; ours, exact: 36,479,194.
register("wrn28_10", (3, 32, 32), "Wide ResNet WRN-28-10 for CIFAR (Zagoruyko & Komodakis 2016; 36.5M params)",
         family="wide_resnet", depth=28, widen=10)(wide_resnet_cifar)
