"""The numbers and figures of docs/design-space.md: sweeps, exact answers, measured latency.

    .venv/bin/python benchmarks/design_space_docs.py [--out docs/design-space] [--sample 8]

Writes ``latency.svg`` (multiply-adds against predicted latency, with the fronts of the
most multiply-adds per millisecond), ``prediction.svg`` (predicted against measured end to
end) and ``efficientnet.svg`` (the scaling grid: α·β²·γ² against the exact MACs ratio) into
``--out`` and prints every number the page quotes. Latency tables are measured on this
machine's backend (Numba here; CuPy where a GPU is) and cached (``cnngraph.explore.latency``);
a second run measures only what changed.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from cnngraph.explore import family, pareto, questions, sweep
from cnngraph.explore.latency import add_latency

SPACES = {"mobilenet_v2": "a=0.35..1.4:0.15, r=96..224:32", "resnet50": "a=0.25..1:0.25, r=96..224:64"}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/design-space")
    p.add_argument("--sample", type=int, default=8, help="points per family run end to end")
    p.add_argument("--backend", default="auto")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print("## exact answers")
    for ans in (questions.largest_multiplier("resnet50", 600_000_000, fixed={"r": 224}),
                questions.largest_multiplier("mobilenet_v2", 300_000_000, fixed={"r": 224}),
                questions.equal_cost_resolution("resnet50", {}, "efficientnet_b0", {"r": 224}),
                questions.equal_cost_resolution("mobilenet_v2", {"a": 1.4}, "resnet18", {"r": 224})):
        print("-", ans)

    print("## EfficientNet scaling search")
    t0 = time.perf_counter()
    eff = questions.efficientnet_search(step=0.05)
    print(eff, f"({time.perf_counter() - t0:.1f} s)")
    for r in eff.details["top"]:
        print("  ", r)
    _efficientnet_figure(out / "efficientnet.svg")

    print("## latency")
    tables, errors, layer_errors = {}, {}, {}
    for model, space in SPACES.items():
        fam = family(model)
        t = sweep(fam, space)
        t0 = time.perf_counter()
        t, info = add_latency(t, fam, backend=args.backend, sample=args.sample, seed=0)
        print(f"{model} ({space}): {info.summary()} ({time.perf_counter() - t0:.0f} s)")
        tables[model] = t
        errors[model] = info.errors
        layer_errors[model] = info.layer_errors
        print(t.to_text(60), end="")
    signed = np.concatenate([np.array(e) for e in errors.values()])
    all_err = np.abs(signed)
    print(f"all sampled points: mean |error| {all_err.mean():.1%}, median {np.median(all_err):.1%}, "
          f"max {all_err.max():.1%}, mean signed {signed.mean():+.1%} over {len(all_err)} points; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    le = np.concatenate([np.array(e) for e in layer_errors.values()])
    print(f"against the same layers timed inside their model: mean |error| {np.abs(le).mean():.1%}, "
          f"median {np.median(np.abs(le)):.1%}, max {np.abs(le).max():.1%}, mean signed {le.mean():+.1%}")
    fig = pareto.draw_panels([pareto.plot_data(tables, "latency_ms", "max:macs"),
                              pareto.plot_data(tables, "latency_ms", "max:params")],
                             "Counted cost and predicted latency (Numba backend, batch 1)")
    pareto.save_plot(fig, out / "latency.svg")
    _prediction_figure(tables, out / "prediction.svg")
    print(f"wrote {out}/latency.svg, prediction.svg, efficientnet.svg")


def _prediction_figure(tables, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    hi = 0
    for i, (name, t) in enumerate(tables.items()):
        m = np.isfinite(t["measured_ms"])
        ax.scatter(t["measured_ms"][m], t["latency_ms"][m], s=18, color=pareto.COLOURS[i],
                   label=f"{name}: whole runs")
        ax.scatter(t["measured_layers_ms"][m], t["latency_ms"][m], s=18, facecolors="none",
                   edgecolors=pareto.COLOURS[i], label=f"{name}: its layers timed inside the run")
        hi = max(hi, float(np.nanmax(t["measured_ms"])), float(t["latency_ms"][m].max()))
    ax.plot([0, hi], [0, hi], color="#868e96", linewidth=0.8, label="prediction = measurement")
    _finish(fig, ax, "measured end to end (ms, fastest of 15 runs)", "predicted: sum of measured layers (ms)", path)


def _efficientnet_figure(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnngraph.explore.sweep import evaluate

    vals = np.round(np.arange(1.0, 2.0 + 1e-9, 0.05), 4)
    A, B, G = (m.ravel() for m in np.meshgrid(vals, vals, vals, indexing="ij"))
    law = A * B**2 * G**2
    keep = law <= 3.0
    A, B, G, law = A[keep], B[keep], G[keep], law[keep]
    R = np.rint(224 * G).astype(np.int64)
    fam = family("efficientnet_b0")
    base = evaluate(fam, {"a": np.array([1.0]), "d": np.array([1.0]), "r": np.array([224])}, fields=("macs",))["macs"][0]
    ratio = evaluate(fam, {"a": B, "d": A, "r": R}, fields=("macs",))["macs"] / base
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    ax.scatter(law, ratio, s=4, color="#1c7ed6", alpha=0.35, linewidths=0, label=f"grid, step 0.05 ({len(law)} points)")
    p = np.isclose(A, 1.2) & np.isclose(B, 1.1) & np.isclose(G, 1.15)
    ax.scatter(law[p], ratio[p], s=40, color="#e8590c", label="paper: α=1.2, β=1.1, γ=1.15 (r=258)")
    ax.plot([1, 3], [1, 3], color="#868e96", linewidth=0.8, label="MACs ratio = α·β²·γ²")
    ax.axvspan(1.8, 2.2, color="#fab005", alpha=0.15, label="α·β²·γ² within ±10 % of 2")
    _finish(fig, ax, "α·β²·γ² (the paper's FLOPs law)", "exact MACs / B0's, from the closed form", path)


def _finish(fig, ax, xlabel, ylabel, path):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, frameon=False)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    fig.tight_layout()
    pareto.save_plot(fig, path)


if __name__ == "__main__":
    main()
