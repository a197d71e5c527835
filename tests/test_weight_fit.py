"""Weights against the shapes inferred for the input in use (issue 17).

An ONNX file exported at one size (batch dynamic only) and re-inferred for another ``--input``,
or ``--weights`` made at another size, must be refused with one line naming the layer, the
weights' shape, the inferred shape and the input size the weights fit, in every command and
in the API; no number is printed from such a graph.
"""
import io
import warnings

import numpy as np
import pytest

from cnngraph import analyze, with_input, zoo
from cnngraph.compiler import weights
from cnngraph.cli import main
from cnngraph.compiler import compile
from cnngraph.ir.errors import CnnGraphError


def _one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2, argv
    out = capsys.readouterr()
    err = out.err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for f in fragments:
        assert f in err, (argv, err)
    assert out.out == "", (argv, out.out)  # no number printed


@pytest.fixture(scope="module")
def fixed_size_onnx(tmp_path_factory):
    """An AlexNet-like torch module (conv, pools, flatten, linear) exported at 32×32 with only
    the batch dynamic, as torch.onnx.export does by default."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    path = tmp_path_factory.mktemp("fit") / "small.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(1, 3, 32, 32), str(path), dynamo=False, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    return path, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("cmd", ["table", "formula", "render", "run", "bench", "export"])
def test_onnx_file_at_another_input_size_is_refused(fixed_size_onnx, cmd, tmp_path, capsys):
    path, _ = fixed_size_onnx
    extra = {"render": ["-o", str(tmp_path / "x.svg")], "export": ["-o", str(tmp_path / "x.onnx")],
             "bench": ["--repeat", "1", "--warmup", "1"]}.get(cmd, [])
    _one_line_error(capsys, [cmd, str(path), "--input", "3,24,28", *extra],
                    "7.weight is 32×256 but the graph infers 32×144 for input 3×24×28", "the weights fit 3×32×32 inputs")


def test_onnx_file_symbolic_input_and_api(fixed_size_onnx, capsys):
    from cnngraph.onnx import load

    path, params = fixed_size_onnx
    # a symbolic --input: the linear's features become a formula that 256 does not equal
    _one_line_error(capsys, ["formula", str(path), "--input", "3,H,W"], "7.weight is 32×256", "fit 3×32×32 inputs")
    g = load(path)
    assert analyze(g).total.params == params  # at its own size the file counts as torch does
    assert analyze(g, input=(3, 32, 32)).total.params == params
    for call in (lambda: analyze(g, input=(3, 24, 28)), lambda: with_input(g, (3, 64, 64)),
                 lambda: compile(g, g.graph["weights"], input=(3, 40, 40))):
        with pytest.raises(CnnGraphError, match=r"^7: weight 7\.weight is 32×256 .* the weights fit 3×32×32 inputs$"):
            call()


def test_zoo_weights_made_at_another_size(tmp_path, capsys):
    """--weights for a zoo model: the size is solved from the flatten's symbolic feature count."""
    g = zoo.build("lenet5")  # 1×28×28: fc1 takes 50×7×7 = 2450 features
    w = tmp_path / "l5.npz"
    weights.save(weights.init(g, seed=0), w)
    for cmd in ("run", "bench", "export"):
        extra = ["-o", str(tmp_path / "x.onnx")] if cmd == "export" else []
        _one_line_error(capsys, [cmd, "lenet5", "--input", "1,20,20", "--weights", str(w), *extra],
                        "fc1: weight fc1.weight is 500×2450 but the graph infers 500×1250 for input 1×20×20",
                        "the weights fit 1×S×S inputs for S from 28 to 31")
    # a first conv made for one channel, given three
    _one_line_error(capsys, ["run", "lenet5", "--input", "3,28,28", "--weights", str(w)],
                    "conv1: weight conv1.weight is 20×1×5×5 but the graph infers 20×3×5×5", "fit 1×28×28 inputs")
    # and each size in the solved range does run
    assert main(["run", "lenet5", "--input", "1,31,31", "--weights", str(w)]) == 0
    with pytest.raises(CnnGraphError, match="fc1.weight is 500×2450"):
        compile(zoo.build("lenet5", input=(1, 20, 20)), weights.load(w))
