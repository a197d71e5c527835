"""The PyTorch reference `to_torch`: names, numerics against hand-written torch.nn modules and
first-principles sums, asymmetric padding, errors."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from cnngraph import zoo  # noqa: E402
from cnngraph.compiler import weights
from cnngraph.dsl import Net, avgpool2d, conv2d, maxpool2d  # noqa: E402
from cnngraph.ir.errors import CnnGraphError  # noqa: E402
from cnngraph.ir.symbols import H, W  # noqa: E402
from cnngraph.interop.torch_ref import run, to_torch  # noqa: E402


class _Basic(nn.Module):
    """torchvision's BasicBlock, written out here (no torchvision in the project venv)."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class _ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for s, planes in enumerate((64, 128, 256, 512)):
            blocks = []
            for b in range(2):
                blocks.append(_Basic(cin, planes, 2 if (s > 0 and b == 0) else 1))
                cin = planes
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        for s in range(1, 5):
            x = getattr(self, f"layer{s}")(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_resnet18_matches_handwritten_torch_module():
    g = zoo.build("resnet18", input=(3, 64, 64))
    ws = weights.init(g, seed=3, random_bn=True)
    ref = _ResNet18().eval()
    sd = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    m = to_torch(g, ws)
    assert set(m.state_dict()) == set(sd) == set(ws)  # torchvision's names, one to one
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in ws.items()}, strict=False)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = m(x), ref(x)
    assert a.shape == (2, 1000)
    assert float((a - b).abs().max() / b.abs().max()) < 1e-5


def test_conv_and_pools_from_first_principles():
    """Asymmetric padding, ceil mode and count_include_pad against direct NumPy sums."""
    net = Net("p")
    x = net.input(2, 7, 6)
    c = conv2d(x, 3, (2, 3), stride=(2, 1), padding=(1, 0, 2, 2), name="conv")
    maxpool2d(c, 2, 2, padding=(0, 1, 1, 0), ceil_mode=True, name="maxp")
    avgpool2d(c, 3, 2, padding=(1, 1, 0, 1), ceil_mode=True, count_include_pad=False, name="avg_excl")
    avgpool2d(c, 2, 2, padding=(1, 0, 0, 1), count_include_pad=True, name="avg_incl")
    g = net.graph
    ws = weights.init(g, seed=1, random_bn=True)
    xin = np.random.default_rng(0).standard_normal((1, 2, 7, 6))
    outs = dict(zip(g.graph["outputs"], run(g, ws, xin, dtype=torch.float64)))

    def padded(a, pads, value):
        t, l, b, r = pads
        return np.pad(a, ((0, 0), (t, b), (l, r)), constant_values=value)

    w, bias = ws["conv.weight"].astype(np.float64), ws["conv.bias"].astype(np.float64)
    xp = padded(xin[0], (1, 0, 2, 2), 0.0)
    Ho, Wo = g.nodes["conv"]["shape"][1:]
    conv = np.array([[[np.sum(w[o] * xp[:, 2 * i:2 * i + 2, j:j + 3]) + bias[o] for j in range(Wo)]
                      for i in range(Ho)] for o in range(3)])
    # max pool: windows over -inf padding, clipped at the padded edge (ceil mode)
    cp = padded(conv, (0, 1, 1, 0), -np.inf)
    mh, mw = g.nodes["maxp"]["shape"][1:]
    maxp = np.array([[[cp[o, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max() for j in range(mw)] for i in range(mh)]
                     for o in range(3)])
    assert np.allclose(outs["maxp"][0], maxp)
    # average excluding padding: mean over real positions only
    ah, aw = g.nodes["avg_excl"]["shape"][1:]
    real = padded(np.ones_like(conv), (1, 1, 0, 1), 0.0)
    vp = padded(conv, (1, 1, 0, 1), 0.0)
    excl = np.array([[[vp[o, 2 * i:2 * i + 3, 2 * j:2 * j + 3].sum() / real[o, 2 * i:2 * i + 3, 2 * j:2 * j + 3].sum()
                       for j in range(aw)] for i in range(ah)] for o in range(3)])
    assert np.allclose(outs["avg_excl"][0], excl)
    # average including padding: divide by the full window
    bh, bw = g.nodes["avg_incl"]["shape"][1:]
    vp = padded(conv, (1, 0, 0, 1), 0.0)
    incl = np.array([[[vp[o, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean() for j in range(bw)] for i in range(bh)]
                     for o in range(3)])
    assert np.allclose(outs["avg_incl"][0], incl)


def test_float64_and_float32_agree_on_every_op():
    from onnx_cases import all_ops_net, rel_err

    g = all_ops_net()
    ws = weights.init(g, seed=0, random_bn=True)
    x = np.random.default_rng(2).standard_normal((2,) + g.nodes["input"]["shape"])
    assert rel_err(run(g, ws, x), run(g, ws, x, dtype=torch.float64)) < 1e-5


def test_symbolic_graph_and_missing_weights_are_clear_errors():
    g = zoo.build("resnet18", input=(3, H, W))
    with pytest.raises(CnnGraphError, match="substitute the symbols"):
        to_torch(g, weights.init(zoo.build("resnet18"), seed=0))
    g = zoo.build("lenet5")
    ws = weights.init(g, seed=0)
    del ws["conv2.weight"]
    with pytest.raises(CnnGraphError, match="missing 1: conv2.weight"):
        to_torch(g, ws)


def test_import_cnngraph_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, cnngraph, cnngraph.onnx; cnngraph.zoo.build('resnet18'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
