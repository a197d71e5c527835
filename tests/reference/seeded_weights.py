"""Deterministic weights for a state_dict layout, shared by the reference-output generator
(run next to torchvision / pretrainedmodels) and the tests (run on cnngraph graphs), so both
sides compute with identical numbers without storing any weights. NumPy only.

>>> ws = seeded_weights({"fc.weight": (3, 4), "fc.bias": (3,)})
>>> ws["fc.weight"].shape, ws["fc.bias"].dtype
((3, 4), dtype('float64'))
"""
import math

import numpy as np


def seeded_weights(shapes: dict, seed: int = 0) -> dict:
    """``{name: float64 array}``: conv/linear weights N(0, 1/fan_in), biases and running means
    N(0, 0.1²), norm scales and running variances U(0.5, 1.5); drawn in sorted-name order."""
    rng = np.random.default_rng(seed)
    out = {}
    for key in sorted(shapes):
        shape = tuple(int(s) for s in shapes[key])
        field = key.rsplit(".", 1)[-1]
        if field in ("bias", "running_mean"):
            v = rng.normal(0.0, 0.1, shape)
        elif field == "running_var" or len(shape) == 1:
            v = rng.uniform(0.5, 1.5, shape)
        else:
            v = rng.normal(0.0, math.sqrt(1.0 / math.prod(shape[1:])), shape)
        out[key] = v
    return out


def seeded_input(size: int, seed: int = 1, batch: int = 1) -> np.ndarray:
    """A float64 batch of ``size``×``size`` RGB images, N(0, 1)."""
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size))
