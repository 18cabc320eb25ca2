"""The report's diagnostics part of a workload: sharpness against its threshold, adaptive optimizers'
preconditioned sharpness against their own thresholds, the Hessian's eigenvalue density at the start
and the end, per-layer trust ratios as heat maps, and every other recorded signal, from the reruns'
stored diagnostics (:mod:`optarena.arena.trial_diagnostics`). Empty when the reruns recorded none."""

from __future__ import annotations

from html import escape

import numpy as np

from optarena.arena import diagnostic_plots
from optarena.arena.results import TrialDiagnostics, WorkloadResult, load_diagnostics
from optarena.arena.store import Store

HEAT_MAP_SIGNALS = ("trust_ratio",)
"""Signals drawn per layer (one heat map per optimizer); the others are summarised over parameters."""


def _thresholds(runs: list[TrialDiagnostics]) -> tuple[list, str] | None:
    """The stored threshold curves, else ``2/lr`` from the stored learning rates."""
    stored = [d.series["threshold"] for d in runs if "threshold" in d.series]
    if stored:
        return stored, "stability threshold"
    rates = [d.series["lr"] for d in runs if "lr" in d.series]
    if rates:
        with np.errstate(divide="ignore"):
            return [(steps, 2.0 / values) for steps, values in rates], "2/lr"
    return None


def _preconditioned(by_optimizer: dict[str, list[TrialDiagnostics]], colours: dict[str, str]) -> list[str]:
    """The preconditioned sharpness figure and a table of its last value over the threshold, or nothing."""
    curves = {}
    for name, runs in by_optimizer.items():
        sharpness = [d.series["preconditioned_sharpness"] for d in runs if "preconditioned_sharpness" in d.series]
        if sharpness:
            thresholds = [d.series["preconditioned_threshold"] for d in runs if "preconditioned_threshold" in d.series]
            curves[name] = (sharpness, thresholds)
    if not curves:
        return []
    rows = []
    for name, (sharpness, thresholds) in curves.items():
        ratios = [v[-1] / t[-1] for (_, v), (_, t) in zip(sharpness, thresholds) if len(v) and len(t)]
        ratio = float(np.median(ratios)) if ratios else float("nan")
        rows.append(
            f"<tr data-optimizer='{escape(name)}'><td class='name'>{escape(name)}</td>"
            f"<td class='num' data-value='{ratio!r}'>{ratio:.3g}</td></tr>"
        )
    return [
        "<h4>Preconditioned sharpness against each optimizer's own threshold</h4>",
        f"<figure class='preconditioned'>{diagnostic_plots.preconditioned_figure(curves, colours)}</figure>",
        "<p class='note'>For adaptive optimizers with a diagonal preconditioner P (Adam, AdamW, AMSGrad, NAdam, "
        "RAdam, RMSprop, Adagrad, Adafactor): the top eigenvalue of P<sup>-1</sup>H on the same batch, P read from "
        "the optimizer's state after the step that ends at the evaluation (mean over seeds, band from the lowest "
        "to the highest), and dashed the threshold above which that step diverges on a quadratic with P frozen, "
        "e.g. Adam's (2+2&beta;<sub>1</sub>)/((1-&beta;<sub>1</sub>) lr) (Cohen et al. 2022). NAdam's and "
        "Adafactor's relative-step thresholds follow their schedules.</p>",
        "<table class='preconditioned'><tr><th>optimizer</th><th class='num'>last evaluation: "
        f"P<sup>-1</sup>H sharpness / threshold<br>median over seeds</th></tr>{''.join(rows)}</table>",
    ]


def _spectra(by_optimizer: dict[str, list[TrialDiagnostics]], colours: dict[str, str]) -> list[str]:
    """Each optimizer's eigenvalue density at its reruns' first and last snapshot, or nothing."""
    spectra: dict[str, dict[str, tuple[float, list]]] = {}
    for name, runs in by_optimizer.items():
        stored = [d.spectra for d in runs if d.spectra]
        if not stored:
            continue
        moments = {"start": (float(np.median([min(s) for s in stored])), [s[min(s)] for s in stored])}
        ended = [s for s in stored if len(s) > 1]
        if ended:
            moments["end"] = (float(np.median([max(s) for s in ended])), [s[max(s)] for s in ended])
        spectra[name] = moments
    if not spectra:
        return []
    return [
        "<h4>Hessian spectrum at the start and the end</h4>",
        f"<figure class='spectra'>{diagnostic_plots.spectra_figure(spectra, colours)}</figure>",
        "<p class='note'>The eigenvalue density of the training loss's Hessian on the same fixed batch, at each "
        "rerun's first evaluation (dotted) and last (solid), by stochastic Lanczos quadrature (a few probes of a "
        "few Lanczos steps: the outermost eigenvalues are resolved, the bulk only in outline), averaged over "
        "seeds and broadened by Gaussians of 2.5% of the panel's range; logarithmic density axis.</p>",
    ]


def _heat_map(name: str, signal: str, runs: list[TrialDiagnostics]) -> str:
    """One optimizer's ``signal`` per parameter and evaluation step, the mean over its seeds."""
    parameters: list[str] = []
    for d in runs:
        parameters.extend(p for p in d.signals.get(signal, {}) if p not in parameters)
    steps, _ = diagnostic_plots.grid([c for d in runs for c in d.signals.get(signal, {}).values()])
    table = np.full((len(runs), len(parameters), len(steps)), np.nan)
    for r, d in enumerate(runs):
        for p, parameter in enumerate(parameters):
            if parameter in d.signals.get(signal, {}):
                s, v = d.signals[signal][parameter]
                table[r, p, np.searchsorted(steps, s)] = v
    mean = diagnostic_plots.quietly(np.nanmean, table, 0)
    title = (
        f"{name}: {signal.replace('_', ' ')} per parameter (mean over {len(runs)} seed{'s' if len(runs) != 1 else ''})"
    )
    return diagnostic_plots.heat_map_figure(title, parameters, steps, mean)


def _summary_table(by_optimizer: dict[str, list[TrialDiagnostics]]) -> str:
    """Per optimizer and signal: how many parameters, and the median over them at the first and last evaluation."""
    rows = []
    for name, runs in by_optimizer.items():
        signals = sorted({s for d in runs for s in d.signals})
        for signal in signals:
            curves = [c for d in runs for c in d.signals.get(signal, {}).values() if len(c[0])]
            steps, table = diagnostic_plots.grid(curves)
            if not len(steps):
                continue
            median = diagnostic_plots.quietly(np.nanmedian, table, 0)
            parameters = max(len(d.signals.get(signal, {})) for d in runs)
            cells = "".join(
                f"<td class='num' data-value='{float(median[i])!r}'>{median[i]:.4g} <small>(step {steps[i]:g})</small></td>"
                for i in (0, len(steps) - 1)
            )
            rows.append(
                f"<tr data-optimizer='{escape(name)}' data-signal='{escape(signal)}'>"
                f"<td class='name'>{escape(name)}</td><td>{escape(signal)}</td>"
                f"<td class='num'>{parameters}</td>{cells}</tr>"
            )
    if not rows:
        return ""
    head = (
        "<tr><th>optimizer</th><th>signal</th><th class='num'>parameters</th>"
        "<th class='num'>first evaluation<br>median</th><th class='num'>last evaluation<br>median</th></tr>"
    )
    return f"<table class='signals'>{head}{''.join(rows)}</table>"


def diagnostics_section(store: Store, workload: WorkloadResult, optimizers: list[str], colours: dict[str, str]) -> str:
    """The HTML of ``workload``'s diagnostics for ``optimizers`` (in leaderboard order), or ``""`` when
    none of their reruns recorded any."""
    studies = {s.optimizer: s for s in workload.studies}
    by_optimizer: dict[str, list[TrialDiagnostics]] = {}
    for name in optimizers:
        keys = [t.key for t in studies[name].reruns]
        runs = [d for d in load_diagnostics(store, keys).values() if d]
        if runs:
            by_optimizer[name] = runs
    if not by_optimizer:
        return ""
    parts = [
        "<h3>Diagnostics</h3>",
        "<p class='note'>Measured at each evaluation of the reruns of each optimizer's tuned configuration "
        "(see docs/diagnostics.md).</p>",
    ]

    sharpness = {
        n: [d.series["sharpness"] for d in runs if "sharpness" in d.series] for n, runs in by_optimizer.items()
    }
    sharpness = {n: curves for n, curves in sharpness.items() if curves}
    if sharpness:
        thresholds = {n: t for n in sharpness if (t := _thresholds(by_optimizer[n])) is not None}
        parts += [
            "<h4>Sharpness and the edge of stability</h4>",
            f"<figure>{diagnostic_plots.sharpness_figure(sharpness, thresholds, colours)}</figure>",
            "<p class='note'>The top eigenvalue of the training loss's Hessian on a fixed batch of training "
            "examples (mean over seeds, band from the lowest to the highest), and dashed in the same colour the "
            "threshold above which a step of the optimizer diverges on a quadratic: its stability threshold where "
            "one is defined on the Hessian (gradient descent, heavy-ball momentum), otherwise 2/lr. An adaptive "
            "optimizer's threshold bounds its preconditioned Hessian instead, so for it 2/lr is only a "
            "reference (where P is diagonal, the next figure draws it against its own threshold).</p>",
        ]
    parts += _preconditioned(by_optimizer, colours)
    parts += _spectra(by_optimizer, colours)

    for signal in HEAT_MAP_SIGNALS:
        having = [n for n, runs in by_optimizer.items() if any(d.signals.get(signal) for d in runs)]
        if not having:
            continue
        parts.append(f"<h4>{escape(signal.replace('_', ' ').capitalize())} per layer</h4>")
        parts += [
            f"<figure class='heat-map' data-optimizer='{escape(n)}' data-signal='{escape(signal)}'>"
            f"{_heat_map(n, signal, by_optimizer[n])}</figure>"
            for n in having
        ]
        parts.append(
            "<p class='note'>One row per parameter tensor, one column per evaluation step: the ratio by "
            "which the optimizer scaled that layer's step (LAMB: weight norm over update norm; LARS: its "
            "local learning rate).</p>"
        )

    others: dict[str, dict[str, list]] = {}
    for name, runs in by_optimizer.items():
        for d in runs:
            for signal, curves in d.signals.items():
                if signal not in HEAT_MAP_SIGNALS:
                    others.setdefault(signal, {}).setdefault(name, []).extend(curves.values())
    if others:
        parts += [
            "<h4>Other signals</h4>",
            f"<figure>{diagnostic_plots.signals_figure(dict(sorted(others.items())), colours)}</figure>",
            "<p class='note'>Per optimizer, the median over parameters and seeds at each evaluation step, the band "
            "from the lowest to the highest value: RAdam's rectification term (0 while the adaptive rate's variance "
            "is intractable), AdaBound's clipping bounds, Adafactor's relative step and update RMS, Lookahead's "
            "distance between fast and slow weights (at evaluations that are synchronisations).</p>",
        ]
    parts.append(_summary_table(by_optimizer))
    return "\n".join(parts)
