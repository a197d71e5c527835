"""``cnngraph run``, ``cnngraph bench`` and ``cnngraph plan``: compile a model and execute it.

    cnngraph run resnet50 --backend numba --batch 8 --weights resnet50.safetensors --output y.npy
    cnngraph bench resnet50 --backend numba --batch 8
    cnngraph plan resnet50 --input 3,H,W

Inputs and outputs are in PyTorch layout (N, C, H, W); weights use torchvision's state_dict
names (``.npz`` or ``.safetensors``), or are seeded random (``--seed``) when no file is given.

>>> from cnngraph.cli import main
>>> main(["plan", "lenet5"])  # doctest: +ELLIPSIS
lenet5: 7 steps over 8 values in 2 slots; ...
0
"""
from __future__ import annotations

import resource
import statistics
import time

import numpy as np

from cnngraph.cli import add_model_args, load_model, parse_input, parse_options
from cnngraph.ir.errors import CnnGraphError


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # On stderr, and only on a terminal: piped output gets the results and no blank lines.
    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[step]}"), transient=True, console=console,
                    disable=not console.is_terminal)


def prepare(args):
    """Graph, weights, plan and executor from the command-line arguments, with progress bars."""
    from cnngraph import backends

    if args.batch < 1:
        raise CnnGraphError(f"--batch {args.batch}: must be a positive integer")
    if getattr(args, "repeat", 1) < 1:
        raise CnnGraphError(f"--repeat {args.repeat}: must be a positive integer")
    if getattr(args, "warmup", 0) < 0:
        raise CnnGraphError(f"--warmup {args.warmup}: must not be negative")
    from cnngraph.compiler.plan_file import is_plan_file

    output = _check_output(args) if getattr(args, "output", None) else None
    if is_plan_file(args.model):
        plan = _saved_plan(args)
        g = None
    else:
        g, plan = _compiled_plan(args)
    if output is not None and output.suffix.lower() == ".npy" and len(plan.outputs) > 1:
        raise CnnGraphError(f"--output {output}: the model has {len(plan.outputs)} outputs "
                            f"({', '.join(plan.outputs)}); give a .npz file to save them all")
    args._output = output
    backend = backends.get(args.backend)
    with _progress() as bar:
        task = bar.add_task("packing weights", total=len(plan.steps), step="")
        ex = backend.make_executor(plan, progress=lambda i, s: bar.update(task, advance=1, step=s.node))
    return g, plan, ex


def _saved_plan(args):
    """A saved plan (``cnngraph plan MODEL --save FILE.cgplan``), made for ``--batch`` (or
    the --input-file's batch); it holds its weights and its input size."""
    from cnngraph.compiler import plan_file

    for flag, given in (("--weights", args.weights), ("--input", args.input), ("-O", args.option)):
        if given:
            raise CnnGraphError(f"{flag}: {args.model} is a saved plan; it holds its weights, input size and options")
    batch, args._input_head = args.batch, None
    if args.input_file:
        args._input_head = _input_header(args.input_file)
        shape = args._input_head.shape
        batch = shape[0] if len(shape) == 4 else 1
    plan = plan_file.load(args.model, batch=batch, allow_nonfinite=args.allow_nonfinite)
    want = tuple(int(s) for s in plan.values[plan.inputs[0]].shape)
    if args.input_file and (len(shape) not in (len(want), len(want) + 1) or tuple(shape[-len(want):]) != want):
        raise CnnGraphError(f"{args.input_file}: array of shape {'×'.join(map(str, shape))} does not fit the plan's "
                            f"N×{'×'.join(map(str, want))}")
    return plan  # (load checked the weights and the planned arena against the memory available)


def _compiled_plan(args):
    """Graph and plan of a zoo model, ONNX file or user function, compiled for --batch."""
    from cnngraph.compiler import compile
    from cnngraph.compiler.weights import init, load

    shape = parse_input(args.input)
    g = load_model(args.model, shape, parse_options(args.option))
    batch, input_head = args.batch, None
    if args.input_file:  # the header only: its dtype and shape (a symbolic input takes its size)
        input_head = _input_header(args.input_file)
        g = _size_from_file(g, input_head.shape, args.input_file)
        batch = input_head.shape[0] if len(input_head.shape) == 4 else 1
    check_memory(g, batch, args.model)
    # An ONNX file brings its own weights; zoo models get seeded ones unless a file is given.
    ws = load(args.weights, g, allow_nonfinite=args.allow_nonfinite) if args.weights else \
        (g.graph.get("weights") or init(g, seed=args.seed))
    args._input_head = input_head
    return g, compile(g, ws, batch=args.batch)


def first_run(ex, x, label="first run (compiles kernels not yet cached)"):
    with _progress() as bar:
        task = bar.add_task(label, total=len(ex.plan.steps), step="")
        return ex.run(x, progress=lambda i, s: bar.update(task, advance=1, step=s.node))


def _numeric_input(g) -> tuple:
    from cnngraph.ir import ops

    shape = g.nodes[g.graph["inputs"][0]]["shape"]
    if not all(ops.is_int(s) for s in shape):
        raise CnnGraphError(f"input shape {ops.fmt_shape(shape)} is symbolic; give a numeric --input to run")
    return tuple(int(s) for s in shape)


def _input_header(path):
    """The --input-file's header (name, dtype, shape), read and dtype-checked before any data."""
    from cnngraph.io import arrays

    if not str(path).lower().endswith(".npy"):
        raise CnnGraphError(f"--input-file {path}: must be a .npy array")
    (h,) = arrays.headers(path, "--input-file").values()
    arrays.check_dtypes({h.name: h}, str(path))
    return h


def _size_from_file(g, shape, path):
    """``g`` for an array of ``shape`` (N×C×H×W or C×H×W): a symbolic input takes its size,
    a numeric one must match."""
    from cnngraph.ir import ops
    from cnngraph.ir.graph import input_shape, with_input

    want = input_shape(g)
    got = tuple(shape[len(shape) - len(want):])
    if len(shape) not in (len(want), len(want) + 1) or (len(shape) > len(want) and shape[0] < 1) or \
            any(ops.is_int(w) and int(w) != v for w, v in zip(want, got)):
        raise CnnGraphError(f"{path}: array of shape {'×'.join(map(str, shape))} does not fit the model's "
                            f"N×{ops.fmt_shape(want)}")
    return g if all(ops.is_int(s) for s in want) else with_input(g, got)


def _input_batch(args, plan):
    shape = tuple(int(s) for s in plan.values[plan.inputs[0]].shape)
    if args.input_file:
        from cnngraph.io import arrays

        h = args._input_head
        x = arrays.read(args.input_file, {h.name: h}, args.allow_nonfinite)[h.name]
        return x[None] if x.shape == shape else x
    return np.random.default_rng(args.seed).standard_normal((args.batch,) + shape).astype(np.float32)


def check_memory(g, batch: int, label: str = "the model") -> int:
    """Bytes a run needs (weights, their packed copies, planned activations and the input
    for ``batch``), refused with the figures when /proc/meminfo's MemAvailable is smaller.

    Computed from the graph alone, before weights, arenas or the input are allocated.
    """
    from cnngraph.compiler import compile
    from cnngraph.compiler.plan import fmt_bytes
    from cnngraph.compiler.weights import param_shapes
    from cnngraph.io import arrays

    _numeric_input(g)
    weights = sum(int(np.prod(s)) for s, _ in param_shapes(g).values()) * 4
    per_sample = int(compile(g).memory.planned_bytes)
    inp = int(np.prod(_numeric_input(g))) * 4
    need = 2 * weights + batch * (per_sample + inp)
    free = arrays.memory_available()
    if free is not None and need > free:
        raise CnnGraphError(f"{label} at batch {batch} needs {fmt_bytes(need)} (weights {fmt_bytes(weights)} ×2 packed, "
                            f"planned arena {fmt_bytes(per_sample)} and input {fmt_bytes(inp)} per sample); "
                            f"{fmt_bytes(free)} of memory are available")
    return need


def _check_output(args):
    """The --output path, checked before the model runs: .npy (one output) or .npz."""
    from cnngraph.io.files import check_output

    return check_output(args.output, (".npy", ".npz"), "--output")


def cmd_run(args):
    g, plan, ex = prepare(args)
    x = _input_batch(args, plan)
    t0 = time.perf_counter()
    outs = first_run(ex, x)
    dt = time.perf_counter() - t0
    print(f"{plan.summary()}")
    print(f"ran {args.model} on {args.backend}: batch {x.shape[0]}, input {'×'.join(map(str, x.shape[1:]))}, "
          f"{dt * 1e3:.1f} ms (first run, includes any kernel compilation)")
    for name, y in zip(plan.outputs, outs):
        print(f"output {name}: shape {'×'.join(map(str, y.shape))}, mean {y.mean():.6g}, std {y.std():.6g}")
        if y.ndim == 2 and y.shape[1] > 1:
            for i, row in enumerate(y[:8]):
                top = np.argsort(row)[::-1][:5]
                print(f"  sample {i}: top-5 " + ", ".join(f"{j} ({row[j]:.4g})" for j in top))
    if args.output:
        from cnngraph.io.files import atomic_open

        out = args._output
        with atomic_open(out) as f:
            if out.suffix.lower() == ".npy":
                np.save(f, outs[0])
            else:
                np.savez(f, **dict(zip(plan.outputs, outs)))
        print(f"wrote {out}" + (f" ({', '.join(plan.outputs)})" if out.suffix.lower() == ".npz" else ""))
    return 0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_bench(args):
    from cnngraph.analysis.cost import analyze
    from cnngraph.ir.printer import fmt_bytes

    g, plan, ex = prepare(args)
    x = _input_batch(args, plan)
    first_run(ex, x, "warm-up (compiles kernels not yet cached)")
    for _ in range(max(0, args.warmup - 1)):
        ex.run(x)
    times = []
    with _progress() as bar:
        task = bar.add_task("timing", total=args.repeat, step="")
        for _ in range(args.repeat):
            t = time.perf_counter()
            ex.run(x)
            times.append(time.perf_counter() - t)
            bar.update(task, advance=1, step=f"{times[-1] * 1e3:.1f} ms")
    ceiling = ex.backend.sgemm_ceiling()  # the GPU's own for cupy
    n = x.shape[0]
    # a saved plan has no graph: the same registry counts, summed over its steps
    macs = analyze(g).total.macs if g is not None else sum(step_macs(s, 1) for s in plan.steps)
    med, best = statistics.median(times), min(times)
    gflops = 2 * macs * n / med / 1e9
    mem = plan.memory.at(n)
    print(plan.summary())
    print(f"{args.model} on {args.backend}, batch {n}, input {'×'.join(map(str, x.shape[1:]))}, {args.repeat} runs")
    print(f"  time per batch   median {med * 1e3:.1f} ms, best {best * 1e3:.1f} ms")
    print(f"  throughput       {n / med:.1f} images/s")
    print(f"  compute          {gflops:.1f} GFLOP/s (2 FLOP per MAC, {2 * macs * n / 1e9:.2f} GFLOP per batch)")
    gemm = ex.backend.gemm_name
    print(f"  SGEMM ceiling    {ceiling:.1f} GFLOP/s ({gemm} float32, this run): "
          f"{gflops / ceiling:.0%} of it; the batch cannot beat {2 * macs * n / 1e9 / ceiling * 1e3:.1f} ms")
    if ex.backend.threads():
        print(f"  threads          {ex.backend.threads()}")
    print(f"  memory           planned arena {fmt_bytes(mem.planned_bytes)} per sample (naive {fmt_bytes(mem.naive_bytes)}), "
          f"weights {fmt_bytes(sum(int(np.size(v)) for v in plan.weights.values()) * 4)}, "
          f"process peak RSS {_rss_mb():.0f} MiB (1 MiB = 2^20 B)")
    if args.per_layer:
        per_layer(ex, x, args.repeat, ceiling)
    return 0


def step_macs(step, n: int) -> int:
    """Multiply-adds of a step's own op (and of its nested steps) for a batch of n, as the
    registry counts them (0 for ops without any).

    >>> from cnngraph import zoo
    >>> from cnngraph.compiler import compile
    >>> [step_macs(s, 2) for s in compile(zoo.build("lenet5")).steps if s.op == "conv2d"]
    [784000, 9800000]
    """
    from cnngraph.ir import ops

    return n * sum(int(ops.get(p.op).macs(p.attrs, p.in_shapes, p.out_shape)) for p in step.parts)


def per_layer(ex, x, repeat: int, ceiling: float) -> None:
    """Each step's median time over ``repeat`` runs (timestamps between steps), its GFLOP/s
    (2 FLOP per multiply-add, the layer's own count, whatever the algorithm) and share."""
    plan = ex.plan
    times = [[] for _ in plan.steps]
    for _ in range(repeat):
        stamps = [(-1, time.perf_counter())]  # (step, when it ended); a batch run in passes repeats the steps
        ex.run(x, progress=lambda i, s: stamps.append((i, time.perf_counter())))
        took = [0.0] * len(plan.steps)
        for (_, t0), (i, t1) in zip(stamps, stamps[1:]):
            took[i] += t1 - t0
        for i, t in enumerate(took):
            times[i].append(t)
    med = [statistics.median(t) for t in times]
    total = sum(med)
    n = x.shape[0]
    print(f"per step (median of {repeat} runs; SGEMM ceiling {ceiling:.1f} GFLOP/s; GFLOP/s counts the layer's "
          "direct multiply-adds, so Winograd can exceed the ceiling):")
    print(f"  {'#':>3} {'step':34s} {'op / algorithm':22s} {'ms':>8} {'GFLOP/s':>8} {'ceiling':>7} {'share':>6}")
    for i, (s, t) in enumerate(zip(plan.steps, med)):
        f = 2 * step_macs(s, n) / t / 1e9 if t > 0 else 0.0
        alg = s.op + (f" {s.algorithm}" if s.algorithm else "") + (" + SE gate" if s.gate else "") + (
            " + expansion" if s.pre else "")
        print(f"  {i:3d} {s.node[:34]:34s} {alg[:22]:22s} {t * 1e3:8.2f} {f:8.1f} "
              f"{(f'{f / ceiling:.0%}' if f else ''):>7} {t / total:6.1%}")
    print(f"  sum {total * 1e3:.1f} ms")


def cmd_plan(args):
    from cnngraph.compiler import compile
    from cnngraph.ir.printer import fmt_bytes

    from cnngraph.compiler import plan_file

    for flag, given in (("--weights", args.weights), ("--allow-nonfinite", args.allow_nonfinite)):
        if given and not args.save:
            raise CnnGraphError(f"{flag}: only with --save (the plan itself does not read weights)")
    if plan_file.is_plan_file(args.model):  # a saved plan: its steps as loaded, for --batch
        if args.save or args.input or args.option:
            raise CnnGraphError(f"{args.model} is a saved plan: --save, --input and -O do not apply")
        g, plan = None, plan_file.load(args.model, batch=args.batch)
    else:
        g = load_model(args.model, parse_input(args.input), parse_options(args.option))
        if args.save:
            return _save_plan(args, g)
        plan = compile(g, batch=args.batch)
    print(plan.summary())
    m = plan.memory
    if isinstance(m.planned_bytes, int) or getattr(m.planned_bytes, "is_Integer", False):
        planned, naive = fmt_bytes(m.planned_bytes), fmt_bytes(m.naive_bytes)
    else:  # symbolic: the one printer, Max terms that can never win dropped
        from cnngraph.ir import printer

        planned, naive = (printer.text(printer.simplify_max(b)) + " B" for b in (m.planned_bytes, m.naive_bytes))
    print(f"planned arena per sample: {planned}  (buffers after reuse)")
    print(f"naive sum per sample:     {naive}  (every value its own buffer)")
    from cnngraph.analysis.cost import analyze
    from cnngraph.ir.printer import memory_note

    if g is not None:
        print(f"table's activation memory: {fmt_bytes(analyze(g).total.memory_bytes)}  (every layer output written once)")
        print(memory_note("arena", "naive", "activations"))
    if args.steps:
        for i, s in enumerate(plan.steps):
            tail = "".join(f" +{a}" for a in (s.act1,) if a) + (f" +res({s.residual})" if s.residual else "") + \
                "".join(f" +{a}" for a in (s.act2,) if a)
            print(f"{i:4d} {s.op:18s} {s.node + (' → ' + s.output if s.output != s.node else ''):48s} "
                  f"slot {plan.values[s.output].slot}{tail}")
            if s.algorithm:
                print(f"{'':23s}{s.algorithm}: {s.why}")
            if s.gate:
                print(f"{'':23s}its gate (squeeze-and-excitation), run inside the step: " + " → ".join(
                    p.node + "".join(f" +{a}" for a in (p.act1, p.act2) if a) for p in s.gate))
            for p in s.pre:
                print(f"{'':23s}its input's 1×1 expansion, run inside the step a band of rows at a time: {p.node}"
                      + "".join(f" +{a}" for a in (p.act1,) if a))
    if plan.chunk_why:
        print(f"batch {args.batch} on the CPU: {plan.chunk_why}")
    return 0


def _save_plan(args, g):
    """``cnngraph plan MODEL --save FILE.cgplan``: compiled with its weights (the file's, or
    seeded ones) for --batch, written atomically."""
    from cnngraph.compiler import compile, plan_file
    from cnngraph.compiler.weights import init, load
    from cnngraph.io.files import check_output
    from cnngraph.ir.printer import fmt_bytes

    if args.batch < 1:
        raise CnnGraphError(f"--batch {args.batch}: must be a positive integer")
    check_output(args.save, (plan_file.SUFFIX,), "--save")
    _numeric_input(g)
    ws = load(args.weights, g, allow_nonfinite=args.allow_nonfinite) if args.weights else \
        (g.graph.get("weights") or init(g, seed=args.seed))
    plan = compile(g, ws, batch=args.batch, consume_weights=True)
    path = plan_file.save(plan, args.save)
    keys = {k for s in plan.steps for part in s.parts for k in part.params.values()}  # what the file holds
    size = sum(int(plan.weights[k].size) for k in keys) * 4
    print(f"wrote {path}: {len(plan.steps)} steps, {len(keys)} weight tensors ({fmt_bytes(size)}, batch norms "
          f"folded), made for batch {args.batch}; `cnngraph run {path}` runs it without the model's source")
    return 0


def cmd_init_weights(args):
    from cnngraph.compiler.weights import count, init, save
    from cnngraph.io.files import check_output

    check_output(args.output, (".safetensors", ".npz"))
    g = load_model(args.model, parse_input(args.input), parse_options(args.option))
    ws = init(g, seed=args.seed)
    save(ws, args.output)
    print(f"wrote {args.output}: {len(ws)} tensors, {count(ws, g):,} parameters "
          f"(seeded He initialisation, seed {args.seed}, torchvision state_dict names)")
    return 0


def _common(p):
    from cnngraph.backends import BACKENDS

    add_model_args(p)
    p.add_argument("--backend", default="numba", choices=sorted(BACKENDS), help="execution backend (default numba)")
    p.add_argument("--batch", type=int, default=1, help="batch size of the random input (default 1)")
    p.add_argument("--weights", help="weights file (.npz or .safetensors, torchvision state_dict names)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and input (default 0)")
    p.add_argument("--input-file", help="input batch as a .npy array (N, C, H, W) or one sample (C, H, W)")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="run even if the weights or the input hold NaN or infinity (an error otherwise)")


def add_run(r):
    _common(r)
    r.add_argument("--output", help="save the output to FILE.npy (one output) or every output to FILE.npz")
    r.set_defaults(func=cmd_run)


def add_bench(b):
    _common(b)
    b.add_argument("--repeat", type=int, default=10, help="timed runs (default 10)")
    b.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    b.add_argument("--per-layer", action="store_true",
                   help="then each step's time, GFLOP/s and share beside the SGEMM ceiling")
    b.set_defaults(func=cmd_bench)


def add_plan(p):
    add_model_args(p)
    p.add_argument("--steps", action="store_true",
                   help="list the steps with their slots, epilogues and each convolution's algorithm and why")
    p.add_argument("--batch", type=int, default=1, help="batch size the algorithms are chosen for (default 1)")
    p.add_argument("--save", metavar="FILE.cgplan",
                   help="write the compiled plan with its folded weights; run, bench take the file as MODEL")
    p.add_argument("--weights", help="with --save: weights file (.npz or .safetensors); seeded random otherwise")
    p.add_argument("--seed", type=int, default=0, help="with --save: seed of the random weights (default 0)")
    p.add_argument("--allow-nonfinite", action="store_true", help="with --save: accept NaN or infinity in the weights")
    p.set_defaults(func=cmd_plan)


def add_init_weights(w):
    add_model_args(w)
    w.add_argument("-o", "--output", required=True, help="weights file: .safetensors or .npz")
    w.add_argument("--seed", type=int, default=0, help="seed (default 0; the same weights `run` uses)")
    w.set_defaults(func=cmd_init_weights)
