"""Optimizers by name: ``create("adam", params, lr=3e-4)`` and ``available()``.

The registry is built from the named optimizers exported by :mod:`optarena.optim`, plus
presets that the literature treats as methods of their own (``momentum``, ``nesterov``),
aliases (``over9000``) and wrappers around another registered optimizer (``lookahead``:
``create("lookahead", params, inner="adam", k=5, alpha=0.5, lr=1e-3)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optarena import optim
from optarena.hyperparameters import Choice, Hyper, close_matches, unknown_keyword_error
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

    def declared(self) -> dict[str, Hyper]:
        """Every hyperparameter the optimizer reads, with its default, allowed values and meaning."""
        return self.cls.declared_hyperparameters(self.cls.chain())

    def composition(self) -> str:
        """The chain of transforms as text, e.g. ``scale_by_adam -> scale_by_learning_rate``."""
        return " -> ".join(t.describe() for t in self.cls.chain())


@dataclass(frozen=True)
class WrapperEntry(Entry):
    """A wrapper around another registered optimizer, built by name.

    ``build(params, inner="adam", **hyperparameters)`` builds the inner optimizer by its
    registry name with every keyword the wrapper does not declare itself, then wraps it.
    """

    inner: str = "adam"
    """The registry name of the inner optimizer when ``inner=`` is not given."""

    def _own(self) -> dict[str, Hyper]:
        return dict(self.cls.hyperparameters)

    def _inner_entry(self, inner: Any) -> Entry:
        if not isinstance(inner, str):
            raise TypeError(
                f"{self.cls.__name__}: inner must be a registered optimizer's name such as 'adam', got {inner!r}; "
                f"to wrap an optimizer object, call optarena.{self.cls.__name__}(optimizer, ...)"
            )
        try:
            return lookup(inner)
        except ValueError as error:
            raise ValueError(f"{self.cls.__name__}: inner: {error}") from None

    def defaults(self) -> dict[str, Any]:
        own = {key: hyper.default for key, hyper in self._own().items()}
        return {"inner": self.inner, **own, **self._inner_entry(self.inner).defaults()}

    def declared(self) -> dict[str, Hyper]:
        names = tuple(name for name in REGISTRY if not isinstance(REGISTRY[name], WrapperEntry))
        inner = Hyper(self.inner, Choice(names), "the registered optimizer to wrap (its arguments pass through)")
        return {"inner": inner, **self._own(), **self._inner_entry(self.inner).declared()}

    def composition(self) -> str:
        own = ", ".join(self._own())
        return f"(the inner optimizer's update) -> {self.name}({own})"

    def build(self, params: Any, inner: str | None = None, **hyperparameters: Any) -> Any:
        entry = self._inner_entry(self.inner if inner is None else inner)
        own_keys = self._own()
        valid = ["inner", *own_keys, *entry.defaults()]
        for key in hyperparameters:
            if key not in valid:
                raise unknown_keyword_error(self.cls.__name__, key, valid)
        own = {key: hyperparameters.pop(key) for key in list(hyperparameters) if key in own_keys}
        try:
            wrapped = entry.build(params, **hyperparameters)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{self.cls.__name__}(inner={entry.name!r}): {error}") from None
        return self.cls(wrapped, **own)


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
    Entry(
        "nadamw",
        optim.NAdam,
        "NAdam with weight decay decoupled from the gradient (AlgoPerf's NAdamW baseline).",
        optim.NAdam.paper,
        {"decoupled_weight_decay": True, "weight_decay": 1e-2},
        optim.AdamW.search_space,
    ),
    Entry(
        "over9000",
        optim.RangerLARS,
        "Another name for RangerLARS, after the repository that introduced it.",
        optim.RangerLARS.paper,
    ),
]

WRAPPERS = [
    WrapperEntry(
        "lookahead",
        optim.Lookahead,
        optim.Lookahead.__doc__.strip().splitlines()[0],
        optim.Lookahead.paper,
        space=optim.Lookahead.search_space,
        inner="adam",
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
    for entry in [*WRAPPERS, *PRESETS]:
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


def available() -> list[Entry]:
    """Every registered optimizer with its one-line description and paper, in registry order."""
    return list(REGISTRY.values())
