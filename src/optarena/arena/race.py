"""A race: every optimizer tuned with the same budget on each workload, its best setting rerun over seeds.

For each (workload, optimizer) a *study*:

1. **Tuning.** ``trials`` configurations from the optimizer's declared search space
   (:func:`optarena.tuning.make_search`; quasi-random Halton points by default, all known
   up front and run in parallel; or Optuna TPE, one at a time per optimizer, each proposal
   informed by the results so far). Tuning runs use seed :data:`TUNING_SEED`. The objective
   is the final value of the workload's target metric; a diverged run scores worst.
2. **Reruns.** The best configuration (ties: the earliest trial) is rerun on seeds
   ``1 .. seeds``: fresh seeds, so the reported numbers do not carry the luck that made a
   configuration win the tuning.

Every trial is keyed by a hash of what determines its result; one already in the store is
reused, never rerun, so repeating a race adds nothing and a killed race resumes where it
stopped. See docs/arena.md.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from optarena import __version__
from optarena.arena.executors import Executor
from optarena.arena.store import Store, canonical_json
from optarena.arena.trial import TrialFailed, TrialSpec, digest, resolve_workload, workload_config
from optarena.checks import whole_numbers
from optarena.registry import Entry, lookup
from optarena.search_space import LEARNING_RATE_ONLY
from optarena.tuning import MAX_BUDGET, STRATEGIES, QuasiRandomSearch, make_search

TUNING_SEED = 0
"""The seed of every tuning trial; the best configuration is rerun on seeds 1, 2, ..."""

MAX_SEEDS = 10_000
"""The most seeds a winner may be rerun on."""

TUNE_CHOICES = ("all", "lr")
"""``all``: every hyperparameter the optimizer declares tunable; ``lr``: the learning rate alone."""


class RaceError(RuntimeError):
    """A trial failed with an exception; the trials finished before it stay stored."""


@dataclass(frozen=True)
class RaceConfig:
    """What to race: workloads, optimizers, the tuning budget and the seeds."""

    workloads: tuple[str, ...]
    optimizers: tuple[str, ...]
    trials: int = 8
    seeds: int = 3
    search: str = "quasi-random"
    tune: str = "all"
    search_seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    """Options for every workload (``quick=True`` for the short budget)."""
    data_dir: str | None = None
    signals: bool = True
    """Record each optimizer's signals at every evaluation (docs/diagnostics.md)."""
    sharpness: bool = False
    """Measure the sharpness at every evaluation (workloads whose runs expose ``loss_fn`` and ``train_data``)."""
    spectrum: bool = False
    """Store the Hessian's eigenvalue density at each trial's first and last evaluation (the same workloads)."""

    def check(self) -> None:
        """A ValueError naming the first bad setting."""
        whole_numbers(trials=self.trials, seeds=self.seeds)
        if self.trials > MAX_BUDGET:
            raise ValueError(f"trials must be at most {MAX_BUDGET} per optimizer, got {self.trials}")
        if self.seeds > MAX_SEEDS:
            raise ValueError(f"seeds must be at most {MAX_SEEDS}, got {self.seeds}")
        if self.search not in STRATEGIES:
            raise ValueError(f"unknown search {self.search!r}; allowed: {', '.join(STRATEGIES)}")
        if self.tune not in TUNE_CHOICES:
            raise ValueError(f"unknown tune setting {self.tune!r}; allowed: {', '.join(TUNE_CHOICES)}")
        for switch in ("signals", "sharpness", "spectrum"):
            if not isinstance(getattr(self, switch), bool):
                raise ValueError(f"{switch} must be True or False, got {getattr(self, switch)!r}")
        for kind, names in (("workload", self.workloads), ("optimizer", self.optimizers)):
            if isinstance(names, str):
                raise ValueError(f"{kind}s must be a sequence of names, got the string {names!r}")
            if not names:
                raise ValueError(f"give at least one {kind}")


@dataclass
class PlannedWorkload:
    spec: str
    workload: Any
    config: dict[str, Any]
    key: str

    def row(self) -> dict[str, Any]:
        target = self.workload.target
        return {
            "key": self.key,
            "name": self.workload.name,
            "spec": self.spec,
            "description": str(self.workload.description),
            "config": canonical_json(self.config),
            "target_metric": target.metric,
            "target_value": float(target.value),
            "target_mode": target.mode,
            "steps": int(self.workload.steps),
            "eval_every": int(self.workload.eval_every),
        }


@dataclass(frozen=True)
class Role:
    """A trial's place in a study: tuning trial ``number`` or the rerun on seed ``number``."""

    study: Study
    phase: str
    number: int
    spec: TrialSpec


def objective(status: str, final_metric: float | None, mode: str) -> float:
    """The tuning objective, lower is better: the final target metric (negated for 'max'); diverged is +inf."""
    if status != "finished" or final_metric is None or not math.isfinite(final_metric):
        return math.inf
    return final_metric if mode == "min" else -final_metric


class Study:
    """One optimizer on one workload: its tuning search, then reruns of the winner."""

    def __init__(self, planned: PlannedWorkload, entry: Entry, config: RaceConfig, version: str = __version__):
        self.planned = planned
        self.entry = entry
        self.config = config
        self.version = version
        keys = list(LEARNING_RATE_ONLY) if config.tune == "lr" else None
        self.search = make_search(
            config.search, entry.search_space, config.trials, config.search_seed, defaults=entry.defaults(), tune=keys
        )
        self.tuned_keys = list(self.search.space)
        self.parallel = isinstance(self.search, QuasiRandomSearch)
        self.id = digest(
            {
                "workload": planned.key,
                "optimizer": entry.name,
                "search": config.search,
                "tune": self.tuned_keys,
                "trials": config.trials,
                "seeds": config.seeds,
                "search_seed": config.search_seed,
                "optarena": version,
            }
        )
        self.results: dict[int, float] = {}
        self.hyperparameters: dict[int, dict[str, Any]] = {}
        self.outstanding = 0
        self.reruns_started = False
        self.best: int | None = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workload_key": self.planned.key,
            "optimizer": self.entry.name,
            "search": self.config.search,
            "tune": canonical_json(self.tuned_keys),
            "trials": self.config.trials,
            "seeds": self.config.seeds,
            "search_seed": self.config.search_seed,
            "optarena_version": self.version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def _spec(self, hyperparameters: dict[str, Any], seed: int) -> TrialSpec:
        return TrialSpec(
            workload=self.planned.spec,
            options=dict(self.config.options),
            data_dir=self.config.data_dir,
            workload_key=self.planned.key,
            optimizer=self.entry.name,
            hyperparameters=hyperparameters,
            seed=seed,
            version=self.version,
            signals=self.config.signals,
            sharpness=self.config.sharpness,
            spectrum=self.config.spectrum,
        )

    def warm_up_spec(self) -> TrialSpec:
        """A spec with the optimizer's default hyperparameters, for an executor to prepare its workers."""
        return self._spec(self.entry.defaults(), TUNING_SEED)

    @property
    def tuning_done(self) -> bool:
        return len(self.results) == self.config.trials

    @property
    def done(self) -> bool:
        return self.tuning_done and self.reruns_started and self.outstanding == 0

    def next_trials(self) -> list[Role]:
        """Trials that can start now and were not handed out before."""
        roles = []
        if not self.tuning_done:
            while self.search.asked < self.config.trials and (self.parallel or self.outstanding == 0):
                suggestion = self.search.ask()
                self.hyperparameters[suggestion.number] = suggestion.hyperparameters
                roles.append(Role(self, "tune", suggestion.number, self._spec(suggestion.hyperparameters, TUNING_SEED)))
                self.outstanding += 1
        elif not self.reruns_started:
            self.reruns_started = True
            finite = {n: v for n, v in self.results.items() if math.isfinite(v)}
            if finite:
                self.best = min(finite, key=lambda n: (finite[n], n))
                best = self.hyperparameters[self.best]
                for seed in range(TUNING_SEED + 1, TUNING_SEED + 1 + self.config.seeds):
                    roles.append(Role(self, "rerun", seed, self._spec(best, seed)))
                    self.outstanding += 1
        return roles

    def record(self, role: Role, status: str, final_metric: float | None) -> None:
        """The result of a trial handed out by :meth:`next_trials`."""
        self.outstanding -= 1
        if role.phase == "tune":
            value = objective(status, final_metric, self.planned.workload.target.mode)
            self.results[role.number] = value
            self.search.tell(role.number, value)

    @property
    def planned_trials(self) -> int:
        return self.config.trials + self.config.seeds


@dataclass
class Plan:
    config: RaceConfig
    workloads: list[PlannedWorkload]
    studies: list[Study]

    @property
    def total(self) -> int:
        return sum(s.planned_trials for s in self.studies)


def make_plan(config: RaceConfig, version: str = __version__) -> Plan:
    """Check every name and build the studies; a ValueError (or TypeError for a bad option) before anything runs."""
    config.check()
    entries: list[Entry] = []
    for name in config.optimizers:
        entry = lookup(name)
        if entry in entries:
            raise ValueError(f"optimizer {entry.name!r} is listed twice")
        entries.append(entry)
    planned: list[PlannedWorkload] = []
    for spec in config.workloads:
        workload = resolve_workload(spec, config.options, config.data_dir)
        curvature = [name for name in ("sharpness", "spectrum") if getattr(config, name)]
        if curvature and getattr(workload, "drawable", None) is False:
            from optarena.arena.workloads import available_workloads

            able = ", ".join(info.name for info in available_workloads() if info.drawable)
            raise ValueError(
                f"workload {spec!r} cannot measure {' or '.join(curvature)} (built-in workloads that can: {able}); "
                f"race it without {' and '.join('--' + name for name in curvature)}"
            )
        workload_cfg = workload_config(workload, config.options, spec, config.data_dir)
        key = digest(workload_cfg)
        if any(p.key == key for p in planned):
            raise ValueError(f"workload {spec!r} is listed twice")
        planned.append(PlannedWorkload(spec, workload, workload_cfg, key))
    studies = [Study(p, entry, config, version) for p in planned for entry in entries]
    return Plan(config, planned, studies)


@dataclass
class RaceOutcome:
    """What a race did: trials run now, trials reused from the store, and how many diverged."""

    ran: int = 0
    reused: int = 0
    diverged: int = 0
    skipped: int = 0
    """Reruns not run because every tuning trial of their optimizer diverged."""


TrialCallback = Callable[[Role, str, float | None, bool], None]
"""Called after each trial with (role, status, final_metric, reused)."""


def run_race(
    plan: Plan,
    store: Store,
    executor: Executor,
    on_trial: TrialCallback | None = None,
    on_skip: Callable[[int], None] | None = None,
) -> RaceOutcome:
    """Run ``plan``, storing each trial as it finishes; trials already stored are reused."""
    outcome = RaceOutcome()
    for planned in plan.workloads:
        store.add_workload(planned.row())
    for study in plan.studies:
        store.add_study(study.row())

    def finished(role: Role, status: str, final_metric: float | None, reused: bool) -> None:
        role.study.record(role, status, final_metric)
        if reused:
            outcome.reused += 1
        else:
            outcome.ran += 1
        outcome.diverged += status == "diverged"
        if on_trial is not None:
            on_trial(role, status, final_metric, reused)

    queue: deque[Role] = deque()
    running: dict[Future, Role] = {}

    def collect() -> None:
        """Hand out every trial that can start; record those already stored at once."""
        progressed = True
        while progressed:
            progressed = False
            ready: list[Role] = []
            for study in plan.studies:
                reruns_before = study.reruns_started
                ready.extend(study.next_trials())
                if study.reruns_started and not reruns_before and study.best is None:
                    outcome.skipped += study.config.seeds
                    if on_skip is not None:
                        on_skip(study.config.seeds)
            ready.sort(key=lambda r: (r.phase != "tune", r.number))
            for role in ready:
                stored = store.find(role.spec.key)
                if stored is None:
                    queue.append(role)
                    continue
                store.link(role.study.id, role.phase, role.number, stored.key)
                finished(role, stored.status, stored.final_metric, True)
                progressed = True

    try:
        while True:
            collect()
            while queue and len(running) < executor.workers:
                role = queue.popleft()
                running[executor.submit(role.spec)] = role
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: (running[f].phase != "tune", running[f].number)):
                role = running.pop(future)
                try:
                    result = future.result()
                except TrialFailed as error:
                    raise RaceError(str(error)) from error
                except Exception as error:
                    raise RaceError(f"{role.spec.describe()} failed: {type(error).__name__}: {error}") from error
                store.save_trial(result.row(role.spec), result.metrics, [(role.study.id, role.phase, role.number)])
                finished(role, result.status, result.final_metric, False)
    finally:
        for future in running:
            future.cancel()
    unfinished = [s for s in plan.studies if not s.done]
    if unfinished:  # pragma: no cover - would be a scheduling bug
        raise RuntimeError(f"race ended with unfinished studies: {[s.entry.name for s in unfinished]}")
    return outcome
