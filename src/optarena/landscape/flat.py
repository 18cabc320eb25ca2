"""A model's parameters as one flat vector, and back.

Every landscape quantity (a point, a direction, a checkpoint) is a vector of length
``numel``: the model's parameters in ``named_parameters()`` order, flattened and joined.
:class:`ParameterLayout` records the names and shapes needed to cut such vectors (or a batch
of them, shape ``(..., numel)``) back into the ``{name: tensor}`` dict that
:func:`torch.func.functional_call` takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ParameterLayout:
    """Names, shapes and sizes of a model's parameters, in ``named_parameters()`` order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def of(cls, model: nn.Module) -> ParameterLayout:
        named = list(model.named_parameters())
        if not named:
            raise ValueError(f"{type(model).__name__} has no parameters: there is no landscape to draw")
        return cls(tuple(name for name, _ in named), tuple(p.shape for _, p in named))

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(shape.numel() for shape in self.shapes)

    @property
    def numel(self) -> int:
        return sum(self.sizes)

    def flatten(self, tensors: dict[str, Tensor]) -> Tensor:
        """Join ``{name: tensor}`` (every name of the layout) into one vector."""
        missing = [name for name in self.names if name not in tensors]
        if missing:
            raise KeyError(f"missing parameters {missing}; the layout has {list(self.names)}")
        return torch.cat([tensors[name].detach().reshape(-1) for name in self.names])

    def unflatten(self, vectors: Tensor) -> dict[str, Tensor]:
        """Cut ``(..., numel)`` into ``{name: (..., *shape)}`` views (no copy)."""
        self.check(vectors, "vectors")
        lead = vectors.shape[:-1]
        pieces = vectors.split(self.sizes, dim=-1)
        return {name: piece.reshape(*lead, *shape) for name, shape, piece in zip(self.names, self.shapes, pieces)}

    def pieces(self, vector: Tensor) -> list[Tensor]:
        """The per-parameter views of one vector, in layout order."""
        return list(self.unflatten(vector).values())

    def check(self, vectors: Tensor, what: str) -> None:
        if vectors.dim() == 0 or vectors.shape[-1] != self.numel:
            raise ValueError(
                f"{what} must have {self.numel} entries in its last dimension (the model's parameter "
                f"count), got shape {tuple(vectors.shape)}"
            )


def parameters_vector(model: nn.Module) -> Tensor:
    """The model's current parameters as one detached vector (a copy)."""
    return ParameterLayout.of(model).flatten(dict(model.named_parameters())).clone()


def load_vector(model: nn.Module, vector: Tensor) -> None:
    """Copy a flat vector into the model's parameters in place."""
    layout = ParameterLayout.of(model)
    with torch.no_grad():
        for parameter, piece in zip(model.parameters(), layout.pieces(vector)):
            parameter.copy_(piece)
