"""Read races back from the store: per workload, each optimizer's study with its trials and curves.

AlgoPerf studies (:mod:`optarena.arena.algoperf_scoring` reads them) and claims' grids are left out.
When one optimizer has several studies on a workload (races with different budgets into
the same file), the most recently created complete study is used (or the most recent one
when none is complete). Reports and leaderboards only ever read through this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optarena.arena.store import Store, StoreError
from optarena.arena.workload import MODES, Target
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
        """The name, with the options it was built with and the start of its data's fingerprint
        (``digits-mlp (quick)``, ``mnist-mlp (quick, data 3f2a9c1e)``)."""
        options = self.config.get("options", {})
        parts = [k if v is True else f"{k}={v}" for k, v in options.items()]
        if "data" in self.config:
            parts.append(f"data {str(self.config['data'])[:8]}")
        if not parts:
            return self.name
        return f"{self.name} ({', '.join(parts)})"


def _damaged(store: Store, table: str, key: Any, column: str, value: Any, allowed: str) -> StoreError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return StoreError(
        f"the result store {str(store.path)!r} is damaged or was edited: {table} row {key!r} has {column} {shown}, "
        f"expected {allowed}; restore it from a copy or race into a new --db file"
    )


def _json(store: Store, table: str, key: Any, column: str, text: Any, kind: type) -> Any:
    """The JSON ``text`` of a stored column, which must decode to a ``kind``; else a StoreError."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise _damaged(store, table, key, column, text, f"JSON text of a {kind.__name__}") from None
    if not isinstance(value, kind):
        raise _damaged(store, table, key, column, text, f"JSON text of a {kind.__name__}")
    return value


def _text(store: Store, table: str, key: Any, column: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _damaged(store, table, key, column, value, "text")
    return value


def _whole(store: Store, table: str, key: Any, column: str, value: Any, *, none: bool = False) -> int | None:
    if value is None and none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _damaged(store, table, key, column, value, "a whole number" + (" or NULL" if none else ""))
    return value


def _real(store: Store, table: str, key: Any, column: str, value: Any, *, none: bool = True) -> float | None:
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _damaged(store, table, key, column, value, "a number" + (" or NULL" if none else ""))
    return float(value)


def load_results(store: Store, workload: str | None = None) -> list[WorkloadResult]:
    """Every workload in the store (or those whose name or spec is ``workload``) with its studies.

    A row whose values are not what optarena writes (bad JSON, a number stored as text) is a
    :class:`StoreError` naming the table, the row and the column.
    """
    results = []
    for row in store.rows("SELECT * FROM workloads ORDER BY rowid"):
        if workload is not None and workload not in (row["name"], row["spec"]):
            continue
        key = row["key"]
        if row["target_mode"] not in MODES:
            raise _damaged(store, "workloads", key, "target_mode", row["target_mode"], f"one of {MODES}")
        result = WorkloadResult(
            key=key,
            name=_text(store, "workloads", key, "name", row["name"]),
            spec=_text(store, "workloads", key, "spec", row["spec"]),
            description=_text(store, "workloads", key, "description", row["description"]),
            config=_json(store, "workloads", key, "config", row["config"], dict),
            target=Target(
                _text(store, "workloads", key, "target_metric", row["target_metric"]),
                _real(store, "workloads", key, "target_value", row["target_value"], none=False),
                row["target_mode"],
            ),
            steps=_whole(store, "workloads", key, "steps", row["steps"]),
            eval_every=_whole(store, "workloads", key, "eval_every", row["eval_every"]),
        )
        if not isinstance(result.config.get("options", {}), dict):
            raise _damaged(store, "workloads", key, "config", row["config"], "options given as a JSON object")
        result.studies = _studies(store, row["key"])
        if result.studies:
            results.append(result)
    return results


def _studies(store: Store, workload_key: str) -> list[StudyResult]:
    chosen: dict[str, StudyResult] = {}
    for row in store.rows(
        "SELECT * FROM studies WHERE workload_key = ? AND search NOT LIKE 'algoperf-%' "
        "AND search NOT LIKE 'claim:%' ORDER BY rowid",
        (workload_key,),
    ):
        sid = row["id"]
        study = StudyResult(
            id=sid,
            optimizer=_text(store, "studies", sid, "optimizer", row["optimizer"]),
            search=_text(store, "studies", sid, "search", row["search"]),
            tune=_json(store, "studies", sid, "tune", row["tune"], list),
            trials=_whole(store, "studies", sid, "trials", row["trials"]),
            seeds=_whole(store, "studies", sid, "seeds", row["seeds"]),
            optarena_version=_text(store, "studies", sid, "optarena_version", row["optarena_version"]),
        )
        if not all(isinstance(key, str) for key in study.tune):
            raise _damaged(store, "studies", sid, "tune", row["tune"], "a JSON list of names")
        for trial in store.rows(
            "SELECT t.*, st.phase, st.number FROM study_trials st JOIN trials t ON t.key = st.trial "
            "WHERE st.study = ? ORDER BY st.phase, st.number",
            (study.id,),
        ):
            tk = trial["key"]
            hyperparameters = _json(store, "trials", tk, "hyperparameters", trial["hyperparameters"], dict)
            if trial["status"] not in ("finished", "diverged"):
                raise _damaged(store, "trials", tk, "status", trial["status"], "'finished' or 'diverged'")
            record = TrialRecord(
                key=tk,
                optimizer=_text(store, "trials", tk, "optimizer", trial["optimizer"]),
                hyperparameters={k: tuple(v) if isinstance(v, list) else v for k, v in hyperparameters.items()},
                seed=_whole(store, "trials", tk, "seed", trial["seed"]),
                status=trial["status"],
                final_metric=_real(store, "trials", tk, "final_metric", trial["final_metric"]),
                best_metric=_real(store, "trials", tk, "best_metric", trial["best_metric"]),
                steps_to_target=_whole(store, "trials", tk, "steps_to_target", trial["steps_to_target"], none=True),
                seconds_to_target=_real(store, "trials", tk, "seconds_to_target", trial["seconds_to_target"]),
                train_seconds=_real(store, "trials", tk, "train_seconds", trial["train_seconds"], none=False),
                steps_done=_whole(store, "trials", tk, "steps_done", trial["steps_done"]),
                phase=trial["phase"],
                number=_whole(store, "study_trials", tk, "number", trial["number"]),
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
        for row in store.rows(
            "SELECT step, value FROM metrics WHERE trial = ? AND name = ? ORDER BY step", (key, name)
        ):
            curves[key][0].append(_whole(store, "metrics", key, "step", row["step"]))
            value = row["value"]
            curves[key][1].append(np.nan if value is None else _real(store, "metrics", key, "value", value))
    return {k: (np.asarray(s, dtype=float), np.asarray(v, dtype=float)) for k, (s, v) in curves.items()}


@dataclass
class TrialDiagnostics:
    """A trial's diagnostics (:mod:`optarena.arena.trial_diagnostics`): ``(steps, values)`` per series."""

    signals: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    """``{signal: {parameter: (steps, values)}}``, parameters in :func:`natural_order` of their names."""
    series: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """``sharpness``, ``lr``, ``threshold``, ``preconditioned_sharpness``, ``preconditioned_threshold``
    (the names without their ``diagnostic:`` prefix)."""
    spectra: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """``{step: (nodes, weights)}``: the Hessian's eigenvalue density at that step, as quadrature."""

    def __bool__(self) -> bool:
        return bool(self.signals or self.series or self.spectra)


def natural_order(name: str) -> list[tuple[int, Any]]:
    """Sort key that compares the digits in a name as numbers (``layers.2`` before ``layers.10``)."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part]


def load_diagnostics(store: Store, keys: list[str]) -> dict[str, TrialDiagnostics]:
    """Per trial key, its stored signals, sharpness and spectra (empty for trials recorded without them)."""
    from optarena.arena.trial_diagnostics import DIAGNOSTIC_PREFIX, SPECTRUM_NODE, SPECTRUM_WEIGHT, parse_signal_metric

    out = {}
    for key in keys:
        collected: dict[str, tuple[list[int], list[float]]] = {}
        # ';' follows ':' in code order: each range is exactly the names with that prefix, read by the primary key
        for row in store.rows(
            "SELECT name, step, value FROM metrics WHERE trial = ? AND ((name >= 'signal:' AND name < 'signal;') OR "
            "(name >= 'diagnostic:' AND name < 'diagnostic;')) ORDER BY name, step",
            (key,),
        ):
            steps, values = collected.setdefault(_text(store, "metrics", key, "name", row["name"]), ([], []))
            steps.append(_whole(store, "metrics", key, "step", row["step"]))
            value = row["value"]
            values.append(np.nan if value is None else _real(store, "metrics", key, "value", value))
        diagnostics = TrialDiagnostics()
        quadrature: dict[int, dict[str, list[float]]] = {}
        for name in sorted(collected, key=natural_order):
            steps, values = collected[name]
            curve = (np.asarray(steps, dtype=float), np.asarray(values, dtype=float))
            parsed = parse_signal_metric(name)
            short = name[len(DIAGNOSTIC_PREFIX) :]
            if parsed is not None:
                diagnostics.signals.setdefault(parsed[0], {})[parsed[1]] = curve
            elif short.startswith((SPECTRUM_NODE, SPECTRUM_WEIGHT)):  # node i's value at each snapshot step
                part = SPECTRUM_NODE if short.startswith(SPECTRUM_NODE) else SPECTRUM_WEIGHT
                for step, value in zip(steps, values):
                    quadrature.setdefault(step, {SPECTRUM_NODE: [], SPECTRUM_WEIGHT: []})[part].append(value)
            elif name.startswith(DIAGNOSTIC_PREFIX):
                diagnostics.series[short] = curve
        for step, parts in sorted(quadrature.items()):
            nodes, weights = np.asarray(parts[SPECTRUM_NODE]), np.asarray(parts[SPECTRUM_WEIGHT])
            if (
                len(nodes) == len(weights)
                and len(nodes)
                and np.all(np.isfinite(nodes))
                and np.all(np.isfinite(weights))
            ):
                diagnostics.spectra[step] = (nodes, weights)
        out[key] = diagnostics
    return out
