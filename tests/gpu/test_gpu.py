"""The CuPy backend on a GPU (``make gpu-test``): outputs equal the Numba backend's.

Relative error ``max|a − b| / max|b|`` at most 1e-4 in float32, at most 1e-2 with TF32
GEMMs. Skips as a whole where CuPy is not installed or finds no GPU (every machine of
ours): nothing here has been run on a GPU yet.
"""

import numpy as np
import pytest

from cnngraph.ir.errors import CnnGraphError

try:
    from cnngraph.backends.cupy_backend import load_cupy

    cupy = load_cupy()
except CnnGraphError as e:
    pytest.skip(f"needs CuPy and a GPU: {e}", allow_module_level=True)


from cases import OP_CASES as CASES, build_case as _build_case, case_data, rel_err, small_input  # noqa: E402

from cnngraph import zoo  # noqa: E402
from cnngraph.backends import cupy_backend as cb  # noqa: E402
from cnngraph.backends.numba_backend import run as numba_run  # noqa: E402

pytestmark = pytest.mark.gpu
TOL, TF32_TOL = 1e-4, 1e-2
AMPERE = int(cupy.cuda.Device().compute_capability) >= 80


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_numba_and_shim(name):
    plan, x = case_data(_build_case(name), seed=3, batch=3)
    (ref,) = numba_run(plan, x)
    (shim,) = cb.executor(plan, device="shim").run(x)
    (gpu,) = cb.executor(plan, tf32=False).run(x)
    assert rel_err(gpu, ref) <= TOL
    assert rel_err(gpu, shim) <= TOL


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_matches_numba(name):
    plan, x = case_data(zoo.build(name, input=small_input(name)), seed=7, batch=2)
    ref = numba_run(plan, x)
    for y, r in zip(cb.executor(plan, tf32=False).run(x), ref):
        assert y.shape == r.shape
        assert rel_err(y, r) <= TOL, name


@pytest.fixture(scope="module")
def resnet50():
    return case_data(zoo.build("resnet50"), seed=11, batch=8)


def test_resnet50_224_float32_and_tf32(resnet50):
    plan, x = resnet50
    (ref,) = numba_run(plan, x)
    (fp32,) = cb.executor(plan, tf32=False).run(x)
    assert rel_err(fp32, ref) <= TOL
    if not AMPERE:
        pytest.skip("TF32 needs compute capability 8.0+")
    (tf32,) = cb.executor(plan, tf32=True).run(x)
    assert rel_err(tf32, ref) <= TF32_TOL
    assert rel_err(tf32, fp32) > 0  # the tensor cores really ran in TF32


def test_tf32_setting_is_restored(resnet50):
    plan, x = resnet50
    before = cupy._core.get_compute_type(np.float32)
    if AMPERE:
        cb.executor(plan, tf32=True).run(x[:1])
    cb.executor(plan, tf32=False).run(x[:1])
    assert cupy._core.get_compute_type(np.float32) == before


def test_device_run_and_memory_stay_put(resnet50):
    """run_device agrees with run; after the first run, later runs allocate nothing new."""
    plan, x = resnet50
    ex = cb.executor(plan, tf32=False)
    (host,) = ex.run(x)
    xd = cupy.asarray(x)
    (dev,) = ex.run_device(xd)
    np.testing.assert_array_equal(cupy.asnumpy(dev), host)
    pool = cupy.get_default_memory_pool()
    del dev
    ex.run_device(xd)
    total = pool.total_bytes()
    for _ in range(3):
        ex.run_device(xd)
    assert pool.total_bytes() == total
    assert ex.arena_elements * 4 >= plan.memory.at(8).planned_bytes


def test_cli_run_and_bench(capsys):
    from cnngraph.cli import main

    assert main(["run", "resnet18", "--backend", "cupy", "--input", "3,64,64", "--batch", "2"]) == 0
    assert main(["bench", "resnet18", "--backend", "cupy", "--input", "3,64,64", "--repeat", "2", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "on cupy" in out and "cuBLAS" in out
