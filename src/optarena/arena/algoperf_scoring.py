"""AlgoPerf scores from the store: per-workload times, performance profiles, the benchmark score.

For one ruleset, per (workload, optimizer): each study's time is its fastest trial's steps
(or training seconds, evaluation excluded) to the target, infinite when no trial reached
it; the workload's time is the median over studies. An optimizer that misses a held-out
variant's target gets an infinite time on the variant's base workload. Over the base
workloads, ``r = time / fastest time`` and ``rho(tau)`` is the fraction of workloads with
``r <= tau``; the benchmark score is the integral of ``rho`` over ``[1, r_max]`` divided
by ``r_max - 1`` (``r_max = 4``): 1 is fastest everywhere, 0 never within 4x of the
fastest (Dahl et al. 2023, https://arxiv.org/abs/2306.07179, section 4.5).

Confidence intervals: percentile bootstrap over the studies, which are the seeds. A
resample draws study positions with replacement, the same positions for every optimizer
and workload (study ``s`` of every optimizer ran on seed ``seed + s``), and recomputes
every time, ratio and score.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optarena.arena.algoperf import SEARCH_NAMES
from optarena.arena.scoring import MEASURES, PROFILE_TAU_MAX, PerformanceProfile
from optarena.arena.store import Store
from optarena.arena.workload import Target
from optarena.arena.workloads.targeted import HELD_OUT_OPTION, TARGET_OPTION

LEVEL = 0.9
RESAMPLES = 1000


@dataclass
class AlgoPerfWorkloadResult:
    """One workload's AlgoPerf studies: per optimizer, each study's time by measure, in seed order."""

    key: str
    name: str
    label: str
    target: Target
    steps: int
    held_out_of: str | None
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """``times[optimizer][measure]``: one value per study (its fastest trial), inf when none reached the target."""
    seeds: dict[str, list[int]] = field(default_factory=dict)


def _label(name: str, options: dict[str, Any]) -> str:
    shown = {k: v for k, v in options.items() if k not in (TARGET_OPTION, HELD_OUT_OPTION)}
    parts = [k if v is True else f"{k}={v}" for k, v in shown.items()]
    prefix = "held-out " if HELD_OUT_OPTION in options else ""
    return prefix + name + (f" ({', '.join(parts)})" if parts else "")


def load_algoperf(store: Store, ruleset: str = "external") -> list[AlgoPerfWorkloadResult]:
    """Every workload with AlgoPerf studies of ``ruleset`` in the store, in the order they were added."""
    search = SEARCH_NAMES[ruleset]
    results = []
    for row in store.rows("SELECT * FROM workloads ORDER BY rowid"):
        trials = store.rows(
            "SELECT s.optimizer, s.search_seed, t.steps_to_target, t.seconds_to_target, t.status "
            "FROM studies s JOIN study_trials st ON st.study = s.id JOIN trials t ON t.key = st.trial "
            "WHERE s.workload_key = ? AND s.search = ? ORDER BY s.optimizer, s.search_seed, st.number",
            (row["key"], search),
        )
        if not trials:
            continue
        options = json.loads(row["config"]).get("options", {})
        result = AlgoPerfWorkloadResult(
            key=row["key"],
            name=row["name"],
            label=_label(row["name"], options),
            target=Target(row["target_metric"], row["target_value"], row["target_mode"]),
            steps=row["steps"],
            held_out_of=options.get(HELD_OUT_OPTION),
        )
        best: dict[tuple[str, int], dict[str, float]] = {}
        for trial in trials:
            study = best.setdefault((trial["optimizer"], trial["search_seed"]), {m: math.inf for m in MEASURES})
            for measure, column in (("steps", "steps_to_target"), ("seconds", "seconds_to_target")):
                if trial[column] is not None:
                    study[measure] = min(study[measure], float(trial[column]))
        for (optimizer, seed), study in sorted(best.items()):
            per = result.times.setdefault(optimizer, {m: [] for m in MEASURES})
            for measure in MEASURES:
                per[measure].append(study[measure])
            result.seeds.setdefault(optimizer, []).append(seed)
        results.append(result)
    return results


def _median(values: np.ndarray) -> float:
    """The median, infinite when more than half the values are (numpy's median of [inf, inf] is nan-free)."""
    if values.size == 0:
        return math.inf
    return float(np.median(values))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class ScoreRow:
    rank: int
    optimizer: str
    score: Interval
    times: dict[str, Interval]
    """Per base workload label: the median time over studies, with its interval."""
    reached: dict[str, str]
    """Per base workload label: studies that reached the target, e.g. ``"3/3"``."""


@dataclass
class ScoreTable:
    """The benchmark score of every optimizer on one measure, best first, and the profile behind it."""

    measure: str
    ruleset: str
    workloads: list[str]
    held_out: list[str]
    rows: list[ScoreRow]
    profile: PerformanceProfile
    rho_band: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    """Per optimizer: ``(taus, low, high)`` bootstrap band of ``rho``."""
    studies: int

    def scores(self) -> dict[str, float]:
        return {row.optimizer: row.score.value for row in self.rows}


def _times(
    results: list[AlgoPerfWorkloadResult], optimizers: list[str], measure: str, positions: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Per workload key, each optimizer's median time over the studies at ``positions`` (all when None)."""
    out = {}
    for result in results:
        row = []
        for optimizer in optimizers:
            values = np.asarray(result.times.get(optimizer, {}).get(measure, []), dtype=float)
            if positions is not None:
                values = values[positions[positions < len(values)]]
            row.append(_median(values))
        out[result.key] = np.asarray(row)
    return out


def _profile(
    results: list[AlgoPerfWorkloadResult], optimizers: list[str], measure: str, positions: np.ndarray | None
) -> tuple[PerformanceProfile, dict[str, np.ndarray]]:
    times = _times(results, optimizers, measure, positions)
    bases = [r for r in results if r.held_out_of is None]
    ratios = {o: [] for o in optimizers}
    effective = {}
    for base in bases:
        t = times[base.key].copy()
        for variant in results:
            if variant.held_out_of == base.key:
                t[~np.isfinite(times[variant.key])] = math.inf
        effective[base.key] = t
        best = t.min() if len(t) else math.inf
        for i, optimizer in enumerate(optimizers):
            ratio = t[i] / best if math.isfinite(t[i]) and math.isfinite(best) and best > 0 else math.inf
            ratios[optimizer].append(ratio)
    return PerformanceProfile(measure, [b.label for b in bases], ratios), effective


def score_table(
    results: list[AlgoPerfWorkloadResult],
    measure: str = "steps",
    ruleset: str = "external",
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
    tau_max: float = PROFILE_TAU_MAX,
) -> ScoreTable:
    """Benchmark scores by ``measure`` (``steps`` or ``seconds``) with bootstrap intervals over studies."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if not any(r.held_out_of is None for r in results):
        raise ValueError("no AlgoPerf race in the store: run `optarena race --protocol algoperf` first")
    optimizers = sorted({o for r in results for o in r.times})
    studies = max(len(v[measure]) for r in results for v in r.times.values())
    profile, times = _profile(results, optimizers, measure, None)
    rng = np.random.default_rng(seed)
    taus = np.linspace(1.0, tau_max, 121)
    boot_scores = np.empty((resamples, len(optimizers)))
    boot_rho = np.empty((resamples, len(optimizers), len(taus)))
    boot_times = {key: np.empty((resamples, len(optimizers))) for key in times}
    for b in range(resamples):
        positions = rng.integers(0, studies, size=studies)
        resampled, resampled_times = _profile(results, optimizers, measure, positions)
        for i, optimizer in enumerate(optimizers):
            boot_scores[b, i] = resampled.score(optimizer, tau_max)
            boot_rho[b, i] = resampled.rho(optimizer, taus)
        for key, t in resampled_times.items():
            boot_times[key][b] = t
    tail = (1 - level) / 2
    bases = [r for r in results if r.held_out_of is None]
    rows = []
    for i, optimizer in enumerate(optimizers):
        low, high = _interval(boot_scores[:, i], tail)
        time_intervals, reached = {}, {}
        for base in bases:
            t_low, t_high = _interval(boot_times[base.key][:, i], tail)
            time_intervals[base.label] = Interval(float(times[base.key][i]), float(t_low), float(t_high))
            values = base.times.get(optimizer, {}).get(measure, [])
            reached[base.label] = f"{sum(math.isfinite(v) for v in values)}/{len(values)}"
        rows.append(
            (optimizer, Interval(profile.score(optimizer, tau_max), float(low), float(high)), time_intervals, reached)
        )
    rows.sort(key=lambda r: (-r[1].value, r[0]))
    bands = {optimizer: (taus, *_interval(boot_rho[:, i], tail)) for i, optimizer in enumerate(optimizers)}
    return ScoreTable(
        measure=measure,
        ruleset=ruleset,
        workloads=[b.label for b in bases],
        held_out=[r.label for r in results if r.held_out_of is not None],
        rows=[ScoreRow(rank, *row) for rank, row in enumerate(rows, 1)],
        profile=profile,
        rho_band=bands,
        studies=studies,
    )


def _interval(samples: np.ndarray, tail: float) -> tuple[Any, Any]:
    """Percentile bounds along the first axis, taken at sample values (no interpolation, so infinities stay)."""
    return np.quantile(samples, tail, axis=0, method="lower"), np.quantile(samples, 1 - tail, axis=0, method="higher")


def rank_correlation(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
    """Spearman's rho and Kendall's tau between two score tables over the optimizers they share."""
    from scipy.stats import kendalltau, spearmanr

    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        raise ValueError("rank correlation needs at least two optimizers in both tables")
    x, y = [a[o] for o in shared], [b[o] for o in shared]
    return float(spearmanr(x, y).statistic), float(kendalltau(x, y).statistic)
