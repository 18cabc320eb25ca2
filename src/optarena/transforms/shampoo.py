"""Shampoo's direction: Kronecker-factored AdaGrad per matrix block, with grafting.

Gupta, Koren & Singer 2018 (https://arxiv.org/abs/1802.09568), Algorithm 1, in the practical
form of Anil et al. 2020 (https://arxiv.org/abs/2002.09018: roots every few steps, blocks,
grafting) and Shi et al. 2023 (https://arxiv.org/abs/2309.06497: per-block grafting).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Choice, Hyper, Integer, Optional, Real
from optarena.transforms.base import Kernel, Prepared, StepContext
from optarena.transforms.kronecker import Blocks, accumulate, inverse_root, precondition
from optarena.transforms.matrix import MatrixTransform

MATRIX_DTYPES = {"float64": torch.float64, "float32": torch.float32}

STATISTICS_HYPERPARAMETERS = {
    "precondition_frequency": Hyper(
        10, Integer(1), "steps between recomputations of the preconditioner (eigendecompositions)"
    ),
    "max_preconditioner_dim": Hyper(
        1024, Integer(1), "largest side of a block: larger matrices are cut into blocks preconditioned apart"
    ),
    "matrix_dtype": Hyper("float64", Choice(tuple(MATRIX_DTYPES)), "dtype of the eigendecompositions"),
}


class ScaleByShampoo(MatrixTransform):
    """``L^(-1/4) G R^(-1/4)`` per block, grafted onto the norm of a simpler direction.

    For each block ``G`` of the matrix (:class:`optarena.transforms.kronecker.Blocks`):
    ``L <- L + G G^T``, ``R <- R + G^T G`` (``beta2 < 1``: exponential averages); every
    ``precondition_frequency`` steps from ``start_preconditioning_step`` on,
    ``L_root = (L + matrix_eps I)^(-1/(2k))`` and likewise ``R_root`` by eigendecomposition in
    ``matrix_dtype``, with ``k`` the number of sides the block has (a side of size 1, as in a
    ``1 x n`` row, is not preconditioned: a vector gets full-matrix AdaGrad, ``k = 1``); the
    direction is ``P = L_root G R_root``. With ``grafting`` each block of ``P`` is rescaled to
    the Frobenius norm of the same block of the grafting direction: ``"adagrad"``
    ``G / (sqrt(sum G^2) + grafting_eps)``, or ``"adam"`` (Adam's second moment without its
    first) ``G / (sqrt(v / (1 - grafting_beta2^t)) + grafting_eps)``. Before the first
    preconditioner the direction is the grafting direction (the gradient without grafting).

    Matrix view (:func:`optarena.transforms.matrix.flattened_matrix`): a tensor of more than
    two dimensions is ``shape[0] x prod(shape[1:])``; a vector is a ``1 x n`` row; a scalar
    ``1 x 1`` (no side preconditioned: its grafting direction, or its gradient).
    """

    hyperparameters = {
        "beta2": Hyper(1.0, Real(0.0, 1.0, open_low=True), "statistics decay: 1 sums them (the paper), < 1 averages"),
        "matrix_eps": Hyper(1e-6, Real(0.0, open_low=True), "added to the statistics' diagonal before the roots"),
        "start_preconditioning_step": Hyper(1, Integer(1), "first step that uses the preconditioner"),
        **STATISTICS_HYPERPARAMETERS,
        "grafting": Hyper(
            "adagrad", Optional(Choice(("adagrad", "adam"))), "the direction whose norm each block takes"
        ),
        "grafting_eps": Hyper(1e-8, NONNEGATIVE, "added to the grafting direction's denominator"),
        "grafting_beta2": Hyper(0.999, UNIT, "second-moment decay of 'adam' grafting"),
    }
    matrix_state_keys = (
        "left_statistics",
        "right_statistics",
        "left_roots",
        "right_roots",
        "grafting_sum",
        "grafting_exp_avg_sq",
    )
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        static = {key: self.value(ctx, key) for key in self.hyperparameters}
        return Prepared(scalars={"step": ctx.per_tensor(ctx.step_values)}, static=static)

    def update_matrix(self, matrix: Tensor, state: dict[str, Any], values: dict[str, Any], k: Kernel) -> Tensor:
        step = int(values["step"])
        rows, cols = matrix.shape
        blocks_of = Blocks.of(rows, cols, k.static("max_preconditioner_dim"))
        blocks = blocks_of.split(matrix)
        beta2 = float(k.static("beta2"))
        if blocks_of.left:
            left = state.setdefault("left_statistics", matrix.new_zeros(blocks_of.left_shape()))
            accumulate(left, blocks @ blocks.mT, beta2)
        if blocks_of.right:
            right = state.setdefault("right_statistics", matrix.new_zeros(blocks_of.right_shape()))
            accumulate(right, blocks.mT @ blocks, beta2)
        grafted = self.grafting_direction(matrix, state, step, k)

        start, frequency = k.static("start_preconditioning_step"), k.static("precondition_frequency")
        if step < start:
            return matrix.clone() if grafted is None else grafted
        if (step - start) % frequency == 0 or "left_roots" not in state and "right_roots" not in state:
            self.refresh_roots(state, blocks_of, k)
        left_roots = state.get("left_roots", blocks)
        right_roots = state.get("right_roots", blocks)
        out = precondition(blocks, left_roots, right_roots, blocks_of.left, blocks_of.right)
        if grafted is not None:
            target = torch.linalg.matrix_norm(blocks_of.split(grafted))
            have = torch.linalg.matrix_norm(out)
            scale = torch.where(have > 0, target / torch.where(have > 0, have, 1.0), 0.0)
            out = out * scale[:, None, None]
        return blocks_of.join(out)

    def refresh_roots(self, state: dict[str, Any], blocks_of: Blocks, k: Kernel) -> None:
        """The inverse roots from the current statistics (eigendecompositions in ``matrix_dtype``)."""
        sides = int(blocks_of.left) + int(blocks_of.right)
        eps, dtype = float(k.static("matrix_eps")), MATRIX_DTYPES[k.static("matrix_dtype")]
        for side, present in (("left", blocks_of.left), ("right", blocks_of.right)):
            if present:
                state[f"{side}_roots"] = inverse_root(state[f"{side}_statistics"], 1.0 / (2 * sides), eps, dtype)

    def grafting_direction(self, matrix: Tensor, state: dict[str, Any], step: int, k: Kernel) -> Tensor | None:
        """This step's grafting direction (its state updated), or None without grafting."""
        grafting, eps = k.static("grafting"), float(k.static("grafting_eps"))
        squares = matrix * matrix
        if grafting == "adagrad":
            total: Tensor = state.setdefault("grafting_sum", torch.zeros_like(matrix))
            total.add_(squares)
            return matrix / (total.sqrt() + eps)
        if grafting == "adam":
            beta2 = float(k.static("grafting_beta2"))
            second: Tensor = state.setdefault("grafting_exp_avg_sq", torch.zeros_like(matrix))
            second.mul_(beta2).add_(squares, alpha=1.0 - beta2)
            return matrix / ((second / (1.0 - beta2**step)).sqrt() + eps)
        return None
