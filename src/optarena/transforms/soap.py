"""SOAP's direction: Adam run in the eigenbasis of Shampoo's statistics.

Vyas, Morwani, Zhao, Shapira, Brandfonbrener, Janson & Kakade 2024, SOAP: Improving and
Stabilizing Shampoo using Adam (https://arxiv.org/abs/2409.11321), Algorithms 3 and 4.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Flag, Hyper, Integer, Optional, Tuple
from optarena.transforms.base import Kernel, Prepared, StepContext
from optarena.transforms.kronecker import eigenbasis, refreshed_basis, rotate, rotate_back
from optarena.transforms.matrix import MatrixTransform
from optarena.transforms.shampoo import MATRIX_DTYPES, STATISTICS_HYPERPARAMETERS


class ScaleBySoap(MatrixTransform):
    """Adam's direction in the eigenbasis ``Q_L, Q_R`` of ``L ~ E[G G^T]`` and ``R ~ E[G^T G]``.

    Step 1: ``L = (1 - b) G G^T``, ``R = (1 - b) G^T G`` (``b = shampoo_beta``, or ``betas[1]``
    when None), ``Q_L, Q_R`` their eigenvectors by descending eigenvalue; no update (as the
    authors' code). Step ``t >= 2``, with ``s = t - 1``::

        G' = Q_L^T G Q_R;  M = b1 M + (1 - b1) G;  M' = Q_L^T M Q_R;  V = b2 V + (1 - b2) G'^2
        N = Q_L (M' / (sqrt(V) + eps)) Q_R^T * sqrt(1 - b2^s) / (1 - b1^s)    (correct_bias)
        L = b L + (1 - b) G G^T;  R = b R + (1 - b) G^T G
        every precondition_frequency steps (s a multiple of it): one QR power iteration per side,
            Q <- QR(L Q) after sorting Q's columns (and V's rows, or columns) by diag(Q^T L Q)

    ``M`` lives in the parameter's coordinates and is rotated at every step (the paper's
    Algorithm 3); ``V`` lives in the eigenbasis. Matrix view: a tensor of more than two
    dimensions is ``shape[0] x prod(shape[1:])``; a vector is a ``1 x n`` row. A side of size 1,
    a side longer than ``max_preconditioner_dim``, and the side of a vector unless
    ``precondition_1d``, are not rotated (Adam along them, as the authors' code).
    """

    hyperparameters = {
        "betas": Hyper((0.95, 0.95), Tuple((UNIT, UNIT)), "decay rates of Adam's first and second moments"),
        "shampoo_beta": Hyper(None, Optional(UNIT), "decay of the statistics L and R (None: betas[1])"),
        "eps": Hyper(1e-8, NONNEGATIVE, "added to the denominator"),
        **STATISTICS_HYPERPARAMETERS,
        "max_preconditioner_dim": Hyper(10000, Integer(1), "sides longer than this are not rotated (Adam along them)"),
        "precondition_1d": Hyper(False, Flag(), "rotate vectors too (a full n x n statistic)"),
        "correct_bias": Hyper(True, Flag(), "Adam's bias corrections"),
    }
    matrix_state_keys = (
        "left_statistics",
        "right_statistics",
        "eigenbasis_left",
        "eigenbasis_right",
        "exp_avg",
        "exp_avg_sq",
    )
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        static = {key: self.value(ctx, key) for key in self.hyperparameters}
        return Prepared(scalars={"step": ctx.per_tensor(ctx.step_values)}, static=static)

    def sides(self, rows: int, cols: int, k: Kernel) -> tuple[bool, bool]:
        """Whether the left and right sides of a ``rows x cols`` matrix are rotated."""
        largest = k.static("max_preconditioner_dim")
        vector = rows == 1 or cols == 1
        allowed = not vector or k.static("precondition_1d")
        return (allowed and 1 < rows <= largest, allowed and 1 < cols <= largest)

    def update_matrix(self, matrix: Tensor, state: dict[str, Any], values: dict[str, Any], k: Kernel) -> Tensor:
        rows, cols = matrix.shape
        left, right = self.sides(rows, cols, k)
        beta1, beta2 = (float(b) for b in k.static("betas"))
        shampoo_beta = beta2 if k.static("shampoo_beta") is None else float(k.static("shampoo_beta"))
        dtype = MATRIX_DTYPES[k.static("matrix_dtype")]
        g = matrix
        if "exp_avg" not in state:  # step 1: statistics and their eigenbases only
            for side, present, product in (("left", left, g @ g.mT), ("right", right, g.mT @ g)):
                if present:
                    state[f"{side}_statistics"] = product.mul_(1.0 - shampoo_beta)
                    state[f"eigenbasis_{side}"] = eigenbasis(state[f"{side}_statistics"], dtype)
            state["exp_avg"] = torch.zeros_like(matrix)
            state["exp_avg_sq"] = torch.zeros_like(matrix)
            return torch.zeros_like(matrix)
        step = int(values["step"]) - 1
        q_left = state.get("eigenbasis_left", g)
        q_right = state.get("eigenbasis_right", g)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        rotated = rotate(g, q_left, q_right, left, right)
        exp_avg.lerp_(matrix, 1.0 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(rotated, rotated, value=1.0 - beta2)
        moment = rotate(exp_avg, q_left, q_right, left, right)
        adam = moment / (exp_avg_sq.sqrt() + float(k.static("eps")))
        out = rotate_back(adam, q_left, q_right, left, right)
        if k.static("correct_bias"):
            out = out * (math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step))
        for side, present, product in (("left", left, g @ g.mT), ("right", right, g.mT @ g)):
            if present:
                state[f"{side}_statistics"].lerp_(product, 1.0 - shampoo_beta)
        if step % k.static("precondition_frequency") == 0:
            for dim, side, present in ((0, "left", left), (1, "right", right)):
                if present:
                    basis, order = refreshed_basis(state[f"{side}_statistics"], state[f"eigenbasis_{side}"], dtype)
                    state[f"eigenbasis_{side}"] = basis
                    state["exp_avg_sq"] = exp_avg_sq = exp_avg_sq.index_select(dim, order)
        return out
