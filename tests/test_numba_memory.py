"""Memory options of compiling and of the Numba executor: folding the batch norms into the
caller's weights (``compile(..., consume_weights=True)``) and releasing each weight from the
plan once its kernel holds it (``executor(plan, release_weights=True)``) give the same
outputs as the default, which copies and keeps everything."""
import numpy as np
import pytest

from cnngraph import zoo
from cnngraph.backends.numba_backend import executor, release_free_memory
from cnngraph.compiler import compile
from cnngraph.compiler.weights import init


def test_consumed_and_released_weights_give_the_same_outputs():
    g = zoo.build("resnet18")
    ws = init(g, seed=3, random_bn=True)
    originals = {k: v.copy() for k, v in ws.items()}
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)

    plan = compile(g, ws, input=(3, 64, 64))
    assert all(np.array_equal(ws[k], v) for k, v in originals.items())  # the default copies
    want = executor(plan).run(x)[0]
    assert len(plan.weights) > 0

    mine = {k: v.copy() for k, v in originals.items()}
    plan2 = compile(g, mine, input=(3, 64, 64), consume_weights=True)
    # the caller's dict now is the plan's: folded convolutions, no batch-norm entries
    assert plan2.weights is mine and not any(k.startswith("bn1.") for k in mine)
    assert set(mine) == set(plan.weights)
    assert all(np.array_equal(mine[k], plan.weights[k]) for k in mine)
    assert not np.array_equal(mine["conv1.weight"], originals["conv1.weight"])  # folded: W·s

    ex = executor(plan2, release_weights=True)
    assert plan2.weights == {}  # every weight is held by its kernel only
    got = ex.run(x)[0]
    assert np.array_equal(got, want)
    assert np.array_equal(ex.run(x)[0], want)  # and again: nothing was freed that a kernel reads


def test_release_free_memory_reports_glibc():
    import platform

    assert release_free_memory() is (platform.libc_ver()[0] == "glibc")


RUN_PATH = """
import json, sys
import numpy as np
import pytest
from cnngraph import zoo
from cnngraph.compiler import compile
from cnngraph.compiler.weights import init
from cnngraph.backends.numba_backend import executor
for m in ("resnet50", "mobilenet_v2", "efficientnet_b0", "vgg16", "resnext50_32x4d", "mobilenet_v3_small"):
    compile(zoo.build(m), batch=8)  # every model of benchmarks/bench_cpu.py, planned
outs = []
for m in ("mobilenet_v2", "resnet18"):  # and run: weights, folding, packing, kernels
    g = zoo.build(m, input=(3, 40, 40))
    plan = compile(g, init(g, seed=0, random_bn=True), consume_weights=True)
    outs.append(executor(plan, release_weights=True).run(np.ones((1, 3, 40, 40), np.float32))[0].shape)
print(json.dumps({"shapes": outs, "loaded": [m for m in ("sympy", "torch", "onnx", "rich", "scipy") if m in sys.modules]}))
"""


def test_run_path_imports_no_sympy_torch_onnx():
    """Building, compiling and running numeric models (the benchmark's five) never imports
    sympy (34 MB of the process's memory), PyTorch, ONNX or rich: their sizes stay Python
    ints (:mod:`cnngraph.ir.lazy`)."""
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", RUN_PATH], capture_output=True, text=True, check=True)
    got = json.loads(r.stdout.splitlines()[-1])
    assert got["shapes"] == [[1, 1000], [1, 1000]]
    assert got["loaded"] == []


def test_weights_drawn_in_blocks_are_the_whole_draw():
    """``init`` draws a large weight a block of rows at a time (no whole float64 copy): the
    numbers are those of one draw of the whole tensor, rounded once to float32."""
    from cnngraph.compiler import weights as W

    g = zoo.build("resnet18", input=(3, 32, 32))
    shapes = W.param_shapes(g)
    big = max(shapes, key=lambda k: np.prod(shapes[k][0]))
    assert np.prod(shapes[big][0]) > W.DRAW_BLOCK  # layer4's 512×512×3×3: drawn in three blocks
    ws = W.init(g, seed=7, random_bn=True)
    rng = np.random.default_rng(7)
    for key, shape, w in W._specs(g):  # the reference: each tensor drawn whole, in float64
        want = W._draw(rng, w.init, shape, True).astype(np.float32)
        assert ws[key].dtype == np.float32 and ws[key].flags.c_contiguous
        assert np.array_equal(ws[key], want), key


def test_pack_b_inplace_is_pack_b_in_the_weights_own_memory():
    from cnngraph.backends import numba_gemm as NG

    rng = np.random.default_rng(5)
    for n, k in ((NG.NR, 1), (3 * NG.NR, 37), (2 * NG.NR, 1000)):  # odd k, one block and several
        w = rng.standard_normal((n, k)).astype(np.float32)
        want = NG.pack_b(w)
        got = NG.pack_b_inplace(w)
        assert np.array_equal(got, want) and np.shares_memory(got, w)
    for bad in (np.ones((NG.NR + 3, 5), np.float32), np.ones((2 * NG.NR, 6), np.float32)[:, :5]):
        try:
            NG.pack_b_inplace(bad)
        except ValueError:
            continue
        raise AssertionError("packed a shape or layout that cannot be packed in place")


def _mlp(act):
    from cnngraph.dsl import Net, flatten, linear

    net = Net("mlp")
    x = flatten(net.input(3, 5, 7))
    x = act(linear(x, 64))  # 64 outputs: packed in place; 105 inputs: odd k
    x = linear(x, 96, bias=False)  # no bias, packed in place
    linear(act(x), 45)  # 45 outputs: not a multiple of NR, copied
    return net.graph


def _mlp64(ws, x, act64):
    y = x.reshape(x.shape[0], -1).astype(np.float64)
    y = act64(y @ ws["fc1.weight"].astype(np.float64).T + ws["fc1.bias"])
    y = act64(y @ ws["fc2.weight"].astype(np.float64).T)
    return y @ ws["fc3.weight"].astype(np.float64).T + ws["fc3.bias"]


def test_linear_weights_packed_in_place_match_numpy():
    """``release_weights=True``: a linear layer's weights that nothing else holds are packed
    into their own memory (no second copy: the array lives on in the kernel, the same
    object); one whose outputs are not a multiple of NR is copied (its original freed).
    Outputs match float64 NumPy at batch 1 and 8, with the bias and activation epilogues (a
    clamp fused in the micro-kernel, and GELU through the tile), as the default path does."""
    import math
    import weakref

    from cnngraph.dsl import gelu, relu

    from cases import rel_err

    erf = np.vectorize(math.erf)
    acts = ((relu, lambda v: np.maximum(v, 0)), (gelu, lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2)))))
    for act, act64 in acts:
        g = _mlp(act)
        kept = {k: (v + np.float32(0.05)) if k.endswith("bias") else v for k, v in init(g, seed=2).items()}
        for batch in (1, 8):
            x = np.random.default_rng(batch).standard_normal((batch, 3, 5, 7)).astype(np.float32)
            want = _mlp64(kept, x, act64)
            assert rel_err(executor(compile(g, kept)).run(x)[0], want) < 1e-4  # the default: copies

            mine = {k: v.copy() for k, v in kept.items()}
            ids = {k: id(v) for k, v in mine.items()}
            refs = {k: weakref.ref(mine[k]) for k in ("fc1.weight", "fc2.weight", "fc3.weight")}
            plan = compile(g, mine, consume_weights=True)
            del mine  # plan.weights is that dict: nothing else holds its arrays
            ex = executor(plan, release_weights=True)
            assert plan.weights == {}
            assert [id(refs[k]()) for k in ("fc1.weight", "fc2.weight")] == \
                [ids["fc1.weight"], ids["fc2.weight"]]  # packed in place, held by the kernels
            assert refs["fc3.weight"]() is None  # 45 outputs: packed into a copy, the original freed
            assert rel_err(ex.run(x)[0], want) < 1e-4
            assert rel_err(ex.run(x)[0], want) < 1e-4  # and again


def test_linear_weights_held_elsewhere_are_not_overwritten():
    g = _mlp(lambda t: t)
    ws = init(g, seed=4)
    kept = {k: v.copy() for k, v in ws.items()}
    w1 = ws["fc1.weight"]  # the caller still holds this one
    plan = compile(g, ws, consume_weights=True)
    ex = executor(plan, release_weights=True)
    assert np.array_equal(w1, kept["fc1.weight"])  # packed into a copy, not into w1
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    from cases import rel_err

    assert rel_err(ex.run(x)[0], _mlp64(kept, x, lambda v: v)) < 1e-4


PACK_PEAK = """
import json
import numpy as np
import pytest
from cnngraph.backends.numba_backend import executor
from cnngraph.compiler import compile
from cnngraph.compiler.weights import init
from cnngraph.dsl import Net, flatten, linear

def status(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith(field + ":"))

net = Net("wide")
linear(flatten(net.input(8192, 1, 1)), 4096)  # a 128 MB weight
g = net.graph
ws = init(g, seed=0)
plan = compile(g, ws, consume_weights=True)
del ws
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the high-water mark from here
ex = executor(plan, release_weights=True)
peak = status("VmHWM")
x = np.random.default_rng(0).standard_normal((2, 8192, 1, 1)).astype(np.float32)
print(json.dumps({"before": before, "peak": peak, "ok": bool(np.isfinite(ex.run(x)[0]).all())}))
"""


def test_packing_a_large_linear_layer_holds_it_once():
    """Building the executor of a 128 MB linear layer with ``release_weights=True`` raises the
    process's peak by much less than the layer (packed into its own memory; packed into a
    copy it raised it by the whole 128 MB). Measured in a process of its own through
    ``/proc/self/status``; skipped where the high-water mark cannot be reset."""
    import json
    import os
    import subprocess
    import sys

    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs")
    r = subprocess.run([sys.executable, "-c", PACK_PEAK], capture_output=True, text=True)
    if r.returncode != 0 and "clear_refs" in r.stderr:
        pytest.skip("the high-water mark cannot be reset here")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.splitlines()[-1])
    assert got["ok"]
    assert got["peak"] - got["before"] < 48, got  # MB: one NR-row block and the kernels, not 128
