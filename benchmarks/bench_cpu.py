"""CPU inference, float32, all cores: cnngraph's Numba backend against ONNX Runtime (CPU, on
the model exported by ``cnngraph.onnx``) and PyTorch eager (torchvision's real
``nn.Module``, the same weights loaded with ``load_state_dict``), on five ImageNet models.

Two measurements, both reported:

* **own process**: each peer runs in a fresh process of its own (set-up, warm-up, timed
  runs, at least ``--min-time`` seconds of them, its peak resident memory), the peers' processes alternating A, B, C, A, B, C... so
  slow phases of a shared machine hit every peer; the median over all its processes' runs.
* **round-robin**: every peer set up in one process and timed one run each per round, so
  the ratios hold even when the machine's load changes from second to second; each run
  after a pause of :data:`PAUSE_S` (the previous peer's spinning threads gone idle). It
  runs in ``--rr-procs`` fresh processes one after the other (default 2), the medians over
  all their rounds.

Memory, made comparable: the parent writes the model once (the ``.onnx`` file for ONNX
Runtime, a saved plan per batch, ``.cgplan``, for cnngraph, the weights as ``.npz`` for
PyTorch, the inputs as ``.npy``) and every peer's process starts from those files, so each
pays for importing its runtime, loading its model and its weights from disk, and none for
creating the weights or exporting the model: ONNX Runtime parses the ``.onnx`` file and
optimises it, cnngraph loads the plan and packs its weights (``--compile``: it builds the
zoo's graph and compiles it in its own process instead, which imports networkx too). A peer's peak is its own process's high-water mark (VmHWM, reset by exec, never
the parent's); each phase of the set-up is reported with its resident memory at the end and
its peak within (the mark reset between phases), and the heavy libraries the process loaded.
Before the measured cnngraph processes one untimed process fills Numba's kernel cache, so the
figures are those of a warm cache (a user's second run); its peak is reported apart.

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
from bench_resnet50 import PAUSE_S, blas_info, ort_callable, threads, torch_callable  # noqa: E402  (same directory)

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


def write_files(model: str, batches, folder, compile_in_child: bool = False) -> dict:
    """What every peer loads, written once by the parent: ``{model}.onnx`` (ONNX Runtime),
    ``{model}_b{batch}.cgplan`` (cnngraph's saved plans), ``{model}.npz`` (the weights:
    PyTorch, and cnngraph when ``compile_in_child``), ``{model}_b{batch}.npy`` (inputs).
    So no peer's process pays for building the weights or exporting the model, and each
    pays for loading its own from disk."""
    from cnngraph.compiler.weights import save
    from cnngraph.onnx import export

    from cnngraph.compiler import compile, plan_file

    g, ws = model_and_weights(model)
    files = {"onnx": str(Path(folder) / f"{model}.onnx"), "weights": str(Path(folder) / f"{model}.npz"),
             "compile": compile_in_child}
    with open(files["onnx"], "wb") as f:
        f.write(export(g, ws).SerializeToString())
    save(ws, files["weights"])
    for b in batches:
        files[f"input{b}"] = str(Path(folder) / f"{model}_b{b}.npy")
        np.save(files[f"input{b}"], make_input(g, b))
        files[f"plan{b}"] = str(Path(folder) / f"{model}_b{b}.cgplan")
        plan_file.save(compile(g, ws, batch=b), files[f"plan{b}"])
    return files


def setup(peer: str, model: str, batch: int, files: dict, mark=lambda phase: None):
    """A callable running one batch on ``peer`` (returns the output as NumPy), and the input.

    Every peer starts from the same files (:func:`write_files`) and pays for the same
    things: importing its runtime, building its model (cnngraph: ``zoo.build``; PyTorch:
    torchvision's constructor; ONNX Runtime: parsing the ``.onnx`` file) and loading the
    weights from disk. ``mark(phase)`` is called at the end of each phase of the set-up
    (:class:`Phases` records the memory there).
    """
    x = np.load(files[f"input{batch}"])
    if peer == "cnngraph" and not files.get("compile"):
        from cnngraph.backends.numba_backend import executor, release_free_memory
        from cnngraph.compiler import plan_file

        mark("imports")
        plan = plan_file.load(files[f"plan{batch}"])
        mark("plan")
        ex = executor(plan, release_weights=True)
        plan.weights = None  # packed into the kernels
        release_free_memory()
        mark("executor")
        return (lambda: ex.run(x)[0]), x
    if peer == "cnngraph":
        from cnngraph import zoo
        from cnngraph.backends.numba_backend import executor, release_free_memory
        from cnngraph.compiler import compile
        from cnngraph.compiler.weights import load

        mark("imports")
        g = zoo.build(model)
        mark("model")
        ws = load(files["weights"], g)
        mark("weights")
        plan = compile(g, ws, batch=batch, consume_weights=True)  # the originals are not needed again
        del ws
        mark("compile")
        ex = executor(plan, release_weights=True)
        plan.weights = None  # packed into the kernels; the folded copy is no longer needed
        release_free_memory()
        mark("executor")
        return (lambda: ex.run(x)[0]), x
    if peer == "onnxruntime":
        import onnxruntime  # noqa: F401  (imported here so the import is its own phase)

        mark("imports")
        fn = ort_callable(files["onnx"], x)
        mark("session")
        return fn, x
    if peer == "pytorch":
        import torch
        import torchvision

        mark("imports")
        m = torchvision.models.get_model(model, weights=None).eval()
        mark("model")
        with np.load(files["weights"]) as z:
            state = {k: torch.from_numpy(z[k]) for k in z.files}
        missing, unexpected = m.load_state_dict(state, strict=False)
        del state
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise RuntimeError(f"{model}: state_dict mismatch, missing {missing[:3]}, unexpected {unexpected[:3]}")
        mark("weights")
        return torch_callable(m, x), x
    raise ValueError(peer)


def sgemm_gflops() -> float:
    from cnngraph.backends import sgemm_ceiling

    return sgemm_ceiling(2048, 5)


def _status_mb(field: str) -> float | None:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None  # pragma: no cover - not Linux


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: unlike getrusage's ru_maxrss, it is not
    inherited from the parent across fork and exec)."""
    v = _status_mb("VmHWM")
    return v if v is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Phases:
    """The memory of each phase of a process: its resident set at the end of the phase and
    its peak during it (the kernel's high-water mark, reset at the start of each phase
    through ``/proc/self/clear_refs``; where that is not allowed, the peak so far).

    >>> ph = Phases()
    >>> ph.mark("start")
    >>> ph.rows[0]["phase"], ph.rows[0]["peak_mb"] >= ph.rows[0]["rss_mb"] > 0
    ('start', True)
    """

    def __init__(self):
        self.rows: list = []  # the first phase runs from the process's start

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
            return True
        except OSError:
            return False

    def mark(self, phase: str) -> None:
        self.rows.append({"phase": phase, "rss_mb": rss_mb(), "peak_mb": peak_rss_mb(),
                          "file_mb": _status_mb("RssFile")})  # of the RSS: mapped files (library code)
        self._reset()

    @property
    def peak_mb(self) -> float:
        """The process's peak: the largest peak of any phase."""
        return max(r["peak_mb"] for r in self.rows)


# A process times at least this many seconds of runs (``--min-time``), so a fast model's
# median is not ten runs of one moment: the machine has slow phases seconds long, and 8 runs
# of MobileNet v2 at batch 1 are 45 ms of it.
MIN_TIMED_S = 1.0
MAX_RUNS = 1000


def child(peer, model, batch, runs, warmup, files, out_path, min_time=MIN_TIMED_S) -> dict:
    """One peer in this (fresh) process: times and memory, the output saved for comparison.
    At least ``runs`` timed runs, and more until ``min_time`` seconds have been timed."""
    ph = Phases()
    ph.mark("python, numpy")
    t = time.perf_counter()
    fn, _ = setup(peer, model, batch, files, ph.mark)
    setup_s = time.perf_counter() - t
    after_setup = rss_mb()
    y = fn()
    ph.mark("first run")
    for _ in range(warmup - 1):
        y = fn()
    times = []
    while len(times) < runs or (sum(times) < min_time and len(times) < MAX_RUNS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    ph.mark("runs")
    np.save(out_path, y)
    return {"times": times, "setup_s": setup_s, "after_setup_mb": after_setup, "peak_mb": ph.peak_mb,
            "phases": ph.rows, "modules": sorted(m for m in HEAVY if sys.modules.get(m) is not None)}


# libraries whose presence in a peer's process the output reports (what it paid to import)
HEAVY = ("numba", "sympy", "networkx", "torch", "torchvision", "onnx", "onnxruntime", "scipy", "rich")


def rel_err(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _child(peer, model, batch, runs, warmup, files, out, min_time=MIN_TIMED_S) -> dict:
    cmd = [sys.executable, __file__, "--child", peer, "--model", model, "--batch", str(batch), "--runs", str(runs),
           "--min-time", str(min_time),
           "--warmup", str(warmup), "--files", json.dumps(files), "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{peer} on {model}: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def warm_cache(model, batch, files, tmp) -> dict:
    """One untimed cnngraph process first: it compiles into Numba's on-disk cache whatever
    kernel specialisation is not there yet, so every measured process loads them (a user's
    second run) instead of the first one compiling (which costs seconds and, on ResNet-50,
    about 70 MB more at the peak). Its figures are reported apart."""
    return _child("cnngraph", model, batch, 0, 1, files, Path(tmp) / "warm.npy", min_time=0)


def own_process(model, batch, peers, procs, runs, warmup, files, tmp, min_time=MIN_TIMED_S) -> dict:
    """Each peer in processes of its own, alternating; medians over every run."""
    res = {p: {"times": [], "peak_mb": [], "after_setup_mb": [], "phases": [], "modules": []} for p in peers}
    for _ in range(procs):
        for p in peers:
            d = _child(p, model, batch, runs, warmup, files, Path(tmp) / f"{p}.npy", min_time)
            res[p]["times"] += d["times"]
            for k in ("peak_mb", "after_setup_mb", "phases", "modules"):
                res[p][k].append(d[k])
    outs = {p: np.load(Path(tmp) / f"{p}.npy") for p in peers}
    ref = outs["pytorch" if "pytorch" in peers else "onnxruntime"]
    summary = {}
    for p in peers:
        worst = max(range(procs), key=lambda i: res[p]["peak_mb"][i])  # the phases of its highest-peak process
        summary[p] = {"median_ms": statistics.median(res[p]["times"]) * 1e3, "min_ms": min(res[p]["times"]) * 1e3,
                      "peak_mb": max(res[p]["peak_mb"]), "after_setup_mb": max(res[p]["after_setup_mb"]),
                      "phases": res[p]["phases"][worst], "modules": res[p]["modules"][worst],
                      "rel_err": rel_err(outs[p], ref)}
    return summary


def round_robin_times(model, batch, peers, rounds, warmup, files, pause=PAUSE_S) -> dict:
    """Every peer set up in this process, then ``rounds`` rounds of one run each (after a
    pause of :data:`PAUSE_S`): ``{peer: [seconds]}``."""
    fns = {p: setup(p, model, batch, files)[0] for p in peers}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {p: [] for p in peers}
    for _ in range(rounds):
        for p, fn in fns.items():
            time.sleep(pause)
            t = time.perf_counter()
            fn()
            times[p].append(time.perf_counter() - t)
    return times


def round_robin(model, batch, peers, rounds, warmup, files, procs=1) -> dict:
    """Round-robin in ``procs`` fresh processes, one after the other (each holds every peer
    and times them in turn); medians over all their runs. A process's speed can differ from
    the next one's on a virtual machine (the same runs took 6 or 11 ms in two processes of
    one minute), so one process alone can misreport the ratio."""
    times = {p: [] for p in peers}
    for _ in range(procs):
        cmd = [sys.executable, __file__, "--child", "round-robin", "--model", model, "--batch", str(batch),
               "--rounds", str(rounds), "--warmup", str(warmup), "--files", json.dumps(files),
               "--peers", ",".join(peers)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"round-robin on {model}: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
        for p, t in json.loads(r.stdout.strip().splitlines()[-1]).items():
            times[p] += t
    return {p: {"median_ms": statistics.median(t) * 1e3, "min_ms": min(t) * 1e3} for p, t in times.items()}


def phase_line(summary: dict) -> str:
    """``imports 146 | model 146 | weights 200 (peak 220) | ...``: RSS at the end of each
    phase, its peak during the phase when higher (MB)."""
    return " | ".join(f"{r['phase']} {r['rss_mb']:.0f}" + (f" (peak {r['peak_mb']:.0f})"
                                                            if r["peak_mb"] > r["rss_mb"] + 0.5 else "")
                      for r in summary["phases"])


def gflop(model: str, batch: int) -> float:
    from cnngraph import analyze, zoo

    return 2 * analyze(zoo.build(model)).total.macs * batch / 1e9


def memory_table(models, batches, peers, json_path=None, compile_in_child=False) -> int:
    """``--memory``: each peer's peak and where it is reached, one process per peer (after the
    cache-warming cnngraph process), printed as a markdown table: RSS at the end of each phase
    (MB), the phase's own peak in parentheses when higher, and how much of the final RSS is
    pages of mapped files (shared library code: LLVM's for Numba, ONNX Runtime's own)."""
    rows = []
    print("Memory of each peer's own process (MB): RSS at the end of each phase (its peak within, when higher); "
          "every peer loads the same files written by the parent")
    print("| model | batch | peer | python, numpy | imports | model / plan | weights | compile | executor / session | "
          "first run | runs | peak | of which files | libraries |")
    print("|" + " --- |" * 14)
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            files = write_files(model, batches, tmp, compile_in_child)
            for batch in batches:
                warm_cache(model, batch, files, tmp)
                for p in peers:
                    d = _child(p, model, batch, 1, 1, files, Path(tmp) / f"{p}.npy", min_time=0)
                    rows.append({"model": model, "batch": batch, "peer": p, **d})
                    by = {r["phase"]: r for r in d["phases"]}
                    cells = []
                    for ph in ("python, numpy", "imports", "model|plan", "weights", "compile", "executor|session",
                               "first run", "runs"):
                        r = next((by[k] for k in ph.split("|") if k in by), None)
                        cells.append("" if r is None else f"{r['rss_mb']:.0f}" + (
                            f" ({r['peak_mb']:.0f})" if r["peak_mb"] > r["rss_mb"] + 0.5 else ""))
                    files_mb = d["phases"][-1].get("file_mb") or 0  # resident pages of mapped files at the end
                    print(f"| {model} | {batch} | {p} | " + " | ".join(cells) +
                          f" | **{d['peak_mb']:.0f}** | {files_mb:.0f} | {', '.join(d['modules'])} |", flush=True)
    if json_path:
        from cnngraph.io.files import write_text

        write_text(json_path, json.dumps(rows, indent=1))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help=f"models (default: {', '.join(MODELS)})")
    ap.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 8)")
    ap.add_argument("--procs", type=int, default=2, help="processes per peer in the own-process runs (default 2)")
    ap.add_argument("--runs", type=int, default=8, help="timed runs per process (default 8)")
    ap.add_argument("--min-time", type=float, default=MIN_TIMED_S,
                    help=f"own process: time runs until this many seconds are timed, at most {MAX_RUNS} "
                         f"(default {MIN_TIMED_S:g}; at least --runs)")
    ap.add_argument("--rounds", type=int, default=8, help="round-robin rounds per process (default 8)")
    ap.add_argument("--rr-procs", type=int, default=2,
                    help="processes the round-robin runs in, one after the other (default 2)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="ResNet-50 only, 1 process per peer, 4 runs and rounds")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is installed")
    ap.add_argument("--memory", action="store_true",
                    help="memory only: one process per peer (a warm-up run and one run), the phases of each peer's "
                         "peak as a table; no timing, no round-robin")
    ap.add_argument("--compile", action="store_true",
                    help="cnngraph's process builds the zoo's graph and compiles it (default: loads a saved plan the "
                         "parent wrote, as ONNX Runtime loads the .onnx file)")
    ap.add_argument("--json", help="write every figure to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--peers", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "round-robin":
        print(json.dumps(round_robin_times(args.model[0], args.batch[0], args.peers.split(","), args.rounds,
                                           args.warmup, json.loads(args.files))))
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.model[0], args.batch[0], args.runs, args.warmup,
                               json.loads(args.files), args.out, args.min_time)))
        return 0
    models = args.model or (["resnet50"] if args.quick else list(MODELS))
    batches = args.batch or [1, 8]
    if args.quick:
        args.procs, args.runs, args.rounds, args.rr_procs = 1, 4, 4, 1
    peers = list(PEERS)
    if args.no_torch or not have_torch():
        peers.remove("pytorch")
        print("PyTorch/torchvision not installed (or --no-torch): the PyTorch eager peer is skipped")
    if args.memory:
        return memory_table(args.model or list(MODELS), batches, peers, args.json, args.compile)
    print(f"{threads()} threads; BLAS: {blas_info()}; load average {os.getloadavg()[0]:.1f}")
    print("Memory: every peer's process loads files written by this parent process (ONNX Runtime the .onnx model; "
          + ("cnngraph and PyTorch the .npz weights and their own model code, cnngraph compiling it"
             if args.compile else "cnngraph a saved plan, .cgplan; PyTorch the .npz weights and torchvision's code")
          + "); peak RSS is each child's "
          "VmHWM (its own, not inherited), phases list its RSS at the end of each set-up phase (peak within)")
    ceil0 = sgemm_gflops()
    print(f"SGEMM ceiling (NumPy 2048³ float32, all threads) before: {ceil0:.0f} GFLOP/s", flush=True)
    results = {"threads": threads(), "blas": blas_info(), "sgemm_before": ceil0, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            files = write_files(model, batches, tmp, args.compile)
            for batch in batches:
                gf = gflop(model, batch)
                warm = warm_cache(model, batch, files, tmp)
                own = own_process(model, batch, peers, args.procs, args.runs, args.warmup, files, tmp, args.min_time)
                rr = round_robin(model, batch, peers, args.rounds, args.warmup, files, args.rr_procs)
                row = {"model": model, "batch": batch, "gflop": gf, "own": own, "round_robin": rr,
                       "cache_warming_peak_mb": warm["peak_mb"], "load": os.getloadavg()[0]}
                results["rows"].append(row)
                print(f"{model} batch {batch} ({gf:.1f} GFLOP per batch; load {row['load']:.1f}):")
                for p in peers:
                    o, r = own[p], rr[p]
                    print(f"  {p:12s} own process {o['median_ms']:8.1f} ms (min {o['min_ms']:7.1f}, "
                          f"{gf / o['median_ms'] * 1e3:6.1f} GFLOP/s), peak RSS {o['peak_mb']:6.0f} MB "
                          f"(after set-up {o['after_setup_mb']:5.0f}), err {o['rel_err']:.1e} | "
                          f"round-robin {r['median_ms']:8.1f} ms")
                    print(f"  {'':12s} memory by phase (MB): {phase_line(o)}; loaded: {', '.join(o['modules'])}")
                print(f"  (the untimed cache-warming cnngraph process before them: peak RSS {warm['peak_mb']:.0f} MB)")
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
