"""Read races back from the store: per workload, each optimizer's study with its trials and curves.

AlgoPerf studies (:mod:`optarena.arena.algoperf_scoring` reads them) and claims' grids are left out.
When one optimizer has several studies on a workload (races with different budgets into
the same file), the most recently created complete study is used (or the most recent one
when none is complete). Reports and leaderboards only ever read through this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optarena.arena.store import Store
from optarena.arena.workload import Target
from optarena.search_space import split_key


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial as a study used it."""

    key: str
    optimizer: str
    hyperparameters: dict[str, Any]
    seed: int
    status: str
    final_metric: float | None
    best_metric: float | None
    steps_to_target: int | None
    seconds_to_target: float | None
    train_seconds: float
    steps_done: int
    phase: str
    number: int

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"


@dataclass
class StudyResult:
    """One optimizer's study on one workload."""

    id: str
    optimizer: str
    search: str
    tune: list[str]
    trials: int
    seeds: int
    optarena_version: str
    tuning: list[TrialRecord] = field(default_factory=list)
    reruns: list[TrialRecord] = field(default_factory=list)

    @property
    def tuning_complete(self) -> bool:
        return len(self.tuning) == self.trials

    @property
    def complete(self) -> bool:
        """Every tuning trial ran, and every rerun unless all tuning trials diverged."""
        if not self.tuning_complete:
            return False
        return len(self.reruns) == self.seeds or all(t.diverged for t in self.tuning)

    @property
    def best_hyperparameters(self) -> dict[str, Any] | None:
        """The configuration the reruns used (the tuning winner), or None before the reruns."""
        return self.reruns[0].hyperparameters if self.reruns else None

    def tuned(self, hyperparameters: dict[str, Any] | None) -> dict[str, Any]:
        """Only the tuned entries of ``hyperparameters``, by search-space key (``betas[0]`` rather than ``betas``)."""
        out: dict[str, Any] = {}
        for key in self.tune:
            name, index = split_key(key)
            if hyperparameters is None or name not in hyperparameters:
                continue
            value = hyperparameters[name]
            out[key] = value if index is None else value[index]
        return out


@dataclass
class WorkloadResult:
    """A workload's configuration and, per optimizer, the study that represents it."""

    key: str
    name: str
    spec: str
    description: str
    config: dict[str, Any]
    target: Target
    steps: int
    eval_every: int
    studies: list[StudyResult] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The name, with the options it was built with (``digits-mlp (quick)``)."""
        options = self.config.get("options", {})
        if not options:
            return self.name
        parts = [k if v is True else f"{k}={v}" for k, v in options.items()]
        return f"{self.name} ({', '.join(parts)})"


def load_results(store: Store, workload: str | None = None) -> list[WorkloadResult]:
    """Every workload in the store (or those whose name or spec is ``workload``) with its studies."""
    results = []
    for row in store.rows("SELECT * FROM workloads ORDER BY rowid"):
        if workload is not None and workload not in (row["name"], row["spec"]):
            continue
        result = WorkloadResult(
            key=row["key"],
            name=row["name"],
            spec=row["spec"],
            description=row["description"],
            config=json.loads(row["config"]),
            target=Target(row["target_metric"], row["target_value"], row["target_mode"]),
            steps=row["steps"],
            eval_every=row["eval_every"],
        )
        result.studies = _studies(store, row["key"])
        if result.studies:
            results.append(result)
    return results


def _studies(store: Store, workload_key: str) -> list[StudyResult]:
    chosen: dict[str, StudyResult] = {}
    for row in store.rows("SELECT * FROM studies WHERE workload_key = ? AND search NOT LIKE 'algoperf-%' "
                          "AND search NOT LIKE 'claim:%' ORDER BY rowid", (workload_key,)):
        study = StudyResult(
            id=row["id"],
            optimizer=row["optimizer"],
            search=row["search"],
            tune=json.loads(row["tune"]),
            trials=row["trials"],
            seeds=row["seeds"],
            optarena_version=row["optarena_version"],
        )
        for trial in store.rows(
            "SELECT t.*, st.phase, st.number FROM study_trials st JOIN trials t ON t.key = st.trial "
            "WHERE st.study = ? ORDER BY st.phase, st.number",
            (study.id,),
        ):
            record = TrialRecord(
                key=trial["key"],
                optimizer=trial["optimizer"],
                hyperparameters={k: tuple(v) if isinstance(v, list) else v
                                 for k, v in json.loads(trial["hyperparameters"]).items()},
                seed=trial["seed"],
                status=trial["status"],
                final_metric=trial["final_metric"],
                best_metric=trial["best_metric"],
                steps_to_target=trial["steps_to_target"],
                seconds_to_target=trial["seconds_to_target"],
                train_seconds=trial["train_seconds"],
                steps_done=trial["steps_done"],
                phase=trial["phase"],
                number=trial["number"],
            )
            (study.tuning if record.phase == "tune" else study.reruns).append(record)
        previous = chosen.get(study.optimizer)
        if previous is None or study.complete or not previous.complete:
            chosen[study.optimizer] = study
    return list(chosen.values())


def load_curves(store: Store, keys: list[str], name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per trial key, the ``(steps, values)`` of metric ``name`` in step order."""
    curves: dict[str, tuple[list[int], list[float]]] = {key: ([], []) for key in keys}
    for key in keys:
        for row in store.rows("SELECT step, value FROM metrics WHERE trial = ? AND name = ? ORDER BY step", (key, name)):
            curves[key][0].append(row["step"])
            curves[key][1].append(np.nan if row["value"] is None else row["value"])
    return {k: (np.asarray(s, dtype=float), np.asarray(v, dtype=float)) for k, (s, v) in curves.items()}
