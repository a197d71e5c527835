"""The execution plan: fused steps over named values, and a liveness-based memory plan.

A :class:`Plan` is what every backend runs (see ``docs/backends.md``):

* ``values``: one per tensor that exists at run time, with its per-sample shape in the
  graph's canonical order (``(C, H, W)`` or ``(F,)``) and its size in elements (an int, or
  a sympy expression for a symbolic graph);
* ``steps``: in execution order; each names its kernel (the registry op of its anchor:
  ``conv2d``, ``linear``, ``batchnorm``, ``add``, ``relu``, ``maxpool2d``...), its input and
  output values, the anchor's attributes, the weight keys it reads and an epilogue
  ``act2(act1(y) + residual)``;
* ``memory``: every value mapped to a slot; a slot's size is the largest value it holds.
  ``memory.planned_bytes`` (slots summed) beside ``memory.naive_bytes`` (every value its
  own buffer) and, for numeric graphs, ``memory.live_peak_bytes`` (the most bytes alive at
  once, a lower bound for any allocator).

Backends lay values out as ``(N, H, W, C)`` (vectors as ``(N, 1, 1, F)``): channels last.

>>> from cnngraph import zoo
>>> from cnngraph.compiler import compile
>>> from cnngraph.ir.symbols import H, W
>>> p = compile(zoo.build("resnet18", input=(3, H, W)))
>>> p.memory.planned_bytes.free_symbols == {H, W}
True
>>> q = compile(zoo.build("resnet18"))
>>> q.memory.planned_bytes < q.memory.naive_bytes
True
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from cnngraph.ir.lazy import sympy

from cnngraph.ir import ops
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.printer import fmt_bytes


@dataclass
class Value:
    """A tensor alive at run time: the output of graph node ``name``."""

    name: str
    shape: tuple  # per sample, canonical (C, H, W) or (F,)
    size: object  # elements per sample
    first: int = -1  # index of the producing step (-1: a graph input)
    last: int = -1  # index of the last step reading it (len(steps): a graph output)
    slot: int = -1


@dataclass
class Step:
    """One kernel call: ``output = act2(act1(op(inputs)) + residual)``."""

    op: str
    node: str  # the anchor node (names errors and progress)
    inputs: list  # value names, in the op's port order
    output: str
    attrs: dict
    in_shapes: list
    out_shape: tuple
    params: dict = field(default_factory=dict)  # role ("weight", "bias"...) -> weights key
    act1: str | None = None
    residual: str | None = None
    act2: str | None = None
    nodes: list = field(default_factory=list)  # every graph node the step computes
    algorithm: str | None = None  # conv2d: a name of cnngraph.algorithms.ALGORITHMS
    why: str = ""  # the cost model's reason for that algorithm
    # steps computing this step's second input from its first, run as part of it (a
    # squeeze-and-excitation gate: global average pool, two 1×1 convolutions; group_gates)
    gate: list = field(default_factory=list)
    # the step computing this step's input, run as part of it (an inverted residual's 1×1
    # expansion before its depthwise convolution; group_expansions)
    pre: list = field(default_factory=list)

    @property
    def reads(self) -> list:
        return self.inputs + ([self.residual] if self.residual else [])

    @property
    def parts(self) -> list:
        """The kernel calls this step makes, in order: its expansion or its gate's steps,
        then itself."""
        return [*self.pre, *self.gate, self]

    @property
    def operands(self) -> list:
        """The values an executor hands the step's kernel: its inputs, then the values its
        gate's steps pass to each other (the last one's output is the step's second input);
        with an expansion, the expansion's input, then the step's input (the expansion's
        output)."""
        if self.pre:
            return self.pre[0].inputs + self.inputs
        return self.inputs + [g.output for g in self.gate[:-1]]


@dataclass
class MemoryPlan:
    slots: list  # per-sample elements of each slot
    bytes_per_element: int = 4
    planned: object = 0  # per-sample elements
    naive: object = 0
    live_peak: object = None  # per-sample elements (numeric graphs only)
    batch: object = 1

    def _bytes(self, elems):
        return None if elems is None else ops.tidy(elems * self.bytes_per_element * self.batch)

    @property
    def planned_bytes(self):
        return self._bytes(self.planned)

    @property
    def naive_bytes(self):
        return self._bytes(self.naive)

    @property
    def live_peak_bytes(self):
        return self._bytes(self.live_peak)

    def at(self, batch) -> "MemoryPlan":
        """The same plan for a batch size (an int or a symbol such as N)."""
        return MemoryPlan(self.slots, self.bytes_per_element, self.planned, self.naive, self.live_peak, batch)


@dataclass
class Plan:
    name: str
    inputs: list
    outputs: list
    values: dict
    steps: list
    weights: dict | None
    memory: MemoryPlan | None = None
    graph: object = None
    layout: str = "NHWC"
    dtype: str = "float32"
    batch: int = 1  # the batch size the algorithms were chosen for (any batch runs)
    # CPU backends run a larger batch in passes of at most this many images (0: whole), each
    # pass's activations staying in the cache (cnngraph.compiler.algorithms.choose_chunk)
    chunk: int = 0
    chunk_why: str = ""

    @property
    def is_symbolic(self) -> bool:
        return any(not ops.is_int(s) for v in self.values.values() for s in v.shape)

    def summary(self) -> str:
        m = self.memory
        if not ops.is_int(m.planned):
            return (f"{self.name}: {len(self.steps)} steps over {len(self.values)} values in {len(m.slots)} slots; "
                    "planned arena is symbolic (formulas in plan.memory)")
        return (f"{self.name}: {len(self.steps)} steps over {len(self.values)} values in {len(m.slots)} slots; "
                f"planned arena per sample {fmt_bytes(m.planned_bytes)}, "
                f"{fmt_bytes(m.naive_bytes)} naive" + (f", {fmt_bytes(m.live_peak_bytes)} live peak"
                                                        if m.live_peak is not None else ""))


# ---------------------------------------------------------------- lowering
def _params(g, n) -> dict:
    """``{role: weights key}`` of node ``n``, from the registry's weight specs."""
    d = g.nodes[n]
    ins = [g.nodes[i]["shape"] for i in d["inputs"]]
    return {w.name: f"{n}.{w.name}" for w in ops.get(d["op"]).weight_specs(d["attrs"], ins)}


def lower(g, order, fusions: dict, weights=None) -> Plan:
    """Steps and values of a graph that has been through the passes."""
    pos = {n: i for i, n in enumerate(order)}
    absorbed = {m for f in fusions.values() for m in f.absorbed}
    pending = []
    for n in order:
        d = g.nodes[n]
        if ops.is_input(d["op"]) or n in absorbed:
            continue
        f = fusions.get(n)
        out = f.output if f else n
        ins = list(d["inputs"])
        if f and ops.get(d["op"]).elementwise and f.residual is not None:
            ins = ins[:1]
        step = Step(d["op"], n, ins, out, dict(d["attrs"]), [g.nodes[i]["shape"] for i in d["inputs"]],
                    g.nodes[n]["shape"], _params(g, n), *(
                        (f.act1, f.residual, f.act2) if f else (None, None, None)),
                    nodes=[n] + (f.absorbed if f else []))
        pending.append((pos[out], step))
    steps = [s for _, s in sorted(pending, key=lambda t: t[0])]
    values = {}
    for n in g.graph["inputs"]:
        values[n] = Value(n, g.nodes[n]["shape"], ops.numel(g.nodes[n]["shape"]), first=-1)
    for s in steps:
        values[s.output] = Value(s.output, g.nodes[s.output]["shape"], ops.numel(g.nodes[s.output]["shape"]))
    outs = [o for o in g.graph["outputs"]]
    _set_lifetimes(values, steps, outs)
    return Plan(g.graph.get("name", ""), list(g.graph["inputs"]), outs, values, steps, weights, graph=g)


def _set_lifetimes(values: dict, steps: list, outputs: list) -> None:
    """Each value's ``first`` (the step writing it, -1 for a graph input) and ``last`` (the
    last step reading it, ``len(steps)`` for a graph output, -1 when never read); the steps
    nested in a step (its gate, its expansion) count as the step itself."""
    for v in values.values():
        v.first = v.last = -1
    for j, s in enumerate(steps):
        for part in s.parts:
            if values[part.output].first == -1:
                values[part.output].first = j
            for r in part.reads:
                values[r].last = max(values[r].last, j)
    for o in outputs:
        values[o].last = len(steps)


# ---------------------------------------------------------------- gates (squeeze-and-excitation)
def _is_squeeze(step) -> bool:
    """A global average pool (an average to a 1×1 map) with no epilogue."""
    return (ops.get(step.op).reduce == "avg" and len(step.out_shape) == 3 and tuple(step.out_shape[1:]) == (1, 1)
            and step.residual is None and step.act1 is None and step.act2 is None)


def _is_gate_fc(step) -> bool:
    """A dense 1×1 convolution of a 1×1 map (a matrix-vector product) with at most one
    activation after it."""
    role = ops.get(step.op)
    if (role.fusion != "anchor" or role.spatial != "window" or role.window is None or step.residual is not None
            or step.act2 is not None):  # "window": a convolution's own layout, not a transposed one's
        return False
    w = role.window(step.attrs)
    return (w.kernel == (1, 1) and w.stride == (1, 1) and not any(w.padding) and step.attrs.get("groups", 1) == 1
            and len(step.in_shapes) == 1 and tuple(step.in_shapes[0][1:]) == (1, 1))


def group_gates(plan: Plan) -> Plan:
    """Nest every squeeze-and-excitation gate into the product it feeds: a step whose op
    :attr:`~cnngraph.ir.ops.Op.gates` (``mul``), right after the three steps computing its
    second input from its first (a global average pool, then two dense 1×1 convolutions
    with their activations), each value read by the next step only, takes those steps as
    its :attr:`Step.gate`. Backends run a gate's steps as part of the step (the Numba
    backend in one call for both convolutions); the values and the order of the kernel
    calls are unchanged, and the memory plan is made afterwards (a gate's values live
    through its step). EfficientNet-B0: 116 steps → 68.

    >>> from cnngraph import zoo
    >>> from cnngraph.compiler import compile
    >>> p = compile(zoo.build("efficientnet_b0"))
    >>> se = p.steps[2]
    >>> se.op, [g.op for g in se.gate], se.gate[1].act1, se.gate[2].act1
    ('mul', ['adaptive_avgpool2d', 'conv2d', 'conv2d'], 'silu', 'sigmoid')
    """
    vals = plan.values

    def fits(window, i):
        pool, fc1, fc2, m = window
        x = pool.inputs[0] if pool.inputs else None
        chain = [(pool, fc1), (fc1, fc2), (fc2, m)]
        return (ops.get(m.op).gates and len(m.inputs) == 2 and m.residual is None and m.inputs == [x, fc2.output]
                and _is_squeeze(pool) and _is_gate_fc(fc1) and _is_gate_fc(fc2)
                and all(b.reads.count(a.output) == 1 and vals[a.output].last == i + k + 1
                        and a.output not in plan.outputs and b.inputs[-1] == a.output
                        for k, (a, b) in enumerate(chain)))

    return _nest(plan, 4, "gate", fits)


# ---------------------------------------------------------------- expansions (inverted residuals)
def _is_expansion(step) -> bool:
    """A dense 1×1 stride-1 convolution in its own layout, unpadded, with at most one
    activation after it (no residual)."""
    role = ops.get(step.op)
    if (role.fusion != "anchor" or role.spatial != "window" or role.window is None or step.residual is not None
            or step.act2 is not None or len(step.inputs) != 1 or step.algorithm != "gemm"):
        return False
    w = role.window(step.attrs)
    return (w.kernel == (1, 1) and w.stride == (1, 1) and not any(w.padding) and w.dilation == (1, 1)
            and step.attrs.get("groups", 1) == 1)


def _is_depthwise(step) -> bool:
    """A depthwise convolution (the compiler's ``depthwise`` algorithm) of channel multiplier
    1: as many output channels as input channels and groups."""
    return (step.algorithm == "depthwise" and len(step.inputs) == 1
            and step.attrs.get("groups", 1) == step.in_shapes[0][0] == step.out_shape[0])


def group_expansions(plan: Plan) -> Plan:
    """Nest every inverted residual's expansion into its depthwise convolution: a depthwise
    convolution of multiplier 1 (:func:`_is_depthwise`, no residual) whose input is the output of the
    step right before it, a dense 1×1 convolution (:func:`_is_expansion`) read by nothing
    else, takes that step as its :attr:`Step.pre`. The Numba backend then computes the
    expansion a band of rows at a time into a buffer that stays in the core's cache, and
    the depthwise convolution from there: the expanded map (6× the block's channels in
    MobileNet v2) is never written to memory nor read back. Other backends run both parts
    in turn. The memory plan is made afterwards: the expansion's input, its output and the
    step's output each keep a slot through the step (the Numba kernel reads the input while
    it writes the output). MobileNet v2: 16 expansions nested, 55 steps → 39.

    >>> from cnngraph import zoo
    >>> from cnngraph.compiler import compile
    >>> p = compile(zoo.build("mobilenet_v2"))
    >>> dw = p.steps[3]
    >>> dw.node, [q.node for q in dw.pre], dw.pre[0].act1, dw.act1
    ('features.2.conv.1.0', ['features.2.conv.0.0'], 'relu6', 'relu6')
    """
    vals = plan.values

    def fits(window, i):
        a, d = window
        return (_is_expansion(a) and _is_depthwise(d) and d.inputs == [a.output] and d.residual is None
                and vals[a.output].last == i + 1 and a.output not in plan.outputs)

    return _nest(plan, 2, "pre", fits)


def _nest(plan: Plan, width: int, field: str, fits) -> Plan:
    """Nest runs of ``width`` consecutive steps, none nesting others yet, for which
    ``fits(window, i)`` holds (``i``: the window's first step): the last step of the window
    takes the others as its ``field`` (``gate`` or ``pre``) and their graph nodes; value
    lifetimes are then counted in the new step numbering."""
    steps = plan.steps
    out, i = [], 0
    while i < len(steps):
        window = steps[i:i + width]
        if len(window) == width and not any(s.gate or s.pre for s in window) and fits(window, i):
            last = window[-1]
            setattr(last, field, window[:-1])
            last.nodes = [n for s in window for n in s.nodes]
            out.append(last)
            i += width
            continue
        out.append(steps[i])
        i += 1
    if len(out) != len(steps):
        plan.steps = out
        _set_lifetimes(plan.values, out, plan.outputs)
    return plan


# ---------------------------------------------------------------- memory planning
@functools.lru_cache(maxsize=4096)
def _probe(expr) -> float:
    """A number for a symbolic size (symbols set to 64) to rank sizes heuristically."""
    e = sympy.sympify(expr)
    return float(e.subs({s: 64 for s in e.free_symbols}))


def _rank(x) -> float:
    return float(x) if ops.is_int(x) else _probe(x)


def _slot_size(members: list):
    """The size of a slot: the largest of the sizes it holds (an unevaluated sympy ``Max``
    when some are symbolic: proving which dominates costs seconds of sympy per slot)."""
    if all(ops.is_int(m) for m in members):
        return max(int(m) for m in members)
    ints = [int(m) for m in members if ops.is_int(m)]
    syms = [m for m in members if not ops.is_int(m)]
    args = syms + ([max(ints)] if ints else [])
    return args[0] if len(args) == 1 else sympy.Max(*args, evaluate=False)


def plan_memory(plan: Plan, bytes_per_element: int = 4) -> MemoryPlan:
    """Assign every value a slot, reusing the slots of values no longer needed.

    Greedy in step order: a step's output takes over the buffer of an input that dies at
    this step when the kernel may write in place (element-wise ops, the residual of a
    fused epilogue) and the shapes agree; otherwise the best-fitting free slot (the smallest
    that is large enough, else the largest, grown), otherwise a new slot. Sizes may be
    symbolic: candidates are then ranked with every symbol set to 64, and a slot's size is
    the ``Max`` of every size it holds, so the plan is valid for every input size (and
    makes the numeric plan's step-order choices at 64).

    A numeric plan is then packed a second way (:func:`_pack_by_size`: the largest values
    first, each into a slot none of whose values is alive at the same time), keeping the
    in-place choices; the smaller of the two is kept (MobileNet v2: 8.0 MB per image in
    step order, 6.6 MB by size, its live peak 5.7 MB).
    """
    members: list = []  # per slot: the distinct sizes it holds
    peak: list = []  # per slot: its rank (exact size when numeric)
    free: list = []
    vals = plan.values
    alias: dict = {}  # a value written in place -> the first value of its buffer

    def take(v):
        r = _rank(v.size)
        fits = [s for s in free if peak[s] >= r]
        if fits:
            s = min(fits, key=lambda s: peak[s])
        elif free:
            s = max(free, key=lambda s: peak[s])
        else:
            members.append([])
            peak.append(0.0)
            s = len(members) - 1
        if not any(v.size == m for m in members[s]):  # structural: no sympy algebra
            members[s].append(v.size)
        peak[s] = max(peak[s], r)
        if s in free:
            free.remove(s)
        return s

    for n in plan.inputs:
        vals[n].slot = take(vals[n])
    for i, step in enumerate(plan.steps):
        # values a step's nested steps pass to each other (an expansion's output, a gate's)
        # are alive during the whole step, as its inputs and output are: slots of their own
        for part in step.parts[:-1]:
            vals[part.output].slot = take(vals[part.output])
        out = vals[step.output]
        # ports whose value the output may overwrite (the kernel reads each element before
        # writing it); any step may also reuse its residual's buffer (the epilogue reads a
        # row of the residual before writing that row)
        ports = ops.get(step.op).inplace_ports
        cands = [step.inputs[p] for p in ports if p < len(step.inputs)]
        if step.residual:
            cands.append(step.residual)
        reads = step.reads
        reuse = next((c for c in cands if vals[c].last == i and reads.count(c) == 1
                      and vals[c].shape == out.shape), None)
        if reuse is not None:
            out.slot = vals[reuse].slot
            alias[step.output] = alias.get(reuse, reuse)
        else:
            out.slot = take(out)
        for r in dict.fromkeys(r for part in step.parts for r in part.reads):
            if vals[r].last == i and r != reuse and vals[r].slot not in free:
                free.append(vals[r].slot)
        if out.last == -1:  # produced but never read and not an output (not after eliminate_dead)
            free.append(out.slot)
    slots = [_slot_size(m) for m in members]
    if all(ops.is_int(v.size) for v in vals.values()):
        by_size, where = _pack_by_size(vals, alias)
        if sum(by_size) < sum(slots):
            slots = by_size
            for n, s in where.items():
                vals[n].slot = s

    def total(xs):
        xs = list(xs)
        return sum(int(x) for x in xs) if all(ops.is_int(x) for x in xs) else ops.tidy(sympy.Add(*xs))

    live_peak = None
    if all(ops.is_int(v.size) for v in vals.values()):
        # Bytes held at each step by the values alive then, a value sharing its slot with
        # an input it overwrites counted once: what this plan's in-place choices need.
        live_peak = 0
        for i in range(len(plan.steps)):
            held: dict = {}
            for v in vals.values():
                if v.first <= i <= max(v.last, v.first):
                    held[v.slot] = max(held.get(v.slot, 0), int(v.size))
            live_peak = max(live_peak, sum(held.values()))
    return MemoryPlan(slots, bytes_per_element, total(slots), total(v.size for v in vals.values()), live_peak)


def _pack_by_size(vals: dict, alias: dict) -> list:
    """Slots for a numeric plan, the largest values placed first: each buffer (a value and
    those written in place over it, ``alias``) goes into the smallest slot holding no buffer
    alive at any of its steps, else a new slot of its size, so a slot is as large as its
    first buffer and never grows. Two buffers share a slot only when one is last read at a
    step before the other is written. Returns the slot sizes and each value's slot.

    Greedy in step order puts a small value into a large free slot and later needs a new
    one for a larger value; by size, the large values settle the slots first.
    """
    bufs: dict = {}  # root value -> [size, first step, last step, members]
    for name, v in vals.items():
        root = alias.get(name, name)
        b = bufs.setdefault(root, [0, v.first, v.first, []])
        b[0] = max(b[0], int(v.size))
        b[1], b[2] = min(b[1], v.first), max(b[2], v.last, v.first)
        b[3].append(name)
    sizes: list = []
    spans: list = []  # per slot: the (first, last) steps of its buffers
    where: dict = {}
    for size, first, last, names in sorted(bufs.values(), key=lambda b: (-b[0], b[1])):
        ok = [s for s in range(len(sizes)) if all(last < a or b < first for a, b in spans[s])]
        if ok:
            s = min(ok, key=lambda s: sizes[s])
        else:
            sizes.append(size)
            spans.append([])
            s = len(sizes) - 1
        spans[s].append((first, last))
        for n in names:
            where[n] = s
    return sizes, where


def check_numeric(plan: Plan) -> None:
    """Raise a clear error when a plan with symbolic sizes is asked to run."""
    for v in plan.values.values():
        if any(not ops.is_int(s) for s in v.shape):
            raise CnnGraphError(f"{v.name}: shape {ops.fmt_shape(v.shape)} is symbolic; give a numeric --input to run")
