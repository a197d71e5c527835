"""ResNeXt: Xie, Girshick, Dollár, Tu & He, "Aggregated residual transformations for deep neural
networks", CVPR 2017 (seed 000: "G parallel pathways", "ResNeXt: maintain computation by
adding groups!").

The block comes in the two forms the seeds draw, chosen with ``form=``:

* ``"grouped"`` — torchvision's: 1×1 conv 4C → Gc, 3×3 conv Gc → Gc with ``groups=G``,
  1×1 conv Gc → 4C (module names as torchvision's ResNeXt);
* ``"pathways"`` — G parallel pathways ``path0``..``path{G-1}``, each 1×1 (4C → c), 3×3
  (c → c), 1×1 (c → 4C), whose outputs are summed (``sum``).

The two forms are the same function when batch norm sits as follows: ``bn1`` and ``bn2``
normalize each channel on its own, so the grouped form's BN over Gc channels is exactly G
BNs over c channels, one per pathway (``pathI.bn1``, ``pathI.bn2``). The last 1×1 conv of
the grouped form reads all Gc channels, and a 1×1 conv over concatenated channels is the sum
of the 1×1 convs over each part: so the pathways' ``conv3`` have no BN and no bias, and a
single ``bn3`` over 4C follows their sum. :func:`pathways_weights_from_grouped` maps weights
of one form to the other (and :func:`grouped_weights_from_pathways` back).

Both forms have the same parameters and multiply-adds, (8Cc + 9c²)·HW·G per block at stride
1 (seed 000); the pathways form only adds the G − 1 sums' element-wise additions.

Models: torchvision's ``resnext50_32x4d``, ``resnext101_32x8d``, ``resnext101_64x4d``, and the
seed's table of ResNeXt-50/101 at about the cost of ResNet-50/101 — (G, c) = (1, 64), (2, 40),
(4, 24), (8, 14), (32, 4): ``resnext50_1x64d`` (= ResNet-50), ``resnext50_2x40d``, ...,
``resnext101_32x4d``.

>>> from cnngraph import zoo, analyze
>>> g = zoo.build("resnext50_4x24d", form="pathways")
>>> g.nodes["layer1.0.path3.conv2"]["shape"]
(24, 56, 56)
"""
from __future__ import annotations

import numpy as np

from cnngraph.dsl import Net, add, batchnorm, block, conv2d, relu, scope
from cnngraph.ir.errors import CnnGraphError

from cnngraph.zoo import register
from cnngraph.zoo.resnet import (EXPANSION, _shortcut, bottleneck_depth, bottleneck, bottleneck_width, check_variant, classifier, conv_bn,
                     stages, stem)

FORMS = ("grouped", "pathways")


def pathways_branch(x, planes, stride=1, groups=1, base_width=64, variant="torchvision"):
    """The residual branch as G pathways of width c = planes·base_width/64, summed, then ``bn3``."""
    c = bottleneck_width(planes, 1, base_width)
    s1, s3 = (1, stride) if variant == "torchvision" else (stride, 1)
    outs = []
    for i in range(groups):
        with scope(f"path{i}", "pathway"):
            y = conv_bn(x, c, 1, s1, conv="conv1", bn="bn1", act_name="relu1")
            y = conv_bn(y, c, 3, s3, conv="conv2", bn="bn2", act_name="relu2")
            outs.append(conv2d(y, planes * EXPANSION, 1, bias=False, name="conv3"))
    y = outs[0] if groups == 1 else add(*outs, name="sum")
    return batchnorm(y, name="bn3")


@block("ResNeXtPathways")
def pathways_block(x, planes, stride=1, groups=1, base_width=64, variant="torchvision"):
    """A ResNeXt block drawn as G parallel pathways (seed 000, "G parallel pathways")."""
    y = pathways_branch(x, planes, stride, groups, base_width, variant)
    return relu(add(y, _shortcut(x, planes * EXPANSION, stride), name="add"), name="relu")


def resnext_block(x, planes, stride=1, groups=32, base_width=4, form="grouped", variant="torchvision", name=None):
    """A ResNeXt block in either form; ``form="grouped"`` is torchvision's ``Bottleneck``."""
    if form == "grouped":
        return bottleneck(x, planes, stride, groups, base_width, variant, name=name)
    if form == "pathways":
        return pathways_block(x, planes, stride, groups, base_width, variant, name=name)
    raise CnnGraphError(f"form must be one of {FORMS}, got {form!r}")


def resnext(input=(3, 224, 224), depth: int = 50, groups: int = 32, width_per_group: int = 4, form: str = "grouped",
            num_classes: int = 1000, variant: str = "torchvision", title: str | None = None):
    """ImageNet ResNeXt-``depth`` with cardinality ``groups`` and group width ``width_per_group``
    in the first stage (doubling per stage, like every width of a ResNet)."""
    layers = bottleneck_depth(depth, "ResNeXt")
    check_variant(variant)
    if form not in FORMS:
        raise CnnGraphError(f"form must be one of {FORMS}, got {form!r}")

    def block_fn(x, planes, stride, name):
        return resnext_block(x, planes, stride, groups, width_per_group, form, variant, name=name)

    net = Net(title or f"resnext{depth}_{groups}x{width_per_group}d", form=form, variant=variant)
    x = stem(net.input(*input), 64)
    x = stages(x, layers, block_fn, 64)
    classifier(x, num_classes)
    return net.graph


for _name, _d, _g, _c in (("resnext50_32x4d", 50, 32, 4), ("resnext101_32x8d", 101, 32, 8),
                          ("resnext101_64x4d", 101, 64, 4)):
    register(_name, (3, 224, 224), f"ResNeXt-{_d} {_g}×{_c}d (torchvision's {_name})", family="resnext",
             depth=_d, groups=_g, width_per_group=_c, title=_name)(resnext)

# The seed's table (Xie et al. 2017, Tables 2-3): cardinality × group width at about the cost of ResNet-50/101.
SEED_VARIANTS = ((1, 64), (2, 40), (4, 24), (8, 14), (32, 4))
for _d in (50, 101):
    for _g, _c in SEED_VARIANTS:
        _name = f"resnext{_d}_{_g}x{_c}d"
        if _name not in ("resnext50_32x4d",):
            register(_name, (3, 224, 224), f"ResNeXt-{_d} {_g}×{_c}d (the seed's table; Xie et al. 2017)",
                     family="resnext", depth=_d, groups=_g, width_per_group=_c, title=_name)(resnext)


# ---------------------------------------------------------------- weights between the forms
def _grouped_blocks(g):
    """Prefixes ``P`` of the bottlenecks whose ``P.conv2`` a pathway split applies to: the
    chain conv1 → bn1 → relu1 → conv2 → bn2 → relu2 → conv3 → bn3, with a 3×3 ``conv2``."""
    found = []
    for n, d in g.nodes(data=True):
        if d["op"] != "conv2d" or not n.endswith(".conv2"):
            continue
        p = n[: -len(".conv2")]
        chain = [f"{p}.{k}" for k in ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3")]
        if all(k in g for k in chain) and all(g.nodes[b]["inputs"] == [a] for a, b in zip(chain, chain[1:])) \
                and tuple(d["attrs"]["kernel"]) == (3, 3):
            found.append((p, int(d["attrs"]["groups"])))
    return found


_BN = ("weight", "bias", "running_mean", "running_var")


def pathways_weights_from_grouped(graph_g, weights: dict) -> dict:
    """Weights for the ``form="pathways"`` twin of ``graph_g`` from the grouped form's weights.

    Pathway i takes output channels [i·c, (i+1)·c) of ``conv1``/``bn1``/``conv2``/``bn2``
    and input channels [i·c, (i+1)·c) of ``conv3``; ``bn3``, the shortcut, the stem and the
    classifier are shared unchanged.

    >>> from cnngraph import zoo
    >>> from cnngraph.compiler import weights
    >>> g = zoo.build("resnext50_2x40d", input=(3, 64, 64))
    >>> ws = pathways_weights_from_grouped(g, weights.init(g, seed=0))
    >>> ws["layer1.0.path1.conv3.weight"].shape
    (256, 40, 1, 1)
    """
    out = dict(weights)
    for p, G in _grouped_blocks(graph_g):
        w1, w2, w3 = (weights[f"{p}.{k}.weight"] for k in ("conv1", "conv2", "conv3"))
        if w2.shape[0] % G or w2.shape[1] * G != w2.shape[0]:
            raise CnnGraphError(f"{p}.conv2: weight {w2.shape} is not a {G}-group 3×3 conv of equal width in and out")
        c = w2.shape[0] // G
        for k in ("conv1", "conv2", "conv3"):
            del out[f"{p}.{k}.weight"]
        for bn in ("bn1", "bn2"):
            for f in _BN:
                out.pop(f"{p}.{bn}.{f}", None)
        for i in range(G):
            part = slice(i * c, (i + 1) * c)
            q = f"{p}.path{i}"
            out[f"{q}.conv1.weight"] = np.ascontiguousarray(w1[part])
            out[f"{q}.conv2.weight"] = np.ascontiguousarray(w2[part])
            out[f"{q}.conv3.weight"] = np.ascontiguousarray(w3[:, part])
            for bn in ("bn1", "bn2"):
                for f in _BN:
                    key = f"{p}.{bn}.{f}"
                    if key in weights:
                        out[f"{q}.{bn}.{f}"] = np.ascontiguousarray(weights[key][part])
    return out


def grouped_weights_from_pathways(graph_p, weights: dict) -> dict:
    """The inverse of :func:`pathways_weights_from_grouped`: concatenate the pathways back."""
    out = dict(weights)
    heads = sorted({n[: -len(".path0.conv2")] for n in graph_p if n.endswith(".path0.conv2")})
    for p in heads:
        G = 0
        while f"{p}.path{G}.conv2" in graph_p:
            G += 1
        paths = [f"{p}.path{i}" for i in range(G)]
        for k, axis in (("conv1", 0), ("conv2", 0), ("conv3", 1)):
            out[f"{p}.{k}.weight"] = np.concatenate([weights[f"{q}.{k}.weight"] for q in paths], axis=axis)
        for bn in ("bn1", "bn2"):
            for f in _BN:
                if f"{paths[0]}.{bn}.{f}" in weights:
                    out[f"{p}.{bn}.{f}"] = np.concatenate([weights[f"{q}.{bn}.{f}"] for q in paths])
        for q in paths:
            for k in ("conv1", "conv2", "conv3"):
                out.pop(f"{q}.{k}.weight", None)
            for bn in ("bn1", "bn2"):
                for f in _BN:
                    out.pop(f"{q}.{bn}.{f}", None)
    return out
