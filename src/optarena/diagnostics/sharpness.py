"""Sharpness along a training run: full-batch steps, the top eigenvalue measured every few steps.

Gradient descent at a fixed learning rate ``lr`` is stable on a quadratic only while the
sharpness (the Hessian's top eigenvalue) stays below ``2 / lr``. On neural networks the
sharpness first rises (progressive sharpening) until it reaches that threshold, then hovers
there while the loss keeps falling, non-monotonically: the edge of stability (Cohen et al.
2021, https://arxiv.org/abs/2103.00065). Adaptive methods do the same with the
preconditioned sharpness against their own threshold (Cohen et al. 2022,
https://arxiv.org/abs/2207.14484); see :mod:`optarena.diagnostics.preconditioned`.

:func:`track_sharpness` trains one model with one optimizer on one fixed batch and records
the loss at every step and the (preconditioned) sharpness every ``every`` steps, each
measurement starting Lanczos from the previous top eigenvector.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from optarena.checks import finite_number, whole_number
from optarena.diagnostics.operator import Batch, LossFn, split_batch
from optarena.diagnostics.preconditioned import (
    preconditioned_eigenpairs,
    rule_for,
    stability_threshold,
    threshold_varies,
)

MEASURE_TOL = 1e-4
"""Lanczos tolerance for the measurements: the eigenvalue's error is about its square, relative."""


def squared_error(outputs: Tensor, targets: Tensor) -> Tensor:
    """Half the squared distance to the one-hot targets, summed over classes, mean over samples.

    The loss of most of Cohen et al.'s figures: unlike cross-entropy, its curvature does not
    vanish as the fit improves, so the edge of stability lasts the whole run. ``targets``
    are class indices for ``outputs`` of shape ``(samples, classes)``, or real targets of
    ``outputs``' shape.
    """
    if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        if outputs.dim() != 2:
            raise ValueError(
                f"class-index targets need outputs of shape (samples, classes), got {tuple(outputs.shape)}"
            )
        targets = nn.functional.one_hot(targets.long(), outputs.shape[1]).to(outputs.dtype)
    elif targets.shape != outputs.shape:
        raise ValueError(
            f"real targets must have the outputs' shape {tuple(outputs.shape)}, got {tuple(targets.shape)}"
        )
    return 0.5 * (outputs - targets).pow(2).reshape(outputs.shape[0], -1).sum(dim=1).mean()


@dataclass
class SharpnessRun:
    """One optimizer's full-batch run: the loss at every step, the sharpness every few."""

    name: str
    lr: float
    threshold: float
    """The stability threshold the sharpness is compared with (``2 / lr`` for plain gradient descent)."""
    preconditioned: bool
    """True when the measured quantity is the top eigenvalue of ``P^-1 H`` (adaptive optimizers)."""
    losses: list[float] = field(default_factory=list)
    """The loss at the parameters after ``t`` steps, for ``t = 0 .. steps``."""
    measured_at: list[int] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    lanczos_steps: list[int] = field(default_factory=list)
    diverged_at: int | None = None
    """The first step whose loss was not finite, if any (the run stopped there)."""

    @property
    def ratios(self) -> list[float]:
        """Each measurement divided by the threshold."""
        return [value / self.threshold for value in self.sharpness]

    @property
    def threshold_label(self) -> str:
        """The threshold as a multiple of ``1 / lr``, e.g. ``2/lr`` or ``38/lr``."""
        return f"{self.threshold * self.lr:.3g}/lr"


def track_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    *,
    steps: int,
    every: int = 10,
    name: str | None = None,
    tol: float = MEASURE_TOL,
    seed: int = 0,
    chunk_size: int | None = None,
    progress: Callable[[SharpnessRun], None] | None = None,
) -> SharpnessRun:
    """Train ``model`` for ``steps`` full-batch steps of ``optimizer`` on ``batch``, measuring as it goes.

    The sharpness (the preconditioned sharpness for adaptive optimizers, whose preconditioner
    exists from their first step on) is measured after ``t`` steps for every ``t`` that is a
    multiple of ``every``, and after the last step. ``progress(run)`` is called after each
    measurement. A non-finite loss stops the run (``diverged_at``). Raises TypeError for an
    optimizer without a supported preconditioner, and ValueError for one whose threshold
    changes from step to step (NAdam, Adafactor's relative step), before any step.
    """
    whole_number("steps", steps)
    whole_number("every", every)
    finite_number("tol", tol, strict=True)
    rule = rule_for(optimizer)
    if threshold_varies(optimizer):
        raise ValueError(
            f"{rule.family}'s stability threshold changes from step to step (docs/diagnostics.md), and a sharpness "
            "run compares with one; measure it in a race (optarena race --sharpness), which records it at each "
            "evaluation"
        )
    lr = float(optimizer.param_groups[0]["lr"])
    run = SharpnessRun(name or type(optimizer).__name__, lr, stability_threshold(optimizer), rule.diagonal is not None)
    inputs, targets = split_batch(batch)
    start: Tensor | None = None

    def measure(t: int) -> None:
        nonlocal start
        result = preconditioned_eigenpairs(
            model, loss_fn, batch, optimizer, 1, tol=tol, start=start, seed=seed, chunk_size=chunk_size
        )
        start = result.eigenvectors[0]
        run.measured_at.append(t)
        run.sharpness.append(float(result.eigenvalues[0]))
        run.lanczos_steps.append(result.steps)
        if progress is not None:
            progress(run)

    for t in range(steps + 1):
        loss = loss_fn(model(*inputs), targets)
        value = float(loss.detach())
        run.losses.append(value)
        if not math.isfinite(value):
            run.diverged_at = t
            break
        if (t % every == 0 or t == steps) and not (t == 0 and run.preconditioned):
            measure(t)
        if t == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return run
