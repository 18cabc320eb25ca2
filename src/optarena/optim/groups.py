"""Param-group checks: keys as strict as keywords, and values re-checked once they change.

torch.optim keeps any key a group dict brings and reads only its own, so a misspelled key
(``"weight_dacay"``) is silently ignored; here it is a ``TypeError`` naming the closest valid
key. Values are checked when a group is added or loaded, and again at the first step after a
change (a scheduler, or code writing ``group["betas"] = (1, 1)``): :class:`ChangeTracker`
notices the change without reading any tensor's value, so an unchanged group costs one
comparison of a few Python objects per step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor

from optarena.hyperparameters import close_matches


def unknown_group_key_error(owner: str, key: Any, valid: Iterable[str], where: str) -> TypeError:
    """A TypeError naming the unknown param-group key, its closest valid spelling and the valid set."""
    valid = sorted(valid)
    hint = close_matches(key, valid) if isinstance(key, str) else []
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    return TypeError(
        f"{owner}: {where} has an unknown key {key!r}.{suggestion} Valid param-group keys: {', '.join(valid)}."
    )


def check_group_keys(owner: str, group: Mapping[Any, Any], valid: frozenset[str], where: str) -> None:
    """Raise :func:`unknown_group_key_error` for the first key of ``group`` not in ``valid``."""
    for key in group:
        if key not in valid:
            raise unknown_group_key_error(owner, key, valid, where)


class _Seen:
    """A tensor as it was when last checked: the same object, not modified in place since."""

    __slots__ = ("tensor", "version")

    def __init__(self, tensor: Tensor):
        self.tensor = tensor
        try:
            self.version: int | None = tensor._version
        except RuntimeError:  # inference tensors keep no version counter: always re-check
            self.version = None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Seen)
            and other.tensor is self.tensor
            and self.version is not None
            and other.version == self.version
        )

    __hash__ = None  # type: ignore[assignment]


class _Same:
    """Any other object, compared by identity (its ``==`` may not give a bool)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value

    __hash__ = None  # type: ignore[assignment]


_PLAIN = (bool, int, float, complex, str, type(None))
_MISSING = object()


def fingerprint(value: Any) -> Any:
    """Something equal to a later fingerprint of ``value`` exactly when it may not have changed.

    Plain numbers and strings compare by type and value; tensors by identity and version
    counter (so an in-place ``fill_`` counts as a change, and no value is read from a device);
    lists and tuples item by item; anything else by identity.
    """
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if isinstance(value, Tensor):
        return _Seen(value)
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(fingerprint(v) for v in value))
    return _Same(value)


def _frozen(value: Any) -> bool:
    """Whether ``value`` cannot change without being replaced (numbers, strings, their tuples)."""
    return isinstance(value, _PLAIN) or (isinstance(value, tuple) and all(_frozen(v) for v in value))


class ChangeTracker:
    """Which of a group's hyperparameters changed since the group was last validated.

    A value that cannot change in place (a number, a string, a tuple of them) has changed
    when the group holds another object; any other value (a tensor, a list) is compared by
    :func:`fingerprint` as well. An unchanged group costs a look-up and an identity test per
    key.
    """

    def __init__(self, keys: Iterable[str]):
        self.keys = tuple(keys)
        self._seen: dict[int, tuple[dict[str, Any], tuple[Any, ...], dict[int, Any]]] = {}
        """id(group) -> (the group itself, kept so its id is not reused; its values; the
        fingerprints of the values that can change in place, by position)."""

    def _values(self, group: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(group.get(key, _MISSING) for key in self.keys)

    def changed(self, group: dict[str, Any]) -> list[str]:
        """The keys whose values may differ from the validated ones (every key for a new group)."""
        seen = self._seen.get(id(group))
        if seen is None or seen[0] is not group:
            return [key for key in self.keys if key in group]
        _, before, marks = seen
        now = self._values(group)
        return [
            key
            for i, key in enumerate(self.keys)
            if (now[i] is not before[i] or (i in marks and fingerprint(now[i]) != marks[i])) and key in group
        ]

    def remember(self, group: dict[str, Any], changed: Iterable[str] | None = None) -> None:
        """Record ``group``'s current values as validated (``changed``: only these keys moved)."""
        values = self._values(group)
        seen = self._seen.get(id(group))
        if changed is None or seen is None or seen[0] is not group:
            positions: Iterable[int] = range(len(values))
            marks: dict[int, Any] = {}
        else:
            moved = set(changed)
            positions = [i for i, key in enumerate(self.keys) if key in moved]
            marks = dict(seen[2])
        for i in positions:
            if _frozen(values[i]):
                marks.pop(i, None)
            else:
                marks[i] = fingerprint(values[i])
        self._seen[id(group)] = (group, values, marks)

    def forget_all(self) -> None:
        self._seen.clear()
