"""The report's figures as inline SVG strings (matplotlib, no pyplot state, text kept as text).

Each optimizer keeps one colour in every figure (:func:`palette`). Curves are drawn from
the stored per-step metrics; bands span the lowest to the highest seed.
"""

from __future__ import annotations

import functools
import io
import math
import warnings
from collections.abc import Callable, Sequence

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from optarena.arena.scoring import ExpectedBest, PerformanceProfile, Sensitivity

MAX_POINTS = 400
"""Curves are thinned to at most this many points per line to keep the SVG small."""

_STYLE = {
    "text.parse_math": False,  # names and metrics are the user's text: '$' is a dollar sign, not TeX
    "svg.fonttype": "none",
    "svg.hashsalt": "optarena",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}


def palette(names: Sequence[str]) -> dict[str, str]:
    """A colour per name, in order (tab10, then tab20 for more than ten)."""
    colours = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"].colors
    return {name: matplotlib.colors.to_hex(colours[i % len(colours)]) for i, name in enumerate(names)}


def styled(draw: Callable[..., str]) -> Callable[..., str]:
    """Run a figure function under the report's matplotlib style."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_STYLE):
            return draw(*args, **kwargs)

    return wrapper


def to_svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), reproducible for the same data."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def plain_log_ticks(axis, minor_thresholds: tuple[float, float] = (2, 0.5)) -> None:
    """Label a log ``axis`` in plain text (``1e−02``, ``2e−01``): matplotlib's default labels are TeX,
    which the report's style leaves unparsed (``text.parse_math`` is off for the user's names).
    Minor ticks are labelled as :class:`matplotlib.ticker.LogFormatter`'s ``minor_thresholds`` say
    (decades spanned below which some, then all, are)."""
    axis.set_major_formatter(matplotlib.ticker.LogFormatter())
    axis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=minor_thresholds))


def _figure(width: float, height: float, columns: int = 1) -> tuple[Figure, list]:
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, list(figure.subplots(1, columns, squeeze=False)[0])


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    if window <= 1 or len(values) == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(0, idx - window)
    return (sums[idx] - sums[start]) / (idx - start)


def _thin(x: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, ...]:
    if len(x) <= MAX_POINTS:
        return (x, *ys)
    keep = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).round().astype(int))
    return (x[keep], *(y[keep] for y in ys))


def seed_band(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, mean, low, high)`` across seeds at every step any seed reached (NaN-padded)."""
    steps = np.unique(np.concatenate([c[0] for c in curves])) if curves else np.zeros(0)
    table = np.full((len(curves), len(steps)), np.nan)
    for row, (s, v) in enumerate(curves):
        table[row, np.searchsorted(steps, s)] = v
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns cannot occur, but stay quiet
        return steps, np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)


def _legend_right(figure: Figure, axes) -> None:
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside right upper")


@styled
def curves_figure(
    train: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    metric: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    colours: dict[str, str],
    metric_name: str,
    target: float,
    steps: int,
) -> str:
    """Training loss (smoothed, log scale) and the target metric against steps; mean over seeds and band."""
    figure, (left, right) = _figure(10.5, 3.6, 2)
    window = max(1, steps // 50)
    for name, runs in train.items():
        smoothed = [(s, smooth(v, window)) for s, v in runs if len(s)]
        if not smoothed:
            continue
        x, mean, low, high = _thin(*seed_band(smoothed))
        left.plot(x, mean, color=colours[name], lw=1.6, label=name)
        left.fill_between(x, low, high, color=colours[name], alpha=0.18, lw=0)
    left.set_yscale("log")
    plain_log_ticks(left.yaxis)
    left.set_xlabel("step")
    left.set_title("training loss" + (f" (moving average of {window} steps)" if window > 1 else ""), fontsize=10)
    for name, runs in metric.items():
        runs = [(s, v) for s, v in runs if len(s)]
        if not runs:
            continue
        x, mean, low, high = seed_band(runs)
        right.plot(x, mean, color=colours[name], lw=1.6, marker="o", ms=2.5, label=name)
        right.fill_between(x, low, high, color=colours[name], alpha=0.18, lw=0)
    right.axhline(target, color="0.3", ls="--", lw=1, label="target")
    right.set_xlabel("step")
    right.set_title(f"{metric_name} (held out)", fontsize=10)
    _legend_right(figure, right)
    return to_svg(figure)


@styled
def sensitivity_figure(
    curves: dict[str, Sensitivity], colours: dict[str, str], metric_name: str, target: float, floor: float | None
) -> str:
    """Final metric against learning rate over the tuning trials; diverged trials as crosses at the floor."""
    figure, (axes,) = _figure(7.5, 3.6)
    for name, curve in curves.items():
        if len(curve.lr):
            axes.plot(curve.lr, curve.value, color=colours[name], marker="o", ms=3.5, lw=1.2, label=name)
        if len(curve.diverged_lr) and floor is not None:
            axes.plot(
                curve.diverged_lr,
                np.full(len(curve.diverged_lr), floor),
                color=colours[name],
                marker="x",
                ms=6,
                lw=0,
                mew=1.6,
            )
    axes.axhline(target, color="0.3", ls="--", lw=1, label="target")
    if floor is not None and any(len(c.diverged_lr) for c in curves.values()):
        axes.plot([], [], color="0.3", marker="x", lw=0, label="diverged")
    axes.set_xscale("log")
    plain_log_ticks(axes.xaxis)
    axes.set_xlabel("learning rate")
    axes.set_ylabel(f"final {metric_name}")
    _legend_right(figure, axes)
    return to_svg(figure)


@styled
def expected_best_figure(
    curves: dict[str, ExpectedBest], colours: dict[str, str], metric_name: str, target: float
) -> str:
    """Expected best final metric after k tuning trials, with its bootstrap band."""
    figure, (axes,) = _figure(7.5, 3.6)
    for name, curve in curves.items():
        axes.plot(curve.ks, curve.mean, color=colours[name], marker="o", ms=3, lw=1.5, label=name)
        axes.fill_between(curve.ks, curve.low, curve.high, color=colours[name], alpha=0.1, lw=0)
    axes.axhline(target, color="0.3", ls="--", lw=1, label="target")
    axes.set_xlabel("tuning trials k")
    axes.set_ylabel(f"expected best {metric_name}")
    axes.xaxis.get_major_locator().set_params(integer=True)
    _legend_right(figure, axes)
    return to_svg(figure)


@styled
def profile_figure(profile: PerformanceProfile, colours: dict[str, str], tau_max: float) -> str:
    """rho(tau) step curves, tau on a log axis from 1 to ``tau_max``."""
    figure, (axes,) = _figure(7.5, 3.6)
    finite = [r for ratios in profile.ratios.values() for r in ratios if math.isfinite(r)]
    right = max([tau_max, *finite]) * 1.05
    taus = np.unique(np.concatenate([[1.0, right], np.asarray(finite, dtype=float)]))
    for name in sorted(profile.ratios, key=lambda n: -profile.score(n, tau_max)):
        axes.step(
            taus,
            profile.rho(name, taus),
            where="post",
            color=colours.get(name, "0.5"),
            lw=1.8,
            label=f"{name} ({profile.score(name, tau_max):.2f})",
        )
    axes.set_xscale("log", base=2)
    ticks = [t for t in (1, 1.5, 2, 3, 4, 6, 8, 16, 32, 64) if t <= right]
    axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    axes.set_xlim(1, right)
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlabel(f"tau: within this factor of the fastest ({profile.measure} to target)")
    axes.set_ylabel("fraction of workloads")
    _legend_right(figure, axes)
    return to_svg(figure)
