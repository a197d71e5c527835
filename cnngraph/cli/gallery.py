"""``cnngraph gallery``: write or check the static gallery (:mod:`cnngraph.present.gallery`).

>>> from cnngraph.cli import build_parser
>>> args = build_parser("gallery").parse_args(["gallery", "--models", "lenet5,alexnet", "--check"])
>>> args.out, args.models, args.check
('gallery', 'lenet5,alexnet', True)
"""
from __future__ import annotations


def add_gallery(p):
    p.add_argument("--out", default="gallery", help="output folder (default: gallery)")
    p.add_argument("--models", help="comma-separated zoo names (default: the whole zoo)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    p.add_argument("--force", action="store_true", help="redraw every file, even unchanged ones")
    p.add_argument("--check", action="store_true", help="only check that the folder is up to date (exit 1 if not)")
    p.set_defaults(func=_cmd_gallery)


def _cmd_gallery(args):
    import time

    from cnngraph import zoo
    from cnngraph.present.gallery import build, check

    t0 = time.perf_counter()
    if args.check:
        problems, notes = check(args.out, args.jobs)
        for n in notes:
            print(f"note: {n}")
        for p in problems:
            print(p)
        print(f"{args.out}: {'up to date' if not problems else f'{len(problems)} problems'}")
        return 1 if problems else 0
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    for m in models or []:
        zoo.info(m)  # unknown names fail here, with the list of models
    counts = build(args.out, models, args.jobs, args.force)
    print(f"{args.out}: {counts['written']} files written, {counts['unchanged']} unchanged, "
          f"{counts['removed']} removed in {time.perf_counter() - t0:.1f} s")
    return 0
