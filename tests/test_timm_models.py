"""timm's CNNs through torch.onnx.export + cnngraph's ONNX import (and from_torch), with the
checks of tests/torch_models.py.

The models are chosen by a rule, not by hand: every timm module (family) of convolutional
networks in CNN_MODULES, its models ranked by the SHA-1 of their names, the first PER_FAMILY
of them with at most MAX_PARAMS parameters (counted on the meta device, without allocating).
Each is checked at 64×64 and 96×96, or at the two smallest larger sizes its own forward pass
accepts (Inception v3/v4 and Inception-ResNet-v2 refuse inputs under 75×75).
tests/reference/timm_onnx.json records, for each chosen model, "ok" or the reason it fails;
a model recorded "ok" must pass every check, a recorded failure is an expected failure
(docs/own-models.md lists each one with its reason). Regenerate the record with
``python tests/test_timm_models.py > tests/reference/timm_onnx.json``.
"""
import hashlib
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from torch_models import check_onnx  # noqa: E402

# timm's modules of convolutional networks (attention hybrids and transformers left out).
CNN_MODULES = ["byobnet", "convnext", "cspnet", "densenet", "dla", "dpn", "efficientnet", "fasternet", "ghostnet",
               "hardcorenas", "hgnet", "hrnet", "inception_resnet_v2", "inception_v3", "inception_v4",
               "mobilenetv3", "nasnet", "nfnet", "pnasnet", "rdnet", "regnet", "repghost", "repvit", "res2net",
               "resnest", "resnet", "resnetv2", "rexnet", "selecsls", "senet", "sknet", "starnet", "tresnet",
               "vgg", "vovnet", "xception", "xception_aligned"]
PER_FAMILY = 4
MAX_PARAMS = 60_000_000
SIZES = (64, 96)
LARGER = (128, 160, 192, 224)  # for models whose own forward refuses 64×64 (Inception: at least 75)
RECORD = Path(__file__).parent / "reference" / "timm_onnx.json"
SAMPLE = ["ghostnet_050", "fasternet_t0"]  # two quick ones for `make test`


def n_params(name):
    with torch.device("meta"):
        m = timm.create_model(name, pretrained=False)
    return sum(p.numel() for p in m.parameters())


def chosen():
    out = []
    for mod in CNN_MODULES:
        names = sorted(timm.list_models(module=mod), key=lambda n: hashlib.sha1(n.encode()).hexdigest())
        picked = 0
        for n in names:
            if picked == PER_FAMILY:
                break
            try:
                if n_params(n) > MAX_PARAMS:
                    continue
            except Exception:  # a model that cannot even be built on the meta device is still recorded
                pass
            out.append((mod, n))
            picked += 1
    return out


def build(name):
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False).eval()


def sizes_for(model):
    """The two smallest of SIZES + LARGER at which the PyTorch model itself runs."""
    ok = []
    for s in SIZES + LARGER:
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, s, s))
        except RuntimeError:
            continue
        ok.append(s)
        if len(ok) == 2:
            return tuple(ok)
    return SIZES


def outcome(name):
    """"ok", or the first line of the error (what the record holds)."""
    try:
        m = build(name)
        check_onnx(m, sizes_for(m))
        return "ok"
    except AssertionError as e:
        return f"check failed: {str(e).splitlines()[0][:200]}"
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def _record():
    return json.loads(RECORD.read_text()) if RECORD.exists() else {}


def _params():
    rec = _record()
    names = list(rec) if rec else [n for _, n in chosen()]
    return [pytest.param(n, marks=() if n in SAMPLE else pytest.mark.models) for n in names]


@pytest.mark.parametrize("name", _params())
def test_timm_model_through_onnx(name):
    """A model recorded "ok" must pass every check; a recorded failure is an expected failure
    (its recorded reason and today's are both shown; one that starts working passes)."""
    want = _record().get(name, "ok")
    if want == "ok":
        m = build(name)
        check_onnx(m, sizes_for(m))
        return
    got = outcome(name)
    if got != "ok":
        pytest.xfail(f"recorded: {want} | now: {got}")


@pytest.mark.parametrize("name", ["mobilenetv3_small_050", "efficientnet_b0"])
def test_timm_model_through_from_torch(name):
    """timm's MobileNet v3 and EfficientNet through from_torch: their BatchNormAct2d and
    Linear call F.batch_norm and F.linear from their own forward (fx traces into them), so
    these need the function converters; parameters and multiply-adds exact, the Numba
    backend (expansions nested in their depthwise steps) within 1e-4 of PyTorch."""
    from torch_models import check_from_torch

    m = build(name)
    g = check_from_torch(m, (64, 96))
    assert g.nodes["bn1"]["op"] == "batchnorm" and "bn1.running_var" in g.graph["weights"]


@pytest.mark.models
def test_the_choice_is_the_rule():
    """The record lists exactly the models the rule chooses: at least 100, from at least 25 families."""
    picks = chosen()
    assert len(picks) >= 100 and len({m for m, _ in picks}) >= 25
    assert list(_record()) == [n for _, n in picks]


if __name__ == "__main__":  # regenerate the record: one line per model, in the chosen order
    torch.set_num_threads(1)
    picks = chosen()
    print("{")
    for i, (mod, n) in enumerate(picks):
        res = outcome(n)
        print(f"  {json.dumps(n)}: {json.dumps(res)}{',' if i < len(picks) - 1 else ''}", flush=True)
        print(f"{mod} {n}: {res}", file=sys.stderr, flush=True)
    print("}")
