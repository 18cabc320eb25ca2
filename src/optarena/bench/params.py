"""The parameter sets the benchmark steps over, with fixed random gradients.

``transformer``: the tensors of a 12-block, width-512 transformer (per block: qkv 1536 x 512
and its bias, the attention output 512 x 512 and its bias, two LayerNorms' weight and bias,
fc1 2048 x 512 and its bias, fc2 512 x 2048 and its bias; 144 tensors), an 8000 x 512
embedding and a final LayerNorm, padded with 512-vectors to 157 tensors: 41,930,752 float32
parameters. ``small``: the same layout at width 32 with 2 blocks, for quick runs and tests.
``matrices``: 16 matrices of 2048 x 512 (16,777,216 parameters), equal large shapes as in
wider models, whose temporary buffers meet the C library's allocator differently.

Gradients are random tensors made once and left in place, so a timed step is the
optimizer's work alone (no backward pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
"""Parameter dtypes the benchmark steps (``--dtype``), and the state dtypes it may ask for."""


@dataclass(frozen=True)
class ParamPreset:
    """A named list of tensor shapes."""

    name: str
    description: str
    shapes: tuple[tuple[int, ...], ...]

    @property
    def tensors(self) -> int:
        return len(self.shapes)

    @property
    def elements(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)


def transformer_shapes(
    blocks: int, width: int, vocabulary: int, total_tensors: int | None = None
) -> tuple[tuple[int, ...], ...]:
    """Shapes of a pre-norm transformer's parameters, padded with ``(width,)`` tensors."""
    hidden = 4 * width
    block = [
        (3 * width, width),
        (3 * width,),  # attention qkv
        (width, width),
        (width,),  # attention output
        (width,),
        (width,),  # LayerNorm 1
        (width,),
        (width,),  # LayerNorm 2
        (hidden, width),
        (hidden,),  # fc1
        (width, hidden),
        (width,),  # fc2
    ]
    shapes = [shape for _ in range(blocks) for shape in block]
    shapes += [(vocabulary, width), (width,), (width,)]  # embedding, final LayerNorm
    if total_tensors is not None:
        if total_tensors < len(shapes):
            raise ValueError(f"total_tensors {total_tensors} is below the model's {len(shapes)} tensors")
        shapes += [(width,)] * (total_tensors - len(shapes))
    return tuple(shapes)


PRESETS: dict[str, ParamPreset] = {
    "transformer": ParamPreset(
        "transformer",
        "12 blocks of width 512, an 8000 x 512 embedding, padded to 157 tensors",
        transformer_shapes(12, 512, 8000, total_tensors=157),
    ),
    "small": ParamPreset(
        "small",
        "2 blocks of width 32, a 100 x 32 embedding, padded to 30 tensors",
        transformer_shapes(2, 32, 100, total_tensors=30),
    ),
    "matrices": ParamPreset("matrices", "16 matrices of 2048 x 512", ((2048, 512),) * 16),
}


def get_preset(name: str) -> ParamPreset:
    """The preset called ``name``; a ValueError lists the presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown parameter set {name!r}; choose one of: {', '.join(PRESETS)}") from None


@dataclass
class ParamSet:
    """Initial parameter values and the fixed gradients, one of each per shape."""

    preset: ParamPreset
    values: list[Tensor]
    grads: list[Tensor]

    def fresh(self) -> list[Tensor]:
        """New leaf parameters holding copies of the initial values, each with its gradient set.

        Every copy shares the same gradient tensors: the optimizers read them and never
        write them, and sharing keeps the memory of many optimizers side by side low.
        """
        params = []
        for value, grad in zip(self.values, self.grads):
            p = torch.nn.Parameter(value.clone())
            p.grad = grad
            params.append(p)
        return params


def make_param_set(
    preset: ParamPreset | str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> ParamSet:
    """Initial values (normal, std 0.02; ones for vectors, as LayerNorm weights) and gradients
    (normal, std 1e-3), reproducible from ``seed``."""
    if isinstance(preset, str):
        preset = get_preset(preset)
    generator = torch.Generator().manual_seed(seed)
    values, grads = [], []
    for shape in preset.shapes:
        if len(shape) == 1:
            value = 1.0 + 0.02 * torch.randn(shape, generator=generator, dtype=dtype)
        else:
            value = 0.02 * torch.randn(shape, generator=generator, dtype=dtype)
        grad = 1e-3 * torch.randn(shape, generator=generator, dtype=dtype)
        values.append(value.to(device))
        grads.append(grad.to(device))
    return ParamSet(preset, values, grads)
