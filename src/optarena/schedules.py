"""Learning-rate schedules on top of ``torch.optim.lr_scheduler``: warm-up, cycles, batch scaling.

- :class:`LinearWarmup` ramps the learning rate up linearly over the first steps, on its
  own or on top of any torch scheduler (cosine, step, plateau, ...), which keeps its own
  clock and never sees the warm-up.
- :class:`CyclicLR` (Smith 2017, https://arxiv.org/abs/1506.01186) and :class:`OneCycleLR`
  (Smith & Topin 2017, https://arxiv.org/abs/1708.07120) are torch's own, re-exported.
- :func:`scale_lr` moves a learning rate tuned at one batch size to another (linear or
  square-root rule).

Every scheduler here works with any ``torch.optim.Optimizer``: optarena's, torch's, or a
:class:`optarena.Lookahead` (whose groups are the inner optimizer's).
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CyclicLR, LRScheduler, OneCycleLR, ReduceLROnPlateau

__all__ = ["CyclicLR", "LinearWarmup", "OneCycleLR", "SCALING_RULES", "scale_lr"]

SCALING_RULES = ("linear", "sqrt")
"""The batch-size scaling rules :func:`scale_lr` knows."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class LinearWarmup(LRScheduler):
    """Linear warm-up of the learning rate, alone or on top of another scheduler.

    At scheduler step ``t`` (0 before the first call of :meth:`step`) each group's learning
    rate is ``lr_main(t) * w(t)`` with ``w(t) = start_factor + (1 - start_factor) *
    min(t, warmup_steps) / warmup_steps``: it rises linearly from ``start_factor`` times
    the main learning rate to the main learning rate, which it equals from step
    ``warmup_steps`` on. ``lr_main(t)`` is the group's initial learning rate, or, with
    ``after``, whatever that scheduler sets. ``after`` steps at every step from the start
    (its clock is the warm-up's: a ``StepLR(step_size=30)`` still decays at step 30), and it
    always sees the learning rates it set itself, never the warmed-up ones, so chainable
    schedulers (cosine's recursive form) and ``ReduceLROnPlateau`` behave as they would
    alone. With ``ReduceLROnPlateau`` pass the metric: ``scheduler.step(val_loss)``.

    This is the gradual warm-up of Goyal et al. 2017 (https://arxiv.org/abs/1706.02677).
    To start a schedule only once the warm-up is over, use torch's own composition,
    ``SequentialLR(opt, [LinearLR(opt, start_factor, total_iters=n), main], milestones=[n])``.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        warmup_steps: the length of the ramp, in calls of :meth:`step` (an integer >= 1).
        after: a scheduler of the same optimizer (created before this one), or None.
        start_factor: the fraction of the learning rate at step 0 (0 <= start_factor <= 1).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        after: LRScheduler | None = None,
        start_factor: float = 0.0,
        last_epoch: int = -1,
    ):
        if not _is_int(warmup_steps) or warmup_steps < 1:
            raise ValueError(f"LinearWarmup: Invalid warmup_steps: {warmup_steps!r}; allowed: an integer >= 1")
        if not _is_real(start_factor) or not 0.0 <= start_factor <= 1.0:
            raise ValueError(
                f"LinearWarmup: Invalid start_factor: {start_factor!r}; allowed range: 0 <= start_factor <= 1"
            )
        if after is not None:
            if not isinstance(after, LRScheduler):
                raise TypeError(
                    f"LinearWarmup: after must be a torch.optim.lr_scheduler scheduler or None, got {type(after).__name__}"
                )
            if after.optimizer is not optimizer:
                raise ValueError("LinearWarmup: after schedules another optimizer; build both on the same one")
        self.warmup_steps = warmup_steps
        self.start_factor = float(start_factor)
        self.after = after
        self._main_lrs: list[Any] = []
        """The learning rates the main schedule (or the initial ones) set for the current step."""
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """``w(step)``, the fraction of the main learning rate at ``step``."""
        return self.start_factor + (1.0 - self.start_factor) * min(step, self.warmup_steps) / self.warmup_steps

    def step(self, metrics: Any = None) -> None:  # type: ignore[override]
        """Advance one step; ``metrics`` goes to an ``after`` of type ReduceLROnPlateau."""
        if self.after is not None and self._main_lrs:  # not the step the constructor takes
            if isinstance(self.after, ReduceLROnPlateau) and metrics is None:
                raise TypeError(
                    "LinearWarmup: the scheduler after the warm-up is ReduceLROnPlateau, which needs the metric: "
                    "call scheduler.step(val_loss)"
                )
            groups = self.optimizer.param_groups
            # the main schedule continues from the learning rates it set, not the warmed-up ones
            for group, lr in zip(groups, self._main_lrs):
                group["lr"] = lr
            if isinstance(self.after, ReduceLROnPlateau):
                self.after.step(metrics)
            else:
                self.after.step()
            self._main_lrs = [group["lr"] for group in groups]
        super().step()

    def get_lr(self) -> list[Any]:
        if self.after is None:
            self._main_lrs = list(self.base_lrs)
        elif not self._main_lrs:
            self._main_lrs = [group["lr"] for group in self.optimizer.param_groups]
        w = self.factor(self.last_epoch)
        return [lr * w for lr in self._main_lrs]

    def state_dict(self) -> dict[str, Any]:
        """Its own counters and the ``after`` scheduler's state dict (plain data: torch.save friendly)."""
        own = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "after")}
        own["after"] = None if self.after is None else self.after.state_dict()
        return own

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = dict(state_dict)
        after = saved.pop("after", None)
        if (after is None) != (self.after is None):
            raise ValueError(
                "LinearWarmup.load_state_dict: the saved warm-up "
                + ("had no" if after is None else "had an")
                + " 'after' scheduler but this one "
                + ("has one" if after is None else "has none")
            )
        self.__dict__.update(saved)
        if after is not None:
            self.after.load_state_dict(after)


def scale_lr(lr: float, batch: int, base_batch: int, rule: str = "linear") -> float:
    """The learning rate for ``batch`` given one tuned at ``base_batch``.

    - ``"linear"``: ``lr * batch / base_batch``, the rule of Goyal et al. 2017
      (https://arxiv.org/abs/1706.02677) for SGD with momentum; pair it with a warm-up.
    - ``"sqrt"``: ``lr * sqrt(batch / base_batch)``, which keeps the variance of the step
      constant (Krizhevsky 2014, https://arxiv.org/abs/1404.5997; Hoffer et al. 2017,
      https://arxiv.org/abs/1705.08741), the usual advice for Adam-type optimizers.

    Neither rule holds far beyond the batch size it was tuned at: check the scaled value.
    """
    if not _is_real(lr) or not math.isfinite(lr) or lr < 0:
        raise ValueError(f"scale_lr: Invalid lr: {lr!r}; allowed: a finite number >= 0")
    for name, value in (("batch", batch), ("base_batch", base_batch)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"scale_lr: Invalid {name}: {value!r}; allowed: an integer >= 1")
    if rule not in SCALING_RULES:
        raise ValueError(f"scale_lr: Invalid rule: {rule!r}; allowed: {', '.join(map(repr, SCALING_RULES))}")
    ratio = batch / base_batch
    return float(lr * (ratio if rule == "linear" else math.sqrt(ratio)))
