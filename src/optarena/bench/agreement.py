"""Does an optimizer compute the same numbers on another device, dtype and path?

The reference is the optimizer itself on the CPU in float64 with ``fused=False`` (the
eager chain, checked against each paper's reference by the test suite). The candidate is
the same optimizer, settings and gradients on ``device`` in ``dtype`` with the path asked
for (``fused=False``: eager; ``fused=True``: compiled, or torch's own fused kernel where
the chain is exactly one). The figure is the distance between the two displacements after
``steps`` steps, relative to the reference's: float32 on any device lands near 1e-7 for
elementwise optimizers, bf16 parameters near bf16's rounding (4e-3).

    python benchmarks/device_agreement.py --device cuda
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optarena.bench.peers import relative_distance

SHAPES = ((64, 48), (48,), (6, 4), (5,), (3, 4, 2))
"""A matrix large enough for the compiled kernels' vectorised loops, its bias, small odd ones,
and a 3-D tensor (matrix optimizers see it as 3 x 8)."""

MATRIX_CASE: dict[str, Any] = {"shapes": ((6, 6), (5,), (4, 2, 2)), "steps": 12}
"""Shampoo and SOAP are compared on square matrices over more steps: a rank-deficient statistic
has no unique eigenbasis (or an inverse root dominated by eps), and two correct runs may then
differ by O(1)."""

NEEDS_A_MODEL = frozenset({"kfac"})
"""Optimizers built from a model rather than a parameter list (their device test has its own model)."""


def case_for(name: str) -> dict[str, Any]:
    """The keyword arguments of :func:`deviation` that ``name`` is compared with (shapes, steps)."""
    return dict(MATRIX_CASE) if name in ("shampoo", "soap") else {}


def _start_and_grads(
    steps: int, seed: int, shapes: tuple[tuple[int, ...], ...]
) -> tuple[list[Tensor], list[list[Tensor]]]:
    generator = torch.Generator().manual_seed(seed)

    def draw(scale: float) -> list[Tensor]:
        return [scale * torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]

    return draw(0.05), [draw(1.0) for _ in range(steps)]


def displacement(
    name: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
    fused: bool | None = False,
    steps: int = 5,
    seed: int = 0,
    values_in: torch.dtype | None = None,
    shapes: tuple[tuple[int, ...], ...] = SHAPES,
    **settings: Any,
) -> Tensor:
    """Every parameter's change after ``steps`` steps of the optimizer registered as ``name``
    (float64, on the CPU, flattened and concatenated), from a seeded start and gradients,
    rounded to ``values_in`` first where given (so that a float64 reference starts from the
    very numbers a lower-precision run holds)."""
    from optarena.bench.runner import bench_settings
    from optarena.registry import create

    if name in NEEDS_A_MODEL:
        raise ValueError(f"{name!r} is built from a model, not a parameter list; it has no displacement here")
    start, grads = _start_and_grads(steps, seed, shapes)
    if values_in is not None:
        start = [value.to(values_in).double() for value in start]
        grads = [[g.to(values_in).double() for g in step_grads] for step_grads in grads]
    params = [torch.nn.Parameter(value.to(device=device, dtype=dtype, copy=True)) for value in start]
    optimizer = create(name, params, fused=fused, **{**bench_settings(name), **settings})
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.to(device=device, dtype=dtype, copy=True)
        optimizer.step()
    return torch.cat([(p.detach().to("cpu", torch.float64) - s).flatten() for p, s in zip(params, start)])


def deviation(
    name: str,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    fused: bool | None = True,
    steps: int = 5,
    seed: int = 0,
    shapes: tuple[tuple[int, ...], ...] = SHAPES,
    reference_dtype: torch.dtype = torch.float64,
    **settings: Any,
) -> float:
    """``||d - d_ref|| / ||d_ref||``: ``d`` on ``device`` in ``dtype`` through ``fused``,
    ``d_ref`` on the CPU in ``reference_dtype``, eager, from the same start and gradients
    (rounded to ``dtype``). A bf16 run is best held to a bf16 reference: against float64 its
    parameters' own rounding dominates wherever a step is small next to the weights."""
    reference = displacement(name, "cpu", reference_dtype, False, steps, seed, dtype, shapes, **settings)
    candidate = displacement(name, device, dtype, fused, steps, seed, dtype, shapes, **settings)
    return relative_distance(reference, candidate)
