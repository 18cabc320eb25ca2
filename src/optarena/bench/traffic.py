"""What an optimizer keeps, and how many bytes one step moves, read off its state.

After at least one step, every tensor in ``optimizer.state_dict()`` outside its
``param_groups`` (so the nested state dicts of wrappers too) counts towards the state.
The bytes a step moves follow one stated model:

- the parameter is read and written: ``2 * itemsize`` per element;
- the gradient is read: ``itemsize`` per element;
- every state tensor with more than one element is read and written once: twice its bytes
  (factored moments, such as Adafactor's row and column means, count at their own size);
- 0-d state (step counters) is ignored.

So Adam in float32 moves ``8 + 4 + 2 * 8 = 28`` bytes per parameter and SGD without
momentum 12. The model is a lower bound: an implementation that makes several passes (a
per-tensor norm before the update, unfused temporaries) moves more, and state touched only
every k steps (Lookahead's slow weights) is counted as if touched every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def _tensors_in(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "param_groups":
                yield from _tensors_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors_in(item)


def state_tensors(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """Every distinct tensor of the optimizer's state (the same memory counted once; views of
    distinct parts of one storage, such as the step counts of a bucket, each count)."""
    seen: set[tuple[int, int]] = set()
    out = []
    for tensor in _tensors_in(optimizer.state_dict()):
        key = (tensor.data_ptr(), tensor.numel() * tensor.element_size())
        if tensor.numel() > 0 and key[0] != 0 and key in seen:
            continue
        seen.add(key)
        out.append(tensor)
    return out


@dataclass(frozen=True)
class Traffic:
    """State size and bytes moved per step, in total and per parameter."""

    parameters: int
    state_bytes: int
    state_tensors: int
    step_bytes: int

    @property
    def state_bytes_per_param(self) -> float:
        return self.state_bytes / self.parameters

    @property
    def step_bytes_per_param(self) -> float:
        return self.step_bytes / self.parameters

    def limit_seconds(self, bandwidth_gbs: float) -> float:
        """The time to move ``step_bytes`` at ``bandwidth_gbs`` (GB/s)."""
        return self.step_bytes / (bandwidth_gbs * 1e9)


def measure_traffic(optimizer: torch.optim.Optimizer, params: list[Tensor]) -> Traffic:
    """State bytes and the modelled bytes per step of ``optimizer`` over ``params``."""
    parameters = sum(p.numel() for p in params)
    if parameters == 0:
        raise ValueError("the parameter list holds no elements")
    tensors = state_tensors(optimizer)
    state_bytes = sum(t.numel() * t.element_size() for t in tensors)
    moved = sum(2 * t.numel() * t.element_size() for t in tensors if t.numel() > 1)
    moved += sum(3 * p.numel() * p.element_size() for p in params)
    return Traffic(parameters, state_bytes, len(tensors), moved)
