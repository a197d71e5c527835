"""The Numba CPU backend against PyTorch, op by op and on every zoo model.

Relative error is ``max|a − b| / max|b|`` (b the reference), float32 on both sides.
PyTorch is an optional test extra: the tests that need it skip without it.
"""
import numpy as np
import pytest

from cnngraph import zoo
from cnngraph.compiler import compile
from cnngraph.dsl import (Net, adaptive_avgpool2d, adaptive_maxpool2d, add, avgpool2d, batchnorm, channel_shuffle,
                          channel_slice, concat, conv2d, flatten, gelu, groupnorm, hardsigmoid, hardswish,
                          instancenorm, layernorm, linear, lrn, maxpool2d, mul, relu, relu6, sigmoid, silu, softmax,
                          tanh, dropout, identity)
from cnngraph.errors import CnnGraphError
from cnngraph.weights import init

from cnngraph.backends.common import Executor, numpy_backend
from cnngraph.backends.numba_backend import executor, run as numba_run

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - torch is an optional extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (optional test extra)")
TOL = 1e-4


def rel_err(a, b) -> float:
    """max|a − b| / max|b|: the error measure of every comparison here."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# ---------------------------------------------------------------- a PyTorch reference interpreter
def torch_forward(g, weights, *xs):
    """Run graph ``g`` with ``torch.nn.functional``, node by node (the reference)."""
    w = {k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}
    vals = dict(zip(g.graph["inputs"], (torch.from_numpy(np.asarray(x, np.float32)) for x in xs)))
    from cnngraph.graph import outputs, topo_order

    for n in topo_order(g):
        d = g.nodes[n]
        op, a = d["op"], d["attrs"]
        if op == "input":
            continue
        ins = [vals[i] for i in d["inputs"]]
        x = ins[0]
        if op == "conv2d":
            pt, pl, pb, pr = a["padding"]
            if (pt, pl) != (pb, pr):
                x, pad = F.pad(x, (pl, pr, pt, pb)), (0, 0)
            else:
                pad = (pt, pl)
            y = F.conv2d(x, w[f"{n}.weight"], w.get(f"{n}.bias"), a["stride"], pad, a["dilation"], a["groups"])
        elif op == "maxpool2d":
            pt, pl, pb, pr = a["padding"]
            if (pt, pl) != (pb, pr):
                x, pad = F.pad(x, (pl, pr, pt, pb), value=-np.inf), (0, 0)
            else:
                pad = (pt, pl)
            y = F.max_pool2d(x, a["kernel"], a["stride"], pad, a.get("dilation", (1, 1)), a.get("ceil_mode", False))
        elif op == "avgpool2d":
            pt, pl, pb, pr = a["padding"]
            y = F.avg_pool2d(x, a["kernel"], a["stride"], (pt, pl), a.get("ceil_mode", False),
                             a.get("count_include_pad", True))
        elif op == "adaptive_avgpool2d":
            y = F.adaptive_avg_pool2d(x, a["output_size"])
        elif op == "adaptive_maxpool2d":
            y = F.adaptive_max_pool2d(x, a["output_size"])
        elif op == "flatten":
            y = torch.flatten(x, 1)
        elif op == "linear":
            y = F.linear(x, w[f"{n}.weight"], w.get(f"{n}.bias"))
        elif op in ("relu", "relu6", "sigmoid", "tanh", "silu", "hardswish", "hardsigmoid", "gelu"):
            y = getattr(F, op)(x) if op not in ("sigmoid", "tanh") else getattr(torch, op)(x)
        elif op == "softmax":
            y = F.softmax(x, dim=1)
        elif op == "batchnorm":
            y = F.batch_norm(x, w[f"{n}.running_mean"], w[f"{n}.running_var"], w.get(f"{n}.weight"),
                             w.get(f"{n}.bias"), False, 0.0, a.get("eps", 1e-5))
        elif op == "layernorm":
            y = F.layer_norm(x, x.shape[1:], w.get(f"{n}.weight"), w.get(f"{n}.bias"), a.get("eps", 1e-5))
        elif op == "groupnorm":
            y = F.group_norm(x, a["num_groups"], w.get(f"{n}.weight"), w.get(f"{n}.bias"), a.get("eps", 1e-5))
        elif op == "instancenorm":
            y = F.instance_norm(x, weight=w.get(f"{n}.weight"), bias=w.get(f"{n}.bias"), eps=a.get("eps", 1e-5))
        elif op == "lrn":
            y = F.local_response_norm(x, a["size"], a["alpha"], a["beta"], a["k"])
        elif op in ("dropout", "identity"):
            y = x
        elif op == "add":
            y = ins[0]
            for z in ins[1:]:
                y = y + z
        elif op == "mul":
            s = ins[1]
            if s.dim() == 2 and x.dim() == 4:
                s = s[:, :, None, None]
            y = x * s
        elif op == "concat":
            y = torch.cat(ins, dim=1)
        elif op == "channel_shuffle":
            N, C = x.shape[:2]
            gr = a["groups"]
            y = x.reshape(N, gr, C // gr, *x.shape[2:]).transpose(1, 2).reshape(x.shape)
        elif op == "slice":
            y = x[:, a["start"]:a["stop"]]
        else:  # pragma: no cover
            raise NotImplementedError(op)
        vals[n] = y
    return [vals[o].numpy() for o in outputs(g)]


def run_both(g, seed=0, batch=2, random_bn=True, **kw):
    ws = init(g, seed=seed, random_bn=random_bn)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((batch,) + tuple(int(s) for s in g.nodes[g.graph["inputs"][0]]["shape"])).astype(np.float32)
    ours = numba_run(compile(g, ws, **kw), x)
    with torch.no_grad():
        ref = torch_forward(g, ws, x)
    return ours, ref


# ---------------------------------------------------------------- single ops
def _net(c=8, h=9, w=11):
    net = Net("t")
    return net, net.input(c, h, w)


def _cases():
    def conv(**k):
        def f():
            net, x = _net(k.pop("cin", 8), 9, 11)
            conv2d(x, k.pop("cout", 12), **k)
            return net.graph
        return f

    def single(fn, c=8, h=9, w=11):
        def f():
            net, x = _net(c, h, w)
            fn(x)
            return net.graph
        return f

    return {
        "conv3x3": conv(kernel_size=3, padding=1),
        "conv1x1": conv(kernel_size=1, bias=False),
        "conv1x1_stride2": conv(kernel_size=1, stride=2),
        "conv_asym_pad_stride_dil": conv(kernel_size=(3, 5), stride=(2, 1), padding=(0, 1, 2, 3), dilation=(2, 1)),
        "conv_groups4": conv(cin=8, cout=16, kernel_size=3, padding=1, groups=4),
        "conv_groups2_wide": conv(cin=128, cout=128, kernel_size=3, padding=1, groups=2),
        "depthwise": conv(cin=8, cout=8, kernel_size=3, padding=1, stride=2, groups=8),
        "depthwise_mult2": conv(cin=8, cout=16, kernel_size=5, padding=2, groups=8),
        "maxpool_ceil_pad": single(lambda x: maxpool2d(x, 3, 2, padding=1, ceil_mode=True)),
        "maxpool_dilated": single(lambda x: maxpool2d(x, 2, 1, dilation=2)),
        "avgpool_ceil": single(lambda x: avgpool2d(x, 3, 2, padding=1, ceil_mode=True)),
        "avgpool_exclude_pad": single(lambda x: avgpool2d(x, 3, 2, padding=1, count_include_pad=False)),
        "adaptive_avg_3x4": single(lambda x: adaptive_avgpool2d(x, (3, 4))),
        "adaptive_max_4x3": single(lambda x: adaptive_maxpool2d(x, (4, 3))),
        "softmax_channels": single(softmax),
        "batchnorm_alone": single(lambda x: relu(batchnorm(x))),
        "layernorm": single(layernorm),
        "groupnorm": single(lambda x: groupnorm(x, 4)),
        "instancenorm_affine": single(lambda x: instancenorm(x, affine=True)),
        "lrn": single(lambda x: lrn(x, size=5, alpha=1e-2, beta=0.75, k=2.0)),
        "shuffle_slice_concat": single(lambda x: concat(channel_slice(channel_shuffle(x, 2), 0, 3),
                                                        channel_slice(x, 5, 8), x)),
        "flatten_linear_bn_softmax": single(lambda x: softmax(batchnorm(linear(flatten(x), 7)))),
        "se_mul": single(lambda x: mul(x, sigmoid(conv2d(adaptive_avgpool2d(x, 1), 8, 1)))),
        "add3_dropout_identity": single(lambda x: add(x, dropout(relu(x, inplace=False)), identity(x))),
        **{f"act_{name}": single(lambda x, a=a: a(conv2d(x, 8, 1)))
           for name, a in (("relu", relu), ("relu6", relu6), ("tanh", tanh), ("sigmoid", sigmoid), ("silu", silu),
                           ("hardswish", hardswish), ("hardsigmoid", hardsigmoid), ("gelu", gelu))},
    }


@needs_torch
@pytest.mark.parametrize("case", sorted(_cases()))
def test_op_matches_torch(case):
    g = _cases()[case]()
    (ours,), (ref,) = run_both(g, batch=3)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) <= TOL, case


@needs_torch
def test_generic_numpy_kernels_match_torch():
    """The xp-generic kernels (the fallback of every backend) on the same cases."""
    for case, make in sorted(_cases().items()):
        g = make()
        ws = init(g, seed=3, random_bn=True)
        x = np.random.default_rng(4).standard_normal((2,) + g.nodes["input"]["shape"]).astype(np.float32)
        (ours,) = Executor(compile(g, ws), numpy_backend()).run(x)
        with torch.no_grad():
            (ref,) = torch_forward(g, ws, x)
        assert rel_err(ours, ref) <= TOL, case


# ---------------------------------------------------------------- every zoo model
SIZES = (32, 64, 96, 128, 160, 224, 299)


def small_input(name):
    """The smallest square input (of SIZES) every layer of ``name`` accepts exactly:
    32×32 for CIFAR-style nets, 63×63 for AlexNet, 64×64 for most ImageNet nets."""
    info = zoo.info(name)
    c = info.input[0]
    if len(info.input) != 3:
        return info.input
    for s in ((info.input[1],) if info.input[1] <= 32 else ()) + ((63,) if name == "alexnet" else ()) + SIZES:
        try:
            g = zoo.build(name, input=(c, s, s))
        except CnnGraphError:
            continue
        if all(d["shape"][-1] >= 1 for _, d in g.nodes(data=True)):
            return (c, s, s)
    return info.input


@needs_torch
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_matches_torch(name):
    g = zoo.build(name, input=small_input(name))
    ours, ref = run_both(g, seed=7, batch=2)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        assert rel_err(a, b) <= TOL, name
