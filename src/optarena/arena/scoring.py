"""Scores from stored races: leaderboards, performance profiles, expected best after k trials, lr sensitivity.

- **Leaderboard** (per workload): the tuned configuration's final and best value of the
  target metric over the rerun seeds, how many seeds reached the target and how fast.
  Optimizers whose reruns diverged rank below those whose did not; then by mean final value.
- **Performance profile** (across workloads; Dolan & Moré 2002,
  https://arxiv.org/abs/cs/0102001; as used by AlgoPerf, https://arxiv.org/abs/2306.07179):
  the cost of optimizer *o* on workload *w* is the median over seeds of the steps (or
  seconds) to reach the target, infinite when most seeds never reach it; ``r = cost /
  best cost on w``; ``rho_o(tau)`` is the fraction of workloads with ``r <= tau``. The
  score is the area under ``rho`` for ``1 <= tau <= 4``, normalised to [0, 1].
- **Expected best after k trials** (Dodge et al. 2019, https://arxiv.org/abs/1909.03004):
  the expected best final value among k configurations drawn from the tuning trials,
  exactly, under the empirical distribution; the band is a percentile bootstrap over the
  tuning trials. It shows how much each optimizer depends on the tuning budget.
- **Learning-rate sensitivity** (Liu et al. 2019, RAdam, https://arxiv.org/abs/1908.03265,
  figure of robustness to the learning rate): final value against learning rate, over the
  tuning trials.

A diverged trial counts as the worst final value seen on its workload (its *floor*).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optarena.arena.results import StudyResult, TrialRecord, WorkloadResult

PROFILE_TAU_MAX = 4.0
"""AlgoPerf's upper end of the performance-profile integral."""

MEASURES = ("steps", "seconds")


# -- leaderboard ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    optimizer: str
    hyperparameters: dict[str, Any] | None
    final_mean: float | None
    final_std: float | None
    best_mean: float | None
    seeds: int
    """Rerun seeds stored."""
    diverged: int
    """Rerun seeds that diverged."""
    reached: int
    """Rerun seeds that reached the target."""
    steps_to_target: float
    """Median over the rerun seeds (infinite when most never reached it)."""
    seconds_to_target: float
    tuning_trials: int
    tuning_diverged: int
    complete: bool
    study: StudyResult


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def median_cost(trials: Sequence[TrialRecord], measure: str = "steps") -> float:
    """Median steps (or seconds) to the target over ``trials``; an unreached trial costs infinity."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if not trials:
        return math.inf
    costs = [
        math.inf
        if (t.steps_to_target if measure == "steps" else t.seconds_to_target) is None
        else float(t.steps_to_target if measure == "steps" else t.seconds_to_target)
        for t in trials
    ]
    return float(np.median(costs))


def leaderboard(workload: WorkloadResult) -> list[LeaderboardRow]:
    """The workload's optimizers, best first."""
    sign = 1.0 if workload.target.mode == "max" else -1.0
    rows = []
    for study in workload.studies:
        finished = [t.final_metric for t in study.reruns if not t.diverged and t.final_metric is not None]
        best = [t.best_metric for t in study.reruns if t.best_metric is not None]
        mean, std = _mean_std(finished)
        rows.append(
            dict(
                optimizer=study.optimizer,
                hyperparameters=study.best_hyperparameters,
                final_mean=mean,
                final_std=std,
                best_mean=statistics.fmean(best) if best else None,
                seeds=len(study.reruns),
                diverged=sum(t.diverged for t in study.reruns),
                reached=sum(t.steps_to_target is not None for t in study.reruns),
                steps_to_target=median_cost(study.reruns, "steps"),
                seconds_to_target=median_cost(study.reruns, "seconds"),
                tuning_trials=len(study.tuning),
                tuning_diverged=sum(t.diverged for t in study.tuning),
                complete=study.complete,
                study=study,
            )
        )

    def order(row: dict[str, Any]) -> tuple:
        no_result = row["final_mean"] is None
        return (
            no_result,
            row["diverged"],
            -sign * (row["final_mean"] or 0.0),
            row["steps_to_target"],
            row["optimizer"],
        )

    rows.sort(key=order)
    return [LeaderboardRow(rank=i, **row) for i, row in enumerate(rows, 1)]


# -- performance profiles ------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceProfile:
    """``ratios[o][w]``: optimizer o's cost on workload w over the best cost on w (inf: never)."""

    measure: str
    workloads: list[str]
    ratios: dict[str, list[float]]

    def rho(self, optimizer: str, tau: np.ndarray | float) -> np.ndarray:
        """The fraction of workloads on which ``optimizer`` is within a factor ``tau`` of the best."""
        r = np.asarray(self.ratios[optimizer])[:, None]
        return (r <= np.atleast_1d(tau)[None, :]).mean(axis=0)

    def score(self, optimizer: str, tau_max: float = PROFILE_TAU_MAX) -> float:
        """The area under ``rho`` on [1, tau_max], divided by ``tau_max - 1`` (1: best everywhere)."""
        r = np.asarray(self.ratios[optimizer])
        return float(np.mean(np.clip(tau_max - r, 0.0, tau_max - 1.0)) / (tau_max - 1.0))


def performance_profile(workloads: Sequence[WorkloadResult], measure: str = "steps") -> PerformanceProfile:
    """Performance ratios of every optimizer that appears in any of ``workloads``.

    An optimizer absent from a workload, or not reaching its target on most seeds, has
    ratio infinity there; a workload where no optimizer reaches the target gives every
    optimizer infinity.
    """
    optimizers: list[str] = []
    for workload in workloads:
        for study in workload.studies:
            if study.optimizer not in optimizers:
                optimizers.append(study.optimizer)
    ratios: dict[str, list[float]] = {o: [] for o in optimizers}
    for workload in workloads:
        costs = {s.optimizer: median_cost(s.reruns, measure) for s in workload.studies}
        best = min(costs.values(), default=math.inf)
        for optimizer in optimizers:
            cost = costs.get(optimizer, math.inf)
            ratios[optimizer].append(cost / best if math.isfinite(cost) and best > 0 else math.inf)
    return PerformanceProfile(measure, [w.label for w in workloads], ratios)


# -- expected best after k trials ----------------------------------------------------------------


def floor_value(workload: WorkloadResult) -> float | None:
    """The worst finite final value among the workload's tuning trials (what a diverged trial counts as)."""
    values = [
        t.final_metric
        for s in workload.studies
        for t in s.tuning
        if not t.diverged and t.final_metric is not None and math.isfinite(t.final_metric)
    ]
    if not values:
        return None
    return min(values) if workload.target.mode == "max" else max(values)


def expected_max(values: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """``E[max of k draws with replacement]`` from ``values`` for each k (last axis holds the values).

    With sorted values ``v_1 <= ... <= v_n``, ``P(max = v_i) = (i/n)^k - ((i-1)/n)^k``.
    """
    v = np.sort(values, axis=-1)
    n = v.shape[-1]
    i = np.arange(1, n + 1) / n
    weights = i[None, :] ** ks[:, None] - (i - 1 / n)[None, :] ** ks[:, None]
    return v @ weights.T


@dataclass(frozen=True)
class ExpectedBest:
    ks: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def expected_best(
    study: StudyResult,
    mode: str,
    floor: float | None,
    *,
    resamples: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> ExpectedBest | None:
    """Expected best final value after k = 1..n tuning trials, with a ``level`` bootstrap band.

    Values are oriented so that higher is better internally and returned in the metric's
    own direction. None when no tuning trial finished and no floor is known.
    """
    values = []
    for trial in study.tuning:
        value = trial.final_metric if not trial.diverged else None
        if value is None or not math.isfinite(value):
            value = floor
        if value is None:
            continue
        values.append(value)
    if not values:
        return None
    sign = 1.0 if mode == "max" else -1.0
    v = sign * np.asarray(values, dtype=float)
    ks = np.arange(1, len(v) + 1, dtype=float)
    mean = expected_max(v, ks)
    rng = np.random.default_rng(seed)
    samples = v[rng.integers(0, len(v), size=(resamples, len(v)))]
    curves = expected_max(samples, ks)
    tail = (1 - level) / 2
    low, high = np.quantile(curves, [tail, 1 - tail], axis=0)
    if sign < 0:
        return ExpectedBest(ks, -mean, -high, -low)
    return ExpectedBest(ks, mean, low, high)


# -- learning-rate sensitivity -------------------------------------------------------------------


@dataclass(frozen=True)
class Sensitivity:
    """Tuning trials of one optimizer in learning-rate order: finished ones and diverged ones."""

    lr: np.ndarray
    value: np.ndarray
    diverged_lr: np.ndarray


def lr_sensitivity(study: StudyResult) -> Sensitivity:
    finished = sorted(
        (t.hyperparameters["lr"], t.final_metric)
        for t in study.tuning
        if not t.diverged and t.final_metric is not None and "lr" in t.hyperparameters
    )
    diverged = sorted(t.hyperparameters["lr"] for t in study.tuning if t.diverged and "lr" in t.hyperparameters)
    return Sensitivity(
        np.asarray([f[0] for f in finished], dtype=float),
        np.asarray([f[1] for f in finished], dtype=float),
        np.asarray(diverged, dtype=float),
    )
