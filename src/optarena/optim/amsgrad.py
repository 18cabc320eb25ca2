"""AMSGrad: Adam with the running maximum of the second moment."""

from __future__ import annotations

from typing import Any

from optarena.optim.adam import Adam
from optarena.optim.base import Paper


class AMSGrad(Adam):
    """AMSGrad: Adam whose denominator never decreases (``Adam(amsgrad=True)``).

    Update rule::

        m, v as in Adam;  v_max = max(v_max, v)
        theta = theta - lr * (m / (1 - beta1^t)) / (sqrt(v_max / (1 - beta2^t)) + eps)

    The bias correction of ``v_max`` follows torch.optim (the maximum of the un-corrected
    ``v``, then corrected with ``1 - beta2^t``); the paper's algorithm has no bias correction.
    """

    paper = Paper(
        "Reddi, Kale & Kumar", 2018, "On the Convergence of Adam and Beyond", "https://arxiv.org/abs/1904.09237"
    )

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = True,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )
