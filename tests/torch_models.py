"""Checks shared by the PyTorch model tests (torchvision, timm): a real nn.Module against
cnngraph through from_torch and through torch.onnx.export + ONNX import.

Every check compares with a value that could fail: parameters with sum(p.numel()) (or the
ONNX file's own tensors), conv+linear multiply-adds with forward-hook counts, outputs with
PyTorch's and ONNX Runtime's, symbolic totals with the numeric tables."""
import io
import warnings

import numpy as np
import sympy
import torch
import torch.nn as nn

from cnngraph import analyze
from cnngraph.compiler import compile
from cnngraph.backends.numba_backend import run as numba_run
from cnngraph.ir.symbols import H, W
from cnngraph.interop.torch_import import from_torch

MATMUL_KINDS = ("conv", "linear")


def hook_counts(model, x):
    """Parameters, multiply-adds per sample of every Conv2d, Conv1d (ECA's, along the
    channels), ConvTranspose2d and Linear call (by forward hooks) and the raw output, for a
    torch or NumPy input batch. A transposed convolution multiplies every input pixel by every
    tap (fvcore's and ptflops' count)."""
    macs = [0]

    def conv(m, i, o):  # Conv2d, Conv1d
        macs[0] += o.numel() // o.shape[0] * (m.in_channels // m.groups) * int(np.prod(m.kernel_size))

    def conv_t(m, i, o):
        x = i[0]
        macs[0] += x.numel() // x.shape[0] * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, i, o):
        macs[0] += o.numel() // o.shape[0] * m.in_features

    kinds = ((nn.Conv2d, conv), (nn.Conv1d, conv), (nn.ConvTranspose2d, conv_t), (nn.Linear, linear))
    hooks = [m.register_forward_hook(fn) for m in model.modules() for cls, fn in kinds if isinstance(m, cls)]
    try:
        with torch.no_grad():
            y = model(x if isinstance(x, torch.Tensor) else torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()
    return sum(p.numel() for p in model.parameters()), macs[0], y


def outputs_of(y):
    if isinstance(y, torch.Tensor):
        return [y.numpy()]
    if isinstance(y, dict):
        return [v.numpy() for v in y.values()]
    return [v.numpy() for v in y]


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def matmul_macs(report):
    return sum(r.macs for r in report.rows if r.kind in MATMUL_KINDS)


def sample(size, batch=2, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


FIELDS = ("params", "buffers", "macs", "all_ops", "memory_bytes", "flops")


def check_tables(sym, num, s):
    """The symbolic table (H, W) evaluated at H = W = ``s`` equals the numeric table at s×s:
    the same rows, and every count of every row and of the total."""
    assert [r.name for r in sym.rows] == [r.name for r in num.rows], s
    at = {H: s, W: s}
    pairs = [(a.name, a.costs, b.costs) for a, b in zip(sym.rows, num.rows)] + [("total", sym.total, num.total)]
    for name, a, b in pairs:
        for f in FIELDS:
            v = sympy.sympify(getattr(a, f)).xreplace(at)
            assert v == getattr(b, f), (s, name, f, v, getattr(b, f))


def check_from_torch(model, sizes):
    """from_torch at each size and with symbolic H, W; returns the symbolic graph."""
    model.eval()
    g_sym = from_torch(model, input=(3, H, W))
    sym = analyze(g_sym)
    n_params = sum(p.numel() for p in model.parameters())
    unused = sum(g_sym.graph["unused_params"].get(k, 0) for k, _ in model.named_parameters())
    for s in sizes:
        x = sample(s)
        _, macs, y = hook_counts(model, x)
        want = outputs_of(y)
        g = from_torch(model, input=(3, s, s))
        r = analyze(g)
        assert r.total.params + unused == n_params, (s, r.total.params, unused, n_params)
        assert matmul_macs(r) == macs, (s, matmul_macs(r), macs)
        check_tables(sym, r, s)
        got = numba_run(compile(g, g.graph["weights"]), x)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.shape == b.shape and rel_err(a, b) < 1e-4, (s, a.shape, b.shape, rel_err(a, b))
    return g_sym


def onnx_bytes(model, x, opset=17, spatial=False):
    """The legacy exporter's file for ``model`` on ``x``: batch dynamic, and with ``spatial``
    H and W too (named ``H``, ``W``: cnngraph's symbols)."""
    axes = {0: "N", 2: "H", 3: "W"} if spatial else {0: "N"}
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.from_numpy(x), f, dynamo=False, opset_version=opset,
                          input_names=["input"], dynamic_axes={"input": axes})
    return f.getvalue()


def ort_run(data, x):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def file_tensors(data):
    """The file's float initializers as (shape, bytes) keys: what "the file's own tensors" are.
    A MatMul's (in, out) matrix is stored transposed from the layer's (out, in) weight, so a
    2-D tensor also gives its transpose, as (out, in) and as a 1×1 conv's (out, in, 1, 1)
    (nn.Linear on a channels-last tensor, ConvNeXt's MLP); a C×1×1 tensor (torchvision's layer
    scale) also gives its C values."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load_from_string(data)
    out = set()
    for t in m.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            a = numpy_helper.to_array(t).astype(np.float32)
            out.add((tuple(a.shape), a.tobytes()))
            if a.ndim > 1 and a.size == max(a.shape):  # a per-channel C×1×1 tensor, held as C
                out.add(((a.size,), a.tobytes()))
            if a.ndim == 2:
                tb = np.ascontiguousarray(a.T).tobytes()
                out.update({(a.shape[::-1], tb), (a.shape[::-1] + (1, 1), tb)})
    return out


def _role(g, node, field):
    """"param" or "buffer": what the registry says tensor ``field`` of ``node`` is."""
    from cnngraph.ir import ops

    d = g.nodes[node]
    ins = [g.nodes[i]["shape"] for i in d["inputs"]]
    return ops.REGISTRY[d["op"]].tensors(d["attrs"], ins)[field][1]


def check_onnx(model, sizes, symbolic=False):
    """torch.onnx.export then cnngraph's ONNX import, at each size; with ``symbolic``, also a
    file with dynamic H, W, whose table must evaluate to each size's numeric table."""
    from cnngraph.onnx import load

    model.eval()
    sym = analyze(load(onnx_bytes(model, sample(sizes[0]), spatial=True))) if symbolic else None
    for s in sizes:
        x = sample(s)
        _, macs, y = hook_counts(model, x)
        want = outputs_of(y)
        data = onnx_bytes(model, x)
        h = load(data)
        r = analyze(h)
        # Each layer's parameters are the file's own tensors (the exporter may have folded
        # batch norms into convolutions: then the file, not the module, is the reference).
        tensors = file_tensors(data)
        ws = h.graph["weights"]
        per_layer = {}
        for k, v in ws.items():
            assert (v.shape, np.asarray(v, np.float32).tobytes()) in tensors, (s, k, v.shape)
            node, field = k.rsplit(".", 1)
            if _role(h, node, field) == "param":
                per_layer[node] = per_layer.get(node, 0) + v.size
        for row in r.rows:
            assert row.params == per_layer.get(row.name, 0), (s, row.name, row.params, per_layer.get(row.name))
        assert matmul_macs(r) == macs, (s, matmul_macs(r), macs)
        if sym is not None:
            check_tables(sym, r, s)
        got = numba_run(compile(h, ws), x)
        ref = ort_run(data, x)
        assert len(got) == len(ref) == len(want), (s, len(got), len(ref), len(want))
        for a, b, c in zip(got, ref, want):
            assert a.shape == b.shape == c.shape, (s, a.shape, b.shape, c.shape)
            assert rel_err(a, b) < 1e-4 and rel_err(a, c) < 1e-4, (s, rel_err(a, b), rel_err(a, c))
    return h
