"""ResNet-50 inference on a GPU: the CuPy backend against PyTorch with cuDNN, in the same run.

    python benchmarks/bench_gpu_resnet50.py               # batch 64, 224×224, float32 and TF32
    python benchmarks/bench_gpu_resnet50.py --batch 16 --repeat 50

Both sides run the same network with the same seeded weights: the compiled plan's graph
(batch norms folded into the convolutions), on device-resident inputs, timed with CUDA
events (median of ``--repeat`` runs after ``--warmup``; ours includes turning the NCHW input
into the arena's NHWC, PyTorch gets its input channels last). PyTorch also runs the unfolded
model as users write it (cuDNN, channels last, ``cudnn.benchmark``). TF32 rows let cuBLAS
(ours) and cuBLAS/cuDNN (PyTorch) use TF32 tensor cores; they need compute capability 8.0+.

The ratio column is our time over PyTorch's at the same precision, from this run. Prints a
skip message and exits 0 where CuPy finds no GPU (every machine this was written on: it has
not been run on a GPU yet).
"""
from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np


def median_ms(fn, events, elapsed, repeat, warmup) -> float:
    """Median milliseconds of ``fn()`` between two CUDA events (``events()`` makes a pair,
    ``elapsed(start, stop)`` reads it): the GPU's time, whatever Python does meanwhile."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start, stop = events()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(elapsed(start, stop))
    return statistics.median(times)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args(argv)

    from cnngraph.backends import cupy_backend as cb
    from cnngraph.ir.errors import CnnGraphError

    try:
        cupy = cb.load_cupy()
    except CnnGraphError as e:
        print(f"skipped: {e}")
        return 0

    from cnngraph import zoo
    from cnngraph.compiler import compile
    from cnngraph.compiler.weights import init

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    cc = int(dev.compute_capability)
    print(f"GPU {props['name'].decode() if isinstance(props['name'], bytes) else props['name']} "
          f"(compute capability {cc // 10}.{cc % 10}), CuPy {cupy.__version__}, "
          f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}")

    g = zoo.build("resnet50", input=(3, args.size, args.size))
    ws = init(g, seed=0, random_bn=True)
    plan = compile(g, ws)
    n = args.batch
    x = np.random.default_rng(1).standard_normal((n, 3, args.size, args.size)).astype(np.float32)
    xd = cupy.asarray(x)
    events = lambda: (cupy.cuda.Event(), cupy.cuda.Event())  # noqa: E731
    elapsed = cupy.cuda.get_elapsed_time
    precisions = ["float32"] + (["tf32"] if cc >= 80 else [])

    def ours(tf32: bool):
        ex = cb.executor(plan, tf32=tf32)
        y = cupy.asnumpy(ex.run_device(xd)[0])
        return y, median_ms(lambda: ex.run_device(xd), events, elapsed, args.repeat, args.warmup)

    rows, outs = {}, {}
    for prec in precisions:
        outs[("cnngraph", prec)], rows[("cnngraph", prec)] = ours(prec == "tf32")
        cupy.get_default_memory_pool().free_all_blocks()  # the executor's arena is gone with it

    try:
        import torch

        ok = torch.cuda.is_available()
        why = "" if ok else f"PyTorch {torch.__version__} has no CUDA here (install a CUDA build of torch)"
    except ImportError:
        ok, why = False, "PyTorch is not installed (pip install torch: a CUDA build on Linux x86_64)"
    if ok:
        from cnngraph.interop.torch_ref import to_torch

        torch.backends.cudnn.benchmark = True
        models = {"PyTorch cuDNN (same folded network)": to_torch(plan.graph, plan.weights),
                  "PyTorch cuDNN (batch norms unfolded)": to_torch(g, ws)}
        xt = torch.from_numpy(x).cuda().contiguous(memory_format=torch.channels_last)
        tev = lambda: (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))  # noqa: E731
        telapsed = lambda a, b: a.elapsed_time(b)  # noqa: E731
        for label, m in models.items():
            m = m.cuda().eval().to(memory_format=torch.channels_last)
            for prec in precisions:
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = prec == "tf32"
                with torch.inference_mode():
                    outs[(label, prec)] = m(xt).float().cpu().numpy()
                    rows[(label, prec)] = median_ms(lambda: m(xt), tev, telapsed, args.repeat, args.warmup)
            del m
            torch.cuda.empty_cache()
    peer = "PyTorch cuDNN (same folded network)"

    print(f"\nResNet-50, batch {n}, 3×{args.size}×{args.size}, median of {args.repeat} runs after {args.warmup} "
          f"(CUDA events)")
    print(f"{'':40s} {'precision':9s} {'ms/batch':>9s} {'images/s':>9s} {'vs peer':>8s} {'rel err':>9s}")
    ref = outs.get((peer, "float32"), outs[("cnngraph", "float32")])
    for (who, prec), ms in rows.items():
        ratio = f"{ms / rows[(peer, prec)]:.2f}×" if (peer, prec) in rows else "n/a"
        print(f"{who:40s} {prec:9s} {ms:9.2f} {n / ms * 1e3:9.1f} {ratio:>8s} {rel_err(outs[(who, prec)], ref):9.2e}")
    print("\nvs peer: our time over PyTorch's on the same folded network at the same precision (below 1 is faster).")
    print("rel err: max|y − y_ref|/max|y_ref| against PyTorch float32 (ours float32 if PyTorch is missing).")
    if not ok:
        print(f"peer not measured: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
