"""Memory options of compiling and of the Numba executor: folding the batch norms into the
caller's weights (``compile(..., consume_weights=True)``) and releasing each weight from the
plan once its kernel holds it (``executor(plan, release_weights=True)``) give the same
outputs as the default, which copies and keeps everything."""
import numpy as np

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
