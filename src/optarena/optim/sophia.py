"""Sophia: a clipped diagonal-Hessian method, its estimate refreshed every k steps through a closure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from optarena.hyperparameters import Choice, Hyper
from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, Spec, TestPlan, configs, errors
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, ScaleBySophia, sharding
from optarena.transforms.base import Kernel, Transform, scalars
from optarena.transforms.lookahead import PositiveInteger
from optarena.transforms.ops import ListOps

ESTIMATORS = ("gnb", "hutchinson")


class SophiaEstimate(Transform):
    """Declares the settings of Sophia's Hessian estimate (the estimate itself runs in
    :meth:`Sophia.step`, outside the chain); it changes no update."""

    hyperparameters = {
        "estimator": Hyper(
            "gnb",
            Choice(ESTIMATORS),
            "'gnb' (Gauss-Newton-Bartlett: batch_size * g^2 of a loss on sampled labels) or "
            "'hutchinson' (v * (H v), v random signs)",
        ),
        "update_period": Hyper(10, PositiveInteger(), "refresh the Hessian estimate every this many steps"),
        "batch_size": Hyper(1, PositiveInteger(), "B in the Gauss-Newton-Bartlett estimate B * g^2"),
    }

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        return updates


def gauss_newton_bartlett(
    loss: Tensor, params: list[Tensor], batch_size: int, everything: list[Tensor]
) -> list[Tensor]:
    """``B * g * g`` with ``g`` the gradient of ``loss`` (the mean loss over ``B`` labels sampled
    from the model's own predictions), the estimate of Liu et al.'s Algorithm 2.

    ``g`` comes from ``loss.backward()``, so data-parallel and sharded wrappers (DDP, FSDP2)
    average and place it as they do the training gradient; the gradients of ``everything``
    (the optimizer's parameters) are set aside before and put back after.
    """
    saved = [p.grad for p in everything]
    for p in everything:
        p.grad = None
    try:
        loss.backward()  # type: ignore[no-untyped-call]  # Tensor.backward has no annotations in torch
        return [torch.zeros_like(p) if p.grad is None else p.grad * p.grad * batch_size for p in params]
    finally:
        for p, grad in zip(everything, saved):
            p.grad = grad


def hutchinson(loss: Tensor, params: list[Tensor]) -> list[Tensor]:
    """``v * (H v)`` with ``v`` of random signs (Rademacher; torch's global generator): an unbiased
    estimate of the Hessian's diagonal (Liu et al.'s Algorithm 1, optax's estimator)."""
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    pairs = [(p, g) for p, g in zip(params, grads) if g is not None and g.requires_grad]
    probes = [torch.randint(0, 2, p.shape, device=p.device).to(p.dtype).mul_(2).sub_(1) for p, _ in pairs]
    products = torch.autograd.grad([g for _, g in pairs], [p for p, _ in pairs], grad_outputs=probes, allow_unused=True)
    found = {id(p): (v, hv) for (p, _), v, hv in zip(pairs, probes, products)}
    out = []
    for p in params:
        pair = found.get(id(p))
        out.append(torch.zeros_like(p) if pair is None or pair[1] is None else (pair[1] * pair[0]).detach())
    return out


class Sophia(NamedOptimizer):
    """Sophia: momentum divided by a diagonal Hessian estimate, clipped entry by entry.

    Update rule::

        (t: the parameter's step; h: the Hessian estimate, 0 at first)
        m = beta1 * m + (1 - beta1) * g           (m / (1 - beta1^t) with bias_correction)
        theta = theta - lr * (clip(m / max(rho * h, eps), -1, 1) + weight_decay * theta)
        at steps 1, k+1, 2k+1, ... (k = update_period), after the update:
            h = beta2 * h + (1 - beta2) * h_sample

    ``h_sample`` comes from ``step(closure, hessian_closure=...)``: ``hessian_closure()``
    returns a loss at the current parameters (with its graph, no ``backward``); with
    ``estimator="gnb"`` the mean loss over ``batch_size`` labels sampled from the model's own
    outputs, and ``h_sample = batch_size * grad^2``; with ``"hutchinson"`` the training loss,
    and ``h_sample = v * (H v)`` for random signs ``v`` (torch's global generator). It is
    called only on those steps (``refresh_due`` says whether the next step is one); without
    it the estimate is not refreshed. The Gauss-Newton-Bartlett gradient comes from
    ``loss.backward()`` (the training gradients are set aside and put back), so DDP and FSDP2
    average and shard it as they do the training gradient; Hutchinson's products need second
    derivatives and are refused for sharded (``DTensor``) parameters. Defaults are the authors' SophiaG (``rho`` is their
    ``rho * bs`` when ``batch_size`` folds ``bs`` into the estimate).
    """

    paper = Paper(
        "Liu, Li, Hall, Liang & Ma",
        2023,
        "Sophia: A Scalable Stochastic Second-order Optimizer for Language Model Pre-training",
        "https://arxiv.org/abs/2305.14342",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "rho": LogUniform(1e-3, 1.0)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.965, 0.99),
        rho: float = 0.04,
        weight_decay: float = 0.1,
        *,
        estimator: str = "gnb",
        update_period: int = 10,
        batch_size: int = 1,
        eps: float = 1e-15,
        bias_correction: bool = False,
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
            rho=rho,
            weight_decay=weight_decay,
            estimator=estimator,
            update_period=update_period,
            batch_size=batch_size,
            eps=eps,
            bias_correction=bias_correction,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [SophiaEstimate(), ScaleBySophia(), AddDecayedWeights(), ScaleByLearningRate()]

    def _steps_before(self, params: list[Tensor]) -> list[int]:
        """Each parameter's step count before this step (0 for a new one), read in one transfer."""
        steps = [self.state.get(p, {}).get("step") for p in params]
        known = [s for s in steps if s is not None]
        values = iter(scalars(known))
        return [0 if s is None else round(next(values)) for s in steps]

    def _due(self, group: dict[str, Any], with_grad: bool) -> tuple[list[Tensor], list[int]]:
        """The group's parameters whose next step refreshes the estimate, and their step counts."""
        params = [p for p in group["params"] if p.grad is not None or not with_grad]
        period = int(group["update_period"])
        pairs = [(p, t) for p, t in zip(params, self._steps_before(params)) if t % period == 0]
        return [p for p, _ in pairs], [t for _, t in pairs]

    @property
    def refresh_due(self) -> bool:
        """Whether the next step refreshes the Hessian estimate of some parameter (its step
        count, before the step, is a multiple of ``update_period``)."""
        return any(self._due(group, with_grad=False)[0] for group in self.param_groups)

    def step(self, closure: Any = None, hessian_closure: Callable[[], Tensor] | None = None) -> Any:
        """One update; on refresh steps ``hessian_closure`` feeds the Hessian estimate (see the class)."""
        self._check_before_step()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        due: dict[int, tuple[list[Tensor], list[int]]] = {}
        if hessian_closure is not None:
            for group in self.param_groups:
                chosen, before = self._due(group, with_grad=True)
                if chosen:
                    due[id(group)] = (chosen, before)
        samples = self._samples(due, hessian_closure) if due and hessian_closure is not None else {}
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            self._step(None)
            if samples:
                self._refresh(due, samples)
        return loss

    def _samples(
        self, due: dict[int, tuple[list[Tensor], list[int]]], hessian_closure: Callable[[], Tensor]
    ) -> dict[int, list[Tensor]]:
        """This step's Hessian samples per group, at the parameters before the update."""
        with torch.enable_grad():
            loss = hessian_closure()
            if not isinstance(loss, Tensor) or loss.numel() != 1 or not loss.requires_grad:
                raise TypeError(
                    f"{type(self).__name__}: hessian_closure must return the loss as a one-element tensor "
                    f"that requires grad (no backward), got {loss!r}"
                )
            groups = {id(g): g for g in self.param_groups}
            out = {}
            for index, (key, (params, _)) in enumerate(due.items()):
                if index:  # the graph of the previous group's estimate is freed
                    loss = hessian_closure()
                group = groups[key]
                if group["estimator"] == "gnb":
                    everything = [p for g in self.param_groups for p in g["params"]]
                    out[key] = gauss_newton_bartlett(loss, params, int(group["batch_size"]), everything)
                else:
                    sharded = next((p for p in params if sharding.is_sharded(p)), None)
                    if sharded is not None:
                        raise ValueError(
                            f"{type(self).__name__}: estimator='hutchinson' needs second derivatives through "
                            "the parameters, which sharded parameters (DTensor: FSDP2, tensor parallelism) do not "
                            "give here; use estimator='gnb'. Nothing was changed."
                        )
                    out[key] = hutchinson(loss, params)
        return out

    @torch.no_grad()
    def _refresh(self, due: dict[int, tuple[list[Tensor], list[int]]], samples: dict[int, list[Tensor]]) -> None:
        """``h = beta2 h + (1 - beta2) h_sample`` for the parameters that stepped on a refresh step."""
        for group in self.param_groups:
            if id(group) not in samples:
                continue
            beta2 = float(group["betas"][1])
            params, before = due[id(group)]
            after = self._steps_before(params)
            pairs = [
                (self.state[p]["hessian"], sample)
                for p, step, now, sample in zip(params, before, after, samples[id(group)])
                if now == step + 1  # it stepped (not skipped for a non-finite gradient)
            ]
            for sharded in (False, True):  # multi-tensor operations take plain tensors or DTensors, not both
                chosen = [(h, s) for h, s in pairs if sharding.is_sharded(h) == sharded]
                if chosen:
                    hessians = [h for h, _ in chosen]
                    torch._foreach_mul_(hessians, beta2)
                    torch._foreach_add_(hessians, [s.to(h.dtype) for h, s in chosen], alpha=1.0 - beta2)


SPECS = (
    Spec(
        "sophia",
        Sophia,
        TestPlan(
            configs(
                {},
                ("lr-betas-rho-no-decay", {"lr": 1e-3, "betas": (0.9, 0.95), "rho": 0.1, "weight_decay": 0.0}),
                ("batch-update-period", {"batch_size": 8, "update_period": 3}),
            ),
            errors(
                COMMON_ERRORS,
                [
                    ({"rho": 0.0}, "rho value: 0.0; allowed range: 0 < rho"),
                    ({"update_period": 0}, "update_period: 0"),
                    ({"estimator": "exact"}, "estimator: 'exact'"),
                ],
            ),
            reference_state_loads=False,  # its groups hold capturable
        ),
    ),
)
