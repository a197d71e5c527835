"""Where the time goes, layer by layer: cnngraph's Numba backend beside ONNX Runtime's own
profiler, on one zoo model, the same weights, batch and threads.

Our time per step is the median over the runs of the time between the executor's step
timestamps; ONNX Runtime's is the median per node of its profiler's ``kernel_time`` events
(``SessionOptions.enable_profiling``). ONNX Runtime fuses a convolution with its batch norm,
activation and residual add under the convolution's name, as our plan does, so each step is
matched to the node of the same name; what matches nothing is summed by operator at the end.
Each peer runs in its own process (their thread pools never share the cores).

    python benchmarks/compare_layers.py resnet50 --batch 1
    python benchmarks/compare_layers.py mobilenet_v2 --batch 8 --runs 30 --top 15
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from bench_cpu import make_input, model_and_weights, threads  # noqa: E402  (same directory)


def ours(model: str, batch: int, runs: int) -> dict:
    """{step name: (op/algorithm, median seconds, the graph nodes and value it computes)} of
    the Numba backend."""
    from cnngraph.backends.numba_backend import executor
    from cnngraph.compiler import compile

    g, ws = model_and_weights(model)
    x = make_input(g, batch)
    ex = executor(compile(g, ws, batch=batch))
    for _ in range(3):
        ex.run(x)
    times = collections.defaultdict(list)
    for _ in range(runs):
        stamps = []
        import time

        t0 = time.perf_counter()
        ex.run(x, progress=lambda i, s: stamps.append((i, time.perf_counter())))
        # a batch run in passes (plan.chunk) repeats the steps: each step's time summed over them
        took = collections.defaultdict(float)
        prev = t0
        for i, t in stamps:
            took[ex.plan.steps[i].node] += t - prev
            prev = t
        for n, t in took.items():
            times[n].append(t)
    kinds = {s.node: s.op + (f" {s.algorithm}" if s.algorithm else "") + (" + SE gate" if s.gate else "")
             + (" + expansion" if s.pre else "") for s in ex.plan.steps}
    # the graph nodes a step computes (a squeeze-and-excitation gate's pool and convolutions
    # with the product) and its output value
    covers = {s.node: sorted({*s.nodes, s.output}) for s in ex.plan.steps}
    return {n: (kinds[n], statistics.median(t), covers[n]) for n, t in times.items()}


def _covered(onnx_path: str, names) -> dict:
    """{ONNX Runtime node name: the exported model's nodes it computes}: the node of its name
    (ORT's suffixes dropped: ``_nchwc``, ``/QuickGeluFusion/``) and, walking back from it,
    every producer no ONNX Runtime node is named after (the convolution under a fused batch
    norm, SiLU's Sigmoid under the Mul)."""
    import onnx

    nodes = {n.name: n for n in onnx.load(onnx_path, load_external_data=False).graph.node}
    producer = {o: n.name for n in nodes.values() for o in n.output}

    def base(name):
        name = name.removesuffix("_nchwc")
        while name not in nodes and "/" in name.rstrip("/"):
            name = name.rstrip("/").rsplit("/", 1)[0]
        return name

    bases = {n: base(n) for n in names}
    own = set(bases.values())
    out = {}
    for n, b in bases.items():
        if b not in nodes:
            out[n] = []  # a node ORT made (a layout reorder)
            continue
        seen, todo = {b}, [b]
        while todo:
            for i in nodes[todo.pop()].input:
                p = producer.get(i)
                if p is not None and p not in own and p not in seen:
                    seen.add(p)
                    todo.append(p)
        out[n] = sorted(seen)
    return out


def onnxruntime(model: str, batch: int, runs: int) -> dict:
    """{node name: (op, median seconds, the exported model's nodes it covers)} from ONNX
    Runtime's profiler."""
    import onnxruntime as ort

    from cnngraph.onnx import export

    g, ws = model_and_weights(model)
    x = make_input(g, batch)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{model}.onnx")
        export(g, ws, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads()
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(d, "prof")
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        for _ in range(3):
            s.run(None, {name: x})
        for _ in range(runs):
            s.run(None, {name: x})
        events = json.load(open(s.end_profiling()))
        times, kinds = _node_times(events, runs)
        cover = _covered(path, times)
    return {n: (kinds[n], statistics.median(t[-runs:]), cover[n]) for n, t in times.items()}


def _node_times(events, runs):
    """({node: its kernel times}, {node: op}) from ONNX Runtime's profile."""
    times, kinds = collections.defaultdict(list), {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            n = e["name"][: -len("_kernel_time")]
            times[n].append(e["dur"] * 1e-6)
            kinds[n] = e.get("args", {}).get("op_name", "?")
    return times, kinds


def child(peer: str, model: str, batch: int, runs: int, out: str) -> None:
    res = (ours if peer == "cnngraph" else onnxruntime)(model, batch, runs)
    json.dump(res, open(out, "w"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--top", type=int, default=0, help="only the N steps where we lose most")
    p.add_argument("--only", help="only the steps whose op / algorithm contains this (e.g. depthwise), "
                                  "with their sum")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child(a.child, a.model, a.batch, a.runs, a.out)
        return 0
    res = {}
    with tempfile.TemporaryDirectory() as d:
        for peer in ("cnngraph", "onnxruntime"):
            out = os.path.join(d, peer + ".json")
            subprocess.run([sys.executable, __file__, a.model, "--batch", str(a.batch), "--runs", str(a.runs),
                            "--child", peer, "--out", out], check=True)
            res[peer] = json.load(open(out))
    us, them = res["cnngraph"], res["onnxruntime"]
    # each ORT node goes to the first of our steps whose node or output value it covers
    # (the conv under a fused batch norm, SiLU's QuickGelu after its conv: see the docstring)
    rows, matched = [], set()
    for n, (k, t, names) in us.items():
        mine = [m for m, (_, _, cov) in them.items() if m not in matched and any(v in cov for v in names)]
        matched.update(mine)
        rows.append((n, k, t, sum(them[m][1] for m in mine) if mine else None))
    other = collections.Counter()
    for n, (k, t, _) in them.items():
        if n not in matched:
            other[k] += t
    tot_us, tot_them = sum(r[2] for r in rows), sum(t for _, t, _ in them.values())
    print(f"{a.model}, batch {a.batch}, {threads()} threads, median of {a.runs} runs; ms; ORT: every node "
          "covering the step's node or output (a fused BN's conv, SiLU's separate QuickGelu)")
    print(f"{'step':40s} {'ours: op / algorithm':28s} {'ours':>8} {'ORT':>8} {'ratio':>6}")
    show = [r for r in rows if a.only in r[1]] if a.only else rows
    show = sorted(show, key=lambda r: -(r[2] - (r[3] or 0)))[: a.top] if a.top else show
    for n, k, t, o in show:
        print(f"{n[:40]:40s} {k[:28]:28s} {t * 1e3:8.3f} {(o or 0) * 1e3:8.3f} "
              f"{(f'{t / o:6.2f}' if o else '     -')}")
    for k, t in other.most_common():
        print(f"{'(ORT only) ' + k:40s} {'':28s} {'':8s} {t * 1e3:8.3f}")
    if a.only:
        su, st = sum(r[2] for r in show), sum(r[3] or 0 for r in show)
        print(f"{'sum of ' + a.only:40s} {'':28s} {su * 1e3:8.2f} {st * 1e3:8.2f} {su / st if st else 0:6.2f}")
    print(f"{'sum':40s} {'':28s} {tot_us * 1e3:8.2f} {tot_them * 1e3:8.2f} {tot_us / tot_them:6.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "batch": a.batch, "threads": threads(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
