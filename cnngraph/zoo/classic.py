"""LeNet-5, AlexNet, VGG: the classic plain stacks of seeds 000-004.

>>> from cnngraph import zoo, analyze
>>> [analyze(zoo.build(n)).total.params for n in ("lenet5", "alexnet", "vgg16")]
[1256080, 61100840, 138357544]
"""
from __future__ import annotations

from cnngraph.dsl import (Net, adaptive_avgpool2d, conv2d, dropout, flatten, linear, maxpool2d, rbf, relu, scope)

from cnngraph.zoo import register


@register("lenet5", (1, 28, 28), "LeNet-5 as in seed 003: 1×28×28, 5×5 convs pad 2, ReLU, max-pool", family="lenet")
def lenet5(input=(1, 28, 28), num_classes: int = 10):
    net = Net("lenet5")
    x = net.input(*input)
    x = relu(conv2d(x, 20, 5, padding=2, name="conv1"), name="relu1")
    x = maxpool2d(x, 2, 2, name="pool1")
    x = relu(conv2d(x, 50, 5, padding=2, name="conv2"), name="relu2")
    x = maxpool2d(x, 2, 2, name="pool2")
    x = flatten(x, name="flatten")
    x = relu(linear(x, 500, name="fc1"), name="relu3")
    linear(x, num_classes, name="fc2")
    return net.graph


@register("alexnet", (3, 227, 227), "AlexNet, 64-filter version of the slides and torchvision (names: torchvision's)",
          family="alexnet")
def alexnet(input=(3, 227, 227), num_classes: int = 1000, avgpool: bool = False, dropout_p: float = 0.5):
    """torchvision's AlexNet. ``avgpool=True`` adds its AdaptiveAvgPool2d(6), a no-op at 224 and 227
    that the slides' table leaves out."""
    net = Net("alexnet")
    x = net.input(*input)
    with scope("features", "stage"):
        x = relu(conv2d(x, 64, 11, stride=4, padding=2, name="0", title="conv1"), name="1")
        x = maxpool2d(x, 3, 2, name="2", title="pool1")
        x = relu(conv2d(x, 192, 5, padding=2, name="3", title="conv2"), name="4")
        x = maxpool2d(x, 3, 2, name="5", title="pool2")
        x = relu(conv2d(x, 384, 3, padding=1, name="6", title="conv3"), name="7")
        x = relu(conv2d(x, 256, 3, padding=1, name="8", title="conv4"), name="9")
        x = relu(conv2d(x, 256, 3, padding=1, name="10", title="conv5"), name="11")
        x = maxpool2d(x, 3, 2, name="12", title="pool5")
    if avgpool:
        x = adaptive_avgpool2d(x, 6, name="avgpool")
    x = flatten(x, name="flatten")
    with scope("classifier", "stage"):
        x = dropout(x, dropout_p, name="0")
        x = relu(linear(x, 4096, name="1", title="fc6"), name="2")
        x = dropout(x, dropout_p, name="3")
        x = relu(linear(x, 4096, name="4", title="fc7"), name="5")
        linear(x, num_classes, name="6", title="fc8")
    return net.graph


VGG_CFGS = {
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def vgg(input=(3, 224, 224), depth: int = 16, num_classes: int = 1000, batch_norm: bool = False,
        avgpool: bool = False, dropout_p: float = 0.5):
    """VGG-11/13/16/19 (configurations A, B, D, E), torchvision's names (``features.N``).

    Node titles follow seed 002 (``conv1-1`` ... ``conv5-3``, ``pool1`` ... ``fc8``).
    """
    from cnngraph.dsl import batchnorm

    net = Net(f"vgg{depth}" + ("_bn" if batch_norm else ""))
    x = net.input(*input)
    i = 0
    with scope("features", "stage"):
        for s, stage in enumerate(VGG_CFGS[depth], 1):
            for j, c in enumerate(stage, 1):
                x = conv2d(x, c, 3, padding=1, name=str(i), title=f"conv{s}-{j}")
                i += 1
                if batch_norm:
                    x = batchnorm(x, name=str(i))
                    i += 1
                x = relu(x, name=str(i))
                i += 1
            x = maxpool2d(x, 2, 2, name=str(i), title=f"pool{s}")
            i += 1
    if avgpool:
        x = adaptive_avgpool2d(x, 7, name="avgpool")
    x = flatten(x, name="flatten")
    with scope("classifier", "stage"):
        x = relu(linear(x, 4096, name="0", title="fc6"), name="1")
        x = dropout(x, dropout_p, name="2")
        x = relu(linear(x, 4096, name="3", title="fc7"), name="4")
        x = dropout(x, dropout_p, name="5")
        linear(x, num_classes, name="6", title="fc8")
    return net.graph


for _d in (11, 13, 16, 19):
    register(f"vgg{_d}", (3, 224, 224), f"VGG-{_d} (torchvision's vgg{_d})", family="vgg", depth=_d)(vgg)
    register(f"vgg{_d}_bn", (3, 224, 224), f"VGG-{_d} with batch norm (torchvision's vgg{_d}_bn)", family="vgg",
             depth=_d, batch_norm=True)(vgg)


# ---------------------------------------------------------------- the classics as published
def _alexnet_like(net, x, conv1, conv2, widths, groups, lrn_alpha, pool_ceil, conv1_padding, num_classes,
                  dropout_p):
    """conv1 → ReLU → LRN → pool → conv2 → ReLU → LRN → pool → conv3-5 → pool → fc6-8, Caffe's names.

    ``conv1`` is (kernel, stride, filters), ``conv2`` (stride, padding) of its 5×5 conv,
    ``widths`` the filters of conv3-5 and ``groups`` those of conv2, conv4, conv5.
    """
    from cnngraph.dsl import lrn

    k1, s1, c1 = conv1
    c3, c4, c5 = widths
    g2, g4, g5 = groups
    x = relu(conv2d(x, c1, k1, stride=s1, padding=conv1_padding, name="conv1"), name="relu1")
    x = lrn(x, 5, alpha=lrn_alpha, beta=0.75, k=2.0, name="norm1")
    x = maxpool2d(x, 3, 2, ceil_mode=pool_ceil, name="pool1")
    x = relu(conv2d(x, 256, 5, stride=conv2[0], padding=conv2[1], groups=g2, name="conv2"), name="relu2")
    x = lrn(x, 5, alpha=lrn_alpha, beta=0.75, k=2.0, name="norm2")
    x = maxpool2d(x, 3, 2, ceil_mode=pool_ceil, name="pool2")
    x = relu(conv2d(x, c3, 3, padding=1, name="conv3"), name="relu3")
    x = relu(conv2d(x, c4, 3, padding=1, groups=g4, name="conv4"), name="relu4")
    x = relu(conv2d(x, c5, 3, padding=1, groups=g5, name="conv5"), name="relu5")
    x = maxpool2d(x, 3, 2, ceil_mode=pool_ceil, name="pool5")
    x = flatten(x, name="flatten")
    x = dropout(relu(linear(x, 4096, name="fc6"), name="relu6"), dropout_p, name="drop6")
    x = dropout(relu(linear(x, 4096, name="fc7"), name="relu7"), dropout_p, name="drop7")
    return net.output(linear(x, num_classes, name="fc8")).graph


@register("alexnet_v1", (3, 227, 227), "AlexNet of the paper: 96 filters, two GPUs (groups=2), LRN", family="alexnet")
def alexnet_v1(input=(3, 227, 227), num_classes: int = 1000, conv1_padding=0, dropout_p: float = 0.5):
    """The original two-GPU AlexNet of seeds 002/004 (Krizhevsky, Sutskever & Hinton 2012, Figure 2).

    Each GPU holds half of every layer's maps; "the kernels of the second, fourth, and fifth
    convolutional layers are connected only to those kernel maps in the previous layer which
    reside on the same GPU": ``groups=2`` on conv2, conv4 and conv5, while conv3 and the FC
    layers see both halves. conv1 sees the whole input on both GPUs (48 + 48 = 96 kernels, an
    ordinary convolution). Response normalization (k=2, n=5, α=1e-4, β=0.75) follows ReLU of
    conv1 and conv2 and precedes their max pools, as section 3.5 of the paper orders them (the
    seed 004 table lists pool then norm, Caffe's order). PyTorch's ``LocalResponseNorm``
    divides α by n, so the paper's α=1e-4 is ``alpha=5e-4`` here.

    Input: the paper says 224×224×3, but 11×11/4 filters only give its 55×55×96 maps on
    227×227 without padding ((227 − 11)/4 + 1 = 55), the choice of Caffe and of seed 004; on
    224 the stride does not fit ((224 − 11)/4 is not an integer, floored to 54). Use
    ``input=(3, 224, 224), conv1_padding=(1, 1, 2, 2)`` for 224 with 55×55 maps.
    """
    net = Net("alexnet_v1")
    x = net.input(*input)
    return _alexnet_like(net, x, (11, 4, 96), (1, 2), (384, 384, 256), (2, 2, 2), 5e-4, False, conv1_padding,
                         num_classes, dropout_p)


@register("zfnet", (3, 224, 224), "ZFNet of the slides: 7×7/2 conv1, conv3-5 = 512/1024/512", family="alexnet")
def zfnet(input=(3, 224, 224), num_classes: int = 1000, widths=(512, 1024, 512), dropout_p: float = 0.5):
    """ZFNet (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014).

    Figure 3 of the paper: 224×224 input, conv1 96 7×7/2 → 110×110, 3×3/2 max pool → 55×55,
    contrast normalization, conv2 256 5×5/2 → 26×26, pool → 13×13, normalization, conv3-5
    384/384/256 3×3, pool → 6×6, fc6 4096, fc7 4096, 1000-way softmax; a single GPU, so dense
    connections where AlexNet had groups. The slides' "conv3,4,5 = 512, 1024, 512" is model (b)
    of the paper's Table 2 and the default here; ``widths=(384, 384, 256)`` (``zfnet_fig3``)
    is Figure 3's, 62,357,608 parameters.

    Padding is not printed in Figure 3; the map sizes it prints need conv1 padding 1
    ((224 + 2 − 7)/2 + 1 = 110, floored) and ceiling-mode pools (110 → 55 and 26 → 13),
    Caffe's pooling rule. The "contrast normalization" layers are modelled as AlexNet's LRN
    (size 5); they carry no parameters and do not change the counts.
    """
    net = Net("zfnet" if tuple(widths) == (512, 1024, 512) else "zfnet_fig3")
    x = net.input(*input)
    return _alexnet_like(net, x, (7, 2, 96), (2, 0), tuple(widths), (1, 1, 1), 5e-4, True, 1, num_classes, dropout_p)


register("zfnet_fig3", (3, 224, 224), "ZFNet of the paper's Figure 3 (conv3-5 = 384/384/256)",
         family="alexnet", widths=(384, 384, 256))(zfnet)


# LeNet-5's C3 (LeCun et al. 1998, Table I): the S2 maps feeding each of the 16 C3 maps.
LENET_C3_TABLE = [
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
]


def _subsample(x, name):
    """LeNet's S layers: each unit adds its 2×2 inputs, multiplies by a trainable coefficient
    and adds a trainable bias (2 parameters per map), then squashes.

    Written as a 2×2/2 average pool (the sum, up to the 1/4 the coefficient absorbs) and a
    depthwise 1×1 conv with bias (one coefficient and one bias per map).
    """
    from cnngraph.dsl import avgpool2d, scope, tanh

    with scope(name, "Subsampling"):
        x = avgpool2d(x, 2, 2, name="sum")
        x = conv2d(x, x.C, 1, groups=x.C, name="coef")
        return tanh(x, name="squash")


def _partial_conv(x, table, kernel, name):
    """A convolution where output map j sees only the input maps ``table[j]``.

    Maps with the same number of inputs form one grouped conv over their gathered inputs
    (channel slices, concatenated in table order), so params and MACs are exactly those of
    the connection table.
    """
    from cnngraph.dsl import channel_slice, concat, scope

    with scope(name, "PartialConv"):
        slices, outs, j = {}, [], 0

        def take(a, b):  # one slice node per distinct range of input maps
            if (a, b) not in slices:
                slices[(a, b)] = channel_slice(x, a, b, name=f"maps{a}_{b - 1}" if b - a > 1 else f"map{a}")
            return slices[(a, b)]

        while j < len(table):
            n = len(table[j])
            group = [m for m in range(j, len(table)) if len(table[m]) == n]
            group = group[:next((i for i, m in enumerate(group) if m != j + i), len(group))]
            parts = []
            for m in group:
                runs, start = [], table[m][0]
                for a, b in zip(table[m], table[m][1:] + (None,)):
                    if b != a + 1:
                        runs.append((start, a + 1))
                        start = b
                parts += [take(a, b) for a, b in runs]
            gathered = parts[0] if len(parts) == 1 else concat(parts, name=f"in{j}_{group[-1]}")
            outs.append(conv2d(gathered, len(group), kernel, groups=len(group), name=f"conv{j}_{group[-1]}"))
            j = group[-1] + 1
        return outs[0] if len(outs) == 1 else concat(outs, name="concat")


@register("lenet5_1998", (1, 32, 32), "LeNet-5 of the 1998 paper: C3 table, RBF output, 60,000 params", family="lenet")
def lenet5_1998(input=(1, 32, 32), num_classes: int = 10):
    """LeNet-5 of "Gradient-Based Learning Applied to Document Recognition" (LeCun et al. 1998,
    Figure 2, section II.B), with the paper's layer names C1, S2, C3, S4, C5, F6, output.

    Faithful: 32×32 input; C1 6@28×28 (5×5); S2 with a trainable coefficient and bias per map
    (12 params); C3 16@10×10 wired by Table I (6 maps see 3 S2 maps, 9 see 4, 1 sees all 6:
    1,516 params, 151,600 connections); S4 (32 params); C5 120 5×5 convs (a full
    convolution, 1×1 output at 32×32); F6 84 units; output: 10 Euclidean RBF units whose
    84-element prototypes are fixed (buffers, not parameters). Trainable parameters:
    156 + 12 + 1,516 + 32 + 48,120 + 10,164 = 60,000, the paper's figure.

    Not faithful: the squashing function is A·tanh(S·a) with A = 1.7159, S = 2/3 (Appendix A);
    the graph uses plain tanh (the two constant multiplies per element are not counted).
    """
    from cnngraph.dsl import tanh

    net = Net("lenet5_1998")
    x = net.input(*input)
    x = tanh(conv2d(x, 6, 5, name="C1"), name="C1_squash")
    x = _subsample(x, "S2")
    x = tanh(_partial_conv(x, LENET_C3_TABLE, 5, "C3"), name="C3_squash")
    x = _subsample(x, "S4")
    x = tanh(conv2d(x, 120, 5, name="C5"), name="C5_squash")
    x = flatten(x, name="flatten")
    x = tanh(linear(x, 84, name="F6"), name="F6_squash")
    out = rbf(x, num_classes, name="output")
    return net.output(out).graph
