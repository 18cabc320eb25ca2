"""The report's diagnostics figures as inline SVG: sharpness against its threshold, the preconditioned
sharpness against each optimizer's own threshold, the Hessian's eigenvalue density at the start and the
end, per-layer heat maps of a signal, and the other signals' spread over parameters (the report's style,
:mod:`optarena.arena.plots`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from optarena.arena.plots import _figure, _legend_right, plain_log_ticks, seed_band, styled, to_svg

Curve = tuple[np.ndarray, np.ndarray]
Quadrature = tuple[np.ndarray, np.ndarray]
"""Nodes and weights (summing to 1) of an eigenvalue density."""

HEAT_MAP_ROW_INCHES = 0.16
MAX_FIGURE_INCHES = 12.0
PANELS_PER_ROW = 3
DENSITY_POINTS = 400
DENSITY_SIGMA = 0.025
"""The densities' Gaussian broadening: this fraction of the spread of a panel's nodes."""
DENSITY_FLOOR = 1e-6
"""The density axis (logarithmic) reaches down to this fraction of the panel's highest density."""


def quietly(reduce, table: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return reduce(table, axis=axis)


def grid(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, table)``: every step any curve has, one NaN-padded row per curve."""
    steps = np.unique(np.concatenate([c[0] for c in curves])) if curves else np.zeros(0)
    table = np.full((len(curves), len(steps)), np.nan)
    for row, (s, v) in enumerate(curves):
        table[row, np.searchsorted(steps, s)] = v
    return steps, table


@styled
def sharpness_figure(
    sharpness: dict[str, list[Curve]], thresholds: dict[str, tuple[list[Curve], str]], colours: dict[str, str]
) -> str:
    """Each optimizer's sharpness (mean over seeds, band from lowest to highest) and, dashed in its
    colour, its stability threshold; ``thresholds[name] = (curves, kind)``, the kind named once in
    the legend."""
    figure, (axes,) = _figure(8.5, 3.6)
    positive = True
    for name, runs in sharpness.items():
        runs = [(s, v) for s, v in runs if len(s)]
        if not runs:
            continue
        x, mean, low, high = seed_band(runs)
        positive &= bool(np.all(low[np.isfinite(low)] > 0))
        axes.plot(x, mean, color=colours[name], lw=1.6, marker="o", ms=2.5, label=name)
        axes.fill_between(x, low, high, color=colours[name], alpha=0.18, lw=0)
        if name in thresholds and thresholds[name][0]:
            tx, tmean, _, _ = seed_band(thresholds[name][0])
            axes.plot(tx, tmean, color=colours[name], lw=1.1, ls="--")
    if thresholds:
        kinds = sorted({label for _, label in thresholds.values()}, reverse=True)
        axes.plot([], [], color="0.3", lw=1.1, ls="--", label=f"{' or '.join(kinds)} (dashed)")
    if positive:
        axes.set_yscale("log")
        plain_log_ticks(axes.yaxis)
    axes.set_xlabel("step")
    axes.set_ylabel("top Hessian eigenvalue")
    _legend_right(figure, axes)
    return to_svg(figure)


def _panels(count: int, height: float = 2.9) -> tuple[Figure, np.ndarray]:
    columns = min(PANELS_PER_ROW, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(3.6 * columns + 1.6, height * rows), layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes in panels[count:]:
        axes.set_visible(False)
    return figure, panels


@styled
def preconditioned_figure(curves: dict[str, tuple[list[Curve], list[Curve]]], colours: dict[str, str]) -> str:
    """One panel per optimizer: its preconditioned sharpness (mean over seeds, band from lowest to highest)
    and, dashed, its own stability threshold; ``curves[name] = (sharpness, thresholds)``, one curve per seed."""
    figure, panels = _panels(len(curves))
    for axes, (name, (sharpness, thresholds)) in zip(panels, curves.items()):
        x, mean, low, high = seed_band([c for c in sharpness if len(c[0])])
        axes.plot(x, mean, color=colours[name], lw=1.5, marker="o", ms=2)
        axes.fill_between(x, low, high, color=colours[name], alpha=0.18, lw=0)
        if thresholds:
            tx, tmean, _, _ = seed_band([c for c in thresholds if len(c[0])])
            axes.plot(tx, tmean, color=colours[name], lw=1.1, ls="--")
        finite = np.concatenate([low, tmean if thresholds else low])
        if np.all(finite[np.isfinite(finite)] > 0):
            axes.set_yscale("log")
            plain_log_ticks(axes.yaxis)
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("step")
    styles = [Line2D([], [], color="0.3", lw=1.5, marker="o", ms=2), Line2D([], [], color="0.3", lw=1.1, ls="--")]
    figure.legend(styles, ["top eigenvalue of P⁻¹H", "its stability threshold"], loc="outside right upper")
    return to_svg(figure)


def _measure(snapshots: Sequence[Quadrature]) -> Quadrature:
    """The seeds' densities averaged: every node, each weight divided by the number of seeds."""
    nodes = np.concatenate([n for n, _ in snapshots])
    weights = np.concatenate([w for _, w in snapshots]) / len(snapshots)
    return nodes, weights


@styled
def spectra_figure(spectra: dict[str, dict[str, tuple[float, list[Quadrature]]]], colours: dict[str, str]) -> str:
    """One panel per optimizer: the Hessian's eigenvalue density at each snapshot (``"start"`` thin,
    ``"end"`` thick), the seeds' measures averaged and broadened by Gaussians;
    ``spectra[name][moment] = (median step, one quadrature per seed)``."""
    from optarena.diagnostics.density import broadened_density  # scipy and torch.func: only when drawn

    figure, panels = _panels(len(spectra))
    for axes, (name, moments) in zip(panels, spectra.items()):
        measures = {moment: (step, _measure(snapshots)) for moment, (step, snapshots) in moments.items()}
        every = np.concatenate([nodes for _, (nodes, _) in measures.values()])
        low, high = float(every.min()), float(every.max())
        sigma = DENSITY_SIGMA * (high - low) if high > low else max(abs(high), 1.0) * DENSITY_SIGMA
        grid = torch.linspace(low - 5 * sigma, high + 5 * sigma, DENSITY_POINTS, dtype=torch.float64)
        top = 0.0
        for moment, (step, (nodes, weights)) in measures.items():
            density = broadened_density([torch.as_tensor(nodes)], [torch.as_tensor(weights)], grid, sigma).numpy()
            top = max(top, float(density.max()))
            end = moment == "end"
            axes.plot(
                grid.numpy(),
                density,
                color=colours[name],
                lw=1.6 if end else 1.0,
                ls="-" if end else ":",
                label=f"{moment} (step {step:g})",
            )
        axes.set_yscale("log")
        plain_log_ticks(axes.yaxis)
        axes.set_ylim(top * DENSITY_FLOOR, top * 2)
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("eigenvalue")
        axes.legend(fontsize=8, loc="upper right")
    panels[0].set_ylabel("density")
    return to_svg(figure)


@styled
def heat_map_figure(title: str, parameters: list[str], steps: np.ndarray, values: np.ndarray) -> str:
    """``values[parameter, step]`` as a heat map: parameters from top (first) to bottom, steps left to
    right; a logarithmic colour scale when every value is positive."""
    height = min(MAX_FIGURE_INCHES, 1.4 + HEAT_MAP_ROW_INCHES * len(parameters))
    figure = Figure(figsize=(8.5, height), layout="constrained")
    axes = figure.subplots()
    finite = values[np.isfinite(values)]
    if finite.size and np.all(finite > 0) and finite.max() > finite.min():
        norm = LogNorm(finite.min(), finite.max())
    elif finite.size:
        spread = max(finite.max() - finite.min(), abs(finite.max()) * 1e-6, 1e-12)
        norm = Normalize(finite.min(), finite.min() + spread)
    else:
        norm = Normalize(0.0, 1.0)
    edges = np.concatenate([[0.0], steps]) if len(steps) else np.zeros(1)
    mesh = axes.pcolormesh(
        edges, np.arange(len(parameters) + 1), np.ma.masked_invalid(values), norm=norm, cmap="viridis", shading="flat"
    )
    axes.set_yticks(np.arange(len(parameters)) + 0.5, parameters, fontsize=7 if len(parameters) > 12 else 9)
    axes.set_ylim(len(parameters), 0)
    axes.grid(False)
    axes.set_xlabel("step")
    axes.set_title(title, fontsize=10)
    if isinstance(norm, LogNorm):  # 1-2-5 ticks (decades only over more than three), in plain text
        subs = (1.0,) if math.log10(norm.vmax / norm.vmin) > 3 else (1.0, 2.0, 5.0)
        colorbar = figure.colorbar(
            mesh, ax=axes, pad=0.01, ticks=LogLocator(subs=subs), format=FuncFormatter(lambda value, _: f"{value:.2g}")
        )
        colorbar.ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        figure.colorbar(mesh, ax=axes, pad=0.01)
    return to_svg(figure)


@styled
def signals_figure(signals: dict[str, dict[str, list[Curve]]], colours: dict[str, str]) -> str:
    """One panel per signal: per optimizer, the median over parameters and seeds at each step (line) and
    the lowest to highest value (band); ``signals[signal][optimizer]`` lists every parameter's curve of
    every seed."""
    names = list(signals)
    figure, panels = _panels(len(names))
    for axes, signal in zip(panels, names):
        for optimizer, curves in signals[signal].items():
            steps, table = grid([c for c in curves if len(c[0])])
            if not len(steps):
                continue
            median = quietly(np.nanmedian, table, 0)
            low, high = quietly(np.nanmin, table, 0), quietly(np.nanmax, table, 0)
            axes.plot(steps, median, color=colours[optimizer], lw=1.5, marker="o", ms=2, label=optimizer)
            axes.fill_between(steps, low, high, color=colours[optimizer], alpha=0.15, lw=0)
        axes.set_title(signal, fontsize=10)
        axes.set_xlabel("step")
    handles: dict[str, object] = {}
    for axes in panels[: len(names)]:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="outside right upper")
    return to_svg(figure)
