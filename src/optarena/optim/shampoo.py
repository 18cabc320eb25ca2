"""Shampoo: Kronecker-factored AdaGrad on each matrix (in blocks), grafted, with momentum."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, Trace, Transform
from optarena.transforms.shampoo import ScaleByShampoo


class Shampoo(NamedOptimizer):
    """Shampoo: each matrix preconditioned on both sides by inverse roots of its gradient statistics.

    Update rule::

        per block G of at most max_preconditioner_dim x max_preconditioner_dim of each matrix:
        L = L + G G^T;  R = R + G^T G              (beta2 < 1: L = beta2 L + (1 - beta2) G G^T, ...)
        every precondition_frequency steps from start_preconditioning_step:
            L_root = (L + matrix_eps I)^(-1/4);  R_root = (R + matrix_eps I)^(-1/4)   (eigh in matrix_dtype)
        P = L_root G R_root                        (before the first roots: the grafting direction)
        grafting "adagrad": P = P * ||G / (sqrt(sum G^2) + eps_g)||_F / ||P||_F  (per block)
        grafting "adam":    P = P * ||G / (sqrt(v_hat) + eps_g)||_F / ||P||_F,  v = b2 v + (1 - b2) G^2
        b = momentum * b + P  (torch.optim.SGD's buffer; b = P at the first step)
        theta = theta - lr * (b + weight_decay * theta)

    With ``precondition_frequency=1``, ``grafting=None``, ``momentum=0`` and no blocking this is
    Algorithm 1 of Gupta et al. (with ``L_0 = R_0 = matrix_eps I``). Matrix view: a tensor of more
    than two dimensions is ``shape[0] x prod(shape[1:])``; a vector is a ``1 x n`` row, and a side
    of size 1 is not preconditioned (a vector gets full-matrix AdaGrad, ``(R + eps I)^(-1/2)``);
    see :class:`optarena.transforms.shampoo.ScaleByShampoo`. Complex parameters are not supported.
    """

    paper = Paper(
        "Gupta, Koren & Singer",
        2018,
        "Shampoo: Preconditioned Stochastic Tensor Optimization",
        "https://arxiv.org/abs/1802.09568",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-4, 1.0)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        beta2: float = 1.0,
        matrix_eps: float = 1e-6,
        precondition_frequency: int = 10,
        start_preconditioning_step: int = 1,
        max_preconditioner_dim: int = 1024,
        grafting: str | None = "adagrad",
        grafting_eps: float = 1e-8,
        grafting_beta2: float = 0.999,
        matrix_dtype: str = "float64",
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            beta2=beta2,
            matrix_eps=matrix_eps,
            precondition_frequency=precondition_frequency,
            start_preconditioning_step=start_preconditioning_step,
            max_preconditioner_dim=max_preconditioner_dim,
            grafting=grafting,
            grafting_eps=grafting_eps,
            grafting_beta2=grafting_beta2,
            matrix_dtype=matrix_dtype,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByShampoo(), Trace(), AddDecayedWeights(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "shampoo",
        Shampoo,
        TestPlan(
            configs(
                {},
                ("every-step-no-grafting", {"precondition_frequency": 1, "grafting": None}),
                (
                    "blocks-adam-grafting-momentum-decay",
                    {"max_preconditioner_dim": 3, "grafting": "adam", "momentum": 0.9, "weight_decay": 0.01},
                ),
                (
                    "averaged-delayed-blocks",
                    {
                        "beta2": 0.9,
                        "matrix_eps": 1e-6,
                        "start_preconditioning_step": 3,
                        "precondition_frequency": 4,
                        "grafting": "adagrad",
                        "grafting_eps": 1e-6,
                        "max_preconditioner_dim": 4,
                    },
                ),
            ),
            errors(
                COMMON_ERRORS,
                [
                    ({"momentum": -0.5}, "momentum value: -0.5"),
                    ({"beta2": 0.0}, "beta2 value: 0.0; allowed range: 0 < beta2 <= 1"),
                    ({"matrix_eps": 0.0}, "matrix_eps value: 0.0"),
                    ({"precondition_frequency": 0}, "precondition_frequency: 0"),
                    ({"max_preconditioner_dim": 2.5}, "max_preconditioner_dim: 2.5"),
                    ({"start_preconditioning_step": 0}, "start_preconditioning_step: 0"),
                    ({"grafting": "sgd"}, "grafting: 'sgd'"),
                    ({"matrix_dtype": "float16"}, "matrix_dtype: 'float16'"),
                ],
            ),
            complex=False,
            constant_ops=False,
            descent_lr=0.1,
            fusable=False,  # matrix work steps eagerly; its kernels compiled with fused=True
            reference_state_loads=False,
        ),
        peers=(
            LibraryPeer(
                "pytorch-optimizer",
                "Shampoo",
                lambda hp: {
                    **pick("lr", "momentum", "weight_decay", "matrix_eps")(hp),
                    "preconditioning_compute_steps": hp["precondition_frequency"],
                },
                "Gupta et al.'s Shampoo on every tensor dimension, without grafting or blocks",
            ),
        ),
        second_pass=("param", "grad"),
    ),
)
