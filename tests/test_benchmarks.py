"""The CPU benchmarks run without PyTorch (that peer skipped, and said so), and measure each
peer's memory in a process that pays only for its own runtime: run on small inputs, in
processes where ``torch`` and ``torchvision`` cannot be imported (a ``sitecustomize`` on
``PYTHONPATH`` marks them missing, as an environment without them would)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).parents[1] / "benchmarks"


def _without_torch(tmp_path) -> dict:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\nsys.modules['torchvision'] = None\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def _run(args, env):
    r = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.mark.parametrize("compile_in_child", [False, True])
def test_bench_cpu_without_torch(tmp_path, compile_in_child):
    """cnngraph's process loads the saved plan the parent wrote (networkx never imported), or
    with --compile builds and compiles the graph itself."""
    env = _without_torch(tmp_path)
    out = _run(["-c", "import importlib.util as u; print(u.find_spec('torch'))"], env)
    assert out.strip() == "None"  # the stand-in: as if PyTorch were not installed
    js = tmp_path / "cpu.json"
    out = _run([BENCH / "bench_cpu.py", "--model", "lenet5", "--batch", "2", "--procs", "1", "--runs", "3",
                "--min-time", "0", "--rounds", "1", "--warmup", "1", "--json", js] + ["--compile"] * compile_in_child,
               env)
    assert "PyTorch/torchvision not installed" in out and "the PyTorch eager peer is skipped" in out
    (row,) = json.loads(js.read_text())["rows"]
    assert set(row["own"]) == {"cnngraph", "onnxruntime"} == set(row["round_robin"])
    assert row["own"]["cnngraph"]["rel_err"] < 1e-5
    ours, ort = row["own"]["cnngraph"], row["own"]["onnxruntime"]
    # each peer's process paid for its own runtime only: ONNX Runtime's never imported
    # cnngraph's libraries, ours neither ONNX Runtime nor sympy
    assert "onnxruntime" in ort["modules"] and not {"numba", "networkx", "sympy"} & set(ort["modules"])
    assert "numba" in ours["modules"] and not {"onnxruntime", "onnx", "sympy", "torch"} & set(ours["modules"])
    assert ("networkx" in ours["modules"]) == compile_in_child
    phases = [r["phase"] for r in ours["phases"]]
    assert phases == ["python, numpy", "imports", *(("model", "weights", "compile") if compile_in_child else ("plan",)),
                      "executor", "first run", "runs"]
    assert [r["phase"] for r in ort["phases"]] == ["python, numpy", "imports", "session", "first run", "runs"]
    for p in (ours, ort):  # the peak is the largest phase peak, and at least every phase's end
        assert p["peak_mb"] == max(r["peak_mb"] for r in p["phases"]) >= max(r["rss_mb"] for r in p["phases"]) - 1
    assert "memory by phase (MB): python, numpy" in out and "peak RSS ours / ORT" in out


def test_bench_cpu_memory_table_without_torch(tmp_path):
    env = _without_torch(tmp_path)
    out = _run([BENCH / "bench_cpu.py", "--memory", "--model", "lenet5", "--batch", "1"], env)
    rows = [line for line in out.splitlines() if line.startswith("| lenet5 |")]
    assert [r.split(" | ")[2] for r in rows] == ["cnngraph", "onnxruntime"]
    assert "the PyTorch eager peer is skipped" in out


def test_bench_resnet50_without_torch(tmp_path):
    env = _without_torch(tmp_path)
    js = tmp_path / "r50.json"
    out = _run([BENCH / "bench_resnet50.py", "--batch", "1", "--size", "32", "--rounds", "1", "--warmup", "1",
                "--no-memory", "--json", js], env)  # (its memory subprocesses run the same set-up)
    assert "PyTorch is not installed: the PyTorch eager peer is skipped" in out
    (run,) = json.loads(js.read_text())["runs"]
    assert set(run["peers"]) == {"cnngraph-numba", "onnxruntime"} and run["ratio_vs_pytorch"] is None
    assert all(p["rel_err_vs_pytorch"] < 1e-5 for p in run["peers"].values())  # against ONNX Runtime here


def test_bench_grouped_without_torch(tmp_path):
    """bench_grouped.py on ResNeXt-50's first two grouped shapes, both algorithms, batch 1: each
    row times both and ORT, and our outputs match ORT's."""
    out = _run([BENCH / "bench_grouped.py", "--models", "resnext50_32x4d", "--batch", "1", "--first", "2",
                "--budget", "0.01"], _without_torch(tmp_path))
    rows = [line.strip("|").split("|") for line in out.splitlines() if "², /" in line]
    assert [r[0].strip() for r in rows] == ["128→128, 56², /1, g32, cg4", "256→256, 56², /2, g32, cg8"]
    for r in rows:
        assert all(float(v) > 0 for v in r[3:6]) and r[6].strip() == "grouped"
        assert float(r[8]) < 1e-5
