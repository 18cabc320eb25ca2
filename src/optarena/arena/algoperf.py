"""AlgoPerf's protocol at CPU scale: time to a procedure-set target, studies of trials, profiles.

Dahl et al. 2023, *Benchmarking Neural Network Training Algorithms*
(https://arxiv.org/abs/2306.07179). Per workload the target comes from the baseline
procedure of :mod:`optarena.arena.targets`; a trial *reaches* it at the first evaluation
that meets it, and its time is the steps (or training seconds, evaluation excluded) up
to that evaluation.

- **External tuning** (``ruleset="external"``): per (workload, optimizer), ``studies``
  independent studies of ``trials`` configurations drawn from the optimizer's own declared
  search space (scrambled Halton points; study ``s`` uses search seed and trial seed
  ``seed + s``). A study's time is that of its fastest trial to reach the target; the
  workload's time is the median over studies; a study none of whose trials reached the
  target counts as infinite.
- **Self-tuning** (``ruleset="self"``): the optimizer's defaults only, one trial per
  study, on 1.5 times the workload's step budget.
- **Held-out variants** (``held_out=True``): for each workload that has them, one variant
  (:func:`~optarena.arena.workloads.variants.draw_variant`) drawn from ``held_out_seed``
  when the race is planned; its target is set by the baseline procedure then if none is
  stored. As in AlgoPerf, an optimizer that misses a held-out variant's target gets an
  infinite time on the base workload.

Scores (:mod:`optarena.arena.algoperf_scoring`): performance profiles over the base
workloads and the benchmark score, by steps and by seconds, with bootstrap intervals
over the studies (the seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from inspect import Parameter
from typing import Any

from optarena import __version__
from optarena.arena.race import PlannedWorkload, Role, objective
from optarena.arena.store import Store, canonical_json
from optarena.arena.targets import StoredTarget, stored_target
from optarena.arena.trial import TrialSpec, digest, resolve_workload, workload_config
from optarena.arena.workloads.targeted import HELD_OUT_OPTION, TARGET_OPTION
from optarena.arena.workloads.variants import draw_variant, has_variants
from optarena.checks import whole_numbers
from optarena.registry import Entry, lookup
from optarena.tuning import make_search

RULESETS = ("external", "self")
SELF_TUNING_BUDGET = 1.5
"""Self-tuning runs get this multiple of the workload's step budget (AlgoPerf: 3x the external budget's
time; here the external studies' parallel trials are not counted against the clock, so 1.5x of one run)."""
SEARCH_NAMES = {"external": "algoperf-external", "self": "algoperf-self"}
"""The ``search`` column of an AlgoPerf study in the store."""


class MissingTarget(ValueError):
    """A workload has no stored target for its options and version."""


@dataclass(frozen=True)
class AlgoPerfConfig:
    """An AlgoPerf race: workloads, optimizers, the ruleset, studies and trials, seeds."""

    workloads: tuple[str, ...]
    optimizers: tuple[str, ...]
    ruleset: str = "external"
    studies: int = 3
    trials: int = 8
    seed: int = 0
    """Study ``s`` uses search seed and trial seed ``seed + s``: two races with seeds far apart are independent."""
    held_out: bool = False
    held_out_seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None

    def check(self) -> None:
        whole_numbers(studies=self.studies, trials=self.trials)
        whole_numbers(0, seed=self.seed, held_out_seed=self.held_out_seed)
        if self.ruleset not in RULESETS:
            raise ValueError(f"unknown ruleset {self.ruleset!r}; allowed: {', '.join(RULESETS)}")
        if TARGET_OPTION in self.options:
            raise ValueError(f"the option {TARGET_OPTION!r} comes from the stored targets; leave it out")
        for kind, names in (("workload", self.workloads), ("optimizer", self.optimizers)):
            if isinstance(names, str) or not names:
                raise ValueError(f"give at least one {kind} as a sequence of names")

    @property
    def trials_per_study(self) -> int:
        return self.trials if self.ruleset == "external" else 1


@dataclass
class AlgoPerfWorkload(PlannedWorkload):
    """A planned workload with its own options (the stored target, a variant's settings)."""

    options: dict[str, Any] = field(default_factory=dict)
    base: str | None = None
    """For a held-out variant, the key of its base workload."""


class _StudySettings:
    """What the race driver and progress display read from a study's config."""

    def __init__(self, trials: int) -> None:
        self.trials, self.seeds = trials, 0


class AlgoPerfStudy:
    """One study: ``trials`` configurations of one optimizer on one workload, on one seed."""

    def __init__(
        self, planned: AlgoPerfWorkload, entry: Entry, config: AlgoPerfConfig, number: int, version: str = __version__
    ) -> None:
        self.planned, self.entry, self.number, self.version = planned, entry, number, version
        self.ruleset = config.ruleset
        self.seed = config.seed + number
        self.config = _StudySettings(config.trials_per_study)
        self.data_dir = config.data_dir
        if self.ruleset == "external":
            self.search = make_search(
                "quasi-random", entry.search_space, config.trials, self.seed, defaults=entry.defaults()
            )
            self.tuned_keys = list(self.search.space)
        else:
            self.search = None
            self.tuned_keys = []
        self.id = digest(
            {
                "workload": planned.key,
                "optimizer": entry.name,
                "search": SEARCH_NAMES[self.ruleset],
                "tune": self.tuned_keys,
                "trials": self.config.trials,
                "search_seed": self.seed,
                "optarena": version,
            }
        )
        self.outstanding = 0
        self.asked = 0
        self.results: dict[int, float] = {}
        self.reruns_started = False
        self.best = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workload_key": self.planned.key,
            "optimizer": self.entry.name,
            "search": SEARCH_NAMES[self.ruleset],
            "tune": canonical_json(self.tuned_keys),
            "trials": self.config.trials,
            "seeds": 0,
            "search_seed": self.seed,
            "optarena_version": self.version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def _spec(self, hyperparameters: dict[str, Any]) -> TrialSpec:
        return TrialSpec(
            workload=self.planned.spec,
            options=dict(self.planned.options),
            data_dir=self.data_dir,
            workload_key=self.planned.key,
            optimizer=self.entry.name,
            hyperparameters=hyperparameters,
            seed=self.seed,
            version=self.version,
        )

    @property
    def done(self) -> bool:
        return len(self.results) == self.config.trials

    def next_trials(self) -> list[Role]:
        roles = []
        while self.asked < self.config.trials:
            hyperparameters = self.search.ask().hyperparameters if self.search is not None else {}
            roles.append(Role(self, "tune", self.asked, self._spec(hyperparameters)))
            self.asked += 1
            self.outstanding += 1
        return roles

    def record(self, role: Role, status: str, final_metric: float | None) -> None:
        self.outstanding -= 1
        self.results[role.number] = objective(status, final_metric, self.planned.workload.target.mode)

    @property
    def planned_trials(self) -> int:
        return self.config.trials


@dataclass
class AlgoPerfPlan:
    config: AlgoPerfConfig
    workloads: list[AlgoPerfWorkload]
    studies: list[AlgoPerfStudy]
    targets: dict[str, StoredTarget]
    """The target of each planned workload, by its key."""

    @property
    def total(self) -> int:
        return sum(s.planned_trials for s in self.studies)

    def trials_per_workload(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for study in self.studies:
            counts[study.planned.key] = counts.get(study.planned.key, 0) + study.planned_trials
        return counts


def _check_defaults(entry: Entry) -> None:
    missing = [k for k, v in entry.defaults().items() if v is Parameter.empty]
    if missing:
        raise ValueError(
            f"self-tuning runs each optimizer on its defaults, and {entry.name} has none for "
            f"{', '.join(missing)}; leave it out of a --ruleset self race"
        )


def _planned(
    spec: str, options: dict[str, Any], target: StoredTarget, data_dir: str | None, base: str | None = None
) -> AlgoPerfWorkload:
    options = {**options, TARGET_OPTION: target.value}
    workload = resolve_workload(spec, options, data_dir)
    config = workload_config(workload, options)
    return AlgoPerfWorkload(spec, workload, config, digest(config), options=options, base=base)


def variant_options(spec: str, config: AlgoPerfConfig) -> dict[str, Any] | None:
    """The held-out variant's options for workload ``spec`` (None when it has no variants)."""
    name = spec.strip().lower()
    if ":" in spec or not has_variants(name):
        return None
    return {**config.options, **draw_variant(name, config.held_out_seed)}


def find_target(store: Store, spec: str, options: dict[str, Any], data_dir: str | None) -> StoredTarget:
    """The stored target of ``spec`` built with ``options``; :class:`MissingTarget` says how to set it."""
    workload = resolve_workload(spec, options, data_dir)
    target = stored_target(store, workload, options)
    if target is None:
        shown = " ".join(f"{k}={v}" for k, v in options.items())
        raise MissingTarget(
            f"no stored target for {spec}"
            + (f" ({shown})" if shown else "")
            + f" at version {getattr(workload, 'version', '0')}: run `optarena targets --workload {spec}"
            + (" --quick" if options.get("quick") else "")
            + f" --db {store.path}` first"
        )
    return target


def make_algoperf_plan(config: AlgoPerfConfig, store: Store, version: str = __version__) -> AlgoPerfPlan:
    """Check every name, look up every stored target, and build the studies.

    Held-out variants need their targets stored first: :func:`missing_variant_targets`
    lists those that are not, for :func:`~optarena.arena.targets.set_targets`.
    """
    config.check()
    entries: list[Entry] = []
    for name in config.optimizers:
        entry = lookup(name)
        if entry in entries:
            raise ValueError(f"optimizer {entry.name!r} is listed twice")
        if config.ruleset == "self":
            _check_defaults(entry)
        entries.append(entry)
    options = dict(config.options)
    planned: list[AlgoPerfWorkload] = []
    targets: dict[str, StoredTarget] = {}
    for spec in config.workloads:
        target = find_target(store, spec, options, config.data_dir)
        base = _planned(spec, _race_options(spec, options, config), target, config.data_dir)
        if any(p.key == base.key for p in planned):
            raise ValueError(f"workload {spec!r} is listed twice")
        planned.append(base)
        targets[base.key] = target
        if config.held_out:
            variant = variant_options(spec, config)
            if variant is None:
                continue
            variant_target = stored_target(store, resolve_workload(spec, variant, config.data_dir), variant)
            if variant_target is None:
                raise MissingTarget(f"no target for the held-out variant of {spec} ({variant}); set it first")
            held_options = {**_race_options(spec, variant, config), HELD_OUT_OPTION: base.key}
            held = _planned(spec, held_options, variant_target, config.data_dir, base=base.key)
            planned.append(held)
            targets[held.key] = variant_target
    studies = [
        AlgoPerfStudy(p, entry, config, s, version) for p in planned for entry in entries for s in range(config.studies)
    ]
    return AlgoPerfPlan(config, planned, studies, targets)


def _race_options(spec: str, options: dict[str, Any], config: AlgoPerfConfig) -> dict[str, Any]:
    """The options a race builds the workload with: self-tuning gets 1.5x the steps."""
    if config.ruleset != "self":
        return dict(options)
    steps = int(resolve_workload(spec, options, config.data_dir).steps)
    return {**options, "steps": math.ceil(SELF_TUNING_BUDGET * steps)}


def missing_variant_targets(config: AlgoPerfConfig, store: Store) -> list[tuple[str, dict[str, Any]]]:
    """The held-out variants (spec, options) that have no stored target yet."""
    if not config.held_out:
        return []
    missing = []
    for spec in config.workloads:
        variant = variant_options(spec, config)
        if variant is None:
            continue
        if stored_target(store, resolve_workload(spec, variant, config.data_dir), variant) is None:
            missing.append((spec, variant))
    return missing
