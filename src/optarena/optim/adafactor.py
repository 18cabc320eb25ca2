"""Adafactor, with the constructor and numbers of the fairseq / Hugging Face Transformers version."""

from __future__ import annotations

from typing import Any

import torch

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, SearchSpace
from optarena.spec import LibraryPeer, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import ClipByBlockRms, ScaleByFactoredRms, ScaleByRelativeStep, Transform


class Adafactor(NamedOptimizer):
    """Adafactor: factored second moments (m + n numbers for an m x n matrix) and relative step sizes.

    Update rule::

        beta2_t = 1 - t^decay_rate;  s = g^2 + eps[0]
        >= 2-D (last two dims a matrix):  R = beta2_t R + (1 - beta2_t) mean_cols(s)
                                          C = beta2_t C + (1 - beta2_t) mean_rows(s)
                                          v = (R / mean(R)) outer C
        otherwise:                        v = beta2_t v + (1 - beta2_t) s
        u = g / sqrt(v);  u = u / max(1, RMS(u) / clip_threshold)
        rho_t = min(1e-2, 1 / sqrt(t))  (relative_step; min(1e-6 t, 1 / sqrt(t)) with warmup_init)
                lr                      (relative_step=False)
        alpha_t = rho_t * max(eps[1], RMS(theta))  (scale_parameter; else rho_t)
        beta1 set: m = beta1 * m + (1 - beta1) * alpha_t * u;  else m = alpha_t * u
        theta = theta - weight_decay * alpha_t * theta - m

    The constructor is that of fairseq and Hugging Face Transformers: ``lr=None`` with
    ``relative_step=True``; an ``lr`` needs ``relative_step=False``; ``warmup_init`` needs
    ``relative_step``. With the relative step the param groups hold ``lr=None``: there is
    no learning rate for a scheduler to change (setting it to 0 pauses the updates, as
    ``torch.distributed.checkpoint`` does while it creates a fresh optimizer's state). Complex parameters are not supported (the
    update is not elementwise).
    """

    paper = Paper(
        "Shazeer & Stern",
        2018,
        "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
        "https://arxiv.org/abs/1804.04235",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-4, 1e-1)}, fixed={"relative_step": False})
    """A fixed ``lr``, which needs ``relative_step=False`` (the relative step has nothing to tune)."""

    def __init__(
        self,
        params: Any,
        lr: float | None = None,
        eps: tuple[float, float] = (1e-30, 1e-3),
        clip_threshold: float = 1.0,
        decay_rate: float = -0.8,
        beta1: float | None = None,
        weight_decay: float = 0.0,
        scale_parameter: bool = True,
        relative_step: bool = True,
        warmup_init: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            eps=eps,
            clip_threshold=clip_threshold,
            decay_rate=decay_rate,
            beta1=beta1,
            weight_decay=weight_decay,
            scale_parameter=scale_parameter,
            relative_step=relative_step,
            warmup_init=warmup_init,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByFactoredRms(), ClipByBlockRms(), ScaleByRelativeStep()]

    def check_group(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        # lr=0 pauses the updates in either mode (torch.distributed.checkpoint sets it while it
        # creates the state of a fresh optimizer)
        if group["relative_step"] and group["lr"] is not None and group["lr"] != 0:
            raise ValueError(
                f"{name}: lr={group['lr']!r} cannot be combined with relative_step=True (the relative "
                "step is the step size); pass relative_step=False to use a fixed lr, or lr=None"
            )
        if not group["relative_step"] and group["lr"] is None:
            raise ValueError(f"{name}: relative_step=False needs an lr, got lr=None")
        if group["warmup_init"] and not group["relative_step"]:
            raise ValueError(f"{name}: warmup_init=True requires relative_step=True")


SPECS = (
    Spec(
        "adafactor",
        Adafactor,
        TestPlan(
            configs(
                {},
                ("momentum-decay", {"beta1": 0.9, "weight_decay": 0.1}),
                ("fixed-lr-unscaled", {"relative_step": False, "lr": 1e-2, "scale_parameter": False}),
                (
                    "warmup-clip-decay-rate-eps",
                    {"warmup_init": True, "clip_threshold": 0.5, "decay_rate": -0.6, "eps": (1e-20, 1e-2)},
                ),
            ),
            errors(
                [
                    ({"relative_step": False, "lr": -1.0}, "learning rate: -1.0; allowed range: 0 <= lr (or None)"),
                    ({"lr": 0.01}, "lr=0.01 cannot be combined with relative_step=True"),
                    ({"relative_step": False}, "relative_step=False needs an lr"),
                    (
                        {"relative_step": False, "lr": 0.01, "warmup_init": True},
                        "warmup_init=True requires relative_step=True",
                    ),
                    ({"beta1": 1.0}, "beta1 value: 1.0"),
                    ({"clip_threshold": 0.0}, "clip_threshold value: 0.0; allowed range: 0 < clip_threshold"),
                    ({"decay_rate": 0.5}, "decay_rate value: 0.5; allowed range: decay_rate <= 0"),
                    ({"eps": (1e-30,)}, "eps: (1e-30,)"),
                    ({"nonfinite": "sometimes"}, "nonfinite: 'sometimes'"),
                ]
            ),
            complex=False,
            constant_ops=False,
            scheduled=lambda config: config.get("beta1") is None,
            lr_mode=lambda config: {**config, "relative_step": False, "warmup_init": False},
            descent_lr=1.0,  # with scale_parameter, lr multiplies the parameters' RMS (0 at the start here)
        ),
        peers=(
            TorchPeer(
                "Adafactor",
                lambda hp: {
                    "lr": 1e-2 if hp["relative_step"] else hp["lr"],
                    "beta2_decay": hp["decay_rate"],
                    "d": hp["clip_threshold"],
                    "weight_decay": hp["weight_decay"],
                    "eps": (None, hp["eps"][1]),
                },
                note="torch's lr=1e-2 step min(lr, 1/sqrt(t)) equals the relative step; its eps1 guards differently",
            ),
            LibraryPeer(
                "torch-optimizer",
                "Adafactor",
                lambda hp: {
                    **pick("lr", "clip_threshold", "decay_rate", "beta1", "weight_decay")(hp),
                    **pick("scale_parameter", "relative_step", "warmup_init")(hp),
                    "eps2": hp["eps"],
                },
            ),
            LibraryPeer(
                "pytorch-optimizer",
                "AdaFactor",
                lambda hp: {
                    **pick("lr", "clip_threshold", "decay_rate", "weight_decay")(hp),
                    **pick("scale_parameter", "relative_step", "warmup_init")(hp),
                    "betas": (hp["beta1"], 0.999),
                    "eps1": hp["eps"][0],
                    "eps2": hp["eps"][1],
                    "momentum_dtype": torch.float32,
                },
            ),
        ),
        # statistics from the gradient; the update's RMS for clipping (and the parameter's RMS
        # for the relative step); then the update applied
        second_pass=("param", "grad"),
        third_pass=("grad",),
    ),
)
