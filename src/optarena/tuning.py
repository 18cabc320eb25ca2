"""Hyperparameter search with the same budget for every optimizer.

Two strategies share one ask/tell interface:

- :class:`QuasiRandomSearch` (default): scrambled Halton points from ``scipy.stats.qmc``,
  mapped through the optimizer's search space. All points are known up front, so trials
  can run in parallel; with the same seed every optimizer sees the same points of the unit
  cube, which makes comparisons fairer (common random numbers).
- :class:`TPESearch`: Optuna's tree-structured Parzen estimator (``pip install
  'optarena[tune]'``), which proposes each point from the results so far.

Both turn a sample into keyword arguments with
:meth:`optarena.search_space.SearchSpace.to_hyperparameters` (``betas[0]`` goes into
``betas``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optarena.search_space import SearchSpace

STRATEGIES = ("quasi-random", "tpe")
MAX_BUDGET = 100_000
"""The most trials one search may be given (a Halton budget is drawn up front)."""


@dataclass(frozen=True)
class Suggestion:
    """One trial's configuration: its number, the raw sample and the optimizer's keyword arguments."""

    number: int
    sample: dict[str, Any]
    hyperparameters: dict[str, Any] = field(default_factory=dict)


class Search:
    """Propose configurations (``ask``) and learn from their results (``tell``)."""

    def __init__(self, space: SearchSpace, budget: int, defaults: Mapping[str, Any] | None = None):
        if not isinstance(budget, int) or isinstance(budget, bool) or not 1 <= budget <= MAX_BUDGET:
            raise ValueError(f"budget must be a whole number of trials from 1 to {MAX_BUDGET}, got {budget!r}")
        if len(space) == 0:
            raise ValueError("the search space is empty: declare at least the learning rate")
        self.space = space
        self.budget = budget
        self.defaults = dict(defaults or {})
        self.asked = 0
        self.results: dict[int, float] = {}

    def _suggestion(self, number: int, sample: dict[str, Any]) -> Suggestion:
        return Suggestion(number, sample, self.space.hyperparameters(sample, self.defaults))

    def ask(self) -> Suggestion:
        if self.asked >= self.budget:
            raise RuntimeError(f"the budget of {self.budget} trials is spent")
        suggestion = self._propose(self.asked)
        self.asked += 1
        return suggestion

    def tell(self, number: int, value: float) -> None:
        """Record trial ``number``'s objective (lower is better; non-finite means it diverged)."""
        if not 0 <= number < self.asked:
            raise ValueError(f"trial {number} was never asked for (asked: {self.asked})")
        self.results[number] = float(value)

    def _propose(self, number: int) -> Suggestion:  # pragma: no cover - interface
        raise NotImplementedError


class QuasiRandomSearch(Search):
    """Scrambled Halton points in the unit cube, mapped through the search space."""

    def __init__(self, space: SearchSpace, budget: int, seed: int = 0, defaults: Mapping[str, Any] | None = None):
        super().__init__(space, budget, defaults)
        from scipy.stats import qmc

        sampler = qmc.Halton(d=len(space), scramble=True, seed=seed)
        self.points = sampler.random(budget)

    def all(self) -> list[Suggestion]:
        """Every suggestion of the budget at once (for running them in parallel)."""
        return [self.ask() for _ in range(self.budget - self.asked)]

    def _propose(self, number: int) -> Suggestion:
        return self._suggestion(number, self.space.from_unit(self.points[number]))


class TPESearch(Search):
    """Optuna's TPE sampler, through its ask-and-tell interface."""

    def __init__(self, space: SearchSpace, budget: int, seed: int = 0, defaults: Mapping[str, Any] | None = None):
        super().__init__(space, budget, defaults)
        try:
            import optuna
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the 'tpe' search needs Optuna: pip install 'optarena[tune]' (or use 'quasi-random')"
            ) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        self._trials: dict[int, Any] = {}

    def _propose(self, number: int) -> Suggestion:
        trial = self._study.ask()
        self._trials[number] = trial
        return self._suggestion(number, self.space.suggest(trial))

    def tell(self, number: int, value: float) -> None:
        super().tell(number, value)
        import optuna

        trial = self._trials.pop(number, None)
        if trial is None:
            return
        if math.isfinite(value):
            self._study.tell(trial, float(value))
        else:
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)


def make_search(
    strategy: str,
    space: SearchSpace,
    budget: int,
    seed: int = 0,
    defaults: Mapping[str, Any] | None = None,
    tune: Sequence[str] | None = None,
) -> Search:
    """A search of ``strategy`` ('quasi-random' or 'tpe') over ``space`` restricted to ``tune``."""
    space = space.restrict(tune)
    if strategy == "quasi-random":
        return QuasiRandomSearch(space, budget, seed, defaults)
    if strategy == "tpe":
        return TPESearch(space, budget, seed, defaults)
    raise ValueError(f"unknown search strategy {strategy!r}; allowed: {', '.join(map(repr, STRATEGIES))}")
