"""One specification per registered optimizer: everything the project knows about it.

Each optimizer module ends with ``SPECS``: a :class:`Spec` per registered name (a class, or a
preset of one such as ``momentum`` for SGD). A spec holds the class and preset, the one-line
description and paper, the search space a tuner draws from, the kind (elementwise or
per-tensor), the settings a run needs where arguments have no default, the same algorithm in
other libraries for the benchmark, and the configurations and bad inputs the test table runs.
The registry, the docs page, the benchmark's peers and the test table are all built from
these, so adding an optimizer touches its module, one import line in ``optarena.optim`` and
its reference test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optarena.hyperparameters import Choice, Hyper, unknown_keyword_error
from optarena.search_space import SearchSpace

Settings = Mapping[str, Any]
Translate = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns optarena's settings into another library's arguments."""


def pick(*keys: str) -> Translate:
    """A translation that passes ``keys`` on under the same names."""

    def translate(settings: dict[str, Any]) -> dict[str, Any]:
        return {key: settings[key] for key in keys}

    return translate


# -- the same algorithm elsewhere (the benchmark's peers) --------------------------------------


@dataclass(frozen=True)
class TorchPeer:
    """``torch.optim.<cls>`` in each of ``modes`` (``"foreach"``, ``"fused"``)."""

    cls: str
    arguments: Translate
    modes: tuple[str, ...] = ("foreach",)
    """``"foreach"``, ``"fused"``, or ``"default"`` for a class that takes neither (torch.optim.Muon)."""
    note: str = ""
    matrix_views: bool = False
    """torch's class takes matrices only (torch.optim.Muon): every tensor steps through its matrix
    view, ``shape[0] x rest`` (a vector as one row), as optarena's matrix optimizers see it."""


@dataclass(frozen=True)
class LibraryPeer:
    """``<library>.<cls>`` (``torch-optimizer``, ``pytorch-optimizer`` or ``heavyball``)."""

    library: str
    cls: str
    arguments: Translate
    note: str = ""


# -- what the test table runs -----------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One configuration of the test table, with a descriptive id (``"amsgrad"``, ``"defaults"``)."""

    id: str
    settings: Settings = field(default_factory=dict)


COMMON_ERRORS: tuple[tuple[Settings, str], ...] = (
    ({"lr": -1.0}, "learning rate: -1.0; allowed range: 0 <= lr"),
    ({"nonfinite": "sometimes"}, "nonfinite: 'sometimes'"),
    ({"foreach": 3}, "foreach: 3"),
)
"""Bad settings every optimizer refuses, with a fragment of the message (torch's wording first)."""
BETA_ERRORS: tuple[tuple[Settings, str], ...] = (
    ({"betas": (1.0, 0.999)}, "beta parameter at index 0: 1.0; allowed range: 0 <= betas[0] < 1"),
    ({"betas": (0.9, -0.1)}, "beta parameter at index 1: -0.1"),
    ({"eps": -1e-8}, "epsilon value: -1e-08"),
)


@dataclass(frozen=True)
class TestPlan:
    """The configurations, bad inputs and capabilities the generic optimizer suite uses."""

    __test__ = False  # not a pytest class

    configs: tuple[Config, ...]
    """The first is the defaults (or the fewest settings the optimizer needs)."""
    errors: tuple[tuple[Settings, str], ...] = ()
    """Bad settings and a fragment of the error they must raise."""
    complex: bool = True
    """The update is elementwise, so complex parameters work through their real view."""
    descent_lr: float = 1e-2
    """A learning rate at which 50 steps reduce a small least-squares loss."""
    complex_reference_config: Settings | None = None
    """The configuration of the complex-parameter reference test (default: the last)."""
    fusable: bool = True
    sparse: bool = False
    constant_ops: bool = True
    """An eager step issues as many operations for 40 tensors as for 4."""
    scheduled: bool | Callable[[Settings], bool] = True
    """``group["lr"] = 0`` stops the updates at once (or a function of the config saying so)."""
    lr_mode: Callable[[Settings], Settings] | None = None
    """The config switched to a mode that takes an ``lr``, where its own mode has none."""
    reference_complex: bool = True
    reference_state_loads: bool = True
    sync_period: int | None = None
    """Lookahead's k, for optimizers that pull the fast weights back every k steps."""
    continuous: bool = True
    """The update is a continuous function of the gradients. False for SOAP: the eigenbasis of
    rank-deficient statistics (fewer gradients seen than rows) follows the gradients' last bits,
    so runs whose gradients differ by rounding (a sharded model's summation order) part; its
    sharded runs are compared with one process on identical gradients (tests/test_sharded.py)."""


# -- the specification ------------------------------------------------------------------------

FROM_CLASS: Any = object()
"""A spec's description or paper when the class's own applies."""


@dataclass(frozen=True, eq=False)
class Spec:
    """One registered name: the class it builds (with a preset), and every fact about it."""

    name: str
    cls: type
    tests: TestPlan
    description: str = FROM_CLASS
    paper: Any = FROM_CLASS
    preset: dict[str, Any] = field(default_factory=dict)
    space: SearchSpace | None = None
    """The search space when it differs from the class's (presets tune around their setting)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Settings a run needs beyond the defaults (arguments without a default)."""
    peers: tuple[TorchPeer | LibraryPeer, ...] = ()
    kind: str | None = None
    """``elementwise`` or ``per-tensor`` (from the chain when None); ``wrapper`` for wrappers."""
    second_pass: tuple[str, ...] = ()
    """What the algorithm must read again after a per-tensor reduction (``"param"``, ``"grad"``,
    ``"state"``): its memory-traffic floor is one pass plus these (LAMB: the update is recomputed
    from the moments and applied with the trust ratio, ``("param", "state")``). Empty for
    algorithms that need one pass."""

    third_pass: tuple[str, ...] = ()
    """What a third pass reads, for algorithms with two reductions in sequence (Adafactor: the
    factored statistics need the whole gradient, and the update clipping the RMS of an update
    built from them, before any parameter is written)."""

    read_only_state: tuple[str, ...] = ()
    """State tensors of a parameter's size that a step reads and never writes (Prodigy's
    starting point ``p0``): the memory-traffic floor counts their read only, where the traffic
    model (:mod:`optarena.bench.traffic`) counts every state tensor read and written."""

    @property
    def passes(self) -> int:
        """Passes over memory the algorithm needs at least: 1, 2 or 3."""
        return 1 + bool(self.second_pass) + bool(self.third_pass)

    def __post_init__(self) -> None:
        if self.description is FROM_CLASS:
            object.__setattr__(self, "description", self.cls.summary())
        if self.paper is FROM_CLASS:
            object.__setattr__(self, "paper", getattr(self.cls, "paper", None))
        if self.kind is None:
            chain = self.cls.chain()
            transforms = chain.transforms if hasattr(chain, "transforms") else chain
            object.__setattr__(self, "kind", "elementwise" if all(t.elementwise for t in transforms) else "per-tensor")

    @property
    def search_space(self) -> SearchSpace:
        """The hyperparameters a tuner may vary for this entry, and their ranges."""
        return self.space if self.space is not None else self.cls.search_space

    def defaults(self) -> dict[str, Any]:
        """The constructor defaults with the preset applied."""
        return {**self.cls.defaults_from_signature(), **self.preset}

    def build(self, params: Any, **hyperparameters: Any) -> Any:
        return self.cls(params, **{**self.preset, **hyperparameters})

    def declared(self) -> dict[str, Hyper]:
        """Every hyperparameter the optimizer reads, with its default, allowed values and meaning."""
        return self.cls.declared_hyperparameters(self.cls.chain())

    def composition(self) -> str:
        """The chain of transforms as text, e.g. ``scale_by_adam -> scale_by_learning_rate``."""
        from optarena.optim.base import describe_chain

        return describe_chain(self.cls.chain())

    def torch_peers(self) -> list[TorchPeer]:
        return [p for p in self.peers if isinstance(p, TorchPeer)]

    def library_peer(self, library: str) -> LibraryPeer | None:
        return next((p for p in self.peers if isinstance(p, LibraryPeer) and p.library == library), None)


@dataclass(frozen=True, eq=False)
class WrapperSpec(Spec):
    """A wrapper around another registered optimizer, built by name.

    ``build(params, inner="adam", **hyperparameters)`` builds the inner optimizer by its
    registry name with every keyword the wrapper does not declare itself, then wraps it.
    """

    inner: str = "adam"
    """The registry name of the inner optimizer when ``inner=`` is not given."""
    kind: str | None = "wrapper"

    def _own(self) -> dict[str, Hyper]:
        return dict(self.cls.hyperparameters)

    def _inner_spec(self, inner: Any) -> Spec:
        from optarena.registry import lookup

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
        return {"inner": self.inner, **own, **self._inner_spec(self.inner).defaults()}

    def declared(self) -> dict[str, Hyper]:
        from optarena.registry import REGISTRY

        names = tuple(name for name, spec in REGISTRY.items() if not isinstance(spec, WrapperSpec))
        inner = Hyper(self.inner, Choice(names), "the registered optimizer to wrap (its arguments pass through)")
        return {"inner": inner, **self._own(), **self._inner_spec(self.inner).declared()}

    def composition(self) -> str:
        own = ", ".join(self._own())
        return f"(the inner optimizer's update) -> {self.name}({own})"

    def build(self, params: Any, inner: str | None = None, **hyperparameters: Any) -> Any:
        spec = self._inner_spec(self.inner if inner is None else inner)
        own_keys = self._own()
        valid = ["inner", *own_keys, *spec.defaults()]
        for key in hyperparameters:
            if key not in valid:
                raise unknown_keyword_error(self.cls.__name__, key, valid)
        own = {key: hyperparameters.pop(key) for key in list(hyperparameters) if key in own_keys}
        try:
            wrapped = spec.build(params, **hyperparameters)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{self.cls.__name__}(inner={spec.name!r}): {error}") from None
        return self.cls(wrapped, **own)


def configs(*items: tuple[str, Settings] | Settings) -> tuple[Config, ...]:
    """Configurations from ``(id, settings)`` pairs (a bare dict is the defaults, ``"defaults"``)."""
    out = []
    for item in items:
        if isinstance(item, Mapping):
            out.append(Config("defaults" if not item else "minimum", dict(item)))
        else:
            ident, settings = item
            out.append(Config(ident, dict(settings)))
    return tuple(out)


def errors(*groups: Sequence[tuple[Settings, str]]) -> tuple[tuple[Settings, str], ...]:
    """Bad-input cases from several lists (``errors(COMMON_ERRORS, BETA_ERRORS, [...])``)."""
    return tuple(case for group in groups for case in group)
