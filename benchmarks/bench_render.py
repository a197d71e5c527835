"""How long drawing the whole zoo takes (diagrams only: graph, DOT, `dot` -> SVG).

The budget is 60 s for the whole zoo on 2 cores. Timings on a shared machine are noisy, so
the script also draws a peer in the same run: the plain Graphviz drawing of the same graphs
(one node per layer, no folding, clusters or collapsing — what `nx.nx_agraph`-style export
gives), on the models small enough for it: plain Graphviz needs minutes for a 4,000-layer
ResNet-1202 or for a DenseNet's 2,000 dense-connectivity edges.

    python benchmarks/bench_render.py [--jobs 2] [--peer-max-edges 400]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import graphviz

from cnngraph import zoo
from cnngraph.present.render import dot_to, svg_of, to_dot


def ours(name: str) -> tuple[str, float, int]:
    t = time.perf_counter()
    svg = svg_of(to_dot(zoo.build(name)))
    return name, time.perf_counter() - t, len(svg)


def naive_dot(g) -> str:
    """The peer: every layer a node labelled with its op, every edge drawn."""
    d = graphviz.Digraph()
    ids = {n: f"n{i}" for i, n in enumerate(g.nodes)}
    for n, data in g.nodes(data=True):
        d.node(ids[n], label=data["op"], shape="box")
    for u, v in g.edges:
        d.edge(ids[u], ids[v])
    return d.source


def peer(name: str) -> tuple[str, float, int]:
    t = time.perf_counter()
    svg = dot_to(naive_dot(zoo.build(name)), "svg")
    return name, time.perf_counter() - t, len(svg)


def run(fn, names, jobs):
    t = time.perf_counter()
    if jobs <= 1:
        out = [fn(n) for n in names]
    else:
        with ProcessPoolExecutor(jobs) as ex:
            out = list(ex.map(fn, names, chunksize=1))
    return time.perf_counter() - t, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--peer-max-edges", type=int, default=400)
    args = p.parse_args(argv)
    names = zoo.names()
    graphs = {n: zoo.build(n) for n in names}
    sizes = {n: g.number_of_nodes() for n, g in graphs.items()}
    edges = {n: g.number_of_edges() for n, g in graphs.items()}
    del graphs
    print(f"{len(names)} zoo models, {sum(sizes.values()):,} layers; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")

    seq, rows = run(ours, names, 1)
    print(f"cnngraph diagrams, whole zoo, sequential: {seq:.1f} s", flush=True)
    par, _ = run(ours, names, args.jobs)
    print(f"cnngraph diagrams, whole zoo: {seq:.1f} s sequential, {par:.1f} s with {args.jobs} processes "
          f"(budget 60 s); {sum(r[2] for r in rows) / 1e6:.2f} MB of SVG")
    for name, dt, size in sorted(rows, key=lambda r: -r[1])[:5]:
        print(f"  slowest: {name:24s} {dt:5.2f} s  {sizes[name]:5d} layers  {size / 1e3:6.1f} kB")

    small = [n for n in names if edges[n] <= args.peer_max_edges]
    t_ours, _ = run(ours, small, 1)
    t_peer, peer_rows = run(peer, small, 1)
    print(f"peer (plain Graphviz, one node per layer) on the {len(small)} models with <= {args.peer_max_edges} edges: "
          f"cnngraph {t_ours:.1f} s, peer {t_peer:.1f} s: cnngraph/peer = {t_ours / t_peer:.2f}; "
          f"peer SVG {sum(r[2] for r in peer_rows) / 1e6:.2f} MB")
    return 0 if par <= 60 else 1


if __name__ == "__main__":
    sys.exit(main())
