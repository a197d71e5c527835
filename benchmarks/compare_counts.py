"""What cnngraph, torchinfo, fvcore and ptflops count on the same torchvision models.

    python benchmarks/compare_counts.py [model ...]     (default: resnet50 mobilenet_v3_large)

Prints each tool's parameter and multiply-add totals at 3×224×224, and cnngraph's own split
(conv+linear MACs, other operations by kind) so the differences can be read off: see
docs/own-models.md for what each tool counts.
"""
from __future__ import annotations

import sys
import warnings


def counts(name):
    import torch
    import torchvision

    import cnngraph

    torch.set_num_threads(1)
    m = torchvision.models.get_model(name, weights=None).eval()
    x = torch.zeros(1, 3, 224, 224)
    out = {}
    r = cnngraph.analyze(cnngraph.from_torch(m, input=(3, 224, 224)))
    kinds = {}
    for row in r.rows:
        kinds[row.kind] = kinds.get(row.kind, 0) + row.all_ops
    out["cnngraph"] = dict(params=r.total.params, macs=r.total.macs,
                           note="other ops: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in sorted(kinds.items()) if v))
    import torchinfo

    s = torchinfo.summary(m, input_size=(1, 3, 224, 224), verbose=0)
    out["torchinfo"] = dict(params=s.total_params, macs=s.total_mult_adds, note="total_mult_adds")
    from fvcore.nn import FlopCountAnalysis

    a = FlopCountAnalysis(m, x)
    a.unsupported_ops_warnings(False)
    a.uncalled_modules_warnings(False)
    by_op = a.by_operator()
    out["fvcore"] = dict(params=sum(p.numel() for p in m.parameters()), macs=a.total(),
                         note="by operator: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in sorted(by_op.items())))
    import ptflops

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macs, params = ptflops.get_model_complexity_info(m, (3, 224, 224), print_per_layer_stat=False,
                                                         as_strings=False, verbose=False)
    out["ptflops"] = dict(params=params, macs=macs, note="pytorch backend (module hooks)")
    return out


def main(names):
    for name in names:
        print(f"{name} at 3×224×224")
        res = counts(name)
        base = res["cnngraph"]["macs"]
        for tool, r in res.items():
            print(f"  {tool:10s} params {r['params']:>12,}  MACs {int(r['macs']):>15,}  ({r['macs'] / base:.4f}× cnngraph)  {r['note']}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["resnet50", "mobilenet_v3_large"])
