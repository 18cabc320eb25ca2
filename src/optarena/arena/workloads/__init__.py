"""The arena's workloads by name, and your own as ``package.module:factory``.

    >>> workload = get_workload("digits-mlp", quick=True)
    >>> workload.steps, workload.target
    (200, Target(metric='test_accuracy', value=0.95, mode='max'))
    >>> [info.name for info in available_workloads()][:2]
    ['digits-mlp', 'digits-cnn']

See docs/workloads.md for what each one is, why it is there, and how to write your own.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optarena.arena.workload import Target, Workload
from optarena.arena.workloads.base import Budget, BuiltinWorkload
from optarena.arena.workloads.char_lm import CharLM
from optarena.arena.workloads.custom import (
    WorkloadError,
    call_factory,
    check_trainable,
    check_workload,
    import_factory,
)
from optarena.arena.workloads.digits import DigitsCNN, DigitsMLP
from optarena.arena.workloads.functions import NQM, Rosenbrock
from optarena.arena.workloads.large_batch import LargeBatch
from optarena.arena.workloads.mnist1d import Mnist1DCNN, Mnist1DMLP
from optarena.arena.workloads.real_data import Cifar10CNN, MnistMLP
from optarena.arena.workloads.sparse_bow import SparseBOW
from optarena.arena.workloads.targeted import HELD_OUT_OPTION, TARGET_OPTION, WithTarget
from optarena.arena.workloads.transformer import TinyTransformer
from optarena.hyperparameters import close_matches

BUILTIN: dict[str, type[BuiltinWorkload]] = {
    cls.name: cls
    for cls in (
        DigitsMLP,
        DigitsCNN,
        Mnist1DMLP,
        Mnist1DCNN,
        CharLM,
        TinyTransformer,
        SparseBOW,
        LargeBatch,
        Rosenbrock,
        NQM,
        MnistMLP,
        Cifar10CNN,
    )
}
"""Built-in workloads by name, in the order they are listed."""


@dataclass(frozen=True)
class WorkloadInfo:
    """What ``optarena workloads`` lists for one built-in workload."""

    name: str
    description: str
    target: Target
    budget: Budget
    quick_budget: Budget
    needs_data_dir: bool
    drawable: bool = False
    """``optarena landscape`` can draw it (its runs expose a loss function and training tensors)."""


def available_workloads() -> list[WorkloadInfo]:
    """Every built-in workload with its one-line description, target and budgets."""
    return [
        WorkloadInfo(c.name, c.description, c.target, c.budget, c.quick_budget, c.needs_data_dir, c.drawable)
        for c in BUILTIN.values()
    ]


def _builtin(name: str, data_dir: str | Path | None, options: dict[str, Any]) -> BuiltinWorkload:
    cls = BUILTIN[name]
    accepted = [p for p in inspect.signature(cls).parameters if p != "data_dir"]
    for key in options:
        if key not in accepted:
            hints = close_matches(key, accepted)
            hint = f" Did you mean {hints[0]!r}?" if hints else ""
            raise TypeError(f"Workload {name!r} has no option {key!r}.{hint} Its options: {', '.join(accepted)}.")
    if cls.needs_data_dir:
        return cls(data_dir=data_dir, **options)
    return cls(**options)


def get_workload(spec: str, data_dir: str | Path | None = None, **options: Any) -> Workload:
    """The workload named ``spec``: a built-in name (any case) or ``package.module:factory``.

    ``data_dir`` is where workloads on real data read their files (others ignore it).
    ``options`` go to the workload: for built-ins ``quick``, ``steps``, ``eval_every``,
    ``batch_size`` and the workload's own; for a factory, see
    :mod:`optarena.arena.workloads.custom`.

    The reserved option ``target`` (a number) replaces the target's value, and
    ``held_out`` labels a held-out variant (see :mod:`optarena.arena.workloads.targeted`).

    Raises ValueError (:class:`WorkloadError`) for an unknown name (listing close matches),
    a module or attribute that cannot be found, or a factory whose result lacks part of
    the protocol; TypeError for an option the workload does not take.
    """
    if HELD_OUT_OPTION in options:
        options = {k: v for k, v in options.items() if k != HELD_OUT_OPTION}
        return get_workload(spec, data_dir, **options)
    if TARGET_OPTION in options:
        options = dict(options)
        value = options.pop(TARGET_OPTION)
        return WithTarget(get_workload(spec, data_dir, **options), value)
    if not isinstance(spec, str) or not spec.strip():
        raise WorkloadError(f"A workload spec must be a name or package.module:factory, got {spec!r}")
    if ":" in spec:
        factory = import_factory(spec)
        if data_dir is not None:
            options = {"data_dir": Path(data_dir), **options}
        return check_workload(call_factory(factory, spec, options), f"Workload factory {spec!r}")
    key = spec.strip().lower()
    if key not in BUILTIN:
        hints = close_matches(key, list(BUILTIN))
        hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
        raise WorkloadError(
            f"Unknown workload {spec!r}.{hint} Built-in: {', '.join(BUILTIN)}; "
            "or give your own as package.module:factory."
        )
    return _builtin(key, data_dir, options)


__all__ = [
    "BUILTIN",
    "WorkloadError",
    "WorkloadInfo",
    "available_workloads",
    "check_trainable",
    "check_workload",
    "get_workload",
]
