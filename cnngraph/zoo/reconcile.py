"""Seed reconciliation: every table cell and headline number of the lectures, recomputed.

Each :class:`Claim` pairs a number printed in a seed with cnngraph's first-principles value
in the same unit. A claim *matches* when cnngraph's value, rounded to the printed number of
decimals (half up), equals the printed number. Otherwise the claim carries the reason and,
where one exists, ``reproduce``: the computation the slide must have done (bias left out,
only some rows summed, a truncation), which must give back the printed number — so every
explanation is itself checked.

>>> rs = results()
>>> sum(r.matches for r in rs) > 50 and all(r.matches or r.claim.reason for r in rs)
True
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Callable

import sympy

from cnngraph import zoo
from cnngraph.analysis.cost import analyze
from cnngraph.dsl import Net, conv2d, maxpool2d, relu
from cnngraph.ir.ops import window_out, Ctx
from cnngraph.ir.symbols import sym

KB, MiB, K, M, G = 1024, 1024**2, 10**3, 10**6, 10**9

SEEDS = {
    "000": "Lecture 8, CNN Architectures (Sept. 2020)",
    "001": "DeepRob Lecture 8, CNN Architectures (2023)",
    "002": "Lecture: Pooling and CNN architectures (case studies)",
    "003": "ROB 430/599 Lecture 8, CNN Architectures (Feb. 2026)",
    "004": "Lecture: Striding, pooling and modern ConvNets",
}


@dataclass(frozen=True)
class Claim:
    seed: str  # seed id(s), e.g. "000, 001, 003"
    where: str  # which slide / table / row
    quantity: str  # what is counted, with its unit
    printed: str  # as printed on the slide
    value: Callable  # cnngraph's value in the printed unit
    reason: str = ""  # why the slide differs (empty when it matches)
    kind: str = ""  # slip | typo | convention | variant | rounding | unexplained
    reproduce: Callable = None  # the slide's own computation, which gives back the printed number
    formula: bool = False  # printed and value are expressions, compared by sympy


@dataclass
class Result:
    claim: Claim
    ours: float
    matches: bool
    reproduced: bool | None

    @property
    def ours_text(self) -> str:
        if self.claim.formula:
            from cnngraph.ir.printer import size  # the one printer: 18HWC², (9C + C²)HW

            return size(sympy.sympify(self.ours))
        return _fmt(self.ours, _decimals(self.claim.printed))


def _decimals(printed: str) -> int:
    s = printed.replace(",", "")
    return len(s.split(".")[1]) if "." in s else 0


def _number(printed: str) -> float:
    return float(printed.replace(",", ""))


def _half_up(x: float, nd: int) -> float:
    q = 10**nd
    return math.floor(x * q + 0.5 + 1e-9) / q


def _fmt(x, nd: int) -> str:
    return f"{_half_up(float(x), nd):,.{nd}f}"


SYMS = {n: sym(n) for n in "C H W K G c w P f S F Ci Co".split()}


def _parse(text: str):
    from cnngraph.ir.printer import parse  # the safe parser: names are positive-integer symbols

    return parse(text)


def _agrees(value, printed: str, formula: bool = False) -> bool:
    if formula:
        return sympy.expand(sympy.sympify(value) - _parse(printed)) == 0
    return math.isclose(_half_up(float(value), _decimals(printed)), _number(printed), abs_tol=1e-9)


# ---------------------------------------------------------------- the computations
@functools.lru_cache(maxsize=None)
def report(model: str, **opts):
    return analyze(zoo.build(model, **opts))


def cell(model: str, title: str, field: str, unit: float = 1, **opts) -> float:
    return getattr(report(model, **opts).row(title).costs, field) / unit


def rows_sum(model: str, field: str, unit: float, titles=None, upto=None, ops=None, **opts) -> float:
    """Sum of a column over the table rows (as the slides' tables list them)."""
    total = 0
    for r in report(model, **opts).rows:
        if r.kind in ("act", "dropout", "input"):
            continue
        if (titles is None or r.title in titles) and (ops is None or r.op in ops):
            total += getattr(r.costs, field)
        if r.title == upto:
            break
    return total / unit


@functools.lru_cache(maxsize=None)
def googlenet_stem():
    net = Net("googlenet_stem")
    x = net.input(3, 224, 224)
    x = relu(conv2d(x, 64, 7, stride=2, padding=3, name="conv1"))
    x = maxpool2d(x, 3, 2, padding=1, name="pool1")
    x = relu(conv2d(x, 64, 1, name="conv2"))
    x = relu(conv2d(x, 192, 3, padding=1, name="conv3"))
    maxpool2d(x, 3, 2, padding=1, name="pool2")
    return analyze(net.graph)


def stem(title, field, unit):
    return getattr(googlenet_stem().row(title).costs, field) / unit


def stem_total(field, unit):
    return getattr(googlenet_stem().total, field) / unit


def out_size(w, f, p, s):
    return (w - f + 2 * p) / s + 1


def resnext_width(groups: int, C: int = 64):
    """Exact positive root c of 9Gc² + 8GCc − 17C² = 0 (equal cost with the bottleneck)."""
    c = sympy.Symbol("c", positive=True)
    return float(sympy.solve(9 * groups * c**2 + 8 * groups * C * c - 17 * C**2, c)[0])


def _alex(title, field, unit):
    return lambda: cell("alexnet", title, field, unit)


def _no_bias(model, title, unit, **opts):
    """A layer's weights without its bias: the convention of slides that leave biases out."""
    def f():
        r = report(model, **opts).row(title)
        return (r.params - r.attrs["out_features"]) / unit
    return f


# ---------------------------------------------------------------- the claims
def _alexnet_table() -> list:
    """Seeds 000, 001 and 003 print the same AlexNet table (003 changes one cell)."""
    s = "000, 001, 003"
    rows = [  # title, memory KB, params k, flop M as printed
        ("conv1", "784", "23", "73"), ("pool1", "182", "0", "0"), ("conv2", "547", "307", "224"),
        ("pool2", "127", "0", "0"), ("conv3", "254", "664", "112"), ("conv4", "169", "885", "145"),
        ("conv5", "169", "590", "100"), ("pool5", "36", "0", "0"), ("flatten", "36", "0", "0"),
        ("fc6", "16", "37,749", "38"), ("fc7", "16", "16,777", "17"), ("fc8", "4", "4,096", "4"),
    ]
    out = []
    for t, mem, par, flop in rows:
        out.append(Claim(s, f"AlexNet table, {t}", "memory (KB)", mem, _alex(t, "memory_bytes", KB)))
        if t in ("fc6", "fc7", "fc8"):
            out.append(Claim(
                "000, 001" if t == "fc6" else s, f"AlexNet table, {t}", "params (k)", par, _alex(t, "params", K),
                "the bias is left out: the cell is C_in·C_out (the FC flop count), not C_in·C_out + C_out as the "
                "slide's own formula says", "convention", _no_bias("alexnet", t, K)))
        else:
            out.append(Claim(s, f"AlexNet table, {t}", "params (k)", par, _alex(t, "params", K)))
        if t == "conv4":
            out.append(Claim(s, "AlexNet table, conv4", "flop (M)", flop, _alex(t, "flops", M),
                             "arithmetic slip: 256·13·13 outputs × 384·3·3 = 149,520,384 multiply-adds = 150 M",
                             "slip"))
        else:
            out.append(Claim(s, f"AlexNet table, {t}", "flop (M)", flop, _alex(t, "flops", M)))
    out += [
        Claim("003", "AlexNet table, fc6", "params (k)", "37,726", _alex("fc6", "params", K),
              "carries the slip of the worked example (9216·4096 + 4096 printed as 37,725,832; it is 37,752,832)",
              "slip", lambda: 37_725_832 / K),
        Claim(s, "AlexNet fc6 worked example", "FC params = 9216·4096 + 4096", "37,725,832", _alex("fc6", "params", 1),
              "arithmetic slip: 9216·4096 = 37,748,736, plus 4096 is 37,752,832", "slip"),
        Claim(s, "AlexNet fc6 worked example", "FC flops = 9216·4096", "37,748,736", _alex("fc6", "macs", 1)),
        Claim(s, "AlexNet conv1 worked example", "output size (227 − 11 + 2·2)/4 + 1", "56",
              lambda: report("alexnet").row("conv1").output_shape[1]),
        Claim(s, "AlexNet conv1 worked example", "output elements 64·56·56", "200,704",
              lambda: cell("alexnet", "conv1", "memory_bytes", 4)),
        Claim(s, "AlexNet conv1 worked example", "parameters 64·3·11·11 + 64", "23,296", _alex("conv1", "params", 1)),
        Claim(s, "AlexNet conv1 worked example", "flop (200,704 × 363)", "72,855,552", _alex("conv1", "macs", 1)),
        Claim(s, "AlexNet pool1 worked example", "memory (KB) 64·27·27·4/1024", "182.25", _alex("pool1", "memory_bytes", KB)),
        Claim(s, "AlexNet pool1 worked example", "pooling flop (64·27·27)·(3·3)", "419,904", _alex("pool1", "ops", 1)),
        Claim(s, "AlexNet pool1 worked example", "pooling flop (M)", "0.4", _alex("pool1", "ops", M)),
        Claim(s, "AlexNet flatten worked example", "flatten output 256·6·6", "9216",
              lambda: report("alexnet").row("flatten").output_shape[0]),
    ]
    return out


def _alexnet_vs_vgg() -> list:
    s = "000, 001, 003"
    return [
        Claim(s, "AlexNet vs VGG-16", "AlexNet total memory (MB)", "1.9", lambda: rows_sum("alexnet", "memory_bytes", MiB),
              "only some rows summed: the whole table is 2,339 KiB = 2.3 MiB; summing only the conv and FC outputs "
              "(pooling and flatten left out) gives 1,958 KiB = 1.9 MiB", "convention",
              lambda: rows_sum("alexnet", "memory_bytes", MiB, ops=("conv2d", "linear"))),
        Claim(s, "AlexNet vs VGG-16", "VGG-16 total memory (MB)", "48.6", lambda: rows_sum("vgg16", "memory_bytes", MiB),
              "only some rows summed: all of VGG-16's outputs are 58,996 KiB = 57.6 MiB; the memory column from conv1-1 "
              "through conv3-2 sums to 48,608 KiB, which is the printed 48.6 (read as thousands of KiB)", "slip",
              lambda: rows_sum("vgg16", "memory_bytes", K * KB, upto="conv3-2")),
        Claim(s, "AlexNet vs VGG-16", "AlexNet total params (M)", "61", lambda: report("alexnet").total.params / M),
        Claim(s, "AlexNet vs VGG-16", "VGG-16 total params (M)", "138", lambda: report("vgg16").total.params / M),
        Claim(s, "AlexNet vs VGG-16", "params ratio VGG-16/AlexNet", "2.3",
              lambda: report("vgg16").total.params / report("alexnet").total.params),
        Claim(s, "AlexNet vs VGG-16", "AlexNet total flop (G)", "0.7", lambda: report("alexnet").total.flops / G),
        Claim("000, 001, 003", "AlexNet vs VGG-16 (and the ResNet slides)", "VGG-16 total flop (G)", "13.6",
              lambda: report("vgg16").total.flops / G,
              "a row left out, most likely: VGG-16 at 224×224 does 15.47 G multiply-adds (torchvision publishes the "
              "same 15.47 GFLOPS); 13.6 is exactly what remains without conv1-2 (1.85 G)", "slip",
              lambda: (report("vgg16").total.flops - report("vgg16").row("conv1-2").flops) / G),
        Claim(s, "AlexNet vs VGG-16", "flop ratio VGG-16/AlexNet", "19.4",
              lambda: report("vgg16").total.flops / report("alexnet").total.flops,
              "follows from the 13.6 G above; with first-principles totals the ratio is 21.6", "slip",
              lambda: 13.6 / 0.7),
    ]


def _googlenet_stem() -> list:
    s = "000, 001, 003"
    rows = [("conv1", "3136", "9", "118"), ("pool1", "784", "0", "2"), ("conv2", "784", "4", "13"),
            ("conv3", "2352", "111", "347"), ("pool2", "588", "0", "1")]
    names = {"conv1": "conv 7×7/2", "pool1": "max-pool 3×3/2", "conv2": "conv 1×1", "conv3": "conv 3×3",
             "pool2": "max-pool 3×3/2"}
    out = []
    for t, mem, par, flop in rows:
        where = f"GoogLeNet stem table, {names[t]}"
        out.append(Claim(s, where, "memory (KB)", mem, lambda t=t: stem(t, "memory_bytes", KB)))
        out.append(Claim(s, where, "params (K)", par, lambda t=t: stem(t, "params", K)))
        out.append(Claim(s, where, "flop (M)", flop, lambda t=t: stem(t, "flops", M)))
    out += [
        Claim("001", "GoogLeNet stem table, conv 7×7/2", "memory (KB)", "3316", lambda: stem("conv1", "memory_bytes", KB),
              "typo: digits swapped (64·112·112·4/1024 = 3136, as seeds 000 and 003 print)", "typo"),
        Claim(s, "GoogLeNet stem totals", "memory (MB)", "7.5", lambda: stem_total("memory_bytes", MiB)),
        Claim(s, "GoogLeNet stem totals", "params (K)", "124", lambda: stem_total("params", K)),
        Claim(s, "GoogLeNet stem totals", "MFLOP", "418", lambda: stem_total("flops", M),
              "typo: digits swapped; the five rows sum to 118 + 1.8 + 12.8 + 346.8 + 1.4 = 481 M (also the sum of "
              "the printed cells 118 + 2 + 13 + 347 + 1)", "typo"),
        Claim(s, "GoogLeNet stem vs VGG-16 (224 → 28)", "VGG-16 memory (MB)", "42.9",
              lambda: rows_sum("vgg16", "memory_bytes", MiB, upto="pool3"),
              "only some rows summed: VGG-16 from the input to its 28×28 output (conv1-1 … pool3) writes 52,528 KiB = "
              "51.3 MiB; 42.9 MiB is the conv outputs only, conv1-1 through conv3-2 (conv3-3 and the pools left out)",
              "convention", lambda: rows_sum("vgg16", "memory_bytes", MiB, ops=("conv2d",), upto="conv3-2")),
        Claim(s, "GoogLeNet stem vs VGG-16 (224 → 28)", "VGG-16 params (M)", "1.1",
              lambda: rows_sum("vgg16", "params", M, upto="pool3"),
              "only some rows summed: conv1-1 … conv3-3 hold 1.74 M params; conv1-1 through conv3-2 hold 1.15 M",
              "convention", lambda: rows_sum("vgg16", "params", M, upto="conv3-2")),
        Claim(s, "GoogLeNet stem vs VGG-16 (224 → 28)", "VGG-16 MFLOP", "7485",
              lambda: rows_sum("vgg16", "flops", M, upto="pool3"),
              "only some rows summed: conv1-1 … pool3 is 9,341 M (9,335 M multiply-adds and 6 M pooling operations); "
              "the convs conv1-1 through conv3-2 alone are 7,485 M", "convention",
              lambda: rows_sum("vgg16", "flops", M, ops=("conv2d",), upto="conv3-2")),
        Claim(s, "GoogLeNet stem vs VGG-16", "MFLOP ratio", "17.8", lambda: rows_sum("vgg16", "flops", M, upto="pool3")
              / stem_total("flops", M),
              "slip: the slide's own 7485/418 is 17.9, not 17.8; with first-principles totals the ratio is "
              "9,341/481 = 19.4", "slip"),
        Claim("002", "GoogLeNet stem", "\"reduce 224×224 to 28×28 with just 418 MFLOP\"", "418",
              lambda: stem_total("flops", M), "the same swapped digits as the stem table: 481 M", "typo"),
    ]
    return out


def _googlenet_head() -> list:
    s = "000, 001, 003"
    return [
        Claim(s, "GoogLeNet head, avg-pool 1024×7×7 → 1024×1×1", "memory (KB)", "4",
              lambda: 1024 * 4 / KB),
        Claim(s, "GoogLeNet head, avg-pool", "flop (M)", "0", lambda: 1024 * 7 * 7 / M),
        Claim(s, "GoogLeNet head, fc 1024 → 1000", "params (k)", "1025", lambda: (1024 * 1000 + 1000) / K),
        Claim(s, "GoogLeNet head, fc 1024 → 1000", "flop (M)", "1", lambda: 1024 * 1000 / M),
        Claim("000, 003", "GoogLeNet head, fc 1024 → 1000", "memory (KB)", "0", lambda: 1000 * 4 / KB,
              "slip: the 1000 outputs take 4,000 B = 3.9 KiB, printed 4 (the AlexNet table's fc8 row prints 3.91)", "slip"),
        Claim(s, "GoogLeNet head, VGG-16 comparison, flatten 512×7×7", "memory (KB)", "98",
              lambda: cell("vgg16", "flatten", "memory_bytes", KB)),
        Claim(s, "GoogLeNet head, VGG-16 comparison, fc6", "params (K)", "102760", lambda: cell("vgg16", "fc6", "params", K),
              "the bias is left out (25088·4096 = 102,760,448; with the bias 102,764,544)", "convention",
              _no_bias("vgg16", "fc6", K)),
        Claim(s, "GoogLeNet head, VGG-16 comparison, fc6", "flop (M)", "103", lambda: cell("vgg16", "fc6", "flops", M)),
        Claim(s, "GoogLeNet head, VGG-16 comparison, fc7", "params (K)", "16777", lambda: cell("vgg16", "fc7", "params", K),
              "the bias is left out", "convention", _no_bias("vgg16", "fc7", K)),
        Claim(s, "GoogLeNet head, VGG-16 comparison, fc8", "params (K)", "4096", lambda: cell("vgg16", "fc8", "params", K),
              "the bias is left out", "convention", _no_bias("vgg16", "fc8", K)),
    ]


def _resnet_table() -> list:
    s = "000, 001, 003"
    out = []
    printed = {18: "1.8", 34: "3.6", 50: "3.8", 101: "7.6", 152: "11.3"}
    for d, p in printed.items():
        model = f"resnet{d}" if d < 50 else f"resnet{d}_paper"
        value = lambda model=model: report(model).total.macs / G
        # The table truncates ResNet-34 and -50 (3.66 -> 3.6, 3.86 -> 3.8) but rounds 101 and 152.
        slide = (lambda model=model: math.floor(report(model).total.macs / G * 10) / 10) if d in (34, 50) else value
        reason, kind = "", ""
        if d in (34, 50):
            reason = (f"rounding: the paper's (He et al. 2016) bottleneck variant does {report(model).total.macs / G:.3f} G "
                      f"multiply-adds; the table truncates it to {p} (ResNet-101/152 are rounded)")
            kind = "rounding"
        out.append(Claim(s, f"ResNet table, ResNet-{d}", "GFLOP (multiply-adds, paper's block variant)", p, value,
                         reason, kind, slide if reason else None))
        if d >= 50:
            tv = report(f"resnet{d}").total.macs / G
            out.append(Claim(s, f"ResNet table, ResNet-{d}", "GFLOP with torchvision's block (stride in the 3×3)", p,
                             lambda d=d: report(f"resnet{d}").total.macs / G,
                             f"a different variant: torchvision's ResNet v1.5 puts the stride in the 3×3 conv and does "
                             f"{tv:.2f} G; the table's figure is the paper's variant (stride in the first 1×1)",
                             "variant", slide))
    layers = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
    for d, blocks in layers.items():
        per = 2 if d < 50 else 3
        out.append(Claim(s, f"ResNet table, ResNet-{d}", "weighted layers: stem + per-stage layers + FC", str(d),
                         lambda d=d: sum(1 for r in report(f"resnet{d}").rows
                                         if r.op in ("conv2d", "linear") and "downsample" not in r.name)))
        for i, b in enumerate(blocks):
            out.append(Claim(s, f"ResNet table, ResNet-{d}, stage {i + 1}", "layers", str(b * per),
                             lambda d=d, i=i: sum(1 for r in report(f"resnet{d}").rows
                                                  if r.op == "conv2d" and r.name.startswith(f"layer{i + 1}.")
                                                  and "downsample" not in r.name)))
    return out


def _resnext_table() -> list:
    out = []
    for g, c in ((1, "64"), (2, "40"), (4, "24"), (8, "14"), (32, "4")):
        out.append(Claim("000", f"ResNeXt table (and 'C=64, G={g}' examples), G = {g}",
                         "group width c solving 9Gc² + 8GCc − 17C² = 0 at C = 64 (nearest integer)", c,
                         lambda g=g: resnext_width(g)))
    return out


def _worked_examples() -> list:
    return [
        Claim("002", "zero padding example", "output size (7 − 3 + 2·1)/1 + 1", "7", lambda: out_size(7, 3, 1, 1)),
        Claim("002, 004", "conv example: 32×32×3, ten 5×5 filters, stride 1, pad 2", "output size", "32",
              lambda: out_size(32, 5, 2, 1)),
        Claim("002, 004", "conv example: ten 5×5×3 filters", "parameters (5·5·3 + 1)·10", "760",
              lambda: (5 * 5 * 3 + 1) * 10),
        Claim("004", "dimension counting example", "w′ for w = 32, P = 2, f = 5, S = 1 (printed result)", "32",
              lambda: out_size(32, 5, 2, 1)),
        Claim("004", "stride example, 7×7 input, 3×3 filter", "output size at stride 1", "5", lambda: out_size(7, 3, 0, 1)),
        Claim("004", "stride example, 7×7 input, 3×3 filter", "output size at stride 2", "3", lambda: out_size(7, 3, 0, 2)),
        Claim("004", "stride example, 7×7 input, 3×3 filter", "(7 − 3)/3 + 1 at stride 3 (\"doesn't fit\")", "2.33",
              lambda: out_size(7, 3, 0, 3)),
        Claim("004", "common settings", "padding P for f = 1, S = 1 (to keep the size)", "1",
              lambda: (1 - 1) / 2,
              "typo: a 1×1 conv keeps the size with P = 0 (seed 002 prints P = 0); with P = 1 it grows by 2", "typo"),
        Claim("002", "AlexNet (original) CONV1: 96 11×11 filters, stride 4, on 227", "output size", "55",
              lambda: out_size(227, 11, 0, 4)),
        Claim("002", "AlexNet (original) CONV1", "parameters (11·11·3 + 1)·96, in K", "35",
              lambda: (11 * 11 * 3 + 1) * 96 / K),
        Claim("004", "AlexNet (original) CONV1", "parameters 11·11·3·96, in k (bias left out)", "35",
              lambda: 11 * 11 * 3 * 96 / K),
        Claim("002, 004", "AlexNet (original) POOL1 on 55×55", "output size (55 − 3)/2 + 1", "27",
              lambda: out_size(55, 3, 0, 2)),
        Claim("001, 003", "AlexNet paper, Figure 2 caption", "neurons of the first conv layer (55·55·96)", "253,440",
              lambda: 55 * 55 * 96,
              "slip in the AlexNet paper: 55·55·96 = 290,400; 253,440 is 55·48·96 (one GPU's half counted as if it "
              "were 55 wide)", "slip", lambda: 55 * 48 * 96),
        Claim("001, 003", "AlexNet paper, Figure 2 caption", "neurons of conv2 (27·27·256)", "186,624", lambda: 27 * 27 * 256),
        Claim("001, 003", "AlexNet paper, Figure 2 caption", "neurons of conv3, conv4 (13·13·384)", "64,896",
              lambda: 13 * 13 * 384),
        Claim("001, 003", "AlexNet paper, Figure 2 caption", "neurons of conv5 (13·13·256)", "43,264", lambda: 13 * 13 * 256),
        Claim("001, 003", "AlexNet paper, Figure 2 caption", "input dimension (224·224·3)", "150,528", lambda: 224 * 224 * 3),
        Claim("002", "VGG: three 3×3 convs vs one 7×7", "params 3·(3²C²) at C = 1", "27",
              lambda: 3 * 9),
        Claim("002", "VGG-16 details", "TOTAL params (M)", "138", lambda: report("vgg16").total.params / M),
        Claim("002", "VGG-16 details", "TOTAL memory: output elements (M)", "24",
              lambda: (report("vgg16").total.memory_bytes / 4 + 224 * 224 * 3) / M,
              "slip (from the original cs231n slide): the input and every conv, pool and FC output add up to 15.3 M "
              "elements, 61,050,784 B = 58.2 MiB at 4 bytes", "slip"),
        Claim("004", "VGGNet table", "Total memory: 24M × 4 bytes ≈ 93MB", "93", lambda: 24 * M * 4 / MiB,
              "arithmetic slip: 24 M × 4 B is 96,000,000 B = 91.6 MiB; the 24 M itself is wrong, see above", "slip"),
        Claim("004", "VGGNet table", "Total parameters (Million)", "128", lambda: report("vgg16").total.params / M,
              "typo: the table's own rows add up to 138,344,128 weights (138,357,544 with biases)", "typo"),
        Claim("004", "VGGNet table, first conv", "parameters (3·3·3)·64 (bias left out)", "1,728",
              lambda: cell("vgg16", "conv1-1", "params", 1) - 64),
        Claim("004", "VGGNet table, fc6", "parameters 7·7·512·4096 (bias left out)", "102,760,448",
              _no_bias("vgg16", "fc6", 1)),
        Claim("004", "VGGNet table, 224×224×64 conv", "memory 224·224·64 (M elements)", "3.2",
              lambda: cell("vgg16", "conv1-1", "memory_bytes", 4 * M)),
        Claim("003", "LeNet-5 table, second conv (printed 20 x 28 x 28, weights 20 x 1 x 5 x 5)", "output channels",
              "20", lambda: report("lenet5").row("conv2").output_shape[0],
              "typo: the first conv's row is repeated; the second conv outputs 50×14×14 with weights 50×20×5×5 "
              "(the next row of the same slide has it right)", "typo",
              lambda: report("lenet5").row("conv1").output_shape[0]),
        Claim("003", "LeNet-5 table", "flatten size 50·7·7", "2450", lambda: report("lenet5").row("flatten").output_shape[0]),
        Claim("000", "VGG: conv at C×2H×2W vs 2C×H×W", "flop ratio (36HWC² / 36HWC²)", "1",
              lambda: (9 * 64 * 64 * 2 * 8 * 2 * 8) / (9 * 128 * 128 * 8 * 8)),
        Claim("004", "GoogLeNet", "params ratio AlexNet/GoogLeNet (\"12× less\")", "12",
              lambda: report("alexnet").total.params / 5e6),
        Claim("004", "GoogLeNet", "params ratio VGG-16/GoogLeNet (\"27× less\")", "27",
              lambda: report("vgg16").total.params / 5e6,
              "rounding: 138.4 M / 5 M = 27.7 (truncated to 27)", "rounding",
              lambda: math.floor(report("vgg16").total.params / 5e6)),
    ]


def chain(cin, H, W, specs):
    """Analyze a stack of bias-free convs ``(c_out, k, groups)`` on a C×H×W input, sizes kept."""
    net = Net("chain")
    x = net.input(cin, H, W)
    for cout, k, groups in specs:
        x = conv2d(x, cout, k, padding="same", groups=groups, bias=False)
    return analyze(net.graph)


def _formulas() -> list:
    C, H, W, K, G, c, Ci, Co = (SYMS[n] for n in "C H W K G c Ci Co".split())
    w, P, f = SYMS["w"], SYMS["P"], SYMS["f"]

    def macs(*specs, cin=C, h=H, wd=W):
        return lambda: chain(cin, h, wd, specs).total.macs

    def params(*specs, cin=C):
        return lambda: chain(cin, H, W, specs).total.params

    bottleneck = ((C, 1, 1), (C, 3, 1), (4 * C, 1, 1))
    resnext = ((G * c, 1, 1), (G * c, 3, G), (4 * C, 1, 1))
    std, dw, pw = macs((C, 3, 1)), macs((C, 3, C)), macs((C, 1, 1))
    ratio = lambda: sympy.cancel(std() / chain(C, H, W, ((C, 3, C), (C, 1, 1))).total.macs)
    F = lambda **kw: dict(formula=True, **kw)
    return [
        Claim("000", "VGG option 1: Conv(5×5, C→C)", "params", "25*C**2", params((C, 5, 1)), **F()),
        Claim("000", "VGG option 1: Conv(5×5, C→C)", "FLOPs", "25*C**2*H*W", macs((C, 5, 1)), **F()),
        Claim("000", "VGG option 2: two Conv(3×3, C→C)", "params", "18*C**2", params((C, 3, 1), (C, 3, 1)), **F()),
        Claim("000", "VGG option 2: two Conv(3×3, C→C)", "FLOPs", "18*C**2*H*W", macs((C, 3, 1), (C, 3, 1)), **F()),
        Claim("002", "VGG: three 3×3 convs vs one 7×7", "params of three 3×3", "3*(3**2*C**2)",
              params((C, 3, 1), (C, 3, 1), (C, 3, 1)), **F()),
        Claim("002", "VGG: three 3×3 convs vs one 7×7", "params of one 7×7", "7**2*C**2", params((C, 7, 1)), **F()),
        Claim("000", "VGG: Conv(3×3, C→C) on C×2H×2W", "memory (elements)", "4*H*W*C",
              lambda: chain(C, 2 * H, 2 * W, ((C, 3, 1),)).rows[-1].memory_bytes / 4, **F()),
        Claim("000", "VGG: Conv(3×3, C→C) on C×2H×2W", "params", "9*C**2", params((C, 3, 1)), **F()),
        Claim("000", "VGG: Conv(3×3, C→C) on C×2H×2W", "FLOPs", "36*H*W*C**2", macs((C, 3, 1), h=2 * H, wd=2 * W), **F()),
        Claim("000", "VGG: Conv(3×3, 2C→2C) on 2C×H×W", "memory (elements)", "2*H*W*C",
              lambda: chain(2 * C, H, W, ((2 * C, 3, 1),)).rows[-1].memory_bytes / 4, **F()),
        Claim("000", "VGG: Conv(3×3, 2C→2C) on 2C×H×W", "params", "36*C**2", params((2 * C, 3, 1), cin=2 * C), **F()),
        Claim("000", "VGG: Conv(3×3, 2C→2C) on 2C×H×W", "FLOPs", "36*H*W*C**2", macs((2 * C, 3, 1), cin=2 * C), **F()),
        Claim("000, 001", "ResNet basic block", "total FLOPs", "18*H*W*C**2", macs((C, 3, 1), (C, 3, 1)), **F()),
        Claim("000, 001", "ResNet bottleneck block, 4C in and out", "total FLOPs", "17*H*W*C**2",
              macs(*bottleneck, cin=4 * C), **F()),
        Claim("000", "ResNeXt block, G pathways of width c", "total FLOPs", "(8*C*c + 9*c**2)*H*W*G",
              macs(*resnext, cin=4 * C), **F()),
        Claim("000", "ResNeXt vs bottleneck", "equal cost when", "9*G*c**2 + 8*G*C*c - 17*C**2",
              lambda: sympy.expand((chain(4 * C, H, W, resnext).total.macs - chain(4 * C, H, W, bottleneck).total.macs)
                                   / (H * W)), **F()),
        Claim("000", "grouped convolution", "FLOPs", "Co*Ci*K**2*H*W/G", lambda: chain(Ci, H, W, ((Co, K, G),)).total.macs,
              **F()),
        Claim("000", "grouped convolution", "weights: G × (C_out/G) × (C_in × G) × K × K", "G*(Co/G)*(Ci*G)*K**2",
              lambda: chain(Ci, H, W, ((Co, K, G),)).total.params,
              "typo: each of the G groups sees C_in/G input channels, so the weight is G × (C_out/G) × (C_in/G) × K × K "
              "= C_out·C_in·K²/G (which is what the slide's FLOP formula assumes)", "typo", formula=True),
        Claim("000", "MobileNet: standard Conv(3×3, C→C)", "total cost", "9*C**2*H*W", std, **F()),
        Claim("000", "MobileNet: depthwise Conv(3×3, C→C, groups=C)", "cost", "9*C*H*W", dw, **F()),
        Claim("000", "MobileNet: pointwise Conv(1×1, C→C)", "cost", "C**2*H*W", pw, **F()),
        Claim("000", "MobileNet: depthwise separable block", "total cost", "(9*C + C**2)*H*W",
              macs((C, 3, C), (C, 1, 1)), **F()),
        Claim("000", "MobileNet", "speedup 9C²/(9C + C²)", "9*C/(9 + C)", ratio, **F()),
        Claim("000", "MobileNet", "speedup as C → ∞", "9", lambda: sympy.limit(ratio(), C, sympy.oo), **F()),
        Claim("004", "conv layer summary", "parameters of K filters of size F×F on C channels", "F**2*C*K + K",
              analyze_conv_params, **F()),
        Claim("002", "output size, stride 1", "(N − F + 2P)/stride + 1 at stride 1 (as w − f + 2P + 1)",
              "w - f + 2*P + 1", lambda: window_out(Ctx("w"), w, f, 1, P, P, 1, False, "W"), **F()),
        Claim("004", "dimension counting example", "w′ = (w − 2P − f)/S + 1 at S = 1", "w - 2*P - f + 1",
              lambda: window_out(Ctx("w"), w, f, 1, P, P, 1, False, "W"),
              "typo: the sign of the padding: w′ = (w + 2P − f)/S + 1 (the slide's numbers, 32 − 2·2 − 5 + 1 = 24, "
              "would not give its own result 32)", "typo", formula=True),
    ]


def analyze_conv_params():
    """Parameters of K filters F×F on C channels with biases, from a graph."""
    C, F, K, H, W = (SYMS[n] for n in "C F K H W".split())
    net = Net("conv")
    conv2d(net.input(C, H, W), K, F, padding="same", bias=True)
    return analyze(net.graph).total.params


def _weights_only(model: str, groups: list, unit: float) -> float:
    """Weights without biases of the named depth-1 groups (the reading of GoogLeNet's Table 1)."""
    total = 0
    for r in report(model).rows:
        key = r.path[0][0] if r.path else "(top)"
        if key in groups:
            bias = r.attrs.get("out_channels", r.attrs.get("out_features", 0)) if r.attrs.get("bias") else 0
            total += r.params - bias
    return total / unit


def _group(model: str, groups: list, field: str, unit: float) -> float:
    g = report(model).groups(1)
    return sum(getattr(g[k], field) for k in groups) / unit


def _googlenet_table1() -> list:
    """Seed 004 reprints Table 1 of Szegedy et al. (2014); cnngraph's ``googlenet_paper`` is that network."""
    rows = [("convolution 7×7/2", ["conv1"], "2.7", "34"),
            ("convolution 3×3/1 (with its 1×1 reduce)", ["conv2", "conv3"], "112", "360"),
            ("inception (3a)", ["inception3a"], "159", "128"), ("inception (3b)", ["inception3b"], "380", "304"),
            ("inception (4a)", ["inception4a"], "364", "73"), ("inception (4b)", ["inception4b"], "437", "88"),
            ("inception (4c)", ["inception4c"], "463", "100"), ("inception (4d)", ["inception4d"], "580", "119"),
            ("inception (4e)", ["inception4e"], "840", "170"), ("inception (5a)", ["inception5a"], "1072", "54"),
            ("inception (5b)", ["inception5b"], "1388", "71"), ("linear", ["(top)"], "1000", "1")]
    inconsistent = {"convolution 7×7/2", "inception (5a)"}  # params and ops agree with each other, not with the widths
    out = []
    for where, groups, par, ops_ in rows:
        w = f"GoogLeNet Table 1, {where}"
        value = lambda groups=groups: _group("googlenet_paper", groups, "params", K)
        slide = lambda groups=groups: _weights_only("googlenet_paper", groups, KB)
        if _agrees(value(), par):
            out.append(Claim("004", w, "params (K)", par, value))
        elif _agrees(slide(), par):
            out.append(Claim("004", w, "params (K)", par, value,
                             "the table counts weights without biases, in units of 1024", "convention", slide))
        elif where in inconsistent:
            out.append(Claim("004", w, "params (K)", par, value,
                             "slip in the paper's table: this row's params and ops agree with each other (ops ≈ params × "
                             "output positions) but not with the filter counts printed in the same row", "slip"))
        else:
            out.append(Claim("004", w, "params (K)", par, value,
                             f"slip in the paper's table: the row's filter counts give {slide():,.1f} K weights (no biases, "
                             f"K = 1024) and {value():,.1f} K params; its ops cell matches the same widths", "slip"))
        macs = lambda groups=groups: _group("googlenet_paper", groups, "macs", M)
        if _agrees(macs(), ops_):
            out.append(Claim("004", w, "ops (M multiply-adds)", ops_, macs))
        elif where in inconsistent:
            out.append(Claim("004", w, "ops (M multiply-adds)", ops_, macs,
                             "slip in the paper's table: not the row's widths (see its params cell)", "slip"))
        else:
            out.append(Claim("004", w, "ops (M multiply-adds)", ops_, macs, "rounding: truncated, where other rows round",
                             "rounding", lambda groups=groups: math.floor(_group("googlenet_paper", groups, "macs", M))))
    out += [
        Claim("004", "GoogLeNet", "\"Only 5 million params\" (M), the paper's network without auxiliary heads", "5",
              lambda: report("googlenet_paper").total.params / M,
              "slip (carried from the paper's introduction): the network of its own Table 1 has 7.0 M params, and the "
              "table's params column sums to 6,798 K; torchvision's GoogLeNet has 6.6 M", "slip"),
    ]
    return out


def claims() -> list:
    return (_alexnet_table() + _alexnet_vs_vgg() + _googlenet_stem() + _googlenet_head() + _resnet_table()
            + _resnext_table() + _googlenet_table1() + _worked_examples() + _formulas() + extra_claims())


def extra_claims() -> list:
    """Claims about zoo models added by later modules (GoogLeNet's Table 1, MobileNet, ...)."""
    out = []
    for fn in _EXTRA:
        out += fn()
    return out


_EXTRA: list = []


def results() -> list:
    out = []
    for c in claims():
        ours = c.value()
        rep = None if c.reproduce is None else _agrees(c.reproduce(), c.printed, c.formula)
        out.append(Result(c, ours if c.formula else float(ours), _agrees(ours, c.printed, c.formula), rep))
    return out


def markdown() -> str:
    rs = results()
    bad = [r for r in rs if not r.matches]
    lines = [
        "# Seed reconciliation",
        "",
        "Every table cell and headline number of the five lectures in `shared/seeds/`, recomputed by cnngraph "
        "from first principles. A number *matches* when cnngraph's value, rounded to the printed precision, equals "
        "it. Where a slide differs, the reason is given, and where the slide's own computation can be identified "
        "(a bias left out, only some rows summed, a truncation) cnngraph redoes it and checks that it gives back "
        "the printed number (column *reproduced*).",
        "",
        f"**{len(rs)} numbers checked: {len(rs) - len(bad)} match, {len(bad)} differ** "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(_kinds(bad).items()))}).",
        "",
        "Seeds: " + "; ".join(f"`{k}` {v}" for k, v in SEEDS.items()) + ".",
        "",
        "## Differences",
        "",
        "| seed | where | quantity | slide | cnngraph | kind | reproduced | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in bad:
        c = r.claim
        rep = "" if r.reproduced is None else ("yes" if r.reproduced else "no")
        lines.append(f"| {c.seed} | {c.where} | {c.quantity} | {c.printed} | {r.ours_text} | {c.kind} | {rep} | {c.reason} |")
    lines += ["", "## Matches", "", "| seed | where | quantity | slide | cnngraph |", "|---|---|---|---|---|"]
    for r in rs:
        if r.matches:
            c = r.claim
            lines.append(f"| {c.seed} | {c.where} | {c.quantity} | {c.printed} | {r.ours_text} |")
    lines += ["", "Conventions: memory = activation memory, every layer output written once × 4 B; the slides' KB and MB "
              "are binary, 1 KB = 1 KiB = 2^10 B, 1 MB = 1 MiB = 2^20 B; params include biases; "
              "flop = multiply-adds + pooling operations (the slides' convention); rounding half up. "
              "Regenerate with `cnngraph reconcile -o gallery/reconciliation.md`.", ""]
    return "\n".join(lines)


def _kinds(rs) -> dict:
    out: dict = {}
    for r in rs:
        out[r.claim.kind] = out.get(r.claim.kind, 0) + 1
    return out


def to_json() -> str:
    return json.dumps([dict(seed=r.claim.seed, where=r.claim.where, quantity=r.claim.quantity, printed=r.claim.printed,
                            cnngraph=r.ours_text, matches=r.matches, kind=r.claim.kind, reason=r.claim.reason,
                            reproduced=r.reproduced) for r in results()], indent=1)
