"""Both PyTorch ONNX exporters are first-class (issue 17): the legacy TorchScript exporter
(``dynamo=False``) and the ``torch.export`` one (``dynamo=True``, the default since torch 2.9).

One model of each zoo family (torchvision's module where torchvision has the family, else the
zoo graph as a PyTorch module through ``to_torch``), exported with each exporter at a small
size, batch dynamic only; then:

* table: every layer's params are the file's own tensors, conv+linear multiply-adds equal
  forward hooks' (torchvision) or the zoo graph's (the exporters may fold batch norms);
* formula: the symbolic totals for C×H×W evaluated at the size equal the numeric table, or,
  when a flatten fixes the size, the symbolic input is refused naming that size;
* render: every fold and collapse option gives a layout whose boxes partition the layers,
  and the command writes the diagram;
* run: the Numba backend equals ONNX Runtime;
* round trip: cnngraph's export of the imported graph runs in ONNX Runtime to the same output
  and imports to the same table.

A sample runs by default; every family with ``-m models`` (``make test-models``).
"""
import io
import json
import warnings

import numpy as np
import pytest
import sympy

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from torch_models import file_tensors, hook_counts, matmul_macs, ort_run, rel_err  # noqa: E402

from cnngraph import analyze, zoo  # noqa: E402
from cnngraph.backends.numba_backend import run as numba_run  # noqa: E402
from cnngraph.cli import main  # noqa: E402
from cnngraph.compiler import compile, weights  # noqa: E402
from cnngraph.ir.errors import CnnGraphError  # noqa: E402
from cnngraph.onnx import export, load  # noqa: E402
from cnngraph.present.render import layout  # noqa: E402

# family -> (source, name, options, size); source "tv" is torchvision, "zoo" the zoo graph
MODELS = {
    "lenet": ("zoo", "lenet5", {}, 28),
    "alexnet": ("tv", "alexnet", {}, 224),  # its adaptive pooling is exportable at 224 only
    "vgg": ("tv", "vgg11_bn", {}, 224),
    "resnet": ("tv", "resnet18", {}, 64),
    "wide_resnet": ("zoo", "wrn28_10", {"depth": 10, "widen": 2}, 32),
    "mobilenet": ("tv", "mobilenet_v3_small", {}, 64),
    "shufflenet": ("tv", "shufflenet_v2_x0_5", {}, 64),
    "efficientnet": ("tv", "efficientnet_b0", {}, 64),
    "inception": ("tv", "googlenet", {"init_weights": False}, 64),
    "densenet": ("tv", "densenet121", {}, 64),
    "preact_resnet": ("zoo", "preact_resnet18", {}, 64),
    "resnet_cifar": ("zoo", "resnet20", {}, 32),
    "resnext": ("tv", "resnext50_32x4d", {}, 64),
    "senet": ("zoo", "se_resnet50", {}, 64),
    "nasnet": ("zoo", "nasnet_a_mobile", {}, 64),
}
SAMPLE = {"resnet", "resnet_cifar", "lenet", "wide_resnet"}  # the quick ones; the rest with -m models
# to_torch draws NASNet's average pooling without padding in the count as a pooling divided by a
# pooled map of ones: that division by a constant map has no registry op (cnngraph's own export
# writes count_include_pad=0 and round-trips, tests/test_onnx_import.py)
KNOWN = {"nasnet": "a tensor divided by a constant H×W map (to_torch's count_include_pad=False) is not imported"}
RENDER_OPTIONS = [(True, 3), (True, 0), (True, 1000), (True, 2), (False, 3), (False, 0), (("act",), 3)]


def _params():
    def marks(f):
        out = [] if f in SAMPLE else [pytest.mark.models]
        if f in KNOWN:
            out.append(pytest.mark.xfail(raises=CnnGraphError, strict=True, reason=KNOWN[f]))
        return out

    return [pytest.param(f, d, id=f"{f}-{'dynamo' if d else 'legacy'}", marks=marks(f))
            for f in sorted(MODELS) for d in (False, True)]


def _randomize(model, seed=0):
    """Non-trivial batch-norm statistics and biases (the dynamo exporter drops zero conv biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.3 + 0.15)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)
    return model.eval()


def build(family):
    """The module, the input batch and the reference conv+linear multiply-adds per sample."""
    source, name, options, size = MODELS[family]
    x = np.random.default_rng(0).standard_normal((2, 3 if name != "lenet5" else 1, size, size)).astype(np.float32)
    torch.manual_seed(0)
    if source == "tv":
        tv = pytest.importorskip("torchvision")
        model = _randomize(getattr(tv.models, name)(**options))
        _, macs, _ = hook_counts(model, x)
        return model, x, macs
    from cnngraph.interop.torch_ref import to_torch

    class One(torch.nn.Module):  # forward(x) rather than to_torch's forward(*inputs), for torch.export
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)

    g = zoo.build(name, input=x.shape[1:], **options)
    model = One(to_torch(g, weights.init(g, seed=0, random_bn=True))).eval()
    return model, x, matmul_macs(analyze(g))


def torch_export(model, x, dynamo):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            prog = torch.onnx.export(model, (torch.from_numpy(x),), dynamo=True, input_names=["input"],
                                     dynamic_shapes=({0: torch.export.Dim("N")},), verbose=False)
            prog.save(f)
        else:
            torch.onnx.export(model, torch.from_numpy(x), f, dynamo=False, input_names=["input"],
                              dynamic_axes={"input": {0: "N"}})
    return f.getvalue()


def rows(g):
    return {r["name"]: (r["params"], r["macs"], r["output_shape"]) for r in json.loads(analyze(g).to("json"))["rows"]}


@pytest.mark.torch
@pytest.mark.parametrize("family,dynamo", _params())
def test_exported_model_table_formula_render_run_round_trip(family, dynamo, tmp_path, capsys):
    torch.set_num_threads(1)
    model, x, macs = build(family)
    data = torch_export(model, x, dynamo)
    h = load(data)
    ws = h.graph["weights"]
    r = analyze(h)

    # table: each layer's params are the file's own tensors; multiply-adds are the reference's
    tensors = file_tensors(data)
    per_layer = {}
    for k, v in ws.items():
        node, field = k.rsplit(".", 1)
        if field in ("weight", "bias"):
            per_layer[node] = per_layer.get(node, 0) + v.size
            assert (v.shape, np.asarray(v, np.float32).tobytes()) in tensors, k
    assert all(row.params == per_layer.get(row.name, 0) for row in r.rows)
    assert matmul_macs(r) == macs
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert main(["table", str(path)]) == 0
    assert capsys.readouterr().out.count("\n") > len([n for n in h.nodes if h.nodes[n]["op"] == "conv2d"])

    # formula: symbolic totals at the export size equal the numeric ones (or the size is named)
    c, s = x.shape[1], x.shape[2]
    Hs, Ws = sympy.symbols("H W", positive=True, integer=True)
    try:
        f = analyze(h, input=(c, Hs, Ws)).total
    except CnnGraphError as e:  # a flatten before the classifier: the weights fix the size
        assert f"the weights fit {c}×{s}×{s} inputs" in str(e)
    else:
        for k in ("params", "macs", "memory_bytes", "flops"):
            assert sympy.sympify(getattr(f, k)).subs({Hs: s, Ws: s}) == getattr(r.total, k), k

    # render: every fold / collapse option; the command with the defaults
    for fold, collapse in RENDER_OPTIONS:
        lay = layout(h, fold=fold, collapse=collapse)
        assert set(lay.box_of) == set(h.nodes)
        assert sum(len(b.members) for b in lay.boxes.values()) == h.number_of_nodes()
    for extra in ([], ["--expand"], ["--collapse", "1000"], ["--no-fold"], ["--collapse", "2", "--fold", "act"]):
        assert main(["render", str(path), "-o", str(tmp_path / "m.dot"), *extra]) == 0
    capsys.readouterr()

    # run: the Numba backend equals ONNX Runtime on the same file
    want = ort_run(data, x)[0]
    got = numba_run(compile(h, ws), x)[0]
    assert got.shape == want.shape and rel_err(got, want) < 1e-4, rel_err(got, want)

    # round trip: cnngraph's export runs to the same output and imports to the same table
    m2 = export(h, ws)
    assert rel_err(ort_run(m2.SerializeToString(), x)[0], want) < 1e-4
    assert rows(load(m2)) == rows(h)


@pytest.mark.torch
def test_dynamo_exports_get_module_paths():
    """The dynamo exporter names nodes ``node_relu_3``; its name_scopes metadata gives the module
    path, so an imported file totals per stage and draws its blocks as with the legacy exporter."""
    torch.set_num_threads(1)
    tv = pytest.importorskip("torchvision")
    model = _randomize(tv.models.resnet18())
    h = load(torch_export(model, np.zeros((2, 3, 32, 32), np.float32), dynamo=True))
    assert {"conv1", "maxpool", "layer1.0.conv1", "layer4.1.conv2", "fc"} <= set(h.nodes)
    relus = [n for n in h.nodes if h.nodes[n]["op"] == "relu"]
    assert relus and all(not n.startswith("node_") for n in relus)
    assert sum(n.startswith("layer1.0.") for n in relus) == 2  # the block's two ReLU calls
    assert [k for k in analyze(h).groups(1) if k.startswith("layer")] == ["layer1", "layer2", "layer3", "layer4"]
    stages = [c.label for c in layout(h).clusters if c.depth == 1]
    assert stages[:4] == [f"layer{k} · module · 2 × module" for k in (1, 2, 3, 4)]
