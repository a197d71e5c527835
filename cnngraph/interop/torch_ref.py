"""The PyTorch reference: a graph computed with PyTorch's own ops, for cross-checks.

:func:`to_torch` turns a graph and its weights (torchvision state_dict names) into an
``torch.nn.Module`` in eval mode whose ``state_dict()`` has the same names, and whose forward
calls ``torch.nn.functional`` with each node's attributes (NCHW, batch first). Backends and
the ONNX export are checked against it.

torch is optional: this module imports it, ``import cnngraph`` does not.

>>> import torch
>>> from cnngraph import zoo
>>> from cnngraph.compiler import weights
>>> g = zoo.build("lenet5")
>>> m = to_torch(g, weights.init(g, seed=0))
>>> m(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
>>> sorted(m.state_dict())[:2]
['conv1.bias', 'conv1.weight']
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.graph import as_graph, outputs, topo_order
from cnngraph.compiler.weights import check as check_weights


def _ints(node, what, values):
    out = []
    for v in values:
        if not ops.is_int(v):
            raise CnnGraphError(f"{node}: {what} must be a number to run the graph, got {v} (substitute the symbols first)")
        out.append(int(v))
    return tuple(out)


def _symmetric(pads):
    t, l, b, r = pads
    return t == b and l == r


def _pool_pad_extra(L, k, s, d, p0, p1, out):
    """Extra padding at the end so a floor-mode window covers ``out`` outputs (ceil mode)."""
    span = d * (k - 1) + 1
    need = (out - 1) * s + span - (L + p0 + p1)
    return max(0, need)


def _max_pool(x, a, out_hw):
    k, s, p = a["kernel"], a["stride"], a["padding"]
    d = tuple(a["dilation"])
    if _symmetric(p):
        return F.max_pool2d(x, k, s, (p[0], p[1]), d, ceil_mode=bool(a["ceil_mode"]))
    # Asymmetric padding: pad with -inf ourselves; the extra end padding reproduces ceil mode
    # and the crop keeps exactly the windows the graph's shape rule counts.
    H, W = x.shape[2], x.shape[3]
    eh = _pool_pad_extra(H, k[0], s[0], d[0], p[0], p[2], out_hw[0])
    ew = _pool_pad_extra(W, k[1], s[1], d[1], p[1], p[3], out_hw[1])
    x = F.pad(x, (p[1], p[3] + ew, p[0], p[2] + eh), value=float("-inf"))
    return F.max_pool2d(x, k, s, 0, d)[:, :, :out_hw[0], :out_hw[1]]


def _avg_pool(x, a, out_hw):
    k, s, p = a["kernel"], a["stride"], a["padding"]
    include = bool(a["count_include_pad"])
    if _symmetric(p):
        return F.avg_pool2d(x, k, s, (p[0], p[1]), bool(a["ceil_mode"]), include)
    # Asymmetric padding: window sums divided by the number of counted positions, which are
    # the padded region (count_include_pad) or the input only; ceil-mode overhang never counts.
    H, W = x.shape[2], x.shape[3]
    eh = _pool_pad_extra(H, k[0], s[0], 1, p[0], p[2], out_hw[0])
    ew = _pool_pad_extra(W, k[1], s[1], 1, p[1], p[3], out_hw[1])
    ones = torch.ones((1, 1, H, W), dtype=x.dtype)
    if include:
        mask = F.pad(F.pad(ones, (p[1], p[3], p[0], p[2]), value=1.0), (0, ew, 0, eh))
    else:
        mask = F.pad(ones, (p[1], p[3] + ew, p[0], p[2] + eh))
    xs = F.pad(x, (p[1], p[3] + ew, p[0], p[2] + eh))
    total = F.avg_pool2d(xs, k, s, 0, divisor_override=1)
    count = F.avg_pool2d(mask, k, s, 0, divisor_override=1)
    return (total / count)[:, :, :out_hw[0], :out_hw[1]]


def _conv(x, a, w, b):
    p = a["padding"]
    if not _symmetric(p):
        x = F.pad(x, (p[1], p[3], p[0], p[2]))
        p = (0, 0, 0, 0)
    return F.conv2d(x, w, b, a["stride"], (p[0], p[1]), a["dilation"], a["groups"])


def _conv_transpose(x, a, w, b, out_hw):
    p, op = a["padding"], a["output_padding"]
    if _symmetric(p):
        return F.conv_transpose2d(x, w, b, a["stride"], (p[0], p[1]), tuple(op), a["groups"], a["dilation"])
    # Asymmetric padding (ONNX pads): the uncropped output, zeros where output_padding reaches
    # past it, cropped by the padding; then the bias.
    y = F.conv_transpose2d(x, w, None, a["stride"], 0, 0, a["groups"], a["dilation"])
    (ho, wo), (fh, fw) = out_hw, y.shape[2:]
    y = F.pad(y, (0, max(0, p[1] + wo - fw), 0, max(0, p[0] + ho - fh)))[:, :, p[0]:p[0] + ho, p[1]:p[1] + wo]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def _channel_shuffle(x, groups):
    n, c = x.shape[0], x.shape[1]
    rest = x.shape[2:]
    return x.reshape(n, groups, c // groups, *rest).transpose(1, 2).reshape(n, c, *rest)


def _depth_to_space(x, r, mode):
    if mode == "CRD":
        return F.pixel_shuffle(x, r)
    n, c, h, w = x.shape
    return x.reshape(n, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (r * r), h * r, w * r)


def _space_to_depth(x, r, mode):
    if mode == "CRD":
        return F.pixel_unshuffle(x, r)
    n, c, h, w = x.shape  # TResNet's SpaceToDepth
    return x.reshape(n, c, h // r, r, w // r, r).permute(0, 3, 5, 1, 2, 4).reshape(n, c * r * r, h // r, w // r)


def _mul(x, s):
    while s.dim() < x.dim():
        s = s.unsqueeze(-1)
    return x * s


def _add(xs):
    y = xs[0]
    for t in xs[1:]:
        y = y + t
    return y


def _pad_channels(x, a):
    sh, sw = a["stride"]
    return F.pad(x[:, :, ::sh, ::sw], (0, 0, 0, 0, a["before"], a["after"]))


# The reference interpreter's table (as torch.fx's Interpreter.run_node): op -> fn(w, xs, a, out_hw),
# ``w(role)`` the node's weight tensor (None when absent), ``xs`` its input tensors. Activations
# come from the registry (their ``torch`` function); every other op is one line here.
TABLE = {
    "conv2d": lambda w, xs, a, hw: _conv(xs[0], a, w("weight"), w("bias")),
    "conv_transpose2d": lambda w, xs, a, hw: _conv_transpose(xs[0], a, w("weight"), w("bias"), hw),
    "maxpool2d": lambda w, xs, a, hw: _max_pool(xs[0], a, hw),
    "avgpool2d": lambda w, xs, a, hw: _avg_pool(xs[0], a, hw),
    "adaptive_avgpool2d": lambda w, xs, a, hw: F.adaptive_avg_pool2d(xs[0], a["output_size"]),
    "adaptive_maxpool2d": lambda w, xs, a, hw: F.adaptive_max_pool2d(xs[0], a["output_size"]),
    "linear": lambda w, xs, a, hw: F.linear(xs[0], w("weight"), w("bias")),
    "batchnorm": lambda w, xs, a, hw: F.batch_norm(xs[0], w("running_mean"), w("running_var"), w("weight"), w("bias"),
                                                   False, 0.0, a["eps"]),
    "groupnorm": lambda w, xs, a, hw: F.group_norm(xs[0], a["num_groups"], w("weight"), w("bias"), a["eps"]),
    "instancenorm": lambda w, xs, a, hw: F.instance_norm(xs[0], weight=w("weight"), bias=w("bias"), eps=a["eps"]),
    "layernorm": lambda w, xs, a, hw: F.layer_norm(xs[0], tuple(xs[0].shape[1:]), w("weight"), w("bias"), a["eps"]),
    "lrn": lambda w, xs, a, hw: F.local_response_norm(xs[0], a["size"], a["alpha"], a["beta"], a["k"]),
    "softmax": lambda w, xs, a, hw: torch.softmax(xs[0], dim=1),
    "log_softmax": lambda w, xs, a, hw: torch.log_softmax(xs[0], dim=1),
    "dropout": lambda w, xs, a, hw: xs[0],
    "identity": lambda w, xs, a, hw: xs[0],
    "flatten": lambda w, xs, a, hw: torch.flatten(xs[0], 1),
    "add": lambda w, xs, a, hw: _add(xs),
    "mul": lambda w, xs, a, hw: _mul(xs[0], xs[1]),
    "concat": lambda w, xs, a, hw: torch.cat(xs, dim=1),
    "channel_shuffle": lambda w, xs, a, hw: _channel_shuffle(xs[0], a["groups"]),
    "slice": lambda w, xs, a, hw: xs[0][:, a["start"]:a["stop"]],
    "depth_to_space": lambda w, xs, a, hw: _depth_to_space(xs[0], int(a["block"]), a["mode"]),
    "space_to_depth": lambda w, xs, a, hw: _space_to_depth(xs[0], int(a["block"]), a["mode"]),
    "pad2d": lambda w, xs, a, hw: F.pad(xs[0], (a["padding"][1], a["padding"][3], a["padding"][0], a["padding"][2]),
                                        mode=a.get("mode", "constant")),
    # LeNet-5's RBF units: squared Euclidean distance to each prototype
    "rbf": lambda w, xs, a, hw: ((xs[0].unsqueeze(1) - w("weight").unsqueeze(0)) ** 2).sum(-1),
    "scale": lambda w, xs, a, hw: xs[0] * a["factor"] + a["shift"] if a["shift"] else xs[0] * a["factor"],
    "clip": lambda w, xs, a, hw: torch.clamp(xs[0], a["low"], a["high"]),
    "pad_channels": lambda w, xs, a, hw: _pad_channels(xs[0], a),
    # over the channels: channels last, F.layer_norm, back (ConvNeXt's LayerNorm2d)
    "layernorm2d": lambda w, xs, a, hw: F.layer_norm(xs[0].permute(0, 2, 3, 1), (xs[0].shape[1],), w("weight"),
                                                     w("bias"), a["eps"]).permute(0, 3, 1, 2),
    "layer_scale": lambda w, xs, a, hw: xs[0] * w(a["field"]).reshape(1, -1, 1, 1),
    "resize": lambda w, xs, a, hw: _resize(xs, a),
    "radix_softmax": lambda w, xs, a, hw: _radix_softmax(xs[0], a["radix"], a["groups"]),
    "blurpool2d": lambda w, xs, a, hw: _blurpool(xs[0], a["kernel"], a["stride"]),
    # ECA: nn.Conv1d(1, 1, k, padding=p, bias=False) over the N×1×C view of the pooled channels
    "channel_conv": lambda w, xs, a, hw: F.conv1d(xs[0].unsqueeze(1), w("weight"), padding=a["pad"]).squeeze(1),
}


def _blurpool(x, kernel, stride):
    """timm's BlurPool2d after its padding: a depthwise conv with the fixed binomial filter."""
    f = torch.as_tensor(ops.blur_filter(*kernel), dtype=x.dtype)
    return F.conv2d(x, f.expand(x.shape[1], 1, *kernel), stride=tuple(stride), groups=x.shape[1])


def _radix_softmax(x, radix, groups):
    """timm's RadixSoftmax (ResNeSt) on any N×C×… tensor: view as (groups, radix, rest),
    softmax over radix, transpose to (radix, groups, rest)."""
    n = x.shape[0]
    return torch.softmax(x.reshape(n, groups, radix, -1), dim=2).transpose(1, 2).reshape(x.shape)


def _resize(xs, a):
    """F.interpolate with the user's scale factor when there was one (PyTorch maps
    coordinates with it), else with the output size (or the second input's H×W)."""
    x = xs[0]
    corners = bool(a.get("align_corners")) if a["mode"] == "bilinear" else None
    if len(xs) == 2:
        return F.interpolate(x, size=tuple(xs[1].shape[2:]), mode=a["mode"], align_corners=corners)
    if a.get("output_size") is not None:
        return F.interpolate(x, size=tuple(int(v) for v in a["output_size"]), mode=a["mode"], align_corners=corners)
    return F.interpolate(x, scale_factor=tuple(float(s) for s in a["scale"]), mode=a["mode"], align_corners=corners)


def _activation(act):
    return lambda w, xs, a, hw: act.torch(F, xs[0], {**a, "weight": w("weight")})


TABLE.update({name: _activation(op.activation) for name, op in ops.ACTIVATIONS.items()})


class TorchGraph(torch.nn.Module):
    """A graph as a PyTorch module: one positional input per graph input, in order.

    Parameters live in sub-modules named after the nodes, so ``state_dict()`` keys are the
    graph's weight names (``layer1.0.conv1.weight``). Returns a tensor, or a tuple when the
    graph has several outputs.
    """

    def __init__(self, g, weights: dict, dtype=torch.float32):
        super().__init__()
        check_weights(g, weights, strict=False)
        self._graph_name = g.graph.get("name", "")
        self._order = topo_order(g)
        self._inputs = list(g.graph["inputs"])
        self._outputs = outputs(g)
        self._nodes = {}
        for n in self._order:
            d = g.nodes[n]
            if d["op"] != "input" and d["op"] not in TABLE:
                raise CnnGraphError(f"{n}: op {d['op']!r} has no PyTorch reference yet")
            a = dict(d["attrs"])
            for key in ("kernel", "stride", "padding", "dilation", "output_size", "output_padding"):
                if key in a:
                    a[key] = _ints(n, key, a[key])
            for key in ("groups", "out_channels", "out_features", "start", "stop", "num_groups", "size", "before", "after"):
                if key in a:
                    a[key] = _ints(n, key, [a[key]])[0]
            shape = g.nodes[n]["shape"]
            out_hw = _ints(n, "output size", shape[1:3]) if ops.get(d["op"]).window else None
            self._nodes[n] = (d["op"], a, list(d["inputs"]), out_hw)
        for key, value in weights.items():
            node, field = key.rsplit(".", 1)
            if node not in self._nodes:
                continue
            mod = self
            for part in node.split("."):
                if part not in mod._modules:
                    try:
                        mod.add_module(part, torch.nn.Module())
                    except (KeyError, TypeError) as e:
                        raise CnnGraphError(f"{node}: cannot hold weights under this name in PyTorch ({e})") from None
                mod = mod._modules[part]
            t = torch.tensor(np.asarray(value), dtype=dtype)
            if field in ("running_mean", "running_var"):
                mod.register_buffer(field, t)
            else:
                mod.register_parameter(field, torch.nn.Parameter(t, requires_grad=False))
        self.eval()

    def _w(self, node, field):
        mod = self
        for part in node.split("."):
            mod = mod._modules.get(part) if mod is not None else None
        return getattr(mod, field, None) if mod is not None else None

    def forward(self, *xs):
        if len(xs) != len(self._inputs):
            raise CnnGraphError(f"{self._graph_name}: expected {len(self._inputs)} input tensors, got {len(xs)}")
        vals = dict(zip(self._inputs, xs))
        for n in self._order:
            op, a, ins, out_hw = self._nodes[n]
            if op != "input":
                vals[n] = TABLE[op](lambda role, n=n: self._w(n, role), [vals[i] for i in ins], a, out_hw)
        outs = tuple(vals[o] for o in self._outputs)
        return outs[0] if len(outs) == 1 else outs


def to_torch(g, weights: dict, dtype=torch.float32) -> TorchGraph:
    """The graph as an eval-mode ``torch.nn.Module`` computing with ``torch.nn.functional``.

    ``weights`` maps state_dict names to arrays (:func:`cnngraph.compiler.weights.init` makes some);
    ``dtype=torch.float64`` gives a tighter reference.
    """
    g = as_graph(g)
    return TorchGraph(g, weights, dtype)


def run(g, weights: dict, *inputs, dtype=torch.float32):
    """Run the graph on NumPy inputs (batch first) and return NumPy output(s)."""
    m = to_torch(g, weights, dtype)
    with torch.no_grad():
        out = m(*[torch.as_tensor(np.asarray(x)).to(dtype) for x in inputs])
    if isinstance(out, tuple):
        return tuple(o.numpy() for o in out)
    return out.numpy()
