"""Declared hyperparameters: their defaults, allowed values and strict checking.

Every transform declares the param-group keys it reads as :class:`Hyper` entries. An
optimizer's allowed values are the union of its transforms' declarations, so a value is
checked by the code that uses it, once, wherever the optimizer is built from.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch


def _number(value: Any) -> float | None:
    """The value as a float if it is a real number (or a one-element real tensor), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex() or value.is_meta:
            return None
        return float(value.item())
    if isinstance(value, (int, float)):
        return float(value)
    return None


def torch_phrase(name: str) -> str:
    """How torch.optim names a hyperparameter in its messages ("Invalid learning rate: ...")."""
    if name == "lr":
        return "learning rate"
    if name == "eps":
        return "epsilon value"
    index = re.fullmatch(r"betas\[(\d+)\]", name)
    if index:
        return f"beta parameter at index {index.group(1)}"
    return f"{name} value"


class Constraint:
    """What values a hyperparameter may take."""

    def check(self, name: str, value: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self, name: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Real(Constraint):
    """A real number in an interval; ``open_low``/``open_high`` exclude the ends."""

    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def describe(self, name: str) -> str:
        parts = []
        if self.low != -math.inf:
            parts.append(f"{self.low:g} {'<' if self.open_low else '<='} ")
        parts.append(name)
        if self.high != math.inf:
            parts.append(f" {'<' if self.open_high else '<='} {self.high:g}")
        if len(parts) == 1:
            return f"{name} a real number"
        return "".join(parts)

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element, got shape {tuple(value.shape)}")
        x = _number(value)
        if x is None:
            raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
        if not self.allows(x):
            raise ValueError(f"Invalid {torch_phrase(name)}: {value!r}; allowed range: {self.describe(name)}")

    def allows(self, x: float) -> bool:
        below = x < self.low or (self.open_low and x == self.low)
        above = x > self.high or (self.open_high and x == self.high)
        return not (math.isnan(x) or below or above)


@dataclass(frozen=True)
class Flag(Constraint):
    """True or False."""

    def describe(self, name: str) -> str:
        return f"{name} True or False"

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, bool):
            raise ValueError(f"Invalid {name}: {value!r}; allowed: True or False")


@dataclass(frozen=True)
class Choice(Constraint):
    """One of a few strings."""

    options: tuple[str, ...]

    def describe(self, name: str) -> str:
        return f"{name} one of {', '.join(repr(o) for o in self.options)}"

    def check(self, name: str, value: Any) -> None:
        if value not in self.options:
            raise ValueError(f"Invalid {name}: {value!r}; allowed: {', '.join(repr(o) for o in self.options)}")


@dataclass(frozen=True)
class Optional(Constraint):
    """None, or a value the inner constraint allows."""

    inner: Constraint

    def describe(self, name: str) -> str:
        return f"{self.inner.describe(name)}, or None"

    def check(self, name: str, value: Any) -> None:
        if value is None:
            return
        try:
            self.inner.check(name, value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{error} (or None)") from None


@dataclass(frozen=True)
class Tuple(Constraint):
    """A fixed-length sequence whose items each satisfy their own constraint.

    ``label`` names the whole (torch's "eta values"): a bad item is then reported with all
    the values, as torch.optim does ("Invalid eta values: 1.0, 0.5").
    """

    items: tuple[Constraint, ...]
    label: str | None = None

    def describe(self, name: str) -> str:
        return "; ".join(c.describe(f"{name}[{i}]") for i, c in enumerate(self.items))

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != len(self.items):
            raise ValueError(
                f"Invalid {name}: {value!r}; allowed: a sequence of {len(self.items)} values ({self.describe(name)})"
            )
        for i, (item, constraint) in enumerate(zip(value, self.items)):
            if self.label is None:
                constraint.check(f"{name}[{i}]", item)
                continue
            try:
                constraint.check(f"{name}[{i}]", item)
            except ValueError:
                shown = ", ".join(str(v) for v in value)
                raise ValueError(f"Invalid {self.label}: {shown}; allowed: {self.describe(name)}") from None


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer in ``[low, high]`` (booleans excluded; a one-element integer tensor counts)."""

    low: int = 0
    high: int | None = None

    def describe(self, name: str) -> str:
        upper = f" <= {self.high}" if self.high is not None else ""
        return f"{name} an integer, {self.low} <= {name}{upper}"

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value.item())
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < self.low
            or (self.high is not None and value > self.high)
        ):
            raise ValueError(f"Invalid {name}: {value!r}; allowed: {self.describe(name)}")


@dataclass(frozen=True)
class Hyper:
    """A param-group key a transform reads: its default, allowed values and meaning."""

    default: Any
    constraint: Constraint
    doc: str = ""


UNIT = Real(0.0, 1.0, open_high=True)
"""A decay rate such as a beta: 0 <= x < 1."""

NONNEGATIVE = Real(0.0)


def check_values(owner: str, declared: Mapping[str, Hyper], values: Mapping[str, Any]) -> None:
    """Check every declared key present in ``values``; errors name the owner and the key."""
    for key, hyper in declared.items():
        if key in values:
            try:
                hyper.constraint.check(key, values[key])
            except (TypeError, ValueError) as error:
                raise type(error)(f"{owner}: {error}") from None


def close_matches(word: str, candidates: Sequence[str]) -> list[str]:
    """Candidates that look like ``word`` (case-insensitive), best first."""
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=3, cutoff=0.6)
    return [lowered[h] for h in hits]


def unknown_keyword_error(owner: str, keyword: str, valid: Sequence[str]) -> TypeError:
    """A TypeError naming the unknown keyword, its closest valid spelling and the valid set."""
    hint = close_matches(keyword, valid)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    return TypeError(
        f"{owner}() got an unexpected keyword argument {keyword!r}.{suggestion} "
        f"Valid keyword arguments: {', '.join(valid)}."
    )


def strict_keywords(init: Callable) -> Callable:
    """Wrap ``__init__`` so an unknown keyword names the closest valid one.

    The wrapped signature is unchanged (``inspect.signature`` and IDEs see the original).
    """
    signature = inspect.signature(init)
    keywords = [
        name
        for name, p in signature.parameters.items()
        if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())

    @functools.wraps(init)
    def checked_init(self, *args, **kwargs):
        if not accepts_any:
            for key in kwargs:
                if key not in keywords:
                    raise unknown_keyword_error(type(self).__name__, key, [k for k in keywords if k != "params"])
        return init(self, *args, **kwargs)

    return checked_init
