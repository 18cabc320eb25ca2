"""Peak extra memory during one optimizer step: what the step allocates beyond what it keeps.

- **CPU**: the step runs under ``torch.profiler`` with ``profile_memory=True``, which records
  every allocation and free made through c10's CPU allocator (eager operations and the
  buffers of Inductor's compiled code alike) with its size and time. The peak extra memory
  is the largest running sum of those sizes during the step. Memory that is not allocated
  through c10 (Python objects, the compiler's own work) is not seen.
- **CUDA**: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the
  memory allocated before the step.

Measure on a step after the first: the first step also allocates the state, which stays.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def peak_extra_bytes(step: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Largest amount of memory held at once by allocations made during ``step()``."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    if device.type != "cpu":
        raise ValueError(f"peak memory is measured on 'cpu' or 'cuda' devices, not {device.type!r}")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    return _peak_of(prof)


def _peak_of(prof) -> int:
    """The largest running sum of the profiler's CPU allocation records (bytes, signed)."""
    cpu = torch._C._autograd.DeviceType.CPU
    records = [
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == cpu
    ]
    records.sort(key=lambda record: record[0])
    held = peak = 0
    for _, nbytes in records:
        held += nbytes
        peak = max(peak, held)
    return peak
