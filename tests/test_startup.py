"""What the command line imports: `cnngraph --help` none of the heavy libraries, and the
numeric path (`cnngraph table resnet50`) no sympy (the times are measured by
benchmarks/bench_startup.py, not here)."""
import json
import subprocess
import sys

PROBE = ("import io, json, sys, contextlib\n"
         "from cnngraph.cli import main\n"
         "out = io.StringIO()\n"
         "with contextlib.redirect_stdout(out):\n"
         "    try:\n"
         "        rc = main(sys.argv[1:])\n"
         "    except SystemExit as e:\n"
         "        rc = e.code\n"
         "print(json.dumps(dict(rc=rc or 0, out=out.getvalue(), loaded=sorted(m for m in ('sympy', 'networkx', 'numba', 'numpy', 'rich.console') if m in sys.modules))))\n")


def _run(*args):
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.splitlines()[-1])


def test_help_imports_no_heavy_library():
    got = _run("--help")
    assert got["rc"] == 0 and "table" in got["out"]
    assert got["loaded"] == []


def test_numeric_table_imports_no_sympy():
    got = _run("table", "resnet50")
    assert got["rc"] == 0
    assert "│ layer4.2.conv3" in got["out"] and "25557" in got["out"]  # ResNet-50's 25,557,032 params
    assert "sympy" not in got["loaded"] and "numpy" not in got["loaded"] and "rich.console" not in got["loaded"]


def test_symbolic_table_still_symbolic():
    got = _run("table", "lenet5", "--input", "1,H,W")
    assert got["rc"] == 0 and "sympy" in got["loaded"]
    assert "floor(H" in got["out"] or "⌊H" in got["out"]  # the output sizes as formulas of H
