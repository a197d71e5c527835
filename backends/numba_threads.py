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
# it has no effect if another module (PyTorch) loaded it first. 1,000,000 spins is about
# 25 ms on the 2-core AMD EPYC machines here (ONNX Runtime's worker spins 42-48 ms after a
# run). A worker that sleeps between runs is slow to wake on a virtual machine (its idle
# core is descheduled): MobileNet v2 at batch 1 took 10-11.4 ms after 50 ms of idleness with
# 100,000 spins (2.5 ms) against 5.6-7 back to back, and 7-8 with 1,000,000; beside ONNX
# Runtime in one process, 11.4-11.7 ms (ORT 5.7-10.1) against 7.0-8.7 (ORT 5.6-6.5); with one
# busy process beside it, 123-135 ms against 21-23 (ORT 10-18). With three busy processes
# on the two cores it costs: 49-57 ms against 25-27 with 100,000 (ORT 18-24); set
# GOMP_SPINCOUNT lower (or OMP_WAIT_POLICY=passive) on such a machine. Earlier values:
# 10,000 (0.3 ms), 100,000.
GOMP_SPINCOUNT = 1000000
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
