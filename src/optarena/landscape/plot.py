"""Pictures of loss landscapes: contours with optimizer paths, a 3-D surface, a 1-D line.

Everything draws on a :class:`matplotlib.figure.Figure` made directly (no pyplot state), so
it works the same in scripts, tests and notebooks. ``log=True`` spaces the colour levels (and
the 3-D heights) logarithmically, which keeps the low basin readable next to the high walls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullLocator

from optarena.landscape.path_landscape import PathOnPlane
from optarena.landscape.surface import Line, Surface

VIEWS = ("contour", "surface", "both")
COLORMAP = "viridis"
PATH_COLORS = (
    "#e41a1c",
    "#ff7f00",
    "#f781bf",
    "#a65628",
    "#ffffff",
    "#984ea3",
    "#00e5ff",
    "#ffff33",
    "#4daf4a",
    "#999999",
)
"""Colours that stand out on viridis (the paths would vanish in a same-hued palette)."""


def _levels(surface: Surface, log: bool, count: int) -> tuple[np.ndarray, LogNorm | None]:
    low, high = float(np.min(surface.losses)), float(np.max(surface.losses))
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError("the surface has non-finite losses; shrink the plotted region")
    if high <= low:
        high = low + max(abs(low), 1.0) * 1e-6
    if log:
        if low <= 0:
            raise ValueError(f"log=True needs positive losses; the smallest on the grid is {low:g}")
        return np.geomspace(low, high, count), LogNorm(low, high)
    return np.linspace(low, high, count), None


def plot_contour(ax: Axes, surface: Surface, *, log: bool = False, levels: int = 30):
    """Filled contours of the surface with thin contour lines; returns the filled set for a colour bar."""
    values, norm = _levels(surface, log, levels)
    filled = ax.contourf(
        surface.xs, surface.ys, surface.losses, levels=values, cmap=COLORMAP, norm=norm, extend="neither"
    )
    ax.contour(
        surface.xs, surface.ys, surface.losses, levels=values[::3], colors="k", linewidths=0.3, alpha=0.5, norm=norm
    )
    return filled


def add_colorbar(figure: Figure, filled, ax: Axes, *, log: bool) -> None:
    """A colour bar with a few round tick values (the contour levels themselves are not round)."""
    low, high = filled.levels[0], filled.levels[-1]
    locator = LogLocator(subs=(1.0, 2.0, 5.0)) if log else MaxNLocator(nbins=7)
    ticks = [t for t in locator.tick_values(low, high) if low <= t <= high]
    colorbar = figure.colorbar(filled, ax=ax, shrink=0.9, ticks=ticks)
    colorbar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    colorbar.ax.yaxis.set_minor_locator(NullLocator())
    colorbar.set_label("loss (log scale)" if log else "loss")


def plot_paths(ax: Axes, paths: list[PathOnPlane], legend: Sequence[str] | None = None) -> None:
    """Each path as a line with a dot per checkpoint, a common start marker and an end star.

    ``legend`` replaces the paths' names in the legend.
    """
    labels = list(legend) if legend is not None else [path.name for path in paths]
    for index, (path, label) in enumerate(zip(paths, labels, strict=True)):
        color = PATH_COLORS[index % len(PATH_COLORS)]
        ax.plot(path.xy[:, 0], path.xy[:, 1], "-", color="k", linewidth=3.2, alpha=0.6, zorder=3)
        ax.plot(path.xy[:, 0], path.xy[:, 1], "-o", color=color, linewidth=1.8, markersize=2.5, label=label, zorder=4)
        ax.plot(*path.xy[-1], marker="*", markersize=15, color=color, markeredgecolor="k", zorder=5)
    if paths:
        ax.plot(*paths[0].xy[0], marker="o", markersize=9, color="w", markeredgecolor="k", zorder=6, label="start")


def plot_surface_3d(ax: Axes, surface: Surface, paths: list[PathOnPlane] = (), *, log: bool = False) -> None:
    """The loss as a 3-D surface, with the paths drawn on it at the plane's loss."""
    height = np.log10 if log else (lambda v: v)
    x_grid, y_grid = np.meshgrid(surface.xs, surface.ys)
    ax.plot_surface(x_grid, y_grid, height(surface.losses), cmap=COLORMAP, linewidth=0, antialiased=True, alpha=0.85)
    for index, path in enumerate(paths):
        color = PATH_COLORS[index % len(PATH_COLORS)]
        ax.plot(path.xy[:, 0], path.xy[:, 1], height(path.losses), "-", color=color, linewidth=2.2, zorder=10)
        ax.scatter(*path.xy[-1], height(path.losses[-1]), marker="*", s=160, color=color, edgecolors="k", zorder=11)
    ax.set_zlabel("log10 loss" if log else "loss")
    ax.view_init(elev=30, azim=-60)


def landscape_figure(
    surface: Surface,
    paths: list[PathOnPlane],
    *,
    axis_labels: tuple[str, str] = ("x", "y"),
    title: str = "",
    log: bool = False,
    view: str = "both",
    legend: Sequence[str] | None = None,
) -> Figure:
    """Contours with the optimizer paths, a 3-D surface, or both side by side.

    ``legend`` gives the paths' legend entries (default: their names).
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(repr(v) for v in VIEWS)}; got {view!r}")
    panels = 2 if view == "both" else 1
    figure = Figure(figsize=(6.4 * panels, 5.4), layout="constrained")
    if view in ("contour", "both"):
        ax = figure.add_subplot(1, panels, 1)
        filled = plot_contour(ax, surface, log=log)
        plot_paths(ax, paths, legend)
        add_colorbar(figure, filled, ax, log=log)
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.set_xlim(surface.xs[0], surface.xs[-1])
        ax.set_ylim(surface.ys[0], surface.ys[-1])
        if paths:
            ax.legend(loc="best", fontsize=9, framealpha=0.85)
    if view in ("surface", "both"):
        # computed_zorder=False: draw the paths after (over) the surface, not sorted into it.
        ax3d = figure.add_subplot(1, panels, panels, projection="3d", computed_zorder=False)
        plot_surface_3d(ax3d, surface, paths, log=log)
        ax3d.set_xlabel(axis_labels[0].split(" (")[0])  # without the parenthesised detail
        ax3d.set_ylabel(axis_labels[1].split(" (")[0])
    if title:
        figure.suptitle(title)
    return figure


def line_figure(
    line: Line, *, labels: tuple[str, str] = ("start", "end"), log: bool = False, title: str = ""
) -> Figure:
    """The loss along a 1-D interpolation, with the two end points marked."""
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(line.alphas, line.losses, "-", color="#1f77b4")
    for alpha, label in zip((0.0, 1.0), labels):
        ax.axvline(alpha, color="0.5", linewidth=0.8, linestyle="--")
        ax.annotate(label, (alpha, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("alpha: parameters = start + alpha (end - start)")
    ax.set_ylabel("loss")
    if title:
        figure.suptitle(title)
    return figure
