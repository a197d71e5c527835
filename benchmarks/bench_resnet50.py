"""ResNet-50 inference, float32, all cores: cnngraph's Numba backend against ONNX Runtime
(CPU, on the model exported by ``cnngraph.onnx``) and PyTorch eager (``cnngraph.interop.torch_ref``,
which calls ``torch.nn.functional`` node by node as an eager torchvision model does).

The peers are timed in the same process, round-robin (one run of each per round, each after
a pause of ``PAUSE_S`` so the previous peer's spinning threads are idle), so the ratios hold
even on a shared, noisy machine; the medians are reported. Memory is measured
per peer in a fresh subprocess: the resident set after set-up, its peak while running
(sampled every millisecond) and the process's high-water mark (VmHWM). Every peer's process
pays for the same set-up here (cnngraph imported, the graph built, its weights created, then
the peer's own runtime: compiled, exported to ONNX, or converted to PyTorch), so the figures
compare what running adds; ``benchmarks/bench_cpu.py`` measures each runtime alone, every
peer loading the model from files.
NumPy's SGEMM throughput, measured in the same run, bounds what any of them can reach.

    python benchmarks/bench_resnet50.py                 # batch 8 and 1, 224×224
    python benchmarks/bench_resnet50.py --batch 8 --rounds 20 --json out.json

BLAS note: some machines export OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for old OpenBLAS builds;
they slow a current NumPy. Unset both in the benchmark command only, e.g.
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_resnet50.py``; the
script prints which BLAS kernel runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import importlib.util

import numpy as np

PEERS = ["cnngraph-numba", "onnxruntime", "pytorch-eager"]
if importlib.util.find_spec("torch") is None:  # PyTorch is optional: compare with ONNX Runtime alone
    PEERS.remove("pytorch-eager")  # (found without importing it: importing torch would weigh on every peer's memory)


# Round-robin: the pause before each peer's run. A runtime's threads spin for a while after
# a run and would hold the cores the next peer needs: ONNX Runtime's worker measured 42-48 ms
# of CPU after each run of EfficientNet-B0 (2 threads), cnngraph's OpenMP workers about 25 ms
# (numba_threads.GOMP_SPINCOUNT). After this long every pool has gone to sleep, so each run
# starts on idle cores (it was 50 ms, within a few ms of ONNX Runtime's spinning).
PAUSE_S = 0.1


def threads() -> int:
    return len(os.sched_getaffinity(0))


def setup(peer: str, batch: int, size: int, seed: int = 0):
    """A callable running one batch on ``peer``, and the input."""
    from cnngraph import zoo
    from cnngraph.compiler.weights import init

    g = zoo.build("resnet50", input=(3, size, size))
    ws = init(g, seed=seed, random_bn=True)
    x = np.random.default_rng(seed + 1).standard_normal((batch, 3, size, size)).astype(np.float32)
    if peer == "cnngraph-numba":
        from cnngraph.backends.numba_backend import executor
        from cnngraph.compiler import compile

        ex = executor(compile(g, ws, batch=batch))
        return (lambda: ex.run(x)[0]), x
    if peer == "onnxruntime":
        from cnngraph.onnx import export

        return ort_callable(export(g, ws).SerializeToString(), x), x
    if peer == "pytorch-eager":
        from cnngraph.interop.torch_ref import to_torch

        return torch_callable(to_torch(g, ws), x), x
    raise ValueError(peer)


def ort_callable(model, x):
    """One batch through ONNX Runtime (CPU, all cores) on ``model`` (bytes or a path)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads()
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda: sess.run(None, {name: x})[0]


def torch_callable(m, x):
    """One batch through the PyTorch module ``m`` (inference mode, all cores), NumPy out."""
    import torch

    torch.set_num_threads(threads())
    xt = torch.from_numpy(x)

    def run():
        with torch.inference_mode():
            return m(xt).numpy()

    return run


def sgemm_gflops(n=2048, repeat=5) -> float:
    from cnngraph.backends import sgemm_ceiling

    return sgemm_ceiling(n, repeat)


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                         f"{i.get('num_threads')} threads" for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        return "threadpoolctl not installed"


def time_peers(batch: int, size: int, rounds: int, warmup: int):
    fns = {}
    for p in PEERS:
        t = time.perf_counter()
        fns[p] = setup(p, batch, size)[0]
        print(f"  set up {p} in {time.perf_counter() - t:.1f} s", flush=True)
    outs = {}
    for p, fn in fns.items():
        for _ in range(warmup):
            outs[p] = fn()
    times = {p: [] for p in PEERS}
    for _ in range(rounds):
        for p, fn in fns.items():
            time.sleep(PAUSE_S)
            t = time.perf_counter()
            fn()
            times[p].append(time.perf_counter() - t)
    ref = outs["pytorch-eager" if "pytorch-eager" in outs else "onnxruntime"]
    err = {p: float(np.abs(o - ref).max() / np.abs(ref).max()) for p, o in outs.items()}
    return times, err


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_of(peer: str, batch: int, size: int, runs: int = 3) -> dict:
    """Resident memory of one peer: after set-up (weights, sessions), and the peak while it
    runs (sampled every millisecond), in a process of its own."""
    fn, _ = setup(peer, batch, size)
    base = rss_bytes()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.001)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    for _ in range(runs):
        fn()
    stop.set()
    th.join()
    with open("/proc/self/status") as f:  # the process's own high-water mark (set-up included)
        hwm = next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")), None)
    return {"after_setup_mb": base / 2**20, "peak_mb": peak[0] / 2**20, "during_run_mb": (peak[0] - base) / 2**20,
            "process_peak_mb": hwm}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, action="append", help="batch sizes (default 8 and 1)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-memory", action="store_true", help="skip the per-peer memory subprocesses")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    batches = args.batch or [8, 1]
    if args.memory_of:
        print(json.dumps(memory_of(args.memory_of, batches[0], args.size)))
        return 0

    from cnngraph import analyze, zoo
    from cnngraph.compiler import compile

    macs = analyze(zoo.build("resnet50", input=(3, args.size, args.size))).total.macs
    plan = compile(zoo.build("resnet50", input=(3, args.size, args.size)))
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.get(k)}
    print(f"ResNet-50 {args.size}×{args.size} float32, {threads()} threads; BLAS: {blas_info()}; "
          f"OpenBLAS overrides: {env or 'none'}")
    if "pytorch-eager" not in PEERS:
        print("PyTorch is not installed: the PyTorch eager peer is skipped")
    results = {"size": args.size, "threads": threads(), "blas": blas_info(), "macs_per_image": macs, "runs": []}
    for batch in batches:
        print(f"batch {batch}:", flush=True)
        times, err = time_peers(batch, args.size, args.rounds, args.warmup)
        ceiling = sgemm_gflops()
        med = {p: statistics.median(t) for p, t in times.items()}
        gflop = 2 * macs * batch / 1e9
        row = {"batch": batch, "sgemm_gflops": ceiling, "bound_ms": gflop / ceiling * 1e3, "peers": {}}
        for p in PEERS:
            row["peers"][p] = {"median_ms": med[p] * 1e3, "min_ms": min(times[p]) * 1e3,
                               "images_per_s": batch / med[p], "gflops": gflop / med[p],
                               "rel_err_vs_pytorch": err[p]}
        ours = med["cnngraph-numba"]
        row["ratio_vs_onnxruntime"] = ours / med["onnxruntime"]
        row["ratio_vs_pytorch"] = ours / med["pytorch-eager"] if "pytorch-eager" in med else None
        row["planned_activation_mb"] = plan.memory.at(batch).planned_bytes / 2**20
        if not args.no_memory:
            for p in PEERS:
                out = subprocess.run([sys.executable, __file__, "--memory-of", p, "--batch", str(batch),
                                      "--size", str(args.size)], capture_output=True, text=True, check=True)
                row["peers"][p]["memory"] = json.loads(out.stdout.strip().splitlines()[-1])
        results["runs"].append(row)
        print(f"  SGEMM ceiling {ceiling:.0f} GFLOP/s (NumPy 2048³, this run): {gflop:.1f} GFLOP per batch "
              f"cannot take less than {row['bound_ms']:.0f} ms")
        for p in PEERS:
            r = row["peers"][p]
            mem = r.get("memory")
            ms = f", RSS {mem['after_setup_mb']:.0f} MB after set-up, +{mem['during_run_mb']:.0f} MB peak while running" \
                f" (process peak {mem['process_peak_mb']:.0f} MB, set-up included)" if mem else ""
            print(f"  {p:15s} {r['median_ms']:8.1f} ms (min {r['min_ms']:.1f})  {r['images_per_s']:7.1f} img/s  "
                  f"{r['gflops']:6.1f} GFLOP/s  err {r['rel_err_vs_pytorch']:.1e}{ms}")
        vs_torch = f"{row['ratio_vs_pytorch']:.2f}×" if row["ratio_vs_pytorch"] else "(PyTorch not installed)"
        print(f"  cnngraph / onnxruntime = {row['ratio_vs_onnxruntime']:.2f}×, cnngraph / pytorch = {vs_torch}; "
              f"planned activations {row['planned_activation_mb']:.1f} MB", flush=True)
    if args.json:
        from cnngraph.io.files import write_text  # atomic: a cut-short run leaves the old file whole
        write_text(args.json, json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
