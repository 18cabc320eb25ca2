"""Search spaces: which hyperparameters an optimizer declares tunable, and over what range.

Every named optimizer carries a ``search_space``: a mapping from a hyperparameter (or one
item of a tuple hyperparameter, written ``"betas[0]"``) to a :class:`Dimension`. Tuners draw
points in the unit cube and map them through the dimensions, so every optimizer gets the
same kind of search with the same budget. The learning rate comes first and is always
log-uniform; :meth:`SearchSpace.restrict` keeps only the dimensions a study tunes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class Dimension:
    """One tunable hyperparameter: maps a point ``u`` in [0, 1) to a value."""

    def value(self, u: float) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def suggest(self, trial: Any, name: str) -> Any:  # pragma: no cover - interface
        """The value an Optuna trial proposes for this dimension."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


def _check_interval(kind: str, low: float, high: float, positive: bool) -> None:
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise ValueError(f"{kind} needs finite low < high, got low={low!r}, high={high!r}")
    if positive and low <= 0:
        raise ValueError(f"{kind} needs 0 < low, got low={low!r}")


@dataclass(frozen=True)
class LogUniform(Dimension):
    """``low * (high / low) ** u``: equal weight to every decade, as learning rates need."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_interval("LogUniform", self.low, self.high, positive=True)

    def value(self, u: float) -> float:
        return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=True)

    def describe(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Uniform(Dimension):
    """``low + u * (high - low)``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_interval("Uniform", self.low, self.high, positive=False)

    def value(self, u: float) -> float:
        return self.low + u * (self.high - self.low)

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high)

    def describe(self) -> str:
        return f"uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class OneMinusLogUniform(Dimension):
    """A decay rate near 1 (a beta, a momentum): ``1 - x`` log-uniform, x in [1 - high, 1 - low]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_interval("OneMinusLogUniform", self.low, self.high, positive=False)
        if not 0.0 <= self.low < self.high < 1.0:
            raise ValueError(f"OneMinusLogUniform needs 0 <= low < high < 1, got {self.low!r}, {self.high!r}")

    def value(self, u: float) -> float:
        gap = LogUniform(1.0 - self.high, 1.0 - self.low).value(1.0 - u)
        return 1.0 - gap

    def suggest(self, trial: Any, name: str) -> float:
        gap = trial.suggest_float(f"one_minus_{name}", 1.0 - self.high, 1.0 - self.low, log=True)
        return 1.0 - gap

    def describe(self) -> str:
        return f"1 - log-uniform, [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Categorical(Dimension):
    """One of a few values, equally likely."""

    options: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError("Categorical needs at least one option")

    def value(self, u: float) -> Any:
        return self.options[min(int(u * len(self.options)), len(self.options) - 1)]

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.options))

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


_ITEM = re.compile(r"^(?P<name>[A-Za-z_]\w*)\[(?P<index>\d+)\]$")


def split_key(key: str) -> tuple[str, int | None]:
    """``"betas[0]"`` -> ``("betas", 0)``; ``"lr"`` -> ``("lr", None)``."""
    match = _ITEM.match(key)
    if match:
        return match["name"], int(match["index"])
    return key, None


class SearchSpace(Mapping[str, Dimension]):
    """An ordered mapping of tunable keys to dimensions, and how a sample becomes hyperparameters."""

    def __init__(self, dimensions: Mapping[str, Dimension], fixed: Mapping[str, Any] | None = None):
        for key, dimension in dimensions.items():
            if not isinstance(dimension, Dimension):
                raise TypeError(f"search space entry {key!r} must be a Dimension, got {dimension!r}")
        self._dimensions = dict(dimensions)
        self.fixed = dict(fixed or {})
        """Settings every sample comes with (Adafactor's ``relative_step=False`` for a tuned ``lr``)."""

    def __getitem__(self, key: str) -> Dimension:
        return self._dimensions[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dimensions)

    def __len__(self) -> int:
        return len(self._dimensions)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {d.describe()}" for k, d in self._dimensions.items())
        fixed = f", fixed {self.fixed}" if self.fixed else ""
        return f"SearchSpace({inner}{fixed})"

    def restrict(self, keys: Sequence[str] | None) -> SearchSpace:
        """Only ``keys`` (all when None); an unknown key is a ValueError listing the known ones."""
        if keys is None:
            return self
        unknown = [k for k in keys if k not in self._dimensions]
        if unknown:
            raise ValueError(
                f"not in this search space: {', '.join(map(repr, unknown))}; tunable: {', '.join(self._dimensions)}"
            )
        return SearchSpace({k: self._dimensions[k] for k in self._dimensions if k in keys}, self.fixed)

    def from_unit(self, point: Sequence[float]) -> dict[str, Any]:
        """The sample for a point of the unit cube (one coordinate per dimension, in order)."""
        if len(point) != len(self):
            raise ValueError(f"expected {len(self)} coordinates, got {len(point)}")
        return {key: dim.value(float(u)) for (key, dim), u in zip(self._dimensions.items(), point)}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The sample an Optuna trial proposes."""
        return {key: dim.suggest(trial, key) for key, dim in self._dimensions.items()}

    def hyperparameters(self, sample: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for one sample: the fixed settings, then the sampled values."""
        return {**self.fixed, **self.to_hyperparameters(sample, defaults)}

    @staticmethod
    def to_hyperparameters(sample: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the optimizer: items such as ``betas[0]`` go into their tuple."""
        out: dict[str, Any] = {}
        for key, value in sample.items():
            name, index = split_key(key)
            if index is None:
                out[name] = value
                continue
            current = list(out.get(name, defaults[name]))
            current[index] = value
            out[name] = tuple(current)
        return out


LEARNING_RATE_ONLY = ("lr",)
"""The keys tuned when a study tunes the learning rate alone."""
