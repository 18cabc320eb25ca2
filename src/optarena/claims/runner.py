"""Grids of runs through the arena: each claim's study is a set of fixed configurations over seeds.

A :class:`GridStudy` is one arm of a claim (a label, an optimizer, a workload with its
options) and a list of hyperparameter settings, each run on every seed. It speaks the race
driver's study interface (:func:`optarena.arena.race.run_race`), so its trials are keyed,
stored, reused on a rerun and resumed after a kill exactly like a race's.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from optarena import __version__
from optarena.arena.race import PlannedWorkload, RaceOutcome, Role, run_race
from optarena.arena.store import Store, canonical_json
from optarena.arena.trial import TrialSpec, digest, resolve_workload, workload_config
from optarena.registry import lookup


@dataclass
class GridWorkload(PlannedWorkload):
    options: dict[str, Any] = field(default_factory=dict)


def plan_workload(spec: str, options: dict[str, Any]) -> GridWorkload:
    workload = resolve_workload(spec, options, None)
    config = workload_config(workload, options)
    return GridWorkload(spec, workload, config, digest(config), options=dict(options))


class _Settings:
    def __init__(self, trials: int) -> None:
        self.trials, self.seeds = trials, 0


class GridStudy:
    """``label``: ``optimizer`` on ``planned`` at every setting of ``grid``, on every seed of ``seeds``."""

    def __init__(
        self,
        claim: str,
        label: str,
        planned: GridWorkload,
        optimizer: str,
        grid: list[dict[str, Any]],
        seeds: list[int],
        version: str = __version__,
    ) -> None:
        self.claim, self.label, self.planned, self.grid, self.seeds = claim, label, planned, grid, seeds
        self.entry = lookup(optimizer)
        self.version = version
        self.cells = [(i, seed) for i in range(len(grid)) for seed in seeds]
        self.config = _Settings(len(self.cells))
        self.id = digest(
            {
                "claim": claim,
                "label": label,
                "workload": planned.key,
                "optimizer": self.entry.name,
                "grid": grid,
                "seeds": seeds,
                "optarena": version,
            }
        )
        self.asked = 0
        self.results: dict[int, tuple[str, float | None]] = {}
        self.reruns_started = False
        self.best = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workload_key": self.planned.key,
            "optimizer": self.entry.name,
            "search": f"claim:{self.claim}:{self.label}",
            "tune": canonical_json(sorted({k for g in self.grid for k in g})),
            "trials": len(self.cells),
            "seeds": len(self.seeds),
            "search_seed": 0,
            "optarena_version": self.version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def spec(self, number: int) -> TrialSpec:
        index, seed = self.cells[number]
        return TrialSpec(
            workload=self.planned.spec,
            options=dict(self.planned.options),
            data_dir=None,
            workload_key=self.planned.key,
            optimizer=self.entry.name,
            hyperparameters=dict(self.grid[index]),
            seed=seed,
            version=self.version,
        )

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.cells)

    def next_trials(self) -> list[Role]:
        roles = [Role(self, "tune", n, self.spec(n)) for n in range(self.asked, len(self.cells))]
        self.asked = len(self.cells)
        return roles

    def record(self, role: Role, status: str, final_metric: float | None) -> None:
        self.results[role.number] = (status, final_metric)

    @property
    def planned_trials(self) -> int:
        return len(self.cells)


@dataclass
class GridPlan:
    workloads: list[GridWorkload]
    studies: list[GridStudy]

    @property
    def total(self) -> int:
        return sum(s.planned_trials for s in self.studies)


def run_grid(studies: list[GridStudy], store: Store, executor: Any) -> RaceOutcome:
    """Run every study's grid (stored trials are reused)."""
    workloads: dict[str, GridWorkload] = {}
    for study in studies:
        workloads.setdefault(study.planned.key, study.planned)
    return run_race(GridPlan(list(workloads.values()), studies), store, executor)


@dataclass(frozen=True)
class Run:
    """One stored trial of a grid study: its setting, seed, result and curve of the target metric."""

    setting: dict[str, Any]
    seed: int
    status: str
    final: float | None
    best: float | None
    steps_to_target: int | None
    curve: tuple[tuple[int, float], ...]


def runs(store: Store, study: GridStudy) -> list[Run]:
    """The study's trials as stored, in grid order."""
    metric = study.planned.workload.target.metric
    out = []
    for number in range(len(study.cells)):
        index, seed = study.cells[number]
        key = study.spec(number).key
        row = store.rows("SELECT status, final_metric, best_metric, steps_to_target FROM trials WHERE key = ?", (key,))
        if not row:
            raise LookupError(f"trial {number} of {study.label} is not stored; run the claim first")
        curve = tuple(
            (r["step"], r["value"] if r["value"] is not None else math.nan)
            for r in store.rows(
                "SELECT step, value FROM metrics WHERE trial = ? AND name = ? ORDER BY step", (key, metric)
            )
        )
        r = row[0]
        out.append(
            Run(study.grid[index], seed, r["status"], r["final_metric"], r["best_metric"], r["steps_to_target"], curve)
        )
    return out


def mean_final(group: list[Run], worst: float) -> float:
    """The mean final value over seeds, a diverged run counting as ``worst``."""
    values = [
        r.final if r.status == "finished" and r.final is not None and math.isfinite(r.final) else worst for r in group
    ]
    return statistics.fmean(values)


def by_setting(results: list[Run]) -> list[tuple[dict[str, Any], list[Run]]]:
    """Runs grouped by setting, in grid order."""
    groups: dict[str, tuple[dict[str, Any], list[Run]]] = {}
    for r in results:
        groups.setdefault(canonical_json(r.setting), (r.setting, []))[1].append(r)
    return list(groups.values())
