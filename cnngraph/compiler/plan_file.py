"""Saved plans: a compiled model in one file, run later without the graph (``.cgplan``).

A saved plan is what :func:`~cnngraph.compiler.compile` lowered: the steps (each layer's
op, attributes, shapes, epilogue and weight keys, in execution order, batch norms already
folded) and the folded weights. It is a zip archive: ``plan.json`` (the steps) and one
``.npy`` member per weight tensor. :func:`load` rebuilds the :class:`~.plan.Plan` and runs
the plan-level passes again (:func:`~cnngraph.compiler.pipeline.finish`: the algorithms, the
nesting, the CPU pass size and the memory plan are derived for the batch asked for, not
read from the file), so a plan saved at one batch runs at another with that batch's
choices. Loading imports neither networkx nor sympy: a process that runs a saved plan on
the Numba backend holds NumPy, Numba and the kernels (ResNet-50 at batch 1: 20 MB less
resident memory than compiling the zoo's graph in that process).

A plan file may come from anyone, so :func:`load` trusts nothing in it: the JSON is parsed
(never evaluated) and checked field by field; every step's output shape is recomputed by
its op's registry rule from its attributes and input shapes, and every weight's shape from
its registry spec, before any weight data is read; the weights' total and the planned
arena at the batch asked for are checked against the memory available; a bad field is one
line naming the step and the rule.

>>> import os, tempfile
>>> import numpy as np
>>> from cnngraph import zoo
>>> from cnngraph.compiler import compile
>>> from cnngraph.compiler.weights import init
>>> g = zoo.build("lenet5")
>>> path = os.path.join(tempfile.mkdtemp(), "lenet5.cgplan")
>>> _ = save(compile(g, init(g, seed=0), batch=4), path)
>>> p = load(path)
>>> p.batch, len(p.steps), p.steps[0].params
(4, 7, {'weight': 'conv1.weight', 'bias': 'conv1.bias'})
>>> load(path, batch=1).batch
1
"""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from cnngraph.compiler.plan import Plan, Step, Value, _set_lifetimes
from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError, InputError

FORMAT = "cnngraph-plan"
VERSION = 1
SUFFIX = ".cgplan"
MAX_JSON = 64 << 20  # bytes of plan.json: a model of 10⁵ layers fits
STEP_FIELDS = ("op", "node", "inputs", "output", "attrs", "in_shapes", "out_shape", "params", "act1", "residual",
               "act2", "nodes")


# ---------------------------------------------------------------- saving
def _flat_steps(plan: Plan) -> list:
    """The plan's kernel calls in order with nothing nested: each nested step (a gate's, an
    expansion) before the step that held it, which keeps only its own graph nodes."""
    out = []
    for s in plan.steps:
        inner = [*s.pre, *s.gate]
        taken = {n for p in inner for n in p.nodes}
        out += [(p, p.nodes) for p in inner]
        out.append((s, [n for n in s.nodes if n not in taken]))
    return out


def _encode(v, where: str):
    """An attribute value as JSON: tuples as lists, an exact rational (a resize's 3/2) as
    ``{"rational": [3, 2]}``; anything symbolic refused."""
    if isinstance(v, (tuple, list)):
        return [_encode(x, where) for x in v]
    if v is None or type(v) in (int, float, str, bool):
        return v
    if getattr(v, "is_Integer", False):
        return int(v)
    if getattr(v, "is_Rational", False):
        return {"rational": [int(v.p), int(v.q)]}
    raise CnnGraphError(f"{where}={v} is symbolic; save a plan compiled for numeric sizes")


def _step_json(s: Step, nodes: list) -> dict:
    return {"op": s.op, "node": s.node, "inputs": list(s.inputs), "output": s.output,
            "attrs": {k: _encode(v, f"{s.node}: attribute {k}") for k, v in s.attrs.items()},
            "in_shapes": [[int(d) for d in sh] for sh in s.in_shapes], "out_shape": [int(d) for d in s.out_shape],
            "params": dict(s.params), "act1": s.act1, "residual": s.residual, "act2": s.act2, "nodes": list(nodes)}


def save(plan: Plan, path) -> Path:
    """Write ``plan`` (compiled with weights, numeric sizes) to ``path`` (``.cgplan``),
    atomically. Returns the path."""
    from cnngraph.compiler.plan import check_numeric
    from cnngraph.io.files import atomic_open, check_output

    p = check_output(path, (SUFFIX,), "plan file")
    check_numeric(plan)
    if plan.weights is None:
        raise CnnGraphError(f"{plan.name or 'the plan'}: has no weights (compile it with weights, or run it before "
                            "its executor released them)")
    flat = _flat_steps(plan)
    doc = {"format": FORMAT, "version": VERSION, "name": plan.name, "batch": int(plan.batch),
           "nest": any(s.pre or s.gate for s in plan.steps), "layout": plan.layout, "dtype": plan.dtype,
           "inputs": [{"name": n, "shape": [int(d) for d in plan.values[n].shape]} for n in plan.inputs],
           "outputs": list(plan.outputs), "steps": [_step_json(s, nodes) for s, nodes in flat]}
    keys = sorted({k for s, _ in flat for k in s.params.values()})
    missing = [k for k in keys if k not in plan.weights]
    if missing:
        raise CnnGraphError(f"{plan.name or 'the plan'}: weights missing: {', '.join(missing[:5])}")
    with atomic_open(p) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr("plan.json", json.dumps(doc, indent=1))
        for k in keys:
            with z.open(f"{k}.npy", "w", force_zip64=True) as m:
                np.lib.format.write_array(m, np.ascontiguousarray(plan.weights[k], dtype=np.float32),
                                          allow_pickle=False)
    return p


# ---------------------------------------------------------------- loading
class _Checker:
    """One-line errors naming the file and where in it."""

    def __init__(self, path):
        self.path = path

    def fail(self, where: str, rule: str):
        raise InputError(f"{self.path}: {where}: {rule}")

    def typed(self, where: str, v, kind, what: str):
        if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
            self.fail(where, f"must be {what}, got {type(v).__name__} {str(v)[:40]!r}")
        return v

    def name(self, where: str, v):
        self.typed(where, v, str, "a string")
        if not v:
            self.fail(where, "must not be empty")
        return v

    def names(self, where: str, v):
        return [self.name(f"{where}[{i}]", x) for i, x in enumerate(self.typed(where, v, list, "a list"))]

    def shape(self, where: str, v) -> tuple:
        self.typed(where, v, list, "a list of positive integers")
        if not v or len(v) > 4 or not all(type(d) is int and 0 < d < 1 << 40 for d in v):
            self.fail(where, f"must be 1 to 4 positive integers, got {v}")
        return tuple(v)

    def act(self, where: str, v):
        if v is not None and (not isinstance(v, str) or v not in ops.ACTIVATIONS):
            self.fail(where, f"unknown activation {str(v)[:40]!r}")
        return v


def _decode(v, c: "_Checker", where: str):
    """An attribute value from JSON (:func:`_encode`'s inverse): lists back to tuples,
    ``{"rational": [p, q]}`` to an exact rational; only numbers, strings, booleans and None."""
    if isinstance(v, list):
        return tuple(_decode(x, c, where) for x in v)
    if isinstance(v, dict):
        pq = v.get("rational")
        if set(v) != {"rational"} or not isinstance(pq, list) or len(pq) != 2 or \
                not all(type(x) is int and abs(x) < 1 << 62 for x in pq) or pq[1] <= 0:
            c.fail(where, "an attribute's object must be {\"rational\": [p, q]} with integers p and q > 0")
        from cnngraph.ir.lazy import sympy

        return sympy.Rational(pq[0], pq[1])
    if v is None or type(v) in (int, float, str, bool):
        return v
    c.fail(where, f"unreadable value {str(v)[:40]!r}")


def _read_json(path: Path, c: _Checker) -> dict:
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("plan.json")
            if info.file_size > MAX_JSON:
                c.fail("plan.json", f"declares {info.file_size:,} bytes; at most {MAX_JSON:,} are read")
            with z.open(info) as f:
                text = f.read(MAX_JSON + 1)
    except KeyError:
        raise InputError(f"{path}: not a saved plan (no plan.json in the archive)") from None
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError) as e:
        raise InputError(f"{path}: not a saved plan (a zip archive): {' '.join(str(e).split())}") from None
    if len(text) > MAX_JSON:
        c.fail("plan.json", f"holds more than {MAX_JSON:,} bytes")
    try:
        doc = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: plan.json is not valid JSON: {' '.join(str(e).split())[:200]}") from None
    c.typed("plan.json", doc, dict, "an object")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        c.fail("plan.json", f"format {doc.get('format')!r} version {doc.get('version')!r}; this cnngraph reads "
                            f"{FORMAT!r} version {VERSION}")
    return doc


def _step(c: _Checker, i: int, d, shapes: dict) -> Step:
    """One step, checked: known op, attributes by the registry's rules, input shapes those of
    the values it reads, its output shape the registry's for them."""
    where = f"step {i}"
    c.typed(where, d, dict, "an object")
    missing = [k for k in STEP_FIELDS if k not in d]
    if missing:
        c.fail(where, f"missing {', '.join(missing)}")
    node = c.name(f"{where} node", d["node"])
    where = f"step {i} ({node[:60]})"
    op = c.name(f"{where} op", d["op"])
    if op not in ops.REGISTRY or ops.is_input(op):
        c.fail(where, f"unknown op {op[:40]!r}")
    spec = ops.get(op)
    inputs = c.names(f"{where} inputs", d["inputs"])
    output = c.name(f"{where} output", d["output"])
    attrs = {k: _decode(v, c, f"{where} attrs {k[:40]}")
             for k, v in c.typed(f"{where} attrs", d["attrs"], dict, "an object").items()}
    try:
        attrs = ops.check_attrs(node, ops.with_defaults(op, attrs))
    except CnnGraphError as e:
        c.fail(where, str(e))
    for k in (ops.SIZE_ATTRS | ops.OFFSET_ATTRS) & set(attrs):  # numbers only: a plan is numeric
        items = attrs[k] if isinstance(attrs[k], tuple) else (attrs[k],)
        if not all(ops.is_int(x) for x in items):
            c.fail(f"{where} attrs {k}", f"must be integers, got {str(attrs[k])[:40]}")
        attrs[k] = tuple(int(x) for x in items) if isinstance(attrs[k], tuple) else int(attrs[k])
    in_shapes = [c.shape(f"{where} in_shapes[{j}]", s) for j, s in enumerate(
        c.typed(f"{where} in_shapes", d["in_shapes"], list, "a list"))]
    out_shape = c.shape(f"{where} out_shape", d["out_shape"])
    residual = d["residual"]
    if residual is not None:
        c.name(f"{where} residual", residual)
    lo, hi = spec.arity
    reads = inputs + ([residual] if residual is not None and spec.elementwise and len(in_shapes) > len(inputs) else [])
    if len(reads) != len(in_shapes) or len(in_shapes) < lo or (hi is not None and len(in_shapes) > hi):
        c.fail(where, f"{len(inputs)} inputs and {len(in_shapes)} input shapes; {op} takes "
                      f"{lo}{'' if hi == lo else ' or more' if hi is None else f' to {hi}'}")
    for j, (v, s) in enumerate(zip(reads, in_shapes)):
        if v not in shapes:
            c.fail(where, f"reads {v[:60]!r}, which no earlier step writes")
        if shapes[v] != s:
            c.fail(where, f"input {j} {v[:60]!r} is {'×'.join(map(str, shapes[v]))}, the step says "
                          f"{'×'.join(map(str, s))}")
    if residual is not None and (residual not in shapes or shapes[residual] != out_shape):
        c.fail(where, f"residual {residual[:60]!r} must be an earlier value of the output's shape "
                      f"{'×'.join(map(str, out_shape))}")
    try:
        want = tuple(int(x) for x in spec.shape(attrs, [tuple(s) for s in in_shapes], ops.Ctx(node)))
    except (CnnGraphError, TypeError, ValueError, ZeroDivisionError, KeyError, IndexError, AttributeError) as e:
        c.fail(where, f"its shape rule fails: {type(e).__name__} {e}")
    if want != out_shape:
        c.fail(where, f"out_shape {'×'.join(map(str, out_shape))}, but {op} gives {'×'.join(map(str, want))}")
    if output in shapes:
        c.fail(where, f"writes {output[:60]!r}, which an earlier step or input already holds")
    params = c.typed(f"{where} params", d["params"], dict, "an object")
    try:
        roles = {w.name for w in spec.weight_specs(attrs, in_shapes)}
    except (CnnGraphError, TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        c.fail(where, f"its weights' rule fails: {type(e).__name__} {e}")
    if set(params) != roles or not all(isinstance(k, str) and k for k in params.values()):
        c.fail(where, f"params {sorted(params)} but {op} with these attributes has {sorted(roles)}")
    nodes = c.names(f"{where} nodes", d["nodes"])
    shapes[output] = out_shape
    return Step(op, node, inputs, output, attrs, [tuple(s) for s in in_shapes], out_shape, dict(params),
                c.act(f"{where} act1", d["act1"]), residual, c.act(f"{where} act2", d["act2"]), nodes=nodes)


def _weight_heads(path, steps: list, c: _Checker) -> dict:
    """The file's weight headers, each checked against its step's registry spec; none read."""
    from cnngraph.io import arrays

    heads = arrays.zip_headers(path, "plan file")
    arrays.check_dtypes(heads, str(path))
    want = {}
    for s in steps:
        for w in ops.get(s.op).weight_specs(s.attrs, s.in_shapes):
            key = s.params[w.name]
            shape = tuple(int(d) for d in w.shape)
            if want.setdefault(key, (shape, s.node))[0] != shape:
                c.fail(f"weight {key[:60]!r}", f"read as {'×'.join(map(str, shape))} by {s.node} and "
                                               f"{'×'.join(map(str, want[key][0]))} by {want[key][1]}")
    missing, extra = sorted(set(want) - set(heads)), sorted(set(heads) - set(want))
    if missing or extra:
        c.fail("weights", (f"missing {len(missing)}: {', '.join(missing[:5])}" if missing else "")
               + ("; " if missing and extra else "") + (f"not read by any step {len(extra)}: {', '.join(extra[:5])}"
                                                        if extra else ""))
    for k, (shape, node) in want.items():
        if heads[k].shape != shape:
            c.fail(f"weight {k[:60]!r}", f"is {'×'.join(map(str, heads[k].shape))}, {node} reads "
                                         f"{'×'.join(map(str, shape))}")
    need, free = sum(h.size for h in heads.values()) * 4, arrays.memory_available()
    if free is not None and need > free:
        c.fail("weights", f"need {need / 2**20:,.0f} MiB as float32; {free / 2**20:,.0f} MiB of memory are available")
    return heads


def load(path, batch: int | None = None, allow_nonfinite: bool = False) -> Plan:
    """The plan saved at ``path``, made for ``batch`` (default: the batch it was saved for).

    Raises :class:`~cnngraph.ir.errors.InputError` (one line) for anything malformed; see the
    module's docstring for what is checked before the weights are read.
    """
    from cnngraph.compiler.pipeline import finish
    from cnngraph.io import arrays

    p = Path(path)
    c = _Checker(p)
    if not p.is_file():
        raise InputError(f"no such plan file: {p}" if not p.exists() else f"plan file {p}: not a file")
    doc = _read_json(p, c)
    name = doc.get("name", "")
    c.typed("name", name, str, "a string")
    saved_batch = doc.get("batch", 1)
    if type(saved_batch) is not int or saved_batch < 1:
        c.fail("batch", f"must be a positive integer, got {saved_batch!r}")
    batch = saved_batch if batch is None else batch
    if type(batch) is not int or batch < 1:
        raise CnnGraphError(f"batch {batch!r}: must be a positive integer")
    shapes, values = {}, {}
    inputs = c.typed("inputs", doc.get("inputs"), list, "a list")
    if not inputs:
        c.fail("inputs", "the plan has no input")
    for j, d in enumerate(inputs):
        c.typed(f"inputs[{j}]", d, dict, "an object")
        n = c.name(f"inputs[{j}] name", d.get("name"))
        if n in shapes:
            c.fail(f"inputs[{j}]", f"{n!r} is given twice")
        shapes[n] = c.shape(f"inputs[{j}] shape", d.get("shape"))
        values[n] = Value(n, shapes[n], math.prod(shapes[n]))
    steps = [_step(c, i, d, shapes) for i, d in enumerate(c.typed("steps", doc.get("steps"), list, "a list"))]
    for s in steps:
        values[s.output] = Value(s.output, s.out_shape, math.prod(s.out_shape))
    outputs = c.names("outputs", doc.get("outputs"))
    if not outputs or any(o not in values for o in outputs):
        c.fail("outputs", f"must name values the steps write, got {outputs[:5]}")
    heads = _weight_heads(p, steps, c)
    _set_lifetimes(values, steps, outputs)
    plan = Plan(name, [d["name"] for d in inputs], outputs, values, steps, None)
    nest = doc.get("nest", True)
    finish(plan, batch, nest is True)
    arena, free = int(plan.memory.at(batch).planned_bytes), arrays.memory_available()
    if free is not None and arena > free:  # before the weights are read; a run allocates it
        c.fail("activations", f"the planned arena at batch {batch} is {arena / 2**20:,.0f} MiB; {free / 2**20:,.0f} MiB "
                              "of memory are available")
    plan.weights = arrays.read(p, heads, allow_nonfinite)
    return plan


def is_plan_file(path) -> bool:
    """Whether ``path`` names a saved plan (by its suffix)."""
    return str(path).lower().endswith(SUFFIX)
