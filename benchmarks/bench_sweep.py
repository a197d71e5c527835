"""Speed of design-space sweeps: closed-form evaluation vs building and analyzing each point.

Target (issue 16): at least 10⁶ design points per second of a ResNet-50-family closed form
on a 2-core machine. The family: ResNet-50 with width multiplier ``a`` (first stage
``make_divisible(64·a)``) and resolution ``r``.

Two measurements, each in its own Python process (so neither warms the other's caches):

* ``closed``: ``cnngraph.explore.sweep("resnet50", space)`` on a grid of about 4 million
  points (a = 0.25..2 step 0.0001, r = 64..512 step 2); the closed form is derived once
  (reported apart) and evaluated on NumPy arrays; points/s = points / evaluation time, and
  also over the whole call (derivation included);
* ``graph``: the peer: ``zoo.build`` + ``analyze`` of one graph per design point, for
  ``--graph-points`` random points of the same space (distinct widths, so no shape cache
  hit is shared between two points more than a real sweep would share).

    .venv/bin/python benchmarks/bench_sweep.py [--repeat 3] [--graph-points 20]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def closed(repeat: int) -> dict:
    import numpy as np

    from cnngraph.explore import Space, sweep

    space = Space({"a": np.round(np.arange(0.25, 2.00005, 0.0001), 4), "r": np.arange(64, 513, 2)})
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        t = sweep("resnet50", space)
        total = time.perf_counter() - t0
        m = t.meta
        if best is None or m["eval_seconds"] < best["eval_s"]:
            best = dict(points=len(t), eval_s=m["eval_seconds"], derive_s=m["derive_seconds"], total_s=total)
    return best


def graph(points: int) -> dict:
    import numpy as np

    from cnngraph import analyze
    from cnngraph.explore import family

    fam = family("resnet50")
    rng = np.random.default_rng(0)
    a = np.round(rng.uniform(0.25, 2.0, points), 4)
    r = rng.integers(32, 257, points) * 2
    t0 = time.perf_counter()
    for ai, ri in zip(a.tolist(), r.tolist()):
        analyze(fam.build(a=ai, r=ri)).total.macs
    dt = time.perf_counter() - t0
    return dict(points=points, seconds=dt)


def run_child(kind: str, arg: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(arg)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--graph-points", type=int, default=20)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, arg = args.child
        print(json.dumps(closed(int(arg)) if kind == "closed" else graph(int(arg))))
        return
    c = run_child("closed", args.repeat)
    g = run_child("graph", args.graph_points)
    eval_rate = c["points"] / c["eval_s"]
    total_rate = c["points"] / c["total_s"]
    graph_rate = g["points"] / g["seconds"]
    print(f"ResNet-50 family (a × r), {c['points']:,} design points")
    print(f"  closed form: derived once in {c['derive_s']:.2f} s, evaluated in {c['eval_s']:.3f} s: "
          f"{eval_rate:,.0f} points/s ({total_rate:,.0f} points/s with derivation)")
    print(f"  build + analyze one graph per point: {g['seconds'] / g['points'] * 1e3:.1f} ms/point over "
          f"{g['points']} points: {graph_rate:,.1f} points/s")
    print(f"  ratio: closed form {eval_rate / graph_rate:,.0f}× faster per point "
          f"({total_rate / graph_rate:,.0f}× with derivation); target ≥ 1,000,000 points/s: "
          f"{'met' if eval_rate >= 1e6 else 'NOT met'}")


if __name__ == "__main__":
    main()
