"""Analysis speed of cnngraph.from_torch on ResNet-152 beside torchinfo, fvcore and ptflops.

    python benchmarks/bench_from_torch.py

All tools get the same torchvision ResNet-152 object (built before timing). cnngraph traces
it with torch.fx and analyses it on a *symbolic* input (3, H, W) (every shape and cost a sympy
expression) and on 3×224×224; the peers run the model on 1×3×224×224 with their hooks or
tracers. Each figure is the best of several runs in one process, and again measured in a
fresh process of its own (its first call: caches and lazy imports included), so a peer's
numbers do not depend on what ran before it. Ratios are peer time / cnngraph time.
"""
from __future__ import annotations

import subprocess
import sys

from bench_analyze import best  # best of several runs (this script's directory is on sys.path)

TASKS = {
    "cnngraph from_torch (3,H,W)": "import cnngraph\nfrom cnngraph.ir.symbols import H, W\n"
                                   "run = lambda: cnngraph.analyze(cnngraph.from_torch(model, input=(3, H, W))).total",
    "cnngraph from_torch (3,224,224)": "import cnngraph\n"
                                       "run = lambda: cnngraph.analyze(cnngraph.from_torch(model, input=(3, 224, 224))).total",
    "torchinfo": "import torchinfo\nrun = lambda: torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0)",
    "fvcore": "from fvcore.nn import FlopCountAnalysis\n"
              "def run():\n    a = FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224))\n"
              "    a.unsupported_ops_warnings(False)\n    a.uncalled_modules_warnings(False)\n    return a.total()",
    "ptflops": "import ptflops\nrun = lambda: ptflops.get_model_complexity_info(model, (3, 224, 224), "
               "print_per_layer_stat=False, as_strings=False)",
}

PRELUDE = """
import time, torch, torchvision
torch.set_num_threads(1)
model = torchvision.models.resnet152(weights=None).eval()
"""

FRESH = PRELUDE + "{task}\nt = time.perf_counter()\nrun()\nprint(time.perf_counter() - t)\n"


def fresh(task: str) -> float:
    res = subprocess.run([sys.executable, "-c", FRESH.format(task=task)], capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr.strip().splitlines()[-1])
    return float(res.stdout.strip().splitlines()[-1])


def main():
    env: dict = {}
    exec(PRELUDE, env)
    same, own = {}, {}
    for name, task in TASKS.items():
        try:
            ns = dict(env)
            exec(task, ns)
            same[name] = best(ns["run"], 3)
            own[name] = fresh(task)
        except (ImportError, RuntimeError) as e:
            print(f"{name}: skipped ({e})")
    ref_same = same["cnngraph from_torch (3,H,W)"]
    ref_own = own["cnngraph from_torch (3,H,W)"]
    print("ResNet-152 analysis, torchvision module built beforehand, 1 thread")
    print(f"{'tool':34s} {'same process':>13s} {'ratio':>7s} {'own process':>12s} {'ratio':>7s}")
    for name in same:
        print(f"{name:34s} {same[name] * 1e3:10.0f} ms {same[name] / ref_same:6.2f}x "
              f"{own[name] * 1e3:9.0f} ms {own[name] / ref_own:6.2f}x")


if __name__ == "__main__":
    main()
