"""A transform applied to some parameters only: ``masked(AddDecayedWeights(), decay_mask)``."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from optarena.hyperparameters import Hyper
from optarena.transforms.base import Prepared, StepContext, Transform

Mask = Callable[[str | None, Tensor], bool]
"""``mask(name, param)``: whether the transform applies to the parameter (``name`` is None for
parameters given without names)."""


class Masked(Transform):
    """``inner`` where ``mask(name, param)`` holds; elsewhere the update passes unchanged.

    The mask splits buckets (:meth:`bucket_key`), so every tensor of a bucket is either masked
    in or out and the compiled path needs no branch per tensor; the inner transform's state is
    created only for the parameters it applies to. Hyperparameters, state and capabilities are
    the inner transform's. Build it with :func:`masked`.
    """

    def __init__(self, inner: Transform, mask: Mask):
        if not isinstance(inner, Transform):
            raise TypeError(f"masked: expected an optarena transform, got {inner!r}")
        if not callable(mask):
            raise TypeError(f"masked: the mask must be a function (name, param) -> bool, got {mask!r}")
        self.inner = inner
        self.mask = mask
        self._answers: WeakIdKeyDictionary = WeakIdKeyDictionary()
        super().__init__()

    # the inner transform's declarations
    @property
    def hyperparameters(self) -> Mapping[str, Hyper]:  # type: ignore[override]
        return self.inner.hyperparameters

    @property
    def state_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.state_keys

    @property
    def scalar_state_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.scalar_state_keys

    @property
    def uses_step(self) -> bool:  # type: ignore[override]
        return self.inner.uses_step

    @property
    def elementwise(self) -> bool:  # type: ignore[override]
        return self.inner.elementwise

    @property
    def group_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.group_keys

    def uses_shapes(self) -> bool:  # type: ignore[override]
        return self.inner.uses_shapes()

    def bound_hyperparameters(self) -> dict[str, Hyper]:
        return self.inner.bound_hyperparameters()

    def bind(self, **keys: str) -> Transform:
        return Masked(self.inner.bind(**keys), self.mask)

    def source_modules(self) -> tuple[str, ...]:
        return (type(self).__module__, *self.inner.source_modules())

    def applies(self, param: Tensor, name: str | None) -> bool:
        """``mask(name, param)``, asked once per parameter."""
        answer = self._answers.get(param)  # type: ignore[no-untyped-call]  # torch.utils.weak has no annotations
        if answer is None:
            answer = bool(self.mask(name, param))
            self._answers[param] = answer
        return bool(answer)

    def bucket_key(self, param: Tensor, name: str | None = None) -> Hashable:
        return (self.applies(param, name), self.inner.bucket_key(param, name))

    def prepare_group(self, group: dict[str, Any], contexts: list[StepContext]) -> None:
        inside = [c for c in contexts if c.originals and self.applies(c.originals[0], c.names[0])]
        if inside:
            self.inner.prepare_group(group, inside)

    def prepare(self, ctx: StepContext) -> Prepared:
        if not self.applies(ctx.originals[0], ctx.names[0]):
            return Prepared(static={"masked_in": False})
        prepared = self.inner.prepare(ctx)
        return Prepared(dict(prepared.scalars), {**prepared.static, "masked_in": True})

    def apply(self, ops: Any, updates: list[Tensor], k: Any) -> list[Tensor]:
        if not k.static("masked_in"):
            return updates
        return self.inner.apply(ops, updates, k)

    @property
    def name(self) -> str:
        return "masked"

    def describe(self) -> str:
        label = getattr(self.mask, "__name__", type(self.mask).__name__)
        return f"masked({self.inner.describe()}, {label})"

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_answers"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._answers = WeakIdKeyDictionary()


def masked(transform: Transform, mask: Mask) -> Masked:
    """``transform`` applied only to the parameters where ``mask(name, param)`` is true.

    For example decoupled weight decay on matrices only (no decay on biases and gains)::

        Chain(model.named_parameters(),
              [ScaleByAdam(), masked(AddDecayedWeights(), lambda name, p: p.dim() >= 2), ScaleByLearningRate()],
              lr=1e-3, weight_decay=0.1)

    The mask is asked once per parameter and its answer kept; ``name`` is None for
    parameters given without names.
    """
    return Masked(transform, mask)
