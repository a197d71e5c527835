"""The ResNet family of the zoo: pre-activation, CIFAR (option A) and plain, wide, ResNeXt in
both forms, SE. Expected integers are derived here from first principles (layer by layer,
independently of the DSL) and set beside the papers' rounded figures and the published
counts of reference implementations. torchvision parity lives in test_torchvision_parity.py.
"""
import time

import numpy as np
import pytest
import sympy

from cnngraph import analyze, zoo
from cnngraph.compiler import weights
from cnngraph.dsl import Net
from cnngraph.ir.errors import CnnGraphError, ShapeError
from cnngraph.ir.symbols import H, W, c, h, sym, w
from cnngraph.zoo.resnext import (SEED_VARIANTS, grouped_weights_from_pathways, pathways_weights_from_grouped,
                                  resnext_block)

FAMILIES = ("resnet", "wide_resnet", "preact_resnet", "resnet_cifar", "resnext", "senet")


def _names():
    return [n for n in zoo.names() if zoo.info(n).family in FAMILIES]


def _totals(name, **kw):
    t = analyze(zoo.build(name, **kw)).total
    return t.params, t.macs


# ---------------------------------------------------------------- first-principles counts
def cifar_counts(n):
    """He et al.'s CIFAR ResNet with 6n+2 layers, option A: (params, MACs), layer by layer."""
    params = 3 * 16 * 9 + 2 * 16  # stem conv + BN
    macs = 16 * 3 * 9 * 32 * 32
    cin, hw = 16, 32
    for s, cout in enumerate((16, 32, 64)):
        for b in range(2 * n):  # 2n conv layers per stage
            stride = 2 if (s > 0 and b == 0) else 1
            hw //= stride
            params += cin * cout * 9 + 2 * cout
            macs += cout * cin * 9 * hw * hw
            cin = cout
    return params + 64 * 10 + 10, macs + 64 * 10


def bottleneck_counts(layers, groups=1, base_width=64, variant="torchvision", se=0, preact=False, stem_bn=True,
                      stage_in=(64, 56)):
    """An ImageNet bottleneck network at 224×224: (params, MACs), block by block."""
    params = 64 * 3 * 49 + (2 * 64 if stem_bn else 0)
    macs = 64 * 3 * 49 * 112 * 112
    cin, hw = stage_in
    for s, n in enumerate(layers):
        planes = 64 * 2**s
        width, out = planes * base_width // 64 * groups, planes * 4
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            ho = hw // stride
            h1 = hw if variant == "torchvision" else ho  # where conv1 writes
            params += cin * width + width * (width // groups) * 9 + width * out
            macs += cin * width * h1 * h1 + width * (width // groups) * 9 * ho * ho + width * out * ho * ho
            params += 2 * (cin + 2 * width) if preact else 2 * (2 * width + out)
            if stride != 1 or cin != out:
                params += cin * out + (0 if preact else 2 * out)
                macs += cin * out * ho * ho
            if se:
                r = out // se
                params += 2 * out * r + r + out
                macs += 2 * out * r
            cin, hw = out, ho
    if preact:
        params += 2 * cin  # bn_final
    return params + cin * 1000 + 1000, macs + cin * 1000


# ---------------------------------------------------------------- CIFAR ResNets and plain nets
# He et al. 2015, Table 6 (params); ours exact, = 97,216·n − 21,926.
CIFAR = {20: (269_722, "0.27M"), 32: (464_154, "0.46M"), 44: (658_586, "0.66M"), 56: (853_018, "0.85M"),
         110: (1_727_962, "1.7M"), 1202: (19_421_274, "19.4M")}


@pytest.mark.parametrize("depth", sorted(CIFAR))
def test_cifar_resnet_params_and_macs_exact(depth):
    n = (depth - 2) // 6
    exact, paper = CIFAR[depth]
    params, macs = _totals(f"resnet{depth}")
    assert (params, macs) == cifar_counts(n)
    assert params == exact == 97_216 * n - 21_926
    assert macs == 2_359_296 * (6 * n - 1) + 443_008
    digits = 2 if paper.startswith("0.") else 1
    assert f"{params / 1e6:.{digits}f}M" == paper


def test_option_a_shortcut_has_no_parameters():
    g = zoo.build("resnet20")
    r = analyze(g)
    sc = r.row("layer2.0.shortcut")
    assert sc.op == "pad_channels" and sc.output_shape == (32, 16, 16) and sc.params == 0
    assert sc.input_shapes == [(16, 32, 32)]
    assert r.row("layer3.0.shortcut").output_shape == (64, 8, 8)
    assert g.nodes["layer2.0.add"]["inputs"] == ["layer2.0.bn2", "layer2.0.shortcut"]
    # Option B: projections where the shape changes, 2 per net: 16·32 + 2·32 and 32·64 + 2·64.
    assert _totals("resnet20", shortcut="B")[0] == 269_722 + 16 * 32 + 64 + 32 * 64 + 128


def test_plain_nets_are_the_resnets_without_shortcuts():
    for d in (20, 56):
        plain, res = zoo.build(f"plain{d}"), zoo.build(f"resnet{d}")
        assert _totals(f"plain{d}") == _totals(f"resnet{d}")
        assert weights.param_shapes(plain) == weights.param_shapes(res)  # same state_dict
        assert not [n for n, a in plain.nodes(data=True) if a["op"] in ("add", "pad_channels")]
        assert len([n for n, a in res.nodes(data=True) if a["op"] == "add"]) == 3 * (d - 2) // 6
        assert sum(a["op"] == "conv2d" for _, a in plain.nodes(data=True)) + 1 == d  # + the FC


def test_cifar_totals_are_polynomials_in_h_w():
    for name in ("resnet20", "resnet110", "plain56", "wrn28_10", "preact_resnet164"):
        r = analyze(zoo.build(name, input=(3, 32 * h, 32 * w)))
        for v in (r.total.macs, r.total.memory_bytes):
            assert sympy.Poly(v, h, w).as_expr() == v, (name, v)
        assert r.total.params == analyze(zoo.build(name)).total.params
    n = 3
    r = analyze(zoo.build("resnet20", input=(3, 32 * h, 32 * w)))
    assert sympy.expand(r.total.macs - ((2_359_296 * (6 * n - 1) + 442_368) * h * w + 640)) == 0


def test_pad_channels_errors_name_the_layer():
    from cnngraph.dsl import pad_channels

    net = Net("t")
    x = net.input(16, 32, 32)
    with pytest.raises(ShapeError, match=r"pad: pad_channels needs non-negative padding.*after=-4"):
        pad_channels(x, -4, 2, name="pad")
    with pytest.raises(ShapeError, match="pad_channels needs a C×H×W"):
        pad_channels(Net("v").input(10), 4)
    assert pad_channels(x, 16, 2, before=8, name="ok").shape == (40, 16, 16)
    assert pad_channels(Net("o").input(3, 33, 17), 1, 2).shape == (4, 17, 9)  # ceil, as x[:, :, ::2, ::2]
    with pytest.raises(CnnGraphError, match="6n\\+2 layers"):
        zoo.build("resnet20", depth=21)


def test_resnet1202_builds_and_analyzes_fast():
    zoo.names()
    best = {}
    for name in ("resnet152", "resnet1202"):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            analyze(zoo.build(name))
            times.append(time.perf_counter() - t)
        best[name] = min(times)
    assert best["resnet1202"] < 2.0, best
    print(f"build+analyze: resnet1202 {best['resnet1202']:.3f} s, resnet152 {best['resnet152']:.3f} s, "
          f"ratio {best['resnet1202'] / best['resnet152']:.1f}")


# ---------------------------------------------------------------- pre-activation ResNets
def test_preact_imagenet_counts():
    # Bare stem (Big Transfer / timm ResNetV2 layout): BiT-S R50x1 25,549,352; R101x1 44,541,480.
    for d, layers in ((50, [3, 4, 6, 3]), (101, [3, 4, 23, 3]), (152, [3, 8, 36, 3]), (200, [3, 24, 36, 3])):
        expect = bottleneck_counts(layers, preact=True, stem_bn=False)
        assert _totals(f"preact_resnet{d}") == expect
        assert _totals(f"preact_resnet{d}")[1] == bottleneck_counts(layers)[1]  # same convs as ResNet v1.5
    assert _totals("preact_resnet50")[0] == 25_549_352
    assert _totals("preact_resnet101")[0] == 44_541_480
    # Stem with BN-ReLU (Gluon ResNetV2; osmr's imgclsmob PreResNet-18/34/50/101/152/200b).
    published = {18: 11_687_848, 34: 21_796_008, 50: 25_549_480, 101: 44_541_608, 152: 60_185_256, 200: 64_666_280}
    for d, p in published.items():
        assert _totals(f"preact_resnet{d}", stem_bn=True)[0] == p
        assert _totals(f"preact_resnet{d}")[0] == p - 128


def test_preact_block_structure():
    g = zoo.build("preact_resnet50")
    # Full pre-activation (Fig. 4(e)): BN-ReLU before each conv, nothing after the addition.
    assert g.nodes["layer1.1.conv1"]["inputs"] == ["layer1.1.relu1"]
    assert g.nodes["layer1.1.relu1"]["inputs"] == ["layer1.1.bn1"]
    assert g.nodes["layer1.1.bn1"]["inputs"] == ["layer1.0.add"]
    assert [s for s in g.successors("layer4.2.add")] == ["bn_final"]
    # The projection reads the pre-activated input, and has no BN.
    assert g.nodes["layer2.0.downsample.0"]["inputs"] == ["layer2.0.relu1"]
    assert "layer2.0.downsample.1" not in g
    # The identity shortcut reads the block input itself.
    assert g.nodes["layer2.1.add"]["inputs"] == ["layer2.1.conv3", "layer2.0.add"]
    assert g.nodes["layer1.0.bn1"]["inputs"] == ["maxpool"] and g.nodes["maxpool"]["inputs"] == ["conv1"]


def test_preact_cifar_counts():
    # He et al. 2016b list 1.7M and 10.2M; Kaiming He's resnet-pre-act.lua, layer by layer:
    for depth, paper in ((164, "1.7M"), (1001, "10.2M")):
        n = (depth - 2) // 9
        params, cin = 3 * 16 * 9, 16
        for s, planes in enumerate((16, 32, 64)):
            for b in range(n):
                params += 2 * cin + cin * planes + 2 * planes + 9 * planes * planes + 2 * planes + planes * 4 * planes
                if b == 0:
                    params += cin * 4 * planes
                cin = 4 * planes
        params += 2 * cin + cin * 10 + 10
        r = analyze(zoo.build(f"preact_resnet{depth}"))
        assert r.total.params == params
        # The paper's figures are the conv weights: 1,676,464 and 10,175,920 (with BN and FC:
        # 1,703,258 "1.7M" and 10,327,706, which would round to 10.3M).
        conv = sum(row.params for row in r.rows if row.op == "conv2d")
        assert f"{conv / 1e6:.1f}M" == paper
    assert _totals("preact_resnet164")[0] == 1_703_258 and _totals("preact_resnet1001")[0] == 10_327_706


# ---------------------------------------------------------------- wide ResNets
def test_wrn28_10():
    params, macs = _totals("wrn28_10")
    assert params == 36_479_194 and f"{params / 1e6:.1f}M" == "36.5M"  # Zagoruyko & Komodakis: 36.5M
    # Layer by layer: stem, 4 pre-act blocks per stage, 1×1 projections, final BN, FC.
    p, m, cin, hw = 3 * 16 * 9, 16 * 27 * 32 * 32, 16, 32
    for s, k in enumerate((160, 320, 640)):
        for b in range(4):
            stride = 2 if (s > 0 and b == 0) else 1
            hw //= stride
            p += 2 * cin + 9 * cin * k + 2 * k + 9 * k * k
            m += (9 * cin * k + 9 * k * k) * hw * hw
            if b == 0:
                p += cin * k
                m += cin * k * hw * hw
            cin = k
    assert (params, macs) == (p + 2 * 640 + 6410, m + 6400)
    g = zoo.build("wrn28_10", dropout_p=0.3)
    assert g.nodes["layer2.3.dropout"]["attrs"]["p"] == 0.3
    assert _totals("wrn28_10", dropout_p=0.3) == (params, macs)


def test_torchvision_wide_resnets_double_the_inner_width():
    g = zoo.build("wide_resnet50_2")
    assert g.nodes["layer1.0.conv2"]["shape"] == (128, 56, 56)
    assert g.nodes["layer1.0.conv3"]["shape"] == (256, 56, 56)
    assert _totals("wide_resnet50_2") == bottleneck_counts([3, 4, 6, 3], base_width=128)
    assert _totals("wide_resnet101_2") == bottleneck_counts([3, 4, 23, 3], base_width=128)


# ---------------------------------------------------------------- ResNeXt
RESNET_MACS = {50: 4_089_184_256, 101: 7_801_405_440}  # torchvision resnet50/101 (test_torchvision_parity)
LAYERS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}


@pytest.mark.parametrize("depth", [50, 101])
@pytest.mark.parametrize("groups,gw", SEED_VARIANTS)
def test_resnext_seed_variants_both_forms_equal(depth, groups, gw):
    name = f"resnext{depth}_{groups}x{gw}d"
    grouped = analyze(zoo.build(name))
    gp = zoo.build(name, form="pathways")
    paths = analyze(gp)
    expect = bottleneck_counts(LAYERS[depth], groups, gw)
    assert (grouped.total.params, grouped.total.macs) == expect
    assert (paths.total.params, paths.total.macs) == expect
    # "About the same" cost as ResNet-50/101: within 5% here (8×14d is the dearest, +4.4%).
    assert abs(grouped.total.macs / RESNET_MACS[depth] - 1) < 0.05
    # Only the pathway sums add work: (G − 1) additions per output element of each block.
    extra = sum(r.costs.all_ops for r in paths.rows if r.name.endswith(".sum"))
    assert paths.total.all_ops - grouped.total.all_ops == extra
    # Systematic pathway names, for weight converters and diagrams.
    for i in range(groups):
        for k in ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3"):
            assert f"layer3.1.path{i}.{k}" in gp
    assert gp.nodes[f"layer1.0.path{groups - 1}.conv2"]["shape"] == (gw, 56, 56)


def test_resnext_torchvision_models_both_forms():
    for name, layers, g_, gw in (("resnext50_32x4d", [3, 4, 6, 3], 32, 4), ("resnext101_32x8d", [3, 4, 23, 3], 32, 8),
                                 ("resnext101_32x4d", [3, 4, 23, 3], 32, 4)):
        expect = bottleneck_counts(layers, g_, gw)
        assert _totals(name) == expect
        assert _totals(name, form="pathways") == expect
    assert _totals("resnext101_32x4d")[0] == 44_177_704  # Cadene's / Xie et al.'s ResNeXt-101 32×4d
    assert _totals("resnext50_1x64d") == _totals("resnet50")


@pytest.mark.parametrize("G", [1, 4, 32])
def test_resnext_block_cost_is_the_seed_formula(G):
    """Seed 000: a block with 4C in and out costs (8Cc + 9c²)·HW·G multiply-adds in both forms."""
    C = sym("C")
    for form in ("grouped", "pathways"):
        net = Net("block")
        x = net.input(4 * C, H, W)
        resnext_block(x, C, 1, G, 64 * c / C, form, name="b")
        r = analyze(net.graph)
        assert sympy.expand(r.total.macs - (8 * C * c + 9 * c**2) * H * W * G) == 0, form
        assert sympy.expand(r.total.params - (G * (8 * C * c + 9 * c**2 + 4 * c) + 8 * C)) == 0, form


def test_pathways_weights_from_grouped_give_the_same_function():
    torch = pytest.importorskip("torch")
    name = "resnext50_32x4d"
    size = (3, 32, 32)
    gg, gp = zoo.build(name, input=size), zoo.build(name, input=size, form="pathways")
    wg = weights.init(gg, seed=1, random_bn=True)
    wp = pathways_weights_from_grouped(gg, wg)
    weights.check(gp, wp)  # exactly the pathway graph's names and shapes
    back = grouped_weights_from_pathways(gp, wp)
    assert back.keys() == wg.keys() and all(np.array_equal(back[k], wg[k]) for k in wg)
    from cnngraph.interop.torch_ref import to_torch

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, *size)))
    with torch.no_grad():
        yg = to_torch(gg, wg, dtype=torch.float64)(x).numpy()
        yp = to_torch(gp, wp, dtype=torch.float64)(x).numpy()
    assert np.max(np.abs(yg - yp)) <= 1e-9 * np.max(np.abs(yg))


def test_resnet20_option_a_matches_an_independent_pytorch_model():
    """The graph, run by the PyTorch reference, against the paper's ResNet-20 written directly."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    from cnngraph.interop.torch_ref import to_torch

    g = zoo.build("resnet20")
    ws = weights.init(g, seed=3, random_bn=True)
    t = {k: torch.from_numpy(v).double() for k, v in ws.items()}

    def conv_bn(x, p, stride=1):
        x = F.conv2d(x, t[f"{p.replace('bn', 'conv')}.weight"], stride=stride, padding=1)
        return F.batch_norm(x, t[f"{p}.running_mean"], t[f"{p}.running_var"], t[f"{p}.weight"], t[f"{p}.bias"])

    def forward(x):
        x = F.relu(conv_bn(x, "bn1"))
        for s in range(3):
            for b in range(3):
                p, stride = f"layer{s + 1}.{b}", 2 if (s and not b) else 1
                y = F.relu(conv_bn(x, f"{p}.bn1", stride))
                y = conv_bn(y, f"{p}.bn2")
                if stride == 2:  # option A: subsample, zero channels appended
                    x = torch.cat([x[:, :, ::2, ::2], torch.zeros_like(x[:, :, ::2, ::2])], 1)
                x = F.relu(y + x)
        return F.linear(x.mean((2, 3)), t["fc.weight"], t["fc.bias"])

    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 3, 32, 32)))
    with torch.no_grad():
        ours, direct = to_torch(g, ws, dtype=torch.float64)(x), forward(x)
    assert torch.max(torch.abs(ours - direct)) <= 1e-9 * torch.max(torch.abs(direct))


def test_weight_converter_leaves_other_blocks_alone():
    g = zoo.build("preact_resnet50", input=(3, 64, 64))  # pre-act bottlenecks are not the grouped chain
    ws = weights.init(g, seed=0)
    assert pathways_weights_from_grouped(g, ws).keys() == ws.keys()
    g = zoo.build("se_resnext50_32x4d", input=(3, 64, 64))
    ws = pathways_weights_from_grouped(g, weights.init(g, seed=0))
    assert ws["layer1.0.path31.conv3.weight"].shape == (256, 4, 1, 1)
    assert ws["layer1.0.se.fc1.weight"].shape == (16, 256, 1, 1)
    with pytest.raises(CnnGraphError, match="form must be one of"):
        zoo.build("resnext50_32x4d", form="parallel")


# ---------------------------------------------------------------- SE
def test_se_resnets_published_counts():
    published = {"se_resnet50": (28_088_024, [3, 4, 6, 3], 1, 64, "paper"),
                 "se_resnet101": (49_326_872, [3, 4, 23, 3], 1, 64, "paper"),
                 "se_resnet152": (66_821_848, [3, 8, 36, 3], 1, 64, "paper"),
                 "se_resnext50_32x4d": (27_559_896, [3, 4, 6, 3], 32, 4, "torchvision"),
                 "se_resnext101_32x4d": (48_955_416, [3, 4, 23, 3], 32, 4, "torchvision")}
    for name, (p, layers, g_, gw, variant) in published.items():
        assert _totals(name) == bottleneck_counts(layers, g_, gw, variant, se=16), name
        assert _totals(name)[0] == p, name
    # SE adds 9.9% parameters but 0.065% multiply-adds to ResNet-50 (paper variant: 3.86 → 3.86 G).
    assert _totals("se_resnet50")[1] == 3_860_488_192 == _totals("resnet50_paper")[1] + 2_514_944
    assert _totals("se_resnext50_32x4d")[1] == 4_232_994_816 == _totals("resnext50_32x4d")[1] + 2_514_944


def test_se_block_structure():
    g = zoo.build("se_resnet50")
    assert g.nodes["layer1.0.se.fc1"]["shape"] == (16, 1, 1)
    assert g.nodes["layer4.2.se.fc1"]["shape"] == (128, 1, 1)
    assert g.nodes["layer1.0.se.scale"]["inputs"] == ["layer1.0.bn3", "layer1.0.se.scale_activation"]
    assert g.nodes["layer1.0.add"]["inputs"] == ["layer1.0.se.scale", "layer1.0.downsample.1"]
    assert g.nodes["layer2.0.conv1"]["attrs"]["stride"] == (2, 2)  # the Caffe models' stride
    assert zoo.build("se_resnet50", variant="torchvision").nodes["layer2.0.conv2"]["attrs"]["stride"] == (2, 2)


# ---------------------------------------------------------------- every model, symbolically
@pytest.mark.parametrize("name", _names())
def test_every_model_builds_symbolically(name):
    m = zoo.info(name)
    small = m.input[1] == 32
    sym_in = (3, 32 * h, 32 * w) if small else (3, H, W)
    r = analyze(zoo.build(name, input=sym_in))
    num = analyze(zoo.build(name)).total
    at = {h: 1, w: 1} if small else {H: m.input[1], W: m.input[2]}
    assert r.total.params == num.params
    assert r.total.macs.subs(at) == num.macs
    assert r.total.memory_bytes.subs(at) == num.memory_bytes
