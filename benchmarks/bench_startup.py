"""Start-up time of the command line: ``cnngraph --help`` and ``cnngraph table resnet50``.

Each command runs in its own process (median of ``--repeat`` runs, wall time), for this
checkout and for a base commit checked out in a temporary git worktree (default: 42fc32e, the
commit before the package layout), and prints both with their ratio. It also lists which of
sympy, networkx and numba ``cnngraph --help`` imported.

    .venv/bin/python benchmarks/bench_startup.py [--base 42fc32e] [--repeat 7]

The base is run from its source tree: ``cnngraph/dsl`` and ``cnngraph/backends`` are linked
to the top-level ``dsl/`` and ``backends/`` folders as the installed package maps them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sympy", "networkx", "numba")

# The same launcher for both trees: main() of cnngraph.cli, then which heavy modules were loaded.
LAUNCH = ("import sys\n"
          "from cnngraph.cli import main\n"
          "try:\n"
          "    rc = main(sys.argv[1:])\n"
          "except SystemExit as e:\n"
          "    rc = e.code\n"
          "sys.stderr.write('HEAVY ' + ','.join(m for m in %r if m in sys.modules) + '\\n')\n"
          "sys.exit(rc or 0)\n") % (HEAVY,)


def tree_of_base(base: str, where: Path) -> Path:
    """A checkout of ``base`` at ``where`` with the package links the installed layout makes."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(where), base], check=True)
    for name in ("dsl", "backends"):
        link = where / "cnngraph" / name
        if not link.exists():
            link.symlink_to(where / name, target_is_directory=True)
    return where


def time_command(tree: Path, args: list, repeat: int) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    times, heavy = [], ""
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", LAUNCH, *args], cwd=tree, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"{tree}: cnngraph {' '.join(args)} failed:\n{r.stderr[-2000:]}")
        heavy = next((ln[6:] for ln in r.stderr.splitlines() if ln.startswith("HEAVY ")), "")
    return statistics.median(times), heavy


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="42fc32e", help="commit to compare with (default 42fc32e)")
    ap.add_argument("--repeat", type=int, default=7, help="runs per command and tree (median reported)")
    args = ap.parse_args(argv)
    commands = [["--help"], ["table", "resnet50"]]
    with tempfile.TemporaryDirectory() as tmp:
        base = tree_of_base(args.base, Path(tmp) / "base")
        try:
            print(f"{'command':28s} {'base ' + args.base:>14s} {'this tree':>12s} {'ratio':>8s}  heavy modules (this / base)")
            for cmd in commands:
                # interleave the trees so a busy moment hurts both alike
                tb, hb = time_command(base, cmd, args.repeat)
                tn, hn = time_command(ROOT, cmd, args.repeat)
                print(f"{'cnngraph ' + ' '.join(cmd):28s} {tb:12.3f} s {tn:10.3f} s {tn / tb:7.2f}×  "
                      f"{hn or 'none'} / {hb or 'none'}")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
