"""The CuPy GPU backend: the execution plan on an NVIDIA GPU, float32, channels last.

Convolution packs its input (the ``im2col`` kernel) and multiplies with ``cupy.matmul``
(cuBLAS; CuPy 14 ships no cuDNN); a 1×1 stride-1 convolution is a plain GEMM; depthwise and
narrow grouped convolutions run a direct kernel. The epilogue of a step (folded batch-norm
bias, activation, residual add, activation) is one element-wise kernel over the GEMM's
output. Pooling, SE gating, softmax and LRN have their own kernels
(:mod:`cnngraph.backends.cupy_kernels`); memory copies (concat, slice, shuffle, flatten,
padding) and the normalisations no zoo model uses run the generic ``xp`` kernels on CuPy.
Values live in one arena allocated once per batch size (the plan's slots) with the
im2col/GEMM workspace at its end; ``tf32=True`` lets cuBLAS round GEMM inputs to TF32.

The same builders run on three *devices*, so the GPU code path is tested without a GPU:

* ``"cuda"``: CuPy, ``cupy.RawKernel`` on the CUDA sources, cuBLAS GEMMs (needs a GPU);
* ``"shim"``: NumPy in CuPy's place; each kernel runs its NumPy emulation (same signature,
  index space and launch checks as the CUDA source), GEMMs on NumPy (TF32 emulated by
  rounding the GEMM inputs);
* ``"host"``: the CUDA sources themselves compiled for the CPU by the host C++ compiler,
  the grid run as a loop (tests and debugging).

>>> import numpy as np
>>> from cnngraph import zoo
>>> from cnngraph.compiler import compile
>>> from cnngraph.compiler.weights import init
>>> g = zoo.build("lenet5")
>>> y, = run(compile(g, init(g, seed=0)), np.ones((2, 1, 28, 28), np.float32), device="shim")
>>> y.shape
(2, 10)
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading

import numpy as np

from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.ops import act_code, act_param, bn_scale_shift
from cnngraph.backends import Backend, sgemm_ceiling
from cnngraph.compiler.plan import Plan

from cnngraph.backends import common
from cnngraph.backends.common import Executor, Runtime, avgpool_divisor, conv_geometry, nhwc, pool_geometry, weight
from cnngraph.backends.cupy_kernels import ACTS, KERNELS as K, emulate, host_source, launch_config, marshal

NAME = "cupy"
# The im2col workspace holds at most this many float32 elements (256 MB); larger packings
# run in chunks of output rows.
WORKSPACE_ELEMS = 1 << 26
ALIGN = 64  # elements (256 bytes) between the arena's buffers
DEVICES = ("cuda", "shim", "host")


# ---------------------------------------------------------------- devices
def tf32_round(a: np.ndarray) -> np.ndarray:
    """float32 rounded to TF32 (10 mantissa bits; to nearest, ties away from zero): what a TF32
    tensor-core GEMM reads. For the shim's TF32 emulation."""
    b = np.ascontiguousarray(a, np.float32).view(np.uint32)
    return ((b + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


class NumpyDevice:
    """NumPy in CuPy's place (the "shim"): each kernel runs its NumPy emulation."""

    name = "shim"
    gemm_name = "NumPy"
    xp = np

    def __init__(self, tf32: bool | None = None, strict: bool = False):
        self.tf32, self.strict = bool(tf32), strict
        self.erf = common._numpy_erf()

    def asarray(self, a):
        # no copy when already float32: kernels only read weights (const, read-only views)
        return np.ascontiguousarray(a, dtype=np.float32)

    def to_host(self, a):
        return np.asarray(a)

    def is_array(self, a) -> bool:
        return isinstance(a, np.ndarray)

    def kernel(self, k):
        def launch(**args):
            emulate(k, marshal(k, args, self.is_array), self.strict)

        return launch

    def matmul(self, a, b, out):
        if self.tf32:
            a, b = tf32_round(a), tf32_round(b)
        np.matmul(a, b, out=out)

    def session(self):
        # BLAS on one thread while a plan runs: the CPU devices are about semantics, and BLAS
        # threads spinning on small GEMMs beside other work only cost time (3× on ResNet-1202).
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - installed with numba's dependencies
            return contextlib.nullcontext()
        return threadpool_limits(limits=1, user_api="blas")

    def synchronize(self):
        pass


_HOST_LIBS: dict = {}
_HOST_LOCK = threading.Lock()


def host_library(kernels=None):
    """The CUDA sources compiled for the CPU (``c++ -O2``), cached by content in the temp dir."""
    kernels = list((kernels or K).values())
    src = host_source(kernels)
    key = hashlib.sha256(src.encode()).hexdigest()[:16]
    with _HOST_LOCK:
        if key in _HOST_LIBS:
            return _HOST_LIBS[key]
        cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
        if not cxx:
            raise CnnGraphError("the host device compiles the CUDA sources for the CPU and needs a C++ compiler "
                                "(c++ or g++, or $CXX); none found")
        d = os.path.join(tempfile.gettempdir(), f"cnngraph-host-{os.getuid() if hasattr(os, 'getuid') else 0}")
        os.makedirs(d, exist_ok=True)
        so = os.path.join(d, f"kernels-{key}.so")
        if not os.path.exists(so):
            cpp = os.path.join(d, f"kernels-{key}.cpp")
            with open(cpp, "w") as f:
                f.write(src)
            tmp = f"{so}.{os.getpid()}.tmp"
            r = subprocess.run([cxx, "-O2", "-shared", "-fPIC", "-o", tmp, cpp], capture_output=True, text=True)
            if r.returncode:
                raise CnnGraphError(f"compiling the CUDA sources for the host failed:\n{r.stderr[-4000:]}")
            os.replace(tmp, so)
        lib = ctypes.CDLL(so)
        _HOST_LIBS[key] = lib
        return lib


_CTYPES = {"int": ctypes.c_int, "float": ctypes.c_float}


def host_launcher(k):
    """``launch_<kernel>(grid, block, *args)`` of the host library, typed from the kernel's signature
    (pointers are passed as addresses: ``array.ctypes.data``)."""
    fn = getattr(host_library(), f"launch_{k.symbol}")
    fn.restype = None
    fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [ctypes.c_void_p if p.pointer else _CTYPES[p.ctype] for p in k.params]
    return fn


class HostDevice(NumpyDevice):
    """The CUDA kernel sources compiled for the CPU; the grid runs as a loop (tests, debugging)."""

    name = "host"
    MAX_BLOCKS = 64  # a few blocks, so the grid-stride loops really stride

    def __init__(self, tf32: bool | None = None):
        super().__init__(tf32)
        host_library()  # compile now: a missing compiler is an error here, not at the first launch

    def kernel(self, k):
        fn = host_launcher(k)

        def launch(**args):
            vals = marshal(k, args, self.is_array)
            grid, block = launch_config(k.total({p.name: v for p, v in zip(k.params, vals)}), self.MAX_BLOCKS)
            fn(grid, block, *[v.ctypes.data if p.pointer else v.item() for p, v in zip(k.params, vals)])

        return launch


def load_cupy():
    """CuPy, with a GPU it can use; otherwise a clear :class:`CnnGraphError`."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a CUDA library CuPy could not load
        raise CnnGraphError("the cupy backend needs CuPy and an NVIDIA GPU: install the gpu extra "
                            "(pip install 'cnngraph[gpu]', which brings cupy-cuda12x) on a machine with a CUDA "
                            f"driver; CuPy could not be imported here ({type(e).__name__}: {e})") from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        raise CnnGraphError(f"CuPy {cupy.__version__} is installed but finds no usable GPU ({e})") from None
    if n == 0:
        raise CnnGraphError(f"CuPy {cupy.__version__} is installed but finds no GPU")
    return cupy


class CudaDevice:
    """CuPy on a GPU: ``cupy.RawKernel`` on each kernel's CUDA source, GEMMs on cuBLAS.

    ``tf32``: None keeps CuPy's setting (``CUPY_TF32=1`` in the environment turns TF32 on);
    True or False set the cuBLAS compute type of float32 GEMMs (``cupy._core.set_compute_type``:
    ``COMPUTE_TYPE_TF32``, i.e. ``CUBLAS_COMPUTE_32F_FAST_TF32``, or the default
    ``CUBLAS_COMPUTE_32F``) while a plan runs, and restore it afterwards.
    """

    name = "cuda"
    gemm_name = "cuBLAS"

    def __init__(self, tf32: bool | None = None):
        cupy = load_cupy()
        self.cupy = self.xp = cupy
        self.tf32 = tf32
        if tf32:
            cc = cupy.cuda.Device().compute_capability  # "80", "90"...
            if int(cc) < 80:
                raise CnnGraphError(f"TF32 needs a GPU of compute capability 8.0 or newer; this one is "
                                    f"{cc[:-1]}.{cc[-1]}")
        from cupyx.scipy.special import erf

        self.erf = erf
        self._raw: dict = {}
        # grid-stride launches: a few waves of blocks per multiprocessor, whatever the size
        self.max_blocks = 32 * int(cupy.cuda.Device().attributes.get("MultiProcessorCount", 80))

    def asarray(self, a):
        return self.cupy.asarray(np.asarray(a, np.float32))

    def to_host(self, a):
        return self.cupy.asnumpy(a)

    def is_array(self, a) -> bool:
        return isinstance(a, self.cupy.ndarray)

    def kernel(self, k):
        if k.name not in self._raw:
            self._raw[k.name] = self.cupy.RawKernel(k.source(), k.symbol)
        raw = self._raw[k.name]

        def launch(**args):
            vals = marshal(k, args, self.is_array)
            grid, block = launch_config(k.total({p.name: v for p, v in zip(k.params, vals)}), self.max_blocks)
            raw((grid,), (block,), tuple(vals))

        return launch

    def matmul(self, a, b, out):
        if a.ndim == 2:
            self.cupy.matmul(a, b, out=out)
            return
        # One 2-D GEMM per group: CuPy's 2-D matmul calls cublasGemmEx with the compute type
        # set in session() (TF32 or not), its batched matmul a plain float32 one regardless.
        for g in range(a.shape[0]):
            self.cupy.matmul(a[g], b[g], out=out[g])

    @contextlib.contextmanager
    def session(self):
        if self.tf32 is None:
            yield
            return
        from cupy._core import _routines_linalg as linalg

        core = self.cupy._core
        old = core.get_compute_type(np.float32)
        core.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if self.tf32 else linalg.COMPUTE_TYPE_DEFAULT)
        try:
            yield
        finally:
            core.set_compute_type(np.float32, old)

    def synchronize(self):
        self.cupy.cuda.get_current_stream().synchronize()


def get_device(kind: str = "cuda", tf32: bool | None = None, strict: bool = False):
    """A device to run plans on: ``"cuda"`` (CuPy on a GPU), ``"shim"`` (NumPy) or ``"host"``."""
    if kind == "cuda":
        return CudaDevice(tf32)
    if kind == "shim":
        return NumpyDevice(tf32, strict)
    if kind == "host":
        return HostDevice(tf32)
    raise CnnGraphError(f"unknown device {kind!r} of the cupy backend; choose one of {', '.join(DEVICES)}")


# ---------------------------------------------------------------- arena and workspace
class Workspace:
    """Scratch buffers of the kernels (im2col columns, GEMM blocks), carved from the arena.

    Builders :meth:`reserve` what each key needs as a function of the batch size; the
    executor binds the buffers when it allocates the arena; kernels :meth:`get` views.
    """

    def __init__(self, xp=np):
        self.xp = xp
        self.needs: dict = {}
        self.bufs: dict = {}

    def reserve(self, key: str, per_batch) -> None:
        self.needs.setdefault(key, []).append(per_batch)

    def sizes(self, n: int) -> dict:
        return {key: max(int(f(n)) for f in fs) for key, fs in self.needs.items()}

    def get(self, key: str, shape):
        size = int(np.prod(shape))
        buf = self.bufs.get(key)
        if buf is None or size > buf.size:
            # Not bound by CupyExecutor.arena (the plain common.Executor runs this backend
            # too): a buffer of its own, grown during the first run only.
            buf = self.bufs[key] = self.xp.empty(size, np.float32)
        return buf[:size].reshape(shape)


class CupyExecutor(Executor):
    """The executor with one arena per batch size (slots, then the workspace) and device-side runs."""

    def arena(self, n: int) -> dict:
        if n not in self._arenas:
            mem, ws = self.plan.memory, self.rt.extra["workspace"]
            self._arenas, ws.bufs = {}, {}  # drop the previous batch size's arena first: arenas are large
            sizes = [n * int(s) for s in mem.slots]
            extra = ws.sizes(n)
            offsets, total = [], 0
            for s in sizes + list(extra.values()):
                offsets.append(total)
                total += -(-max(s, 1) // ALIGN) * ALIGN
            buf = self.xp.empty(total, np.float32)
            slot = [buf[o:o + s] for o, s in zip(offsets, sizes)]
            ws.bufs = {k: buf[o:o + s] for (k, s), o in zip(extra.items(), offsets[len(sizes):])}
            views = {name: slot[v.slot][: n * int(v.size)].reshape((n,) + nhwc(v.shape))
                     for name, v in self.plan.values.items()}
            self.arena_elements = total
            self._arenas = {n: views}
        return self._arenas[n]

    def run_device(self, *inputs) -> list:
        """Run on device arrays in PyTorch layout (N, C, H, W); returns device arrays (copies)."""
        if len(inputs) != len(self.plan.inputs):
            raise CnnGraphError(f"{self.plan.name} takes {len(self.plan.inputs)} input(s), got {len(inputs)}")
        views = self.arena(int(inputs[0].shape[0]))
        for name, x in zip(self.plan.inputs, inputs):
            self._check_input(name, x)
            views[name][...] = common.to_nhwc(x.astype(np.float32, copy=False))
        with self.rt.session():
            for step, fn in zip(self.plan.steps, self.fns):
                fn([views[v] for v in step.operands], views[step.output], views[step.residual] if step.residual else None)
        return [self.xp.ascontiguousarray(common.from_nhwc(views[o], self.plan.values[o].shape))
                for o in self.plan.outputs]

    def to_host(self, y):
        return self.rt.extra["device"].to_host(y)


# ---------------------------------------------------------------- kernel builders
def _dev(rt):
    return rt.extra["device"]


def _empty(rt):
    """A one-element device array standing for an absent operand (the kernel never reads it)."""
    if "empty" not in rt.extra:
        rt.extra["empty"] = _dev(rt).asarray(np.zeros(1, np.float32))
    return rt.extra["empty"]


def _rows2(a):
    return a.reshape(-1, a.shape[-1])


def _aliases(plan: Plan, step) -> bool:
    """Does the step's output share its buffer with its residual?"""
    return step.residual is not None and plan.values[step.residual].slot == plan.values[step.output].slot


def _epilogue_fn(rt, act1=0, act2=0, scale=None, bias=None, p1=0.0):
    """``fn(src, dst, res, opg)``: dst = act2(act1(src·scale + bias) + res), as one kernel launch
    (``p1``: act1's parameter)."""
    kern = _dev(rt).kernel(K["epilogue"])
    e = _empty(rt)

    def fn(src, dst, res=None, opg=None):
        rows, C = dst.shape
        if scale is None and bias is None and res is None and not act1 and not act2 and src is dst:
            return
        kern(src=src, dst=dst, scale=e if scale is None else scale, bias=e if bias is None else bias,
             res=e if res is None else res, rows=rows, C=C, opg=C if opg is None else opg,
             has_scale=int(scale is not None), has_bias=int(bias is not None), has_res=int(res is not None),
             act1=act1, act2=act2, p1=np.float32(p1))

    return fn


def _codes(step):
    return act_code(step.act1), act_code(step.act2)


def _bias(rt, plan, step):
    return _dev(rt).asarray(weight(plan, step, "bias")) if "bias" in step.params else None


def _gemm_conv(step, plan, rt, k, w):
    """Convolution (or linear: a 1×1 convolution of a 1×1 image) as im2col + batched GEMM + epilogue;
    ``w`` is (C_out, C_in/G, kh, kw)."""
    dev, ws = _dev(rt), rt.extra["workspace"]
    G, cin, cout = k["groups"], k["cin"], k["cout"]
    cpg, opg = cin // G, cout // G
    Kd = k["kh"] * k["kw"] * cpg
    wm = dev.asarray(np.ascontiguousarray(
        w.reshape(G, opg, cpg, k["kh"], k["kw"]).transpose(0, 3, 4, 2, 1).reshape(G, Kd, opg)))
    epi = _epilogue_fn(rt, *_codes(step), bias=_bias(rt, plan, step))
    direct = G == 1 and (k["kh"], k["kw"], k["sh"], k["sw"]) == (1, 1, 1, 1) and not any(
        k[p] for p in ("pt", "pl", "pb", "pr"))  # a 1×1 stride-1 convolution: the input is the GEMM's A
    scratch = G > 1 or _aliases(plan, step)  # the GEMM cannot write into the output directly
    hw = k["Ho"] * k["Wo"]
    cap = rt.extra["workspace_elems"]

    def chunk(m):  # output rows per GEMM: the packed block stays within the workspace
        return max(1, min(m, cap // max(G * Kd, G * opg)))

    if not direct:
        ws.reserve("cols", lambda n: chunk(n * hw) * G * Kd)
    if scratch:
        ws.reserve("gemm", lambda n: chunk(n * hw) * G * opg)
    im2col = dev.kernel(K["im2col"])
    geo = dict(H=k["H"], W=k["W"], C=cin, Ho=k["Ho"], Wo=k["Wo"], kh=k["kh"], kw=k["kw"], sh=k["sh"], sw=k["sw"],
               pt=k["pt"], pl=k["pl"], dh=k["dh"], dw=k["dw"], cpg=cpg, G=G)

    def run(ins, out, res):
        x = ins[0]
        M = x.shape[0] * hw
        out2 = out.reshape(M, cout)
        res2 = res.reshape(M, cout) if res is not None else None
        step_rows = chunk(M)
        for r0 in range(0, M, step_rows):
            rows = min(step_rows, M - r0)
            if direct:
                a = x.reshape(M, cin)[r0:r0 + rows][None]
            else:
                a = ws.get("cols", (G, rows, Kd))
                im2col(x=x, cols=a, row0=r0, rows=rows, **geo)
            dst = out2[r0:r0 + rows]
            r = res2[r0:r0 + rows] if res2 is not None else None
            if scratch:
                y = ws.get("gemm", (G, rows, opg))
                dev.matmul(a, wm, out=y)
                epi(y, dst, r, opg=opg)
            else:
                dev.matmul(a[0], wm[0], out=dst)
                epi(dst, dst, r)

    return run


def build_conv2d(step, plan, rt):
    k = conv_geometry(step)
    G = k["groups"]
    cpg, opg = k["cin"] // G, k["cout"] // G
    w = weight(plan, step, "weight")
    if G == 1 or min(cpg, opg) >= 32:
        return _gemm_conv(step, plan, rt, k, w)
    # Depthwise and narrow groups: a direct kernel (a batched GEMM of a few columns wastes the GPU).
    dev = _dev(rt)
    wd = dev.asarray(np.ascontiguousarray(w.transpose(2, 3, 1, 0)))  # (kh, kw, cpg, C_out)
    bias = _bias(rt, plan, step)
    a1, a2 = _codes(step)
    conv = dev.kernel(K["direct_conv"])
    e = _empty(rt)
    geo = dict(H=k["H"], W=k["W"], C=k["cin"], Ho=k["Ho"], Wo=k["Wo"], Cout=k["cout"], kh=k["kh"], kw=k["kw"],
               sh=k["sh"], sw=k["sw"], pt=k["pt"], pl=k["pl"], dh=k["dh"], dw=k["dw"], cpg=cpg, opg=opg,
               has_bias=int(bias is not None), act1=a1, act2=a2)

    def run(ins, out, res):
        conv(x=ins[0], w=wd, bias=e if bias is None else bias, res=e if res is None else res, out=out,
             N=out.shape[0], has_res=int(res is not None), **geo)

    return run


def build_conv_transpose2d(step, plan, rt):
    """Transposed convolution: the GEMM of the input by the packed weights (every input pixel
    times every tap, one per group) into the workspace, then the ``col2im_transpose`` gather
    with bias and epilogue fused; samples in chunks that fit the workspace."""
    dev, ws = _dev(rt), rt.extra["workspace"]
    k = common.transpose_geometry(step)
    G, cg, og = k["groups"], k["cg"], k["og"]
    wm = dev.asarray(common.pack_transpose_weight(weight(plan, step, "weight"), k))
    T = int(wm.shape[2])
    bias = _bias(rt, plan, step)
    a1, a2 = _codes(step)
    hw = k["H"] * k["W"]
    per_sample = hw * G * T
    cap = rt.extra["workspace_elems"]

    def chunk(n):  # samples per GEMM
        return max(1, min(n, cap // max(per_sample, 1)))

    ws.reserve("transpose_cols", lambda n: chunk(n) * per_sample)
    gather = dev.kernel(K["col2im_transpose"])
    e = _empty(rt)
    geo = dict(H=k["H"], W=k["W"], Ho=k["Ho"], Wo=k["Wo"], Cout=k["cout"], kh=k["kh"], kw=k["kw"], sh=k["sh"],
               sw=k["sw"], pt=k["pt"], pl=k["pl"], dh=k["dh"], dw=k["dw"], og=og, has_bias=int(bias is not None),
               act1=a1, act2=a2)

    def run(ins, out, res):
        x = ins[0]
        N = x.shape[0]
        nb = chunk(N)
        for n0 in range(0, N, nb):
            nc = min(nb, N - n0)
            M = nc * hw
            cols = ws.get("transpose_cols", (G, M, T))
            xs = x[n0:n0 + nc].reshape(M, G, cg)
            if G == 1:
                dev.matmul(xs.reshape(M, cg), wm[0], out=cols[0])
            else:
                dev.matmul(xs.transpose(1, 0, 2), wm, out=cols)
            gather(cols=cols, bias=e if bias is None else bias, res=e if res is None else res, out=out, n0=n0, Nc=nc,
                   has_res=int(res is not None), **geo)

    return run


def build_linear(step, plan, rt):
    fin, fout = int(step.in_shapes[0][0]), int(step.out_shape[0])
    k = dict(cin=fin, cout=fout, H=1, W=1, Ho=1, Wo=1, kh=1, kw=1, sh=1, sw=1, pt=0, pl=0, pb=0, pr=0, dh=1, dw=1,
             groups=1)
    return _gemm_conv(step, plan, rt, k, weight(plan, step, "weight").reshape(fout, fin, 1, 1))


def _elementwise(step, rt, scale, bias, a1, a2, p1=0.0):
    epi = _epilogue_fn(rt, a1, a2, scale=scale, bias=bias, p1=p1)

    def run(ins, out, res):
        epi(_rows2(ins[0]), _rows2(out), _rows2(res) if res is not None else None)

    return run


def build_act(step, plan, rt):
    return _elementwise(step, rt, None, None, act_code(step.op), 0, act_param(step.op, step.attrs))


def build_batchnorm(step, plan, rt):
    c = int(step.in_shapes[0][0])
    ws = {f"{step.node}.{r}": weight(plan, step, r) for r in step.params}
    scale, shift = bn_scale_shift(ws, step.node, step.attrs, c)
    dev = _dev(rt)
    return _elementwise(step, rt, dev.asarray(scale), dev.asarray(shift), *_codes(step))


def build_scale(step, plan, rt):
    c = nhwc(step.in_shapes[0])[-1]
    f = _dev(rt).asarray(np.full(c, np.float32(step.attrs["factor"])))
    shift = float(step.attrs.get("shift", 0.0))
    b = _dev(rt).asarray(np.full(c, np.float32(shift))) if shift else None
    return _elementwise(step, rt, f, b, *_codes(step))


def build_add(step, plan, rt):
    last = _epilogue_fn(rt, 0, act_code(step.act2))
    plain = _epilogue_fn(rt)

    def run(ins, out, res):
        o2 = _rows2(out)
        terms = [_rows2(x) for x in ins] + ([_rows2(res)] if res is not None else [])
        if len(terms) == 1:
            last(terms[0], o2)
            return
        src = terms[0]
        for i, t in enumerate(terms[1:], 1):
            (last if i == len(terms) - 1 else plain)(src, o2, t)
            src = o2

    return run


def build_mul(step, plan, rt):
    xs, ss = step.in_shapes
    bcast = len(xs) == 3 and tuple(ss) in ((xs[0], 1, 1), (xs[0],))
    if not (bcast or tuple(xs) == tuple(ss)):
        return common.build_mul(step, plan, rt)
    kern = _dev(rt).kernel(K["mul_bcast"])

    def run(ins, out, res):
        x, s = ins
        N, C = x.shape[0], x.shape[3]
        if bcast:
            kern(x=x, s=s, out=out, N=N, HW=x.shape[1] * x.shape[2], C=C)
        else:  # same shapes: every pixel is its own "sample"
            kern(x=x, s=s, out=out, N=N * x.shape[1] * x.shape[2], HW=1, C=C)

    return run


def build_maxpool2d(step, plan, rt):
    k = pool_geometry(step)
    kern = _dev(rt).kernel(K["maxpool"])
    geo = {a: k[a] for a in ("H", "W", "C", "Ho", "Wo", "kh", "kw", "sh", "sw", "pt", "pl", "dh", "dw")}

    def run(ins, out, res):
        kern(x=ins[0], out=out, N=out.shape[0], **geo)

    return run


def build_avgpool2d(step, plan, rt):
    k = pool_geometry(step)
    div = _dev(rt).asarray(avgpool_divisor(k))
    kern = _dev(rt).kernel(K["avgpool"])
    geo = {a: k[a] for a in ("H", "W", "C", "Ho", "Wo", "kh", "kw", "sh", "sw", "pt", "pl")}

    def run(ins, out, res):
        kern(x=ins[0], divisor=div, out=out, N=out.shape[0], **geo)

    return run


def _adaptive(is_max):
    def build(step, plan, rt):
        C, H, W = map(int, step.in_shapes[0])
        _, Ho, Wo = map(int, step.out_shape)
        kern = _dev(rt).kernel(K["adaptive_pool"])

        def run(ins, out, res):
            kern(x=ins[0], out=out, N=out.shape[0], H=H, W=W, C=C, Ho=Ho, Wo=Wo, is_max=int(is_max))

        return run

    return build


def build_softmax(step, plan, rt):
    kern = _dev(rt).kernel(K["softmax"])

    def run(ins, out, res):
        o2 = _rows2(out)
        kern(x=_rows2(ins[0]), out=o2, rows=o2.shape[0], C=o2.shape[1])

    return run


def build_prelu(step, plan, rt):
    slope = _dev(rt).asarray(weight(plan, step, "weight").reshape(-1))
    kern = _dev(rt).kernel(K["prelu"])
    per_channel = int(slope.size > 1)

    def run(ins, out, res):
        o2 = _rows2(out)
        kern(x=_rows2(ins[0]), slope=slope, out=o2, rows=o2.shape[0], C=o2.shape[1], per_channel=per_channel)

    return run


def build_layer_scale(step, plan, rt):
    """γ·x per channel: the epilogue kernel with γ as its scale (a residual add and an activation fused)."""
    gamma = _dev(rt).asarray(weight(plan, step, step.attrs["field"]).reshape(-1))
    return _elementwise(step, rt, gamma, None, *_codes(step))


def build_layernorm2d(step, plan, rt):
    dev = _dev(rt)
    affine = "weight" in step.params
    gamma, beta = ((dev.asarray(weight(plan, step, f).reshape(-1)) for f in ("weight", "bias")) if affine
                   else (_empty(rt), _empty(rt)))
    kern = dev.kernel(K["layernorm_rows"])
    eps = float(step.attrs["eps"])

    def run(ins, out, res):
        o2 = _rows2(out)
        kern(x=_rows2(ins[0]), gamma=gamma, beta=beta, out=o2, rows=o2.shape[0], C=o2.shape[1], eps=eps,
             affine=int(affine))

    return run


def build_resize(step, plan, rt):
    dev = _dev(rt)
    (ih, wh), (iw, ww) = common.resize_geometry(step)
    # (O, 4) rows of i0, i1, w0, w1: indices below 2**24 are exact in float32
    taps_h = dev.asarray(np.concatenate([ih, wh], 1).astype(np.float32))
    taps_w = dev.asarray(np.concatenate([iw, ww], 1).astype(np.float32))
    kern = dev.kernel(K["resize"])
    C, H, W = map(int, step.in_shapes[0])
    _, Ho, Wo = map(int, step.out_shape)
    nearest = int(step.attrs["mode"] == "nearest")

    def run(ins, out, res):
        kern(x=ins[0], taps_h=taps_h, taps_w=taps_w, out=out, N=out.shape[0], H=H, W=W, C=C, Ho=Ho, Wo=Wo,
             nearest=nearest)

    return run


def build_lrn(step, plan, rt):
    a = step.attrs
    kern = _dev(rt).kernel(K["lrn"])

    def run(ins, out, res):
        o2 = _rows2(out)
        kern(x=_rows2(ins[0]), out=o2, rows=o2.shape[0], C=o2.shape[1], size=int(a["size"]), alpha=float(a["alpha"]),
             beta=float(a["beta"]), kk=float(a["k"]))

    return run


KERNELS = {
    "conv2d": build_conv2d, "conv_transpose2d": build_conv_transpose2d, "linear": build_linear,
    "batchnorm": build_batchnorm, "add": build_add, "mul": build_mul, "scale": build_scale, "maxpool2d": build_maxpool2d, "avgpool2d": build_avgpool2d,
    "adaptive_avgpool2d": _adaptive(False), "adaptive_maxpool2d": _adaptive(True), "softmax": build_softmax,
    "lrn": build_lrn, "prelu": build_prelu, "layer_scale": build_layer_scale, "layernorm2d": build_layernorm2d,
    "resize": build_resize,
    **{a: build_act for a in ACTS},
}
# flatten, concat, slice, channel_shuffle, pad2d, pad_channels, rbf, group/instance/layer norm (over a whole sample):
# the generic xp kernels of cnngraph.backends.common, on CuPy arrays.


# ---------------------------------------------------------------- entry points
def backend(dev=None, workspace_elems: int = WORKSPACE_ELEMS):
    """This backend on a device (a :func:`get_device` result; default: CuPy on the GPU)."""
    dev = dev if dev is not None else get_device("cuda")

    def runtime() -> Runtime:
        rt = Runtime(dev.xp, dev.erf, dev.asarray)
        rt.extra.update(device=dev, workspace=Workspace(dev.xp), workspace_elems=int(workspace_elems))
        rt.session = dev.session
        return rt

    return Backend(name=NAME if dev.name == "cuda" else f"{NAME} ({dev.name})", xp=dev.xp, KERNELS=KERNELS,
                   runtime=runtime, executor=CupyExecutor, sgemm_ceiling=lambda: sgemm_ceiling(4096, dev=dev),
                   gemm_name=dev.gemm_name, extra={"device": dev})


def executor(plan: Plan, device: str = "cuda", tf32: bool | None = None, progress=None,
             workspace_elems: int = WORKSPACE_ELEMS, strict: bool = False) -> CupyExecutor:
    """An executor of ``plan`` (kernels built and weights uploaded once) on ``device``."""
    return CupyExecutor(plan, backend(get_device(device, tf32, strict), workspace_elems), progress=progress)


def run(plan: Plan, *inputs, device: str = "cuda", tf32: bool | None = None):
    """Run ``plan`` once on arrays in PyTorch layout; returns the outputs (NumPy arrays)."""
    return executor(plan, device, tf32).run(*inputs)


_BACKEND = None


def __getattr__(name):
    # ``BACKEND`` (what ``cnngraph run --backend cupy`` takes) is made on first use: importing
    # this module needs no CuPy; using the backend without CuPy or a GPU is a clear error.
    global _BACKEND
    if name == "BACKEND":
        if _BACKEND is None:
            _BACKEND = backend()
        return _BACKEND
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
