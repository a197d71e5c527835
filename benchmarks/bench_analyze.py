"""Symbolic analysis speed: cnngraph vs torchinfo, ptflops and fvcore, measured in the same run.

    python benchmarks/bench_analyze.py            # all peers that are importable

cnngraph analyzes ResNet-152 on a *symbolic* input (3, H, W): every shape and cost is a sympy
expression. The peers must run the PyTorch model at one fixed input (3×224×224). Times are
the best of several runs; "cold" is a fresh process (sympy caches empty), the fair figure for
a command-line call. Also: re-evaluating the symbolic totals at a new input (compiled with
lambdify), and depth scaling (CIFAR ResNet-1202 vs ResNet-152).
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time


def best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


COLD = """
import time
import cnngraph
from cnngraph import zoo, analyze
from cnngraph.ir.symbols import H, W
zoo.names()  # import the zoo's modules first: module import is not analysis
t = time.perf_counter()
r = analyze(zoo.build("{model}", input={input}))
r.total
print(time.perf_counter() - t)
"""


def cold(model, input, runs=3):
    out = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", COLD.format(model=model, input=input)], capture_output=True,
                             text=True, check=True)
        out.append(float(res.stdout.strip().splitlines()[-1]))
    return min(out)


def torch_model(name):
    """torchvision's model where torchvision imports, else the same graph run by PyTorch."""
    try:
        import torchvision

        return torchvision.models.get_model(name, weights=None).eval(), "torchvision"
    except Exception:
        from cnngraph import zoo
        from cnngraph.compiler import weights
        from cnngraph.interop.torch_ref import to_torch

        g = zoo.build(name)
        return to_torch(g, weights.init(g, seed=0)), "cnngraph.interop.torch_ref"


def peers(name):
    import torch

    model, source = torch_model(name)
    x = torch.zeros(1, 3, 224, 224)
    out = {}
    try:
        import torchinfo

        out["torchinfo"] = best(lambda: torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0), 3)
    except ImportError:
        pass
    try:
        import ptflops

        out["ptflops"] = best(lambda: ptflops.get_model_complexity_info(model, (3, 224, 224), print_per_layer_stat=False,
                                                                        as_strings=False), 3)
    except ImportError:
        pass
    try:
        from fvcore.nn import FlopCountAnalysis

        def fv():
            a = FlopCountAnalysis(model, x)
            a.unsupported_ops_warnings(False)
            a.uncalled_modules_warnings(False)
            return a.total()

        out["fvcore"] = best(fv, 3)
    except ImportError:
        pass
    return out, source


def main():
    from cnngraph import analyze, zoo
    from cnngraph.ir.symbols import H, W

    print("cnngraph symbolic analysis (build + per-layer costs + totals), input (3, H, W)")
    r152_cold = cold("resnet152", "(3, H, W)")
    r152_warm = best(lambda: analyze(zoo.build("resnet152", input=(3, H, W))).total)
    print(f"  resnet152   cold {r152_cold * 1e3:7.1f} ms   warm {r152_warm * 1e3:7.1f} ms   (target ≤ 150 ms)")
    rows = {"resnet152": r152_cold}
    for deep in ("resnet1202",):
        if deep in zoo.names():
            t = cold(deep, "(3, H, W)")
            n = zoo.build(deep).number_of_nodes()
            rows[deep] = t
            print(f"  {deep:11s} cold {t * 1e3:7.1f} ms   ({n} nodes; {t / r152_cold:.1f}× ResNet-152, target ≤ 10×)")

    rep = analyze(zoo.build("resnet152", input=(3, H, W)))
    t = time.perf_counter()
    f = rep.totals_function()
    compile_s = time.perf_counter() - t
    calls = [0.0] * 2000
    for i in range(len(calls)):
        t = time.perf_counter()
        f(H=224 + (i % 7) * 32, W=224)
        calls[i] = time.perf_counter() - t
    print(f"  re-evaluate totals at a new input: {statistics.median(calls) * 1e6:.1f} µs median "
          f"(lambdify once: {compile_s * 1e3:.1f} ms; target ≤ 1 ms)")

    try:
        got, source = peers("resnet152")
    except ImportError:
        print("peers: torch not installed")
        return
    print(f"peers on ResNet-152 at 3×224×224 (model from {source}), best of 3:")
    for k, v in got.items():
        print(f"  {k:10s} {v * 1e3:7.1f} ms   cnngraph (cold, symbolic) is {v / r152_cold:.2f}× faster")


if __name__ == "__main__":
    main()
