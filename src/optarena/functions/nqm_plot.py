"""The NQM picture: expected loss over time at one learning rate, and steps to a target per batch size.

Left: the closed-form expected loss of SGD, heavy-ball momentum and Lookahead(SGD) at the
same learning rate and batch size (lines), the mean over simulated runs of optarena's
optimizers (dots) and each method's steady state (dashed). Right: the fewest steps to reach
the target loss as the batch size grows, each method's learning rate tuned per batch size
on the closed form (Zhang et al. 2019, https://arxiv.org/abs/1907.04164).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from optarena.functions.nqm_study import NQMReport
from optarena.functions.plots import _pyplot, save_png

LABELS = {"sgd": "SGD", "momentum": "heavy-ball momentum", "lookahead": "Lookahead(SGD)"}
COLORS = {"sgd": "tab:blue", "momentum": "tab:orange", "lookahead": "tab:green"}


def method_label(report: NQMReport, method: str) -> str:
    options = report.options.get(method, {})
    if method == "momentum":
        return f"{LABELS[method]} (beta={options.get('momentum'):g})"
    if method == "lookahead":
        return f"{LABELS[method]} (k={options.get('k')}, alpha={options.get('alpha'):g})"
    return LABELS[method]


def nqm_figure(report: NQMReport, out: str | Path | None = None, dpi: int = 100):
    """Draw the two panels; saved to ``out`` if given."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13.5, 5.6))
    fig.subplots_adjust(left=0.06, right=0.98, top=0.86, bottom=0.2, wspace=0.2)
    steps = np.arange(report.steps + 1)
    marks = np.unique(np.geomspace(1, report.steps, 28).round().astype(int))
    for method, curve in report.curves.items():
        color = COLORS[method]
        values = curve.numpy()
        sim = report.simulations[method]
        where = marks
        if method == "lookahead":
            # The fast weights wander between syncs (faint); the line joins the synced weights.
            k = report.options["lookahead"]["k"]
            left.plot(steps, values, color=color, linewidth=0.6, alpha=0.3)
            synced = steps[::k]
            left.plot(
                synced, values[::k], color=color, linewidth=1.8, label=f"{method_label(report, method)}, at sync steps"
            )
            where = np.unique((marks // k) * k)
        else:
            left.plot(steps, values, color=color, linewidth=1.8, label=method_label(report, method))
        left.errorbar(
            where,
            sim.mean.numpy()[where],
            yerr=2 * sim.stderr.numpy()[where],
            fmt="o",
            color=color,
            markersize=4,
            markeredgecolor="black",
            markeredgewidth=0.5,
            elinewidth=0.8,
        )
        steady = report.steady[method]
        if math.isfinite(steady):
            left.axhline(steady, color=color, linestyle="--", linewidth=1.0)
            left.annotate(
                f"{steady:.3g}",
                (report.steps, steady),
                xytext=(3, 0),
                textcoords="offset points",
                color=color,
                fontsize=8,
                va="center",
            )
    runs = next(iter(report.simulations.values())).runs
    left.plot(
        [],
        [],
        "o",
        color="white",
        markeredgecolor="black",
        markersize=4,
        label=f"dots: mean of {runs} simulated runs, +- 2 s.e.",
    )
    left.plot([], [], "--", color="0.3", linewidth=1.0, label="dashed: steady state")
    left.set_xscale("symlog", linthresh=10)
    left.set_yscale("log")
    lowest = min(
        [v for v in report.steady.values() if math.isfinite(v)] + [float(c.min()) for c in report.curves.values()]
    )
    left.set_ylim(lowest / 4, report.initial_loss * 1.3)
    left.set_xlim(0, report.steps)
    left.set_xlabel("step")
    left.set_ylabel("expected loss")
    left.set_title(
        f"Expected loss at the same learning rate {report.lr:g}, batch size {report.batch_size:g}", fontsize=10.5
    )
    left.legend(fontsize=8, loc="lower left", ncol=1)
    left.grid(True, which="major", alpha=0.3)

    for result in report.sweep:
        color = COLORS[result.method]
        right.plot(
            result.batch_sizes, result.steps, "o-", color=color, markersize=4, label=method_label(report, result.method)
        )
    first = report.sweep[0]
    finite = [s for r in report.sweep for s in r.steps if math.isfinite(s)]
    if math.isfinite(first.steps[0]) and finite:
        b = np.asarray(first.batch_sizes)
        ideal = first.steps[0] * b[0] / b
        keep = ideal >= min(finite) / 3
        right.plot(b[keep], ideal[keep], ":", color="0.4", label="perfect scaling (steps x batch size = const)")
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set_xlabel("batch size")
    right.set_ylabel(f"steps to reach loss {report.target:.3g}")
    right.set_title(
        f"Steps to {report.target / report.initial_loss:.0%} of the initial loss, learning rate tuned per batch size",
        fontsize=10.5,
    )
    right.legend(fontsize=8)
    right.grid(True, which="major", alpha=0.3)
    fig.suptitle(
        f"Noisy quadratic model (Zhang et al. 2019): d={report.dim}, curvatures h_i = 1/i, "
        f"gradient noise N(0, C/B) with C = diag(1/i)",
        fontsize=12,
    )
    fig.text(
        0.5,
        0.015,
        "Left: lines are exact expected losses from the second-moment recursions; dots are means over runs of "
        "optarena's SGD and momentum (Lookahead: slow weights every k steps around SGD), +- 2 standard errors.\n"
        "Right: the closed form, each method's learning rate the best of a log grid (1e-4 to 10, refined) "
        "at every batch size; Lookahead counted at its sync steps.",
        ha="center",
        va="bottom",
        fontsize=8.5,
        color="0.25",
    )
    if out is not None:
        save_png(fig, out, dpi)
        plt.close(fig)
    return fig
