"""Write the logits of torchvision's (and timm's) real modules run with cnngraph's seeded weights.

For each model: build the zoo graph, draw ``cnngraph.compiler.weights.init(g, seed=0, random_bn=True)``
(torchvision state_dict names), load those arrays into the library's own module with
``load_state_dict(strict=True)`` (only ``num_batches_tracked`` may be missing), run it in eval
mode on a seeded input and store the logits. tests/test_zoo_inception_densenet.py recomputes
them from the graph alone (cnngraph.interop.torch_ref) and compares: a check of branch order, pooling
modes, padding and BN epsilon that parameter and MAC counts cannot see.

Needs torch, torchvision (and timm for ``:timm`` models); none are project dependencies:

    python tests/reference/torchvision_outputs.py googlenet:224 densenet121:224 inception_v4:299:timm
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # cnngraph itself needs only sympy and networkx, both torch dependencies
import cnngraph  # noqa: E402
import dsl  # noqa: E402  (installed as cnngraph.dsl; mapped by hand when running from the checkout)

sys.modules.setdefault("cnngraph.dsl", dsl)
cnngraph.dsl = sys.modules["cnngraph.dsl"]
from cnngraph import zoo  # noqa: E402
from cnngraph.compiler import weights

OUT = Path(__file__).with_name("outputs")
SEED = 0
KWARGS = {"googlenet": dict(aux_logits=False, init_weights=False),
          "inception_v3": dict(aux_logits=False, init_weights=False)}


def seeded_input(size, seed=SEED):
    return np.random.default_rng(seed + 1).standard_normal((1, 3, size, size)).astype(np.float32)


def main(args):
    OUT.mkdir(exist_ok=True)
    for arg in args:
        name, size, source = (arg.split(":") + ["", ""])[:3]
        size, source = int(size or 224), source or "torchvision"
        g = zoo.build(name, input=(3, size, size))
        ws = weights.init(g, seed=SEED, random_bn=True)
        if source == "timm":
            import timm

            model, version = timm.create_model(name, pretrained=False), f"timm {timm.__version__}"
        else:
            model = torchvision.models.get_model(name, weights=None, **KWARGS.get(name, {}))
            version = f"torchvision {torchvision.__version__}"
        missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in ws.items()}, strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
        with torch.no_grad():
            y = model.eval()(torch.from_numpy(seeded_input(size)))
        rec = dict(model=name, source=f"{version}, torch {torch.__version__}", input=[3, size, size], seed=SEED,
                   weights="cnngraph.compiler.weights.init(g, seed, random_bn=True)",
                   input_rule="np.random.default_rng(seed + 1).standard_normal((1, 3, H, W)), float32",
                   logits=[float(v) for v in y[0]])
        (OUT / f"{name}_{size}.json").write_text(json.dumps(rec))
        print(f"{name} at {size}: logits[:3] {rec['logits'][:3]}, max |logit| {float(y.abs().max()):.4g}")


if __name__ == "__main__":
    main(sys.argv[1:])
