"""Muon, as torch.optim.Muon: momentum, Newton-Schulz orthogonalisation, decoupled weight decay."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, Transform
from optarena.transforms.orthogonalize import NS_COEFFICIENTS, Orthogonalize, TraceAverage


class Muon(NamedOptimizer):
    """Muon: momentum orthogonalised per matrix by Newton-Schulz iterations.

    Update rule::

        b = momentum * b + (1 - momentum) * g
        u = (1 - momentum) * g + momentum * b      (nesterov; else u = b)
        O = NS(u): ns_steps quintic iterations X <- a X + (b X X^T + c (X X^T)^2) X in ns_dtype,
            from X = u / max(||u||_F, eps) (on the wide orientation), approximating U V^T of u = U S V^T
        theta = theta - lr * (r * O + weight_decay * theta)
        r = sqrt(max(1, rows / cols)) (adjust_lr_fn None or "original"), 0.2 sqrt(max(rows, cols)) ("match_rms_adamw")

    The signature and defaults are ``torch.optim.Muon``'s (torch 2.13), and in bfloat16 (the
    default ``ns_dtype``) the iterations are torch's operations in torch's order. ``ns_dtype``
    ("float32", "float64") runs them in higher precision. Matrix view: a 2-D parameter is itself;
    one of more dimensions is ``shape[0] x prod(shape[1:])`` (a convolution's output channels
    against its fan-in, as Jordan et al.'s code); a 1-D parameter is a ``1 x n`` row, whose
    orthogonal factor is ``g / ||g||`` (torch.optim.Muon refuses anything but 2-D). Muon is meant
    for hidden matrices: :class:`optarena.MuonWithAdamW` gives embeddings, output heads, biases
    and gains to AdamW. Complex parameters are not supported. Signal (``record_signals``):
    ``update_rms``, the RMS of each matrix's orthogonalised update ``r * O``.
    """

    paper = Paper(
        "Jordan et al.; Liu et al.",
        2024,
        "Muon: An optimizer for hidden layers in neural networks; Muon is Scalable for LLM Training",
        "https://arxiv.org/abs/2502.16982",
    )
    search_space = SearchSpace(
        {"lr": LogUniform(1e-4, 1e-1), "momentum": OneMinusLogUniform(0.8, 0.99), "weight_decay": LogUniform(1e-4, 0.5)}
    )

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        *,
        ns_dtype: str = "bfloat16",
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=ns_coefficients,
            eps=eps,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            ns_dtype=ns_dtype,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [TraceAverage(), Orthogonalize(), AddDecayedWeights(), ScaleByLearningRate()]


MUON_ERRORS = (
    ({"momentum": -0.5}, "momentum value: -0.5"),
    ({"adjust_lr_fn": "arbitrary"}, "Adjust learning rate function arbitrary is not supported"),
    ({"ns_steps": 100}, "ns_steps: 100; allowed: ns_steps an integer, 0 <= ns_steps <= 99"),
    ({"ns_dtype": "float16"}, "ns_dtype: 'float16'"),
    ({"ns_coefficients": (1.0, 2.0)}, "ns_coefficients: (1.0, 2.0)"),
)
"""Bad Muon settings (also those of :class:`optarena.MuonWithAdamW`)."""

SPECS = (
    Spec(
        "muon",
        Muon,
        TestPlan(
            configs(
                ("float64", {"ns_dtype": "float64"}),
                {},
                (
                    "no-nesterov-decay",
                    {"lr": 0.02, "momentum": 0.9, "nesterov": False, "weight_decay": 0.01, "ns_dtype": "float64"},
                ),
                (
                    "match-rms-steps-coefficients",
                    {
                        "adjust_lr_fn": "match_rms_adamw",
                        "ns_steps": 6,
                        "ns_coefficients": (3.4, -4.7, 2.0),
                        "ns_dtype": "float64",
                    },
                ),
                ("eps-original", {"lr": 0.01, "eps": 1e-5, "adjust_lr_fn": "original", "ns_dtype": "float64"}),
            ),
            errors(COMMON_ERRORS, MUON_ERRORS),
            complex=False,
            constant_ops=False,
            descent_lr=0.05,
            fusable=False,  # matrix work steps eagerly; its kernels compiled with fused=True: tests/test_reference_matrix.py
            reference_state_loads=False,
        ),
        peers=(
            TorchPeer(
                "Muon",
                pick(
                    "lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps", "adjust_lr_fn"
                ),
                modes=("default",),
                note="every tensor through its matrix view (torch's Muon takes matrices only)",
                matrix_views=True,
            ),
        ),
        second_pass=("param", "state"),  # the orthogonalised momentum is applied after its norm
    ),
)
