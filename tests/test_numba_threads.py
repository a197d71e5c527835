"""The Numba backend's threads (:mod:`cnngraph.backends.numba_threads`) and its parallel
drivers (:mod:`cnngraph.backends.numba_par`): the threading layer chosen, the thread count
applied on the running thread and restored, chunking, and plans run from two Python threads
at once (on OpenMP, and on Numba's workqueue layer, which aborts the process on concurrent
launches unless runs are serialised).
"""
import subprocess
import sys
import threading

import numba
import numpy as np
import pytest

from cnngraph import zoo
from cnngraph.backends import numba_backend as nb
from cnngraph.backends import numba_par as PAR
from cnngraph.backends import numba_threads as NT
from cnngraph.compiler import compile
from cnngraph.compiler.weights import init


def test_openmp_layer_is_chosen_when_it_loads():
    layer = NT.threading_layer()
    if NT.openmp_loads():
        assert layer == "omp"
    else:  # Numba's order without OpenMP: TBB when installed, else its workqueue
        assert layer in ("tbb", "workqueue")
    assert NT.serialised() == (layer == "workqueue")
    assert nb.describe_threads() == f"{NT.numba_threads()} threads, Numba's {layer} layer"


def test_thread_count_applied_on_the_running_thread_and_restored(monkeypatch):
    monkeypatch.setenv("CNNGRAPH_NUM_THREADS", "1")
    assert NT.num_threads() == 1
    before = numba.get_num_threads()
    with NT.session() as n:
        assert n == 1 and numba.get_num_threads() == 1
        assert PAR.chunks(10 ** 6, work=10 ** 6) == 1  # one thread: never a parallel region
        seen = []
        other = threading.Thread(target=lambda: seen.append(numba.get_num_threads()))
        other.start()
        other.join()
        assert seen == [numba.config.NUMBA_NUM_THREADS]  # per thread: another thread keeps Numba's default
    assert numba.get_num_threads() == before
    # inside a thread of its own: applied there, the caller's count untouched
    monkeypatch.setenv("CNNGRAPH_NUM_THREADS", str(numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(1)
    try:
        inner = []

        def worker():
            with NT.session():
                inner.append(numba.get_num_threads())
            inner.append(numba.get_num_threads())

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert inner[0] == numba.config.NUMBA_NUM_THREADS
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)


def test_thread_count_beyond_numba_threads_is_capped(monkeypatch):
    monkeypatch.setenv("CNNGRAPH_NUM_THREADS", str(numba.config.NUMBA_NUM_THREADS + 5))
    assert NT.num_threads() == numba.config.NUMBA_NUM_THREADS + 5
    with NT.session() as n:
        assert n == numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS


def test_chunks_respect_the_minimum_work():
    with NT.session() as n:
        if n == 1:
            pytest.skip("one core: every step runs serially")
        assert PAR.chunks(1000, work=PAR.MIN_CHUNK_WORK // 10) == min(PAR.CHUNKS_PER_THREAD * n, 100)  # ≥ 10 rows
        assert PAR.chunks(10 ** 6, work=PAR.MIN_CHUNK_WORK) == PAR.CHUNKS_PER_THREAD * n
        assert PAR.chunks(3, work=PAR.MIN_CHUNK_WORK) == min(3, PAR.CHUNKS_PER_THREAD * n)
        assert PAR.chunks(5, work=PAR.MIN_CHUNK_WORK // 2) == min(2, PAR.CHUNKS_PER_THREAD * n)  # ≥ 2 rows a chunk
        assert PAR.chunks(1, work=10 ** 9) == 1


def test_drivers_split_rows_exactly():
    """Every row computed once, whatever the number of chunks (1 = serial, no region)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 5)).astype(np.float32)
    res = rng.standard_normal((37, 5)).astype(np.float32)
    e = np.empty(0, np.float32)
    want = np.maximum(x + res, 0)
    for parts in (1, 2, 3, 7, 37):
        y = np.full_like(x, np.nan)
        PAR.epilogue(parts, x, y, 37, 5, e, e, res, 0, 1, np.float32(0))
        assert np.array_equal(y, want), parts


def _small_net():
    """MobileNet v2 on a 64×64 image: depthwise rows, adds, pools, Winograd-free GEMMs."""
    g = zoo.build("mobilenet_v2", input=(3, 64, 64))
    return compile(g, init(g, seed=0))


def test_two_threads_run_plans_at_once_correctly():
    plan = _small_net()
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    want = nb.executor(plan).run(x)[0]
    exs = [nb.executor(plan) for _ in range(2)]
    errors, outs = [], [[], []]

    def go(i):
        try:
            for _ in range(4):
                outs[i].append(exs[i].run(x)[0])
        except BaseException as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for ys in outs:
        assert len(ys) == 4
        for y in ys:
            assert np.array_equal(y, want)


def test_prange_drivers_from_two_threads_without_a_lock():
    """On a thread-safe layer two Python threads launch regions concurrently (no lock)."""
    if NT.serialised():
        pytest.skip("the workqueue layer is not thread-safe (the subprocess test covers it)")
    x = np.random.default_rng(2).standard_normal((4096, 64)).astype(np.float32)
    e = np.empty(0, np.float32)
    want = np.maximum(x, 0)
    bad = []

    def go():
        with NT.session():
            y = np.empty_like(x)
            for _ in range(200):
                y[...] = np.nan
                PAR.epilogue(PAR.chunks(4096, 64), x, y, 4096, 64, e, e, np.empty((0, 0), np.float32), 1, 0,
                             np.float32(0))
                if not np.array_equal(y, want):
                    bad.append(1)

    ts = [threading.Thread(target=go) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad


WORKQUEUE = """
import threading, numpy as np, numba
from cnngraph.backends import numba_par as PAR, numba_threads as NT
assert NT.threading_layer() == "workqueue" and NT.serialised()
x = np.random.default_rng(2).standard_normal((4096, 64)).astype(np.float32)
e = np.empty(0, np.float32)
want = np.maximum(x, 0)
bad = []
def go():
    y = np.empty_like(x)
    for _ in range(100):
        with NT.session():
            y[...] = np.nan
            PAR.epilogue(max(2, PAR.chunks(4096, 64)), x, y, 4096, 64, e, e, np.empty((0, 0), np.float32), 1, 0,
                         np.float32(0))
        bad.append(not np.array_equal(y, want))
ts = [threading.Thread(target=go) for _ in range(2)]
[t.start() for t in ts]
[t.join() for t in ts]
print(len(bad), sum(bad))
"""


def test_workqueue_layer_serialises_concurrent_runs():
    """Numba's workqueue layer terminates the process on concurrent launches: the session's
    lock makes two threads take turns (a subprocess, as the layer is chosen once a process)."""
    import os

    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": "2"}
    r = subprocess.run([sys.executable, "-c", WORKQUEUE], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["200", "0"]
