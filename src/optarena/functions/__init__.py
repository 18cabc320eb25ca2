"""Analytic test functions and the noisy quadratic model.

    >>> from optarena import functions
    >>> f = functions.get("rosenbrock")            # a=1, b=100
    >>> f(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))  # batched over leading dims: tensor([0., 1.])
    >>> f.minima, f.min_value, f.bounds, f.start
    >>> noisy = functions.get("rosenbrock", noise=1.0, seed=0)   # gradient noise, exact value
    >>> [g.name for g in functions.available()]

Every function is a :class:`TestFunction`: ``name``, ``dim``, ``__call__(x)`` for
``x[..., dim] -> [...]`` (differentiable), ``grad(x)`` (closed form), ``minima`` (a list of
points), ``min_value``, ``bounds`` (the plotting box), ``start`` (the default start),
``start_region`` and ``sample_starts(n, generator)`` (tuning starts), ``gap(x)``,
``distance_to_minimum(x)``. :class:`NoisyGradient` adds seedable gradient noise. The noisy
quadratic model of Zhang et al. (2019) is in :mod:`optarena.functions.nqm`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from optarena.functions.analytic import (
    FUNCTIONS,
    Beale,
    Himmelblau,
    IllConditionedQuadratic,
    Rastrigin,
    Rosenbrock,
    Saddle,
)
from optarena.functions.base import TestFunction
from optarena.functions.stochastic import NoisyGradient
from optarena.hyperparameters import close_matches

__all__ = [
    "TestFunction",
    "NoisyGradient",
    "Rosenbrock",
    "Rastrigin",
    "Beale",
    "Himmelblau",
    "IllConditionedQuadratic",
    "Saddle",
    "FUNCTIONS",
    "get",
    "names",
    "available",
]


def names() -> list[str]:
    """The registry names of the built-in functions."""
    return list(FUNCTIONS)


def available() -> list[TestFunction]:
    """One default instance of every built-in function (each has ``name`` and ``description``)."""
    return [cls() for cls in FUNCTIONS.values()]


def _lookup(name: str) -> type[TestFunction]:
    if not isinstance(name, str):
        raise TypeError(f"a test function name must be a string, got {name!r}")
    key = name.strip().lower()
    if key in FUNCTIONS:
        return FUNCTIONS[key]
    hints = close_matches(key, list(FUNCTIONS))
    hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    raise ValueError(f"Unknown test function {name!r}.{hint} Available: {', '.join(FUNCTIONS)}.")


def get(
    name: str,
    *,
    noise: float | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    **options: Any,
) -> TestFunction:
    """The test function registered as ``name`` (case-insensitive), built with ``options``.

    ``options`` are the function's own settings (``dim``, ``a``, ``b``, ``condition``, ...).
    With ``noise`` (a standard deviation) the result is a :class:`NoisyGradient` whose noise
    comes from ``generator`` or a new generator seeded with ``seed`` (default 0). An unknown
    name is a ValueError listing the close matches; an unknown option a TypeError naming the
    valid ones.
    """
    cls = _lookup(name)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in options:
        if key not in valid:
            hints = close_matches(key, valid)
            hint = f" Did you mean {hints[0]!r}?" if hints else ""
            allowed = ", ".join(valid) if valid else "none"
            raise TypeError(f"{cls.name} got an unknown option {key!r}.{hint} Its options: {allowed}.")
    function = cls(**options)
    if noise is None:
        if generator is not None or seed is not None:
            raise ValueError("a generator or seed only applies with noise=...")
        return function
    return NoisyGradient(function, noise, generator=generator, seed=seed)
