"""Every grouped convolution of the zoo's grouped models, one node at a time: our Numba
backend's algorithms (the direct ``grouped`` kernel and ``im2col`` + GEMM) against ONNX
Runtime running the same model (the convolution and its ReLU, which both fuse), at batch 1
and 8, on 1 (and optionally 2) threads; each row also gives the largest relative difference
between our outputs and ORT's.

Each timing (on one thread, the thread's CPU time unless ``--wall``) is the median of
repeated runs after a warm-up, the peers alternating call by call (a shared machine's load
weighs on all alike); ORT runs a Conv + Relu ONNX model (``onnx.helper``,
``intra_op_num_threads`` = threads, sequential execution). Prints a markdown table (times in
microseconds) and the ratio ours / ORT of the plan's choice. Needs no PyTorch.

    python benchmarks/bench_grouped.py [--threads 1 2] [--batch 1 8] [--models resnext50_32x4d]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def shapes(models):
    """Distinct grouped (not depthwise) convolution geometries of ``models``: (key, models)."""
    from cnngraph import zoo
    from cnngraph.compiler import compile
    from cnngraph.compiler.algorithms import conv_geometry

    seen = {}
    for name in models:
        for s in compile(zoo.build(name), batch=1).steps:
            if s.op != "conv2d":
                continue
            k = conv_geometry(s)
            if k["groups"] > 1 and k["cin"] // k["groups"] > 1:
                key = tuple(sorted(k.items()))
                seen.setdefault(key, []).append(name)
    return [(dict(key), sorted(set(v))) for key, v in seen.items()]


def median_times(fns, budget=1.0, least=7, clock=time.perf_counter):
    """Median seconds of each of ``fns``, run alternately (one call of each per round) so
    that a change of load on a shared machine weighs on all of them alike; ``clock``
    ``time.thread_time`` counts the calling thread's CPU time only (one thread: the time
    other processes take the core away is not counted)."""
    for f in fns:
        f()
    ts = [[] for _ in fns]
    t_end = time.perf_counter() + budget * len(fns)
    while len(ts[0]) < least or time.perf_counter() < t_end:
        for f, t in zip(fns, ts):
            t0 = clock()
            f()
            t.append(clock() - t0)
        if len(ts[0]) >= 200:
            break
    return [statistics.median(t) for t in ts]


def ort_session(k, batch, w, b, threads):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k["kh"], k["kw"]],
                            strides=[k["sh"], k["sw"]], pads=[k["pt"], k["pl"], k["pb"], k["pr"]],
                            dilations=[k["dh"], k["dw"]], group=k["groups"])
    relu = helper.make_node("Relu", ["c"], ["y"])  # as ours: ORT fuses it into the convolution
    g = helper.make_graph([node, relu], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, k["cin"], k["H"], k["W"]])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def ours(k, batch, w, b, algorithm):
    import types

    from cnngraph.backends import numba_backend as nb
    from cnngraph.compiler.plan import Step

    attrs = dict(kernel=(k["kh"], k["kw"]), stride=(k["sh"], k["sw"]), padding=(k["pt"], k["pl"], k["pb"], k["pr"]),
                 dilation=(k["dh"], k["dw"]), groups=k["groups"], out_channels=k["cout"], bias=True)
    step = Step("conv2d", "c", ["x"], "y", attrs, [(k["cin"], k["H"], k["W"])], (k["cout"], k["Ho"], k["Wo"]),
                params={"weight": "c.weight", "bias": "c.bias"}, act1="relu", algorithm=algorithm)
    rt = nb.runtime()
    plan = types.SimpleNamespace(weights={"c.weight": w, "c.bias": b}, values={})
    fn = nb.build_conv2d(step, plan, rt)
    out = np.empty((batch, k["Ho"], k["Wo"], k["cout"]), np.float32)

    def call(x):
        with rt.session():
            fn([x], out, None)
        return out
    return call


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"])
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--algorithms", nargs="+", default=["grouped", "im2col"])
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--first", type=int, default=0, help="only the first N shapes")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of timing per peer and row (at least 7 calls)")
    ap.add_argument("--wall", dest="cpu_time", action="store_false",
                    help="wall-clock time on one thread too (default: the thread's CPU time)")
    a = ap.parse_args(argv)
    from cnngraph.compiler.algorithms import choose_conv

    rng = np.random.default_rng(0)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; one thread: "
          + ("CPU time of the calling thread" if a.cpu_time else "wall-clock time") + "; more threads: wall-clock time")
    print("| shape (C_in→C_out, H×W, stride, groups, cg) | batch | threads | "
          + " | ".join(f"{al} µs" for al in a.algorithms) + " | ORT µs | plan picks | ratio | max rel. err vs ORT |")
    print("|" + "---|" * (7 + len(a.algorithms)))
    for k, models in shapes(a.models)[:a.first or None]:
        cg = k["cin"] // k["groups"]
        w = rng.standard_normal((k["cout"], cg, k["kh"], k["kw"])).astype(np.float32) * 0.1
        b = rng.standard_normal(k["cout"]).astype(np.float32)
        for batch in a.batch:
            x = rng.standard_normal((batch, k["cin"], k["H"], k["W"])).astype(np.float32)
            xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            for threads in a.threads:
                os.environ["CNNGRAPH_NUM_THREADS"] = str(threads)
                fns = [ours(k, batch, w, b, al) for al in a.algorithms]
                calls = [lambda f=f: f(xl) for f in fns]
                if not a.no_ort:
                    s = ort_session(k, batch, w, b, threads)
                    calls.append(lambda: s.run(None, {"x": x}))
                times = median_times(calls, budget=a.budget,
                                     clock=time.thread_time if threads == 1 and a.cpu_time else time.perf_counter)
                err = float("nan")
                if not a.no_ort:  # every algorithm's output against ORT's (NCHW)
                    ref = calls[-1]()[0]
                    err = max(float(np.abs(f(xl).transpose(0, 3, 1, 2) - ref).max() / np.abs(ref).max()) for f in fns)
                ts = dict(zip(a.algorithms, times))
                t_ort = times[-1] if not a.no_ort else float("nan")
                pick = choose_conv(k, batch).algorithm
                t_pick = ts.get(pick, min(ts.values()))
                desc = (f"{k['cin']}→{k['cout']}, {k['H']}², /{k['sh']}, g{k['groups']}, cg{cg}")
                print(f"| {desc} | {batch} | {threads} | " + " | ".join(f"{ts[al] * 1e6:.0f}" for al in a.algorithms)
                      + f" | {t_ort * 1e6:.0f} | {pick} | {t_pick / t_ort:.2f} | {err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
