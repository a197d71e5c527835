"""Design-space sweeps: the --space grammar, closed forms equal to analyze(), tables, the CLI."""
import json

import numpy as np
import pytest

from cnngraph import analyze, zoo
from cnngraph.cli import main
from cnngraph.ir.errors import CnnGraphError
from cnngraph.explore import Multiplier, Table, check, parse_space, sweep
from cnngraph.dsl.knobs import make_divisible_np
from cnngraph.explore.pareto import GALLERY_SPACES
from cnngraph.zoo.mobile import make_divisible

# Every space docs/design-space.md sweeps (model, space), checked at random points below.
DOC_SPACES = [
    ("resnet50", "a=0.25..2:0.05, d=1..4, r=128..320:32"),
    ("mobilenet_v2", "a=0.35..1.4:0.05, r=96..224:32"),
    ("efficientnet_b0", "a=1..1.4:0.05, d=1..1.4:0.1, r=224..320:16"),
    ("resnet50", "a=0.5..1:0.25, g=1|2|4, r=160..224:32"),  # groups: bottlenecks only, as torchvision
    ("mobilenet_v2", "a=0.5|1, e=4|6, k=3|5, r=128|160"),
    ("mobilenet_v2", "a=0.35..1.4:0.15, r=96..224:32"),  # the latency sweeps of the docs
    ("resnet50", "a=0.25..1:0.25, r=96..224:64"),
    ("mobilenet_v2", "a=0.5|1, r=128|224"),
    ("efficientnet_b0", "a=1..2:0.05, d=1..2:0.05, r=224|235|258|314"),  # the scaling grid's kind of point
] + [ms for ms in GALLERY_SPACES]  # the gallery's too
DOC_SPACES = list(dict.fromkeys(DOC_SPACES))


def test_grammar_reads_exact_decimals():
    s = parse_space("a=0.25..2:0.05, d=1..4, r=128..320:32")
    assert s.size == 36 * 4 * 7
    assert s.knobs["a"][1] == 0.3 and s.knobs["a"][-1] == 2.0  # not 0.25 + 0.05 in floats
    assert s.knobs["d"].dtype == np.int64 and s.knobs["r"].tolist()[-1] == 320
    assert parse_space("k=3|5|7").knobs["k"].tolist() == [3, 5, 7]


@pytest.mark.parametrize("text", ['a=__import__("os")', "a=1..x", "a", "a=2..1", "a=1..2:0", "1a=3", "a=1,a=2",
                                  "a=1e3", ""])
def test_grammar_refuses(text):
    with pytest.raises(CnnGraphError):
        parse_space(text)


def test_make_divisible_numpy_matches_python():
    v = np.round(np.arange(0.05, 3.0, 0.01), 2)
    for base in (16, 24, 32, 96, 1280):
        assert make_divisible_np(base * v).tolist() == [make_divisible(base * x) for x in v.tolist()]


def test_multiplier_derives_one_symbol_per_base():
    m = Multiplier("a")
    g = zoo.build("mobilenet_v2", width_mult=m)
    assert set(m.derived) == {"a16", "a24", "a32", "a64", "a96", "a160", "a320", "a1280_ge1"}
    assert g.nodes["features.0.0"]["shape"][0] == 8 * __import__("cnngraph").symbols.sym("a32")


@pytest.mark.parametrize("model,space", DOC_SPACES)
def test_every_docs_space_equals_analyze(model, space):
    t = sweep(model, space)
    assert len(t) == parse_space(space).size
    assert check(t, model, n=3, seed=1) == 3


def test_coinciding_widths_get_their_own_closed_form():
    # at a = 0.5, make_divisible(24a) = make_divisible(32a) = 16: the collision path
    t = sweep("mobilenet_v2", "a=0.25|0.5|0.75, r=96|128")
    assert t.meta["graphs_built"] > 1
    assert check(t, "mobilenet_v2", n=len(t)) == len(t)


def test_torchvision_points():
    t = sweep("resnet50", "a=1, r=224").row(0)
    assert (t["params"], t["macs"]) == (25557032, 4089184256)
    t = sweep("efficientnet_b0", "a=1.1, d=1.2, r=260").row(0)  # B2's multipliers
    b2 = analyze(zoo.build("efficientnet_b2")).total
    assert (t["params"], t["macs"], t["memory_bytes"]) == (b2.params, b2.macs, b2.memory_bytes)


def test_random_samples_and_function_builders():
    from cnngraph.dsl import Net, conv2d, global_avgpool, linear, flatten, relu

    def tiny(c=16, r=32):
        net = Net("tiny")
        x = relu(conv2d(net.input(3, r, r), c, 3, padding=1))
        linear(flatten(global_avgpool(x)), 10)
        return net.graph

    t = sweep(tiny, "c=8..64:8, r=16..64:16", samples=50, seed=3, kinds={"c": "size"})
    assert len(t) == 50 and t.meta["graphs_built"] == 1
    assert check(t, tiny, n=5, kinds={"c": "size"}) == 5


def test_table_outputs(tmp_path):
    t = sweep("resnet18", "a=0.5|1, r=224")
    assert t.save(tmp_path / "s.csv") and (tmp_path / "s.csv").read_text().splitlines()[0] == \
        "a,r,params,macs,flops,memory_bytes"
    t.save(tmp_path / "s.json")
    d = json.loads((tmp_path / "s.json").read_text())
    assert d["rows"][1]["macs"] == 1814073344 and d["meta"]["model"] == "resnet18"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(CnnGraphError, match="pyarrow"):
            t.save(tmp_path / "s.parquet")
    assert isinstance(t.sort("macs", descending=True), Table)


def test_cli_sweep(tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["sweep", "resnet18", "--space", "a=0.5..1:0.25, r=128|224", "--verify", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "6 design points" in text and "verified: 2" in text
    assert len(out.read_text().splitlines()) == 7
    assert main(["sweep", "resnet18", "--space", "a=os.system"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a number" in err


def test_docstring_examples():
    import doctest
    import importlib

    for name in ("cnngraph.dsl.knobs", "cnngraph.explore", "cnngraph.explore.space", "cnngraph.explore.families",
                 "cnngraph.explore.sweep", "cnngraph.explore.table", "cnngraph.explore.pareto",
                 "cnngraph.explore.questions", "cnngraph.explore.latency"):
        mod = importlib.import_module(name)
        assert doctest.testmod(mod).failed == 0, name
