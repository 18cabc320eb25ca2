"""Preconditioned sharpness: the top eigenvalues of ``P^-1 H`` for an optimizer's diagonal preconditioner.

An adaptive optimizer steps ``theta <- theta - lr P^-1 m`` with a diagonal ``P`` read from
its state. On a quadratic with ``P`` frozen, its stability is decided by the eigenvalues of
``P^-1 H`` rather than of ``H``; full-batch adaptive methods train with the largest of them
at a threshold set by the learning rate and momentum (Cohen et al. 2022, Adaptive Gradient
Methods at the Edge of Stability, https://arxiv.org/abs/2207.14484). ``P^-1 H`` has the
eigenvalues of the symmetric ``P^-1/2 H P^-1/2``, which Lanczos works on.

``P`` is the preconditioner of the last step taken (the state as the optimizer left it;
``t`` below is that step's count). Supported optimizers, by exact class (optarena's and
torch.optim's of the same name):

- **SGD** (any momentum): ``P = 1``, so this is the plain sharpness. Threshold ``2 / lr``;
  with momentum ``b`` and dampening ``d``, ``(2 + 2b) / ((1 - d) lr)``; with Nesterov
  momentum, ``(2 + 2b) / ((1 + 2b) lr)``.
- **Adam, AdamW, AMSGrad**: ``P = (1 - beta1^t) (sqrt(v / (1 - beta2^t)) + eps)`` with ``v``
  the ``exp_avg_sq`` state (``max_exp_avg_sq`` with amsgrad); the first moment's bias
  correction is folded into ``P``, as in the paper, so that the step is ``lr P^-1 m`` with
  ``m`` the raw moving average. Threshold ``(2 + 2 beta1) / ((1 - beta1) lr)``: 38 / lr for
  beta1 = 0.9.
- **RMSprop**: ``P = sqrt(v) + eps`` with ``v`` the ``square_avg`` state (centered:
  ``square_avg - grad_avg^2``). Threshold ``(2 + 2 momentum) / lr``.
- **Adagrad**: ``P = (sqrt(sum) + eps) (1 + (t - 1) lr_decay)``. Threshold ``2 / lr``.

Each threshold is where a quadratic with curvature ``a`` along an eigenvector of ``P^-1 H``
becomes unstable under the optimizer's linear recurrence (an eigenvalue of the iteration
reaches -1). Weight decay is not part of ``H``: add it to the loss to include it. Other
optimizers (those with non-diagonal or non-stationary preconditioners, wrappers such as
Lookahead) are refused with a TypeError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from optarena.diagnostics.eigen import DEFAULT_MAX_STEPS, DEFAULT_TOL, top_eigenpairs
from optarena.diagnostics.krylov import EigenResult
from optarena.diagnostics.operator import Batch, HessianOperator, LossFn

Group = dict[str, Any]
State = dict[str, Any]


def _step(state: State) -> float:
    return float(state["step"])


def _adam(group: Group, state: State) -> Tensor:
    beta1, beta2 = (float(b) for b in group["betas"])
    t = _step(state)
    second = state["max_exp_avg_sq"] if group.get("amsgrad", False) else state["exp_avg_sq"]
    return (1 - beta1**t) * ((second / (1 - beta2**t)).sqrt() + group["eps"])


def _rmsprop(group: Group, state: State) -> Tensor:
    second = state["square_avg"]
    if group.get("centered", False):
        second = second - state["grad_avg"] ** 2
    return second.sqrt() + group["eps"]


def _adagrad(group: Group, state: State) -> Tensor:
    return (state["sum"].sqrt() + group["eps"]) * (1 + (_step(state) - 1) * group.get("lr_decay", 0.0))


def _sgd_threshold(group: Group) -> float:
    lr, momentum = float(group["lr"]), float(group.get("momentum", 0.0))
    if momentum == 0:
        return 2 / lr
    if group.get("nesterov", False):
        return (2 + 2 * momentum) / ((1 + 2 * momentum) * lr)
    return (2 + 2 * momentum) / ((1 - float(group.get("dampening", 0.0))) * lr)


def _adam_threshold(group: Group) -> float:
    beta1 = float(group["betas"][0])
    return (2 + 2 * beta1) / ((1 - beta1) * float(group["lr"]))


@dataclass(frozen=True)
class PreconditionerRule:
    """How one family of optimizers defines its diagonal preconditioner and its stability threshold."""

    family: str
    diagonal: Callable[[Group, State], Tensor] | None
    """``P`` for one parameter from its group and state; None for the identity."""
    threshold: Callable[[Group], float]
    state_keys: tuple[str, ...]


def _rules() -> dict[type, PreconditionerRule]:
    import optarena

    sgd = PreconditionerRule("SGD", None, _sgd_threshold, ())
    adam = PreconditionerRule("Adam", _adam, _adam_threshold, ("step", "exp_avg_sq"))
    rmsprop = PreconditionerRule(
        "RMSprop", _rmsprop, lambda g: (2 + 2 * float(g.get("momentum", 0.0))) / float(g["lr"]), ("square_avg",)
    )
    adagrad = PreconditionerRule("Adagrad", _adagrad, lambda g: 2 / float(g["lr"]), ("step", "sum"))
    return {
        optarena.SGD: sgd,
        torch.optim.SGD: sgd,
        optarena.Adam: adam,
        optarena.AdamW: adam,
        torch.optim.Adam: adam,
        torch.optim.AdamW: adam,
        optarena.RMSprop: rmsprop,
        torch.optim.RMSprop: rmsprop,
        optarena.Adagrad: adagrad,
        torch.optim.Adagrad: adagrad,
    }


def supported_optimizers() -> list[str]:
    """The optimizer classes whose preconditioner is read, as ``module.Class`` names."""
    return sorted({f"{cls.__module__.split('.')[0]}.{cls.__name__}" for cls in _rules()})


def rule_for(optimizer: torch.optim.Optimizer) -> PreconditionerRule:
    """The rule for ``optimizer``'s exact class; TypeError naming the supported ones otherwise."""
    rule = _rules().get(type(optimizer))
    if rule is None:
        raise TypeError(
            f"no diagonal preconditioner is defined for {type(optimizer).__name__}; supported: "
            f"{', '.join(supported_optimizers())} (see optarena.diagnostics.preconditioned for what P is for each)"
        )
    return rule


def _group_of(optimizer: torch.optim.Optimizer) -> dict[int, Group]:
    return {id(p): group for group in optimizer.param_groups for p in group["params"]}


def diagonal_preconditioner(optimizer: torch.optim.Optimizer, model: nn.Module) -> Tensor | None:
    """``P`` as one flat vector over ``model``'s trainable parameters (``named_parameters()``
    order, as the Hessian operator), or None for SGD (the identity).

    Raises TypeError for an unsupported optimizer, ValueError for a trainable parameter the
    optimizer does not hold, or one without state yet (the optimizer has not stepped).
    """
    rule = rule_for(optimizer)
    if rule.diagonal is None:
        return None
    groups = _group_of(optimizer)
    pieces = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if id(parameter) not in groups:
            raise ValueError(f"parameter {name!r} is not among the optimizer's parameters")
        state = optimizer.state.get(parameter, {})
        missing = [key for key in rule.state_keys if key not in state]
        if missing:
            raise ValueError(
                f"parameter {name!r} has no {', '.join(missing)} in the optimizer's state: {rule.family}'s "
                "preconditioner exists only after its first step"
            )
        diagonal = rule.diagonal(groups[id(parameter)], state)
        pieces.append(diagonal.detach().to(dtype=parameter.dtype, device=parameter.device).reshape(-1))
    return torch.cat(pieces)


def stability_threshold(optimizer: torch.optim.Optimizer) -> float:
    """The largest eigenvalue of ``P^-1 H`` at which the optimizer's step is stable on a quadratic.

    ``2 / lr`` for plain gradient descent; see the module's table for the others. Raises
    ValueError when the param groups disagree (different learning rates or momenta).
    """
    rule = rule_for(optimizer)
    thresholds = {rule.threshold(group) for group in optimizer.param_groups}
    if len(thresholds) != 1:
        listed = ", ".join(f"{t:g}" for t in sorted(thresholds))
        raise ValueError(
            f"the param groups have different stability thresholds ({listed}); measure one group's parameters at a time"
        )
    return thresholds.pop()


class PreconditionedOperator:
    """``v -> P^-1/2 H P^-1/2 v``: symmetric, with the eigenvalues of ``P^-1 H``."""

    def __init__(self, hessian: HessianOperator, diagonal: Tensor) -> None:
        if diagonal.shape != (hessian.numel,):
            raise ValueError(f"the preconditioner must have {hessian.numel} entries, got shape {tuple(diagonal.shape)}")
        if not bool(torch.all(diagonal > 0)):
            raise ValueError("the preconditioner must be positive everywhere")
        self.hessian = hessian
        self.scale = diagonal.to(dtype=hessian.dtype, device=hessian.device).rsqrt()

    numel = property(lambda self: self.hessian.numel)
    dtype = property(lambda self: self.hessian.dtype)
    device = property(lambda self: self.hessian.device)

    def __call__(self, vectors: Tensor) -> Tensor:
        return self.scale * self.hessian(self.scale * vectors)


def preconditioned_eigenpairs(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    k: int = 1,
    *,
    method: str = "lanczos",
    tol: float = DEFAULT_TOL,
    max_steps: int = DEFAULT_MAX_STEPS,
    start: Tensor | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> EigenResult:
    """The top ``k`` eigenpairs of ``P^-1/2 H P^-1/2`` (the eigenvalues of ``P^-1 H``), with
    ``P`` read from ``optimizer``'s state; the other arguments as for
    :func:`~optarena.diagnostics.hessian_eigenpairs`."""
    diagonal = diagonal_preconditioner(optimizer, model)
    operator = HessianOperator(model, loss_fn, batch, chunk_size=chunk_size)
    if diagonal is not None:
        operator = PreconditionedOperator(operator, diagonal)
    return top_eigenpairs(operator, k, method=method, tol=tol, max_steps=max_steps, start=start, seed=seed)


def preconditioned_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    k: int = 1,
    **options: Any,
) -> Tensor:
    """The top ``k`` eigenvalues of ``P^-1 H`` (float64, CPU, descending), ``P`` being
    ``optimizer``'s current diagonal preconditioner; compare the first with
    :func:`stability_threshold`. Options as for :func:`preconditioned_eigenpairs`."""
    return preconditioned_eigenpairs(model, loss_fn, batch, optimizer, k, **options).eigenvalues
