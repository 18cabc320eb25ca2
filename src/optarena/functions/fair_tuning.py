"""Tune every optimizer on a test function with the same budget, then report held-out medians.

A picture of optimizer paths is only fair when every optimizer had the same chance: the
same number of trials, drawn from the same quasi-random points of the unit cube (mapped
through each optimizer's declared search space, :func:`optarena.tuning.make_search`),
judged by the same robust objective over the same start points and noise seeds. By default
only the learning rate is tuned; ``tune="all"`` tunes every declared key.

The objective of a trial is a quantile over runs (start points x seeds; by default the
75th percentile, so three runs in four do at least this well) of the final ``log10`` gap to
the minimum value (or of the distance to the nearest minimum), floored at :data:`FLOOR`. A
diverged run scores ``inf``, so a configuration that diverges from more than a quarter of
the starts loses to any that does not: a learning rate at the edge of stability from the
tuning starts would diverge from many fresh ones. Ties (several configurations reaching the floor) go to the faster one: the
lower median over runs of the mean ``log10`` gap along the path. The tuned configuration is
then run from fresh starts (and seeds) that tuning never saw, and from the common start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from optarena.checks import whole_numbers
from optarena.functions.base import TestFunction
from optarena.functions.paths import Paths, run_paths
from optarena.functions.stochastic import NoisyGradient
from optarena.registry import lookup
from optarena.search_space import LEARNING_RATE_ONLY
from optarena.tuning import STRATEGIES, make_search

FLOOR = 1e-12
"""Gaps (and distances) below this count as reached: double precision cannot tell them apart on these functions."""

OBJECTIVES = ("loss", "distance")
HELD_OUT_OFFSET = 1_000_003
"""Added to the seed for the held-out starts and noise, so they differ from the tuning ones."""


@dataclass(frozen=True)
class Budget:
    """What every optimizer gets: the same trials, steps, starts and seeds."""

    steps: int = 500
    trials: int = 24
    starts: int = 32
    seeds: int = 1
    strategy: str = "quasi-random"
    seed: int = 0
    tune: str = "lr"
    """``"lr"`` (the learning rate only) or ``"all"`` (every key the optimizer declares tunable)."""
    objective: str = "loss"
    quantile: float = 0.75
    """The quantile over runs that scores a trial (0.5: the median)."""

    def __post_init__(self) -> None:
        whole_numbers(steps=self.steps, trials=self.trials, starts=self.starts, seeds=self.seeds)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown search strategy {self.strategy!r}; allowed: {', '.join(STRATEGIES)}")
        if self.tune not in ("lr", "all"):
            raise ValueError(f"tune must be 'lr' or 'all', got {self.tune!r}")
        if isinstance(self.quantile, bool) or not isinstance(self.quantile, (int, float)) or not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")


@dataclass
class Trial:
    hyperparameters: dict[str, Any]
    score: float
    speed: float
    error: str | None = None


@dataclass
class Tuned:
    """One optimizer's tuning result and its runs with the tuned configuration."""

    name: str
    hyperparameters: dict[str, Any]
    """The tuned values (only the keys that were tuned)."""
    score: float
    trials: list[Trial]
    held_out: Paths
    """The tuned configuration from start points (and seeds) that tuning never saw."""
    from_start: Paths
    """The tuned configuration from the function's common start."""

    @property
    def median_gap(self) -> float:
        return _median(self.held_out.final_gap)

    @property
    def median_distance(self) -> float:
        return _median(self.held_out.final_distance)

    @property
    def diverged_fraction(self) -> float:
        return float(self.held_out.diverged.double().mean())

    @property
    def lr(self) -> float | None:
        value = self.hyperparameters.get("lr")
        return None if value is None else float(value)

    def settings(self) -> str:
        """The tuned values as ``lr=0.0123, momentum=0.9``."""
        return ", ".join(f"{k}={_short(v)}" for k, v in self.hyperparameters.items())


@dataclass
class Study:
    """Every optimizer tuned on one function with one :class:`Budget`."""

    function: TestFunction
    budget: Budget
    results: list[Tuned] = field(default_factory=list)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return repr(value)


def _quantile(values: Tensor, q: float) -> float:
    """The ``q`` quantile, taking the lower of two neighbours; ``nan`` counts as ``inf``."""
    ordered = values.double().nan_to_num(nan=math.inf, posinf=math.inf).sort().values
    return float(ordered[min(int(math.ceil(q * len(ordered))) - 1, len(ordered) - 1)]) if len(ordered) else math.inf


def _median(values: Tensor) -> float:
    return _quantile(values, 0.5)


def score(paths: Paths, objective: str = "loss", quantile: float = 0.75) -> tuple[float, float]:
    """``(score, speed)`` of a set of runs; lower is better for both.

    ``score``: the ``quantile`` over runs of ``log10`` of the final gap (or distance), floored
    at :data:`FLOOR`; ``inf`` per diverged run. ``speed``: the same quantile of the mean
    ``log10`` gap along each path (diverged runs ``inf``).
    """
    final = paths.final_gap if objective == "loss" else paths.final_distance
    per_run = torch.log10(final.clamp(min=FLOOR))
    along = torch.log10(paths.gaps().clamp(min=FLOOR)).mean(dim=0)
    along = torch.where(paths.diverged | ~torch.isfinite(along), torch.full_like(along, math.inf), along)
    return _quantile(per_run, quantile), _quantile(along, quantile)


def _tuned_keys(name: str, tune: str) -> list[str]:
    space = lookup(name).search_space
    return list(space) if tune == "all" else [k for k in LEARNING_RATE_ONLY if k in space]


def _runs(function: TestFunction, budget: Budget, seed: int) -> Tensor:
    """The start points of the runs: ``starts`` draws, repeated for each noise seed."""
    generator = torch.Generator().manual_seed(seed)
    starts = function.sample_starts(budget.starts, generator, dtype=torch.float64)
    seeds = budget.seeds if isinstance(function, NoisyGradient) else 1
    return starts.repeat(seeds, 1)


def tune_one(
    function: TestFunction,
    name: str,
    budget: Budget,
    on_trial: Callable[[str, int, int], None] | None = None,
) -> Tuned:
    """Tune optimizer ``name`` with ``budget`` and run the winner on held-out starts."""
    entry = lookup(name)
    keys = _tuned_keys(entry.name, budget.tune)
    search = make_search(
        budget.strategy, entry.search_space, budget.trials, seed=budget.seed, defaults=entry.defaults(), tune=keys
    )
    starts = _runs(function, budget, budget.seed)
    trials: list[Trial] = []
    for number in range(budget.trials):
        suggestion = search.ask()
        settings = dict(suggestion.hyperparameters)
        try:
            paths = run_paths(function, entry.name, starts, budget.steps, settings, seed=budget.seed)
            value, speed = score(paths, budget.objective, budget.quantile)
            error = None
        except ValueError as problem:  # a combination the optimizer rejects scores worst
            value, speed, error = math.inf, math.inf, str(problem)
        search.tell(suggestion.number, value)
        trials.append(Trial(settings, value, speed, error))
        if on_trial is not None:
            on_trial(entry.name, number + 1, budget.trials)
    best = min(trials, key=lambda trial: (trial.score, trial.speed))
    held_out_starts = _runs(function, budget, budget.seed + HELD_OUT_OFFSET)
    held_out = run_paths(
        function, entry.name, held_out_starts, budget.steps, best.hyperparameters, seed=budget.seed + HELD_OUT_OFFSET
    )
    from_start = run_paths(
        function,
        entry.name,
        function.start_tensor(torch.float64)[None],
        budget.steps,
        best.hyperparameters,
        seed=budget.seed,
    )
    return Tuned(entry.name, dict(best.hyperparameters), best.score, trials, held_out, from_start)


def tune_all(
    function: TestFunction,
    optimizers: Sequence[str],
    budget: Budget = Budget(),
    on_trial: Callable[[str, int, int], None] | None = None,
) -> Study:
    """Tune each optimizer in turn with the same :class:`Budget`; names are checked first."""
    names = [lookup(name).name for name in optimizers]
    if not names:
        raise ValueError("give at least one optimizer")
    study = Study(function, budget)
    for name in names:
        study.results.append(tune_one(function, name, budget, on_trial))
    return study
