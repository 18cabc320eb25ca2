"""SOAP: Adam in the eigenbasis of Shampoo's statistics, the basis refreshed by QR power iteration."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, Transform
from optarena.transforms.soap import ScaleBySoap


class SOAP(NamedOptimizer):
    """SOAP: Adam's moments in the eigenbasis of Shampoo's left and right statistics.

    Update rule::

        step 1: L = (1 - b) G G^T, R = (1 - b) G^T G; Q_L, Q_R = their eigenvectors; no update
        then, with s = t - 1:
            G' = Q_L^T G Q_R;  M = b1 M + (1 - b1) G;  V = b2 V + (1 - b2) G'^2
            N = Q_L ((Q_L^T M Q_R) / (sqrt(V) + eps)) Q_R^T * sqrt(1 - b2^s) / (1 - b1^s)
            L = b L + (1 - b) G G^T;  R = b R + (1 - b) G^T G   (b = shampoo_beta, None: b2)
            every precondition_frequency steps: Q <- QR(L Q) (after sorting by diag(Q^T L Q))
        theta = theta - lr * (N + weight_decay * theta)

    Defaults are the authors' (``lr=3e-3``, ``betas=(0.95, 0.95)``, ``precondition_frequency=10``,
    eigendecompositions and QR in float32); ``max_preconditioner_dim`` is their ``max_precond_dim``.
    A tensor of more than two dimensions is the matrix ``shape[0] x prod(shape[1:])`` (the authors'
    ``merge_dims``-like view); a vector is a ``1 x n`` row, rotated only with ``precondition_1d``.
    See docs/fidelity.md for where the authors' code and other libraries differ. Complex
    parameters are not supported.
    """

    paper = Paper(
        "Vyas, Morwani, Zhao, Shapira, Brandfonbrener, Janson & Kakade",
        2024,
        "SOAP: Improving and Stabilizing Shampoo using Adam",
        "https://arxiv.org/abs/2409.11321",
    )
    search_space = SearchSpace(
        {"lr": LogUniform(1e-4, 1e-1), "betas[0]": OneMinusLogUniform(0.5, 0.99), "weight_decay": LogUniform(1e-4, 0.5)}
    )

    def __init__(
        self,
        params: Any,
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_preconditioner_dim: int = 10000,
        precondition_1d: bool = False,
        correct_bias: bool = True,
        matrix_dtype: str = "float32",
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
            betas=betas,
            shampoo_beta=shampoo_beta,
            eps=eps,
            weight_decay=weight_decay,
            precondition_frequency=precondition_frequency,
            max_preconditioner_dim=max_preconditioner_dim,
            precondition_1d=precondition_1d,
            correct_bias=correct_bias,
            matrix_dtype=matrix_dtype,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleBySoap(), AddDecayedWeights(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "soap",
        SOAP,
        TestPlan(
            configs(
                ("float64", {"matrix_dtype": "float64"}),
                (
                    "every-step-1d-no-decay",
                    {
                        "precondition_frequency": 1,
                        "precondition_1d": True,
                        "matrix_dtype": "float64",
                        "weight_decay": 0.0,
                    },
                ),
                (
                    "betas-shampoo-beta-blocks-no-bias-correction",
                    {
                        "betas": (0.9, 0.99),
                        "shampoo_beta": 0.8,
                        "eps": 1e-6,
                        "max_preconditioner_dim": 4,
                        "precondition_frequency": 3,
                        "correct_bias": False,
                        "matrix_dtype": "float64",
                    },
                ),
            ),
            errors(
                COMMON_ERRORS,
                BETA_ERRORS,
                [
                    ({"shampoo_beta": 1.0}, "shampoo_beta value: 1.0"),
                    ({"precondition_frequency": 0}, "precondition_frequency: 0"),
                    ({"weight_decay": -0.1}, "weight_decay value: -0.1"),
                    ({"precondition_1d": 1}, "precondition_1d: 1"),
                ],
            ),
            complex=False,
            constant_ops=False,
            descent_lr=0.05,
            fusable=False,  # matrix work steps eagerly; its kernels compiled with fused=True
            reference_state_loads=False,
            continuous=False,
        ),
        peers=(
            LibraryPeer(
                "pytorch-optimizer",
                "SOAP",
                lambda hp: {
                    **pick("lr", "betas", "shampoo_beta", "eps", "weight_decay", "precondition_frequency")(hp),
                    **pick("precondition_1d", "correct_bias")(hp),
                    "max_precondition_dim": hp["max_preconditioner_dim"],
                },
                "the authors' code: first moment kept in the eigenbasis (not rotated with it), decay after the step",
            ),
            LibraryPeer(
                "heavyball",
                "SOAP",
                lambda hp: {
                    **pick("lr", "betas", "eps", "weight_decay", "precondition_frequency")(hp),
                    "shampoo_beta": hp["shampoo_beta"] if hp["shampoo_beta"] is not None else hp["betas"][1],
                    "max_precond_dim": hp["max_preconditioner_dim"],
                    "precondition_1d": hp["precondition_1d"],
                },
                "heavyball's SOAP (compiled, its own step schedule and defaults)",
            ),
        ),
        second_pass=("param", "grad", "state"),
    ),
)
