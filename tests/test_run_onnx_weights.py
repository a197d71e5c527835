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
