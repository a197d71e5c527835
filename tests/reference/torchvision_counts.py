"""Write torchvision's reference counts for zoo models: one JSON file per model.

Counts come from torchvision's real modules, not from cnngraph: parameters are
``sum(p.numel() for p in model.parameters())``; multiply-adds are counted by forward hooks
on every ``Conv2d`` (C_out·H'·W'·C_in/G·kh·kw) and ``Linear`` (in·out) at the given input.

Needs torch and torchvision (not project dependencies). Usage:

    python tests/reference/torchvision_counts.py resnet50 alexnet:227 googlenet:224:aux_logits=False

Each argument is ``name[:input size][:kwarg=value,...]``; the JSON files land in
tests/reference/torchvision/ and tests compare the zoo against them.
"""
import json
import sys
from pathlib import Path

import torch
import torchvision

OUT = Path(__file__).with_name("torchvision")


def count(model, size):
    macs = {"conv": 0, "linear": 0}

    def conv_hook(m, inp, out):
        kh, kw = m.kernel_size
        macs["conv"] += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, inp, out):
        macs["linear"] += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return macs


def main(args):
    OUT.mkdir(exist_ok=True)
    for arg in args:
        parts = arg.split(":")
        name, size = parts[0], int(parts[1]) if len(parts) > 1 and parts[1] else 224
        kwargs = {}
        if len(parts) > 2:
            for kv in parts[2].split(","):
                k, v = kv.split("=")
                kwargs[k] = {"True": True, "False": False}.get(v, v)
        model = torchvision.models.get_model(name, weights=None, **kwargs)
        params = sum(p.numel() for p in model.parameters())
        buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
        macs = count(model, size)
        rec = dict(model=name, kwargs={k: str(v) for k, v in kwargs.items()}, input=[3, size, size], params=params,
                   buffers=buffers, conv_macs=macs["conv"], linear_macs=macs["linear"],
                   macs=macs["conv"] + macs["linear"],
                   state_dict={k: list(v.shape) for k, v in model.state_dict().items()
                               if not k.endswith("num_batches_tracked")},
                   source=f"torchvision {torchvision.__version__}, torch {torch.__version__}")
        tag = name + (f"_{size}" if size != 224 else "")
        (OUT / f"{tag}.json").write_text(json.dumps(rec, indent=1))
        print(f"{tag}: params {params:,}  MACs {rec['macs']:,}")


if __name__ == "__main__":
    main(sys.argv[1:])
