"""Pictures of tuned optimizer paths on a 2-D test function: contour, 3-D surface, animation.

Every number drawn comes from a :class:`~optarena.functions.fair_tuning.Study`: the paths
are the tuned configurations run from the common start, the legend gives the tuned values
and the held-out medians. Contour levels are log-spaced in ``f - min_value`` so that the
valley floor and the walls are both visible.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from optarena.functions.fair_tuning import Study, Tuned

SURFACE_FLOOR_DECADES = 4
"""The 3-D panel shows ``log10(f - f* + eps)`` with ``eps`` this many decades below the grid's median gap."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, out: str | Path, dpi: int = 100) -> None:
    """Save ``fig`` as a PNG with an adaptive 256-colour palette (several times smaller, same look)."""
    import io

    from PIL import Image

    from optarena.files import write_atomically

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    quantized = io.BytesIO()
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(
            quantized, format="PNG", optimize=True
        )
    write_atomically(out, quantized.getvalue())


def _box(study: Study) -> str:
    return " x ".join(f"[{low:g}, {high:g}]" for low, high in study.function.start_region)


def _point(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def legend_label(result: Tuned, width: int = 10, settings_width: int = 12) -> str:
    """``adam  lr=0.0788  f-f* 2.9e-02  dist 0.40  diverged 0%``: tuned values and held-out medians."""
    gap, distance = result.median_gap, result.median_distance
    gap_text = f"{gap:.1e}" if math.isfinite(gap) else "inf"
    distance_text = f"{distance:.2g}" if math.isfinite(distance) else "inf"
    return (
        f"{result.name:<{width}}{result.settings():<{settings_width}}  f-f* {gap_text:>9}  "
        f"dist {distance_text:>8}  diverged {result.diverged_fraction:>4.0%}"
    )


def caption(study: Study) -> str:
    """What was tuned, how, and what the legend's numbers are."""
    budget, function = study.budget, study.function
    tuned = "learning rate" if budget.tune == "lr" else "declared hyperparameters"
    strategy = "quasi-random (scrambled Halton)" if budget.strategy == "quasi-random" else "TPE (Optuna)"
    runs = f"{budget.starts} random starts in {_box(study)}"
    noisy = getattr(function, "noise", None)
    if noisy is not None:
        runs += f" x {budget.seeds} noise seed{'s' if budget.seeds != 1 else ''}"
    measure = "log10(f - f*)" if budget.objective == "loss" else "log10(distance to the nearest minimum)"
    return (
        f"Each optimizer's {tuned}: best of the same {budget.trials} {strategy} trials over its declared range, "
        f"scored by the {budget.quantile:.0%} quantile of the final {measure} over {runs}.\n"
        f"Legend: tuned values, then medians over as many held-out starts of the final f - f* and distance "
        f"to the nearest minimum. Paths: {budget.steps} steps from {_point(function.start)}."
    )


def _colors(n: int) -> list:
    """Distinct colours, leaving out the greys that the contour shading uses."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 9 else "tab20")
    palette = [c for i, c in enumerate(cmap.colors) if (i != 7 if cmap.N == 10 else i not in (14, 15))]
    return [palette[i % len(palette)] for i in range(n)]


def _levels(gap: np.ndarray, count: int = 22) -> np.ndarray:
    positive = gap[gap > 0]
    low = max(np.quantile(positive, 0.001), positive.max() * 1e-9)
    return np.logspace(math.floor(math.log10(low)), math.log10(positive.max()), count)


def _draw_contour(ax, study: Study, resolution: int = 300) -> None:
    from matplotlib.colors import LogNorm

    function = study.function
    X, Y, Z = (t.numpy() for t in function.grid(resolution))
    gap = np.maximum(Z - function.min_value, 1e-300)
    levels = _levels(gap)
    ax.contourf(
        X, Y, gap, levels=levels, norm=LogNorm(levels[0], levels[-1]), cmap="Greys_r", alpha=0.45, extend="both"
    )
    ax.contour(X, Y, gap, levels=levels, norm=LogNorm(levels[0], levels[-1]), colors="0.45", linewidths=0.5)
    minima = np.asarray(function.minima)
    ax.plot(
        minima[:, 0],
        minima[:, 1],
        "*",
        color="gold",
        markersize=17,
        markeredgecolor="black",
        zorder=5,
        label="_minimum",
    )
    ax.plot(*function.start, "o", color="white", markersize=8, markeredgecolor="black", zorder=5)
    (x0, x1), (y0, y1) = function.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_aspect("auto")


def _path(result: Tuned) -> np.ndarray:
    return result.from_start.points[:, 0, :].numpy()


def _inside(points: np.ndarray, bounds) -> np.ndarray:
    """``points`` with those outside the box (and after divergence) set to nan, for the 3-D panel."""
    (x0, x1), (y0, y1) = bounds
    out = points.copy()
    outside = (out[:, 0] < x0) | (out[:, 0] > x1) | (out[:, 1] < y0) | (out[:, 1] > y1) | ~np.isfinite(out).all(1)
    out[outside] = np.nan
    return out


def _draw_surface(ax, study: Study, colors: list, resolution: int = 120) -> None:
    function = study.function
    X, Y, Z = (t.numpy() for t in function.grid(resolution))
    gap = np.maximum(Z - function.min_value, 0.0)
    # log10(gap + eps), eps some decades below the typical height, so valleys and walls both show.
    eps = 10.0 ** (math.floor(math.log10(max(float(np.median(gap)), 1e-300))) - SURFACE_FLOOR_DECADES)
    height = np.log10(gap + eps)
    ax.plot_surface(
        X, Y, height, cmap="viridis", alpha=0.5, linewidth=0, antialiased=True, rcount=60, ccount=60, zorder=1
    )
    for result, color in zip(study.results, colors):
        points = _inside(_path(result), function.bounds)
        with np.errstate(invalid="ignore"):
            z = np.log10(np.maximum(result.from_start.values[:, 0].numpy() - function.min_value, 0.0) + eps)
        z[~np.isfinite(points).all(axis=1)] = np.nan
        ax.plot(points[:, 0], points[:, 1], z, color=color, linewidth=1.8, zorder=3)
    for minimum in function.minima:
        # At the surface's lowest drawn height near the minimum (the grid rarely hits it exactly).
        row, col = np.unravel_index(np.argmin((X - minimum[0]) ** 2 + (Y - minimum[1]) ** 2), X.shape)
        ax.scatter(
            [minimum[0]],
            [minimum[1]],
            [height[row, col]],
            marker="*",
            s=200,
            color="gold",
            edgecolor="black",
            zorder=4,
            depthshade=False,
        )
    ax.set_zlim(float(height.min()), float(height.max()))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel(f"log10(f - f* + {eps:.0e})")
    ax.view_init(elev=40, azim=-120)


def trajectory_figure(study: Study, out: str | Path | None = None, surface: bool = True, dpi: int = 100):
    """The contour panel with every tuned path (and the 3-D surface panel); saved to ``out`` if given."""
    if study.function.dim != 2:
        raise ValueError(f"{study.function.name} has {study.function.dim} dimensions; only 2-D functions can be drawn")
    plt = _pyplot()
    colors = _colors(len(study.results))
    fig = plt.figure(figsize=(14.5, 7.6) if surface else (8.5, 7.9))
    if surface:
        grid = fig.add_gridspec(
            1, 2, width_ratios=[1.0, 1.08], left=0.05, right=0.98, top=0.92, bottom=0.27, wspace=0.08
        )
        ax = fig.add_subplot(grid[0, 0])
        ax3 = fig.add_subplot(grid[0, 1], projection="3d", computed_zorder=False)
    else:
        ax = fig.add_axes((0.1, 0.36, 0.85, 0.57))
    _draw_contour(ax, study)
    width = max(len(r.name) for r in study.results) + 2
    settings_width = max(len(r.settings()) for r in study.results)
    count = len(study.results)
    for index, (result, color) in enumerate(zip(study.results, colors)):
        points = _path(result)
        label = legend_label(result, width, settings_width)
        # Earlier paths are drawn wider, so that a path another one retraces still shows at its edges.
        width_here = 2.5 - 1.2 * index / max(count - 1, 1)
        ax.plot(points[:, 0], points[:, 1], color=color, linewidth=width_here, label=label, zorder=4)
        ax.plot(points[-1, 0], points[-1, 1], "o", color=color, markersize=6, markeredgecolor="black", zorder=6)
    if surface:
        _draw_surface(ax3, study, colors)
    function = study.function
    title = getattr(function, "label", function.name)
    fig.suptitle(
        f"{title}: {function.formula}. {study.budget.steps} steps from {_point(function.start)}, "
        f"{'learning rates' if study.budget.tune == 'lr' else 'hyperparameters'} tuned with the same budget",
        fontsize=12,
    )
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.065),
        ncol=2 if surface else 1,
        prop={"family": "monospace", "size": 8.5},
        frameon=False,
    )
    fig.text(0.5, 0.008, caption(study), ha="center", va="bottom", fontsize=8.5, color="0.25", wrap=True)
    if out is not None:
        save_png(fig, out, dpi)
        plt.close(fig)
    return fig


def trajectory_animation(study: Study, out: str | Path, frames: int = 100, fps: int = 20, dpi: int = 80) -> int:
    """A GIF of the paths growing on the contour panel; returns the number of frames written."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    from optarena.files import atomic_path

    if study.function.dim != 2:
        raise ValueError(f"{study.function.name} has {study.function.dim} dimensions; only 2-D functions can be drawn")
    plt = _pyplot()
    colors = _colors(len(study.results))
    fig, ax = plt.subplots(figsize=(7.5, 6.4))
    fig.subplots_adjust(left=0.09, right=0.97, top=0.92, bottom=0.09)
    _draw_contour(ax, study)
    paths = [_path(result) for result in study.results]
    lines = [ax.plot([], [], color=c, linewidth=1.8, label=r.name)[0] for r, c in zip(study.results, colors)]
    heads = [ax.plot([], [], "o", color=c, markersize=6, markeredgecolor="black")[0] for c in colors]
    ax.legend(loc="upper left", fontsize=8, ncol=2, framealpha=0.85)
    steps = study.budget.steps
    # Half the frames evenly spaced, half geometrically (most paths move fastest early on).
    count = max(2, min(frames, steps + 1))
    even = np.linspace(0, steps, count - count // 2)
    early = np.geomspace(1, max(steps, 1), count // 2) if count // 2 else np.empty(0)
    marks = np.unique(np.concatenate([even, early]).round().astype(int))
    title = ax.set_title("")

    def draw(index: int):
        t = int(marks[index])
        for line, head, points in zip(lines, heads, paths):
            line.set_data(points[: t + 1, 0], points[: t + 1, 1])
            head.set_data(points[t : t + 1, 0], points[t : t + 1, 1])
        title.set_text(f"{study.function.name}: step {t} of {steps}")
        return [*lines, *heads, title]

    animation = FuncAnimation(fig, draw, frames=len(marks), blit=False)
    with atomic_path(out) as temporary:
        animation.save(str(temporary), writer=PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return len(marks)
