"""Stochastic variants of the test functions: the exact value, a gradient with Gaussian noise.

``NoisyGradient(f, noise)`` behaves like ``f`` except that every gradient, whether from
:meth:`~optarena.functions.base.TestFunction.grad` or from autograd through a call, carries
fresh noise ``noise * N(0, I)`` drawn from a seedable ``torch.Generator``. The value itself
stays exact, so losses and distances report progress on ``f``. This is the additive
gradient-noise model of stochastic approximation (Robbins & Monro, 1951), the simplest
stand-in for mini-batch noise.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optarena.checks import finite_number
from optarena.functions.base import TestFunction


class NoisyGradient(TestFunction):
    """``function`` with additive Gaussian gradient noise of standard deviation ``noise``.

    Args:
        function: the exact test function.
        noise: the noise's standard deviation per coordinate (>= 0).
        generator: the ``torch.Generator`` the noise comes from; a new one seeded with
            ``seed`` (default 0) when omitted. Reseed with :meth:`reseed` for repeatable runs.
    """

    def __init__(
        self,
        function: TestFunction,
        noise: float,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ):
        if not isinstance(function, TestFunction):
            raise TypeError(f"NoisyGradient wraps a TestFunction, got {function!r}")
        finite_number("gradient noise", noise)
        if generator is not None and seed is not None:
            raise ValueError("give a generator or a seed, not both")
        self.exact = function
        self.noise = float(noise)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed or 0)
        for key in ("name", "dim", "minima", "min_value", "bounds", "start", "start_region", "formula"):
            setattr(self, key, getattr(function, key))
        self.description = f"{function.description} Gradient noise {self.noise:g} N(0, I)."

    @property
    def label(self) -> str:
        """The name with the noise level, for titles and tables."""
        return f"{self.name} (gradient noise {self.noise:g})"

    def reseed(self, seed: int) -> NoisyGradient:
        """Restart the noise stream from ``seed``; returns self."""
        self.generator.manual_seed(seed)
        return self

    def draw(self, like: Tensor) -> Tensor:
        """Fresh noise of the shape, dtype and device of ``like``."""
        sample = torch.randn(like.shape, generator=self.generator, dtype=like.dtype, device=self.generator.device)
        return self.noise * sample.to(like.device)

    def value(self, x: Tensor) -> Tensor:
        # The added term is zero in value; its gradient with respect to x is the noise.
        return self.exact.value(x) + (self.draw(x) * (x - x.detach())).sum(dim=-1)

    def gradient(self, x: Tensor) -> Tensor:
        return self.exact.gradient(x) + self.draw(x)

    def gap(self, x: Any) -> Tensor:
        return self.exact.gap(x)

    def grid(self, resolution: int = 200, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
        return self.exact.grid(resolution, dtype)

    def __repr__(self) -> str:
        return f"NoisyGradient({self.exact!r}, noise={self.noise:g})"
