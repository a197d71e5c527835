"""Execution backends: the compiler's plan run with NumPy (the generic kernels), Numba (CPU)
or CuPy (GPU).

A backend is a :class:`Backend`: a name, an array module ``xp``, one kernel table
``KERNELS`` (``{op: builder}``; ops it leaves out run the generic kernels of
:mod:`cnngraph.backends.common`), a ``runtime()`` factory, the executor class and its
SGEMM ceiling. :data:`BACKENDS` registers them by name; :func:`get` imports one on demand.

>>> get("numpy").name, sorted(BACKENDS)
('numpy', ['cupy', 'numba', 'numpy'])

May import: :mod:`cnngraph.ir`, :mod:`cnngraph.compiler`, numpy, numba, cupy. Never the CLI.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable

# name -> module whose BACKEND attribute is the backend
BACKENDS = {"numba": "cnngraph.backends.numba_backend", "numpy": "cnngraph.backends.common",
            "cupy": "cnngraph.backends.cupy_backend"}


def sgemm_ceiling(n: int = 2048, repeat: int = 5, dev=None) -> float:
    """GFLOP/s of a float32 matrix product (n×n×n), best of ``repeat`` after one warm-up.

    ``dev`` (a CuPy backend device: ``xp``, ``asarray``, ``matmul``, ``synchronize``,
    ``session``) times the device's own product; ``None`` times NumPy's (all BLAS threads).
    """
    import contextlib

    import numpy as np

    xp, asarray, matmul = (dev.xp, dev.asarray, dev.matmul) if dev is not None else (np, np.asarray, np.matmul)
    sync = dev.synchronize if dev is not None else (lambda: None)
    session = dev.session if dev is not None else contextlib.nullcontext
    rng = np.random.default_rng(0)
    a, b = (asarray(rng.standard_normal((n, n), dtype=np.float32)) for _ in range(2))
    c = xp.empty((n, n), np.float32)
    best = float("inf")
    with session():
        for i in range(repeat + 1):
            sync()
            t = time.perf_counter()
            matmul(a, b, out=c)
            sync()
            if i:  # the first product warms the library up
                best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


@dataclass
class Backend:
    """What an executor needs of a backend.

    ``runtime()`` returns a :class:`cnngraph.backends.common.Runtime`; ``executor`` is the
    executor class (:class:`cnngraph.backends.common.Executor` or a subclass);
    ``sgemm_ceiling()`` the GFLOP/s of its float32 matrix product, named ``gemm_name``;
    ``threads()`` says how its steps use the cores ("" where it has nothing to say);
    ``chunked``: it honours the plan's ``chunk`` (:attr:`cnngraph.compiler.plan.Plan.chunk`);
    ``gates``: its own builders of steps with a squeeze-and-excitation gate (``Step.gate``),
    ``expansions`` of steps with an expansion (``Step.pre``).
    """

    name: str
    xp: Any
    KERNELS: dict
    runtime: Callable
    executor: type
    sgemm_ceiling: Callable[[], float] = sgemm_ceiling
    gemm_name: str = "NumPy 2048³"
    threads: Callable[[], str] = str
    extra: dict = field(default_factory=dict)
    # runs a larger batch in passes of the plan's ``chunk`` images (CPU caches; a GPU wants
    # the whole batch at once)
    chunked: bool = False
    # {op: builder(step, plan, rt, table)} for steps with a gate (Step.gate) that the backend
    # runs its own way; other gated steps run each part's kernel from KERNELS in turn
    gates: dict = field(default_factory=dict)
    # the same for steps with an expansion (Step.pre)
    expansions: dict = field(default_factory=dict)

    def make_executor(self, plan, progress=None):
        """An executor of ``plan`` on this backend (kernels built, weights packed once)."""
        return self.executor(plan, self, progress=progress)


def get(name: str) -> Backend:
    """The backend registered under ``name`` (its module imported now)."""
    from cnngraph.ir.errors import CnnGraphError

    if name not in BACKENDS:
        raise CnnGraphError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    try:
        mod = importlib.import_module(BACKENDS[name])
    except ImportError as e:
        raise CnnGraphError(f"the {name} backend is not available here: {e}") from None
    return mod.BACKEND
