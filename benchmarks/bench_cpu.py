"""CPU inference, float32, all cores: cnngraph's Numba backend against ONNX Runtime (CPU, on
the model exported by ``cnngraph.onnx``) and PyTorch eager (torchvision's real
``nn.Module``, the same weights loaded with ``load_state_dict``), on five ImageNet models.

Two measurements, both reported:

* **own process**: each peer runs in a fresh process of its own (set-up, warm-up, timed
  runs, its peak resident memory), the peers' processes alternating A, B, C, A, B, C... so
  slow phases of a shared machine hit every peer; the median over all its processes' runs.
* **round-robin**: every peer set up in one process and timed one run each per round, so
  the ratios hold even when the machine's load changes from second to second.

NumPy's SGEMM throughput (2048³, all threads) is measured in the same run, before and after,
and bounds what any of them can reach. PyTorch is optional: without it that peer is skipped
(said in the output) and cnngraph is compared with ONNX Runtime alone.

    python benchmarks/bench_cpu.py                      # 5 models, batch 1 and 8
    python benchmarks/bench_cpu.py --quick              # ResNet-50 only, fewer runs
    python benchmarks/bench_cpu.py --model vgg16 --batch 1 --json out.json

The weights are seeded random (``cnngraph.weights.init``, random batch-norm statistics):
timing does not depend on their values; the outputs of the peers are compared (relative
error ``max|a − b| / max|b|`` against PyTorch, or ONNX Runtime without it).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_resnet50 import blas_info, ort_callable, threads, torch_callable  # noqa: E402  (same directory)

MODELS = ("resnet50", "mobilenet_v2", "efficientnet_b0", "vgg16", "resnext50_32x4d")
PEERS = ("cnngraph", "onnxruntime", "pytorch")


def have_torch() -> bool:
    """PyTorch and torchvision installed? (looked up, not imported: the parent process stays light)"""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision"))


def model_and_weights(model: str, seed: int = 0):
    from cnngraph import zoo
    from cnngraph.compiler.weights import init

    g = zoo.build(model)
    return g, init(g, seed=seed, random_bn=True)


def make_input(g, batch: int, seed: int = 1) -> np.ndarray:
    shape = tuple(int(s) for s in g.nodes[g.graph["inputs"][0]]["shape"])
    return np.random.default_rng(seed).standard_normal((batch,) + shape).astype(np.float32)


def setup(peer: str, model: str, batch: int, onnx_path: str | None = None):
    """A callable running one batch on ``peer`` (returns the output as NumPy), and the input."""
    g, ws = model_and_weights(model)
    x = make_input(g, batch)
    if peer == "cnngraph":
        from cnngraph.backends.numba_backend import executor, release_free_memory
        from cnngraph.compiler import compile

        plan = compile(g, ws, batch=batch, consume_weights=True)  # the originals are not needed again
        del ws
        ex = executor(plan, release_weights=True)
        plan.weights = None  # packed into the kernels; the folded copy is no longer needed
        release_free_memory()
        return (lambda: ex.run(x)[0]), x
    if peer == "onnxruntime":
        if onnx_path is None:
            from cnngraph.onnx import export

            onnx_path = export(g, ws).SerializeToString()
        del ws
        return ort_callable(onnx_path, x), x
    if peer == "pytorch":
        import torch
        import torchvision

        m = torchvision.models.get_model(model, weights=None).eval()
        missing, unexpected = m.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ws.items()},
                                                strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise RuntimeError(f"{model}: state_dict mismatch, missing {missing[:3]}, unexpected {unexpected[:3]}")
        del ws
        return torch_callable(m, x), x
    raise ValueError(peer)


def sgemm_gflops() -> float:
    from cnngraph.backends import sgemm_ceiling

    return sgemm_ceiling(2048, 5)


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: unlike getrusage's ru_maxrss, it is not
    inherited from the parent across fork and exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover - not Linux


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(peer, model, batch, runs, warmup, onnx_path, out_path) -> dict:
    """One peer in this (fresh) process: times and memory, the output saved for comparison."""
    t = time.perf_counter()
    fn, _ = setup(peer, model, batch, onnx_path)
    setup_s = time.perf_counter() - t
    after_setup = rss_mb()
    y = None
    for _ in range(warmup):
        y = fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    np.save(out_path, y)
    return {"times": times, "setup_s": setup_s, "after_setup_mb": after_setup, "peak_mb": peak_rss_mb()}


def rel_err(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def own_process(model, batch, peers, procs, runs, warmup, onnx_path, tmp) -> dict:
    """Each peer in processes of its own, alternating; medians over every run."""
    res = {p: {"times": [], "peak_mb": [], "after_setup_mb": []} for p in peers}
    for _ in range(procs):
        for p in peers:
            out = Path(tmp) / f"{p}.npy"
            cmd = [sys.executable, __file__, "--child", p, "--model", model, "--batch", str(batch), "--runs",
                   str(runs), "--warmup", str(warmup), "--onnx", onnx_path, "--out", str(out)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"{p} on {model}: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
            d = json.loads(r.stdout.strip().splitlines()[-1])
            res[p]["times"] += d["times"]
            res[p]["peak_mb"].append(d["peak_mb"])
            res[p]["after_setup_mb"].append(d["after_setup_mb"])
    outs = {p: np.load(Path(tmp) / f"{p}.npy") for p in peers}
    ref = outs["pytorch" if "pytorch" in peers else "onnxruntime"]
    summary = {}
    for p in peers:
        summary[p] = {"median_ms": statistics.median(res[p]["times"]) * 1e3, "min_ms": min(res[p]["times"]) * 1e3,
                      "peak_mb": max(res[p]["peak_mb"]), "after_setup_mb": max(res[p]["after_setup_mb"]),
                      "rel_err": rel_err(outs[p], ref)}
    return summary


def round_robin(model, batch, peers, rounds, warmup, onnx_path) -> dict:
    fns = {p: setup(p, model, batch, onnx_path)[0] for p in peers}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {p: [] for p in peers}
    for _ in range(rounds):
        for p, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[p].append(time.perf_counter() - t)
    return {p: {"median_ms": statistics.median(t) * 1e3, "min_ms": min(t) * 1e3} for p, t in times.items()}


def gflop(model: str, batch: int) -> float:
    from cnngraph import analyze, zoo

    return 2 * analyze(zoo.build(model)).total.macs * batch / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help=f"models (default: {', '.join(MODELS)})")
    ap.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 8)")
    ap.add_argument("--procs", type=int, default=2, help="processes per peer in the own-process runs (default 2)")
    ap.add_argument("--runs", type=int, default=8, help="timed runs per process (default 8)")
    ap.add_argument("--rounds", type=int, default=8, help="round-robin rounds (default 8)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="ResNet-50 only, 1 process per peer, 4 runs and rounds")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is installed")
    ap.add_argument("--json", help="write every figure to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.model[0], args.batch[0], args.runs, args.warmup, args.onnx,
                               args.out)))
        return 0
    models = args.model or (["resnet50"] if args.quick else list(MODELS))
    batches = args.batch or [1, 8]
    if args.quick:
        args.procs, args.runs, args.rounds = 1, 4, 4
    peers = list(PEERS)
    if args.no_torch or not have_torch():
        peers.remove("pytorch")
        print("PyTorch/torchvision not installed (or --no-torch): the PyTorch eager peer is skipped")
    print(f"{threads()} threads; BLAS: {blas_info()}; load average {os.getloadavg()[0]:.1f}")
    ceil0 = sgemm_gflops()
    print(f"SGEMM ceiling (NumPy 2048³ float32, all threads) before: {ceil0:.0f} GFLOP/s", flush=True)
    results = {"threads": threads(), "blas": blas_info(), "sgemm_before": ceil0, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            from cnngraph.onnx import export

            g, ws = model_and_weights(model)
            onnx_path = str(Path(tmp) / f"{model}.onnx")
            with open(onnx_path, "wb") as f:
                f.write(export(g, ws).SerializeToString())
            del g, ws
            for batch in batches:
                gf = gflop(model, batch)
                own = own_process(model, batch, peers, args.procs, args.runs, args.warmup, onnx_path, tmp)
                rr = round_robin(model, batch, peers, args.rounds, args.warmup, onnx_path)
                row = {"model": model, "batch": batch, "gflop": gf, "own": own, "round_robin": rr,
                       "load": os.getloadavg()[0]}
                results["rows"].append(row)
                print(f"{model} batch {batch} ({gf:.1f} GFLOP per batch; load {row['load']:.1f}):")
                for p in peers:
                    o, r = own[p], rr[p]
                    print(f"  {p:12s} own process {o['median_ms']:8.1f} ms (min {o['min_ms']:7.1f}, "
                          f"{gf / o['median_ms'] * 1e3:6.1f} GFLOP/s), peak RSS {o['peak_mb']:6.0f} MB "
                          f"(after set-up {o['after_setup_mb']:5.0f}), err {o['rel_err']:.1e} | "
                          f"round-robin {r['median_ms']:8.1f} ms")
                for q in peers[1:]:
                    print(f"  cnngraph / {q}: own process {own['cnngraph']['median_ms'] / own[q]['median_ms']:.2f}×, "
                          f"round-robin {rr['cnngraph']['median_ms'] / rr[q]['median_ms']:.2f}×, peak memory "
                          f"{own['cnngraph']['peak_mb'] / own[q]['peak_mb']:.2f}×", flush=True)
    ceil1 = sgemm_gflops()
    results["sgemm_after"] = ceil1
    print(f"SGEMM ceiling after: {ceil1:.0f} GFLOP/s (before: {ceil0:.0f}); load average {os.getloadavg()[0]:.1f}")
    print("\nsummary (median ms, own process | round-robin; ratio = cnngraph / peer)")
    hdr = "| model | batch | cnngraph | ONNX Runtime | " + ("PyTorch eager | " if "pytorch" in peers else "") + \
        "/ ORT | " + ("/ PyTorch | " if "pytorch" in peers else "") + "peak RSS ours / ORT |"
    print(hdr)
    print("|" + " --- |" * (hdr.count("|") - 1))
    for row in results["rows"]:
        own, rr = row["own"], row["round_robin"]
        cells = [row["model"], str(row["batch"])]
        cells += [f"{own[p]['median_ms']:.1f} \\| {rr[p]['median_ms']:.1f}" for p in peers]
        cells += [f"{own['cnngraph']['median_ms'] / own[q]['median_ms']:.2f}× \\| "
                  f"{rr['cnngraph']['median_ms'] / rr[q]['median_ms']:.2f}×" for q in peers[1:]]
        cells.append(f"{own['cnngraph']['peak_mb']:.0f} / {own['onnxruntime']['peak_mb']:.0f} MB")
        print("| " + " | ".join(cells) + " |")
    if args.json:
        from cnngraph.io.files import write_text  # atomic: a cut-short run leaves the old file whole
        write_text(args.json, json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
