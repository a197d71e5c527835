"""EfficientNet B0–B7 (Tan & Le 2019; seed 002, "EfficientNet: Smart Compound Scaling").

B0 is a stack of MBConv blocks (MobileNet v2's inverted residual with squeeze-and-excitation
and SiLU, a.k.a. swish). B1–B7 scale B0's stage table: every channel count by a width
multiplier (rounded to a multiple of 8 by :func:`~cnngraph.zoo.mobile.make_divisible`),
every stage's repeat count by a depth multiplier (rounded up), and the input resolution.
Module names are torchvision's (``features.S.B.block.N``).

Stochastic depth (torchvision's ``StochasticDepth`` on the residual branch) is the identity
at inference; it is kept as an ``identity`` node named ``stochastic_depth`` in each
residual block, with no parameters, operations or memory.

>>> from cnngraph import zoo, analyze
>>> analyze(zoo.build("efficientnet_b0")).total.params
5288548
>>> EFFICIENTNET_SCALING["b7"]
(2.0, 3.1, 600, 0.5)
"""
from __future__ import annotations

import math

from cnngraph.dsl import Net, adaptive_avgpool2d, add, block, dropout, flatten, identity, linear, scope, silu
from cnngraph.ir.errors import CnnGraphError

from cnngraph.zoo import register
from cnngraph.zoo.mobile import conv_bn_act, make_divisible, squeeze_excitation

# Tan & Le 2019, Eq. 3: depth d = α^φ, width w = β^φ, resolution r = γ^φ, with
# α·β²·γ² ≈ 2 so that FLOPs grow about 2^φ; α, β, γ were found by grid search on B0.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15

# (width multiplier, depth multiplier, input resolution, classifier dropout) of each variant,
# as released (TensorFlow reference and torchvision). The paper does not list φ per variant
# and these coefficients are rounded by hand: see implied_phi().
EFFICIENTNET_SCALING = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}

# B0's stage table (Tan & Le 2019, Table 1): expansion t, kernel k, first stride s,
# input channels, output channels, repeats n. The stem is a 3×3 /2 conv to 32 channels and
# the head a 1×1 conv to 4 × 320 = 1280 channels.
B0_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]


def compound_scaling(phi: float) -> tuple:
    """The paper's multipliers (depth α^φ, width β^φ, resolution γ^φ) for a coefficient φ.

    >>> [round(v, 4) for v in compound_scaling(1)]
    [1.2, 1.1, 1.15]
    """
    return ALPHA ** phi, BETA ** phi, GAMMA ** phi


def implied_phi(variant: str) -> tuple:
    """φ implied by a released variant's depth, width and resolution (log base α, β, γ).

    The three differ because the released multipliers are hand-rounded: B2 is close to
    φ = 1 on all three, B7 gives about (6.2, 7.3, 7.0).

    >>> [round(p, 2) for p in implied_phi("b2")]
    [1.0, 1.0, 1.07]
    """
    w, d, r, _ = EFFICIENTNET_SCALING[variant]
    return math.log(d) / math.log(ALPHA), math.log(w) / math.log(BETA), math.log(r / 224) / math.log(GAMMA)


def scaled_stages(width_mult: float, depth_mult: float) -> list:
    """B0's stage table after compound scaling, as torchvision computes it: channels
    ``make_divisible(c·w, 8)``, repeats ``ceil(n·d)``.

    >>> [n for *_, n in scaled_stages(2.0, 3.1)]
    [4, 7, 7, 10, 10, 13, 4]
    """
    return [(t, k, s, make_divisible(cin * width_mult), make_divisible(cout * width_mult), math.ceil(n * depth_mult))
            for t, k, s, cin, cout, n in B0_STAGES]


@block("MBConv")
def mbconv(x, expand_ratio, kernel, stride, out_channels, eps=1e-5):
    """Mobile inverted bottleneck with squeeze-and-excitation (torchvision names ``block.N``):
    1×1 expansion to t·C (rounded to 8) + BN + SiLU (left out when t = 1), k×k depthwise +
    BN + SiLU, SE to max(1, ⌊C/4⌋) channels of the block's *input* (SiLU, sigmoid), linear
    1×1 projection + BN; residual add (through stochastic depth) at stride 1 and equal widths."""
    expanded = make_divisible(x.C * expand_ratio)
    with scope("block", "layers"):
        y, i = x, 0
        if expanded != x.C:
            y, i = conv_bn_act(y, expanded, 1, act=silu, eps=eps, name="0"), 1
        y = conv_bn_act(y, expanded, kernel, stride, groups=expanded, act=silu, eps=eps, name=str(i))
        y = squeeze_excitation(y, max(1, x.C // 4), act=silu, name=str(i + 1))
        y = conv_bn_act(y, out_channels, 1, act=None, eps=eps, name=str(i + 2))
    if stride == 1 and x.C == out_channels:
        y = add(identity(y, name="stochastic_depth"), x, name="add")
    return y


def efficientnet(input=None, variant: str = "b0", num_classes: int = 1000, width_mult=None, depth_mult=None,
                 dropout_p=None):
    """torchvision's EfficientNet B0–B7: ``features.0`` stem (3×3 /2, SiLU), ``features.1..7``
    the scaled stages, ``features.8`` 1×1 head conv to 4× the last width, global average
    pool, ``classifier`` (dropout, linear). ``width_mult``/``depth_mult`` override the
    variant's multipliers; batch norm eps is 0.001 for B5–B7 as in torchvision."""
    if variant not in EFFICIENTNET_SCALING:
        raise CnnGraphError(f"efficientnet: variant must be one of {', '.join(EFFICIENTNET_SCALING)}, got {variant!r}")
    w0, d0, res, p0 = EFFICIENTNET_SCALING[variant]
    w = w0 if width_mult is None else width_mult
    d = d0 if depth_mult is None else depth_mult
    eps = 0.001 if variant in ("b5", "b6", "b7") else 1e-5
    net = Net(f"efficientnet_{variant}", width_mult=w, depth_mult=d)
    x = net.input(*(input or (3, res, res)))
    stages = scaled_stages(w, d)
    with scope("features", "stage"):
        x = conv_bn_act(x, stages[0][3], 3, 2, act=silu, eps=eps, name="0")
        for si, (t, k, s, _, cout, n) in enumerate(stages, 1):
            with scope(str(si), "stage"):
                for b in range(n):
                    x = mbconv(x, t, k, s if b == 0 else 1, cout, eps=eps, name=str(b))
        x = conv_bn_act(x, 4 * stages[-1][4], 1, act=silu, eps=eps, name=str(len(stages) + 1))
    x = adaptive_avgpool2d(x, 1, name="avgpool")
    x = flatten(x, name="flatten")
    with scope("classifier", "stage"):
        x = dropout(x, p0 if dropout_p is None else dropout_p, name="0")
        linear(x, num_classes, name="1")
    return net.graph


for _v, (_w, _d, _r, _p) in EFFICIENTNET_SCALING.items():
    register(f"efficientnet_{_v}", (3, _r, _r),
             f"EfficientNet-{_v.upper()} (torchvision's; width ×{_w}, depth ×{_d}, {_r}×{_r})",
             family="efficientnet", variant=_v)(efficientnet)
