"""`cnngraph run FILE.onnx` runs the file's own weights, not seeded random ones."""
import numpy as np
import pytest

pytest.importorskip("onnx")


def test_run_onnx_uses_its_weights(tmp_path):
    from cnngraph.cli import main

    model, a, b = tmp_path / "l5.onnx", tmp_path / "a.npy", tmp_path / "b.npy"
    assert main(["export", "lenet5", "-o", str(model), "--seed", "3"]) == 0
    # Same input seed; the zoo model with seed-3 weights vs the file (which holds seed-3 weights).
    assert main(["run", str(model), "--seed", "7", "--batch", "2", "--output", str(a)]) == 0
    assert main(["run", "lenet5", "--seed", "7", "--batch", "2", "--output", str(b)]) == 0
    ya, yb = np.load(a), np.load(b)
    assert ya.shape == (2, 10)
    # --seed also seeds the zoo model's weights: 7 != 3, so the outputs must differ...
    assert np.abs(ya - yb).max() > 1e-3
    c = tmp_path / "c.npy"
    assert main(["run", "lenet5", "--seed", "3", "--batch", "2", "--output", str(c)]) == 0
    # ...while the file's weights are the seed-3 ones whatever --seed says (inputs differ by seed).
    d = tmp_path / "d.npy"
    assert main(["run", str(model), "--seed", "3", "--batch", "2", "--output", str(d)]) == 0
    np.testing.assert_allclose(np.load(d), np.load(c), rtol=0, atol=1e-6)


def test_run_takes_a_symbolic_input_size_from_the_input_file(tmp_path, capsys):
    """A model whose H and W are symbolic (an ONNX file with dim_params, a zoo model given
    3,H,W) runs at the size of the --input-file array; the result equals ONNX Runtime's."""
    ort = pytest.importorskip("onnxruntime")
    from cnngraph.cli import main

    model, xf, yf = tmp_path / "r.onnx", tmp_path / "x.npy", tmp_path / "y.npy"
    assert main(["export", "resnet18", "--input", "3,H,W", "-o", str(model)]) == 0
    x = np.random.default_rng(0).standard_normal((2, 3, 40, 48)).astype(np.float32)
    np.save(xf, x)
    assert main(["run", str(model), "--input-file", str(xf), "--output", str(yf)]) == 0
    s = ort.InferenceSession(str(model))
    want = s.run(None, {s.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(np.load(yf), want, rtol=0, atol=1e-4)
    assert main(["run", "resnet18", "--input", "3,H,W", "--input-file", str(xf)]) == 0
    assert "input 3×40×48" in capsys.readouterr().out
    np.save(xf, x[:, :2])  # two channels for a three-channel model
    assert main(["run", str(model), "--input-file", str(xf)]) == 2
    err = capsys.readouterr().err
    assert "2×2×40×48 does not fit the model's N×3×H×W" in err and "Traceback" not in err
