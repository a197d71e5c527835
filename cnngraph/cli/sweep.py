"""``cnngraph sweep``: a model family over a design space, as a table.

    cnngraph sweep resnet50 --space 'a=0.25..2:0.05, d=1..4, r=128..320:32' --out sweep.csv
    cnngraph sweep mobilenet_v2 --space 'a=0.35..1.4:0.05, r=96..224:32' --latency --sample-latency 4
    cnngraph sweep mynet.py:build --space 'c=16..64:16, r=32|64' --kind c=size

>>> from cnngraph.cli import main
>>> main(["sweep", "resnet18", "--space", "a=0.5|1"])  # doctest: +ELLIPSIS
resnet18: 2 design points (a=0.5|1.0): ...
  a      params           macs          flops  memory_bytes
0.5   3,055,880    483,149,824    484,065,536    11,847,584
  1  11,689,512  1,814,073,344  1,815,904,768    23,691,168
0
"""
from __future__ import annotations


def add_sweep(s):
    s.description = ("Evaluate a family's closed-form costs at every design point of a space: "
                     "a=width multiplier, r=resolution, d=depth multiplier, g=groups, e=expansion "
                     "ratio, k=kernel (which apply depends on the model). Space grammar: "
                     "name=low..high[:step] or name=v1|v2|..., comma separated.")
    s.add_argument("model", help="zoo name (resnet18..152, mobilenet_v2, efficientnet_b0 have width/depth knobs; "
                                 "any zoo model has r), FILE.onnx (r only) or file.py:function")
    s.add_argument("--space", required=True, help="e.g. 'a=0.25..2:0.05, d=1..4, r=128..320:32'")
    s.add_argument("--samples", type=int, help="this many random points instead of the whole grid")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--kind", action="append", metavar="KNOB=KIND",
                   help="kind of a knob of a file.py builder: multiplier, size or structural")
    s.add_argument("--sort", default=None, help="sort the printed table by this column")
    s.add_argument("--top", type=int, default=20, help="rows to print (default 20)")
    s.add_argument("--out", help="write the whole table: .csv, .json or .parquet (needs pyarrow)")
    s.add_argument("--verify", type=int, default=0, metavar="N",
                   help="also build and analyze N random points and check every total")
    s.add_argument("--latency", action="store_true",
                   help="add predicted latency from per-layer tables measured on this machine (cached)")
    s.add_argument("--backend", default="auto",
                   help="backend measured for --latency: numba, cupy, or auto (cupy where a GPU is, default)")
    s.add_argument("--sample-latency", type=int, default=0, metavar="N",
                   help="run N points end to end and report the prediction error")
    s.add_argument("--dask", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="measure layer latencies on Dask: a LocalCluster, or the scheduler at ADDRESS")
    s.add_argument("--workers", type=int, default=2, help="workers of the local Dask cluster (default 2)")
    s.add_argument("--pareto", metavar="OBJ,OBJ",
                   help="print only the Pareto front of these columns (minimised; max:NAME maximised), "
                        "e.g. latency_ms,max:macs")
    s.add_argument("--plot", metavar="FILE", help="plot the front of the --pareto objectives (first two) to "
                                                  ".svg/.png/.pdf (needs matplotlib)")
    s.set_defaults(func=cmd_sweep)


def _kinds(items) -> dict:
    from cnngraph.cli import parse_options

    return parse_options(items)


def model_family(spec: str, kinds: dict):
    """A :class:`~cnngraph.explore.families.Family` from a zoo name, FILE.onnx or file.py:function."""
    from cnngraph.explore.families import Family, family

    if spec.endswith(".onnx"):
        from cnngraph.cli import load_model
        from cnngraph.ir.graph import with_input

        g = load_model(spec)
        c = g.nodes[g.graph["inputs"][0]]["shape"][0]
        return Family(spec, lambda r: with_input(g, (c, r, r)), {"r": "size"}, doc="r: resolution")
    if ":" in spec:
        import importlib
        import importlib.util
        from pathlib import Path

        from cnngraph.ir.errors import CnnGraphError

        path, fn_name = spec.rsplit(":", 1)
        if path.endswith(".py"):
            if not Path(path).exists():
                raise CnnGraphError(f"no such file: {path}")
            s = importlib.util.spec_from_file_location(Path(path).stem, path)
            mod = importlib.util.module_from_spec(s)
            s.loader.exec_module(mod)
        else:
            mod = importlib.import_module(path)
        if not hasattr(mod, fn_name):
            raise CnnGraphError(f"{path} has no function {fn_name!r}")
        return family(getattr(mod, fn_name), kinds)
    return family(spec, kinds)


def cmd_sweep(args):
    import time

    from cnngraph.ir.errors import CnnGraphError
    from cnngraph.explore.space import parse_space
    from cnngraph.explore.sweep import check, sweep

    space = parse_space(args.space)
    if args.out:
        from cnngraph.io.files import check_output

        check_output(args.out, (".csv", ".json", ".parquet", ".pq"), "--out")
    if args.out and args.out.lower().endswith((".parquet", ".pq")):
        from cnngraph.explore.table import require_pyarrow

        require_pyarrow()
    fam = model_family(args.model, _kinds(args.kind))
    t = sweep(fam, space, samples=args.samples, seed=args.seed)
    n = len(t)
    m = t.meta
    print(f"{fam.name}: {n:,} design points ({space}): {m['graphs_built']} closed form(s) derived in "
          f"{m['derive_seconds']:.2f} s, evaluated in {m['eval_seconds']:.4f} s "
          f"({n / max(m['eval_seconds'], 1e-9):,.0f} points/s)")
    if args.latency or args.sample_latency:
        from cnngraph.explore.latency import add_latency

        t0 = time.perf_counter()
        t, info = add_latency(t, fam, backend=args.backend, dask=args.dask, workers=args.workers,
                              sample=args.sample_latency, seed=args.seed)
        print(info.summary() + f" ({time.perf_counter() - t0:.1f} s)")
    if args.verify:
        k = check(t, fam, n=args.verify, seed=args.seed)
        print(f"verified: {k} random points equal analyze() of the built graph")
    shown = t.sort(args.sort) if args.sort else t
    if args.pareto:
        from cnngraph.explore import pareto

        objectives = [o.strip() for o in args.pareto.split(",") if o.strip()]
        f = pareto.front(t, objectives)
        print(f"Pareto front of {', '.join(objectives)}: {len(f)} of {n:,} points")
        shown = t.take(f)
        if args.plot:
            if len(objectives) < 2:
                raise CnnGraphError("--plot needs two --pareto objectives")
            fig = pareto.draw(pareto.plot_data({fam.name: t}, objectives[0], objectives[1]),
                              title=f"{fam.name}: {space}")
            print(f"wrote {pareto.save_plot(fig, args.plot)}")
    elif args.plot:
        raise CnnGraphError("--plot draws the front of --pareto objectives; give --pareto too")
    print(shown.to_text(args.top), end="")
    if args.out:
        print(f"wrote {t.save(args.out)} ({n:,} rows)")
    return 0
