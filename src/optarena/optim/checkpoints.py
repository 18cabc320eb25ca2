"""Loading checkpoints of reference implementations that keep ``step`` as a Python number."""

from __future__ import annotations

from typing import Any

import torch

from optarena.transforms.base import scalar_dtype


def steps_as_tensors(states: Any) -> None:
    """Turn every per-parameter ``step`` that is a plain number into a scalar tensor, in place.

    torch.optim.SparseAdam and the authors' ``adabound`` keep the step as an int; optarena
    keeps it as a tensor of torch.optim's scalar dtype.
    """
    for state in states:
        if "step" in state and not torch.is_tensor(state["step"]):
            state["step"] = torch.tensor(float(state["step"]), dtype=scalar_dtype())
