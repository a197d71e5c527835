"""Write timm's reference counts for the zoo models torchvision does not ship.

Same record as torchvision_counts.py (params, buffers, hook-counted conv + linear MACs,
state_dict names and shapes), taken from timm's real modules. Needs torch, torchvision and
timm (none of them project dependencies). Usage:

    python tests/reference/timm_counts.py inception_v4:299 inception_resnet_v2:299

The JSON files land in tests/reference/timm/; tests/test_zoo_inception_densenet.py compares
the zoo against them.
"""
import json
import sys
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).parent))
from torchvision_counts import count  # noqa: E402  (the same forward hooks)

OUT = Path(__file__).with_name("timm")


def main(args):
    OUT.mkdir(exist_ok=True)
    for arg in args:
        name, _, size = arg.partition(":")
        size = int(size or 224)
        model = timm.create_model(name, pretrained=False)
        params = sum(p.numel() for p in model.parameters())
        buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
        macs = count(model, size)
        rec = dict(model=name, kwargs={}, input=[3, size, size], params=params, buffers=buffers,
                   conv_macs=macs["conv"], linear_macs=macs["linear"], macs=macs["conv"] + macs["linear"],
                   state_dict={k: list(v.shape) for k, v in model.state_dict().items()
                               if not k.endswith("num_batches_tracked")},
                   source=f"timm {timm.__version__}, torch {torch.__version__}")
        tag = name + (f"_{size}" if size != 224 else "")
        (OUT / f"{tag}.json").write_text(json.dumps(rec, indent=1))
        print(f"{tag}: params {params:,}  MACs {rec['macs']:,}")


if __name__ == "__main__":
    main(sys.argv[1:])
