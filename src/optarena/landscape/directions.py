"""Random directions in parameter space, scaled to the model (Li et al. 2018).

A random Gaussian direction ``d`` is rescaled piece by piece to the parameters ``theta`` it
perturbs, so that a step of 1 along ``d`` means the same relative change in every layer
whatever its scale. With filter normalisation (the paper's choice), each filter of a weight
(a slice along its first dimension: one output unit of a linear layer, one output channel of
a convolution) gets the norm of the matching filter of ``theta``:

    d[i, j] <- d[i, j] / ||d[i, j]|| * ||theta[i, j]||

One-dimensional parameters (biases and the scales and shifts of normalisation layers) are
set to zero by default, as the paper does, or kept (normalised as a single filter).

Li, Xu, Taylor, Studer & Goldstein, "Visualizing the Loss Landscape of Neural Nets",
NeurIPS 2018, https://arxiv.org/abs/1712.09913
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from optarena.landscape.flat import ParameterLayout, parameters_vector

NORMALIZATIONS = ("filter", "layer", "none")
ONE_DIMENSIONAL = ("zero", "keep")


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")


def normalize_direction(
    direction: Tensor,
    reference: Tensor,
    layout: ParameterLayout,
    *,
    normalization: str = "filter",
    one_dimensional: str = "zero",
) -> Tensor:
    """Rescale a flat ``direction`` piece by piece to the flat parameters ``reference``.

    Args:
        direction: vector of ``layout.numel`` entries (not modified).
        reference: the parameters the direction perturbs, same length.
        normalization: ``"filter"`` (each slice along dim 0 of a weight gets the norm of the
            reference's slice; default), ``"layer"`` (each whole tensor gets the reference
            tensor's norm) or ``"none"`` (left as it is).
        one_dimensional: what happens to parameters with at most one dimension (biases,
            normalisation-layer scales and shifts): ``"zero"`` (default, as the paper) or
            ``"keep"`` (rescaled like a single filter under ``"filter"``/``"layer"``).

    Returns a new vector.
    """
    _check_choice("normalization", normalization, NORMALIZATIONS)
    _check_choice("one_dimensional", one_dimensional, ONE_DIMENSIONAL)
    layout.check(direction, "direction")
    layout.check(reference, "reference")
    result = direction.detach().clone()
    tiny = torch.finfo(result.dtype).tiny
    for piece, ref in zip(layout.pieces(result), layout.pieces(reference)):
        if piece.dim() <= 1:
            if one_dimensional == "zero":
                piece.zero_()
                continue
            if normalization != "none":
                piece.mul_(ref.norm() / piece.norm().clamp_min(tiny))
        elif normalization == "filter":
            rows, ref_rows = piece.flatten(1), ref.flatten(1)
            rows.mul_((ref_rows.norm(dim=1) / rows.norm(dim=1).clamp_min(tiny)).unsqueeze(1))
        elif normalization == "layer":
            piece.mul_(ref.norm() / piece.norm().clamp_min(tiny))
    return result


def random_direction(
    model: nn.Module,
    *,
    generator: torch.Generator | None = None,
    normalization: str = "filter",
    one_dimensional: str = "zero",
) -> Tensor:
    """A Gaussian direction scaled to the model's current parameters (see the module doc).

    Returns a flat vector in the model's dtype and device; pass ``generator`` for a
    reproducible direction.
    """
    reference = parameters_vector(model)
    noise = torch.randn(reference.shape, generator=generator, dtype=reference.dtype, device="cpu")
    return normalize_direction(
        noise.to(reference.device),
        reference,
        ParameterLayout.of(model),
        normalization=normalization,
        one_dimensional=one_dimensional,
    )
