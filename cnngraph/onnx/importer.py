"""Import an ONNX model as a graph, with its weights under state_dict-style names.

:func:`load` reads a file (or bytes, or a ``ModelProto``) and returns a :class:`CnnGraph`
whose ``graph.graph["weights"]`` holds the weights (``{node}.weight``, ``{node}.bias``,
``{node}.running_mean``...), so ``to_torch(g, g.graph["weights"])`` runs it.

How ONNX maps to the IR:

* layers map one to one (Conv, pools, Gemm, BatchNormalization, Concat, Softmax, LRN...);
  a MatMul or a bias-less Conv followed by the Add of a constant becomes one layer with a bias;
* element-wise chains are recognised by what they compute, not by their spelling: the chain
  ``x·sigmoid(x)`` is SiLU, ``0.5·x·(1 + erf(x/√2))`` GELU, ``x·clip(x + 3, 0, 6)/6``
  hard swish, a Clip to [0, 6] ReLU6, a multiplication by a number a ``scale``;
* shape arithmetic (Shape, Gather, Unsqueeze, Concat, Cast, Div... on constants and on the
  symbolic sizes of tensors) is folded, so PyTorch's ``x.view(x.size(0), -1)`` is a flatten
  and its ``view/transpose/view`` a channel shuffle; group norm's Reshape /
  InstanceNormalization / Reshape / Mul / Add is one group norm;
* dim_params (``N``, ``H``, ``W``) become positive-integer symbols: an imported model has
  formulas, ``cnngraph.analyze(g)`` gives symbolic totals.

Node names: a layer with weights takes its name from them (initializer ``layer1.0.conv1.weight``
-> node ``layer1.0.conv1``); PyTorch's scoped names (``/layer1/layer1.0/relu/Relu``) become
module paths (``layer1.0.relu``); other ONNX node names are kept.

Bad files fail with :class:`CnnGraphError`: unsupported ops are listed with their nodes;
truncated or malformed data, declared sizes that disagree with the data, huge sizes and
external-data references are refused before any large allocation.

>>> from cnngraph import zoo, analyze
>>> from cnngraph.compiler import weights
>>> from cnngraph.onnx import export
>>> g = zoo.build("resnet18", input=(3, 64, 64))
>>> h = load(export(g, weights.init(g, seed=0)))
>>> analyze(h).total.macs == analyze(g).total.macs, h.nodes["layer1.0.conv1"]["op"]
(True, 'conv2d')
"""
from __future__ import annotations

import numpy as np

from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError, GraphError, ShapeError
from cnngraph.ir.graph import CnnGraph, add_node
from cnngraph.ir.symbols import sym
from cnngraph.onnx.common import (ACTIVATIONS, FLOAT_TYPES, INPLACE_DEFAULT, MAX_DIM, PENDING_TEXT, Act, Const, Pending,
                                  Pointwise, identify, known_activation, node_attrs, onnx_scope, read_model, same_size,
                                  short_float, torch_name_scopes,
                                  tensor_array)
from cnngraph.onnx.handlers import CHANNELS_LAST_OPS, HANDLERS, LAYOUTS, channels_last, fold_constants

# The newest default-domain opset read: what ONNX Runtime 1.2x runs. A newer file may use
# operator versions whose meaning the handlers do not know, so it is refused, as ORT does.
MAX_OPSET = 23


class _Importer:
    def __init__(self, model, label):
        self.m, self.label = model, label
        self.opset = 1
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                self.opset = o.version
        if self.opset > MAX_OPSET:
            raise CnnGraphError(f"{label}: opset {self.opset} is newer than cnngraph reads (opsets up to {MAX_OPSET})")
        self.g = CnnGraph(name=model.graph.name or label, inputs=[], outputs=[], notes=[])
        self.values: dict = {}
        self.weights: dict = {}  # node -> {field: array}
        self.prefix: dict = {}  # node -> state_dict prefix found in initializer names
        self.onnx_name: dict = {}  # node -> ONNX node name it came from (last one fused)
        self.batch = None
        self.docs = {n.name: n.doc_string for n in model.graph.node if n.doc_string}
        # torch's dynamo exporter names nodes node_relu_3 and keeps the module path in metadata
        self.scopes = {n.name: s for n in model.graph.node if (s := torch_name_scopes(n))}

    # -------------------------------------------------------- value access
    def val(self, name, where):
        if name not in self.values:
            raise CnnGraphError(f"{where}: input {name!r} is produced by no node, initializer or graph input "
                                "(truncated or malformed model)")
        return self.values[name]

    def const(self, name, where, what):
        v = self.val(name, where)
        if not isinstance(v, Const):
            raise CnnGraphError(f"{where}: {what} ({name!r}) must be a constant (an initializer or folded "
                                "shape arithmetic), not a computed tensor")
        return v

    def act(self, v, where) -> Act:
        """A value as a graph tensor: element-wise chains and patterns become nodes here."""
        if isinstance(v, Act):
            return v
        if isinstance(v, Pointwise):
            return self._materialize(v)
        if isinstance(v, Pending):
            if v.act is not None:
                return v.act
            if v.kind == "square":  # x·x that did not turn out to be part of an LRN
                v.act = self.new("mul", {}, [v.src, v.src], v.where)
                return v.act
            if v.kind == "zero_pad":  # not taken by a Conv: a layer of its own
                v.act = self.new("pad2d", {"padding": v.info["padding"]}, [v.src], v.where)
                return v.act
            if v.kind == "spatial_slice" and isinstance(v.src, Act) and "pad2d" in ops.REGISTRY:
                v.act = self._crop(v)
                return v.act
            raise CnnGraphError(f"{v.where}: {PENDING_TEXT.get(v.kind, v.kind)} is used by {where}, which does "
                                "not complete the pattern; cnngraph cannot express it")
        raise CnnGraphError(f"{where}: expects a computed tensor, got a constant; constant-only branches are "
                            "not supported")

    # -------------------------------------------------------- nodes
    def new(self, op, attrs, inputs, where, prefix=None, weights=None):
        """Add a layer named after ``prefix`` (from initializer names) or the ONNX node."""
        base = prefix or where
        name, k = base, 1
        while name in self.g:
            name, k = f"{base}_{k}", k + 1
        try:
            shape = add_node(self.g, name, op, attrs, [a.node for a in inputs])
        except ShapeError as e:
            raise ShapeError(f"{where} ({op})", e.rule, e.numbers) from None
        if prefix:
            self.prefix[name] = prefix
        self.onnx_name[name] = where
        if weights:
            self.weights[name] = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        return Act(name, (self.batch,) + tuple(shape))

    def _materialize(self, pw: Pointwise) -> Act:
        """The layer(s) computing an element-wise chain, decided before any layer is made."""
        if pw.act is not None:
            return pw.act
        plan = self._plan(pw, {}) or self._plan(pw, {}, extended=True)
        if plan is None:
            raise CnnGraphError(f"{pw.where}: the element-wise function computed by {', '.join(pw.chain)} is not "
                                f"one of cnngraph's activations ({', '.join(ACTIVATIONS)}), a number·x + a number "
                                "or a clamp, nor a sum or product of such functions")
        return self._build(plan)

    def _plan(self, pw, memo, extended=False):
        """How to compute ``pw`` from layers, preferring one layer per ONNX activation:

        1. split at the inner node nearest to ``pw`` that every path goes through, when what
           follows it is an activation and it can be computed itself (relu(relu6(x)) is two
           layers, not one relu6);
        2. else the whole chain as one activation (x·sigmoid(x) is SiLU; GELU's five nodes);
        3. else an add / mul / difference of tensors (relu(x) + x, x − sigmoid(x)).

        ``extended`` (tried when the plain plan fails) also takes constant arithmetic
        (``0.5·x + 1``, one ``scale`` layer for a run of them) and clamps to any bounds.
        """
        if pw.act is not None:
            return ("done", pw.act)
        if id(pw) in memo:
            return memo[id(pw)]
        memo[id(pw)] = None
        plan = None
        whole = known_activation(identify(pw.fn, extended))
        deferred = []  # cuts whose tail is only arithmetic by numbers, tried after the activations
        for q in reversed(pw.inner()):
            reached = [False]
            found = known_activation(identify(lambda t: pw.fn(t, q, reached), extended))
            if found is None or reached[0]:
                continue
            if found[0] == "scale":
                # arithmetic around an activation is part of it: softplus(2x)/2 is softplus(β=2)
                if whole is None or whole[0] in ("scale", "identity"):
                    deferred.append((q, found))
                continue
            sub = self._plan(q, memo, extended)
            if sub is not None:
                plan = _compose_scales(("act", pw, found, sub))
                break
        for q, found in deferred if plan is None else ():
            sub = self._plan(q, memo, extended)
            if sub is not None:
                plan = _compose_scales(("act", pw, found, sub))
                break
        if plan is None and whole is not None:
            plan = ("act", pw, whole, ("done", pw.src))
        if plan is None:
            parts = [o for o in pw.operands if not isinstance(o, Const)]
            if pw.op_type in ("Add", "Sum", "Mul", "Sub") and len(parts) == len(pw.operands) >= 2:
                subs = [("done", o) if isinstance(o, Act) else self._plan(o, memo, extended) for o in parts]
                if all(subs):
                    plan = ("merge", pw, pw.op_type, subs)
        memo[id(pw)] = plan
        return plan

    def _build(self, plan):
        if plan[0] == "done":
            return plan[1]
        pw = plan[1]
        if pw.act is not None:
            return pw.act
        if plan[0] == "merge":
            pw.act = self._merge(plan[2], [self._build(s) for s in plan[3]], pw.where)
            return pw.act
        (op, attrs), src = plan[2], self._build(plan[3])
        if ops.get(op).passthrough:  # the identity at inference: no node
            pw.act = src
            return src
        if op in INPLACE_DEFAULT:
            attrs = {"inplace": self._inplace(pw.where, INPLACE_DEFAULT[op]), **attrs}
        pw.act = self.new(op, attrs, [src], pw.where)
        return pw.act

    def _merge(self, op_type, acts, where):
        if op_type == "Sub":  # x − y: x + (−1)·y
            neg = self.new("scale", {"factor": -1.0}, [acts[1]], f"{where}/neg")
            return self.new("add", {}, [acts[0], neg], where)
        if op_type == "Mul":
            a, b = acts

            def is_scale(t):
                return len(t.shape) == 2 or all(s == 1 for s in t.shape[2:])

            if is_scale(a) and not is_scale(b):  # mul(x, s): the feature map first
                a, b = b, a
            return self.new("mul", {}, [a, b], where)
        return self.new("add", {}, acts, where)

    def _inplace(self, where, default):
        """cnngraph's export says whether an activation is in place; else the DSL's default."""
        doc = self.docs.get(where, "")
        if "cnngraph: not in place" in doc:
            return False
        if "cnngraph: in place" in doc:
            return True
        return default

    def _crop(self, p: Pending) -> Act:
        x = p.src
        axis, s, e = p.info["axis"], p.info["start"], p.info["end"]
        L = x.shape[axis]
        pads = [0, 0, 0, 0]
        pads[axis - 2] = -s  # top or left
        pads[axis] = -(int(L) - e)  # bottom or right
        return self.new("pad2d", {"padding": tuple(ops.tidy(v) for v in pads)}, [x], p.where)

    # -------------------------------------------------------- driver
    def run(self):
        gp = self.m.graph
        if gp.sparse_initializer:
            raise CnnGraphError(f"{self.label}: sparse initializers are not supported")
        for t in gp.initializer:
            self.values[t.name] = Const(tensor_array(t, f"initializer {t.name!r}"), t.name)
        real_inputs = [i for i in gp.input if i.name not in self.values]
        if not real_inputs:
            raise CnnGraphError(f"{self.label}: the model has no input tensor")
        for i in real_inputs:
            self._input(i)
        if not gp.output:
            raise CnnGraphError(f"{self.label}: the model declares no output")
        nodes = self._needed(gp)
        self._check_supported(nodes)
        for node in nodes:
            self._node(node)
        outs = []
        for o in gp.output:
            a = self.act(self.val(o.name, f"output {o.name!r}"), f"output {o.name!r}")
            outs.append(a.node)
        self.g.graph["outputs"] = outs
        return self._finish()

    def _input(self, vi):
        import onnx

        where = f"input {vi.name!r}"
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if tt is None:
            raise CnnGraphError(f"{where}: only tensor inputs are supported")
        if tt.elem_type not in FLOAT_TYPES:
            raise CnnGraphError(f"{where}: element type {onnx.TensorProto.DataType.Name(tt.elem_type)} is not a "
                                "floating-point image or vector")
        if not tt.HasField("shape"):
            raise CnnGraphError(f"{where}: the input has no declared shape (rank unknown)")
        dims = []
        rank = len(tt.shape.dim)
        default = {4: ["N", "C", "H", "W"], 2: ["N", "F"]}.get(rank)
        if default is None:
            raise CnnGraphError(f"{where}: rank {rank} inputs are not supported (N×C×H×W images or N×F vectors)")
        for k, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                if not 0 < d.dim_value <= MAX_DIM:
                    raise CnnGraphError(f"{where}: dimension {k} is {d.dim_value}; sizes must be 1 to {MAX_DIM}")
                dims.append(int(d.dim_value))
            elif d.dim_param:
                dims.append(sym(_symbol_name(d.dim_param)))
            else:
                dims.append(sym(default[k]))
        batch = dims[0]
        if self.batch is None:
            self.batch = batch
            self.g.graph["batch"] = batch
        elif not same_size(batch, self.batch):
            raise CnnGraphError(f"{where}: batch {batch} differs from the first input's {self.batch}")
        add_node(self.g, vi.name, "input", {"shape": tuple(dims[1:])})
        self.onnx_name[vi.name] = vi.name
        self.values[vi.name] = Act(vi.name, tuple(dims))

    def _needed(self, gp):
        """The nodes the outputs depend on, in a dependency order (not trusting the file's)."""
        producer = {}
        given = {t.name for t in gp.initializer} | {i.name for i in gp.input}
        for idx, n in enumerate(gp.node):
            for o in n.output:
                if not o:
                    continue
                # ONNX graphs are in single static assignment form: ONNX Runtime refuses a second producer.
                if o in producer or o in given:
                    first = gp.node[producer[o]].name if o in producer else "a graph input or initializer"
                    raise CnnGraphError(f"{self.label}: tensor {o!r} is produced twice ({first or '?'} and "
                                        f"{n.name or n.op_type}); ONNX requires one producer per tensor")
                producer[o] = idx
        need, stack = set(), [o.name for o in gp.output]
        while stack:
            v = stack.pop()
            idx = producer.get(v)
            if idx is None or idx in need:
                continue
            need.add(idx)
            stack.extend(i for i in gp.node[idx].input if i)
        order = self._order([gp.node[i] for i in sorted(need)], producer, gp, need)
        self.consumers, self.readers = {}, {}
        for n in order:
            for i in n.input:
                self.consumers[i] = self.consumers.get(i, 0) + 1
                self.readers.setdefault(i, []).append(n)
        for o in gp.output:
            self.consumers[o.name] = self.consumers.get(o.name, 0) + 1
        return order

    def _order(self, nodes, producer, gp, need):
        """The file's order when it is a valid one (the usual case), else a depth-first order."""
        ready = set(self.values)
        for n in nodes:
            if any(i and i not in ready and i in producer for i in n.input):
                break
            ready.update(o for o in n.output if o)
        else:
            return nodes
        order, state = [], {}
        for start in sorted(need):
            if state.get(start):
                continue
            stack = [(start, False)]
            while stack:
                idx, done = stack.pop()
                if done:
                    state[idx] = 2
                    order.append(gp.node[idx])
                    continue
                if state.get(idx):
                    continue
                state[idx] = 1  # on the current path until its exit marker pops
                stack.append((idx, True))
                for i in gp.node[idx].input:
                    j = producer.get(i)
                    if j is not None and j in need:
                        if state.get(j) == 1:
                            raise GraphError(f"{gp.node[idx].name or gp.node[idx].op_type}: the ONNX graph has a cycle")
                        if not state.get(j):
                            stack.append((j, False))
        return order

    def _check_supported(self, nodes):
        bad = {}
        for n in nodes:
            key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
            if n.domain not in ("", "ai.onnx") or n.op_type not in HANDLERS:
                bad.setdefault(key, []).append(n.name or (n.output[0] if n.output else "?"))
        if bad:
            parts = [f"{k} ({', '.join(v[:4])}{' ...' if len(v) > 4 else ''})" for k, v in sorted(bad.items())]
            raise CnnGraphError(f"{self.label}: unsupported ONNX op types: " + "; ".join(parts))

    def _node(self, node):
        where = node.name or f"{node.op_type}({node.output[0] if node.output else ''})"
        attrs = node_attrs(node, where)
        ins = [self.values.get(i) if i else None for i in node.input]
        out = None
        if ins and all(v is None or isinstance(v, Const) for v in ins) and any(v is not None for v in ins):
            # a constant sub-graph over weights (standardised, scaled, reshaped): evaluated now
            out = fold_constants(node, attrs, where, [None if v is None else np.asarray(v.value) for v in ins])
        try:
            if out is None and node.op_type in CHANNELS_LAST_OPS and any(
                    isinstance(v, Pending) and v.kind in LAYOUTS for v in ins):
                out = channels_last(self, node, attrs, where)
            if out is None:
                out = HANDLERS[node.op_type](self, node, attrs, where)
        except CnnGraphError:
            raise
        except (IndexError, KeyError, ValueError, TypeError) as e:
            raise CnnGraphError(f"{where}: malformed {node.op_type} node ({type(e).__name__}: {e})") from None
        if not isinstance(out, (list, tuple)):
            out = [out]
        for name, v in zip(node.output, out):
            if name:
                self.values[name] = v

    def _finish(self):
        g = self.g
        names = self._final_names()
        ws, seen = {}, set()
        for old, fields in self.weights.items():
            for f, arr in fields.items():
                if not f.startswith("_"):  # "_bias_open": bookkeeping of a fusion
                    # a tensor shared by two layers (PyTorch deduplicates equal ones) gets its own copy
                    ws[f"{names[old]}.{f}"] = arr.copy() if id(arr) in seen else arr
                    seen.add(id(arr))
        h = CnnGraph(**{k: v for k, v in g.graph.items()})
        for n in g.nodes:
            d = dict(g.nodes[n])
            new = names[n]
            d["inputs"] = [names[i] for i in d["inputs"]]
            d["path"] = tuple((p, "module") for p in new.split(".")[:-1]) if "." in new else ()
            h.add_node(new, **d)
        for u, v, d in g.edges(data=True):
            h.add_edge(names[u], names[v], **d)
        h.graph["inputs"] = [names[i] for i in g.graph["inputs"]]
        h.graph["outputs"] = [names[o] for o in g.graph["outputs"]]
        h.graph["weights"] = ws
        h.graph["weights_input"] = h.nodes[h.graph["inputs"][0]]["shape"]  # the size they were made for
        h.graph["opset"] = self.opset
        h.graph["producer"] = f"{self.m.producer_name} {self.m.producer_version}".strip()
        return h

    def _final_names(self):
        """Initializer prefixes first, then PyTorch scopes as module paths, then ONNX names."""
        g = self.g
        final, scoped = {}, {}
        for n in g.nodes:
            if n in self.prefix:
                final[n] = self.prefix[n]
            elif self.onnx_name.get(n, n) in self.scopes:
                scoped[n] = onnx_scope(self.scopes[self.onnx_name[n]])
            elif self.onnx_name.get(n, n).startswith("/"):
                scoped[n] = onnx_scope(self.onnx_name[n])
            else:
                final[n] = n
        taken_scopes = {}
        for n, (s, _) in scoped.items():
            taken_scopes[s] = taken_scopes.get(s, 0) + 1
        named = set(final.values())
        parents = set()  # every proper dotted prefix of a name or scope: scopes that hold others
        for v in list(named) + list(taken_scopes):
            parts = v.split(".")
            parents.update(".".join(parts[:k]) for k in range(1, len(parts)))
        for n, (s, op) in scoped.items():
            if s and taken_scopes[s] == 1 and s not in parents and s not in named:
                final[n] = s
            else:
                final[n] = f"{s}.{op}" if s else op
        out, used = {}, set()
        for n in g.nodes:  # insertion order: the first keeps the name
            base = final[n]
            name, k = base, 1
            while name in used:
                name, k = f"{base}_{k}", k + 1
            used.add(name)
            out[n] = name
        return out


def _symbol_name(p: str) -> str:
    """dim_params that are not identifiers ('batch size', 'unk__12') still make usable symbols."""
    s = "".join(c if c.isalnum() or c == "_" else "_" for c in p.strip())
    if not s or s[0].isdigit():
        s = "d_" + s
    return s


def load(src):
    """The graph of an ONNX model (a path, bytes or a ``ModelProto``); weights in
    ``g.graph["weights"]``, the batch size (a number or a symbol) in ``g.graph["batch"]``."""
    model, label = read_model(src)
    return _Importer(model, label).run()


def _compose_scales(plan):
    """``("act", pw, scale b, ("act", q, scale a, sub))`` as one scale: b(a(x)) = (fb·fa)·x + fb·sa + sb."""
    (op, attrs), sub = plan[2], plan[3]
    if op != "scale" or sub[0] != "act" or sub[2][0] != "scale" or sub[1].act is not None:
        return plan
    fa, sa = sub[2][1]["factor"], sub[2][1].get("shift", 0.0)
    fb, sb = attrs["factor"], attrs.get("shift", 0.0)
    a = {"factor": short_float(fb * fa), "shift": short_float(fb * sa + sb)}
    if not a["shift"]:
        del a["shift"]
    return ("act", plan[1], ("scale", a), sub[3])
