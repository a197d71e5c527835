"""The real-CNN ops (transposed convolution, resize, layer norm over channels, layer scale,
PReLU) run kernels of their own on the Numba and CuPy backends, not the generic fallback, and
those kernels agree with ONNX Runtime on the case catalogue's rows (the PyTorch side is
checked by test_numba_backend.py and test_cupy_backend.py on every row)."""
import numpy as np
import pytest

from cases import OP_CASES, TOL, build_case, rel_err
from cnngraph.compiler import compile
from cnngraph.compiler.weights import init
from cnngraph.backends import cupy_backend as cb
from cnngraph.backends import numba_backend as nb
from cnngraph.backends.numba_backend import run as numba_run

NATIVE = ("conv_transpose2d", "resize", "layernorm2d", "layer_scale", "prelu")
ROWS = sorted(n for n in OP_CASES if any(d["op"] in NATIVE for _, d in build_case(n).nodes(data=True)))


def test_both_backends_have_their_own_kernels():
    for op in NATIVE:
        assert op in nb.KERNELS and op in cb.KERNELS, op


def test_the_rows_cover_every_native_op():
    assert {d["op"] for n in ROWS for _, d in build_case(n).nodes(data=True)} >= set(NATIVE)


@pytest.mark.parametrize("name", ROWS)
def test_matches_onnx_runtime(name):
    pytest.importorskip("onnxruntime")
    from onnx_cases import ort_run

    from cnngraph.onnx import export

    g = build_case(name)
    ws = init(g, seed=11, random_bn=True)
    x = np.random.default_rng(12).standard_normal((2,) + g.nodes["input"]["shape"]).astype(np.float32)
    plan = compile(g, ws)
    (ref,) = ort_run(export(g, ws), {"input": x})
    (y,) = numba_run(plan, x)
    assert y.shape == ref.shape and rel_err(y, ref) <= TOL
    (y,) = cb.executor(plan, device="shim", strict=True).run(x)
    assert rel_err(y, ref) <= TOL
