"""Saved plans (cnngraph.compiler.plan_file): the same plan back, the same outputs, and
every malformed file refused with one line before any weight is read."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from cnngraph import zoo
from cnngraph.backends.common import Executor, numpy_backend
from cnngraph.compiler import compile, plan_file
from cnngraph.compiler.weights import init
from cnngraph.ir.errors import CnnGraphError, InputError
from cnngraph.ir.symbols import H, W

from cases import OP_CASES, build_case, case_data


def _key(plan) -> list:
    """Everything a backend reads from a plan's steps and values."""
    steps = [(s.op, s.node, s.inputs, s.output, s.attrs, [tuple(x) for x in s.in_shapes], tuple(s.out_shape),
              s.params, s.act1, s.residual, s.act2, s.nodes, s.algorithm, s.why,
              [(q.node, q.algorithm) for q in s.pre], [(q.node, q.algorithm) for q in s.gate]) for s in plan.steps]
    values = {k: (tuple(v.shape), v.size, v.first, v.last, v.slot) for k, v in plan.values.items()}
    return [steps, values, plan.memory.slots, plan.chunk, plan.inputs, plan.outputs]


def _round_trip(plan, tmp_path, **kw):
    path = tmp_path / "m.cgplan"
    plan_file.save(plan, path)
    return plan_file.load(path, **kw)


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0", "resnext50_32x4d", "googlenet", "shufflenet_v2_x1_0"])
@pytest.mark.parametrize("batch", [1, 8])
def test_zoo_plan_comes_back_the_same(name, batch, tmp_path):
    """Steps, algorithms, nesting, pass size, memory slots and weights as compiled (the
    plan-level passes re-run on load give the same decisions)."""
    g = zoo.build(name)
    p = compile(g, init(g, seed=0, random_bn=True), batch=batch)
    q = _round_trip(p, tmp_path)
    assert _key(q) == _key(p)
    assert set(q.weights) == {k for s in p.steps for part in s.parts for k in part.params.values()}
    assert all(np.array_equal(q.weights[k], p.weights[k]) for k in q.weights)
    assert q.graph is None and q.batch == batch


def test_plan_saved_at_one_batch_is_made_for_another(tmp_path):
    """The algorithms and pass size are derived for the batch asked for, not copied."""
    g = zoo.build("mobilenet_v2")
    ws = init(g, seed=0)
    q = _round_trip(compile(g, ws, batch=1), tmp_path, batch=8)
    assert _key(q) == _key(compile(g, ws, batch=8))
    unnested = _round_trip(compile(g, ws, fuse=False), tmp_path)
    assert not any(s.pre or s.gate for s in unnested.steps)


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_every_op_runs_the_same_from_a_plan_file(case, tmp_path):
    """Every op of the registry (the op cases): the loaded plan's outputs are bit-identical."""
    p, x = case_data(build_case(case))
    q = _round_trip(p, tmp_path)
    assert _key(q) == _key(p)
    for a, b in zip(Executor(p, numpy_backend()).run(x), Executor(q, numpy_backend()).run(x)):
        assert np.array_equal(a, b)


def test_numba_runs_a_loaded_plan(tmp_path):
    from cnngraph.backends.numba_backend import executor

    g = zoo.build("mobilenet_v2", input=(3, 64, 64))
    p = compile(g, init(g, seed=0, random_bn=True), batch=2)
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    (a,) = executor(p).run(x)
    (b,) = executor(_round_trip(p, tmp_path)).run(x)
    assert np.array_equal(a, b)


def test_loading_and_running_imports_neither_networkx_nor_sympy(tmp_path):
    g = zoo.build("resnet18", input=(3, 32, 32))
    path = tmp_path / "r.cgplan"
    plan_file.save(compile(g, init(g, seed=0)), path)
    code = ("import sys, numpy as np\n"
            "from cnngraph.compiler import plan_file\n"
            "from cnngraph.backends.common import Executor, numpy_backend\n"
            f"p = plan_file.load({str(path)!r})\n"
            "y, = Executor(p, numpy_backend()).run(np.ones((1, 3, 32, 32), np.float32))\n"
            "print(y.shape, [m for m in ('networkx', 'sympy') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(1, 1000) []"


def test_save_refuses_what_it_cannot_write(tmp_path):
    g = zoo.build("lenet5")
    with pytest.raises(CnnGraphError, match="has no weights"):
        plan_file.save(compile(g), tmp_path / "a.cgplan")
    with pytest.raises(CnnGraphError, match="symbolic"):
        plan_file.save(compile(zoo.build("resnet18", input=(3, H, W))), tmp_path / "b.cgplan")
    with pytest.raises(CnnGraphError, match=r"\.cgplan"):
        plan_file.save(compile(g, init(g, seed=0)), tmp_path / "c.npz")
    assert not list(tmp_path.iterdir())  # nothing half-written


# ---------------------------------------------------------------- hostile files
@pytest.fixture()
def saved(tmp_path):
    """A saved LeNet-5 plan and a function writing a copy with its JSON or members changed."""
    g = zoo.build("lenet5")
    path = tmp_path / "lenet5.cgplan"
    plan_file.save(compile(g, init(g, seed=0)), path)

    def edit(change_doc=None, drop=(), add=None, raw_json=None):
        out = tmp_path / "edited.cgplan"
        with zipfile.ZipFile(path) as z, zipfile.ZipFile(out, "w") as w:
            for info in z.infolist():
                if info.filename in drop:
                    continue
                data = z.read(info)
                if info.filename == "plan.json":
                    if raw_json is not None:
                        data = raw_json
                    elif change_doc is not None:
                        doc = json.loads(data)
                        change_doc(doc)
                        data = json.dumps(doc).encode()
                w.writestr(info.filename, data)
            for name, data in (add or {}).items():
                w.writestr(name, data)
        return out
    return path, edit


def _npy(a) -> bytes:
    import io

    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()


def _set(path_in_doc, value):
    def change(doc):
        *head, last = path_in_doc
        d = doc
        for k in head:
            d = d[k]
        d[last] = value
    return change


def _huge_lenet(doc):
    """LeNet-5's first layers on a 2²⁴ × 2¹² input: every shape consistent, the arena 2⁴⁰ bytes
    and more; the later layers dropped (their shapes would no longer follow)."""
    h, w = 1 << 24, 1 << 12
    doc["inputs"][0]["shape"] = [1, h, w]
    s0 = doc["steps"][0]
    s0["in_shapes"] = [[1, h, w]]
    s0["out_shape"] = [s0["out_shape"][0], h, w]  # 5×5, padding 2
    doc["steps"] = [s0]
    doc["outputs"] = [s0["output"]]


HOSTILE = {
    "not json": (dict(raw_json=b"{'steps': __import__('os')}"), "not valid JSON"),
    "other format": (dict(change_doc=_set(["format"], "x")), "format 'x'"),
    "unknown op": (dict(change_doc=_set(["steps", 0, "op"], "__import__")), "unknown op '__import__'"),
    "output shape lie": (dict(change_doc=_set(["steps", 0, "out_shape"], [6, 28, 29])),
                         r"out_shape 6×28×29, but conv2d gives 20×28×28"),
    "input shape lie": (dict(change_doc=_set(["steps", 0, "in_shapes", 0], [1, 28, 30])), "the step says 1×28×30"),
    "reads nothing": (dict(change_doc=_set(["steps", 1, "inputs"], ["ghost"])), "reads 'ghost', which no earlier"),
    "negative kernel": (dict(change_doc=_set(["steps", 0, "attrs", "kernel"], [-3, 5])), "kernel"),
    "huge shape": (dict(change_doc=_set(["inputs", 0, "shape"], [1, 1 << 41, 28])), "positive integers"),
    "huge arena": (dict(change_doc=_huge_lenet, drop=tuple(f"{n}.{f}.npy" for n in ("conv2", "fc1", "fc2")
                                                          for f in ("weight", "bias"))),
                   "planned arena at batch 1 is"),
    "string size": (dict(change_doc=_set(["steps", 0, "attrs", "out_channels"], "__import__('os')")),
                    "out_channels"),
    "attribute missing": (dict(change_doc=lambda doc: doc["steps"][0]["attrs"].pop("kernel")), "rule fails"),
    "bad activation": (dict(change_doc=_set(["steps", 0, "act1"], "exec")), "unknown activation 'exec'"),
    "params lie": (dict(change_doc=_set(["steps", 0, "params"], {"weight": "conv1.weight"})), "params"),
    "bad batch": (dict(change_doc=_set(["batch"], 0)), "batch: must be a positive integer"),
    "missing weight": (dict(drop=("conv1.weight.npy",)), "missing 1: conv1.weight"),
    "extra weight": (dict(add={"evil.npy": _npy(np.ones(3, np.float32))}), "not read by any step 1: evil"),
    "weight shape": (dict(drop=("conv1.bias.npy",), add={"conv1.bias.npy": _npy(np.ones(7, np.float32))}),
                     "is 7, conv1 reads 20"),
    "object weight": (dict(drop=("conv1.bias.npy",), add={"conv1.bias.npy": _npy(np.array([None] * 20))}),
                      "conv1.bias"),
    "no plan.json": (dict(drop=("plan.json",)), "no plan.json"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_plan_file_is_one_line_error(case, saved):
    _, edit = saved
    kw, match = HOSTILE[case]
    with pytest.raises(InputError, match=match) as e:
        plan_file.load(edit(**kw))
    assert "\n" not in str(e.value) and "edited.cgplan" in str(e.value)


def test_not_a_zip_and_missing_file(tmp_path):
    bad = tmp_path / "x.cgplan"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="not a saved plan"):
        plan_file.load(bad)
    with pytest.raises(InputError, match="no such plan file"):
        plan_file.load(tmp_path / "none.cgplan")


def test_cli_saves_and_runs_a_plan(tmp_path, capsys):
    """``plan --save`` then ``run FILE.cgplan``: the output of running the model itself."""
    from cnngraph.cli import main

    path, a, b = tmp_path / "m.cgplan", tmp_path / "a.npy", tmp_path / "b.npy"
    assert main(["plan", "mobilenet_v2", "--input", "3,64,64", "--batch", "4", "--seed", "3", "--save", str(path)]) == 0
    assert f"wrote {path}: 39 steps, 106 weight tensors" in capsys.readouterr().out
    assert main(["run", "mobilenet_v2", "--input", "3,64,64", "--batch", "2", "--seed", "3", "--output", str(a)]) == 0
    assert main(["run", str(path), "--batch", "2", "--seed", "3", "--output", str(b)]) == 0
    assert np.array_equal(np.load(a), np.load(b))
    assert main(["run", str(path), "--weights", str(a)]) == 2
    assert "is a saved plan; it holds its weights" in capsys.readouterr().err
    assert main(["plan", "lenet5", "--save", str(tmp_path / "x.npz")]) == 2


def test_onnx_imported_model_runs_the_same_from_a_plan_file(tmp_path):
    """A model brought as an ONNX file (every op of the registry, through export and import)."""
    pytest.importorskip("onnx")
    from cnngraph import onnx as cg_onnx

    from onnx_cases import all_ops_net, quick_weights, random_input

    g = all_ops_net()
    cg_onnx.export(g, quick_weights(g), path=tmp_path / "m.onnx")
    h = cg_onnx.load(str(tmp_path / "m.onnx"))
    p = compile(h, h.graph["weights"])
    q = _round_trip(p, tmp_path)
    assert _key(q) == _key(p)
    x = random_input(h)
    for a, b in zip(Executor(p, numpy_backend()).run(*x.values()), Executor(q, numpy_backend()).run(*x.values())):
        assert np.array_equal(a, b)


def test_cli_plan_shows_a_saved_plan(tmp_path, capsys):
    """``plan FILE.cgplan --steps --batch 8``: the loaded plan's steps, chosen for that batch."""
    from cnngraph.cli import main

    path = tmp_path / "m.cgplan"
    assert main(["plan", "resnet18", "--save", str(path)]) == 0
    capsys.readouterr()
    assert main(["plan", str(path), "--steps", "--batch", "8"]) == 0
    shown = capsys.readouterr().out
    assert main(["plan", "resnet18", "--steps", "--batch", "8"]) == 0
    direct = capsys.readouterr().out.splitlines()
    assert len(shown.splitlines()) > 40 and all(ln in direct for ln in shown.splitlines())  # same steps, same whys
    assert "at batch 8" in shown
    assert main(["plan", "resnet18", "--weights", str(path)]) == 2
    assert "only with --save" in capsys.readouterr().err


def test_fuzzed_plan_files_fail_with_one_line(tmp_path):
    """200 plan files with one or two fields of plan.json replaced by values of other kinds
    (None, negative, huge, strings, lists, objects, NaN, op and activation names): each
    loads or is refused with a one-line CnnGraphError, never another exception."""
    import random

    g = zoo.build("mobilenet_v2", input=(3, 32, 32))
    path = tmp_path / "m.cgplan"
    plan_file.save(compile(g, init(g, seed=0)), path)
    with zipfile.ZipFile(path) as z:
        doc0 = json.loads(z.read("plan.json"))
        members = {i.filename: z.read(i) for i in z.infolist() if i.filename != "plan.json"}

    def leaves(o, pre=()):
        if isinstance(o, dict):
            for k, v in o.items():
                yield from leaves(v, pre + (k,))
        elif isinstance(o, list):
            for i, v in enumerate(o):
                yield from leaves(v, pre + (i,))
        if pre:
            yield pre

    paths = list(leaves(doc0))
    values = [None, -1, 0, 1, 3, 2**63, 1e308, float("nan"), "x", "", "2*C", [], {}, [1], [1, 2, 3, 4, 5],
              {"rational": [1, 0]}, True, "relu", "conv2d", "input"]
    rng = random.Random(0)
    out = tmp_path / "f.cgplan"
    refused = 0
    for _ in range(200):
        doc = json.loads(json.dumps(doc0))
        for _ in range(rng.randint(1, 2)):
            *head, last = rng.choice(paths)
            o = doc
            try:
                for k in head:
                    o = o[k]
                o[last] = rng.choice(values)
            except (KeyError, IndexError, TypeError):
                pass  # the first change removed this path
        with zipfile.ZipFile(out, "w") as w:
            w.writestr("plan.json", json.dumps(doc))
            for name, data in members.items():
                w.writestr(name, data)
        try:
            plan_file.load(out)
        except CnnGraphError as e:
            assert "\n" not in str(e)
            refused += 1
    assert refused > 150  # most changes break a rule (a changed name or `why` may not)
