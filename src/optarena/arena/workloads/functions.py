"""``rosenbrock`` and ``nqm``: the lab's analytic problems as arena workloads.

Both optimise one float64 parameter vector and are judged by the exact loss, so a run
takes a fraction of a second and shows what an optimizer does with curvature and noise.
See :mod:`optarena.functions` for the functions themselves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from optarena import functions
from optarena.arena.workload import Target
from optarena.arena.workloads.base import (
    BATCH_STREAM,
    MODEL_STREAM,
    Budget,
    BuiltinWorkload,
    derived_seed,
    generator,
)
from optarena.checks import finite_number
from optarena.functions.nqm import NoisyQuadraticModel


class Point(nn.Module):
    """A single parameter vector: the point an optimizer moves."""

    def __init__(self, start: Tensor) -> None:
        super().__init__()
        self.x = nn.Parameter(start.clone())


class RosenbrockRun:
    """One seed: a start drawn from the function's start region, gradient noise per step."""

    def __init__(self, function: functions.TestFunction, seed: int) -> None:
        self.function = function
        self.seed = seed
        start = function.sample_starts(1, generator(seed, MODEL_STREAM), dtype=torch.float64)[0]
        self.model = Point(start)

    def train_loss(self, step: int) -> Tensor:
        if isinstance(self.function, functions.NoisyGradient):
            self.function.reseed(derived_seed(self.seed, BATCH_STREAM, step))
        return self.function(self.model.x)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        x = self.model.x.detach()
        return {"loss": float(self.function.gap(x)), "distance": float(self.function.distance_to_minimum(x))}


class Rosenbrock(BuiltinWorkload):
    """Rosenbrock's valley from a random start per seed; optionally noisy gradients."""

    name = "rosenbrock"
    description = "Rosenbrock's curved valley (2-D) from a random start: ill-conditioning, no noise"
    target = Target("loss", 1e-3, "min")
    budget = Budget(steps=3000, eval_every=25, batch_size=1)
    quick_budget = Budget(steps=1500, eval_every=25, batch_size=1)

    def __init__(
        self,
        *,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        dim: int = 2,
        noise: float = 0.0,
    ) -> None:
        super().__init__(quick=quick, steps=steps, eval_every=eval_every)
        self.dim, self.noise = dim, noise
        functions.get("rosenbrock", dim=dim)  # validates dim now
        finite_number("noise", noise, meaning="the gradient noise's standard deviation")

    def setup(self, seed: int, *, sparse: bool = False) -> RosenbrockRun:
        noise = {"noise": float(self.noise), "seed": 0} if self.noise > 0 else {}
        return RosenbrockRun(functions.get("rosenbrock", dim=self.dim, **noise), seed)


class NQMRun:
    """One seed: theta from the model's initial point, mini-batch noise drawn per (seed, step)."""

    def __init__(self, model: NoisyQuadraticModel, seed: int) -> None:
        self.nqm, self.seed = model, seed
        self.model = Point(model.initial)

    def train_loss(self, step: int) -> Tensor:
        return self.nqm.minibatch_loss(self.model.x, generator(self.seed, BATCH_STREAM, step))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        return {"loss": float(self.nqm.loss(self.model.x.detach()))}


class NQM(BuiltinWorkload):
    """The noisy quadratic model of Zhang et al. (2019), https://arxiv.org/abs/1907.04164.

    ``L = 1/2 sum_i h_i theta_i^2`` over 100 coordinates with ``h_i = 1/i``; each step's
    gradient carries noise ``N(0, C / B)`` with ``C = diag(1/i)`` and ``B`` the batch size.
    The metric is the exact loss. Its closed form (:mod:`optarena.functions.nqm`) says
    tuned SGD reaches the target 0.05 in about 300 steps at ``B = 16``.
    """

    name = "nqm"
    description = "noisy quadratic model (Zhang et al. 2019), 100 coordinates, B=16: curvature and noise"
    target = Target("loss", 0.05, "min")
    budget = Budget(steps=800, eval_every=20, batch_size=16)
    quick_budget = Budget(steps=400, eval_every=20, batch_size=16)

    def __init__(
        self,
        *,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int | None = None,
        dim: int = 100,
    ) -> None:
        super().__init__(quick=quick, steps=steps, eval_every=eval_every, batch_size=batch_size)
        self.nqm = NoisyQuadraticModel(dim=dim, batch_size=self.batch_size)

    def setup(self, seed: int, *, sparse: bool = False) -> NQMRun:
        return NQMRun(self.nqm, seed)
