"""Muon for a whole model: hidden matrices take Muon, everything else AdamW, in one optimizer."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from optarena.optim.base import ChainOptimizer, NamedOptimizer, Paper
from optarena.optim.muon import MUON_ERRORS
from optarena.optim.routing import Partition, partition
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, Spec, TestPlan, configs, errors
from optarena.transforms import AddDecayedWeights, ScaleByAdam, ScaleByLearningRate
from optarena.transforms.orthogonalize import NS_COEFFICIENTS, Orthogonalize, TraceAverage

EMBEDDING_OR_HEAD = re.compile(r"(^|\.)(embed\w*|\w*embeddings?|wte|wpe|lm_head|head|classifier|output_layer)(\.|$)")
"""A dotted name with one of these parts is an embedding or an output head (GPT-2's ``wte``/``wpe``,
``lm_head``, ``tok_embeddings``, ``classifier``, ...)."""

ROUTE = "route"
"""The param-group key that says which chain steps a group: ``"muon"`` or ``"adamw"``."""


def is_hidden_matrix(name: str | None, param: Tensor) -> bool:
    """Muon's share of a model: tensors of two or more dimensions (matrices, convolution filters)
    whose name marks no embedding or output head (:data:`EMBEDDING_OR_HEAD`). Biases, gains and
    other vectors, embeddings and heads are AdamW's. Without a name (parameters given without
    ``named_parameters()``) the shape alone decides."""
    return param.dim() >= 2 and not (name and EMBEDDING_OR_HEAD.search(name.lower()))


class MuonOrAdamW:
    """The routing rule: ``"muon"`` where ``hidden(name, param)`` holds, else ``"adamw"``
    (picklable, so the optimizer is)."""

    def __init__(self, hidden: Callable[[str | None, Tensor], bool] = is_hidden_matrix):
        if not callable(hidden):
            raise TypeError(f"MuonWithAdamW: hidden must be a function (name, param) -> bool, got {hidden!r}")
        self.hidden = hidden
        self.__name__ = getattr(hidden, "__name__", "hidden")

    def __call__(self, name: str | None, param: Tensor) -> str:
        return "muon" if self.hidden(name, param) else "adamw"


class MuonWithAdamW(NamedOptimizer):
    """Muon on a model's hidden matrices and AdamW on its embeddings, heads, biases and gains.

    Update rule::

        hidden(name, p):  Muon's step (optarena.Muon), r = 0.2 sqrt(max(rows, cols)) by default
        otherwise:        AdamW's step with betas and adamw_eps
        both:             theta = theta - lr * (u + weight_decay * theta)

    One optimizer whose parameters are routed by :func:`optarena.partition`:
    ``MuonWithAdamW(model.named_parameters(), lr=1e-3)`` (or the model itself) gives Muon the
    tensors for which ``hidden(name, param)`` holds (default :func:`is_hidden_matrix`: two or more
    dimensions and a name without an embedding or head part such as ``wte``, ``embed_tokens`` or
    ``lm_head``) and AdamW the others. Both read the same ``lr`` and ``weight_decay``, as in Liu et
    al.'s recipe: ``adjust_lr_fn="match_rms_adamw"`` (the default here) scales each matrix's
    orthogonalised update to the RMS of an AdamW update, so one learning rate and one schedule
    serve both, and a scheduler drives both. Param groups set them per group as usual. Without
    names (plain tensors) the shape alone decides. Complex parameters are not supported.
    """

    paper = Paper(
        "Liu et al.",
        2025,
        "Muon is Scalable for LLM Training",
        "https://arxiv.org/abs/2502.16982",
    )
    search_space = SearchSpace(
        {"lr": LogUniform(1e-5, 1e-2), "momentum": OneMinusLogUniform(0.8, 0.99), "weight_decay": LogUniform(1e-4, 0.5)}
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
        adjust_lr_fn: str | None = "match_rms_adamw",
        betas: tuple[float, float] = (0.9, 0.95),
        adamw_eps: float = 1e-8,
        *,
        hidden: Callable[[str | None, Tensor], bool] | None = None,
        ns_dtype: str = "bfloat16",
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        if isinstance(params, nn.Module):
            params = params.named_parameters()
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=ns_coefficients,
            eps=eps,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            betas=betas,
            adamw_eps=adamw_eps,
            ns_dtype=ns_dtype,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )
        rule = MuonOrAdamW() if hidden is None else MuonOrAdamW(hidden)
        ChainOptimizer.__init__(self, params, self.routed(rule), defaults)

    @classmethod
    def defaults_from_signature(cls) -> dict[str, Any]:
        """The hyperparameters' defaults: ``hidden`` is the routing rule, a structural choice made at
        construction (the docstring describes it), not a param-group key."""
        return {k: v for k, v in super().defaults_from_signature().items() if k != "hidden"}

    @classmethod
    def chain(cls) -> Partition:
        return cls.routed(MuonOrAdamW())

    @staticmethod
    def routed(rule: MuonOrAdamW) -> Partition:
        return partition(
            rule,
            {
                "muon": [TraceAverage(), Orthogonalize(), AddDecayedWeights(), ScaleByLearningRate()],
                "adamw": [ScaleByAdam(amsgrad=False).bind(eps="adamw_eps"), AddDecayedWeights(), ScaleByLearningRate()],
            },
        )


SPECS = (
    Spec(
        "muon_adamw",
        MuonWithAdamW,
        TestPlan(
            configs(
                ("float64", {"ns_dtype": "float64"}),
                {},
                (
                    "original-no-nesterov-betas-eps-decay",
                    {
                        "lr": 0.02,
                        "momentum": 0.9,
                        "nesterov": False,
                        "weight_decay": 0.01,
                        "ns_dtype": "float64",
                        "adjust_lr_fn": "original",
                        "betas": (0.8, 0.99),
                        "adamw_eps": 1e-6,
                    },
                ),
            ),
            errors(
                COMMON_ERRORS,
                MUON_ERRORS,
                [
                    ({"betas": (1.0, 0.999)}, "beta parameter at index 0: 1.0"),
                    ({"adamw_eps": -1.0}, "adamw_eps"),
                    ({"weight_decay": -0.1}, "weight_decay value: -0.1"),
                ],
            ),
            complex=False,
            constant_ops=False,
            descent_lr=0.05,
            fusable=False,  # Muon's matrices step eagerly; AdamW's share follows the usual rules (tests/test_reference_matrix.py)
            reference_state_loads=False,
        ),
        second_pass=("param", "state"),
    ),
)
