"""Pictures of curvature: sharpness against the stability threshold along training, spectral densities.

Figures are made directly (no pyplot state). :func:`write_figure` writes one atomically: to a
temporary file beside the target, then renamed over it, so a reader never sees half a file.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from optarena.diagnostics.density import SpectralDensity
from optarena.diagnostics.sharpness import SharpnessRun

FLOOR = 1e-6
"""Density plots show values down to this fraction of the highest peak (a log scale has no zero)."""
COLORS = ("#1b6ac9", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")


def sharpness_figure(runs: Sequence[SharpnessRun], title: str = "") -> Figure:
    """One column per run: the training loss (top, log scale) and the sharpness against the threshold (bottom)."""
    if not runs:
        raise ValueError("give at least one run to draw")
    figure = Figure(figsize=(max(5.6, 4.2 * len(runs)), 6.4), layout="constrained")
    axes = figure.subplots(2, len(runs), squeeze=False, sharex="col")
    for column, (run, color) in enumerate(zip(runs, COLORS * len(runs))):
        loss_ax, sharp_ax = axes[0, column], axes[1, column]
        losses = np.asarray(run.losses, dtype=float)
        steps = np.arange(len(losses))
        finite = np.isfinite(losses) & (losses > 0)
        loss_ax.plot(steps[finite], losses[finite], color=color, lw=1.2)
        loss_ax.set_yscale("log")
        loss_ax.set_title(f"{run.name}, lr {run.lr:g}", fontsize=11)
        loss_ax.grid(True, which="major", alpha=0.3)
        if column == 0:
            loss_ax.set_ylabel("training loss")
        sharp_ax.plot(run.measured_at, run.sharpness, color=color, lw=1.4, marker="o", ms=2.2)
        sharp_ax.axhline(run.threshold, color="k", ls="--", lw=1.0)
        sharp_ax.annotate(
            f"{run.threshold_label} = {run.threshold:.4g}",
            xy=(1.0, run.threshold),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=9,
        )
        top = max([run.threshold * 1.25, *(s * 1.05 for s in run.sharpness if np.isfinite(s))])
        sharp_ax.set_ylim(0, top)
        sharp_ax.set_xlabel("step")
        sharp_ax.set_ylabel("preconditioned sharpness  λ₁(P⁻¹H)" if run.preconditioned else "sharpness  λ₁(H)")
        sharp_ax.grid(True, alpha=0.3)
        if run.diverged_at is not None:
            loss_ax.axvline(run.diverged_at, color="r", lw=0.8)
            loss_ax.text(run.diverged_at, 0.5, " diverged", color="r", transform=loss_ax.get_xaxis_transform())
    if title:
        figure.suptitle(title, fontsize=12)
    return figure


def density_figure(densities: Sequence[SpectralDensity], labels: Sequence[str], title: str = "") -> Figure:
    """The spectral densities on one log-scale axis, one curve per label."""
    if len(densities) != len(labels) or not densities:
        raise ValueError("give one label per density, and at least one density")
    figure = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = figure.subplots()
    peak = max(float(d.density.max()) for d in densities)
    floor = peak * FLOOR
    for density, label, color in zip(densities, labels, COLORS * len(labels)):
        values = density.density.numpy()
        ax.plot(density.grid.numpy(), np.where(values > floor, values, np.nan), color=color, lw=1.2, label=label)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (Gaussian-broadened)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title, fontsize=11)
    return figure


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_figure(figure: Figure, out: str | Path, dpi: int = 120) -> Path:
    """Save ``figure`` to ``out`` (its suffix picks the format: png, svg, pdf) atomically; returns the path.

    PNGs are stored with an adaptive 256-colour palette: several times smaller, the same look.
    """
    out = Path(out)
    kind = out.suffix.lower().lstrip(".") or "png"
    buffer = io.BytesIO()
    figure.savefig(buffer, format=kind, dpi=dpi)
    data = buffer.getvalue()
    if kind == "png":
        from PIL import Image

        buffer.seek(0)
        packed = io.BytesIO()
        with Image.open(buffer) as image:
            image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(
                packed, "PNG", optimize=True
            )
        data = packed.getvalue()
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return out
