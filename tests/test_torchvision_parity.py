"""Zoo vs torchvision: parameters, multiply-adds and state_dict names/shapes, exactly.

The references in tests/reference/torchvision/*.json were produced by
tests/reference/torchvision_counts.py from torchvision's real modules (forward hooks).
"""
import json
from pathlib import Path

import pytest

from cnngraph import analyze, zoo
from cnngraph.compiler.weights import param_shapes

REF = Path(__file__).parent / "reference" / "torchvision"
FILES = sorted(REF.glob("*.json"))

# torchvision name (+ kwargs) -> zoo name and options, where they differ.
ZOO = {
    "alexnet": ("alexnet", dict(avgpool=True)),
    "vgg11": ("vgg11", dict(avgpool=True)), "vgg13": ("vgg13", dict(avgpool=True)),
    "vgg16": ("vgg16", dict(avgpool=True)), "vgg19": ("vgg19", dict(avgpool=True)),
    "vgg11_bn": ("vgg11_bn", dict(avgpool=True)), "vgg13_bn": ("vgg13_bn", dict(avgpool=True)),
    "vgg16_bn": ("vgg16_bn", dict(avgpool=True)), "vgg19_bn": ("vgg19_bn", dict(avgpool=True)),
}


def _zoo_for(ref):
    name, opts = ZOO.get(ref["model"], (ref["model"], {}))
    return zoo.build(name, input=tuple(ref["input"]), **opts)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_counts_match_torchvision(path):
    ref = json.loads(path.read_text())
    g = _zoo_for(ref)
    r = analyze(g)
    assert r.total.params == ref["params"]
    assert r.total.macs == ref["macs"]
    assert r.total.buffers == ref["buffers"]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_state_dict_names_match_torchvision(path):
    ref = json.loads(path.read_text())
    ours = {k: list(s) for k, (s, _) in param_shapes(_zoo_for(ref)).items()}
    assert ours == ref["state_dict"]


def test_reference_files_present():
    assert len(FILES) >= 12
