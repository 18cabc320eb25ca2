"""Learning-rate schedules a trial can ask for through reserved hyperparameters.

- ``warmup_steps`` (a whole number): the learning rate rises linearly over that many
  steps (:class:`optarena.schedules.LinearWarmup`), then stays;
- ``one_cycle`` (True): torch's :class:`~torch.optim.lr_scheduler.OneCycleLR` over the
  run's steps with ``max_lr`` the trial's ``lr`` (Smith & Topin 2018,
  https://arxiv.org/abs/1708.07120), momentum cycled too where the optimizer has it.

They are hyperparameters like any other, so they enter the trial's key; the optimizer
never sees them.
"""

from __future__ import annotations

from typing import Any

SCHEDULE_KEYS = ("warmup_steps", "one_cycle")


def split_schedule(hyperparameters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(the optimizer's hyperparameters, the schedule's)``."""
    optimizer = {k: v for k, v in hyperparameters.items() if k not in SCHEDULE_KEYS}
    schedule = {k: v for k, v in hyperparameters.items() if k in SCHEDULE_KEYS}
    return optimizer, schedule


def make_scheduler(optimizer: Any, schedule: dict[str, Any], steps: int) -> Any | None:
    """The scheduler ``schedule`` asks for (stepped once after every optimizer step), or None."""
    if not schedule:
        return None
    if "warmup_steps" in schedule and schedule.get("one_cycle"):
        raise ValueError("choose one of warmup_steps and one_cycle")
    if schedule.get("one_cycle"):
        from torch.optim.lr_scheduler import OneCycleLR

        max_lr = [group["lr"] for group in optimizer.param_groups]
        return OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps)
    warmup = schedule.get("warmup_steps")
    if warmup is None or schedule.get("one_cycle") is False:
        return None
    from optarena.checks import whole_number
    from optarena.schedules import LinearWarmup

    return LinearWarmup(optimizer, warmup_steps=whole_number("warmup_steps", warmup))
