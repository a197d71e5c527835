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


def _num(shape, node, key):
    if not all(ops.is_int(v) for v in shape):
        raise CnnGraphError(f"{node}: the shape of {key}, {ops.fmt_shape(shape)}, must be numbers to make weights "
                            "(substitute the symbols first)")
    return tuple(int(v) for v in shape)


def param_shapes(g) -> dict:
    """``{key: (shape, role)}`` for every parameter and buffer, in topological order.

    ``role`` is ``"param"`` or ``"buffer"``; both come from the registry's weight specs
    (:attr:`cnngraph.ir.ops.Op.weights`).
    """
    return {key: (shape, w.role) for key, shape, w in _specs(as_graph(g))}


def _specs(g):
    """``(key, numeric shape, Weight)`` of every weight of ``g``, in topological order."""
    for n in topo_order(g):
        d = g.nodes[n]
        ins = [g.nodes[i]["shape"] for i in d["inputs"]]
        for w in ops.get(d["op"]).weight_specs(d["attrs"], ins):
            yield f"{n}.{w.name}", _num(w.shape, n, f"{n}.{w.name}"), w


def _draw(rng, init: str, shape: tuple, random_bn: bool, rows: int | None = None):
    """One weight drawn by its registry ``init`` kind (seeded; torchvision's ResNet scheme).

    ``rows``: only the next ``rows`` entries along the first axis (the scales still follow
    the whole ``shape``): drawing a weight in consecutive row blocks gives the same numbers
    as drawing it at once.
    """
    size = shape if rows is None else (rows,) + tuple(shape[1:])
    if init == "he":  # N(0, 2/fan_out), fan_out = C_out·kh·kw
        return rng.normal(0.0, np.sqrt(2.0 / (shape[0] * int(np.prod(shape[2:])))), size)
    if init == "fc":
        return rng.normal(0.0, 0.01 if not random_bn else np.sqrt(1.0 / shape[1]), size)
    if init in ("bias", "mean"):
        return rng.normal(0.0, 0.1, size) if random_bn else np.zeros(size)
    if init in ("scale", "var"):
        return rng.uniform(0.5, 1.5, size) if random_bn else np.ones(size)
    if init == "prelu":  # PyTorch's nn.PReLU starts every slope at 0.25
        return rng.uniform(0.0, 0.5, size) if random_bn else np.full(size, 0.25)
    raise CnnGraphError(f"unknown weight initialisation {init!r}")


DRAW_BLOCK = 1 << 20  # elements drawn (in float64) at a time


def _drawn(rng, init: str, shape: tuple, random_bn: bool, dtype) -> np.ndarray:
    """One weight as a C-contiguous ``dtype`` array, drawn in row blocks of at most about
    :data:`DRAW_BLOCK` elements: the float64 draw of a large weight (VGG-16's 25088×4096
    classifier: 822 MB) never exists whole, only one block of it at a time.

    >>> w = _drawn(np.random.default_rng(0), "he", (300, 64, 3, 3), False, np.float32)
    >>> w.dtype, np.array_equal(w, _draw(np.random.default_rng(0), "he", (300, 64, 3, 3), False).astype(np.float32))
    (dtype('float32'), True)
    """
    if len(shape) == 0:
        return np.ascontiguousarray(_draw(rng, init, shape, random_bn), dtype=dtype)
    out = np.empty(shape, dtype)
    step = max(1, DRAW_BLOCK // max(1, int(np.prod(shape[1:]))))
    for i in range(0, shape[0], step):
        n = min(step, shape[0] - i)
        out[i:i + n] = _draw(rng, init, shape, random_bn, rows=n)
    return out


def init(g, seed: int = 0, dtype=np.float32, random_bn: bool = False) -> dict:
    """Seeded He (Kaiming) initialisation, as torchvision's ResNets: conv weights
    N(0, 2/fan_out), linear N(0, 0.01), biases 0, batch norm γ=1, β=0, mean 0, var 1.

    ``random_bn=True`` draws non-trivial batch norm statistics, so tests exercise folding.
    Each weight is drawn in blocks of rows straight into its ``dtype`` array (no whole
    float64 copy of a weight ever exists).
    """
    g = as_graph(g)
    rng = np.random.default_rng(seed)
    return {key: _drawn(rng, w.init, shape, random_bn, dtype) for key, shape, w in _specs(g)}


def check(g, weights: dict, strict: bool = True) -> None:
    """Raise a clear error on a wrongly shaped tensor (:func:`cnngraph.ir.graph.check_weights`:
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


def load(path, g=None, dtype=np.float32, allow_nonfinite: bool = False) -> dict:
    """Weights from ``.npz`` or ``.safetensors`` (checked against ``g`` when given).

    Headers are read first (:mod:`cnngraph.arrays`): names, dtypes and shapes are checked
    against ``g`` (without ``g``: the total against the memory available) before any data is
    read. float16/64 tensors are converted to float32 (a ``ConversionWarning`` says so);
    integer, boolean and complex tensors and non-finite values (unless ``allow_nonfinite``)
    are errors naming the tensor.
    """
    from cnngraph.io import arrays

    p = Path(path)
    if p.suffix.lower() not in (".npz", ".safetensors"):
        raise CnnGraphError(f"weights file must be .npz or .safetensors, got {p.name}")
    heads = {k: h for k, h in arrays.headers(p, "weights file").items() if not k.endswith(IGNORED_SUFFIXES)}
    arrays.check_dtypes(heads, str(p))
    if g is not None:
        # Zero-stride stand-ins carry each header's shape at no memory cost.
        check(g, {k: np.lib.stride_tricks.as_strided(np.zeros((), np.float32), h.shape, (0,) * len(h.shape))
                  for k, h in heads.items()})
    else:
        need, free = sum(h.size for h in heads.values()) * 4, arrays.memory_available()
        if free is not None and need > free:
            raise CnnGraphError(f"{p}: its tensors need {need / 2**20:,.0f} MiB as float32; "
                                f"{free / 2**20:,.0f} MiB of memory are available")
    ws = arrays.read(p, heads, allow_nonfinite)
    return ws if dtype == np.float32 else {k: v.astype(dtype) for k, v in ws.items()}


def save(weights: dict, path) -> None:
    from cnngraph.io.files import atomic_open, atomic_path

    p = Path(path)
    if p.suffix == ".npz":
        with atomic_open(p) as f:
            np.savez(f, **weights)
    elif p.suffix == ".safetensors":
        from safetensors.numpy import save_file

        with atomic_path(p) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, tmp)
    else:
        raise CnnGraphError(f"weights file must be .npz or .safetensors, got {p.name}")


def count(weights: dict, g=None) -> int:
    """Number of parameter elements (buffers excluded when ``g`` is given)."""
    if g is None:
        return int(sum(np.size(v) for k, v in weights.items() if not k.endswith(("running_mean", "running_var"))))
    shapes = param_shapes(g)
    return int(sum(np.size(weights[k]) for k, (_, role) in shapes.items() if role == "param"))
