"""Write reference counts for zoo models that torchvision lacks, from Cadene's PyTorch port
(the ``pretrainedmodels`` package, 0.7.4): one JSON file per model, same fields as
torchvision_counts.py (parameters, buffers, hook-counted multiply-adds, state_dict shapes).

Needs torch and pretrainedmodels (not project dependencies; the package's ``__init__``
imports extra packages, so only the model file is loaded). Usage:

    python tests/reference/pretrainedmodels_counts.py nasnetamobile

The JSON files land in tests/reference/pretrainedmodels/.
"""
import importlib.util
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from torchvision_counts import count  # noqa: E402  (the same forward-hook counter)

OUT = Path(__file__).with_name("pretrainedmodels")

# name -> (module file inside the package, class, constructor kwargs, input size)
MODELS = {"nasnetamobile": ("models/nasnet_mobile.py", "NASNetAMobile", dict(num_classes=1000), 224)}


def load_class(relpath, cls):
    spec = importlib.util.find_spec("pretrainedmodels")  # locates the package without importing it
    path = Path(spec.submodule_search_locations[0]) / relpath
    mspec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return getattr(mod, cls)


def main(args):
    OUT.mkdir(exist_ok=True)
    from importlib.metadata import version

    for name in args:
        relpath, cls, kwargs, size = MODELS[name]
        model = load_class(relpath, cls)(**kwargs)
        params = sum(p.numel() for p in model.parameters())
        buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
        macs = count(model, size)
        rec = dict(model=name, kwargs={k: str(v) for k, v in kwargs.items()}, input=[3, size, size], params=params,
                   buffers=buffers, conv_macs=macs["conv"], linear_macs=macs["linear"],
                   macs=macs["conv"] + macs["linear"],
                   state_dict={k: list(v.shape) for k, v in model.state_dict().items()
                               if not k.endswith("num_batches_tracked")},
                   source=f"pretrainedmodels {version('pretrainedmodels')}, torch {torch.__version__}")
        (OUT / f"{name}.json").write_text(json.dumps(rec, indent=1))
        print(f"{name}: params {params:,}  MACs {rec['macs']:,}")


if __name__ == "__main__":
    main(sys.argv[1:])
