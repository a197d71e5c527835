"""Every depthwise convolution shape of MobileNet v2, MobileNet v3-Large and EfficientNet-B0
(224², batch 1, with its fused bias and activation), on one core: cnngraph's Numba kernel
against ONNX Runtime on a one-layer ONNX model of the same convolution and activation.

ONNX Runtime computes in NCHW (its graph optimiser turns the depthwise Conv into MLAS's
blocked NCHWc kernel on AVX-512/AVX2 and fuses ReLU/Clip; the layout reorders it inserts at
the model's edges are not part of the layer): its column is the layer's own time from ONNX
Runtime's profiler (the Conv node, plus the Sigmoid and Mul nodes of SiLU, which it does not
fuse), and ``ORT model`` the whole session.run (reorders and the Python call included).
cnngraph's column is the step over all output rows in one call on one thread (NHWC in, NHWC
out); ``previous`` the kernel it replaced (``depthwise_rows_any``), in the same process.
Every figure is the best of the runs (the machine is shared: the minimum is the least
disturbed).

    python benchmarks/bench_depthwise.py               # every shape, 200 runs each
    python benchmarks/bench_depthwise.py --runs 50 --no-ort
    python benchmarks/bench_depthwise.py --markdown    # the table of docs/backends.md
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("CNNGRAPH_NUM_THREADS", "1")

import numpy as np  # noqa: E402

MODELS = ("mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0")


def depthwise_shapes(models=MODELS) -> list:
    """Distinct (C, H, W, k, stride, pad, act) of the models' depthwise conv steps, first use order,
    with the models using them."""
    from cnngraph import zoo
    from cnngraph.compiler import compile
    from cnngraph.compiler.algorithms import conv_geometry

    seen: dict = {}
    for m in models:
        for s in compile(zoo.build(m)).steps:
            if s.op != "conv2d":
                continue
            k = conv_geometry(s)
            if k["groups"] != k["cin"] or k["cout"] != k["cin"]:
                continue
            key = (k["cin"], k["H"], k["W"], k["kh"], k["sh"], k["pt"], s.act1 or "none")
            seen.setdefault(key, set()).add(m)
    return [(key, sorted(v)) for key, v in seen.items()]


def ours(C, H, W, kk, s, p, act, runs, previous=False):
    """Median seconds of cnngraph's depthwise step (single thread) and its output."""
    from cnngraph.backends import numba_backend as nb
    from cnngraph.compiler.plan import Step
    import types

    Ho = (H + 2 * p - kk) // s + 1
    attrs = dict(kernel=(kk, kk), stride=(s, s), padding=(p, p, p, p), dilation=(1, 1), groups=C, out_channels=C,
                 bias=True)
    step = Step("conv2d", "c", ["x"], "y", attrs, [(C, H, W)], (C, Ho, Ho),
                params={"weight": "c.weight", "bias": "c.bias"}, act1=None if act == "none" else act,
                algorithm="depthwise")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, H, W, C), dtype=np.float32)
    w = (rng.standard_normal((C, 1, kk, kk)) / kk).astype(np.float32)
    b = (rng.standard_normal(C) * 0.1).astype(np.float32)
    rt = nb.runtime()
    if previous:  # the kernel before the 16-lane blocked one, as the backend called it
        from cnngraph.backends import numba_kernels as K

        wd = np.ascontiguousarray(w.reshape(C, kk, kk).transpose(1, 2, 0))
        wrow = np.ascontiguousarray(np.tile(wd, (1, 1, Ho))) if s == 1 and C < nb.DW_ROW_CHANNELS else nb.EMPTY3
        acc = np.empty(Ho * C, np.float32)
        from cnngraph.ir.ops import act_code

        a1 = act_code(None if act == "none" else act)
        out = np.empty((1, Ho, Ho, C), np.float32)

        def fn(ins, out, res):
            K.depthwise_rows_any(ins[0], wd, wrow, b, out, 0, Ho, s, s, p, p, 1, 1, nb.EMPTY4, a1, 0, acc)
    else:
        fn = None
    plan = types.SimpleNamespace(weights={"c.weight": w, "c.bias": b}, values={})
    fn = fn or nb.build_conv2d(step, plan, rt)
    out = np.empty((1, Ho, Ho, C), np.float32)
    ts = []
    with rt.session():
        for _ in range(3):
            fn([x], out, None)
        for _ in range(runs):
            t = time.perf_counter()
            fn([x], out, None)
            ts.append(time.perf_counter() - t)
    return min(ts), x, w, b, out


def _act_nodes(act, helper, name):
    """ONNX nodes of the activation after the Conv's output 'c' into 'y'."""
    if act == "none":
        return [helper.make_node("Identity", ["c"], ["y"])]
    if act == "relu":
        return [helper.make_node("Relu", ["c"], ["y"])]
    if act == "relu6":
        return [helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]
    if act == "hardswish":
        return [helper.make_node("HardSwish", ["c"], ["y"])]
    if act == "silu":
        return [helper.make_node("Sigmoid", ["c"], ["sg"]), helper.make_node("Mul", ["c", "sg"], ["y"])]
    raise ValueError(act)


def ort_time(C, H, W, kk, s, p, act, w, b, x_nhwc, runs):
    """(median Conv node seconds from the profiler, median session.run seconds, output NHWC)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    Ho = (H + 2 * p - kk) // s + 1
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], group=C, kernel_shape=[kk, kk], strides=[s, s],
                            pads=[p, p, p, p], name="dwconv")
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    if act == "relu6":
        inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"),
                  numpy_helper.from_array(np.array(6, np.float32), "hi")]
    graph = helper.make_graph([conv] + _act_nodes(act, helper, "a"), "dw",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, Ho, Ho])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "dw.onnx")
        onnx.save(model, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.enable_profiling = True
        so.log_severity_level = 3
        so.profile_file_prefix = os.path.join(d, "prof")
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        x = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
        for _ in range(3):
            y = sess.run(None, {"x": x})[0]
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            sess.run(None, {"x": x})
            ts.append(time.perf_counter() - t)
        prof = sess.end_profiling()
        with open(prof) as f:
            events = json.load(f)
    # per run: the nodes' own times except the layout reorders (the Conv, fused or not, and a
    # separate activation such as SiLU's Sigmoid and Mul)
    runs_ev = sorted((e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"),
                     key=lambda e: e["ts"])[-runs:]
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
             and not e.get("args", {}).get("op_name", "").startswith("Reorder")]
    per_run = [sum(e["dur"] for e in nodes if r["ts"] <= e["ts"] <= r["ts"] + r["dur"]) for r in runs_ev]
    return min(per_run) * 1e-6, min(ts), y.transpose(0, 2, 3, 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    rows = []
    hdr = ("C", "H×W", "k", "s", "act", "models", "previous µs", "cnngraph µs", "speed-up", "GMAC/s", "ORT conv µs",
           "ORT model µs", "ours / ORT conv")
    if a.markdown:
        print("| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr))
    else:
        print("  ".join(hdr))
    for (C, H, W, kk, s, p, act), models in depthwise_shapes():
        tp = ours(C, H, W, kk, s, p, act, a.runs, previous=True)[0]
        t, x, w, b, y = ours(C, H, W, kk, s, p, act, a.runs)
        Ho = (H + 2 * p - kk) // s + 1
        macs = Ho * Ho * C * kk * kk
        row = dict(C=C, H=H, W=W, k=kk, s=s, act=act, models=models, ours_us=t * 1e6, previous_us=tp * 1e6, gmacs=macs / t / 1e9)
        if not a.no_ort:
            tn, tm, yo = ort_time(C, H, W, kk, s, p, act, w, b, x, a.runs)
            row.update(ort_conv_us=tn * 1e6, ort_model_us=tm * 1e6, ratio=t / tn,
                       err=float(np.abs(y - yo).max() / max(np.abs(yo).max(), 1e-30)))
        rows.append(row)
        short = ", ".join(m.replace("mobilenet_", "mnv").replace("efficientnet_", "effnet-") for m in models)
        cells = [str(C), f"{H}×{W}", f"{kk}×{kk}", str(s), act, short, f"{row['previous_us']:.1f}",
                 f"{row['ours_us']:.1f}", f"{tp / t:.2f}×", f"{row['gmacs']:.1f}"]
        if not a.no_ort:
            cells += [f"{row['ort_conv_us']:.1f}", f"{row['ort_model_us']:.1f}", f"{row['ratio']:.2f}×"]
        else:
            cells += ["", "", ""]
        print(("| " + " | ".join(cells) + " |") if a.markdown else "  ".join(cells), flush=True)
        if not a.no_ort and row["err"] > 1e-4:
            print(f"  outputs differ: {row['err']:.1e}", file=sys.stderr)
    tot = sum(r["ours_us"] for r in rows)
    msg = (f"total over the distinct shapes: previous kernel {sum(r['previous_us'] for r in rows):.0f} µs, "
           f"cnngraph {tot:.0f} µs")
    if not a.no_ort:
        msg += f", ORT conv nodes {sum(r['ort_conv_us'] for r in rows):.0f} µs"
    print(msg)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
