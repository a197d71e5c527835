"""The per-op case catalogue shared by the core, ONNX, Numba, CuPy and registry tests, and
the helpers every numeric comparison uses.

:data:`OP_CASES` maps a case name to ``(channels, builder)``: ``builder(x)`` adds layers to
the input ``x`` of a ``channels × 9 × 11`` network (``Net``), with non-default attributes
where an op has them (asymmetric padding, dilation, groups, ceil mode, uneven adaptive
windows, even-size LRN, non-affine norms...). Every activation of the registry has a case
alone and, when epilogues take it, fused after a 1×1 convolution; an activation with a
parameter or weights also has one row with a non-default value (the last rows).
``tests/test_registry.py`` checks that every registry op has a case.
"""
from __future__ import annotations

import numpy as np

from cnngraph import zoo
from cnngraph.compiler import compile
from cnngraph.compiler.weights import init
from cnngraph.dsl import (Net, adaptive_avgpool2d, adaptive_maxpool2d, add, avgpool2d, batchnorm, channel_shuffle,
                          channel_slice, concat, conv2d, dropout, elu, flatten, groupnorm, identity, instancenorm,
                          layernorm, leaky_relu, linear, lrn, maxpool2d, mul, pad2d, pad_channels, prelu, rbf, relu,
                          scale, sigmoid, softmax, tanh, resize, layernorm2d, layer_scale, conv_transpose2d,
                          radix_softmax, clip, softplus, depth_to_space, space_to_depth, log_softmax,
                          blurpool2d, channel_conv)
from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError

TOL = 1e-4  # relative error of float32 against float32


def rel_err(a, b) -> float:
    """max|a − b| / max|b|, b the reference: the error measure of every comparison."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.isfinite(b).all(), "the reference is not finite"
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _residual_block(x, groups=1):
    c = x.shape[0]
    y = relu(batchnorm(conv2d(x, c, 3, padding=1, bias=False, groups=groups)))
    y = batchnorm(conv2d(y, c, 3, padding=1, bias=False, groups=groups))
    return relu(add(y, x))


def _activation(name):
    import cnngraph.dsl as dsl

    return getattr(dsl, name)


def _conv(c=8, cout=12, **k):
    return c, lambda x: conv2d(x, cout, **k)


OP_CASES: dict = {
    "conv3x3_pad": _conv(kernel_size=3, padding=1),
    "conv1x1_direct_gemm": _conv(kernel_size=1, bias=False),
    "conv1x1_stride2": _conv(kernel_size=1, stride=2),
    "conv_asym_pad_stride_dil": _conv(kernel_size=(3, 5), stride=(2, 1), padding=(0, 1, 2, 3), dilation=(2, 1)),
    "conv_groups4_direct": _conv(cout=16, kernel_size=3, padding=1, groups=4),
    "conv_groups2_batched_gemm": _conv(c=64, cout=64, kernel_size=3, padding=1, groups=2),
    "depthwise_stride2": _conv(cout=8, kernel_size=3, padding=1, stride=2, groups=8),
    "depthwise_mult2": _conv(cout=16, kernel_size=5, padding=2, groups=8),
    # transposed convolutions: a U-Net's 2×2 up-convolution; stride 2 with cropping padding, output
    # padding and groups, its epilogue fused; asymmetric (ONNX) padding with dilation and a stride per
    # axis; stride 1 with output padding below the dilation; one in place over a skip (residual)
    "upconv2x2_stride2": (8, lambda x: conv_transpose2d(x, 6, 2, stride=2)),
    "upconv3x3_pad_outpad_groups_relu": (8, lambda x: relu(conv_transpose2d(x, 12, 3, stride=2, padding=1,
                                                                            output_padding=1, groups=4))),
    "upconv_asym_dilated": (8, lambda x: conv_transpose2d(x, 5, (3, 4), stride=(3, 2), padding=(0, 1, 2, 3),
                                                          output_padding=(2, 1), dilation=(1, 2), bias=False)),
    "upconv_stride1_dilation_outpad": (8, lambda x: conv_transpose2d(x, 4, 3, padding=2, output_padding=1,
                                                                     dilation=2)),
    "upconv_bn_folded_groups": (8, lambda x: relu(batchnorm(conv_transpose2d(x, 12, 3, stride=2, padding=1, groups=4,
                                                                              bias=False)))),
    "upconv_residual_in_place": (8, lambda x: relu(add(conv_transpose2d(conv2d(x, 16, 3, stride=2, padding=1), 8, 3,
                                                                        stride=2, padding=1, output_padding=(0, 0)),
                                                       x))),
    "residual_block_in_place": (8, _residual_block),
    "grouped_residual_in_place": (8, lambda x: _residual_block(x, groups=4)),
    "wide_grouped_residual": (64, lambda x: _residual_block(x, groups=2)),
    "maxpool_ceil_pad": (8, lambda x: maxpool2d(x, 3, 2, padding=1, ceil_mode=True)),
    "maxpool_dilated": (8, lambda x: maxpool2d(x, 2, 1, dilation=2)),
    "avgpool_ceil": (8, lambda x: avgpool2d(x, 3, 2, padding=1, ceil_mode=True)),
    "avgpool_exclude_pad": (8, lambda x: avgpool2d(x, 3, 2, padding=1, count_include_pad=False)),
    "adaptive_avg_uneven": (8, lambda x: adaptive_avgpool2d(x, (4, 3))),
    "adaptive_max_uneven": (8, lambda x: adaptive_maxpool2d(x, (3, 4))),
    "softmax_channels": (8, softmax),
    "log_softmax_channels": (8, log_softmax),
    "batchnorm_alone_relu": (8, lambda x: relu(batchnorm(x))),
    "lrn": (8, lambda x: lrn(x, size=5, alpha=1e-2, beta=0.75, k=2.0)),
    "lrn_even_size": (8, lambda x: lrn(x, size=4, alpha=1e-1, beta=0.5, k=1.0)),
    "se_mul": (8, lambda x: mul(x, sigmoid(conv2d(adaptive_avgpool2d(x, 1), 8, 1)))),
    "mul_same_shape": (8, lambda x: mul(x, tanh(x))),
    "add3_relu": (8, lambda x: relu(add(x, sigmoid(x), tanh(x)))),
    "add3_dropout_identity": (8, lambda x: add(x, dropout(relu(x, inplace=False)), identity(x))),
    "scale": (8, lambda x: scale(x, 0.17)),
    "scale_shift": (8, lambda x: scale(x, -0.5, shift=1.25)),
    "depth_to_space_crd": (8, lambda x: depth_to_space(x, 2)),
    "depth_to_space_dcr": (8, lambda x: depth_to_space(x, 2, mode="DCR")),
    "space_to_depth_crd": (8, lambda x: space_to_depth(pad2d(x, (0, 0, 1, 1)), 2)),
    "space_to_depth_dcr": (8, lambda x: space_to_depth(pad2d(x, (1, 0, 2, 1)), 3, mode="DCR")),
    "clip_both_and_above": (8, lambda x: clip(clip(x, -0.5, 0.8), high=0.3)),
    "flatten_linear_relu_softmax": (8, lambda x: softmax(relu(linear(flatten(x), 7)))),
    "linear_bn": (8, lambda x: batchnorm(linear(flatten(x), 7))),
    "norms": (8, lambda x: instancenorm(layernorm(groupnorm(x, 4)), affine=True)),
    "copies": (8, lambda x: concat(channel_slice(channel_shuffle(x, 2), 0, 3), channel_slice(x, 5, 8), x)),
    "pad2d_crop": (8, lambda x: pad2d(x, (1, -2, 0, 3))),
    "pad_channels": (8, lambda x: pad_channels(x, 4, stride=2, before=4)),
    "rbf": (8, lambda x: rbf(flatten(x), 10)),
    # every activation of the registry: alone, and fused into a conv's epilogue when it can be
    **{f"act_{n}_alone": (8, lambda x, n=n: _activation(n)(concat(x, x))) for n in ops.ACTIVATIONS},
    **{f"act_{n}_fused": (8, lambda x, n=n: _activation(n)(conv2d(x, 8, 1)))
       for n, op in ops.ACTIVATIONS.items() if op.fusion == "act"},
    # activations with a parameter or weights, at a non-default value
    "leaky_relu_slope": (8, lambda x: leaky_relu(conv2d(x, 8, 1), negative_slope=0.2)),
    "elu_alpha": (8, lambda x: elu(conv2d(x, 8, 1), alpha=0.7)),
    "prelu_per_channel": (8, lambda x: prelu(conv2d(x, 8, 1), num_parameters=8)),
    "softplus_beta": (8, lambda x: softplus(conv2d(x, 8, 1), beta=2.5)),
    # resizing: nearest by 2, bilinear by 1.5, align_corners to a size, to another tensor's size
    "resize_nearest_x2": (8, lambda x: resize(x, 2)),
    "resize_bilinear_x1.5": (8, lambda x: resize(x, 1.5, mode="bilinear")),
    "resize_bilinear_corners_size": (8, lambda x: resize(x, size=(13, 7), mode="bilinear", align_corners=True)),
    "resize_like": (8, lambda x: add(resize(maxpool2d(x, 2), like=x, mode="bilinear"), x)),
    "layernorm2d_layer_scale": (8, lambda x: layer_scale(layernorm2d(x))),
    # ConvNeXt's block end: a layer scale (timm's `gamma`) with the residual add fused into its epilogue
    "layer_scale_residual_fused": (8, lambda x: add(layer_scale(layernorm2d(conv2d(x, 8, 1), affine=False),
                                                                field="gamma"), x)),
    "resize_nearest_down_up_size": (8, lambda x: resize(x, size=(5, 17))),
    # split attention: softmax over 2 radix groups of a 2-cardinality 12-channel map (k = 3)
    "radix_softmax_groups": (12, lambda x: radix_softmax(x, radix=2, groups=2)),
    "pad2d_reflect": (8, lambda x: pad2d(x, (1, 2, 0, 3), mode="reflect")),
    "blurpool_reflect": (8, lambda x: blurpool2d(pad2d(x, 1, mode="reflect"), 3, 2)),
    # ECA: pooled channels, a 5-tap 1-D conv along them (padding 1: 8 -> 6), then 3 taps keeping 6
    "eca_channel_conv": (8, lambda x: channel_conv(channel_conv(flatten(adaptive_avgpool2d(x, 1)), 5, 1), 3)),
    "blurpool_4x2_stride_1x2": (8, lambda x: blurpool2d(x, (4, 2), (1, 2))),
}


def build_case(name: str, h: int = 9, w: int = 11):
    """The graph of case ``name`` on a ``channels × h × w`` input."""
    c, fn = OP_CASES[name]
    net = Net(name)
    fn(net.input(c, h, w))
    return net.graph


def tame_residuals(g, ws: dict) -> dict:
    """Random weights make a deep residual net's signal grow at every block (the branch adds
    its variance to the shortcut's), past float32's range in ResNet-1202, and the rounding
    errors of float32 with it. Scale the last conv or batch norm of every branch entering an
    add (through an SE gate) by s = min(1, 2/√adds), so the variance grows by about e⁴ at
    most whatever the depth; shallow nets keep s close to 1."""
    adds = [n for n in g if g.nodes[n]["op"] == "add"]
    s = min(1.0, 2.0 / np.sqrt(max(len(adds), 1)))
    if s == 1.0:
        return ws
    ws, done = dict(ws), set()
    for a in adds:
        for i in g.nodes[a]["inputs"]:
            while g.nodes[i]["op"] == "mul":  # squeeze-and-excitation: the gated feature map
                i = g.nodes[i]["inputs"][0]
            op = g.nodes[i]["op"]
            if i in done or op not in ("batchnorm", "conv2d"):
                continue
            done.add(i)
            for f in ("weight", "bias"):
                if f"{i}.{f}" in ws:
                    ws[f"{i}.{f}"] = (ws[f"{i}.{f}"] * np.float32(s)).astype(np.float32)
    return ws


def case_data(g, seed=0, batch=2):
    """``(plan, x)``: the graph compiled with seeded weights (non-trivial batch norms) and a
    seeded float32 input batch."""
    ws = tame_residuals(g, init(g, seed=seed, random_bn=True))
    shape = tuple(int(s) for s in g.nodes[g.graph["inputs"][0]]["shape"])
    x = np.random.default_rng(seed + 1).standard_normal((batch,) + shape).astype(np.float32)
    return compile(g, ws), x


def small_input(name):
    """The smallest square input (from a short list) every layer of zoo model ``name`` accepts."""
    info = zoo.info(name)
    if len(info.input) != 3:
        return info.input
    c, s0 = info.input[0], info.input[1]
    for s in sorted({min(s0, 32), 32, 48, 63, 64, 96, 128, 160, 224, 299}):
        try:
            g = zoo.build(name, input=(c, s, s))
        except CnnGraphError:
            continue
        if all(int(d["shape"][-1]) >= 1 for _, d in g.nodes(data=True)):
            return (c, s, s)
    return info.input


def check_no_overlap(plan):
    """Two values share a slot only when one is dead before the other is written, or the
    kernel call writing the second may overwrite the first in place (it reads it there
    last). Lifetimes are counted in kernel calls (a step's gate's steps are calls of their
    own), recomputed here from the reads and writes; the plan's step-level lifetimes must
    agree with them."""
    calls = [(j, part) for j, step in enumerate(plan.steps) for part in step.parts]
    first = {n: -1 for n in plan.inputs}
    last = {}
    for c, (j, part) in enumerate(calls):
        first.setdefault(part.output, c)
        for r in part.reads:
            last[r] = max(last.get(r, -1), c)
    for o in plan.outputs:
        last[o] = len(calls)
    step_of = [j for j, _ in calls] + [len(plan.steps)]
    for v in plan.values.values():
        assert v.first == (-1 if first[v.name] == -1 else step_of[first[v.name]]), v
        assert v.last == (step_of[last[v.name]] if v.name in last else -1), v
    by_slot = {}
    for v in plan.values.values():
        by_slot.setdefault(v.slot, []).append(v)
    for vs in by_slot.values():
        vs.sort(key=lambda v: first[v.name])
        for a, b in zip(vs, vs[1:]):
            a_last, b_first = last.get(a.name, first[a.name]), first[b.name]
            assert a_last <= b_first, (a, b)
            if a_last == b_first:
                step = calls[b_first][1]
                ports = ops.get(step.op).inplace_ports
                allowed = [step.inputs[p] for p in ports if p < len(step.inputs)] + [step.residual]
                assert a.name in allowed, (a.name, step)
        for v in vs:
            assert plan.memory.slots[v.slot] >= v.size
