"""Weights: a flat dict of torchvision state_dict names to NumPy arrays.

``{node}.weight`` / ``{node}.bias`` for conv2d (C_out, C_in/G, kh, kw) and linear
(out, in); batch norm adds ``{node}.running_mean`` and ``{node}.running_var``. Zoo models
use torchvision's module names, so a torchvision state_dict saved as ``.npz`` or
``.safetensors`` loads unchanged.

>>> from cnngraph import zoo
>>> ws = init(zoo.build("lenet5"), seed=0)
>>> ws["conv1.weight"].shape, ws["fc2.bias"].shape
((20, 1, 5, 5), (10,))
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.graph import as_graph, check_weights, topo_order

# Keys that torchvision state_dicts carry but inference does not need.
IGNORED_SUFFIXES = (".num_batches_tracked",)


def param_shapes(g) -> dict:
    """``{key: (shape, role)}`` for every parameter and buffer, in topological order.

    ``role`` is ``"param"`` or ``"buffer"``; what each op holds is its registry entry's
    ``tensors``.
    """
    g = as_graph(g)
    out = {}
    for n in topo_order(g):
        d = g.nodes[n]
        ins = [g.nodes[i]["shape"] for i in d["inputs"]]
        for f, (shape, role) in ops.get(d["op"]).tensors(d["attrs"], ins).items():
            if not all(ops.is_int(v) for v in shape):
                raise CnnGraphError(f"{n}: the shape of {n}.{f}, {ops.fmt_shape(shape)}, must be numbers to make "
                                    "weights (substitute the symbols first)")
            out[f"{n}.{f}"] = (tuple(int(v) for v in shape), role)
    return out


def init(g, seed: int = 0, dtype=np.float32, random_bn: bool = False) -> dict:
    """Seeded He (Kaiming) initialisation, as torchvision's ResNets: conv weights
    N(0, 2/fan_out), linear N(0, 0.01), biases 0, batch norm γ=1, β=0, mean 0, var 1.

    ``random_bn=True`` draws non-trivial batch norm statistics, so tests exercise folding.
    """
    g = as_graph(g)
    rng = np.random.default_rng(seed)
    ws = {}
    for key, (shape, role) in param_shapes(g).items():
        node, field = key.rsplit(".", 1)
        op = g.nodes[node]["op"]
        if op == "conv2d" and field == "weight":
            fan_out = shape[0] * shape[2] * shape[3]
            v = rng.normal(0.0, np.sqrt(2.0 / fan_out), shape)
        elif op == "linear" and field == "weight":
            v = rng.normal(0.0, 0.01 if not random_bn else np.sqrt(1.0 / shape[1]), shape)
        elif field == "bias":
            v = rng.normal(0.0, 0.1, shape) if random_bn else np.zeros(shape)
        elif field == "weight":  # norm scale
            v = rng.uniform(0.5, 1.5, shape) if random_bn else np.ones(shape)
        elif field == "running_mean":
            v = rng.normal(0.0, 0.1, shape) if random_bn else np.zeros(shape)
        elif field == "running_var":
            v = rng.uniform(0.5, 1.5, shape) if random_bn else np.ones(shape)
        else:  # pragma: no cover - param_shapes only yields the fields above
            raise AssertionError(key)
        ws[key] = np.ascontiguousarray(v, dtype=dtype)
    return ws


def check(g, weights: dict, strict: bool = True) -> None:
    """Raise a clear error on a wrongly shaped tensor (:func:`cnngraph.graph.check_weights`:
    one line with the input size it fits), else listing missing and unexpected weights."""
    g = as_graph(g)
    have = {k: v for k, v in weights.items() if not k.endswith(IGNORED_SUFFIXES)}
    want = param_shapes(g)  # first: a graph with symbolic channels cannot have weights at all
    check_weights(g, have)
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want] if strict else []
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
        raise CnnGraphError(f"weights do not fit {g.graph.get('name', 'the graph')}: " + " | ".join(parts))


def load(path, g=None, dtype=np.float32) -> dict:
    """Weights from ``.npz`` or ``.safetensors`` (checked against ``g`` when given)."""
    p = Path(path)
    if not p.exists():
        raise CnnGraphError(f"no such weights file: {p}")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as f:
            ws = {k: f[k] for k in f.files}
    elif p.suffix == ".safetensors":
        from safetensors.numpy import load_file

        ws = load_file(str(p))
    else:
        raise CnnGraphError(f"weights file must be .npz or .safetensors, got {p.name}")
    ws = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in ws.items() if not k.endswith(IGNORED_SUFFIXES)}
    if g is not None:
        check(g, ws)
    return ws


def save(weights: dict, path) -> None:
    p = Path(path)
    if p.suffix == ".npz":
        np.savez(p, **weights)
    elif p.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(p))
    else:
        raise CnnGraphError(f"weights file must be .npz or .safetensors, got {p.name}")


def count(weights: dict, g=None) -> int:
    """Number of parameter elements (buffers excluded when ``g`` is given)."""
    if g is None:
        return int(sum(np.size(v) for k, v in weights.items() if not k.endswith(("running_mean", "running_var"))))
    shapes = param_shapes(g)
    return int(sum(np.size(weights[k]) for k, (_, role) in shapes.items() if role == "param"))
