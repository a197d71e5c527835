"""Threads of the Numba backend: Numba's threading layer, its thread count while a plan runs.

The backend's parallel steps are Numba ``parallel=True`` functions (``prange`` over chunks,
:mod:`.numba_par`). Their threads come from Numba's *threading layer*, chosen once per
process before the first parallel launch:

* **OpenMP** (``omp``) when its library loads (GNU OpenMP, ``libgomp.so.1`` on Linux; the
  Makefile installs Debian's ``libgomp1`` when missing). Its workers spin for a while
  between regions, so a parallel region costs a few microseconds, and it is thread-safe:
  plans may run from several Python threads at once.
* Otherwise Numba's own order (``tbb``, ``omp``, ``workqueue``). Its ``workqueue`` layer
  aborts the process when two Python threads launch parallel regions at the same time, so
  on that layer :func:`session` serialises runs with a lock; a region costs tens of
  microseconds more there.

``NUMBA_THREADING_LAYER`` set by the user is respected. GNU OpenMP is not fork-safe: a
child of ``fork()`` in a process that has run a parallel step is terminated by Numba when
it launches one itself (use the ``spawn`` or ``forkserver`` start methods).

The thread count is :func:`num_threads` (``CNNGRAPH_NUM_THREADS``, else the cores this
process may use), at most Numba's ``NUMBA_NUM_THREADS``. Numba keeps it per Python thread,
so :func:`session` applies it on the thread that runs a plan and restores the previous
value afterwards.

>>> threading_layer() in ("omp", "tbb", "workqueue")
True
>>> with session():
...     import numba
...     numba.get_num_threads() == numba_threads()
True
"""
from __future__ import annotations

import contextlib
import os
import threading

from . import numba_cache  # noqa: F401  - before numba: kernels cache in the user's cache folder
import numba  # noqa: E402
from numba.core import config  # noqa: E402

# GNU OpenMP's workers spin this many times (a ``pause`` each) after a region before they
# sleep, unless the user set GOMP_SPINCOUNT or OMP_WAIT_POLICY; read when libgomp loads, so
# it has no effect if another module (PyTorch) loaded it first. 100,000 spins is about 2.5 ms
# on the 2-core AMD EPYC machines here: a run's regions follow each other within
# microseconds, so the workers stay awake through a run and sleep soon after it. With
# 10,000 (0.3 ms) a run that starts after the machine was idle for 50 ms had 8-13 sleeps
# and wake-ups per thread (EfficientNet-B0 at batch 1: 15-17 ms against 8.5 back to back;
# MobileNet v2 round-robin beside ONNX Runtime 2.6x its time, 1.3x with 100,000). libgomp's
# own default, 300,000 (4-8 ms), held a core from other processes on a loaded machine;
# with one busy process beside MobileNet v2 at batch 1, 100,000 measured 13.2-13.3 ms
# median against 13.9-21.1 with 10,000 and 17.6 with 300,000.
GOMP_SPINCOUNT = 100000
_CORES: dict = {}  # pid -> the cores this process may run on (looked up once per process)
_RUN_LOCK = threading.RLock()  # serialises runs where the layer (or the caller) needs it
_LOCAL = threading.local()  # .n: the thread count of the session running on this Python thread


def num_threads() -> int:
    """``CNNGRAPH_NUM_THREADS`` if set, else the number of cores this process may use.

    >>> num_threads() >= 1
    True
    """
    env = os.environ.get("CNNGRAPH_NUM_THREADS")
    if env:
        return max(1, int(env))
    pid = os.getpid()
    if pid not in _CORES:
        try:
            _CORES[pid] = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            _CORES[pid] = os.cpu_count() or 1
    return _CORES[pid]


def _bound_spinning():
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = str(GOMP_SPINCOUNT)


def openmp_loads() -> bool:
    """Does Numba's OpenMP threading layer load here (its library, ``libgomp.so.1``, found)?

    >>> isinstance(openmp_loads(), bool)
    True
    """
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        return False
    return True


def _launched() -> bool:
    from numba.np.ufunc import parallel

    return bool(parallel._is_initialized)


def choose_layer() -> str:
    """Set Numba's threading layer for this process (before its first parallel launch):
    OpenMP when it loads, else Numba's default order; ``NUMBA_THREADING_LAYER`` set by the
    user wins. Returns the layer asked for (``"omp"`` or ``"default"``, or the user's)."""
    if "NUMBA_THREADING_LAYER" in os.environ or _launched():
        return str(config.THREADING_LAYER)
    _bound_spinning()
    config.THREADING_LAYER = "omp" if openmp_loads() else "default"
    return config.THREADING_LAYER


def threading_layer() -> str:
    """The threading layer in use (``"omp"``, ``"tbb"`` or ``"workqueue"``); launches Numba's
    threads if no parallel function ran yet."""
    numba.get_num_threads()  # launches the layer's threads (once)
    return numba.threading_layer()


def numba_threads() -> int:
    """:func:`num_threads`, at most the threads Numba launched (``NUMBA_NUM_THREADS``)."""
    return max(1, min(num_threads(), config.NUMBA_NUM_THREADS))


def threads() -> int:
    """Numba's thread count on this Python thread: the running session's (remembered, as a
    call of ``numba.get_num_threads`` costs about a microsecond and a step asks two or three
    times), else Numba's.

    >>> with session() as n:
    ...     threads() == n
    True
    """
    return getattr(_LOCAL, "n", 0) or numba.get_num_threads()


def serialised() -> bool:
    """Must runs be serialised? True on the ``workqueue`` layer (not thread-safe)."""
    return threading_layer() == "workqueue"


@contextlib.contextmanager
def session(serialise: bool = False):
    """Held while a plan runs on this thread: Numba's thread count set to :func:`numba_threads`
    (the previous count restored afterwards); runs serialised by a process-wide lock on the
    ``workqueue`` layer, or when ``serialise`` is true (a caller whose own state is shared
    between runs)."""
    lock = _RUN_LOCK if serialise or serialised() else contextlib.nullcontext()
    with lock:
        n = numba_threads()
        before, outer = numba.get_num_threads(), getattr(_LOCAL, "n", 0)
        numba.set_num_threads(n)
        _LOCAL.n = n
        try:
            yield n
        finally:
            numba.set_num_threads(before)
            _LOCAL.n = outer


choose_layer()
