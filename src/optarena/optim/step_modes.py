"""torch.optim's ``capturable`` and ``differentiable`` flags, checked at the step.

``differentiable=True`` runs the step with autograd recording (the eager path, never the
compiled one), so the updated parameters can be differentiated with respect to the
parameters, gradients and state before the step. optarena reads hyperparameters as Python
numbers, so a hyperparameter tensor that requires a gradient is refused rather than
silently cut from the graph.

``capturable=True`` promises a step that a CUDA graph can capture. torch.optim refuses it
at the step for parameters on a device without graphs (the CPU); so does optarena. On a GPU
the step runs as usual, but it reads step counts on the host, so it cannot be captured: a
capture in progress is a clear error instead of a failure inside CUDA.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

CAPTURABLE_DEVICE_TYPES = ("cuda", "xpu", "hpu", "xla", torch._C._get_privateuse1_backend_name())
"""Device types torch.optim accepts with ``capturable=True``."""


def check_capturable(owner: str, group: dict[str, Any]) -> None:
    """torch.optim's refusal of ``capturable=True`` off a graph device, and a clear one while capturing."""
    for p in group["params"]:
        if p.grad is not None and p.device.type not in CAPTURABLE_DEVICE_TYPES:
            # torch.optim raises AssertionError here; the same type keeps code written for it working
            raise AssertionError(
                f"{owner}: If capturable=True, params and state_steps must be on supported devices: "
                f"{list(CAPTURABLE_DEVICE_TYPES)}; a parameter is on {p.device}. Pass capturable=False."
            )
    if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
        raise RuntimeError(
            f"{owner}: the step cannot be captured in a CUDA graph (it reads step counts on the host). "
            "Capture the forward and backward passes only, or use torch.optim with capturable=True."
        )


def check_differentiable(owner: str, group: dict[str, Any], declared: Mapping[str, Any]) -> None:
    """Refuse hyperparameter tensors that require a gradient: the step reads them as numbers."""
    for key in declared:
        values = group.get(key)
        for value in values if isinstance(values, (list, tuple)) else (values,):
            if isinstance(value, Tensor) and value.requires_grad:
                raise RuntimeError(
                    f"{owner}: with differentiable=True, {key!r} is a tensor that requires a gradient, but "
                    "optarena reads hyperparameters as numbers, so no gradient would reach it. Pass a plain "
                    "number (gradients flow to the parameters, gradients and state), or use torch.optim."
                )
