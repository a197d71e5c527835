"""The Inception family (seeds 000-004): GoogLeNet, Inception-v3, Inception-v4, Inception-ResNet-v2.

* ``googlenet``: torchvision's GoogLeNet (BN after every conv, ceil-mode pools, and
  torchvision's known 3×3 conv in the "5×5" branch); auxiliary classifiers with
  ``aux_logits=True`` (off by default: they only run in training).
* ``googlenet_paper``: Szegedy et al. 2014, "Going deeper with convolutions" (seed 004's
  Table 1): no BN, conv biases, a true 5×5 branch, LRN in the stem, 3×3/2 pools and a
  7×7 average pool; the paper's auxiliary heads (5×5/3 average pool) with ``aux_logits``.
* ``inception_v3``: torchvision's Inception-v3 (Szegedy et al. 2016, 299×299).
* ``inception_v4`` and ``inception_resnet_v2`` (Szegedy et al. 2017, "Inception-v4,
  Inception-ResNet and the Impact of Residual Connections on Learning"; not in torchvision):
  the TF-slim models that the published ImageNet weights belong to, with the module names of
  timm's ports (``timm.models.inception_v4`` / ``inception_resnet_v2``), so that a timm
  state_dict loads unchanged. Their counts, 42,679,816 and 55,843,464 parameters, are
  timm's and osmr/imgclsmob's published figures (the latter asserts both numbers in its
  model tests); tests/reference/timm/ holds the counts taken from timm's real modules.

Every conv of these models but GoogLeNet-paper is conv (no bias) → BN (eps 0.001) → ReLU,
written :func:`basic_conv` (torchvision's and timm's ``BasicConv2d``).

>>> from cnngraph import analyze
>>> r = analyze(build_googlenet())
>>> r.total.params, r.groups()["inception3a"].params
(6624904, 155872)
"""
from __future__ import annotations

from cnngraph.dsl import (Net, adaptive_avgpool2d, add, avgpool2d, batchnorm, block, concat, conv2d, dropout,
                          flatten, linear, lrn, maxpool2d, relu, scale, scope)

from cnngraph.zoo import register


# ---------------------------------------------------------------- shared pieces
def basic_conv(x, out_channels, kernel_size, stride=1, padding=0, name="conv", bn=True, eps=1e-3, inplace=True):
    """``BasicConv2d``: conv → BN → ReLU as one scope (``name.conv``, ``name.bn``).

    ``bn=False`` is the pre-BN conv of GoogLeNet's paper: conv with bias → ReLU.
    """
    with scope(name, "BasicConv2d" if bn else "conv"):
        x = conv2d(x, out_channels, kernel_size, stride=stride, padding=padding, bias=not bn, name="conv")
        if bn:
            x = batchnorm(x, eps=eps, name="bn")
        return relu(x, inplace=inplace, name="relu")


# ---------------------------------------------------------------- GoogLeNet (Inception v1)
# Table 1 of Szegedy et al. 2014 (seed 004): #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
GOOGLENET_TABLE1 = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


@block("Inception")
def inception_module(x, c1, c3r, c3, c5r, c5, pool_proj, k5=5, bn=True):
    """Four parallel branches concatenated: 1×1 | 1×1→3×3 | 1×1→k5×k5 | 3×3 max pool→1×1.

    ``k5`` is the "5×5" branch's kernel: 5 in the paper, 3 in torchvision's port.
    """
    b1 = basic_conv(x, c1, 1, name="branch1", bn=bn)
    with scope("branch2", "branch"):
        b2 = basic_conv(basic_conv(x, c3r, 1, name="0", bn=bn), c3, 3, padding=1, name="1", bn=bn)
    with scope("branch3", "branch"):
        b3 = basic_conv(basic_conv(x, c5r, 1, name="0", bn=bn), c5, k5, padding=k5 // 2, name="1", bn=bn)
    with scope("branch4", "branch"):
        b4 = maxpool2d(x, 3, 1, padding=1, ceil_mode=True, name="0")
        b4 = basic_conv(b4, pool_proj, 1, name="1", bn=bn)
    return concat(b1, b2, b3, b4, name="concat")


@block("InceptionAux")
def googlenet_aux(x, num_classes, paper=False, dropout_p=0.7):
    """Auxiliary classifier: pool to 4×4, 1×1 conv 128, FC 1024, dropout, FC.

    The paper pools 5×5/3 (14×14 → 4×4 at 224); torchvision pools adaptively to 4×4.
    """
    x = avgpool2d(x, 5, 3, name="pool") if paper else adaptive_avgpool2d(x, 4, name="pool")
    x = basic_conv(x, 128, 1, name="conv", bn=not paper)
    x = flatten(x, name="flatten")
    x = relu(linear(x, 1024, name="fc1"), name="relu")
    x = dropout(x, dropout_p, name="dropout")
    return linear(x, num_classes, name="fc2")


def build_googlenet(input=(3, 224, 224), num_classes: int = 1000, aux_logits: bool = False,
                    variant: str = "torchvision", dropout_p: float | None = None, dropout_aux: float = 0.7):
    """GoogLeNet; ``variant="torchvision"`` or ``"paper"`` (see the module docstring).

    Outputs are ``fc`` (then ``aux2.fc2``, ``aux1.fc2`` with ``aux_logits``), torchvision's order.
    """
    if variant not in ("torchvision", "paper"):
        raise ValueError(f"variant must be 'torchvision' or 'paper', got {variant!r}")
    paper = variant == "paper"
    bn = not paper
    k5 = 5 if paper else 3  # torchvision's port uses 3×3 here (pytorch/vision issue #906)
    net = Net("googlenet_paper" if paper else "googlenet", variant=variant)
    x = net.input(*input)
    # Stem: 7×7/2 conv, 3×3/2 pool, 1×1 reduce, 3×3 conv, 3×3/2 pool (224 → 28).
    x = basic_conv(x, 64, 7, stride=2, padding=3, name="conv1", bn=bn)
    x = maxpool2d(x, 3, 2, ceil_mode=True, name="maxpool1")
    if paper:  # LocalRespNorm after the first pool and before the second (paper, Figure 3);
        # the paper gives no LRN constants: size 5, α=1e-4, β=0.75 are Caffe's bvlc_googlenet.
        x = lrn(x, 5, alpha=1e-4, beta=0.75, name="lrn1")
    x = basic_conv(x, 64, 1, name="conv2", bn=bn)
    x = basic_conv(x, 192, 3, padding=1, name="conv3", bn=bn)
    if paper:
        x = lrn(x, 5, alpha=1e-4, beta=0.75, name="lrn2")
    x = maxpool2d(x, 3, 2, ceil_mode=True, name="maxpool2")

    aux = []
    for stage, modules in ((3, "ab"), (4, "abcde"), (5, "ab")):
        for m in modules:
            key = f"{stage}{m}"
            x = inception_module(x, *GOOGLENET_TABLE1[key], k5=k5, bn=bn, name=f"inception{key}")
            if aux_logits and key in ("4a", "4d"):
                aux.append(googlenet_aux(x, num_classes, paper, dropout_aux, name=f"aux{len(aux) + 1}"))
        if stage == 3:
            x = maxpool2d(x, 3, 2, ceil_mode=True, name="maxpool3")
        elif stage == 4:  # torchvision: 2×2/2; the paper: 3×3/2 (both 14 → 7)
            x = maxpool2d(x, 3 if paper else 2, 2, ceil_mode=True, name="maxpool4")

    if paper:
        x = avgpool2d(x, 7, 1, name="avgpool")
    else:
        x = adaptive_avgpool2d(x, 1, name="avgpool")
    x = flatten(x, name="flatten")
    x = dropout(x, (0.4 if paper else 0.2) if dropout_p is None else dropout_p, name="dropout")
    logits = linear(x, num_classes, name="fc")
    return net.output(logits, *reversed(aux)).graph


register("googlenet", (3, 224, 224), "GoogLeNet, torchvision's (BN; -O aux_logits=True)",
         family="inception")(build_googlenet)
register("googlenet_paper", (3, 224, 224), "GoogLeNet of the paper (Table 1: no BN, 5×5, LRN)",
         family="inception", variant="paper")(build_googlenet)


# ---------------------------------------------------------------- Inception-v3 (torchvision)
def _pool_branch(x, pool_features, name="branch_pool"):
    """3×3/1 average pool (padding counted, as F.avg_pool2d) → 1×1 conv."""
    x = avgpool2d(x, 3, 1, padding=1, name="pool")
    return basic_conv(x, pool_features, 1, name=name)


@block("InceptionA")
def inception_a(x, pool_features):
    """35×35 module: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg pool→1×1 (Figure 5 of Szegedy et al. 2016;
    the released model, and so torchvision, keeps a 5×5 branch beside the two 3×3)."""
    b1 = basic_conv(x, 64, 1, name="branch1x1")
    b5 = basic_conv(basic_conv(x, 48, 1, name="branch5x5_1"), 64, 5, padding=2, name="branch5x5_2")
    b3 = basic_conv(x, 64, 1, name="branch3x3dbl_1")
    b3 = basic_conv(b3, 96, 3, padding=1, name="branch3x3dbl_2")
    b3 = basic_conv(b3, 96, 3, padding=1, name="branch3x3dbl_3")
    return concat(b1, b5, b3, _pool_branch(x, pool_features), name="concat")


@block("InceptionB")
def inception_b(x):
    """35 → 17 grid reduction: 3×3/2 | 1×1→3×3→3×3/2 | 3×3/2 max pool."""
    b3 = basic_conv(x, 384, 3, stride=2, name="branch3x3")
    bd = basic_conv(x, 64, 1, name="branch3x3dbl_1")
    bd = basic_conv(bd, 96, 3, padding=1, name="branch3x3dbl_2")
    bd = basic_conv(bd, 96, 3, stride=2, name="branch3x3dbl_3")
    return concat(b3, bd, maxpool2d(x, 3, 2, name="pool"), name="concat")


@block("InceptionC")
def inception_c(x, c7):
    """17×17 module with factorized 7×7 convs (1×7 and 7×1), ``c7`` channels inside."""
    b1 = basic_conv(x, 192, 1, name="branch1x1")
    b7 = basic_conv(x, c7, 1, name="branch7x7_1")
    b7 = basic_conv(b7, c7, (1, 7), padding=(0, 3), name="branch7x7_2")
    b7 = basic_conv(b7, 192, (7, 1), padding=(3, 0), name="branch7x7_3")
    bd = basic_conv(x, c7, 1, name="branch7x7dbl_1")
    bd = basic_conv(bd, c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")
    bd = basic_conv(bd, c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")
    bd = basic_conv(bd, c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")
    bd = basic_conv(bd, 192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")
    return concat(b1, b7, bd, _pool_branch(x, 192), name="concat")


@block("InceptionD")
def inception_d(x):
    """17 → 8 grid reduction: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | 3×3/2 max pool."""
    b3 = basic_conv(basic_conv(x, 192, 1, name="branch3x3_1"), 320, 3, stride=2, name="branch3x3_2")
    b7 = basic_conv(x, 192, 1, name="branch7x7x3_1")
    b7 = basic_conv(b7, 192, (1, 7), padding=(0, 3), name="branch7x7x3_2")
    b7 = basic_conv(b7, 192, (7, 1), padding=(3, 0), name="branch7x7x3_3")
    b7 = basic_conv(b7, 192, 3, stride=2, name="branch7x7x3_4")
    return concat(b3, b7, maxpool2d(x, 3, 2, name="pool"), name="concat")


@block("InceptionE")
def inception_e(x):
    """8×8 module with expanded filter banks: 3×3 splits into parallel 1×3 and 3×1."""
    b1 = basic_conv(x, 320, 1, name="branch1x1")
    b3 = basic_conv(x, 384, 1, name="branch3x3_1")
    b3 = concat(basic_conv(b3, 384, (1, 3), padding=(0, 1), name="branch3x3_2a"),
                basic_conv(b3, 384, (3, 1), padding=(1, 0), name="branch3x3_2b"), name="branch3x3_concat")
    bd = basic_conv(x, 448, 1, name="branch3x3dbl_1")
    bd = basic_conv(bd, 384, 3, padding=1, name="branch3x3dbl_2")
    bd = concat(basic_conv(bd, 384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a"),
                basic_conv(bd, 384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b"), name="branch3x3dbl_concat")
    return concat(b1, b3, bd, _pool_branch(x, 192), name="concat")


@block("InceptionAux")
def inception_v3_aux(x, num_classes):
    """Auxiliary head on the 17×17 grid: 5×5/3 avg pool, 1×1 conv 128, 5×5 conv 768, FC."""
    x = avgpool2d(x, 5, 3, name="pool")
    x = basic_conv(x, 128, 1, name="conv0")
    x = basic_conv(x, 768, 5, name="conv1")
    x = flatten(adaptive_avgpool2d(x, 1, name="avgpool"), name="flatten")
    return linear(x, num_classes, name="fc")


@register("inception_v3", (3, 299, 299), "Inception-v3, torchvision's (-O aux_logits=True)", family="inception")
def build_inception_v3(input=(3, 299, 299), num_classes: int = 1000, aux_logits: bool = False,
                       dropout_p: float = 0.5):
    """torchvision's Inception3; outputs ``fc`` (and ``AuxLogits.fc`` with ``aux_logits``)."""
    net = Net("inception_v3")
    x = net.input(*input)
    x = basic_conv(x, 32, 3, stride=2, name="Conv2d_1a_3x3")
    x = basic_conv(x, 32, 3, name="Conv2d_2a_3x3")
    x = basic_conv(x, 64, 3, padding=1, name="Conv2d_2b_3x3")
    x = maxpool2d(x, 3, 2, name="maxpool1")
    x = basic_conv(x, 80, 1, name="Conv2d_3b_1x1")
    x = basic_conv(x, 192, 3, name="Conv2d_4a_3x3")
    x = maxpool2d(x, 3, 2, name="maxpool2")
    for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        x = inception_a(x, pool_features, name=name)
    x = inception_b(x, name="Mixed_6a")
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = inception_c(x, c7, name=name)
    aux = [inception_v3_aux(x, num_classes, name="AuxLogits")] if aux_logits else []
    x = inception_d(x, name="Mixed_7a")
    x = inception_e(x, name="Mixed_7b")
    x = inception_e(x, name="Mixed_7c")
    x = adaptive_avgpool2d(x, 1, name="avgpool")
    x = dropout(x, dropout_p, name="dropout")
    x = flatten(x, name="flatten")
    return net.output(linear(x, num_classes, name="fc"), *aux).graph


# ---------------------------------------------------------------- Inception-v4 (timm names)
def _v4_avg_branch(x, c, name):
    """3×3/1 average pool (padding not counted) → 1×1 conv, timm's ``Sequential(pool, conv)``."""
    with scope(name, "branch"):
        x = avgpool2d(x, 3, 1, padding=1, count_include_pad=False, name="0")
        return basic_conv(x, c, 1, name="1")


@block("Mixed3a")
def v4_mixed_3a(x):
    """Stem: 3×3/2 max pool | 3×3/2 conv 96 (147 → 73, 64 + 96 = 160 channels)."""
    return concat(maxpool2d(x, 3, 2, name="maxpool"), basic_conv(x, 96, 3, stride=2, name="conv"), name="concat")


@block("Mixed4a")
def v4_mixed_4a(x):
    """Stem: 1×1→3×3 | 1×1→1×7→7×1→3×3 (73 → 71, 192 channels)."""
    with scope("branch0", "branch"):
        b0 = basic_conv(basic_conv(x, 64, 1, name="0"), 96, 3, name="1")
    with scope("branch1", "branch"):
        b1 = basic_conv(x, 64, 1, name="0")
        b1 = basic_conv(b1, 64, (1, 7), padding=(0, 3), name="1")
        b1 = basic_conv(b1, 64, (7, 1), padding=(3, 0), name="2")
        b1 = basic_conv(b1, 96, 3, name="3")
    return concat(b0, b1, name="concat")


@block("Mixed5a")
def v4_mixed_5a(x):
    """Stem: 3×3/2 conv 192 | 3×3/2 max pool (71 → 35, 384 channels)."""
    return concat(basic_conv(x, 192, 3, stride=2, name="conv"), maxpool2d(x, 3, 2, name="maxpool"), name="concat")


@block("InceptionA")
def v4_inception_a(x):
    """35×35 module (paper Figure 4): 384 channels in and out."""
    b0 = basic_conv(x, 96, 1, name="branch0")
    with scope("branch1", "branch"):
        b1 = basic_conv(basic_conv(x, 64, 1, name="0"), 96, 3, padding=1, name="1")
    with scope("branch2", "branch"):
        b2 = basic_conv(x, 64, 1, name="0")
        b2 = basic_conv(b2, 96, 3, padding=1, name="1")
        b2 = basic_conv(b2, 96, 3, padding=1, name="2")
    return concat(b0, b1, b2, _v4_avg_branch(x, 96, "branch3"), name="concat")


@block("ReductionA")
def v4_reduction_a(x, k=192, l=224, m=256, n=384):
    """35 → 17 reduction (paper Figure 7; k, l, m, n = 192, 224, 256, 384 for Inception-v4)."""
    b0 = basic_conv(x, n, 3, stride=2, name="branch0")
    with scope("branch1", "branch"):
        b1 = basic_conv(x, k, 1, name="0")
        b1 = basic_conv(b1, l, 3, padding=1, name="1")
        b1 = basic_conv(b1, m, 3, stride=2, name="2")
    return concat(b0, b1, maxpool2d(x, 3, 2, name="branch2"), name="concat")


@block("InceptionB")
def v4_inception_b(x):
    """17×17 module (paper Figure 5): 1024 channels in and out."""
    b0 = basic_conv(x, 384, 1, name="branch0")
    with scope("branch1", "branch"):
        b1 = basic_conv(x, 192, 1, name="0")
        b1 = basic_conv(b1, 224, (1, 7), padding=(0, 3), name="1")
        b1 = basic_conv(b1, 256, (7, 1), padding=(3, 0), name="2")
    with scope("branch2", "branch"):
        b2 = basic_conv(x, 192, 1, name="0")
        b2 = basic_conv(b2, 192, (7, 1), padding=(3, 0), name="1")
        b2 = basic_conv(b2, 224, (1, 7), padding=(0, 3), name="2")
        b2 = basic_conv(b2, 224, (7, 1), padding=(3, 0), name="3")
        b2 = basic_conv(b2, 256, (1, 7), padding=(0, 3), name="4")
    return concat(b0, b1, b2, _v4_avg_branch(x, 128, "branch3"), name="concat")


@block("ReductionB")
def v4_reduction_b(x):
    """17 → 8 reduction (paper Figure 8): 1024 → 1536 channels."""
    with scope("branch0", "branch"):
        b0 = basic_conv(basic_conv(x, 192, 1, name="0"), 192, 3, stride=2, name="1")
    with scope("branch1", "branch"):
        b1 = basic_conv(x, 256, 1, name="0")
        b1 = basic_conv(b1, 256, (1, 7), padding=(0, 3), name="1")
        b1 = basic_conv(b1, 320, (7, 1), padding=(3, 0), name="2")
        b1 = basic_conv(b1, 320, 3, stride=2, name="3")
    return concat(b0, b1, maxpool2d(x, 3, 2, name="branch2"), name="concat")


@block("InceptionC")
def v4_inception_c(x):
    """8×8 module (paper Figure 6): 1536 channels in and out."""
    b0 = basic_conv(x, 256, 1, name="branch0")
    b1 = basic_conv(x, 384, 1, name="branch1_0")
    b1 = concat(basic_conv(b1, 256, (1, 3), padding=(0, 1), name="branch1_1a"),
                basic_conv(b1, 256, (3, 1), padding=(1, 0), name="branch1_1b"), name="branch1_concat")
    b2 = basic_conv(x, 384, 1, name="branch2_0")
    b2 = basic_conv(b2, 448, (3, 1), padding=(1, 0), name="branch2_1")
    b2 = basic_conv(b2, 512, (1, 3), padding=(0, 1), name="branch2_2")
    b2 = concat(basic_conv(b2, 256, (1, 3), padding=(0, 1), name="branch2_3a"),
                basic_conv(b2, 256, (3, 1), padding=(1, 0), name="branch2_3b"), name="branch2_concat")
    return concat(b0, b1, b2, _v4_avg_branch(x, 256, "branch3"), name="concat")


@register("inception_v4", (3, 299, 299), "Inception-v4 (Szegedy et al. 2017), timm's names", family="inception")
def build_inception_v4(input=(3, 299, 299), num_classes: int = 1000, dropout_p: float = 0.0):
    """Inception-v4: stem (Figure 3), 4 × A, reduction A, 7 × B, reduction B, 3 × C, as
    ``features.0`` ... ``features.21``; ``last_linear`` classifies the pooled 1536 features."""
    net = Net("inception_v4")
    x = net.input(*input)
    stages = [lambda x, name: basic_conv(x, 32, 3, stride=2, name=name),
              lambda x, name: basic_conv(x, 32, 3, name=name),
              lambda x, name: basic_conv(x, 64, 3, padding=1, name=name),
              v4_mixed_3a, v4_mixed_4a, v4_mixed_5a]
    stages += [v4_inception_a] * 4 + [v4_reduction_a] + [v4_inception_b] * 7 + [v4_reduction_b] + [v4_inception_c] * 3
    with scope("features", "stage"):
        for i, stage in enumerate(stages):
            x = stage(x, name=str(i))
    x = flatten(adaptive_avgpool2d(x, 1, name="global_pool"), name="flatten")
    if dropout_p:
        x = dropout(x, dropout_p, name="head_drop")
    return net.output(linear(x, num_classes, name="last_linear")).graph


# ---------------------------------------------------------------- Inception-ResNet-v2 (timm names)
def _irv2_conv(x, c, k, stride=1, padding=0, name="conv"):
    # timm's Inception-ResNet-v2 BasicConv2d uses ReLU(inplace=False): its output is a new tensor.
    return basic_conv(x, c, k, stride, padding, name=name, inplace=False)


def _residual(x, branches, scale_factor, relu_after=True):
    """Concat the branches, 1×1 conv (with bias) back to x's width, scale, add x, ReLU."""
    y = conv2d(concat(branches, name="concat"), x.C, 1, name="conv2d")
    if scale_factor != 1.0:
        y = scale(y, scale_factor, name="scale")
    y = add(y, x, name="add")
    return relu(y, inplace=False, name="relu") if relu_after else y


@block("Mixed_5b")
def irv2_mixed_5b(x):
    """35×35 entry module: 192 → 320 channels (TF-slim's Mixed_5b)."""
    b0 = _irv2_conv(x, 96, 1, name="branch0")
    with scope("branch1", "branch"):
        b1 = _irv2_conv(_irv2_conv(x, 48, 1, name="0"), 64, 5, padding=2, name="1")
    with scope("branch2", "branch"):
        b2 = _irv2_conv(x, 64, 1, name="0")
        b2 = _irv2_conv(b2, 96, 3, padding=1, name="1")
        b2 = _irv2_conv(b2, 96, 3, padding=1, name="2")
    with scope("branch3", "branch"):
        b3 = avgpool2d(x, 3, 1, padding=1, count_include_pad=False, name="0")
        b3 = _irv2_conv(b3, 64, 1, name="1")
    return concat(b0, b1, b2, b3, name="concat")


@block("Block35")
def irv2_block35(x, scale_factor=0.17):
    """Inception-ResNet-A (paper Figure 16), 35×35×320."""
    b0 = _irv2_conv(x, 32, 1, name="branch0")
    with scope("branch1", "branch"):
        b1 = _irv2_conv(_irv2_conv(x, 32, 1, name="0"), 32, 3, padding=1, name="1")
    with scope("branch2", "branch"):
        b2 = _irv2_conv(x, 32, 1, name="0")
        b2 = _irv2_conv(b2, 48, 3, padding=1, name="1")
        b2 = _irv2_conv(b2, 64, 3, padding=1, name="2")
    return _residual(x, [b0, b1, b2], scale_factor)


@block("Mixed_6a")
def irv2_mixed_6a(x):
    """Reduction-A (paper Figure 7 with k, l, m, n = 256, 256, 384, 384): 35 → 17, 320 → 1088."""
    b0 = _irv2_conv(x, 384, 3, stride=2, name="branch0")
    with scope("branch1", "branch"):
        b1 = _irv2_conv(x, 256, 1, name="0")
        b1 = _irv2_conv(b1, 256, 3, padding=1, name="1")
        b1 = _irv2_conv(b1, 384, 3, stride=2, name="2")
    return concat(b0, b1, maxpool2d(x, 3, 2, name="branch2"), name="concat")


@block("Block17")
def irv2_block17(x, scale_factor=0.10):
    """Inception-ResNet-B (paper Figure 17), 17×17×1088."""
    b0 = _irv2_conv(x, 192, 1, name="branch0")
    with scope("branch1", "branch"):
        b1 = _irv2_conv(x, 128, 1, name="0")
        b1 = _irv2_conv(b1, 160, (1, 7), padding=(0, 3), name="1")
        b1 = _irv2_conv(b1, 192, (7, 1), padding=(3, 0), name="2")
    return _residual(x, [b0, b1], scale_factor)


@block("Mixed_7a")
def irv2_mixed_7a(x):
    """Reduction-B (paper Figure 18): 17 → 8, 1088 → 2080 channels."""
    with scope("branch0", "branch"):
        b0 = _irv2_conv(_irv2_conv(x, 256, 1, name="0"), 384, 3, stride=2, name="1")
    with scope("branch1", "branch"):
        b1 = _irv2_conv(_irv2_conv(x, 256, 1, name="0"), 288, 3, stride=2, name="1")
    with scope("branch2", "branch"):
        b2 = _irv2_conv(x, 256, 1, name="0")
        b2 = _irv2_conv(b2, 288, 3, padding=1, name="1")
        b2 = _irv2_conv(b2, 320, 3, stride=2, name="2")
    return concat(b0, b1, b2, maxpool2d(x, 3, 2, name="branch3"), name="concat")


@block("Block8")
def irv2_block8(x, scale_factor=0.20, relu_after=True):
    """Inception-ResNet-C (paper Figure 19), 8×8×2080."""
    b0 = _irv2_conv(x, 192, 1, name="branch0")
    with scope("branch1", "branch"):
        b1 = _irv2_conv(x, 192, 1, name="0")
        b1 = _irv2_conv(b1, 224, (1, 3), padding=(0, 1), name="1")
        b1 = _irv2_conv(b1, 256, (3, 1), padding=(1, 0), name="2")
    return _residual(x, [b0, b1], scale_factor, relu_after)


@register("inception_resnet_v2", (3, 299, 299), "Inception-ResNet-v2 (Szegedy et al. 2017), timm's names",
          family="inception")
def build_inception_resnet_v2(input=(3, 299, 299), num_classes: int = 1000, dropout_p: float = 0.0):
    """Inception-ResNet-v2 as released with its ImageNet weights (TF-slim), not as drawn.

    The paper's figures differ from the released model: the paper gives Inception-ResNet-v2
    the Inception-v4 stem (Figure 3) and 1154 channels on the 17×17 grid (Figure 17), while
    the released model (and every published 55.8 M count) uses an Inception-v3-style stem with
    Mixed_5b and 320 / 1088 / 2080 channels on the 35 / 17 / 8 grids. Residuals are scaled by
    0.17 / 0.10 / 0.20 before the addition (paper section 3.3).
    """
    net = Net("inception_resnet_v2")
    x = net.input(*input)
    x = _irv2_conv(x, 32, 3, stride=2, name="conv2d_1a")
    x = _irv2_conv(x, 32, 3, name="conv2d_2a")
    x = _irv2_conv(x, 64, 3, padding=1, name="conv2d_2b")
    x = maxpool2d(x, 3, 2, name="maxpool_3a")
    x = _irv2_conv(x, 80, 1, name="conv2d_3b")
    x = _irv2_conv(x, 192, 3, name="conv2d_4a")
    x = maxpool2d(x, 3, 2, name="maxpool_5a")
    x = irv2_mixed_5b(x, name="mixed_5b")
    with scope("repeat", "stage"):
        for i in range(10):
            x = irv2_block35(x, 0.17, name=str(i))
    x = irv2_mixed_6a(x, name="mixed_6a")
    with scope("repeat_1", "stage"):
        for i in range(20):
            x = irv2_block17(x, 0.10, name=str(i))
    x = irv2_mixed_7a(x, name="mixed_7a")
    with scope("repeat_2", "stage"):
        for i in range(9):
            x = irv2_block8(x, 0.20, name=str(i))
    x = irv2_block8(x, 1.0, relu_after=False, name="block8")
    x = _irv2_conv(x, 1536, 1, name="conv2d_7b")
    x = flatten(adaptive_avgpool2d(x, 1, name="global_pool"), name="flatten")
    if dropout_p:
        x = dropout(x, dropout_p, name="head_drop")
    return net.output(linear(x, num_classes, name="classif")).graph
