"""How long a race will take, estimated before it starts: trials x steps x measured step time.

For each workload, :func:`measure` sets up one run in this process (Adam at its defaults),
times a few steps after one warm-up step and one evaluation, and :func:`estimate` scales
that by the race's trials, steps and evaluations, divided among the workers. The figure
is rough: optimizers differ in cost per step, runs that diverge stop early, and a busy
machine runs slower; it says whether a race takes minutes or hours.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from optarena.arena.trial import resolve_workload
from optarena.cli_types import torch_threads
from optarena.registry import lookup


@dataclass(frozen=True)
class StepCost:
    """Measured seconds for one workload: set-up, one training step, one evaluation."""

    label: str
    steps: int
    eval_every: int
    setup: float
    step: float
    evaluation: float

    @property
    def run(self) -> float:
        """Seconds for one whole run."""
        evaluations = math.ceil(self.steps / self.eval_every)
        return self.setup + self.steps * self.step + evaluations * self.evaluation


def measure(
    spec: str, options: dict[str, Any], data_dir: str | None = None, steps: int = 5, threads: int | None = 1
) -> StepCost:
    """Time ``steps`` training steps and one evaluation of ``spec`` on one seed."""
    with torch_threads(threads):
        workload = resolve_workload(spec, options, data_dir)
        started = time.perf_counter()
        trainable = workload.setup(0)
        optimizer = lookup("adam").build(trainable.model.parameters())
        setup = time.perf_counter() - started

        def one(step: int) -> None:
            optimizer.zero_grad(set_to_none=True)
            trainable.train_loss(step).backward()
            optimizer.step()

        one(0)
        started = time.perf_counter()
        for step in range(1, steps + 1):
            one(step)
        step_time = (time.perf_counter() - started) / steps
        started = time.perf_counter()
        with torch.no_grad():
            trainable.evaluate()
        evaluation = time.perf_counter() - started
    return StepCost(workload.name, int(workload.steps), int(workload.eval_every), setup, step_time, evaluation)


@dataclass(frozen=True)
class Estimate:
    trials: int
    steps: int
    """Training steps over all trials."""
    seconds: float
    """Wall-clock estimate with ``workers`` trials at once."""
    workers: int
    costs: list[StepCost]

    def describe(self) -> str:
        per = ", ".join(f"{c.label} {1000 * c.step:.1f} ms/step" for c in self.costs)
        return (
            f"Budget: {self.trials} trials, {self.steps:,} training steps in all; measured {per}; "
            f"about {_duration(self.seconds)} on {self.workers} worker{'s' if self.workers != 1 else ''}."
        )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(runs: Iterable[tuple[StepCost, int]], workers: int) -> Estimate:
    """The wall-clock estimate of ``(cost, trials)`` pairs run ``workers`` at a time."""
    runs = list(runs)
    total = sum(cost.run * trials for cost, trials in runs)
    return Estimate(
        trials=sum(trials for _, trials in runs),
        steps=sum(cost.steps * trials for cost, trials in runs),
        seconds=total / max(1, workers),
        workers=workers,
        costs=[cost for cost, _ in runs],
    )
