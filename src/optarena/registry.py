"""Optimizers by name: ``create("adam", params, lr=3e-4)`` and ``available()``.

The registry is built from the named optimizers exported by :mod:`optarena.optim`, plus
presets that the literature treats as methods of their own (``momentum``, ``nesterov``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optarena import optim
from optarena.hyperparameters import close_matches
from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace


@dataclass(frozen=True)
class Entry:
    """One registered name: the class it builds, fixed settings, a description and a paper."""

    name: str
    cls: type[NamedOptimizer]
    description: str
    paper: Paper | None
    preset: dict[str, Any] = field(default_factory=dict)
    space: SearchSpace | None = None
    """The search space when it differs from the class's (presets tune around their setting)."""

    @property
    def search_space(self) -> SearchSpace:
        """The hyperparameters a tuner may vary for this entry, and their ranges."""
        return self.space if self.space is not None else self.cls.search_space

    def defaults(self) -> dict[str, Any]:
        """The constructor defaults with the preset applied."""
        return {**self.cls.defaults_from_signature(), **self.preset}

    def build(self, params: Any, **hyperparameters: Any) -> NamedOptimizer:
        return self.cls(params, **{**self.preset, **hyperparameters})


PRESETS = [
    Entry(
        "momentum",
        optim.SGD,
        "SGD with heavy-ball momentum 0.9.",
        Paper(
            "Polyak",
            1964,
            "Some methods of speeding up the convergence of iteration methods",
            "https://doi.org/10.1016/0041-5553(64)90137-5",
        ),
        {"momentum": 0.9},
        SearchSpace({"lr": LogUniform(1e-4, 1.0), "momentum": OneMinusLogUniform(0.5, 0.99)}),
    ),
    Entry(
        "nesterov",
        optim.SGD,
        "SGD with Nesterov momentum 0.9.",
        Paper(
            "Sutskever, Martens, Dahl & Hinton",
            2013,
            "On the importance of initialization and momentum in deep learning",
            "https://proceedings.mlr.press/v28/sutskever13.html",
        ),
        {"momentum": 0.9, "nesterov": True},
        SearchSpace({"lr": LogUniform(1e-4, 1.0), "momentum": OneMinusLogUniform(0.5, 0.99)}),
    ),
]


def _named_classes() -> list[type[NamedOptimizer]]:
    """The named optimizers exported by :mod:`optarena.optim`, in export order."""
    exported = (getattr(optim, name) for name in optim.__all__)
    return [c for c in exported if isinstance(c, type) and issubclass(c, NamedOptimizer) and c is not NamedOptimizer]


def _build() -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for cls in _named_classes():
        name = (cls.registry_name or cls.__name__).lower()
        entries[name] = Entry(name, cls, cls.summary(), cls.paper)
    for entry in PRESETS:
        entries[entry.name] = entry
    return entries


REGISTRY: dict[str, Entry] = _build()


def lookup(name: str) -> Entry:
    """The entry for ``name`` (case-insensitive); a ValueError lists close matches."""
    key = name.lower().strip()
    if key in REGISTRY:
        return REGISTRY[key]
    hints = close_matches(key, list(REGISTRY))
    hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    raise ValueError(f"Unknown optimizer {name!r}.{hint} Available: {', '.join(REGISTRY)}.")


def create(name: str, params: Any, **hyperparameters: Any) -> NamedOptimizer:
    """Build the optimizer registered as ``name`` over ``params``.

    >>> opt = create("adamw", model.parameters(), lr=3e-4, weight_decay=0.05)  # doctest: +SKIP
    """
    return lookup(name).build(params, **hyperparameters)


def available() -> list[Entry]:
    """Every registered optimizer with its one-line description and paper, in registry order."""
    return list(REGISTRY.values())
