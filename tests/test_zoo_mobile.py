"""Efficient networks: MobileNet v1 against its paper, the seeds' depthwise-separable block in
closed form, EfficientNet's compound scaling, ShuffleNet v2's units, NASNet-A Mobile against
the PyTorch port and the paper, and symbolic inputs for every model.

torchvision parity (params, hook-counted MACs, buffers, every state_dict name and shape) of
mobilenet_v2/v3, shufflenet_v2_* and efficientnet_b0-b7 is in test_torchvision_parity.py,
from the JSONs in tests/reference/torchvision/.
"""
import json
import math
from pathlib import Path

import pytest
import sympy

from cnngraph import analyze, zoo
from cnngraph.dsl import Net, conv2d
from cnngraph.ir.errors import CnnGraphError, ShapeError
from cnngraph.ir.symbols import C, H, W, h, w
from cnngraph.compiler.weights import param_shapes
from cnngraph.zoo.efficientnet import (ALPHA, B0_STAGES, BETA, EFFICIENTNET_SCALING, GAMMA, compound_scaling,
                                       implied_phi, scaled_stages)
from cnngraph.zoo.mobile import MOBILENET_V1_BLOCKS, depthwise_separable, make_divisible, shuffle_unit
from cnngraph.zoo.nasnet import same_padding

REF = Path(__file__).parent / "reference"
FAMILIES = ("mobilenet", "shufflenet", "efficientnet", "nasnet")


# ---------------------------------------------------------------- MobileNet v1 (Howard et al. 2017)
def v1_first_principles(alpha=1.0, resolution=224, full_conv=False, shallow=False):
    """(multiply-adds, weights) of MobileNet v1 counted by hand from the paper's Table 1:
    conv and FC multiply-adds; conv and FC weights without biases or batch norm."""
    ch = lambda c: int(c * alpha)  # noqa: E731
    blocks = MOBILENET_V1_BLOCKS[:6] + MOBILENET_V1_BLOCKS[11:] if shallow else MOBILENET_V1_BLOCKS
    size = (resolution - 1) // 2 + 1  # 3×3 /2 stem, padding 1
    cin = ch(32)
    macs, weights = 27 * cin * size * size, 27 * cin
    for c, s in blocks:
        size = (size - 1) // s + 1
        cout = ch(c)
        per_pixel = 9 * cin * cout if full_conv else 9 * cin + cin * cout
        macs += per_pixel * size * size
        weights += per_pixel
        cin = cout
    return macs + cin * 1000, weights + cin * 1000


def paper_counts(g):
    """The paper's convention: MACs of convs and FC; params = conv and FC weights only."""
    r = analyze(g)
    weights = sum(v for k, (s, role) in param_shapes(g).items()
                  if role == "param" and k.endswith(".weight") and g.nodes[k.rsplit(".", 1)[0]]["op"] != "batchnorm"
                  for v in [math.prod(s)])
    return r.total.macs, weights


# (model options, paper's million mult-adds, paper's million params, our exact MACs, our exact weights)
MOBILENET_V1_PAPER = [
    (dict(), 569, 4.2, 568_740_352, 4_209_088),  # Tables 4, 6, 7, 8
    (dict(alpha=0.75), 325, 2.6, 325_400_448, 2_568_144),  # Table 6
    (dict(alpha=0.5), 149, 1.3, 149_497_088, 1_319_648),
    (dict(alpha=0.25), 41, 0.5, 41_030_272, 463_600),
    (dict(resolution=192), 418, 4.2, 418_121_728, 4_209_088),  # Table 7
    (dict(resolution=128), 186, 4.2, 186_400_768, 4_209_088),
    (dict(shallow=True), 307, 2.9, 307_323_392, 2_875_328),  # Table 5
]
# Where the paper's printed figure is not our count rounded to the nearest million:
# MobileNet-160 prints 290 (ours 290.68 M), 0.50 MobileNet-160 prints 76 (ours 76.52 M) — both
# truncated rather than rounded — and Conv MobileNet prints 4866 (ours 4867.29 M, 4866.27 M
# without the FC layer). Parameters match everywhere.
MOBILENET_V1_PAPER_OFF = [
    (dict(resolution=160), 290, 4.2, 290_675_200, 4_209_088),  # Table 7
    (dict(alpha=0.5, resolution=160), 76, 1.32, 76_524_800, 1_319_648),  # Tables 9, 10
    (dict(full_conv=True), 4866, 29.3, 4_867_293_184, 29_281_120),  # Table 4
]


@pytest.mark.parametrize("opts,mult_adds,params,macs,weights", MOBILENET_V1_PAPER + MOBILENET_V1_PAPER_OFF,
                         ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_mobilenet_v1_exact_counts(opts, mult_adds, params, macs, weights):
    assert paper_counts(zoo.build("mobilenet_v1", **opts)) == (macs, weights)
    assert v1_first_principles(**opts) == (macs, weights)
    digits = len(str(params).split(".")[1])  # as many decimals as the paper prints
    assert round(weights / 1e6, digits) == params


@pytest.mark.parametrize("opts,mult_adds,params,macs,weights", MOBILENET_V1_PAPER,
                         ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_mobilenet_v1_paper_tables(opts, mult_adds, params, macs, weights):
    assert round(macs / 1e6) == mult_adds


def test_mobilenet_v1_paper_deviations_are_truncation_or_fc():
    (_, p160, _, m160, _), (_, p050, _, m050, _), (_, pconv, _, mconv, _) = MOBILENET_V1_PAPER_OFF
    assert (m160 // 10**6, m050 // 10**6) == (p160, p050)
    assert round((mconv - 1024 * 1000) / 1e6) == pconv


def test_mobilenet_v1_named_variants_and_default_convention():
    for name, alpha in (("mobilenet_v1", 1.0), ("mobilenet_v1_075", 0.75), ("mobilenet_v1_050", 0.5),
                        ("mobilenet_v1_025", 0.25)):
        g = zoo.build(name)
        assert paper_counts(g) == v1_first_principles(alpha)
    # cnngraph's default params add BN γ, β and the FC bias: 4,231,976 (4.2 M either way).
    outs = [c for c, _ in MOBILENET_V1_BLOCKS]
    bn_channels = 32 + sum(cin + cout for cin, cout in zip([32] + outs, outs))  # stem, then dw and pw of each block
    assert analyze(zoo.build("mobilenet_v1")).total.params == 4_209_088 + 1000 + 2 * bn_channels == 4_231_976


def test_mobilenet_v1_table2_shares():
    """Table 2, resources per layer type. The paper's 1.19 % for the 3×3 stem is 1.91 % with
    its digits swapped: the printed column adds up to 99.29 %, ours to 100 %."""
    g = zoo.build("mobilenet_v1")
    macs, weights = {}, {}
    for row in analyze(g).rows:
        if row.op == "conv2d":
            kind = "1x1" if row.attrs["kernel"] == (1, 1) else "dw" if row.attrs["groups"] > 1 else "3x3"
        elif row.op == "linear":
            kind = "fc"
        else:
            continue
        macs[kind] = macs.get(kind, 0) + row.macs
        weights[kind] = weights.get(kind, 0) + row.params - (1000 if kind == "fc" else 0)
    tm, tw = sum(macs.values()), sum(weights.values())
    pct = lambda d, t: {k: round(100 * v / t, 2) for k, v in d.items()}  # noqa: E731
    assert pct(macs, tm) == {"3x3": 1.91, "dw": 3.06, "1x1": 94.86, "fc": 0.18}
    assert pct(weights, tw) == {"3x3": 0.02, "dw": 1.06, "1x1": 74.59, "fc": 24.33}


def test_mobilenet_v1_closed_form_in_alpha_and_size():
    """The paper's Eq. 7 summed over the network: α² for pointwise convs, α for depthwise,
    stem and FC; with H = W = 32h every floor disappears."""
    a = sympy.Symbol("alpha", positive=True)
    r = analyze(zoo.build("mobilenet_v1", alpha=a, input=(3, 32 * h, 32 * w)))
    pw = sum(cin * cout * (32 // (2 * math.prod(s for _, s in MOBILENET_V1_BLOCKS[:i + 1]))) ** 2
             for i, ((cout, _), cin) in enumerate(zip(MOBILENET_V1_BLOCKS, [32] + [c for c, _ in MOBILENET_V1_BLOCKS])))
    assert sympy.expand(r.total.macs - (a**2 * pw * h * w + a * 1125 * 512 * h * w + a * 1024 * 1000)) == 0
    assert pw == 21504 * 512
    assert r.subs({a: sympy.Rational(1, 2), h: 7, w: 7}).total.macs == 149_497_088
    exact = zoo.build("mobilenet_v1", alpha=sympy.Rational(3, 4))
    assert analyze(exact).total.macs == 325_400_448


def test_mobilenet_v1_alpha_from_the_command_line():
    assert analyze(zoo.build("mobilenet_v1", alpha="3/4")).total.macs == 325_400_448
    r = analyze(zoo.build("mobilenet_v1", alpha="alpha"))
    assert [str(s) for s in r.symbols] == ["alpha"]


def test_mobilenet_v1_bad_alpha():
    with pytest.raises(ShapeError, match="alpha must be positive"):
        zoo.build("mobilenet_v1", alpha=0)
    with pytest.raises(ShapeError, match="alpha must be a number or a symbol name"):
        zoo.build("mobilenet_v1", alpha="x/y")


# ---------------------------------------------------------------- the seeds' depthwise-separable block
def test_depthwise_separable_block_is_the_seeds_formula():
    net = Net("dws")
    depthwise_separable(net.input(C, H, W), C, name="block")
    r = analyze(net.graph)
    assert sympy.expand(r.total.macs - (9 * C + C**2) * H * W) == 0
    assert sympy.expand(r.total.params - (9 * C + C**2 + 4 * C)) == 0  # + two BNs' γ, β
    full = Net("conv")
    conv2d(full.input(C, H, W), C, 3, padding=1, bias=False)
    speedup = sympy.simplify(analyze(full.graph).total.macs / r.total.macs)
    assert sympy.simplify(speedup - 9 * C / (9 + C)) == 0
    assert sympy.limit(speedup, C, sympy.oo) == 9
    names = {n for n in net.graph.nodes if n != "input"}
    assert names == {"block.dw.0", "block.dw.1", "block.dw.2", "block.pw.0", "block.pw.1", "block.pw.2"}


def test_depthwise_separable_strided_and_widening():
    net = Net("dws2")
    y = depthwise_separable(net.input(C, 32 * h, 32 * w), 2 * C, stride=2, name="b")
    assert y.shape == (2 * C, 16 * h, 16 * w)
    assert sympy.expand(analyze(net.graph).total.macs - (9 * C + 2 * C**2) * 256 * h * w) == 0


# ---------------------------------------------------------------- MobileNet v2/v3 helpers
def test_make_divisible_matches_the_reference_rule():
    # torchvision's widths: v2 at 0.35, 0.5, 1.4; v3's SE squeeze widths.
    assert [make_divisible(32 * m) for m in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)] == [16, 16, 24, 32, 40, 48]
    assert make_divisible(1280 * 1.4) == 1792
    assert [make_divisible(e // 4) for e in (16, 72, 96, 120, 240, 480, 576, 672, 960)] == \
           [8, 24, 24, 32, 64, 120, 144, 168, 240]
    assert make_divisible(11, 8) == 16  # 8 would be more than 10 % below 11


def test_mobilenet_v2_width_multiplier():
    g = zoo.build("mobilenet_v2", width_mult=0.5)
    assert g.nodes["features.0.0"]["attrs"]["out_channels"] == 16
    assert g.nodes["features.18.0"]["attrs"]["out_channels"] == 1280  # never below 1280
    assert zoo.build("mobilenet_v2", width_mult=1.4).nodes["features.18.0"]["attrs"]["out_channels"] == 1792


def test_mobilenet_v3_squeeze_excitation_structure():
    g = zoo.build("mobilenet_v3_small")
    se = "features.1.block.1"  # the first bottleneck: depthwise, SE, projection (no expansion)
    assert g.nodes[f"{se}.fc1"]["shape"] == (8, 1, 1) and g.nodes[f"{se}.fc2"]["shape"] == (16, 1, 1)
    assert g.nodes[f"{se}.scale_activation"]["op"] == "hardsigmoid"
    assert g.nodes[f"{se}.scale"]["inputs"] == ["features.1.block.0.2", f"{se}.scale_activation"]
    with pytest.raises(CnnGraphError, match="arch must be"):
        zoo.build("mobilenet_v3_large", arch="medium")


# ---------------------------------------------------------------- ShuffleNet v2
def test_shufflenet_v2_unit_structure():
    g = zoo.build("shufflenet_v2_x1_0")
    u = "stage3.1"  # a stride-1 unit: split, one half through branch2, concat, shuffle
    assert g.nodes[f"{u}.split0"]["attrs"] == {"start": 0, "stop": 116}
    assert g.nodes[f"{u}.split1"]["attrs"] == {"start": 116, "stop": 232}
    assert g.nodes[f"{u}.branch2.0"]["inputs"] == [f"{u}.split1"]
    assert g.nodes[f"{u}.concat"]["inputs"] == [f"{u}.split0", f"{u}.branch2.7"]
    assert g.nodes[f"{u}.shuffle"]["attrs"] == {"groups": 2}
    d = "stage3.0"  # stride 2: both branches see the whole input
    assert g.nodes[f"{d}.branch1.0"]["inputs"] == g.nodes[f"{d}.branch2.0"]["inputs"] == ["stage2.3.shuffle"]
    assert g.nodes[f"{d}.shuffle"]["shape"] == (232, 14, 14)


def test_shufflenet_v2_unit_rejects_bad_widths():
    net = Net("bad")
    with pytest.raises(ShapeError, match="in_channels = out_channels"):
        shuffle_unit(net.input(48, 8, 8), 64, 1, name="u")
    with pytest.raises(CnnGraphError, match="width must be"):
        zoo.build("shufflenet_v2_x1_0", width="3_0")


# ---------------------------------------------------------------- EfficientNet compound scaling
def test_efficientnet_scaling_table():
    assert [r for _, _, r, _ in EFFICIENTNET_SCALING.values()] == [224, 240, 260, 300, 380, 456, 528, 600]
    assert (ALPHA, BETA, GAMMA) == (1.2, 1.1, 1.15)
    assert abs(ALPHA * BETA**2 * GAMMA**2 - 1.92) < 0.001  # the paper's "≈ 2"
    assert [round(v, 4) for v in compound_scaling(2)] == [1.44, 1.21, 1.3225]
    assert [round(p, 2) for p in implied_phi("b0")] == [0.0, 0.0, 0.0]
    assert [round(p, 2) for p in implied_phi("b7")] == [6.21, 7.27, 7.05]
    for v, (_, _, res, _) in EFFICIENTNET_SCALING.items():
        assert zoo.info(f"efficientnet_{v}").input == (3, res, res)
        assert (REF / "torchvision" / f"efficientnet_{v}{'' if res == 224 else f'_{res}'}.json").exists()


def test_efficientnet_scaled_stages_from_first_principles():
    # B7: width ×2.0, depth ×3.1: channels 2c rounded to 8, repeats ⌈3.1·n⌉.
    b7 = scaled_stages(2.0, 3.1)
    assert [s[4] for s in b7] == [32, 48, 80, 160, 224, 384, 640]
    assert [s[5] for s in b7] == [math.ceil(3.1 * n) for *_, n in B0_STAGES] == [4, 7, 7, 10, 10, 13, 4]
    b3 = scaled_stages(1.2, 1.4)
    assert [s[3] for s in b3][0] == 40 and [s[4] for s in b3] == [24, 32, 48, 96, 136, 232, 384]
    g = zoo.build("efficientnet_b7")
    assert sum(1 for n in g.nodes if n.endswith(".stochastic_depth")) == 55 - 7  # residual blocks only
    assert g.nodes["features.8.0"]["attrs"]["out_channels"] == 4 * 640


def test_efficientnet_flops_grow_about_two_to_the_phi():
    """FLOPs (MACs) of B1-B7 over B0 against 2^φ, φ the mean of implied_phi: within a factor 1.6."""
    base = analyze(zoo.build("efficientnet_b0")).total.macs
    for v in list(EFFICIENTNET_SCALING)[1:]:
        ratio = analyze(zoo.build(f"efficientnet_{v}")).total.macs / base
        phi = sum(implied_phi(v)) / 3
        assert 1 / 1.6 < ratio / 2**phi < 1.6, (v, ratio, phi)


def test_efficientnet_errors():
    with pytest.raises(CnnGraphError, match="variant must be one of"):
        zoo.build("efficientnet_b0", variant="b8")


# ---------------------------------------------------------------- NASNet-A Mobile
def test_nasnet_matches_the_pytorch_port():
    ref = json.loads((REF / "pretrainedmodels" / "nasnetamobile.json").read_text())
    g = zoo.build("nasnet_a_mobile")
    r = analyze(g)
    assert (r.total.params, r.total.buffers) == (ref["params"], ref["buffers"]) == (5_289_978, 36_738)
    assert {k: list(s) for k, (s, _) in param_shapes(g).items()} == ref["state_dict"]
    # The port emulates TF's asymmetric "SAME" padding by padding one more row and column,
    # running the first separable conv, then cropping: hooks count those discarded outputs.
    # Per such branch: ((H'+1)² − H'²)·(k²·c + c²), over the 5 separable branches of
    # cell_stem_1 (c = 22, H' = 28) and of both reduction cells (88 at 14, 176 at 7).
    ks = 25 + 49 + 49 + 25 + 9
    extra = sum(((n + 1) ** 2 - n**2) * c * (ks + 5 * c) for c, n in ((22, 28), (88, 14), (176, 7)))
    assert extra == 4_596_042
    assert r.total.macs == ref["macs"] - extra == 563_638_816


def test_nasnet_paper_figures():
    """Zoph et al. 2018, Table 2: NASNet-A (4 @ 1056), 5.3 M parameters, 564 M mult-adds."""
    r = analyze(zoo.build("nasnet_a_mobile"))
    assert round(r.total.params / 1e6, 1) == 5.3 and round(r.total.macs / 1e6) == 564
    g = zoo.build("nasnet_a_mobile")
    shapes = {n: g.nodes[f"{n}.concat"]["shape"] for n in ("cell_stem_0", "cell_stem_1", "cell_3", "reduction_cell_0",
                                                           "cell_9", "reduction_cell_1", "cell_15")}
    assert shapes == {"cell_stem_0": (44, 56, 56), "cell_stem_1": (88, 28, 28), "cell_3": (264, 28, 28),
                      "reduction_cell_0": (352, 14, 14), "cell_9": (528, 14, 14), "reduction_cell_1": (704, 7, 7),
                      "cell_15": (1056, 7, 7)}


def test_nasnet_tf_same_padding():
    assert same_padding((56, 56), 3, 2, "same") == (0, 0, 1, 1)
    assert same_padding((28, 28), 5, 2, "same") == (1, 1, 2, 2)
    assert same_padding((14, 14), 7, 2, "same") == (2, 2, 3, 3)
    assert same_padding((111, 111), 7, 2, "same") == (3, 3, 3, 3)
    assert same_padding((28, 28), 5, 1, "same") == (2, 2, 2, 2)
    g = zoo.build("nasnet_a_mobile")
    assert g.nodes["reduction_cell_0.comb_iter_0_right.separable_1.depthwise_conv2d"]["attrs"]["padding"] == (2, 2, 3, 3)
    assert g.nodes["cell_stem_0.comb_iter_1_left"]["attrs"]["padding"] == (1, 1, 1, 1)
    assert g.nodes["cell_0.path_2.pad"]["attrs"]["padding"] == (-1, -1, 1, 1)


def test_nasnet_symbolic_needs_symmetric_padding():
    with pytest.raises(ShapeError, match="cell_stem_0.comb_iter_0_left.separable_1.depthwise_conv2d: TensorFlow 'SAME'"):
        zoo.build("nasnet_a_mobile", input=(3, H, W))
    with pytest.raises(CnnGraphError, match="padding must be"):
        zoo.build("nasnet_a_mobile", padding="valid")
    r = analyze(zoo.build("nasnet_a_mobile", input=(3, H, W), padding="symmetric"))
    numeric = analyze(zoo.build("nasnet_a_mobile")).total
    assert r.totals_function()(H=224, W=224) == {"params": numeric.params, "macs": numeric.macs,
                                                 "flops": numeric.flops, "memory_bytes": numeric.memory_bytes}


# ---------------------------------------------------------------- every model, symbolic input
SYMBOLIC = [n for n in zoo.names() if zoo.info(n).family in FAMILIES and n != "nasnet_a_mobile"]


def test_family_models_registered():
    assert len(SYMBOLIC) == 4 + 3 + 4 + 8


@pytest.mark.parametrize("name", SYMBOLIC)
def test_builds_on_symbolic_input(name):
    """(3, H, W) builds; its totals at the model's own resolution equal the numeric build's."""
    res = zoo.info(name).input[1]
    r = analyze(zoo.build(name, input=(3, H, W)))
    assert {str(s) for s in r.symbols} == {"H", "W"}
    numeric = analyze(zoo.build(name)).total
    got = r.totals_function()(H=res, W=res)
    assert got == {"params": numeric.params, "macs": numeric.macs, "flops": numeric.flops,
                   "memory_bytes": numeric.memory_bytes}


# ---------------------------------------------------------------- outputs of the original modules
OUTPUTS = sorted((REF / "mobile_outputs").glob("*.json"))
NASNET_OUTPUT = REF / "mobile_outputs" / "nasnet_a_mobile_224.json"


def _logits(name, input, num_classes, weights_seed=0, input_seed=1, **opts):
    """Our graph run by the PyTorch reference (float64) with the generator's seeded weights."""
    torch = pytest.importorskip("torch")
    torch_ref = pytest.importorskip("cnngraph.interop.torch_ref")
    import sys

    sys.path.insert(0, str(REF))
    from seeded_weights import seeded_input, seeded_weights

    g = zoo.build(name, input=tuple(input), num_classes=num_classes, **opts)
    ws = seeded_weights({k: s for k, (s, _) in param_shapes(g).items()}, weights_seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small float64 convs: one thread is faster, and CI's 2 cores are shared
    try:
        with torch.no_grad():
            out = torch_ref.to_torch(g, ws, dtype=torch.float64)(torch.from_numpy(seeded_input(input[1], input_seed)))
    finally:
        torch.set_num_threads(threads)
    return out[0].numpy()


@pytest.mark.parametrize("path", OUTPUTS, ids=[p.stem for p in OUTPUTS])
def test_outputs_match_the_original_modules(path):
    """Same weights, same input: our graphs compute what torchvision's modules (and the
    NASNet port) compute, to float64 rounding. Checks wiring that counts cannot see."""
    import numpy as np

    ref = json.loads(path.read_text())
    got = _logits(ref["model"], ref["input"], ref["num_classes"], ref["weights_seed"], ref["input_seed"])
    want = np.array(ref["logits"])
    assert np.abs(got - want).max() <= 1e-9 * np.abs(want).max()


def test_nasnet_outputs_depend_on_tf_same_padding():
    """The same weights with symmetric padding give other logits: the reference sees padding."""
    import numpy as np

    ref = json.loads(NASNET_OUTPUT.read_text())
    got = _logits("nasnet_a_mobile", ref["input"], ref["num_classes"], padding="symmetric")
    assert np.abs(got - np.array(ref["logits"])).max() > 1e-3 * np.abs(ref["logits"]).max()


def test_reference_outputs_present():
    assert {p.stem.rsplit("_", 1)[0] for p in OUTPUTS} >= {"mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x0_5",
                                                           "efficientnet_b0", "nasnet_a_mobile"}
