"""Measured latency tables, their cache, Dask measuring, and the exact design questions."""
import math
import textwrap

import numpy as np
import pytest

from cnngraph import analyze
from cnngraph.cli import main
from cnngraph.ir.errors import CnnGraphError
from cnngraph.explore import family, sweep
from cnngraph.explore import latency as L
from cnngraph.explore import questions as Q

TINY = textwrap.dedent('''
    from cnngraph.dsl import Net, conv2d, relu, global_avgpool, flatten, linear

    def tiny(c=8, r=16):
        net = Net("tiny")
        x = relu(conv2d(net.input(3, r, r), c, 3, padding=1))
        x = relu(conv2d(x, c, 3, padding=1))
        linear(flatten(global_avgpool(x)), 10)
        return net.graph
''')


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNGRAPH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tinynet.py"
    path.write_text(TINY)
    ns = {}
    exec(compile(TINY, str(path), "exec"), ns)
    return ns["tiny"], f"{path}:tiny"


def test_predicted_latency_is_a_sum_of_cached_layers(tiny):
    fn, _ = tiny
    fam = family(fn, {"c": "size"})
    t = sweep(fam, "c=8|16, r=16|24")
    t1, info = L.add_latency(t, fam, backend="numba", sample=2, seed=1)
    assert info.measured == info.layers > 0 and info.sample == 2
    assert (t1["latency_ms"] > 0).all() and np.isfinite(t1["measured_ms"]).sum() == 2
    assert np.isfinite(t1["measured_layers_ms"]).sum() == 2 and len(info.layer_errors) == 2
    table = L.LatencyTable.load(info.machine)
    assert table.path.exists() and len(table.seconds) == info.layers
    # the prediction of a point is the sum of its steps' entries
    g = fam.build(c=16, r=24)
    keys = [k for k, _s, _p in L.layers_of(g)]
    row = [i for i in range(len(t1)) if (t1["c"][i], t1["r"][i]) == (16, 24)][0]
    assert t1["latency_ms"][row] == pytest.approx(sum(table.seconds[k] for k in keys) * 1e3)
    # a second sweep measures nothing: every layer comes from the cache
    t2, info2 = L.add_latency(t, fam, backend="numba")
    assert info2.measured == 0 and np.array_equal(t2["latency_ms"], t1["latency_ms"])


def test_machine_key_names_backend_and_kernels():
    m = L.machine("numba")
    assert m["backend"] == "numba" and m["backend_version"].startswith("numba-")
    assert m["key"].startswith(m["host"])


def test_dask_sweep_gives_the_same_table(tiny, tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    _, spec = tiny
    a, b = tmp_path / "dask.csv", tmp_path / "local.csv"
    common = ["sweep", spec, "--space", "c=8|16, r=16", "--kind", "c=size", "--latency", "--backend", "numba"]
    assert main(common + ["--dask", "--workers", "2", "--out", str(a)]) == 0
    out = capsys.readouterr().out
    assert "Dask task(s) on" in out and "measured now" in out
    assert main(common + ["--out", str(b)]) == 0
    assert "0 measured now" in capsys.readouterr().out
    assert a.read_text() == b.read_text()  # costs, and latencies from the same measured table


def test_missing_dask_is_one_clear_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(CnnGraphError, match="needs dask.distributed"):
        L.measure_on_dask([("k", None)])


def test_largest_width_under_a_budget():
    ans = Q.largest_multiplier("resnet50", 600_000_000, fixed={"r": 224})
    assert ans.width == Q.Fraction(5, 18) and ans.details["included"]
    t = sweep("resnet50", "a=0.2777|0.2778, r=224")
    assert t["macs"].tolist()[0] == ans.value <= 600_000_000 < t["macs"].tolist()[1]
    root = ans.details["unrounded"]["value"]  # width 64·a unrounded: cost(a) = 600 M exactly
    assert 0.37 < root < 0.38


def test_resolution_of_equal_cost():
    ans = Q.equal_cost_resolution("resnet50", {}, "efficientnet_b0", {"r": 224})
    target = analyze(family("efficientnet_b0").build(r=224)).total.macs
    r = ans.details["largest"]
    fam = family("resnet50")
    assert analyze(fam.build(r=r)).total.macs <= target < analyze(fam.build(r=r + 1)).total.macs
    assert math.floor(ans.width) in (r, r - 1, r + 1) or abs(ans.width - r) < 8


def test_efficientnet_search_places_the_paper_point():
    ans = Q.efficientnet_search(step=0.1)
    p = ans.details["paper"]
    b0 = analyze(family("efficientnet_b0").build()).total.macs
    macs = analyze(family("efficientnet_b0").build(a=1.1, d=1.2, r=p["r"])).total.macs
    assert p["macs"] == macs and p["ratio"] == pytest.approx(macs / b0)
    assert 1 <= ans.details["rank"] <= ans.details["points"]
    assert abs(p["law"] - 1.92) < 0.001
