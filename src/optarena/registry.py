"""Optimizers by name: ``create("adam", params, lr=3e-4)`` and ``available()``.

The registry holds the specifications of :mod:`optarena.optim` (``optim.SPECS``): each named
optimizer, presets that the literature treats as methods of their own (``momentum``,
``nesterov``, ``amsgrad``, ``amsbound``), aliases (``over9000``) and wrappers around another
registered optimizer (``lookahead``: ``create("lookahead", params, inner="adam", k=5,
alpha=0.5, lr=1e-3)``).
"""

from __future__ import annotations

from typing import Any

from optarena import optim
from optarena.hyperparameters import close_matches
from optarena.optim.base import NamedOptimizer
from optarena.spec import Spec, WrapperSpec

Entry = Spec
"""The registry's name for a specification (:class:`optarena.spec.Spec`)."""
WrapperEntry = WrapperSpec


def _build() -> dict[str, Spec]:
    registry: dict[str, Spec] = {}
    for spec in optim.SPECS:
        if spec.name in registry:
            raise RuntimeError(f"two optimizers are registered as {spec.name!r}")
        registry[spec.name] = spec
    return registry


REGISTRY: dict[str, Spec] = _build()


def lookup(name: str) -> Spec:
    """The entry for ``name`` (case-insensitive); a ValueError lists close matches."""
    key = name.lower().strip()
    if key in REGISTRY:
        return REGISTRY[key]
    hints = close_matches(key, list(REGISTRY))
    hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    raise ValueError(f"Unknown optimizer {name!r}.{hint} Available: {', '.join(REGISTRY)}.")


def registry_names(names: list[str]) -> list[str]:
    """The registry names of ``names`` (any case), in order; a ValueError for an unknown one
    (with close matches) or for an optimizer named twice."""
    canonical = [lookup(name).name for name in names]
    repeated = sorted({name for name in canonical if canonical.count(name) > 1})
    if repeated:
        raise ValueError(f"each optimizer may appear once; repeated: {', '.join(repeated)}")
    return canonical


def create(name: str, params: Any, **hyperparameters: Any) -> NamedOptimizer:
    """Build the optimizer registered as ``name`` over ``params``.

    >>> opt = create("adamw", model.parameters(), lr=3e-4, weight_decay=0.05)  # doctest: +SKIP
    """
    return lookup(name).build(params, **hyperparameters)


def available() -> list[Spec]:
    """Every registered optimizer with its one-line description and paper, in registry order."""
    return list(REGISTRY.values())
