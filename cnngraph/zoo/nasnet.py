"""NASNet-A Mobile, "4 @ 1056" (Zoph et al. 2018; seeds 000 and 002, "Neural Architecture Search").

The architecture follows the authors' TensorFlow-slim definition (``nasnet.py``,
``nasnet_utils.py``, mobile ImageNet configuration): a 3×3 /2 stem conv, two reduction
cells as the rest of the stem, then three stacks of 4 normal cells with a reduction cell
between stacks; 44 filters per branch in the first stack, doubled at each reduction
(filter sizes 11 and 22 in the stem cells), 6 × 176 = 1056 channels at the end.

Module names are those of the widely used PyTorch port (Cadene's ``pretrainedmodels``
``NASNetAMobile``: ``cell_stem_0``, ``cell_0`` ... ``cell_3``, ``reduction_cell_0``,
``cell_6`` ... ``cell_9``, ``reduction_cell_1``, ``cell_12`` ... ``cell_15``,
``last_linear``), so its state_dict loads unchanged.

Padding: TensorFlow's "SAME" (``padding="same"``, the default) pads a stride-2 window on an
even-sized map by one pixel more at the bottom/right; it depends on each map's parity, so it
needs a numeric input. ``padding="symmetric"`` pads (k−1)/2 on every side, which gives the
same shapes and costs for every input size and builds on a symbolic (3, H, W).

Left out, as at inference: the auxiliary head (training only) and drop-path (keep
probability 1.0 in the mobile configuration).

>>> from cnngraph import zoo, analyze
>>> r = analyze(zoo.build("nasnet_a_mobile"))
>>> r.total.params, r.total.macs
(5289978, 563638816)
"""
from __future__ import annotations

from cnngraph.dsl import (Net, adaptive_avgpool2d, add, avgpool2d, batchnorm, block, concat, conv2d, dropout, flatten,
                          linear, maxpool2d, pad2d, relu, scope)
from cnngraph.ir.errors import CnnGraphError, ShapeError
from cnngraph.ir.ops import is_int

from cnngraph.zoo import register

EPS = 1e-3  # batch norm epsilon of the mobile configuration

# The cells found by the search (Zoph et al. 2018, Fig. 4): five combinations, each
# (left input, left op, right input, right op), summed. Inputs: 0 = h_i, this cell's input
# after a 1×1 conv; 1 = h_{i-1}, the previous cell's output; 2 + j = combination j.
# Ops: "sepK" = two stacked K×K separable convs, "avg"/"max" = 3×3 pooling, "id" = identity.
NORMAL_CELL = [(0, "sep5", 1, "sep3"), (1, "sep5", 1, "sep3"), (0, "avg", 1, "id"), (1, "avg", 1, "avg"),
               (0, "sep3", 0, "id")]
NORMAL_OUTPUT = (1, 2, 3, 4, 5, 6)  # concatenated: h_{i-1} and the five combinations
REDUCTION_CELL = [(0, "sep5", 1, "sep7"), (0, "max", 1, "sep7"), (0, "avg", 1, "sep5"), (3, "id", 2, "avg"),
                  (2, "sep3", 0, "max")]
REDUCTION_OUTPUT = (3, 4, 5, 6)  # combinations 1-4 (combination 0 only feeds others)


def same_padding(hw, k: int, stride: int, mode: str, layer: str = "nasnet_a_mobile") -> tuple:
    """(top, left, bottom, right) padding of a k×k window on an H×W map: TensorFlow's "SAME"
    (the output is ⌈H/stride⌉; the extra pixel goes at the bottom/right) or symmetric (k−1)/2.

    >>> same_padding((56, 56), 3, 2, "same"), same_padding((111, 111), 3, 2, "same")
    ((0, 0, 1, 1), (1, 1, 1, 1))
    """
    if mode == "symmetric" or stride == 1:
        p = (k - 1) // 2
        return (p, p, p, p)
    H, W = hw
    if not (is_int(H) and is_int(W)):
        raise ShapeError(layer, "TensorFlow 'SAME' padding depends on the parity of each map and needs a numeric "
                         "input; use padding='symmetric' (same shapes and costs)", f"map H = {H}, W = {W}")

    def pads(L):
        total = max((-(-L // stride) - 1) * stride + k - L, 0)
        return total // 2, total - total // 2

    (t, b), (l, r) = pads(int(H)), pads(int(W))
    return (t, l, b, r)


def _separable(x, c, k, stride, mode, name):
    """TF-slim ``separable_conv2d`` with depth multiplier 1: k×k depthwise, then 1×1 to c."""
    with scope(name, "SeparableConv2d"):
        pads = same_padding((x.H, x.W), k, stride, mode, x.net._qualify("depthwise_conv2d")[0])
        x = conv2d(x, x.C, k, stride, padding=pads, groups=x.C, bias=False, name="depthwise_conv2d")
        return conv2d(x, c, 1, bias=False, name="pointwise_conv2d")


@block("BranchSeparables")
def branch_separables(x, c, k, stride, mode="same"):
    """The cells' "sepK" op: ReLU, K×K separable conv (strided) to c, BN, ReLU, K×K separable conv, BN."""
    x = relu(x, inplace=False, name="relu")
    x = batchnorm(_separable(x, c, k, stride, mode, "separable_1"), EPS, name="bn_sep_1")
    x = relu(x, inplace=False, name="relu1")
    return batchnorm(_separable(x, c, k, 1, mode, "separable_2"), EPS, name="bn_sep_2")


def _relu_conv_bn(x, c, name):
    with scope(name, "ReLUConvBN"):
        x = relu(x, inplace=False, name="relu")
        return batchnorm(conv2d(x, c, 1, bias=False, name="conv"), EPS, name="bn")


def factorized_reduction(x, c):
    """Halve H and W without dropping pixels: ReLU, then two 1×1 stride-2 paths to c/2
    channels, the second on the map shifted up-left by one pixel, concatenated, BN."""
    x = relu(x, inplace=False, name="relu")
    with scope("path_1", "path"):
        a = conv2d(avgpool2d(x, 1, 2, count_include_pad=False, name="avgpool"), c // 2, 1, bias=False, name="conv")
    with scope("path_2", "path"):
        b = pad2d(x, (-1, -1, 1, 1), name="pad")  # TF: pad bottom/right by 1, drop the first row and column
        b = conv2d(avgpool2d(b, 1, 2, count_include_pad=False, name="avgpool"), c // 2, 1, bias=False, name="conv")
    return batchnorm(concat(a, b, name="concat_paths"), EPS, name="final_path_bn")


def _cell(x, prev, filters, ops, outputs, stride, prev_reduced, mode):
    # The two inputs: h_i through a 1×1 conv; h_{i-1} brought to h_i's size and width.
    h0 = _relu_conv_bn(x, filters, "conv_1x1")
    if prev is None:  # first stem cell: the stem conv's output, as is
        h1 = x
    elif prev_reduced:  # h_{i-1} is twice as large: factorized reduction
        h1 = factorized_reduction(prev, filters)
    elif prev.C != filters:
        h1 = _relu_conv_bn(prev, filters, "conv_prev_1x1")
    else:
        h1 = prev
    states = [h0, h1]
    for i, (li, lop, ri, rop) in enumerate(ops):
        pair = []
        for side, j, op in (("left", li, lop), ("right", ri, rop)):
            s = stride if j < 2 else 1  # only ops on the cell's inputs are strided
            h, name = states[j], f"comb_iter_{i}_{side}"
            if op.startswith("sep"):
                h = branch_separables(h, filters, int(op[3:]), s, mode, name=name)
            elif op in ("avg", "max"):
                pads = same_padding((h.H, h.W), 3, s, mode, h.net._qualify(name)[0])
                h = (avgpool2d(h, 3, s, padding=pads, count_include_pad=False, name=name) if op == "avg" else
                     maxpool2d(h, 3, s, padding=pads, name=name))
            pair.append(h)
        states.append(add(*pair, name=f"comb_iter_{i}"))
    return concat([states[j] for j in outputs], name="concat")


@block("NormalCell")
def normal_cell(x, prev, filters, prev_reduced=False, mode="same"):
    """NASNet-A normal cell: keeps H, W; outputs 6 × ``filters`` channels."""
    return _cell(x, prev, filters, NORMAL_CELL, NORMAL_OUTPUT, 1, prev_reduced, mode)


@block("ReductionCell")
def reduction_cell(x, prev, filters, prev_reduced=False, mode="same"):
    """NASNet-A reduction cell: halves H, W (stride-2 ops on its inputs); 4 × ``filters`` channels."""
    return _cell(x, prev, filters, REDUCTION_CELL, REDUCTION_OUTPUT, 2, prev_reduced, mode)


@register("nasnet_a_mobile", (3, 224, 224), "NASNet-A Mobile 4 @ 1056 (Zoph et al. 2018), TF-slim structure",
          family="nasnet")
def nasnet_a_mobile(input=(3, 224, 224), num_classes: int = 1000, padding: str = "same", dropout_p: float = 0.5):
    """NASNet-A Mobile: ``conv0`` (3×3 /2, no padding, 32 channels, BN), ``cell_stem_0`` and
    ``cell_stem_1`` (reduction cells with 11 and 22 filters), three stacks of 4 normal cells
    (44, 88, 176 filters) separated by reduction cells, ReLU, global average pool, dropout,
    ``last_linear``."""
    if padding not in ("same", "symmetric"):
        raise CnnGraphError(f"nasnet_a_mobile: padding must be 'same' or 'symmetric', got {padding!r}")
    filters = 1056 // 24  # penultimate filters / (6 outputs × 4 filter scaling)
    net = Net("nasnet_a_mobile", padding=padding)
    x = net.input(*input)
    with scope("conv0", "stem"):
        x = batchnorm(conv2d(x, 32, 3, 2, bias=False, name="conv"), EPS, name="bn")
    stem0 = reduction_cell(x, None, filters // 4, mode=padding, name="cell_stem_0")
    prev, x = stem0, reduction_cell(stem0, x, filters // 2, prev_reduced=True, mode=padding, name="cell_stem_1")
    for stack in range(3):
        f = filters * 2**stack
        if stack > 0:
            prev, x = x, reduction_cell(x, prev, f, mode=padding, name=f"reduction_cell_{stack - 1}")
        for i in range(4):
            # Cell numbers as in the PyTorch port (6 per stack, from NASNet-A Large).
            prev, x = x, normal_cell(x, prev, f, prev_reduced=(i == 0), mode=padding, name=f"cell_{6 * stack + i}")
    x = relu(x, inplace=False, name="relu")
    x = adaptive_avgpool2d(x, 1, name="avg_pool")
    x = dropout(flatten(x, name="flatten"), dropout_p, name="dropout")
    linear(x, num_classes, name="last_linear")
    return net.graph
