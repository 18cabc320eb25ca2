"""Targets set by a procedure, not by hand: the baseline set's best median on a fixed budget.

AlgoPerf (Dahl et al. 2023, https://arxiv.org/abs/2306.07179, section 4) sets each
workload's validation target from a set of well-tuned baselines. Here, for one workload
(its name, options and budget):

1. race the baselines :data:`BASELINES` (AdamW, NAdamW, Nesterov, heavy-ball momentum)
   with the arena's usual protocol: ``trials`` quasi-random configurations on seed 0, the
   best rerun on ``seeds`` fresh seeds, all on a fixed budget of
   :data:`TARGET_BUDGET_FRACTION` (one half) of the workload's steps;
2. each baseline's value is the median over its reruns of the best value of the target
   metric during the run (a diverged rerun counts as the worst);
3. the target is the best of those values, stored with the workload's full budget and
   version.

So the best tuned baseline reaches the target in about half the steps a race gives, on
about half of its seeds: the race's budget leaves room for optimizers up to twice as slow,
and for studies of a few trials that tune less well than the baselines were tuned. Targets
live in the result store's ``targets`` table, one row per (workload name, options, budget,
version); setting them again replaces the row.
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from optarena.arena.executors import Executor
from optarena.arena.race import RaceConfig, TrialCallback, make_plan, run_race
from optarena.arena.results import load_results
from optarena.arena.store import Store, canonical_json
from optarena.arena.trial import digest, resolve_workload, workload_config
from optarena.arena.workloads.targeted import TARGET_OPTION

BASELINES = ("adamw", "nadamw", "nesterov", "momentum")
"""AlgoPerf's baseline set: AdamW, NAdamW, Nesterov and heavy-ball momentum."""
DEFAULT_TRIALS, DEFAULT_SEEDS = 8, 3
TARGET_BUDGET_FRACTION = 0.5
"""The baselines set the target on this fraction of the steps that races on the workload get."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS targets (
    key TEXT PRIMARY KEY,
    workload TEXT NOT NULL,
    options TEXT NOT NULL,
    version TEXT NOT NULL,
    steps INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('min', 'max')),
    baseline TEXT NOT NULL,
    baselines TEXT NOT NULL,
    trials INTEGER NOT NULL,
    seeds INTEGER NOT NULL,
    created_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class StoredTarget:
    """A workload's target as the baseline procedure set it."""

    workload: str
    options: dict[str, Any]
    version: str
    steps: int
    metric: str
    value: float
    mode: str
    baseline: str
    """The baseline whose median set the target."""
    baselines: dict[str, float | None]
    """Every baseline's median best value (None: every rerun diverged)."""
    trials: int
    seeds: int


def workload_version(workload: Any) -> str:
    """The workload's ``version`` attribute (``"0"`` when it declares none)."""
    return str(getattr(workload, "version", "0"))


def target_key(workload: Any, options: dict[str, Any]) -> str:
    """What a target belongs to: the workload's configuration without its target, and its version."""
    options = {k: v for k, v in options.items() if k != TARGET_OPTION}
    config = workload_config(workload, options)
    config.pop("target")
    config["metric"] = [workload.target.metric, workload.target.mode]
    return digest({"workload": config, "version": workload_version(workload)})


def _connect(store: Store) -> sqlite3.Connection:
    db = sqlite3.connect(store.path, timeout=30, isolation_level=None)
    db.execute(_SCHEMA)
    return db


def _has_targets(store: Store) -> bool:
    """Whether the store has a targets table yet (``optarena targets`` creates it)."""
    return bool(store.rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'targets'"))


def stored_target(store: Store, workload: Any, options: dict[str, Any]) -> StoredTarget | None:
    """The stored target of ``workload`` built with ``options`` at its current version, or None."""
    if not _has_targets(store):
        return None
    rows = store.rows("SELECT * FROM targets WHERE key = ?", (target_key(workload, options),))
    return _from_row(rows[0]) if rows else None


def all_targets(store: Store) -> list[StoredTarget]:
    """Every stored target, in the order they were set."""
    if not _has_targets(store):
        return []
    return [_from_row(row) for row in store.rows("SELECT * FROM targets ORDER BY rowid")]


def _from_row(row: dict[str, Any]) -> StoredTarget:
    return StoredTarget(
        row["workload"],
        json.loads(row["options"]),
        row["version"],
        row["steps"],
        row["metric"],
        row["value"],
        row["mode"],
        row["baseline"],
        json.loads(row["baselines"]),
        row["trials"],
        row["seeds"],
    )


def baseline_value(best_values: Sequence[float | None], mode: str) -> float | None:
    """The median of the reruns' best values, a missing one (diverged) counting as the worst."""
    worst = -math.inf if mode == "max" else math.inf
    values = [worst if v is None or not math.isfinite(v) else float(v) for v in best_values]
    if not values:
        return None
    median = statistics.median_low(values) if mode == "max" else statistics.median_high(values)
    return median if math.isfinite(median) else None


def set_targets(
    store: Store,
    executor: Executor,
    workloads: Sequence[str],
    *,
    options: dict[str, Any] | None = None,
    trials: int = DEFAULT_TRIALS,
    seeds: int = DEFAULT_SEEDS,
    data_dir: str | None = None,
    baselines: Sequence[str] = BASELINES,
    on_trial: TrialCallback | None = None,
) -> list[StoredTarget]:
    """Race the baselines on ``workloads`` (built with ``options``) and store each one's target."""
    options = dict(options or {})
    if TARGET_OPTION in options:
        raise ValueError(f"the option {TARGET_OPTION!r} is what this procedure sets; leave it out")
    plans = []
    for spec in workloads:  # one baseline race per workload: each has its own budget
        workload = resolve_workload(spec, options, data_dir)
        short = {**options, "steps": max(1, math.ceil(TARGET_BUDGET_FRACTION * int(workload.steps)))}
        config = RaceConfig((spec,), tuple(baselines), trials=trials, seeds=seeds, options=short, data_dir=data_dir)
        plans.append((workload, make_plan(config)))
    for _, plan in plans:
        run_race(plan, store, executor, on_trial=on_trial)
    results = {w.key: w for w in load_results(store)}
    targets = []
    db = _connect(store)
    try:
        for workload, plan in plans:
            (planned,) = plan.workloads
            mode = workload.target.mode
            values: dict[str, float | None] = {}
            for study in results[planned.key].studies:
                if study.optimizer in baselines:
                    values[study.optimizer] = baseline_value(
                        [None if t.diverged else t.best_metric for t in study.reruns], mode
                    )
            finite = {name: v for name, v in values.items() if v is not None}
            if not finite:
                raise ValueError(
                    f"every baseline diverged on {planned.spec}: no target can be set; "
                    "check the workload, or give more --trials"
                )
            pick = max if mode == "max" else min
            baseline = pick(finite, key=lambda name: (finite[name], name))
            target = StoredTarget(
                workload.name,
                options,
                workload_version(workload),
                int(workload.steps),
                workload.target.metric,
                finite[baseline],
                mode,
                baseline,
                values,
                trials,
                seeds,
            )
            db.execute(
                "INSERT OR REPLACE INTO targets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    target_key(workload, options),
                    target.workload,
                    canonical_json(options),
                    target.version,
                    target.steps,
                    target.metric,
                    target.value,
                    mode,
                    baseline,
                    canonical_json(values),
                    trials,
                    seeds,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )
            targets.append(target)
    finally:
        db.close()
    return targets


def resolve_target(store: Store, spec: str, options: dict[str, Any], data_dir: str | None) -> StoredTarget | None:
    """The stored target of workload ``spec`` built with ``options``, or None."""
    workload = resolve_workload(spec, {k: v for k, v in options.items() if k != TARGET_OPTION}, data_dir)
    return stored_target(store, workload, options)
