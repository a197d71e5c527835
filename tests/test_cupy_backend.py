"""The CuPy backend's GPU code path, run on the CPU.

The backend's builders, arena, workspace and launches run with NumPy in CuPy's place (the
"shim" device: every CUDA kernel replaced by its NumPy emulation, same signature, index
space and launch checks) and with the CUDA sources compiled for the host (the "host"
device). Both must match the Numba CPU backend: relative error ``max|a − b| / max|b|``
at most 1e-4, float32 on both sides. ``tests/gpu/test_gpu.py`` does the same on a GPU.
"""
import time

import numpy as np
import pytest

from cnngraph import zoo
from cnngraph.backends import cupy_backend as cb
from cnngraph.backends.common import Executor, numpy_backend
from cnngraph.backends.cupy_kernels import KERNELS, Kernel
from cnngraph.backends.numba_backend import run as numba_run
from cnngraph.compiler import compile
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.symbols import H, W
from cases import OP_CASES, TOL, build_case, case_data, rel_err, small_input

# ---------------------------------------------------------------- single ops
@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_op_matches_numba_and_generic(name):
    plan, x = case_data(build_case(name), seed=3, batch=3)
    (ref,) = numba_run(plan, x)
    (generic,) = Executor(plan, numpy_backend()).run(x)
    assert rel_err(generic, ref) <= TOL
    for dev in ("shim", "host"):
        (y,) = cb.executor(plan, device=dev, strict=True).run(x)
        assert y.shape == ref.shape
        assert rel_err(y, ref) <= TOL, dev


def test_residual_cases_really_run_in_place():
    """The in-place cases write the block's output over its residual (the GEMM then goes
    through the workspace; the direct kernel reads each residual element before writing it)."""
    for name in ("residual_block_in_place", "grouped_residual_in_place", "wide_grouped_residual",
                 "upconv_residual_in_place"):
        plan, _ = case_data(build_case(name))
        assert any(cb._aliases(plan, s) for s in plan.steps), name


# ---------------------------------------------------------------- every zoo model
# The host device (the CUDA text compiled for the CPU) on models that together use every kernel.
HOST_MODELS = {"lenet5_1998", "alexnet_v1", "resnet20", "resnet50", "resnext50_32x4d", "mobilenet_v3_small",
               "efficientnet_b0", "shufflenet_v2_x0_5", "densenet121", "inception_v3", "inception_resnet_v2",
               "nasnet_a_mobile", "se_resnext50_32x4d", "googlenet_paper"}


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_matches_numba(name):
    plan, x = case_data(zoo.build(name, input=small_input(name)), seed=7, batch=1)
    ref = numba_run(plan, x)
    for dev in ("shim", "host") if name in HOST_MODELS else ("shim",):
        ys = cb.executor(plan, device=dev).run(x)
        for y, r in zip(ys, ref):
            assert y.shape == r.shape
            assert rel_err(y, r) <= TOL, f"{name} on {dev}"


def test_host_models_use_every_kernel():
    used = set()
    for name in HOST_MODELS:
        plan = compile(zoo.build(name, input=small_input(name)))
        used |= {s.op for s in plan.steps}
    assert {"conv2d", "linear", "add", "mul", "maxpool2d", "avgpool2d", "adaptive_avgpool2d", "lrn", "scale",
            "pad2d", "pad_channels", "concat", "slice", "channel_shuffle", "rbf"} <= used


# ---------------------------------------------------------------- arena, workspace, TF32
@pytest.fixture(scope="module")
def resnet18():
    return case_data(zoo.build("resnet18", input=(3, 32, 32)), seed=5, batch=2)


def test_arena_is_one_allocation_reused(resnet18):
    plan, x = resnet18
    ex = cb.executor(plan, device="shim")
    ex.run(x)
    views = ex.arena(2)
    base = next(iter(views.values())).base
    while base.base is not None:
        base = base.base
    assert base.size == ex.arena_elements
    assert all(np.shares_memory(v, base) for v in views.values())
    ws = ex.rt.extra["workspace"]
    assert all(np.shares_memory(b, base) for b in ws.bufs.values())
    # slots (aligned) then the workspace: exactly the planned bytes plus the scratch
    need = [2 * int(s) for s in plan.memory.slots] + list(ws.sizes(2).values())
    assert ex.arena_elements == sum(-(-s // cb.ALIGN) * cb.ALIGN for s in need)
    ex.run(x)
    assert ex.arena(2) is views  # the second run allocates nothing


def test_workspace_chunks_give_the_same_result(resnet18):
    """A workspace of 3000 elements: most packings run in many chunks of rows (at least
    one row each: 4608 elements for the 3×3 convolutions of 512 channels)."""
    plan, x = resnet18
    whole = cb.executor(plan, device="shim")
    (full,) = whole.run(x)
    ex = cb.executor(plan, device="shim", workspace_elems=3000)
    (chunked,) = ex.run(x)
    assert ex.rt.extra["workspace"].sizes(2)["cols"] == 9 * 512
    assert whole.rt.extra["workspace"].sizes(2)["cols"] == 2 * 16 * 16 * 7 * 7 * 3  # the stem, in one piece
    assert rel_err(chunked, full) <= 1e-6


def test_tf32_emulation_error_is_tf32_sized():
    plan, x = case_data(zoo.build("resnet50", input=(3, 32, 32)), seed=2, batch=2)
    (ref,) = numba_run(plan, x)
    (y,) = cb.executor(plan, device="shim", tf32=True).run(x)
    err = rel_err(y, ref)
    assert 1e-5 < err <= 1e-2  # rounding really happens, and stays within TF32's tolerance


def test_tf32_round_bits():
    """TF32 keeps 10 of float32's 23 mantissa bits, rounding to nearest (halfway away from 0)."""
    x = np.array([1 + 2.0**-10, 1 + 2.0**-11, 1 + 2.0**-12, -(1 + 3 * 2.0**-12), 65504.0, 0.0], np.float32)
    assert cb.tf32_round(x).tolist() == [1 + 2.0**-10, 1 + 2.0**-10, 1.0, -(1 + 2.0**-10), 65504.0, 0.0]
    y = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    r = cb.tf32_round(y)
    assert (r.view(np.uint32) & 0x1FFF == 0).all() and np.abs(r - y).max() <= 2.0**-11 * np.abs(y).max()


# ---------------------------------------------------------------- clear errors
def test_cuda_device_without_gpu_is_a_clear_error():
    try:
        cb.load_cupy()
    except CnnGraphError as e:
        assert "CuPy" in str(e)
    else:  # pragma: no cover - a machine with a GPU
        pytest.skip("CuPy finds a GPU here: tests/gpu/test_gpu.py covers it")
    plan, _ = case_data(build_case("conv3x3_pad"))
    with pytest.raises(CnnGraphError, match="CuPy"):
        cb.executor(plan)


def test_unknown_device_and_symbolic_plan():
    with pytest.raises(CnnGraphError, match="unknown device"):
        cb.get_device("tpu")
    with pytest.raises(CnnGraphError, match="symbolic"):
        cb.executor(compile(zoo.build("resnet18", input=(3, H, W))), device="shim")


def _args(**kw):
    base = dict(x=np.zeros(12, np.float32), s=np.ones(4, np.float32), out=np.zeros(12, np.float32), N=1, HW=3, C=4)
    base.update(kw)
    return base


def test_launches_check_their_arguments():
    dev = cb.get_device("shim", strict=True)
    mul = dev.kernel(KERNELS["mul_bcast"])
    mul(**_args())
    with pytest.raises(CnnGraphError, match="missing arguments"):
        mul(**{k: v for k, v in _args().items() if k != "C"})
    with pytest.raises(CnnGraphError, match="float32"):
        mul(**_args(x=np.zeros(12, np.float64)))
    with pytest.raises(CnnGraphError, match="strided"):
        mul(**_args(x=np.zeros(24, np.float32)[::2]))
    with pytest.raises(CnnGraphError, match="out of range"):
        mul(**_args(HW=4))  # 16 threads on arrays of 12: a GPU would read past the end
    with pytest.raises(CnnGraphError, match="does not fit in an int"):
        mul(**_args(N=2**31))
    im2col = dev.kernel(KERNELS["im2col"])
    geo = dict(W=4, C=2, Ho=4, Wo=4, kh=3, kw=3, sh=1, sw=1, pt=1, pl=1, dh=1, dw=1, cpg=2, G=1, row0=0, rows=16)
    im2col(x=np.zeros(32, np.float32), cols=np.zeros(16 * 18, np.float32), H=4, **geo)
    with pytest.raises(CnnGraphError, match="load index out of range"):  # x holds 4×4×2, not 5×4×2
        im2col(x=np.zeros(32, np.float32), cols=np.zeros(16 * 18, np.float32), H=5, **geo)
    buf = np.zeros(12, np.float32)
    mul(**_args(x=buf, out=buf))  # declared: out may overwrite x element for element
    lrn_ = dev.kernel(KERNELS["lrn"])
    with pytest.raises(CnnGraphError, match="overlaps input x"):
        lrn_(x=buf, out=buf, rows=3, C=4, size=3, alpha=1e-4, beta=0.75, kk=1.0)


def test_emulations_cannot_write_inputs_or_race():
    bad = Kernel("bad", "const float* x, float* out, int n", (("i", "n"),), "out[i] = x[i];",
                 lambda t, x, out, n: t.st(x, t.i, 0.0))
    with pytest.raises(ValueError, match="read-only"):
        cb.get_device("shim").kernel(bad)(x=np.zeros(4, np.float32), out=np.zeros(4, np.float32), n=4)
    race = Kernel("race", "const float* x, float* out, int n", (("i", "n"),), "out[i / 2] = x[i];",
                  lambda t, x, out, n: t.st(out, t.i // 2, t.ld(x, t.i)))
    with pytest.raises(CnnGraphError, match="same element"):
        cb.get_device("shim", strict=True).kernel(race)(x=np.zeros(4, np.float32), out=np.zeros(4, np.float32), n=4)


def test_cli_run_and_bench_with_cupy_say_what_is_missing(capsys):
    from cnngraph.cli import main

    try:
        cb.load_cupy()
    except CnnGraphError:
        pass
    else:  # pragma: no cover - a machine with a GPU
        pytest.skip("CuPy finds a GPU here")
    for cmd in ("run", "bench"):
        assert main([cmd, "lenet5", "--backend", "cupy"]) == 2
        err = capsys.readouterr().err
        assert "cupy backend needs CuPy" in err or "finds no" in err, err


def test_plain_executor_runs_the_backend_too(resnet18):
    """common.Executor (no arena of ours): the workspace allocates its own buffers."""
    plan, x = resnet18
    (ours,) = cb.executor(plan, device="shim").run(x)
    (plain,) = Executor(plan, cb.backend(cb.get_device("shim"))).run(x)
    np.testing.assert_array_equal(ours, plain)


# ---------------------------------------------------------------- the "cuda" device's CuPy calls, on a stand-in
class _FakeRawKernel:
    """cupy.RawKernel as the cuda device calls it: (source, name); then ((grid,), (block,), args).
    It checks the call and runs the launcher the host compiler made from the same source."""

    launches = 0

    def __init__(self, code, name):
        (self.kernel,) = [k for k in KERNELS.values() if k.symbol == name]
        assert code == self.kernel.source()
        self.fn = cb.host_launcher(self.kernel)

    def __call__(self, grid, block, args):
        assert len(grid) == len(block) == 1 and 1 <= grid[0] and block[0] == 256
        assert isinstance(args, tuple) and len(args) == len(self.kernel.params)
        kinds = {"int": np.int32, "float": np.float32}
        for p, a in zip(self.kernel.params, args):  # what CuPy needs: arrays, and scalars of the C type
            assert (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous) if p.pointer \
                else type(a) is kinds[p.ctype], p.name
        type(self).launches += 1
        self.fn(*grid, *block, *[a.ctypes.data if p.pointer else a.item() for p, a in zip(self.kernel.params, args)])


@pytest.fixture
def fake_cupy(monkeypatch):
    """A stand-in for CuPy on NumPy (arrays, matmul, the compute type, a device of compute
    capability 8.0) with kernels run by :class:`_FakeRawKernel`: CudaDevice's code on the CPU."""
    import sys
    import types

    compute = {"type": 1}
    core = types.SimpleNamespace(get_compute_type=lambda dt: compute["type"],
                                 set_compute_type=lambda dt, t: compute.__setitem__("type", t))
    linalg = types.SimpleNamespace(COMPUTE_TYPE_DEFAULT=1, COMPUTE_TYPE_TF32=7)
    core._routines_linalg = linalg
    dev = types.SimpleNamespace(id=0, compute_capability="80", attributes={"MultiProcessorCount": 2})

    class Event:  # a CUDA event: the host clock stands in for the GPU's
        def record(self):
            self.t = time.perf_counter()

        def synchronize(self):
            pass

    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, getDeviceProperties=lambda i: {"name": b"stand-in"},
                                    runtimeGetVersion=lambda: 12090)
    cuda = types.SimpleNamespace(runtime=runtime, Device=lambda *a: dev, Event=Event,
                                 get_elapsed_time=lambda a, b: (b.t - a.t) * 1e3,
                                 get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None))
    fake = types.ModuleType("cupy")
    fake.__getattr__ = lambda name: getattr(np, name)  # the array API is NumPy's
    fake.__version__ = "fake"
    fake.RawKernel, fake.cuda, fake._core, fake.asnumpy = _FakeRawKernel, cuda, core, np.asarray
    fake.get_default_memory_pool = lambda: types.SimpleNamespace(free_all_blocks=lambda: None)
    special = types.ModuleType("cupyx.scipy.special")
    special.erf = cb.NumpyDevice().erf
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "cupy._core", core)
    monkeypatch.setitem(sys.modules, "cupy._core._routines_linalg", linalg)
    monkeypatch.setitem(sys.modules, "cupyx", types.ModuleType("cupyx"))
    monkeypatch.setitem(sys.modules, "cupyx.scipy", types.ModuleType("cupyx.scipy"))
    monkeypatch.setitem(sys.modules, "cupyx.scipy.special", special)
    monkeypatch.setattr(cb, "_BACKEND", None)
    return types.SimpleNamespace(module=fake, dev=dev, compute=compute)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "wide_grouped_residual"])
def test_cuda_device_calls_cupy_correctly(fake_cupy, name):
    g = build_case(name) if name in OP_CASES else zoo.build(name, input=(3, 32, 32))
    plan, x = case_data(g, seed=4, batch=2)
    (ref,) = numba_run(plan, x)
    before = _FakeRawKernel.launches
    ex = cb.executor(plan, tf32=False)
    assert ex.backend.name == "cupy" and ex.xp is fake_cupy.module
    (y,) = ex.run(x)
    assert _FakeRawKernel.launches > before
    assert rel_err(y, ref) <= TOL
    (yd,) = ex.run_device(x)
    np.testing.assert_array_equal(yd, y)
    assert fake_cupy.compute["type"] == 1  # the session restored the compute type


def test_cuda_device_tf32_session_and_old_gpus(fake_cupy):
    seen = []
    d = cb.get_device("cuda", tf32=True)
    with d.session():
        seen.append(fake_cupy.compute["type"])
    assert seen == [7] and fake_cupy.compute["type"] == 1
    fake_cupy.dev.compute_capability = "70"
    with pytest.raises(CnnGraphError, match="compute capability 8.0"):
        cb.get_device("cuda", tf32=True)
    assert cb.BACKEND.name == "cupy"  # what cnngraph run --backend cupy takes


def test_doctests():
    import doctest

    from cnngraph.backends import cupy_kernels

    for mod in (cb, cupy_kernels):
        assert doctest.testmod(mod).failed == 0, mod.__name__


def test_gpu_benchmark_runs_on_the_stand_in(fake_cupy, capsys, monkeypatch):
    """The benchmark's own code (CuPy rows; the PyTorch peer only where torch has CUDA) on a
    small ResNet-50, so a GPU machine runs a script that has run before."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "bench_gpu_resnet50.py"
    spec = importlib.util.spec_from_file_location("bench_gpu_resnet50", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    try:
        import torch

        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    except ImportError:
        pass
    assert bench.main(["--batch", "1", "--size", "32", "--repeat", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "GPU stand-in (compute capability 8.0)" in out
    for prec in ("float32", "tf32"):
        assert any(line.startswith("cnngraph") and prec in line for line in out.splitlines()), out
    assert "peer not measured" in out
