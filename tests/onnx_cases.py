"""Shared cases of the ONNX and PyTorch-reference tests: networks covering every op, a small
input per zoo model, and the comparison against ONNX Runtime."""
from __future__ import annotations

import numpy as np

from cnngraph import zoo
from cnngraph.ir import ops
from cnngraph.dsl import (Net, adaptive_avgpool2d, adaptive_maxpool2d, add, avgpool2d, batchnorm,
                          channel_shuffle, chunk, concat, conv2d, dropout, flatten, gelu, global_avgpool, groupnorm,
                          hardsigmoid, hardswish, identity, instancenorm, layernorm, linear, lrn, maxpool2d, mul, relu,
                          pad2d, pad_channels, rbf, relu6, scale, scope, sigmoid, silu, softmax, tanh, leaky_relu, elu,
                          mish, prelu, resize, layernorm2d, layer_scale, conv_transpose2d, clip, softplus, gelu_tanh,
                          depth_to_space, space_to_depth, log_softmax)
from cnngraph.ir.errors import ShapeError
from cases import rel_err  # noqa: F401  (re-exported: the suite's one error measure)

# Smallest square input that builds, tried in this order; families listed start higher.
SIZES = (32, 64, 96, 128, 160, 224, 299)
FAMILY_MIN = {"inception": 75, "alexnet": 63}


def small_input(name):
    """A small input on which zoo model ``name`` builds (cheap to run, still every layer)."""
    m = zoo.info(name)
    c = m.input[0]
    if len(m.input) != 3:
        return m.input
    lo = FAMILY_MIN.get(m.family, 0)
    if m.input[1] <= 32:
        return m.input
    for s in SIZES:
        if s < lo:
            continue
        try:
            zoo.build(name, input=(c, s, s))
            return (c, s, s)
        except ShapeError:
            continue
    return m.input


def all_ops_net(input=(6, 17, 19)):
    """One network using every op of the registry with non-default attributes: asymmetric
    padding, dilation, groups, ceil mode, count_include_pad off, adaptive pooling with
    uneven windows, even-size LRN, non-affine norms."""
    net = Net("all_ops")
    x = net.input(*input)
    with scope("stem", "stage"):
        x = conv2d(x, 12, 3, padding=(1, 2, 0, 1), name="conv_asym")
        x = batchnorm(x, name="bn")
        x = relu(x, name="relu")
        a = conv2d(x, 12, 3, padding=2, dilation=2, groups=3, name="conv_dil_grouped")
        a = relu6(a, name="relu6")
        b = conv2d(x, 12, (1, 3), padding=(0, 1), bias=False, name="conv_rect")
        b = hardswish(b, name="hswish")
        a = add(a, b, name="add2")
    x = maxpool2d(a, 3, 2, padding=1, ceil_mode=True, name="maxpool_ceil")
    y = avgpool2d(a, 3, 2, padding=1, ceil_mode=True, count_include_pad=False, name="avgpool_ceil_excl")
    z = avgpool2d(a, 2, 2, padding=(1, 1, 0, 0), count_include_pad=True, name="avgpool_asym")
    w = maxpool2d(a, 2, 2, padding=(0, 1, 1, 0), name="maxpool_asym")
    sides = [flatten(global_avgpool(t, name=f"{t.name}_gap"), name=f"{t.name}_flat") for t in (y, z, w)]
    x = add(x, x, x, name="sum3")
    x = silu(x, name="silu")
    x = leaky_relu(x, negative_slope=0.2, name="leaky")
    x = mish(elu(x, alpha=0.7, name="elu"), name="mish")
    x = prelu(x, num_parameters=12, name="prelu")
    p, q = chunk(x, 2, name="split")
    p = gelu(p, name="gelu")
    q = tanh(q, name="tanh")
    x = concat(p, q, name="cat")
    x = channel_shuffle(x, 3, name="shuffle")
    x = lrn(x, size=4, alpha=1e-2, beta=0.75, k=2.0, name="lrn_even")
    x = lrn(x, size=3, alpha=1e-2, beta=0.5, k=1.0, name="lrn_odd")
    x = groupnorm(x, 3, name="gn")
    x = groupnorm(x, 4, affine=False, name="gn_plain")
    x = instancenorm(x, name="in_plain")
    x = instancenorm(x, affine=True, name="in_affine")
    x = batchnorm(x, affine=False, name="bn_plain")
    x = identity(x, name="ident")
    x = scale(x, 0.5, name="scale")
    x = pad_channels(x, 4, stride=2, before=2, name="pad_c")
    x = pad2d(x, (-1, 1, 2, -1), name="pad_crop")
    if "clip" in ops.REGISTRY:  # constant arithmetic, clamps, softplus with β, GELU's tanh form
        x = gelu_tanh(softplus(clip(scale(x, -0.5, shift=0.25, name="scale_shift"), -0.4, 0.6, name="clip"),
                               beta=2.0, name="softplus"), name="gelu_tanh")
    se = global_avgpool(x, name="se_pool")
    se = flatten(se, name="se_flat")
    se = linear(se, 18, name="se_fc")
    se = hardsigmoid(se, name="se_gate")
    x = mul(x, se, name="se_mul")
    x = layernorm(x, name="ln")
    if "layernorm2d" in ops.REGISTRY:
        x = layernorm2d(x, name="ln_channels")
        x = layer_scale(x, field="layer_scale", name="ls")
    if "resize" in ops.REGISTRY:  # 6×6 maps: nearest ×2, bilinear ×1.5, align_corners to 7×9, to another's size
        small = avgpool2d(x, 2, name="ups_small")
        sides += [flatten(t, name=f"{t.name}_flat") for t in (
            resize(x, 2, name="up_nearest"), resize(x, 1.5, mode="bilinear", name="up_bilinear"),
            resize(x, size=(7, 9), mode="bilinear", align_corners=True, name="up_corners"),
            resize(small, like=x, mode="bilinear", name="up_like"), resize(small, (2, 3), name="up_nearest_rect"))]
    if "depth_to_space" in ops.REGISTRY:  # pixel (un)shuffle in both channel orders; a split attention's softmax
        sides += [flatten(t, name=f"{t.name}_flat") for t in (
            depth_to_space(space_to_depth(x, 2, mode="DCR", name="s2d_dcr2"), 2, mode="DCR", name="d2s_dcr"),
            depth_to_space(space_to_depth(x, 3, mode="DCR", name="s2d_dcr"), 3, name="d2s_crd"),
            log_softmax(global_avgpool(x, name="lsm_pool"), name="log_softmax"))]
    if "radix_softmax" in ops.REGISTRY:  # timm's import patterns: blur pool after reflect padding, ECA, split attention
        from cnngraph.dsl import blurpool2d, channel_conv, radix_softmax

        pooled = global_avgpool(x, name="attn_pool")
        sides += [flatten(blurpool2d(pad2d(x, 1, mode="reflect", name="pad_reflect"), name="blur"), name="blur_flat"),
                  channel_conv(flatten(pooled, name="eca_flat"), 3, name="eca"),
                  flatten(radix_softmax(pooled, radix=3, groups=2, name="rsoftmax"), name="rsoftmax_flat")]
    # transposed convolutions: grouped with cropping and output padding; asymmetric pads and dilation
    sides += [flatten(t, name=f"{t.name}_flat") for t in (
        conv_transpose2d(x, 6, 3, stride=2, padding=1, output_padding=1, groups=3, name="upconv_grouped"),
        conv_transpose2d(x, 4, (2, 3), stride=(2, 1), padding=(0, 1, 1, 0), dilation=(1, 2), bias=False,
                         name="upconv_asym"))]
    s = adaptive_avgpool2d(x, (4, 5), name="adaptive_avg_uneven")  # 6×6 -> 4×5: overlapping windows
    t = adaptive_maxpool2d(x, (5, 4), name="adaptive_max_uneven")
    t = sigmoid(t, name="sig")
    u = adaptive_avgpool2d(x, 1, name="gap")
    v = adaptive_maxpool2d(x, 1, name="gmp")
    s = flatten(s, name="flat_s")
    t = flatten(t, name="flat_t")
    u = flatten(u, name="flat_u")
    v = flatten(v, name="flat_v")
    h = concat(s, t, u, v, *sides, name="cat_vec")
    h = dropout(h, 0.3, name="drop")
    h = linear(h, 7, bias=False, name="fc_nobias")
    h = batchnorm(h, name="bn1d")
    h = layernorm(h, affine=False, name="ln1d")
    if "rbf" in ops.REGISTRY:
        h = rbf(h, 9, name="rbf")
    h = linear(h, 5, name="fc_out")
    softmax(h, name="softmax")
    return net.graph


_POOL = {}


def quick_weights(g, seed=0):
    """Random-looking float32 weights, fast enough for the whole zoo: windows of one pool of
    2^20 uniform numbers at random offsets, scaled to He's variance for conv/linear; batch
    norm gets γ in [0.15, 0.45), β and mean in [-0.1, 0.1), variance in [0.5, 1.5).

    The small γ damps every residual branch, so even 1001-layer networks keep activations
    finite and well conditioned: float32 PyTorch stays within 1e-6 of float64 on the whole
    zoo (γ around 1 overflows ResNet-1202; batch statistics calibrated on a few samples make
    ResNets and EfficientNets chaotic, 1e-3 to 1)."""
    from cnngraph.compiler.weights import param_shapes

    if seed not in _POOL:
        _POOL[seed] = np.random.default_rng(seed).random(1 << 20, dtype=np.float32) * 2 - 1  # U(-1, 1)
    pool = _POOL[seed]
    rng = np.random.default_rng(seed + 1)
    ws = {}
    for key, (shape, _) in param_shapes(g).items():
        field = key.rsplit(".", 1)[1]
        n = int(np.prod(shape))
        start = int(rng.integers(0, pool.size // 2))
        u = pool[start:start + n] if start + n <= pool.size else np.resize(pool[start:], n)
        if field == "weight" and len(shape) >= 2:
            v = u * np.float32(np.sqrt(6.0 / max(1, n // shape[0])))  # variance 2/fan_in
        elif field == "weight":  # norm scale γ in [0.15, 0.45): damped residual branches
            v = u * np.float32(0.15) + np.float32(0.3)
        elif field == "running_var":
            v = u * np.float32(0.5) + np.float32(1.0)
        else:
            v = u * np.float32(0.1)
        ws[key] = v.reshape(shape)
    return ws


def zoo_case(name, batch=2):
    """Zoo model ``name`` at a small input, weights, a test batch and PyTorch's output on it."""
    from cnngraph.interop.torch_ref import run

    g = zoo.build(name, input=small_input(name))
    ws = quick_weights(g)
    x = random_input(g, batch=batch)
    return g, ws, x, run(g, ws, *x.values())


def random_input(g, batch=2, seed=1):
    return {i: np.random.default_rng(seed).standard_normal((batch,) + tuple(map(int, g.nodes[i]["shape"]))).astype(np.float32)
            for i in g.graph["inputs"]}


def ort_run(model, feeds):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    # ONNX Runtime's kernels node by node: its fused/re-laid-out kernels (ENABLE_ALL) round
    # differently (4e-3 on a random EfficientNet-B1, against 8e-4 unfused) and start slower.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def registry_ops():
    return set(ops.REGISTRY) - {"input"}


# ---------------------------------------------------------------- hand-written ONNX graphs
def hand_model(nodes, inits=(), inputs=None, outputs=None, opset=17):
    """An ONNX model of ``nodes`` on an N×4×8×8 input ``x`` with output ``y`` (onnx.helper only)."""
    from onnx import TensorProto, helper

    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    g = helper.make_graph(nodes, "hand", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8  # what ONNX Runtime reads
    return m


def conv_model(w=None):
    """One 3×3 Conv (padding 1) with weight ``w`` (default 6×4×3×3 ones)."""
    from onnx import helper, numpy_helper

    w = np.ones((6, 4, 3, 3), np.float32) if w is None else w
    return hand_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])],
                      [numpy_helper.from_array(w, "w")])
