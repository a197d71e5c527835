"""Speed of closed-form formulas: every named block, and whole zoo models' totals.

Targets (task "Closed-form cost formulas"): a named block's formulas in at most 50 ms
after import; a whole zoo model's closed-form totals in at most 1 s.

Blocks are timed as a user meets them: the first ``block(name)`` call (with its text
rendering) in a fresh Python process right after ``import cnngraph.formulas``, best of
``--repeat`` processes ("first call"); and in this process with every cache cleared
(sympy's and cnngraph's shape/cost caches, "cold"). Models are timed cold in this process
(build on 3×32h×32w, analyze, per-stage totals, text). The peer, measured in the same run,
is the numeric analysis of the same graph (``cnngraph.analyze`` at C = 64, 56×56 for
blocks; at the model's usual input for networks): the ratio is what the closed form costs
over plain numeric counting.

    .venv/bin/python benchmarks/bench_formulas.py [--repeat 3] [--models resnet50 densenet121 ...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import sympy.core.cache

import cnngraph
from cnngraph import analyze, zoo
from cnngraph.analysis import cost as _cost
from cnngraph.ir import graph as _graph
from cnngraph.formulas import block, blocks, names, network


def cold():
    sympy.core.cache.clear_cache()
    _graph._apply.cache_clear()
    _cost._node_costs.cache_clear()
    blocks._derive.cache_clear()


def timed(fn, repeat, cpu=False):
    times, cpus = [], []
    for _ in range(repeat):
        cold()
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    if cpu:
        return min(times), statistics.median(times), min(cpus)
    return min(times), statistics.median(times)


def import_time(module) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def first_call(name) -> tuple:
    """(wall, CPU) seconds of the first ``block(name).to("text")`` in a fresh process, after
    the import. CPU time is this process's own work: on a shared, loaded machine it is the
    figure that does not depend on the other processes."""
    code = ("import time, cnngraph.formulas as F\n"
            "t, c = time.perf_counter(), time.process_time(); F.block(%r).to('text')\n"
            "print(time.perf_counter() - t, time.process_time() - c)" % name)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def numeric_block(name):
    spec = blocks.BLOCKS[name]
    values = {"C": 64, "H": 56, "W": 56, "C_in": 64, "C_out": 128, "K": 3, "G": 4, "c": 16, "k": 32, "t": 6, "r": 16,
              "L": 6, "n": 1, "c_1": 64, "c_3r": 96, "c_3": 128, "c_5r": 16, "c_5": 32, "c_p": 32}
    sizes = {k: values[k] for k in spec.defaults if k in values}
    return lambda: analyze(spec.build(**sizes))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--models", nargs="*", default=None, help="zoo models (default: every model)")
    args = p.parse_args(argv)

    print(f"cnngraph {cnngraph.__version__}; best of {args.repeat}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (wall times scale with it)")
    imp = min(import_time("cnngraph.formulas") for _ in range(args.repeat))
    base = min(import_time("cnngraph") for _ in range(args.repeat))
    print(f"import cnngraph: {base:.2f} s; import cnngraph.formulas: {imp:.2f} s (zoo block modules and the sympy "
          f"warm-up included)")
    print(f"\n{'block':20s} {'first call ms':>13s} {'CPU ms':>7s} {'cold ms':>8s} {'numeric ms':>11s} {'ratio':>6s}"
          f"  {'≤ 50 ms':>7s}")
    worst = worst_cpu = 0.0
    for name in names():
        runs = [first_call(name) for _ in range(args.repeat)]
        first, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        best, _ = timed(lambda: _show(block(name)), args.repeat)
        peer, _ = timed(numeric_block(name), args.repeat)
        worst, worst_cpu = max(worst, first), max(worst_cpu, cpu)
        print(f"{name:20s} {first * 1e3:13.1f} {cpu * 1e3:7.1f} {best * 1e3:8.1f} {peer * 1e3:11.1f} {first / peer:6.0f}"
              f"  {'yes' if first <= 0.05 else 'NO':>7s}")
    print(f"slowest block, first call after import: {worst * 1e3:.1f} ms wall, {worst_cpu * 1e3:.1f} ms CPU")

    models = args.models or zoo.names()
    print(f"\n{'model':24s} {'closed form s':>14s} {'median':>8s} {'CPU s':>6s} {'numeric s':>10s} {'ratio':>7s}"
          f"  {'≤ 1 s':>6s}")
    worst = worst_cpu = 0.0
    failed = []
    for m in models:
        try:
            best, med, cpu = timed(lambda: _show(network(m)), args.repeat, cpu=True)
        except Exception as e:  # a model that does not build symbolically: say so, go on
            failed.append(f"{m}: {type(e).__name__}: {e}")
            continue
        peer, _ = timed(lambda: analyze(zoo.build(m)), args.repeat)
        worst, worst_cpu = max(worst, best), max(worst_cpu, cpu)
        print(f"{m:24s} {best:14.3f} {med:8.3f} {cpu:6.3f} {peer:10.3f} {best / peer:7.1f}  "
              f"{'yes' if best <= 1 else 'NO':>6s}")
    print(f"slowest model: {worst:.3f} s wall, {worst_cpu:.3f} s CPU")
    for f in failed:
        print(f"not symbolic: {f}")


def _show(obj):
    """Formulas count as done once printed (the slides form is part of the work)."""
    return obj.to("text")


if __name__ == "__main__":
    main()
