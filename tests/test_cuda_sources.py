"""The CUDA sources of the CuPy backend, checked without a GPU.

* nvcc compiles every kernel's translation unit (exactly the text ``cupy.RawKernel`` gets)
  to machine code for sm_80 (A100) and sm_90 (H100), warnings as errors;
* NVRTC, the compiler CuPy itself uses at run time, compiles them too (where CuPy is
  installed: its NVRTC binding needs no GPU);
* the same text compiled for the CPU by the host C++ compiler, the grid run as a loop,
  computes what the kernel's NumPy emulation (the shim the CPU tests use) computes, on
  random arguments over many geometries: the shim and the CUDA source cannot drift apart.
"""
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

from cnngraph.backends import cupy_backend as cb
from cnngraph.backends.cupy_kernels import ACTS, KERNELS
from cnngraph.ir import ops

ARCHS = ("sm_80", "sm_90")


def _sm_of_cubin(data: bytes) -> set:
    """The SM numbers a CUDA ELF's flags can name (the field moved between ABI versions)."""
    assert data[:4] == b"\x7fELF" and struct.unpack_from("<H", data, 18)[0] == 190, "not a CUDA ELF"
    flags = struct.unpack_from("<I", data, 48)[0]
    return {flags & 0xFF, (flags >> 8) & 0xFF}


def test_every_kernel_compiles_with_nvcc(tmp_path):
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if not nvcc:
        pytest.skip("nvcc is not installed")
    files = []
    for k in KERNELS.values():
        f = tmp_path / f"{k.name}.cu"
        f.write_text(k.source())
        files.append(str(f))
    for arch in ARCHS:
        out = tmp_path / arch
        out.mkdir()
        r = subprocess.run([nvcc, "--cubin", f"-arch={arch}", "-Werror", "all-warnings", *files], cwd=out,
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{arch}:\n{r.stderr[-6000:]}"
        for k in KERNELS.values():
            data = (out / f"{k.name}.cubin").read_bytes()
            assert int(arch[3:]) in _sm_of_cubin(data), (k.name, arch)
            assert k.symbol.encode() in data, (k.name, arch)


def test_every_kernel_compiles_with_nvrtc():
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc", reason="CuPy is not installed (the gpu extra)")
    for k in KERNELS.values():
        for arch in ARCHS:
            prog = nvrtc.createProgram(k.source(), f"{k.name}.cu", (), ())
            try:
                nvrtc.compileProgram(prog, (f"--gpu-architecture=compute_{arch[3:]}",))
                ptx = nvrtc.getPTX(prog)
                assert k.symbol in (ptx.decode() if isinstance(ptx, bytes) else ptx)
            except Exception as e:  # the log says what NVRTC did not accept
                pytest.fail(f"{k.name} for {arch}: {e}\n{nvrtc.getProgramLog(prog)}")
            finally:
                nvrtc.destroyProgram(prog)


# ---------------------------------------------------------------- the CUDA text on the host vs the shim
def _f(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _conv_geometry(rng):
    G = int(rng.choice([1, 2, 3]))
    cpg = int(rng.integers(1, 4))
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    sh, sw, dh, dw = (int(v) for v in rng.integers(1, 3, 4))
    pt, pl = (int(v) for v in rng.integers(0, 3, 2))
    H, W = (int(v) for v in rng.integers(4, 9, 2))
    Ho = (H + 2 * pt - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pl - dw * (kw - 1) - 1) // sw + 1
    return dict(N=2, H=H, W=W, C=G * cpg, G=G, cpg=cpg, Ho=max(Ho, 1), Wo=max(Wo, 1), kh=kh, kw=kw, sh=sh, sw=sw,
                pt=pt, pl=pl, dh=dh, dw=dw)


def _args(name, rng):
    """Random arguments of kernel ``name``: (args, names of the outputs)."""
    acts = [ops.act_code(a) for a in ACTS] + [0]
    if name == "epilogue":
        rows, G, opg = int(rng.integers(1, 9)), int(rng.choice([1, 3])), int(rng.integers(1, 6))
        C = G * opg
        has = [int(v) for v in rng.integers(0, 2, 3)]
        res = _f(rng, rows, C)
        src = _f(rng, G, rows, opg) if G > 1 else _f(rng, rows, C)
        return dict(src=src, dst=np.full((rows, C), np.nan, np.float32), scale=_f(rng, C), bias=_f(rng, C), res=res,
                    rows=rows, C=C, opg=opg, has_scale=has[0], has_bias=has[1], has_res=has[2],
                    act1=int(rng.choice(acts)), act2=int(rng.choice(acts)), p1=np.float32(rng.uniform(0.01, 2))), ("dst",)
    if name in ("im2col", "direct_conv"):
        k = _conv_geometry(rng)
        x = _f(rng, k["N"], k["H"], k["W"], k["C"])
        if name == "im2col":
            M = k["N"] * k["Ho"] * k["Wo"]
            row0 = int(rng.integers(0, M))
            rows = int(rng.integers(1, M - row0 + 1))
            cols = np.full((k["G"], rows, k["kh"] * k["kw"] * k["cpg"]), np.nan, np.float32)
            return dict(x=x, cols=cols, row0=row0, rows=rows, **{a: v for a, v in k.items() if a != "N"}), ("cols",)
        opg = int(rng.integers(1, 4))
        Cout = k["G"] * opg
        out = np.full((k["N"], k["Ho"], k["Wo"], Cout), np.nan, np.float32)
        return dict(x=x, w=_f(rng, k["kh"], k["kw"], k["cpg"], Cout), bias=_f(rng, Cout), res=_f(rng, *out.shape),
                    out=out, Cout=Cout, opg=opg, has_bias=int(rng.integers(0, 2)), has_res=int(rng.integers(0, 2)),
                    act1=int(rng.choice(acts)), act2=int(rng.choice(acts)),
                    **{a: v for a, v in k.items() if a not in ("G",)}), ("out",)
    if name in ("maxpool", "avgpool"):
        k = _conv_geometry(rng)
        C = k["C"]
        if name == "avgpool":
            k["dh"] = k["dw"] = 1
        # ceil mode: one more window, partly outside the input
        Ho = k["Ho"] + int(rng.integers(0, 2))
        Wo = k["Wo"] + int(rng.integers(0, 2))
        out = np.full((k["N"], Ho, Wo, C), np.nan, np.float32)
        geo = {a: k[a] for a in ("N", "H", "W", "kh", "kw", "sh", "sw", "pt", "pl")}
        x = _f(rng, k["N"], k["H"], k["W"], C)
        if name == "maxpool":
            return dict(x=x, out=out, C=C, Ho=Ho, Wo=Wo, dh=k["dh"], dw=k["dw"], **geo), ("out",)
        return dict(x=x, divisor=rng.uniform(1, 9, (Ho, Wo)).astype(np.float32), out=out, C=C, Ho=Ho, Wo=Wo,
                    **geo), ("out",)
    if name == "adaptive_pool":
        N, H, W, C = 2, int(rng.integers(1, 9)), int(rng.integers(1, 9)), 3
        Ho, Wo = int(rng.integers(1, 10)), int(rng.integers(1, 10))  # larger than the input too
        return dict(x=_f(rng, N, H, W, C), out=np.full((N, Ho, Wo, C), np.nan, np.float32), N=N, H=H, W=W, C=C, Ho=Ho,
                    Wo=Wo, is_max=int(rng.integers(0, 2))), ("out",)
    if name == "mul_bcast":
        N, HW, C = 2, int(rng.integers(1, 7)), int(rng.integers(1, 7))
        return dict(x=_f(rng, N, HW, C), s=_f(rng, N, C), out=np.full((N, HW, C), np.nan, np.float32), N=N, HW=HW,
                    C=C), ("out",)
    if name == "softmax":
        rows, C = int(rng.integers(1, 6)), int(rng.integers(1, 40))
        return dict(x=_f(rng, rows, C) * 5, out=np.full((rows, C), np.nan, np.float32), rows=rows, C=C), ("out",)
    if name == "lrn":
        rows, C = int(rng.integers(1, 6)), int(rng.integers(1, 12))
        return dict(x=_f(rng, rows, C), out=np.full((rows, C), np.nan, np.float32), rows=rows, C=C,
                    size=int(rng.integers(1, 7)), alpha=float(rng.uniform(1e-4, 1)), beta=float(rng.uniform(0.5, 1)),
                    kk=float(rng.uniform(1, 2))), ("out",)
    if name == "col2im_transpose":
        # the activations an epilogue takes (no parameter: the kernel passes none)
        fused = [ops.act_code(a) for a in ACTS if ops.get(a).fusion == "act"] + [0]
        k = _conv_geometry(rng)
        og = int(rng.integers(1, 4))
        Cout = k["G"] * og
        oph, opw = (int(rng.integers(0, max(k["sh"], k["dh"]))), int(rng.integers(0, max(k["sw"], k["dw"]))))
        Ho = (k["H"] - 1) * k["sh"] - 2 * k["pt"] + k["dh"] * (k["kh"] - 1) + oph + 1
        Wo = (k["W"] - 1) * k["sw"] - 2 * k["pl"] + k["dw"] * (k["kw"] - 1) + opw + 1
        N, n0 = 3, int(rng.integers(0, 2))
        Nc = int(rng.integers(1, N - n0 + 1))
        out = np.full((N, max(Ho, 1), max(Wo, 1), Cout), np.nan, np.float32)
        cols = _f(rng, k["G"], Nc * k["H"] * k["W"], k["kh"] * k["kw"] * og)
        out[:n0] = 0  # samples outside the chunk stay as they are
        out[n0 + Nc:] = 0
        return dict(cols=cols, bias=_f(rng, Cout), res=_f(rng, *out.shape), out=out, n0=n0, Nc=Nc, H=k["H"], W=k["W"],
                    Ho=out.shape[1], Wo=out.shape[2], Cout=Cout, kh=k["kh"], kw=k["kw"], sh=k["sh"], sw=k["sw"],
                    pt=k["pt"], pl=k["pl"], dh=k["dh"], dw=k["dw"], og=og, has_bias=int(rng.integers(0, 2)),
                    has_res=int(rng.integers(0, 2)), act1=int(rng.choice(fused)), act2=int(rng.choice(fused))), ("out",)
    if name == "prelu":
        rows, C = int(rng.integers(1, 6)), int(rng.integers(1, 12))
        per_channel = int(rng.integers(0, 2))
        return dict(x=_f(rng, rows, C), slope=_f(rng, C if per_channel else 1), out=np.full((rows, C), np.nan, np.float32),
                    rows=rows, C=C, per_channel=per_channel), ("out",)
    if name == "layernorm_rows":
        rows, C = int(rng.integers(1, 6)), int(rng.integers(1, 40))
        return dict(x=_f(rng, rows, C) * 3 + 1, gamma=_f(rng, C), beta=_f(rng, C), out=np.full((rows, C), np.nan, np.float32),
                    rows=rows, C=C, eps=float(rng.uniform(1e-6, 1e-3)), affine=int(rng.integers(0, 2))), ("out",)
    if name == "resize":
        from cnngraph.backends.common import resize_taps

        N, H, W, C = 2, int(rng.integers(1, 7)), int(rng.integers(1, 7)), int(rng.integers(1, 5))
        Ho, Wo = int(rng.integers(1, 13)), int(rng.integers(1, 13))
        mode = str(rng.choice(["nearest", "bilinear"]))
        corners = bool(rng.integers(0, 2)) and mode == "bilinear"
        taps = [np.concatenate(resize_taps(L, O, mode, corners), 1).astype(np.float32) for L, O in ((H, Ho), (W, Wo))]
        return dict(x=_f(rng, N, H, W, C), taps_h=taps[0], taps_w=taps[1], out=np.full((N, Ho, Wo, C), np.nan, np.float32),
                    N=N, H=H, W=W, C=C, Ho=Ho, Wo=Wo, nearest=int(mode == "nearest")), ("out",)
    raise AssertionError(f"no argument generator for kernel {name}")


def test_every_kernel_has_an_argument_generator():
    rng = np.random.default_rng(0)
    for name in KERNELS:
        _args(name, rng)


EXACT = {"im2col", "maxpool", "mul_bcast", "adaptive_pool", "prelu"}  # only loads, stores, max and adds in one order


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_cuda_source_on_the_host_equals_the_numpy_emulation(name, host):
    shim = cb.get_device("shim", strict=True)
    k = KERNELS[name]
    for seed in range(25):
        rng = np.random.default_rng(seed)
        args, outs = _args(name, rng)
        a = {n: v.copy() if isinstance(v, np.ndarray) else v for n, v in args.items()}
        b = {n: v.copy() if isinstance(v, np.ndarray) else v for n, v in args.items()}
        shim.kernel(k)(**a)
        host.kernel(k)(**b)
        for o in outs:
            assert not np.isnan(b[o]).any(), f"{name} (seed {seed}): the CUDA text left elements of {o} unwritten"
            if name in EXACT:
                np.testing.assert_array_equal(a[o], b[o], err_msg=f"{name} seed {seed}")
            else:  # libm's expf/erff/powf against NumPy's: a few ulps
                np.testing.assert_allclose(a[o], b[o], rtol=2e-6, atol=2e-6, err_msg=f"{name} seed {seed}")


def test_in_place_epilogue_on_the_host(host):
    """dst over src and res at once (a fused residual step writing in place)."""
    rng = np.random.default_rng(1)
    for dev in (host, cb.get_device("shim", strict=True)):
        y = _f(rng, 5, 6)
        ref = np.maximum(np.maximum(y * 2 + 1, 0) + y, 0)
        dev.kernel(KERNELS["epilogue"])(src=y, dst=y, scale=np.full(6, 2, np.float32), bias=np.ones(6, np.float32),
                                        res=y, rows=5, C=6, opg=6, has_scale=1, has_bias=1, has_res=1,
                                        act1=ops.act_code("relu"), act2=ops.act_code("relu"), p1=np.float32(0))
        np.testing.assert_allclose(y, ref, rtol=1e-6)
