"""Which algorithm each convolution step runs, and why: a small cost model the compiler applies
and ``cnngraph plan --steps`` prints.

Every ``conv2d`` step of a plan gets ``step.algorithm`` (a name of :data:`ALGORITHMS`) and
``step.why`` (the numbers behind the choice). The choice is backend-neutral: a backend runs
the named algorithm when it has a kernel for it and its own convolution otherwise (the CuPy
backend convolves directly whatever the plan says).

The cost model counts *MAC-equivalents* for the whole batch: a GEMM of ``M×K`` by ``K×N``
costs ``M′·K·N′``, M and N rounded up to the GEMM micro-kernel's block (:data:`GEMM_BLOCK`:
its rows and columns past the end are computed and not stored; the weights are packed
once, so a call costs nothing more), and each element an algorithm copies or transforms
outside a GEMM costs :data:`MOVE_COST` (a multiply-add runs at about 90 G/s per core in the
micro-kernel, a strided copy or an add chain at a few G elements/s). The candidates of a
3×3 stride-1 convolution are im2col + GEMM, the implicit GEMM (the input read in place) and
Winograd F(2×2, 3×3) / F(4×4, 3×3); the cheapest wins. Winograd's input and output transforms read and write ``α²`` values per
tile and channel (``α = m + 2``) with about ``α`` adds each, so they weigh
:data:`TRANSFORM_COST` per element.

>>> from cnngraph import zoo
>>> from cnngraph.compiler import compile
>>> p = compile(zoo.build("resnet50"), batch=8)
>>> [(s.node, s.algorithm) for s in p.steps][:4]
[('conv1', 'implicit'), ('maxpool', None), ('layer1.0.conv1', 'gemm'), ('layer1.0.conv2', 'winograd4')]
"""
from __future__ import annotations

from dataclasses import dataclass

from cnngraph.ir import ops

# The algorithms a conv2d step may name, and what each means (the one place they are named
# outside the backends' kernel tables).
ALGORITHMS = {
    "gemm": "1×1 stride-1 unpadded convolution: one GEMM on the (N·H·W, C_in) input",
    "im2col": "tiles of output pixels packed (im2col) and multiplied by the (kh·kw·C_in, C_out) weights "
              "(one GEMM per group)",
    "implicit": "implicit GEMM: the input read in place (a zero-padded copy first when padded), each output "
                "pixel's kernel rows being runs of kw·C_in contiguous inputs (channels last); no im2col packing "
                "(ungrouped, no horizontal dilation)",
    "winograd2": "Winograd F(2×2, 3×3): 4×4 input tiles, 16 GEMMs over channels, 2.25× fewer multiplies",
    "winograd4": "Winograd F(4×4, 3×3): 6×6 input tiles, 36 GEMMs over channels, 4× fewer multiplies",
    "depthwise": "depthwise convolution (one input channel per group): a direct channels-last kernel",
    "grouped": "grouped convolution: a direct channels-last kernel, register-blocked (several output pixels × "
               "16-wide vectors of a group's outputs), weights packed per group, input rows copied zero-padded; "
               "narrow groups (cg = og ≤ 8) share a vector and take their inputs by register shuffles",
}
WINOGRAD_TILE = {"winograd2": 2, "winograd4": 4}

GEMM_BLOCK = (8, 32)  # the rows and columns of the GEMM micro-kernel's block (backends/numba_gemm.py: MR, NR)
MOVE_COST = 4.0
# im2col copies a kernel row's kw·C_in inputs as one slice when there are at least
# IM2COL_SHORT_RUN of them, else value by value: about ten times MOVE_COST per value
# (MobileNet v2's stem, runs of 3 taps × 3 channels: 4.0 ms to pack 2.7M values, one core).
IM2COL_SHORT_RUN = 64
SHORT_RUN_COST = 40.0
# The implicit GEMM's micro-kernel reads its A rows from the input image (strided, kh runs
# per row, first touched there) instead of a packed tile in L2: its products measured
# 1.2-1.4× slower than the same products on im2col tiles (ResNet-50's stride-2 layers, one
# core), so they weigh IMPLICIT_COST per multiply-add.
IMPLICIT_COST = 1.3
TRANSFORM_COST = 6.0
# The direct grouped kernel (backends/numba_grouped.py): its multiply-adds are counted over
# the 16-wide vectors it fills (a group's outputs rounded up to whole vectors, except narrow
# groups of cg = og inputs and outputs dividing 16, which share vectors), at
# GROUPED_MAC_COST MAC-equivalents each; every input element its zero-padded row copies
# hold costs MOVE_COST. Fitted on ResNeXt-50/101's 3×3 layers (docs/backends.md), where
# it beats per-group GEMMs from 4 to 64 channels per group, at batch 1 and 8.
GROUPED_MAC_COST = 0.8
GROUPED_LANES = 16
GROUPED_SHARED_MAX = 8
GROUP_PACK_WIDTH = 64  # packing a group of cg channels costs MOVE_COST·max(1, this / cg) per value
# F(4×4, 3×3) rounds 2-3× more than direct convolution (its transforms multiply by up to 8
# and 5); on the stem-side layers of a deep net that error propagates through every later
# layer (Inception-v3 at 75×75 went from 4e-5 to 1.7e-4 against float64). It is used only
# where at least this many input channels average it out.
WINOGRAD4_MIN_CIN = 64


@dataclass
class Choice:
    algorithm: str
    why: str
    costs: dict  # algorithm -> MAC-equivalents (candidates that were compared)


def gemm_cost(M: int, K: int, N: int) -> float:
    """MAC-equivalents of an (M×K)(K×N) product: M and N rounded up to the micro-kernel's block.

    >>> gemm_cost(49, 512, 24)   # 56 rows × 32 columns computed
    917504
    """
    mr, nr = GEMM_BLOCK
    return -(-M // mr) * mr * K * (-(-N // nr) * nr)


def conv_geometry(step) -> dict:
    """A conv2d step's sizes as ints: channels, input/output sizes, kernel, stride, padding
    (top, left, bottom, right), dilation, groups. Raises TypeError when they are symbolic."""
    a = step.attrs
    cin, H, W = map(int, step.in_shapes[0])
    cout, Ho, Wo = map(int, step.out_shape)
    return dict(cin=cin, H=H, W=W, cout=cout, Ho=Ho, Wo=Wo, kh=int(a["kernel"][0]), kw=int(a["kernel"][1]),
                sh=int(a["stride"][0]), sw=int(a["stride"][1]), pt=int(a["padding"][0]), pl=int(a["padding"][1]),
                pb=int(a["padding"][2]), pr=int(a["padding"][3]), dh=int(a["dilation"][0]),
                dw=int(a["dilation"][1]), groups=int(a["groups"]))


def winograd_ok(k: dict) -> bool:
    """Winograd applies to ungrouped 3×3 convolutions of stride 1 without dilation."""
    return (k["kh"], k["kw"], k["sh"], k["sw"], k["dh"], k["dw"], k["groups"]) == (3, 3, 1, 1, 1, 1, 1)


def padded_extent(k: dict) -> tuple:
    """``(Hp, Wp)``: the rows and columns of a zero-padded copy of the input that holds every
    window of geometry ``k`` (:func:`conv_geometry`'s keys): the input placed at (pt, pl), as
    far as the last window reaches. The copy is needed when this differs from ``(H, W)`` or the
    top/left padding is not 0.

    >>> padded_extent(dict(H=224, W=224, Ho=112, Wo=112, kh=3, kw=3, sh=2, sw=2, pt=1, pl=1, dh=1, dw=1))
    (225, 225)
    """
    return (max(k["H"] + k["pt"], (k["Ho"] - 1) * k["sh"] + (k["kh"] - 1) * k["dh"] + 1),
            max(k["W"] + k["pl"], (k["Wo"] - 1) * k["sw"] + (k["kw"] - 1) * k["dw"] + 1))


def grouped_lanes(cg: int, og: int) -> int:
    """Vector lanes the direct grouped kernel computes per group (output channels rounded
    up to whole 16-wide vectors; narrow groups with cg = og dividing 16 share vectors).

    >>> grouped_lanes(4, 4), grouped_lanes(8, 4), grouped_lanes(40, 40), grouped_lanes(64, 64)
    (4, 16, 48, 64)
    """
    if cg == og and og <= GROUPED_SHARED_MAX and GROUPED_LANES % og == 0:
        return og
    return -(-og // GROUPED_LANES) * GROUPED_LANES


def grouped_cost(k: dict, batch: int) -> float:
    """MAC-equivalents of the direct grouped kernel: its lane multiply-adds plus the copy of
    the zero-padded input rows (each output row's sh input rows, full padded width)."""
    G = k["groups"]
    cg, og = k["cin"] // G, k["cout"] // G
    lanes = G * grouped_lanes(cg, og)
    Wp = padded_extent(k)[1]
    copied = batch * k["Ho"] * k["sh"] * Wp * k["cin"]
    return GROUPED_MAC_COST * batch * k["Ho"] * k["Wo"] * k["kh"] * k["kw"] * cg * lanes + MOVE_COST * copied


def conv_costs(k: dict, batch: int) -> dict:
    """MAC-equivalents of each applicable GEMM-based algorithm for geometry ``k``
    (:func:`conv_geometry`'s keys) at ``batch``."""
    rows = batch * k["Ho"] * k["Wo"]
    G = k["groups"]
    cg, og = k["cin"] // G, k["cout"] // G
    Kd = k["kh"] * k["kw"] * cg
    if G > 1:
        move = MOVE_COST * max(1.0, GROUP_PACK_WIDTH / cg)
    else:
        move = SHORT_RUN_COST if k["dw"] != 1 or k["kw"] * cg < IM2COL_SHORT_RUN else MOVE_COST
    costs = {"im2col": G * (gemm_cost(rows, Kd, og) + move * rows * Kd)}
    direct = (k["kh"], k["kw"], k["sh"], k["sw"], k["pt"], k["pl"], k["pb"], k["pr"]) == (1, 1, 1, 1, 0, 0, 0, 0)
    if G == 1 and k["dw"] == 1 and not direct:  # (a direct 1×1 is the plain GEMM)
        # the padded copy: every input row the windows reach, at the padded width
        Hp, Wp = padded_extent(k)
        padded = (Hp, Wp, k["pt"], k["pl"]) != (k["H"], k["W"], 0, 0)
        costs["implicit"] = IMPLICIT_COST * gemm_cost(rows, Kd, og) + (MOVE_COST * batch * Hp * Wp * k["cin"] if padded else 0)
    if G > 1:
        costs["grouped"] = grouped_cost(k, batch)
    if direct:
        costs["gemm"] = G * gemm_cost(rows, cg, og)
    if winograd_ok(k):
        for name, m in WINOGRAD_TILE.items():
            if m == 4 and k["cin"] < WINOGRAD4_MIN_CIN:
                continue
            a = m + 2
            tiles = batch * -(-k["Ho"] // m) * -(-k["Wo"] // m)
            costs[name] = (a * a * gemm_cost(tiles, k["cin"], k["cout"])
                           + TRANSFORM_COST * tiles * a * a * (k["cin"] + k["cout"]))
    return costs


def _g(x: float) -> str:
    """MAC-equivalents with three significant figures or so (``_g(13.2e6)`` is ``'13.2M'``)."""
    return f"{x / 1e9:.2f}G" if x >= 1e9 else f"{x / 1e6:.1f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"


def choose_conv(k: dict, batch: int = 1) -> Choice:
    """The algorithm of a convolution with geometry ``k`` at ``batch``, and why."""
    G = k["groups"]
    cg = k["cin"] // G
    if G > 1 and cg == 1:
        return Choice("depthwise", f"{k['cin']}→{k['cout']} channels in {G} groups of one input channel", {})
    costs = conv_costs(k, batch)
    best = min(costs, key=costs.get)
    others = ", ".join(f"{a} {_g(c)}" for a, c in sorted(costs.items(), key=lambda t: t[1]) if a != best)
    why = f"{_g(costs[best])} MAC-eq at batch {batch}" + (f" (vs {others})" if others else "")
    return Choice(best, why, costs)


# A batch runs in passes of as many images as keep the largest step's values (its inputs,
# residual and output) within CHUNK_BYTES, so each step reads what the step before wrote from
# the cache instead of memory (MobileNet v2's 112×112 expansions: 4.8 MB per image). A pass
# reads every weight once more, so a batch is split only when the weights are at most
# CHUNK_WEIGHTS times one image's largest step. Measured at batch 8 on a quiet 2-core AMD
# EPYC, the two plans alternating in one process: MobileNet v2 (weights 2.3× its largest
# step) 43-55 ms in passes of 2 against 47-57 whole; EfficientNet-B0 (3.5×) 72-88 ms whole
# against 100-102 in passes, every kind of step slower in passes (its depthwise steps 22.5
# against 17.6 ms). It was 4 until then, which split EfficientNet-B0 too. Since expansions
# are nested in their depthwise steps (plan.group_expansions) MobileNet v2's largest step in
# memory is 3.1 MiB per image and it runs whole: 40.6 ms against 41.6 in passes of 2 when
# the machine was quiet, 48.4 against 59.5 when it was busy.
CHUNK_BYTES = 16 << 20
CHUNK_WEIGHTS = 3


def step_bytes(plan) -> int:
    """Bytes per image of the plan's largest step: its inputs, residual and output (float32);
    the values a step's nested steps pass to each other (an expansion's output, a gate's)
    stay inside the step and do not count.

    >>> from cnngraph import zoo
    >>> from cnngraph.compiler import compile
    >>> step_bytes(compile(zoo.build("mobilenet_v2")))   # features.1.conv.0.0: 32 channels, 112² in and out
    3211264
    """
    def size(v):
        return int(plan.values[v].size)

    def touched(s):
        inner = {p.output for p in s.parts[:-1]}
        return {v for p in s.parts for v in p.reads + [p.output]} - inner

    return 4 * max(sum(size(v) for v in touched(s)) for s in plan.steps)


def choose_chunk(plan, batch: int):
    """Images per pass for a batch of ``batch`` on the CPU (a :class:`Choice` whose algorithm
    is the count, as a string), or None when the plan is symbolic or has no weights to weigh.

    >>> from cnngraph import zoo
    >>> from cnngraph.compiler import compile
    >>> c = choose_chunk(compile(zoo.build("mobilenet_v2", input=(3, 320, 320))), 8)
    >>> c.algorithm, c.why
    ('2', '4 passes of 2 images: 12.5 MiB of values in the largest step (16.0 MiB budget); weights 13.3 MiB')
    """
    if plan.is_symbolic or batch <= 1:
        return None
    from cnngraph.ir.printer import fmt_bytes

    per_image = step_bytes(plan)
    weights = 4 * sum(int(ops.numel(shape)) for shape in _weight_shapes(plan))
    n = max(1, min(batch, CHUNK_BYTES // per_image))
    budget = f"({fmt_bytes(CHUNK_BYTES)} budget); weights {fmt_bytes(weights)}"
    if n >= batch or weights > CHUNK_WEIGHTS * per_image:
        why = f"whole batch: {fmt_bytes(per_image * batch)} of values in the largest step {budget}" + (
            f" > {CHUNK_WEIGHTS}× one image's" if n < batch else "")
        return Choice(str(batch), why, {})
    passes = -(-batch // n)
    return Choice(str(n), f"{passes} passes of {n} images: {fmt_bytes(per_image * n)} of values in the largest step "
                          + budget, {})


def _weight_shapes(plan):
    """The shape of every weight the plan's steps read (from their registry specs)."""
    seen = set()
    for s in (p for step in plan.steps for p in step.parts):
        spec = ops.get(s.op)
        for w in spec.weight_specs(s.attrs, s.in_shapes):
            key = s.params.get(w.name)
            if key and key not in seen:
                seen.add(key)
                yield w.shape


def choose_algorithms(plan, batch: int = 1):
    """Set ``algorithm`` and ``why`` on every numeric conv2d step of ``plan`` (in place);
    symbolic steps are left unset (their costs need sizes). Returns the plan."""
    for step in plan.steps:
        if not ops.get(step.op).chooses_algorithm:
            continue
        try:
            k = conv_geometry(step)
        except TypeError:  # symbolic sizes
            continue
        c = choose_conv(k, batch)
        step.algorithm, step.why = c.algorithm, c.why
    return plan
