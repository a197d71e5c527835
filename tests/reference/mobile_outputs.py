"""Write reference outputs (logits) of zoo models computed by the original PyTorch modules
(torchvision, or Cadene's pretrainedmodels port for NASNet) in float64, with the seeded
weights and input of seeded_weights.py (drawn from the modules' own state_dict layout, so
independent of cnngraph): one JSON file per model in tests/reference/mobile_outputs/, read
by tests/test_zoo_mobile.py.

The counts references check sizes; these check the wiring (concat order, channel split and
shuffle, squeeze-and-excitation gating, residual placement, TensorFlow "SAME" padding).
Needs torch, torchvision and (for NASNet) pretrainedmodels; not project dependencies. Usage:

    python tests/reference/mobile_outputs.py mobilenet_v2:64 nasnet_a_mobile:224
"""
import json
import sys
from pathlib import Path

import torch
import torchvision

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from pretrainedmodels_counts import load_class  # noqa: E402
from seeded_weights import seeded_input, seeded_weights  # noqa: E402

OUT = HERE / "mobile_outputs"
NUM_CLASSES = 10


def reference_module(name):
    if name == "nasnet_a_mobile":
        return load_class("models/nasnet_mobile.py", "NASNetAMobile")(num_classes=NUM_CLASSES), "pretrainedmodels 0.7.4"
    return torchvision.models.get_model(name, weights=None, num_classes=NUM_CLASSES), \
        f"torchvision {torchvision.__version__}"


def main(args):
    OUT.mkdir(exist_ok=True)
    for arg in args:
        name, size = arg.split(":")
        size = int(size)
        model, source = reference_module(name)
        model = model.double().eval()
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        ws = seeded_weights(shapes)
        missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in ws.items()}, strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
        with torch.no_grad():
            logits = model(torch.from_numpy(seeded_input(size)))
        rec = dict(model=name, input=[3, size, size], num_classes=NUM_CLASSES, weights_seed=0, input_seed=1,
                   logits=[float(v) for v in logits[0]], source=f"{source}, torch {torch.__version__}, float64")
        (OUT / f"{name}_{size}.json").write_text(json.dumps(rec, indent=1))
        print(name, size, [round(v, 4) for v in rec["logits"][:4]])


if __name__ == "__main__":
    main(sys.argv[1:])
