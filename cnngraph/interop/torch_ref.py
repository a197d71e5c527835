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
    d = tuple(a.get("dilation", (1, 1)))
    if _symmetric(p):
        return F.max_pool2d(x, k, s, (p[0], p[1]), d, ceil_mode=bool(a.get("ceil_mode", False)))
    # Asymmetric padding: pad with -inf ourselves; the extra end padding reproduces ceil mode
    # and the crop keeps exactly the windows the graph's shape rule counts.
    H, W = x.shape[2], x.shape[3]
    eh = _pool_pad_extra(H, k[0], s[0], d[0], p[0], p[2], out_hw[0])
    ew = _pool_pad_extra(W, k[1], s[1], d[1], p[1], p[3], out_hw[1])
    x = F.pad(x, (p[1], p[3] + ew, p[0], p[2] + eh), value=float("-inf"))
    return F.max_pool2d(x, k, s, 0, d)[:, :, :out_hw[0], :out_hw[1]]


def _avg_pool(x, a, out_hw):
    k, s, p = a["kernel"], a["stride"], a["padding"]
    include = bool(a.get("count_include_pad", True))
    if _symmetric(p):
        return F.avg_pool2d(x, k, s, (p[0], p[1]), bool(a.get("ceil_mode", False)), include)
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


def _channel_shuffle(x, groups):
    n, c = x.shape[0], x.shape[1]
    rest = x.shape[2:]
    return x.reshape(n, groups, c // groups, *rest).transpose(1, 2).reshape(n, c, *rest)


def _mul(x, s):
    while s.dim() < x.dim():
        s = s.unsqueeze(-1)
    return x * s


UNARY = {
    "relu": F.relu, "relu6": F.relu6, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "silu": F.silu,
    "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "gelu": F.gelu,
    "softmax": lambda x: torch.softmax(x, dim=1),
    "dropout": lambda x: x, "identity": lambda x: x, "flatten": lambda x: torch.flatten(x, 1),
}


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
            if d["op"] != "input" and d["op"] not in UNARY and d["op"] not in _KNOWN:
                raise CnnGraphError(f"{n}: op {d['op']!r} has no PyTorch reference yet")
            a = dict(d["attrs"])
            for key in ("kernel", "stride", "padding", "dilation", "output_size"):
                if key in a:
                    a[key] = _ints(n, key, a[key])
            for key in ("groups", "out_channels", "out_features", "start", "stop", "num_groups", "size", "before", "after"):
                if key in a:
                    a[key] = _ints(n, key, [a[key]])[0]
            shape = g.nodes[n]["shape"]
            out_hw = _ints(n, "output size", shape[1:3]) if d["op"] in ("maxpool2d", "avgpool2d") else None
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
            if op == "input":
                continue
            x = vals[ins[0]]
            if op in UNARY:
                y = UNARY[op](x)
            elif op == "conv2d":
                y = _conv(x, a, self._w(n, "weight"), self._w(n, "bias"))
            elif op == "maxpool2d":
                y = _max_pool(x, a, out_hw)
            elif op == "avgpool2d":
                y = _avg_pool(x, a, out_hw)
            elif op == "adaptive_avgpool2d":
                y = F.adaptive_avg_pool2d(x, a["output_size"])
            elif op == "adaptive_maxpool2d":
                y = F.adaptive_max_pool2d(x, a["output_size"])
            elif op == "linear":
                y = F.linear(x, self._w(n, "weight"), self._w(n, "bias"))
            elif op == "batchnorm":
                y = F.batch_norm(x, self._w(n, "running_mean"), self._w(n, "running_var"), self._w(n, "weight"),
                                 self._w(n, "bias"), False, 0.0, a.get("eps", 1e-5))
            elif op == "groupnorm":
                y = F.group_norm(x, a["num_groups"], self._w(n, "weight"), self._w(n, "bias"), a.get("eps", 1e-5))
            elif op == "instancenorm":
                y = F.instance_norm(x, weight=self._w(n, "weight"), bias=self._w(n, "bias"), eps=a.get("eps", 1e-5))
            elif op == "layernorm":
                y = F.layer_norm(x, tuple(x.shape[1:]), self._w(n, "weight"), self._w(n, "bias"), a.get("eps", 1e-5))
            elif op == "lrn":
                y = F.local_response_norm(x, a["size"], a.get("alpha", 1e-4), a.get("beta", 0.75), a.get("k", 1.0))
            elif op == "add":
                y = vals[ins[0]]
                for i in ins[1:]:
                    y = y + vals[i]
            elif op == "mul":
                y = _mul(x, vals[ins[1]])
            elif op == "concat":
                y = torch.cat([vals[i] for i in ins], dim=1)
            elif op == "channel_shuffle":
                y = _channel_shuffle(x, a["groups"])
            elif op == "slice":
                y = x[:, a["start"]:a["stop"]]
            elif op == "pad2d":
                t, l, b, r = a["padding"]
                y = F.pad(x, (l, r, t, b))
            elif op == "rbf":  # squared Euclidean distance to each prototype
                y = ((x.unsqueeze(1) - self._w(n, "weight").unsqueeze(0)) ** 2).sum(-1)
            elif op == "scale":
                y = x * a["factor"]
            elif op == "pad_channels":
                sh, sw = a["stride"]
                y = F.pad(x[:, :, ::sh, ::sw], (0, 0, 0, 0, a["before"], a["after"]))
            else:  # pragma: no cover - rejected in __init__
                raise AssertionError(op)
            vals[n] = y
        outs = tuple(vals[o] for o in self._outputs)
        return outs[0] if len(outs) == 1 else outs


_KNOWN = {"conv2d", "maxpool2d", "avgpool2d", "adaptive_avgpool2d", "adaptive_maxpool2d", "linear", "batchnorm",
          "groupnorm", "instancenorm", "layernorm", "lrn", "add", "mul", "concat", "channel_shuffle", "slice",
          "scale", "pad_channels", "pad2d", "rbf"}


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
