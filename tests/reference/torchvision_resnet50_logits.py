"""Write the ResNet-50 logits fixture from torchvision's real resnet50 (run offline).

The weights are ``cnngraph.compiler.weights.init(zoo.build("resnet50"), seed=SEED, random_bn=True)``
loaded into ``torchvision.models.resnet50()`` with ``load_state_dict``; the input is
``numpy.random.default_rng(INPUT_SEED).standard_normal((2, 3, 224, 224))`` in float32.
Only the seeds and the logits are stored: the test regenerates the weights and the input.

Needs torch and torchvision (not project dependencies):

    /work/tvenv/bin/python tests/reference/torchvision_resnet50_logits.py
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import dsl  # noqa: E402  (the checkout's dsl/ installs as cnngraph.dsl; this venv has no install)

sys.modules["cnngraph.dsl"] = dsl
from cnngraph import zoo  # noqa: E402
from cnngraph.compiler.weights import init  # noqa: E402

SEED, INPUT_SEED, SHAPE = 50, 2024, (2, 3, 224, 224)
OUT = Path(__file__).with_suffix(".json")


def main():
    ws = init(zoo.build("resnet50"), seed=SEED, random_bn=True)
    model = torchvision.models.resnet50(weights=None)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in ws.items()}, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval()
    torch.set_num_threads(1)
    x = np.random.default_rng(INPUT_SEED).standard_normal(SHAPE).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    OUT.write_text(json.dumps({
        "model": "torchvision.models.resnet50", "torch": torch.__version__, "torchvision": torchvision.__version__,
        "numpy": np.__version__, "seed": SEED, "random_bn": True, "input_seed": INPUT_SEED, "input_shape": SHAPE,
        "logits": [[float(f"{v:.8g}") for v in row] for row in logits],
    }) + "\n")
    print(f"wrote {OUT}: logits {logits.shape}, max |logit| {np.abs(logits).max():.4g}")


if __name__ == "__main__":
    main()
