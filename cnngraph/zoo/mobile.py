"""Efficient networks for mobile devices (seed 000, "MobileNets: Tiny Networks"; seed 002).

* ``mobilenet_v1`` (Howard et al. 2017; not in torchvision): a 3×3 stem and 13
  depthwise-separable blocks. Width multiplier ``alpha`` (a number, or a sympy symbol for
  closed forms in α) and ``resolution``; ``mobilenet_v1_075`` ... ``_025`` fix α.
* ``mobilenet_v2`` (Sandler et al. 2018), ``mobilenet_v3_large`` / ``_small`` (Howard et al.
  2019): inverted residuals, torchvision's module names.
* ``shufflenet_v2_x0_5`` ... ``_x2_0`` (Ma et al. 2018): channel split, branches, concat and
  channel shuffle, torchvision's module names.

The blocks are plain functions over DSL tensors, reusable on symbolic sizes:

>>> from cnngraph import analyze
>>> from cnngraph.dsl import Net
>>> from cnngraph.ir.symbols import C, H, W
>>> net = Net("dws")
>>> y = depthwise_separable(net.input(C, H, W), C, name="block")
>>> analyze(net.graph).total.macs  # the seeds' (9C + C²)HW
C**2*H*W + 9*C*H*W
"""
from __future__ import annotations

import functools
import math

from cnngraph.ir.lazy import is_sym, sympy  # imported only for a symbolic width

from cnngraph.dsl import (Net, adaptive_avgpool2d, add, batchnorm, block, channel_shuffle, chunk, concat, conv2d,
                          dropout, flatten, hardsigmoid, hardswish, linear, maxpool2d, mul, relu, relu6, scope,
                          sigmoid)
from cnngraph.ir.errors import CnnGraphError, ShapeError
from cnngraph.dsl.knobs import Scaled, at_least

from cnngraph.zoo import register

# ---------------------------------------------------------------- shared helpers


def make_divisible(v, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never more than 10 % down.

    The rule of the TensorFlow MobileNet code that torchvision's MobileNet v2/v3 and
    EfficientNet use for every width-multiplied channel count.

    >>> make_divisible(32 * 0.35), make_divisible(1280 * 1.4), make_divisible(88 * 1.1)
    (16, 1792, 96)
    """
    if isinstance(v, Scaled):  # a symbolic width multiplier: a fresh symbol per base count
        return v.mult.channels(v.base, divisor, min_value)
    if is_sym(v) and not v.is_Number:
        if (v / divisor).is_integer:  # already a multiple (6 × a multiplied count)
            return v
        raise CnnGraphError(f"make_divisible: cannot round the symbolic channel count {v}")
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@block("Conv2dNormActivation")
def conv_bn_act(x, out_channels, kernel_size=3, stride=1, groups=1, act=relu, eps=1e-5):
    """torchvision's ``Conv2dNormActivation``: conv ``0`` (no bias, "same" padding (k−1)/2),
    batch norm ``1``, activation ``2`` (in place; ``act=None`` for a linear projection)."""
    x = conv2d(x, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2, groups=groups, bias=False,
               name="0")
    x = batchnorm(x, eps=eps, name="1")
    return act(x, name="2") if act is not None else x


@block("SqueezeExcitation")
def squeeze_excitation(x, squeeze_channels, act=functools.partial(relu, inplace=False), gate=sigmoid):
    """Squeeze-and-excitation (Hu et al. 2018), torchvision's ``SqueezeExcitation``: global
    average pool, 1×1 conv ``fc1`` (with bias) to ``squeeze_channels``, ``act``, 1×1 conv ``fc2``
    back to C, ``gate``, then the input scaled channel by channel."""
    s = adaptive_avgpool2d(x, 1, name="avgpool")
    s = act(conv2d(s, squeeze_channels, 1, name="fc1"), name="activation")
    s = gate(conv2d(s, x.C, 1, name="fc2"), name="scale_activation")
    return mul(x, s, name="scale")


# ---------------------------------------------------------------- MobileNet v1
@block("DepthwiseSeparable")
def depthwise_separable(x, out_channels, stride=1, act=relu):
    """The seeds' depthwise-separable block: 3×3 depthwise conv (groups = C) + BN + ``act``
    (``dw``), then 1×1 pointwise conv C → ``out_channels`` + BN + ``act`` (``pw``).

    Multiply-adds (9C + C·C_out)·H'W': (9C + C²)HW for C → C at stride 1, against 9C²HW
    for a full 3×3 conv, a speed-up of 9C/(9 + C). Works on symbolic C, H, W.
    """
    x = conv_bn_act(x, x.C, 3, stride, groups=x.C, act=act, name="dw")
    return conv_bn_act(x, out_channels, 1, act=act, name="pw")


# Howard et al. 2017, Table 1: (output channels, stride) of the 13 depthwise-separable blocks
# after the 32-channel, stride-2 stem. The paper's table prints "s2" for the last depthwise
# conv but lists a 7×7 input and output for it: the stride is 1, as in every implementation.
MOBILENET_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
                      [(1024, 2), (1024, 1)]


def _width(c: int, alpha):
    """α·c: exact for a sympy α (closed forms), else TF-slim's max(int(c·α), 8)."""
    if is_sym(alpha):
        v = sympy.sympify(c) * alpha
        return int(v) if v.is_Integer else v
    return max(int(c * alpha), 8)


def mobilenet_v1(input=(3, 224, 224), alpha=1.0, resolution=None, num_classes: int = 1000, full_conv: bool = False,
                 shallow: bool = False, title=None):
    """MobileNet v1: stem ``features.0``, blocks ``features.1`` ... ``features.13``
    (each ``dw`` + ``pw``), global average pool, ``fc``. No softmax (logits, like torchvision).

    ``alpha`` is the width multiplier α (number or sympy expression: ``alpha=sym("alpha")``
    gives totals as polynomials in α); ``resolution`` r replaces the input size by r×r
    (the paper's resolution multiplier ρ = r/224). The paper's ablations: ``full_conv=True``
    replaces each block by a full 3×3 conv + BN + ReLU ("Conv MobileNet", Table 4);
    ``shallow=True`` drops the five 14×14×512 blocks ("Shallow MobileNet", Table 5).
    """
    if resolution is not None:
        input = (input[0], resolution, resolution)
    if isinstance(alpha, str):  # from the command line: a symbol name ("alpha") or a fraction ("3/4")
        try:
            alpha = sympy.Symbol(alpha, positive=True) if alpha.isidentifier() else sympy.Rational(alpha)
        except (TypeError, ValueError):
            raise ShapeError("mobilenet_v1", "width multiplier alpha must be a number or a symbol name",
                             f"alpha={alpha!r}") from None
    if not (is_sym(alpha) and alpha.is_Symbol) and not alpha > 0:
        raise ShapeError("mobilenet_v1", "width multiplier alpha must be positive", f"alpha={alpha}")
    blocks = MOBILENET_V1_BLOCKS[:6] + MOBILENET_V1_BLOCKS[11:] if shallow else MOBILENET_V1_BLOCKS
    net = Net(title or "mobilenet_v1", alpha=str(alpha))
    x = net.input(*input)
    with scope("features", "stage"):
        x = conv_bn_act(x, _width(32, alpha), 3, 2, name="0")
        for i, (c, s) in enumerate(blocks, 1):
            if full_conv:
                x = conv_bn_act(x, _width(c, alpha), 3, s, name=str(i))
            else:
                x = depthwise_separable(x, _width(c, alpha), s, name=str(i))
    x = adaptive_avgpool2d(x, 1, name="avgpool")
    x = flatten(x, name="flatten")
    linear(x, num_classes, name="fc")
    return net.graph


register("mobilenet_v1", (3, 224, 224), "MobileNet v1 1.0-224 (Howard et al. 2017): 13 depthwise-separable blocks",
         family="mobilenet")(mobilenet_v1)
for _a, _tag in ((0.75, "075"), (0.5, "050"), (0.25, "025")):
    register(f"mobilenet_v1_{_tag}", (3, 224, 224), f"MobileNet v1 with width multiplier α = {_a}",
             family="mobilenet", alpha=_a, title=f"mobilenet_v1_{_tag}")(mobilenet_v1)


# ---------------------------------------------------------------- MobileNet v2
def _count(v):
    """A channel count: rounded for numbers, kept for integer-valued symbolic counts."""
    if is_sym(v) and not v.is_Number:
        if v.is_integer:
            return v
        raise CnnGraphError(f"channel count {v} is not an integer")
    return int(round(v))


@block("InvertedResidual")
def inverted_residual(x, out_channels, stride, expand_ratio, kernel=3):
    """MobileNet v2's block (torchvision names ``conv.N``): 1×1 expansion to t·C + BN + ReLU6
    (left out when t = 1), 3×3 depthwise + BN + ReLU6, linear 1×1 projection + BN; the input
    is added back when the stride is 1 and the channel count is kept."""
    hidden = _count(x.C * expand_ratio)
    with scope("conv", "layers"):
        y, i = x, 0
        if expand_ratio != 1:
            y, i = conv_bn_act(y, hidden, 1, act=relu6, name="0"), 1
        y = conv_bn_act(y, hidden, kernel, stride, groups=hidden, act=relu6, name=str(i))
        y = conv2d(y, out_channels, 1, bias=False, name=str(i + 1))
        y = batchnorm(y, name=str(i + 2))
    if stride == 1 and x.C == out_channels:
        y = add(x, y, name="add")
    return y


# Sandler et al. 2018, Table 2: expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                        (6, 320, 1, 1)]


@register("mobilenet_v2", (3, 224, 224), "MobileNet v2 (torchvision's mobilenet_v2): inverted residuals",
          family="mobilenet")
def mobilenet_v2(input=(3, 224, 224), width_mult: float = 1.0, num_classes: int = 1000, dropout_p: float = 0.2,
                 expand_ratio=None, kernel: int = 3, depth_mult: float = 1.0):
    """torchvision's MobileNetV2: ``features.0`` stem, ``features.1..17`` inverted residuals,
    ``features.18`` 1×1 conv to 1280, global average pool, ``classifier`` (dropout, linear).

    Design-space knobs (defaults give torchvision's model): ``width_mult`` (a number or a
    symbolic :class:`~cnngraph.dsl.knobs.Multiplier`), ``expand_ratio`` (replaces the
    t = 6 of every expanding block), ``kernel`` (the depthwise kernel), ``depth_mult``
    (each stage repeats ⌈n·d⌉ times)."""
    net = Net("mobilenet_v2", width_mult=width_mult)
    x = net.input(*input)
    with scope("features", "stage"):
        x = conv_bn_act(x, make_divisible(32 * width_mult), 3, 2, act=relu6, name="0")
        i = 1
        for t, c, n, s in MOBILENET_V2_SETTING:
            t = t if expand_ratio is None or t == 1 else expand_ratio
            for b in range(math.ceil(n * depth_mult)):
                x = inverted_residual(x, make_divisible(c * width_mult), s if b == 0 else 1, t, kernel, name=str(i))
                i += 1
        x = conv_bn_act(x, make_divisible(1280 * at_least(width_mult, 1.0)), 1, act=relu6, name=str(i))
    x = adaptive_avgpool2d(x, 1, name="avgpool")
    x = flatten(x, name="flatten")
    with scope("classifier", "stage"):
        x = dropout(x, dropout_p, name="0")
        linear(x, num_classes, name="1")
    return net.graph


# ---------------------------------------------------------------- MobileNet v3
@block("InvertedResidual")
def inverted_residual_v3(x, kernel, expanded, out_channels, use_se, act, stride, eps=0.001):
    """MobileNet v3's block (torchvision names ``block.N``): 1×1 expansion + BN + act (left out
    when it would keep the width), k×k depthwise + BN + act, squeeze-and-excitation to
    ⌊expanded/4⌋ rounded to 8 (ReLU, hard sigmoid), 1×1 projection + BN, residual add."""
    with scope("block", "layers"):
        y, i = x, 0
        if expanded != x.C:
            y, i = conv_bn_act(y, expanded, 1, act=act, eps=eps, name="0"), 1
        y = conv_bn_act(y, expanded, kernel, stride, groups=expanded, act=act, eps=eps, name=str(i))
        i += 1
        if use_se:
            y = squeeze_excitation(y, make_divisible(expanded // 4), gate=functools.partial(hardsigmoid, inplace=False),
                                   name=str(i))
            i += 1
        y = conv_bn_act(y, out_channels, 1, act=None, eps=eps, name=str(i))
    if stride == 1 and x.C == out_channels:
        y = add(y, x, name="add")
    return y


# Howard et al. 2019, Tables 1 and 2: kernel, expanded width, output channels, SE, activation
# (RE = ReLU, HS = hard swish), stride. The stem has 16 channels.
MOBILENET_V3_SETTING = {
    "large": [(3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
              (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
              (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
              (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
              (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1)],
    "small": [(3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
              (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
              (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
              (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1)],
}
MOBILENET_V3_LAST = {"large": 1280, "small": 1024}  # width of the classifier's hidden layer


def mobilenet_v3(input=(3, 224, 224), arch: str = "large", width_mult: float = 1.0, num_classes: int = 1000,
                 dropout_p: float = 0.2):
    """torchvision's MobileNetV3: hard-swish stem ``features.0``, the bottlenecks, a 1×1 conv
    to 6× the last width, global average pool, ``classifier`` (linear, hard swish, dropout,
    linear). Batch norm eps is 0.001 as in torchvision."""
    if arch not in MOBILENET_V3_SETTING:
        raise CnnGraphError(f"mobilenet_v3: arch must be 'large' or 'small', got {arch!r}")
    acts = {"RE": relu, "HS": hardswish}
    net = Net(f"mobilenet_v3_{arch}", width_mult=width_mult)
    x = net.input(*input)
    with scope("features", "stage"):
        x = conv_bn_act(x, make_divisible(16 * width_mult), 3, 2, act=hardswish, eps=0.001, name="0")
        for i, (k, e, c, se, a, s) in enumerate(MOBILENET_V3_SETTING[arch], 1):
            x = inverted_residual_v3(x, k, make_divisible(e * width_mult), make_divisible(c * width_mult), se,
                                     acts[a], s, name=str(i))
        x = conv_bn_act(x, 6 * x.C, 1, act=hardswish, eps=0.001, name=str(i + 1))
    x = adaptive_avgpool2d(x, 1, name="avgpool")
    x = flatten(x, name="flatten")
    with scope("classifier", "stage"):
        x = hardswish(linear(x, make_divisible(MOBILENET_V3_LAST[arch] * width_mult), name="0"), name="1")
        x = dropout(x, dropout_p, name="2")
        linear(x, num_classes, name="3")
    return net.graph


for _arch in ("large", "small"):
    register(f"mobilenet_v3_{_arch}", (3, 224, 224), f"MobileNet v3-{_arch.capitalize()} (torchvision's)",
             family="mobilenet", arch=_arch)(mobilenet_v3)


# ---------------------------------------------------------------- ShuffleNet v2
def _dw_bn(x, stride, conv, bn):
    x = conv2d(x, x.C, 3, stride, padding=1, groups=x.C, bias=False, name=conv)
    return batchnorm(x, name=bn)


def _pw_bn_relu(x, c, conv, bn, act):
    return relu(batchnorm(conv2d(x, c, 1, bias=False, name=conv), name=bn), name=act)


@block("InvertedResidual")
def shuffle_unit(x, out_channels, stride):
    """ShuffleNet v2 unit (Ma et al. 2018, Fig. 3c/d; torchvision's ``InvertedResidual``).

    Stride 1: split the channels in two halves, keep one, run the other through
    ``branch2`` (1×1 conv, 3×3 depthwise, 1×1 conv), concatenate, shuffle with 2 groups.
    Stride 2: no split; ``branch1`` (3×3 depthwise /2, 1×1 conv) and ``branch2`` both see
    the whole input, doubling the channels.
    """
    half = out_channels // 2
    if stride == 1 and x.C != 2 * half:
        raise ShapeError("shuffle_unit", "a stride-1 ShuffleNet v2 unit needs in_channels = out_channels (even)",
                         f"in_channels={x.C}, out_channels={out_channels}")
    if stride == 1:
        keep, x2 = chunk(x, 2, name="split")
    else:
        x2 = x
        with scope("branch1", "branch"):
            keep = _dw_bn(x, stride, "0", "1")
            keep = _pw_bn_relu(keep, half, "2", "3", "4")
    with scope("branch2", "branch"):
        y = _pw_bn_relu(x2, half, "0", "1", "2")
        y = _dw_bn(y, stride, "3", "4")
        y = _pw_bn_relu(y, half, "5", "6", "7")
    return channel_shuffle(concat(keep, y, name="concat"), 2, name="shuffle")


# torchvision's stage widths (stem, stage2, stage3, stage4, conv5) per width multiplier;
# Ma et al. 2018, Table 5. Every variant repeats the units 4, 8, 4 times.
SHUFFLENET_V2_WIDTHS = {"0_5": [24, 48, 96, 192, 1024], "1_0": [24, 116, 232, 464, 1024],
                        "1_5": [24, 176, 352, 704, 1024], "2_0": [24, 244, 488, 976, 2048]}
SHUFFLENET_V2_REPEATS = [4, 8, 4]


def shufflenet_v2(input=(3, 224, 224), width: str = "1_0", num_classes: int = 1000):
    """torchvision's ShuffleNetV2: ``conv1`` (3×3 /2 + BN + ReLU), ``maxpool``, ``stage2..4``
    (a stride-2 unit then stride-1 units), ``conv5`` (1×1), global mean, ``fc``."""
    if width not in SHUFFLENET_V2_WIDTHS:
        raise CnnGraphError(f"shufflenet_v2: width must be one of {', '.join(SHUFFLENET_V2_WIDTHS)}, got {width!r}")
    widths = SHUFFLENET_V2_WIDTHS[width]
    net = Net(f"shufflenet_v2_x{width}")
    x = net.input(*input)
    with scope("conv1", "stage"):
        x = relu(batchnorm(conv2d(x, widths[0], 3, 2, padding=1, bias=False, name="0"), name="1"), name="2")
    x = maxpool2d(x, 3, 2, padding=1, name="maxpool")
    for s, (n, c) in enumerate(zip(SHUFFLENET_V2_REPEATS, widths[1:4]), 2):
        with scope(f"stage{s}", "stage"):
            for b in range(n):
                x = shuffle_unit(x, c, 2 if b == 0 else 1, name=str(b))
    with scope("conv5", "stage"):
        x = _pw_bn_relu(x, widths[4], "0", "1", "2")
    x = adaptive_avgpool2d(x, 1, name="globalpool", title="global mean")  # torchvision: x.mean([2, 3])
    x = flatten(x, name="flatten")
    linear(x, num_classes, name="fc")
    return net.graph


for _w in SHUFFLENET_V2_WIDTHS:
    register(f"shufflenet_v2_x{_w}", (3, 224, 224), f"ShuffleNet v2 {_w.replace('_', '.')}× (torchvision's)",
             family="shufflenet", width=_w)(shufflenet_v2)
