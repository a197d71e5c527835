"""Named blocks of the seeds, built with the DSL on symbolic sizes, and their formulas.

``block("basic")`` builds the ResNet basic block on a C×H×W input and returns a
:class:`Block` whose ``cost``, ``params`` and ``memory`` are :class:`Formula` objects derived
from the graph by :func:`cnngraph.analyze` (nothing is typed in by hand). Keyword arguments
replace the default symbols by numbers or other expressions: ``block("conv", K=5)``,
``block("inception", C=192, c_1=64, c_3r=96, c_3=128, c_5r=16, c_5=32, c_p=32, H=28, W=28)``.

>>> b = block("bottleneck")
>>> str(b.cost), str(b.params), b.receptive.label
('17HWC²', '17C²', '3')
>>> str(block("resnext_grouped").cost)
'(8Cc + 9c²)HWG'
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable

import sympy

from cnngraph.dsl import Net, add, batchnorm, conv2d, relu6
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.ops import is_int
from cnngraph.analysis.receptive import Field, receptive_field
from cnngraph.ir.sizes import as_expr
from cnngraph.ir.symbols import sym
# The zoo's own block functions, imported here (not per call) so a block's formulas cost
# only their derivation.
from cnngraph.zoo.densenet import dense_block as zoo_dense_block
from cnngraph.zoo.densenet import dense_layer as zoo_dense_layer
from cnngraph.zoo.inception import inception_module
from cnngraph.zoo.mobile import conv_bn_act, depthwise_separable
from cnngraph.zoo.preact import preact_basic_block
from cnngraph.zoo.resnet import basic_block
from cnngraph.zoo.resnet import bottleneck as zoo_bottleneck
from cnngraph.zoo.resnext import pathways_block
from cnngraph.zoo.senet import se_module
from cnngraph.formulas.core import Formula, check_include, convention_text, costs, over_count

C, H, W, c, G, K, k, t, r, L, n = (sym(x) for x in "C H W c G K k t r L n".split())
C_in, C_out = sym("C_in"), sym("C_out")


@dataclass
class Spec:
    """A named block: its builder (keyword sizes -> graph) and what the seeds say of it."""

    name: str
    build: Callable
    summary: str
    seed: str = ""  # the seeds' own statement, for comparison
    count: tuple = ()  # (size name, degree, first count): a repeat count that may be symbolic

    @property
    def defaults(self) -> dict:
        return {p.name: p.default for p in inspect.signature(self.build).parameters.values()}


BLOCKS: dict[str, Spec] = {}


def _register(name, summary, seed="", count=()):
    def wrap(fn):
        BLOCKS[name] = Spec(name, fn, summary, seed, count)
        return fn

    return wrap


# ---------------------------------------------------------------- single convolutions
def _conv_stack(C, H, W, ks, name):
    net = Net(name)
    x = net.input(C, H, W)
    for i, kk in enumerate(ks, 1):
        x = conv2d(x, C, kk, padding="same" if not is_int(kk) else (kk - 1) // 2, bias=False, name=f"conv{i}")
    return net.graph


@_register("conv", "one K×K convolution C→C, stride 1, 'same' padding, no bias", "Conv(K×K, C→C): K²C²HW")
def conv(C=C, H=H, W=W, K=K):
    return _conv_stack(C, H, W, [K], "conv")


@_register("conv3x3", "one 3×3 convolution C→C", "Conv(3x3, C->C): 9HWC², params 9C² (seed 000)")
def conv3x3(C=C, H=H, W=W):
    return _conv_stack(C, H, W, [3], "conv3x3")


@_register("conv5x5", "one 5×5 convolution C→C", "Option 1: Conv(5x5, C->C): params 25C², FLOPs 25C²HW (seed 000)")
def conv5x5(C=C, H=H, W=W):
    return _conv_stack(C, H, W, [5], "conv5x5")


@_register("conv3x3_x2", "two stacked 3×3 convolutions C→C (the receptive field of one 5×5)",
           "Option 2: params 18C², FLOPs 18C²HW; same receptive field as a 5×5 (seed 000)")
def conv3x3_x2(C=C, H=H, W=W):
    return _conv_stack(C, H, W, [3, 3], "conv3x3_x2")


@_register("conv7x7", "one 7×7 convolution C→C", "7²C² params (seed 002)")
def conv7x7(C=C, H=H, W=W):
    return _conv_stack(C, H, W, [7], "conv7x7")


@_register("conv3x3_x3", "three stacked 3×3 convolutions C→C (the receptive field of one 7×7)",
           "3·(3²C²) params vs 7²C²; ERF 7×7 (seed 002)")
def conv3x3_x3(C=C, H=H, W=W):
    return _conv_stack(C, H, W, [3, 3, 3], "conv3x3_x3")


@_register("vgg_conv_2h", "VGG: a 3×3 conv C→C on a C×2H×2W input (before a pool)",
           "Memory 4HWC, params 9C², FLOPs 36HWC² (seed 000)")
def vgg_conv_2h(C=C, H=H, W=W):
    net = Net("vgg_conv_2h")
    conv2d(net.input(C, 2 * H, 2 * W), C, 3, padding=1, bias=False, name="conv")
    return net.graph


@_register("vgg_conv_2c", "VGG: a 3×3 conv 2C→2C on a 2C×H×W input (after pool, channels doubled)",
           "Memory 2HWC, params 36C², FLOPs 36HWC² (seed 000)")
def vgg_conv_2c(C=C, H=H, W=W):
    net = Net("vgg_conv_2c")
    conv2d(net.input(2 * C, H, W), 2 * C, 3, padding=1, bias=False, name="conv")
    return net.graph


@_register("grouped_conv", "grouped K×K convolution C_in→C_out with G groups",
           "FLOPs: C_out·C_in·K²·HW/G (seed 000)")
def grouped_conv(C_in=C_in, C_out=C_out, H=H, W=W, K=K, G=G):
    net = Net("grouped_conv")
    conv2d(net.input(C_in, H, W), C_out, K, padding="same" if not is_int(K) else (K - 1) // 2, groups=G,
           bias=False, name="conv")
    return net.graph


@_register("depthwise_conv", "depthwise K×K convolution: groups = C, C→nC (n filters per channel)",
           "special case G = C_in, C_out = nC_in (seed 000); 9CHW for 3×3, n = 1")
def depthwise_conv(C=C, H=H, W=W, K=K, n=1):
    net = Net("depthwise_conv")
    conv2d(net.input(C, H, W), n * C, K, padding="same" if not is_int(K) else (K - 1) // 2, groups=C, bias=False,
           name="conv")
    return net.graph


# ---------------------------------------------------------------- residual blocks
@_register("basic", "ResNet basic block: 3×3 conv, BN, ReLU, 3×3 conv, BN, identity shortcut, ReLU "
           "(cnngraph.zoo.resnet.basic_block)", "Total FLOPs: 18HWC² (seed 000)")
def basic(C=C, H=H, W=W):
    net = Net("basic")
    basic_block(net.input(C, H, W), C, name="block")
    return net.graph


@_register("bottleneck", "ResNet bottleneck block, 4C in and out: 1×1 4C→C, 3×3 C→C, 1×1 C→4C, identity shortcut "
           "(cnngraph.zoo.resnet.bottleneck)", "Total FLOPs: 17HWC² (seed 000)")
def bottleneck(C=C, H=H, W=W):
    net = Net("bottleneck")
    zoo_bottleneck(net.input(4 * C, H, W), C, name="block")
    return net.graph


@_register("resnext_paths", "ResNeXt block as G parallel pathways of 1×1 4C→c, 3×3 c→c, 1×1 c→4C, summed, "
           "identity shortcut (cnngraph.zoo.resnext.pathways_block)", "(8Cc + 9c²)·HWG (seed 000)", count=("G", 1, 2))
def resnext_paths(C=C, H=H, W=W, c=c, G=G):
    net = Net("resnext_paths")
    pathways_block(net.input(4 * C, H, W), C, groups=G, base_width=_base_width(c, C), name="block")
    return net.graph


def _base_width(c, C):
    """torchvision's ``width_per_group`` that gives pathways of width c in a block of planes C."""
    return 64 * c // C if is_int(c) and is_int(C) and (64 * c) % C == 0 else sympy.sympify(64) * c / C


@_register("resnext_grouped", "ResNeXt block with a grouped 3×3: 1×1 4C→Gc, 3×3 Gc→Gc groups=G, 1×1 Gc→4C "
           "(cnngraph.zoo.resnet.bottleneck with groups=G, base_width=64c/C)", "(8Cc + 9c²)·HWG (seed 000)")
def resnext_grouped(C=C, H=H, W=W, c=c, G=G):
    net = Net("resnext_grouped")
    zoo_bottleneck(net.input(4 * C, H, W), C, groups=G, base_width=_base_width(c, C), name="block")
    return net.graph


@_register("preact", "pre-activation ResNet block: BN, ReLU, 3×3 conv, BN, ReLU, 3×3 conv, identity shortcut "
           "(cnngraph.zoo.preact.preact_basic_block)", "ReLU inside the residual (seed 000); 18HWC² like the basic block")
def preact(C=C, H=H, W=W):
    net = Net("preact")
    preact_basic_block(net.input(C, H, W), C, name="block")
    return net.graph


# ---------------------------------------------------------------- efficient blocks
@_register("standard", "standard convolution block: 3×3 conv C→C, BN, ReLU (cnngraph.zoo.mobile.conv_bn_act)",
           "Total cost: 9C²HW (seed 000)")
def standard(C=C, H=H, W=W):
    net = Net("standard")
    conv_bn_act(net.input(C, H, W), C, 3, name="block")
    return net.graph


@_register("separable", "depthwise-separable block (MobileNet): 3×3 depthwise conv, BN, ReLU, 1×1 pointwise C→C, "
           "BN, ReLU (cnngraph.zoo.mobile.depthwise_separable)", "Total cost: (9C + C²)HW (seed 000)")
def separable(C=C, H=H, W=W):
    net = Net("separable")
    depthwise_separable(net.input(C, H, W), C, name="block")
    return net.graph


@_register("inverted_residual", "MobileNet v2 inverted residual, stride 1, C in and out, expansion t: 1×1 C→tC, "
           "BN, ReLU6, 3×3 depthwise, BN, ReLU6, 1×1 tC→C, BN, identity shortcut", "MobileNetV2 (seed 000)")
def inverted_residual(C=C, H=H, W=W, t=t):
    net = Net("inverted_residual")
    x = net.input(C, H, W)
    y = relu6(batchnorm(conv2d(x, t * C, 1, bias=False, name="expand"), name="bn1"), name="relu1")
    y = relu6(batchnorm(conv2d(y, t * C, 3, padding=1, groups=t * C, bias=False, name="depthwise"), name="bn2"),
              name="relu2")
    y = batchnorm(conv2d(y, C, 1, bias=False, name="project"), name="bn3")
    add(y, x, name="add")
    return net.graph


@_register("se", "squeeze-and-excitation on a C×H×W map: global average pool, 1×1 conv C→C/r, ReLU, 1×1 conv "
           "C/r→C, sigmoid, channel-wise multiply (cnngraph.zoo.senet.se_module)",
           "global pooling, fully-connected layers, multiply back (seed 000)")
def se(C=C, H=H, W=W, r=r):
    net = Net("se")
    se_module(net.input(C, H, W), r)
    return net.graph


@_register("inception", "Inception module as in the paper: 1×1 c_1 | 1×1 c_3r → 3×3 c_3 | 1×1 c_5r → 5×5 c_5 | "
           "3×3 max pool → 1×1 c_p, conv with bias and ReLU, concat (cnngraph.zoo.inception.inception_module, bn=False)",
           "parallel branches, 1×1 bottlenecks (seeds 000, 004); Table 1 (3a): 128M ops")
def inception(C=C, H=H, W=W, c_1=sym("c_1"), c_3r=sym("c_3r"), c_3=sym("c_3"), c_5r=sym("c_5r"), c_5=sym("c_5"),
              c_p=sym("c_p")):
    net = Net("inception")
    inception_module(net.input(C, H, W), c_1, c_3r, c_3, c_5r, c_5, c_p, k5=5, bn=False, name="block")
    return net.graph


@_register("dense_layer", "DenseNet-BC layer on C channels, growth k: BN, ReLU, 1×1 C→4k, BN, ReLU, 3×3 4k→k "
           "(cnngraph.zoo.densenet.dense_layer; its k new maps are the output, the block concatenates)",
           "each layer connected to every other (seed 000)")
def dense_layer(C=C, H=H, W=W, k=k):
    net = Net("dense_layer")
    zoo_dense_layer([net.input(C, H, W)], k, name="layer")
    return net.graph


@_register("dense_block", "DenseNet-BC dense block of L layers on C channels, growth k (C + Lk out) "
           "(cnngraph.zoo.densenet.dense_block)", "dense block (seed 000)", count=("L", 2, 1))
def dense_block(C=C, H=H, W=W, k=k, L=L):
    net = Net("dense_block")
    zoo_dense_block(net.input(C, H, W), L, k, name="block")
    return net.graph


# ---------------------------------------------------------------- the Block object
@dataclass
class Block:
    """A named block's graph and formulas (see :mod:`cnngraph.formulas.core` for the convention)."""

    name: str
    summary: str
    seed: str
    sizes: dict
    graph: object
    cost: Formula
    macs: Formula
    params: Formula
    memory: Formula
    receptive: Field
    layers: list
    include: tuple = ()
    notes: list = field(default_factory=list)

    @property
    def receptive_field(self) -> Field:
        """The receptive field of the block's output (alias of ``receptive``)."""
        return self.receptive

    @property
    def convention(self) -> str:
        return convention_text(self.include)

    def at(self, **values) -> dict:
        """Numbers at given sizes: ``block("basic").at(C=64, H=56, W=56)["cost"]``."""
        return {f: getattr(self, f)(**values) for f in ("cost", "macs", "params", "memory")}

    def to(self, fmt: str = "text") -> str:
        from cnngraph.formulas.report import block_text

        return block_text(self, fmt)

    def __str__(self):
        return self.to("text")

    def _repr_latex_(self):
        from cnngraph.formulas.report import block_latex

        return "$$" + block_latex(self) + "$$"


def names() -> list:
    return list(BLOCKS)


def _spec(name: str) -> Spec:
    key = name.replace("-", "_").lower()
    if key not in BLOCKS:
        raise CnnGraphError(f"unknown block {name!r}; known blocks: {', '.join(BLOCKS)}")
    return BLOCKS[key]


def block(name: str, include=(), **sizes) -> Block:
    """The named block with its formulas; ``sizes`` override the default symbols.

    ``include`` adds the operations of other kinds (``norm``, ``act``, ``merge``, ``pool``) to
    ``cost`` (and batch-norm parameters to ``params``): the slides count conv MACs only.
    """
    spec = _spec(name)
    include = check_include(include)
    bad = set(sizes) - set(spec.defaults)
    if bad:
        raise CnnGraphError(f"block {spec.name}: unknown size {sorted(bad)[0]!r}; sizes: {', '.join(spec.defaults)}")
    return _derive(spec.name, include, tuple(sorted(((k, as_expr(v, k)) for k, v in sizes.items()),
                                                    key=lambda kv: kv[0])))


@functools.lru_cache(maxsize=256)
def _derive(name, include, sizes_key) -> Block:
    spec = BLOCKS[name]
    sizes = {**spec.defaults, **{k: (int(v) if v.is_Integer else v) for k, v in sizes_key}}
    notes = []
    if spec.count and not is_int(sizes[spec.count[0]]):
        cname, degree, first = spec.count
        n_sym = sizes[cname]
        f = over_count(lambda m, values=None: spec.build(**{**sizes, **(values or {}), cname: m}), n_sym, degree,
                       include=include, start=first)
        lo, hi = f["counts"][0], f["counts"][-1]
        graph = f["graph"]
        notes.append(f"{cname} is symbolic: the formulas interpolate graphs with {cname} = {lo}..{hi - 1} "
                     f"(a polynomial of degree {degree} in {cname}), checked against {cname} = {hi}; they hold for "
                     f"{cname} ≥ {lo}; the graph, per-layer costs and receptive field shown are for {cname} = {lo}")
    else:
        graph = spec.build(**sizes)
        f = costs(graph, include)
    return Block(spec.name, spec.summary, spec.seed, sizes, graph, f["cost"], f["macs"], f["params"], f["memory"],
                 receptive_field(graph), f["layers"], include, notes)
