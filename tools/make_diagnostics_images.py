"""Regenerate the pictures of docs/diagnostics.md from real runs, and print the figures the page quotes.

    .venv/bin/python tools/make_diagnostics_images.py        (about two minutes on one core)

1. ``sharpness.png``: ``optarena sharpness`` with its defaults (digits-mlp, squared error, full
   batch, sgd / momentum / adam, 1,000 steps).
2. ``sharpness_learning_rates.png``: gradient descent at three learning rates, each sharpness
   against its own 2/lr.
3. ``sharpness_cross_entropy.png``: ``optarena sharpness --loss workload`` (cross-entropy) for
   gradient descent at lr 1.
4. ``hessian_spectrum.png``: the Hessian's eigenvalue density (stochastic Lanczos quadrature)
   of digits-mlp's cross-entropy at its start and after 500 full-batch gradient-descent steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from matplotlib.figure import Figure

from optarena.cli import main as optarena
from optarena.diagnostics import hessian_eigenvalues, hessian_trace, spectral_density
from optarena.diagnostics.plot import COLORS, density_figure, write_figure
from optarena.diagnostics.sharpness import squared_error, track_sharpness
from optarena.landscape.workloads import get_workload

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
LEARNING_RATES = (0.2, 0.25, 0.3)


def learning_rate_sweep(out: Path) -> None:
    workload = get_workload("digits-mlp")
    batch = workload.data
    figure = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax = figure.subplots()
    for lr, color in zip(LEARNING_RATES, COLORS):
        model = workload.make_model(0)
        run = track_sharpness(
            model, squared_error, batch, torch.optim.SGD(model.parameters(), lr=lr), steps=1500, every=20
        )
        ax.plot(run.measured_at, run.sharpness, color=color, lw=1.4, label=f"lr {lr:g}")
        ax.axhline(2 / lr, color=color, ls="--", lw=1.0)
        tail = [r for t, r in zip(run.measured_at, run.ratios) if t >= 500]
        print(
            f"  gradient descent lr {lr:g}: first {run.ratios[0]:.2f}, max {max(run.ratios):.2f}, "
            f"steps 500-1500 between {min(tail):.2f} and {max(tail):.2f} of 2/lr; "
            f"loss {run.losses[0]:.3f} -> {run.losses[-1]:.4f}"
        )
    ax.set_xlabel("step")
    ax.set_ylabel("sharpness  λ₁(H)")
    ax.set_ylim(0, 12)
    ax.grid(True, alpha=0.3)
    ax.legend(title="gradient descent (dashed: 2/lr)")
    ax.set_title("digits-mlp, squared error, full batch: each run hovers at its own 2/lr", fontsize=11)
    write_figure(figure, out)


def spectrum(out: Path) -> None:
    workload = get_workload("digits-mlp")
    batch = workload.data
    model = workload.make_model(0)
    densities, labels = [], []
    for steps in (0, 500):
        if steps:
            optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
            for _ in range(steps):
                optimizer.zero_grad()
                workload.loss_fn(model(batch[0]), batch[1]).backward()
                optimizer.step()
            model.zero_grad(set_to_none=True)
        loss = float(workload.loss_fn(model(batch[0]), batch[1]).detach())
        top = hessian_eigenvalues(model, workload.loss_fn, batch, k=12)
        trace = hessian_trace(model, workload.loss_fn, batch, probes=200)
        density = spectral_density(model, workload.loss_fn, batch, steps=100, probes=8, sigma=0.01)
        outside = sum(float(w[t > 0.1 * top[0]].sum()) for t, w in zip(density.nodes, density.weights)) / 8
        print(
            f"  after {steps} steps (loss {loss:.3f}): "
            f"top 12 eigenvalues {', '.join(f'{v:.3g}' for v in top.tolist())}; "
            f"trace {trace.value:.3g} +- {trace.standard_error:.2g}; weight above a tenth of the top {outside:.2e}"
        )
        densities.append(density)
        labels.append(
            f"start (loss {loss:.2f})"
            if steps == 0
            else f"after {steps} steps of gradient descent, lr 0.5 (loss {loss:.3f})"
        )
    write_figure(
        density_figure(densities, labels, "digits-mlp, cross-entropy, full batch: Hessian eigenvalue density (SLQ)"),
        out,
    )


def run(arguments: list[str]) -> None:
    print("  optarena " + " ".join(arguments))
    if optarena(arguments) != 0:
        sys.exit(f"optarena {' '.join(arguments)} failed")


def main() -> None:
    torch.set_num_threads(1)
    run(["sharpness", "--out", str(IMAGES / "sharpness.png")])
    print("learning rates:")
    learning_rate_sweep(IMAGES / "sharpness_learning_rates.png")
    run(
        [
            "sharpness",
            "--optimizers",
            "sgd",
            "--loss",
            "workload",
            "--lr",
            "1",
            "--steps",
            "600",
            "--out",
            str(IMAGES / "sharpness_cross_entropy.png"),
        ]
    )
    print("spectrum:")
    spectrum(IMAGES / "hessian_spectrum.png")


if __name__ == "__main__":
    main()
