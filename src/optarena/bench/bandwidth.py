"""The machine's memory bandwidth as torch sees it: an in-place update, STREAM triad and copy.

- **Update** is ``a += s * b`` in place (``a.add_(b, alpha=s)``): two arrays read, one of
  them written back, ``3 * 4 * n`` bytes for float32. This is how an optimizer touches
  memory (parameters and state are updated in place), so the bandwidth limit uses it.
- **Triad** is STREAM's ``c = a + s * b`` (``torch.add(a, b, alpha=s, out=c)``), counted as
  ``3 * 4 * n`` bytes. On CPUs the write to ``c`` also reads ``c`` into the cache first
  (write-allocate), which STREAM does not count, so triad reads lower than update.
- **Copy** is ``c.copy_(a)``, ``2 * 4 * n`` bytes.

Arrays are far larger than any cache (64 Mi elements, 256 MiB each, by default); each
figure is the median over the repetitions, on the device and with the threads the
benchmark uses.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch

from optarena.checks import whole_numbers

DEFAULT_ELEMENTS = 1 << 26
DEFAULT_REPEATS = 15


@dataclass(frozen=True)
class Bandwidth:
    """Measured streaming bandwidth in GB/s (1e9 bytes per second)."""

    update_gbs: float
    triad_gbs: float
    copy_gbs: float
    elements: int
    repeats: int
    threads: int
    device: str

    def to_dict(self) -> dict:
        return asdict(self)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn, device: torch.device, repeats: int) -> float:
    fn()  # first touch: page faults and lazy initialisation stay out of the figure
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_bandwidth(
    device: torch.device | str = "cpu", elements: int = DEFAULT_ELEMENTS, repeats: int = DEFAULT_REPEATS
) -> Bandwidth:
    """Median update, triad and copy bandwidth over ``repeats`` runs on float32 arrays of ``elements``."""
    device = torch.device(device)
    whole_numbers(elements=elements, repeats=repeats)
    a = torch.rand(elements, device=device)
    b = torch.rand(elements, device=device)
    c = torch.empty(elements, device=device)
    update = _median_seconds(lambda: a.add_(b, alpha=1e-9), device, repeats)
    triad = _median_seconds(lambda: torch.add(a, b, alpha=0.5, out=c), device, repeats)
    copy = _median_seconds(lambda: c.copy_(a), device, repeats)
    itemsize = 4
    return Bandwidth(
        update_gbs=3 * itemsize * elements / update / 1e9,
        triad_gbs=3 * itemsize * elements / triad / 1e9,
        copy_gbs=2 * itemsize * elements / copy / 1e9,
        elements=elements,
        repeats=repeats,
        threads=torch.get_num_threads(),
        device=str(device),
    )


class InPlaceUpdate:
    """The update pattern as a step over given tensors: ``x += s * g`` in place, one
    multi-tensor call. Timed among the optimizers, it gives the bandwidth of the moment:
    ``bytes_per_step`` over its step time."""

    def __init__(self, tensors: list[torch.Tensor], others: list[torch.Tensor]):
        if len(tensors) != len(others) or not tensors:
            raise ValueError("InPlaceUpdate needs two non-empty lists of the same length")
        self.tensors = tensors
        self.others = others
        self.bytes_per_step = sum(3 * t.numel() * t.element_size() for t in tensors)

    @torch.no_grad()
    def step(self) -> None:
        torch._foreach_add_(self.tensors, self.others, alpha=1e-12)
