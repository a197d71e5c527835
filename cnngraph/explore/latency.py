"""Measured latency beside counted cost: per-layer tables, cached per machine, summed per point.

A design point's graph is compiled (batch norms folded, epilogues fused) and cut into its
steps, the kernel calls the backend really makes. Each distinct step (op, attributes, input
and output shapes, fused activations and residual) is a *layer* of the latency table; it is
measured once, alone: a one-step graph compiled with seeded weights and timed on the
backend (the fastest of ``repeat`` calls or more, after a warm-up). A point's predicted latency is the sum
of its steps' entries; :func:`measure_points` runs a sample of points end to end to check it.

Tables are cached in the user's cache folder (``$CNNGRAPH_CACHE`` or
``$XDG_CACHE_HOME/cnngraph``, default ``~/.cache/cnngraph``), one JSON file per machine and
backend version: the host, CPU model and core count, the backend's name, the version of its
JIT (Numba, CuPy) and a hash of the backend's kernel sources, so changed kernels are measured
again. The measuring can run on Dask (:func:`measure_on_dask`): every worker measures the
layers it is given and reports which machine it is.

>>> from cnngraph.explore.latency import machine
>>> sorted(machine("numba"))
['backend', 'backend_version', 'cores', 'cpu', 'host', 'key', 'timing']
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnngraph.ir.errors import CnnGraphError

MAX_POINTS = 20_000  # one compiled plan per point: more is a job for --samples


# ---------------------------------------------------------------- machine and cache
def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def backend_version(name: str) -> str:
    """The backend's JIT version and a hash of its kernel sources (what a measurement depends on)."""
    import importlib

    from cnngraph.backends import BACKENDS

    mod = importlib.import_module(BACKENDS[name])
    h = hashlib.sha1()
    base = Path(mod.__file__).parent
    for f in sorted(base.glob("*.py")) + sorted(base.glob("*.cu")):
        h.update(f.read_bytes())
    jit = {"numba": "numba", "cupy": "cupy"}.get(name)
    ver = ""
    if jit:
        ver = importlib.import_module(jit).__version__
    return f"{jit or name}-{ver}-{h.hexdigest()[:12]}"


def auto_backend() -> str:
    """``cupy`` where CuPy sees a GPU, else ``numba``."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return "cupy"
    except Exception:  # no CuPy, no driver, no device: the CPU backend
        pass
    return "numba"


def machine(backend: str = "numba") -> dict:
    """Which machine and backend a measurement comes from; ``key`` names its cache file."""
    info = dict(host=socket.gethostname(), cpu=_cpu(), cores=os.cpu_count(), backend=backend,
                backend_version=backend_version(backend), timing=TIMING)
    tag = hashlib.sha1(json.dumps(info, sort_keys=True).encode()).hexdigest()[:10]
    info["key"] = f"{info['host']}-{backend}-{tag}"
    return info


def cache_dir() -> Path:
    base = os.environ.get("CNNGRAPH_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnngraph"


@dataclass
class LatencyTable:
    """Seconds per layer key, measured on one machine and backend."""

    machine: dict
    seconds: dict = field(default_factory=dict)
    batch: int = 1

    @property
    def path(self) -> Path:
        return cache_dir() / "latency" / f"{self.machine['key']}-b{self.batch}.json"

    @classmethod
    def load(cls, info: dict, batch: int = 1) -> "LatencyTable":
        t = cls(info, {}, batch)
        if t.path.exists():
            try:
                t.seconds = json.loads(t.path.read_text())["seconds"]
            except (ValueError, KeyError):
                t.seconds = {}  # a damaged cache is measured again
        return t

    def save(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(machine=self.machine, batch=self.batch, seconds=self.seconds)))
        tmp.replace(self.path)
        return self.path


# ---------------------------------------------------------------- layers of a design point
def layer_key(step) -> str:
    """A step's identity for the table: what the kernel call depends on."""
    def key(p):
        return [p.op, sorted(p.attrs.items()), [list(map(int, s)) for s in p.in_shapes], list(map(int, p.out_shape)),
                p.act1, p.residual is not None, p.act2]

    # a step with nested steps (a gate, an expansion) is keyed by all its parts; others as before
    return json.dumps([key(p) for p in step.parts] if len(step.parts) > 1 else key(step), default=str,
                      separators=(",", ":"))


def plan_of(g):
    from cnngraph.compiler import compile

    return compile(g)


def one_step_graph(plan, step):
    """The graph of one step: its external inputs as graph inputs, then the nodes it computes."""
    from cnngraph.ir.graph import CnnGraph, add_node

    g = plan.graph
    h = CnnGraph(name=step.node, inputs=[], outputs=[step.output], notes=[])
    inside = set(step.nodes)
    for v in dict.fromkeys(step.reads):
        if v not in inside:
            add_node(h, v, "input", {"shape": tuple(g.nodes[v]["shape"])})
    for n in step.nodes:
        d = g.nodes[n]
        add_node(h, n, d["op"], d["attrs"], d["inputs"], d.get("path", ()), d.get("title"))
    return h


def layers_of(g) -> list:
    """``(key, one-step graph)`` of every step of ``g``'s compiled plan."""
    plan = plan_of(g)
    return [(layer_key(s), s, plan) for s in plan.steps]


# ---------------------------------------------------------------- measuring
_MEASURING = threading.Lock()
MIN_SECONDS = 0.01  # time each layer for at least this long per round (short layers get more calls)
GROUP = 64  # layers held ready (compiled, with their buffers) at once
ROUNDS = 3  # passes over all layers; each layer keeps its fastest
TIMING = "min-v2"  # how a layer is timed (part of the cache key: a new method measures again)


def _time(fn, repeat: int) -> float:
    """The fastest of at least ``repeat`` calls (and :data:`MIN_SECONDS` of calls), after a
    warm-up. The minimum, as timeit advises: on a shared machine every other statistic
    measures the neighbours (a thread woken late, another process's burst) as much as the
    layer, and a model's minimum is then closest to the sum of its layers' minima."""
    fn()  # warm-up: compiles kernels not yet cached, touches memory
    best, n, t0 = float("inf"), 0, time.perf_counter()
    while n < repeat or time.perf_counter() - t0 < MIN_SECONDS:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        n += 1
    return best


def _runner(h, backend: str = "numba", batch: int = 1, per_step: list | None = None):
    """A function running every kernel call of ``h``'s plan once (weights and inputs seeded).

    With ``per_step`` (a list), each call is also timed and the list keeps each step's
    fastest time so far."""
    from cnngraph import backends
    from cnngraph.compiler import compile
    from cnngraph.compiler.weights import init

    plan = compile(h, init(h, seed=0))
    ex = backends.get(backend).make_executor(plan)
    views = ex.arena(batch)
    rng = np.random.default_rng(0)
    for name in plan.inputs:
        views[name][...] = ex.rt.asarray(rng.standard_normal(views[name].shape).astype(np.float32))
    calls = [(fn, [views[v] for v in s.operands], views[s.output], views[s.residual] if s.residual else None)
             for s, fn in zip(plan.steps, ex.fns)]
    sync = getattr(ex.rt, "synchronize", None)

    def run():
        with ex.rt.session():
            for fn, ins, out, res in calls:
                fn(ins, out, res)
        if sync:
            sync()

    def run_timed():
        if not per_step:
            per_step.extend([float("inf")] * len(calls))
        with ex.rt.session():
            for i, (fn, ins, out, res) in enumerate(calls):
                t = time.perf_counter()
                fn(ins, out, res)
                if sync:
                    sync()
                per_step[i] = min(per_step[i], time.perf_counter() - t)

    return run if per_step is None else run_timed


def measure_graph_steps(h, backend: str = "numba", batch: int = 1, repeat: int = 5) -> float:
    """Seconds of the kernel calls of ``h`` (a one-step graph, or a whole model), inputs seeded."""
    return _time(_runner(h, backend, batch), repeat)


def measure_layers(items, backend: str = "numba", batch: int = 1, repeat: int = 5, rounds: int = ROUNDS) -> dict:
    """Measure ``[(key, one-step graph)]`` here; returns ``{"machine": ..., "seconds": {key: s}}``.

    Every layer is timed in ``rounds`` passes over all of them and keeps its fastest: a layer
    whose first pass met a busy moment of the machine gets other chances later. This is what
    Dask workers run (:func:`measure_in_child`): the machine it reports is the worker's. One
    measurement at a time per process: threads of one process share the backend's thread
    pool, and two layers timed at once time each other."""
    best = {}
    with _MEASURING:
        for i in range(0, len(items), GROUP):  # a group's executors at a time: bounded memory
            runs = [(k, _runner(h, backend, batch)) for k, h in items[i:i + GROUP]]
            for _ in range(rounds):
                for k, run in runs:
                    best[k] = min(best.get(k, float("inf")), _time(run, repeat))
        return dict(machine=machine(backend), seconds=best)


def measure_in_child(items, backend: str = "numba", batch: int = 1, repeat: int = 5) -> dict:
    """:func:`measure_layers` in a child process, on its main thread: the task Dask workers run.

    A Dask task runs on a worker thread, and on this machine the Numba backend runs several
    times slower off the main thread (ResNet-18 at 0.5 width, 64²: 0.47 s in a worker thread,
    0.023 s on the main thread), which would time the thread, not the layers."""
    import pickle
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "layers.pkl"
        src.write_bytes(pickle.dumps(dict(items=items, backend=backend, batch=batch, repeat=repeat)))
        out = subprocess.run([sys.executable, "-m", "cnngraph.explore.latency", str(src)], capture_output=True,
                             text=True)
    if out.returncode:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise CnnGraphError(f"latency: measuring child process failed: {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_on_dask(items, backend="numba", batch=1, repeat=5, address=None, workers=2, chunk=None) -> list:
    """Measure layers on a Dask cluster: a LocalCluster of ``workers`` in-process workers, or
    the scheduler at ``address``. The layers are cut into one task per worker (``chunk``
    layers each, by default as many as that makes); each task measures in a child process of
    its worker (:func:`measure_in_child`). Returns one :func:`measure_layers` result per task."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise CnnGraphError("measuring on Dask needs dask.distributed: pip install 'cnngraph[dask]' "
                            "(or measure here without --dask)") from None
    if address and address != "local":
        with Client(address) as client:
            n = max(1, len(client.scheduler_info()["workers"]))
            tasks = _chunks(items, chunk or -(-len(items) // n))
            return client.gather(client.map(measure_in_child, tasks, backend=backend, batch=batch, repeat=repeat,
                                            pure=False))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        tasks = _chunks(items, chunk or -(-len(items) // workers))
        return client.gather(client.map(measure_in_child, tasks, backend=backend, batch=batch, repeat=repeat,
                                        pure=False))


def _chunks(items, n):
    return [items[i:i + n] for i in range(0, len(items), max(1, n))]


# ---------------------------------------------------------------- the sweep's latency columns
@dataclass
class LatencyInfo:
    machine: dict
    layers: int  # distinct layers the space needs
    measured: int  # measured in this run (the others came from the cache)
    workers: list  # machines that measured (Dask)
    cache: str
    sample: int = 0
    errors: list = field(default_factory=list)  # relative errors of the end-to-end sample
    pairs: list = field(default_factory=list)  # (predicted, measured) ms of the sample
    layer_errors: list = field(default_factory=list)  # against the sum of the layers timed in their model

    @property
    def rank_correlation(self) -> float:
        """Spearman's ρ of predicted and measured over the sample: does the table order designs right?"""
        if len(self.pairs) < 3:
            return float("nan")
        p, m = np.array(self.pairs).T
        rp, rm = np.argsort(np.argsort(p)), np.argsort(np.argsort(m))
        return float(np.corrcoef(rp, rm)[0, 1])

    def summary(self) -> str:
        s = (f"latency on {self.machine['backend']} ({self.machine['cpu']}, {self.machine['host']}): "
             f"{self.layers} distinct layers, {self.measured} measured now, {self.layers - self.measured} from "
             f"the cache {self.cache}")
        if self.workers:
            s += f"; measured by {len(self.workers)} Dask task(s) on {', '.join(sorted(set(self.workers)))}"
        if self.errors:
            e = np.abs(np.array(self.errors))
            s += (f"; prediction vs end to end on {self.sample} points: mean |error| {e.mean():.1%}, "
                  f"max {e.max():.1%}, rank correlation {self.rank_correlation:.2f}")
            if self.layer_errors:
                le = np.abs(np.array(self.layer_errors))
                s += (f"; vs the same layers timed inside the model: mean |error| {le.mean():.1%}, "
                      f"max {le.max():.1%}")
            if hasattr(os, "getloadavg"):
                s += f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        return s


def add_latency(table, fam, backend: str = "numba", batch: int = 1, repeat: int = 5, dask=None, workers: int = 2,
                sample: int = 0, seed: int = 0):
    """``table`` with ``latency_ms`` (predicted: sum of the measured layers) and, for ``sample``
    random rows, ``measured_ms`` (end to end; NaN elsewhere). Returns ``(table, LatencyInfo)``."""
    from cnngraph.explore.sweep import knob_columns

    backend = auto_backend() if backend == "auto" else backend
    if len(table) > MAX_POINTS:
        raise CnnGraphError(f"latency: {len(table):,} points need as many compiled plans; sweep at most "
                            f"{MAX_POINTS:,} (use --samples)")
    knobs = knob_columns(table)
    info = machine(backend)
    lt = LatencyTable.load(info, batch)
    per_point, todo = [], {}
    plans = {}
    for i in range(len(table)):
        point = {k: table.row(i)[k] for k in knobs}
        plan = plan_of(fam.build(**point))
        keys = []
        for s in plan.steps:
            k = layer_key(s)
            keys.append(k)
            if k not in lt.seconds and k not in todo:
                todo[k] = one_step_graph(plan, s)
        per_point.append(keys)
        plans[i] = point
    items = list(todo.items())
    measured_by = []
    if items:
        if dask:
            results = measure_on_dask(items, backend, batch, repeat, dask, workers)
        else:
            results = [measure_layers(items, backend, batch, repeat)]
        for r in results:
            if dask:
                measured_by.append(r["machine"]["host"])
            if r["machine"]["key"] != info["key"]:
                # another machine's numbers go to its own table, not into this one
                other = LatencyTable.load(r["machine"], batch)
                other.seconds.update(r["seconds"])
                other.save()
                continue
            lt.seconds.update(r["seconds"])
        lt.save()
    missing = [k for k in todo if k not in lt.seconds]
    if missing:
        raise CnnGraphError(f"latency: {len(missing)} layers were measured on other machines only; measure them "
                            f"here (without --dask) or on workers of this machine type")
    pred = np.array([sum(lt.seconds[k] for k in keys) * 1e3 for keys in per_point])
    cols = {"latency_ms": pred}
    li = LatencyInfo(info, len(set().union(*map(set, per_point))) if per_point else 0, len(items), measured_by,
                     str(lt.path))
    if sample:
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(table), size=min(sample, len(table)), replace=False)
        measured = np.full(len(table), np.nan)
        in_model = np.full(len(table), np.nan)
        for i in rows:
            whole, steps = measure_point(fam.build(**plans[int(i)]), backend, batch, repeat)
            measured[i], in_model[i] = whole * 1e3, steps * 1e3
        cols["measured_ms"] = measured
        cols["measured_layers_ms"] = in_model
        li.layer_errors = [float((pred[i] - in_model[i]) / in_model[i]) for i in rows]
        li.sample = len(rows)
        li.errors = [float((pred[i] - measured[i]) / measured[i]) for i in rows]
        li.pairs = [(float(pred[i]), float(measured[i])) for i in rows]
    return table.with_columns(**cols), li


def measure_point(g, backend: str = "numba", batch: int = 1, repeat: int = 5) -> tuple:
    """An end-to-end run of ``g``'s plan (every kernel call, in order), timed two ways:
    the fastest of ``repeat`` × :data:`ROUNDS` whole runs (seconds), and the sum of each
    step's fastest time over as many timed runs (the layers in their model, where the table
    times them alone). On a busy machine the first also counts the waits between steps that
    a short layer escapes; the second separates those from the table's own error."""
    whole = _time(_runner(g, backend, batch), repeat * ROUNDS)
    steps: list = []
    _time(_runner(g, backend, batch, steps), repeat * ROUNDS)
    return whole, float(sum(steps))


if __name__ == "__main__":  # the child process of measure_in_child
    import pickle
    import sys

    job = pickle.loads(Path(sys.argv[1]).read_bytes())
    print(json.dumps(measure_layers(job["items"], job["backend"], job["batch"], job["repeat"])))
