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
