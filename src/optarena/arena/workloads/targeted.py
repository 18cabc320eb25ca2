"""A workload with its target value replaced: how races use targets set by ``optarena targets``.

The arena passes a stored target as the reserved workload option ``target`` (a number), so
it travels with the workload's spec to every worker and enters the workload's key: runs
against different targets never share stored trials.
"""

from __future__ import annotations

import math
from typing import Any

from optarena.arena.workload import Target

TARGET_OPTION = "target"
"""The reserved workload option that sets the target value."""
HELD_OUT_OPTION = "held_out"
"""A reserved workload option that only labels a held-out variant with its base workload's key (no effect
on the workload; it keeps the label in the stored configuration)."""
RESERVED_OPTIONS = (TARGET_OPTION, HELD_OUT_OPTION)


class WithTarget:
    """``workload`` with ``target.value`` replaced by ``value``; everything else is the workload's own."""

    def __init__(self, workload: Any, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"the workload option {TARGET_OPTION!r} must be a finite number, got {value!r}")
        self._workload = workload
        base = workload.target
        self.target = Target(base.metric, float(value), base.mode)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._workload, name)

    def __repr__(self) -> str:
        return f"WithTarget({self._workload!r}, {self.target.value!r})"
