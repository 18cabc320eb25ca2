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
- **NAdam** (and NAdamW): ``P = sqrt(v / (1 - beta2^t)) + eps``, Adam's diagonal without
  the first moment's correction; the step is ``lr P^-1 (c_g g + c_m m)`` with the momentum
  schedule's weights ``c_g = (1 - mu_t) / (1 - mu_1...mu_t)`` and
  ``c_m = mu_{t+1} / (1 - mu_1...mu_{t+1})``. Threshold
  ``(2 + 2 beta1) / (lr (c_g (1 + beta1) + c_m (1 - beta1)))``, that of the last step: it
  changes along the schedule (with the defaults 3.49 / lr at step 10, 3.93 / lr at step 1,000,
  tending to 13.6 / lr as ``mu_t`` reaches beta1 = 0.9).
- **RAdam**: rectified steps (``rho_t > 5``) use Adam's moments scaled by the rectification
  ``r_t``: ``P = (1 - beta1^t) (sqrt(v) + eps) / (r_t sqrt(1 - beta2^t))``; the steps before
  are momentum without preconditioning, ``lr m / (1 - beta1^t)``: ``P = 1 - beta1^t``. Both
  are steps ``lr P^-1 m`` on the moving average ``m``, so the threshold is Adam's,
  ``(2 + 2 beta1) / ((1 - beta1) lr)``, throughout; ``P`` jumps when rectification starts.
- **Adafactor** (optarena's): ``P = sqrt(v_hat) / s``, with ``v_hat`` the second moment (the
  outer product ``(R / mean(R)) C`` of the factored row and column statistics for a matrix)
  and ``s = max(eps2, RMS(theta))`` with ``scale_parameter`` (else 1) at the current
  parameters. The step is ``rho_t P^-1 g`` (with ``beta1``, a moving average of it), so the
  threshold is ``2 / rho_t`` (``(2 + 2 beta1) / ((1 - beta1) rho_t)``), ``rho_t`` the relative
  step of the last step or the fixed ``lr``. Update clipping is taken as inactive: while it
  acts (``RMS(u) > clip_threshold``), the step's length is capped whatever the gradient and
  the linear analysis behind the threshold does not apply.
- **RMSprop**: ``P = sqrt(v) + eps`` with ``v`` the ``square_avg`` state (centered:
  ``square_avg - grad_avg^2``). Threshold ``(2 + 2 momentum) / lr``.
- **Adagrad**: ``P = (sqrt(sum) + eps) (1 + (t - 1) lr_decay)``. Threshold ``2 / lr``.

Each threshold is where a quadratic with curvature ``a`` along an eigenvector of ``P^-1 H``
becomes unstable under the optimizer's linear recurrence (an eigenvalue of the iteration
reaches -1). Weight decay is not part of ``H``: add it to the loss to include it. Other
optimizers are refused with a TypeError: LAMB (its trust ratio normalises each layer's
step, which is then not linear in the gradient), torch.optim.Adafactor (a different
algorithm), those with non-diagonal preconditioners, and wrappers such as Lookahead.
"""

from __future__ import annotations

import math
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


def _rate(lr: Any) -> float:
    """The step size a threshold divides by; a ValueError for 0 (no step is then unstable) or None."""
    if lr is None or float(lr) <= 0:
        raise ValueError(f"the learning rate is {lr!r}: a stability threshold needs a step size > 0")
    return float(lr)


def _adam(group: Group, state: State, parameter: Tensor) -> Tensor:
    beta1, beta2 = (float(b) for b in group["betas"])
    t = _step(state)
    second = state["max_exp_avg_sq"] if group.get("amsgrad", False) else state["exp_avg_sq"]
    return (1 - beta1**t) * ((second / (1 - beta2**t)).sqrt() + group["eps"])


def _nadam(group: Group, state: State, parameter: Tensor) -> Tensor:
    beta2 = float(group["betas"][1])
    return (state["exp_avg_sq"] / (1 - beta2 ** _step(state))).sqrt() + group["eps"]


def _radam(group: Group, state: State, parameter: Tensor) -> Tensor:
    from optarena.transforms.adam import ScaleByRadam

    beta1, beta2 = (float(b) for b in group["betas"])
    t = _step(state)
    (rectification,) = ScaleByRadam.rectifications(beta2, [t], float(group.get("sma_threshold", 5.0)))
    if rectification == 0:  # the plain momentum step: m / (1 - beta1^t)
        return torch.full_like(state["exp_avg_sq"], 1 - beta1**t)
    return (1 - beta1**t) * (state["exp_avg_sq"].sqrt() + group["eps"]) / (rectification * math.sqrt(1 - beta2**t))


def _adafactor(group: Group, state: State, parameter: Tensor) -> Tensor:
    if "exp_avg_sq" in state:
        diagonal = state["exp_avg_sq"].sqrt()
    else:  # the row and column factors' roots multiplied, as the step does: their product can underflow
        rows, cols = state["exp_avg_sq_row"], state["exp_avg_sq_col"]
        diagonal = (rows / rows.mean(dim=-1, keepdim=True)).sqrt().unsqueeze(-1) * cols.sqrt().unsqueeze(-2)
    if group["scale_parameter"]:
        rms = parameter.detach().norm() / math.sqrt(max(parameter.numel(), 1))
        diagonal = diagonal / max(float(group["eps"][1]), float(rms))
    return diagonal


def _rmsprop(group: Group, state: State, parameter: Tensor) -> Tensor:
    second = state["square_avg"]
    if group.get("centered", False):
        second = second - state["grad_avg"] ** 2
    return second.sqrt() + group["eps"]


def _adagrad(group: Group, state: State, parameter: Tensor) -> Tensor:
    return (state["sum"].sqrt() + group["eps"]) * (1 + (_step(state) - 1) * group.get("lr_decay", 0.0))


def _average_threshold(beta: float, lr: float) -> float:
    """``(2 + 2 beta) / ((1 - beta) lr)``: the step ``lr P^-1 m`` with ``m`` a moving average of gradients."""
    return (2 + 2 * beta) / ((1 - beta) * lr)


def _sgd_threshold(group: Group, state: State | None) -> float:
    lr, momentum = _rate(group["lr"]), float(group.get("momentum", 0.0))
    if momentum == 0:
        return 2 / lr
    if group.get("nesterov", False):
        return (2 + 2 * momentum) / ((1 + 2 * momentum) * lr)
    return (2 + 2 * momentum) / ((1 - float(group.get("dampening", 0.0))) * lr)


def _adam_threshold(group: Group, state: State | None) -> float:
    return _average_threshold(float(group["betas"][0]), _rate(group["lr"]))


def nadam_weights(group: Group, state: State) -> tuple[float, float]:
    """NAdam's weights ``(c_g, c_m)`` of the gradient and the moving average in its last step,
    ``lr P^-1 (c_g g + c_m m)``: ``c_g = (1 - mu_t) / (1 - prod mu)``, ``c_m = mu_{t+1} / (1 - prod mu * mu_{t+1})``."""
    from optarena.transforms.adam import nadam_momentum

    beta1, decay = float(group["betas"][0]), float(group["momentum_decay"])
    t, product = _step(state), float(state["mu_product"])
    mu, mu_next = (nadam_momentum(beta1, decay, s) for s in (t, t + 1))
    return (1 - mu) / (1 - product), mu_next / (1 - product * mu_next)


def _nadam_threshold(group: Group, state: State | None) -> float:
    if state is None:
        raise ValueError(
            "NAdam's threshold depends on its momentum schedule's step: it exists only after its first step"
        )
    beta1 = float(group["betas"][0])
    gradient, average = nadam_weights(group, state)
    return (2 + 2 * beta1) / (_rate(group["lr"]) * (gradient * (1 + beta1) + average * (1 - beta1)))


def adafactor_step_size(group: Group, state: State | None) -> float:
    """Adafactor's ``rho_t`` of its last step: the relative step ``min(1e-2, 1/sqrt(t))``
    (``min(1e-6 t, 1/sqrt(t))`` with ``warmup_init``) or its fixed ``lr``."""
    lr = group["lr"]
    if not group["relative_step"] or lr == 0:
        return _rate(lr)
    if state is None:
        raise ValueError("Adafactor's relative step depends on its step count: it exists only after its first step")
    from optarena.transforms.factored import relative_step

    return relative_step(_step(state), bool(group["warmup_init"]))


def _adafactor_threshold(group: Group, state: State | None) -> float:
    rho = adafactor_step_size(group, state)
    beta1 = group.get("beta1")
    return 2 / rho if beta1 is None else _average_threshold(float(beta1), rho)


@dataclass(frozen=True)
class PreconditionerRule:
    """How one family of optimizers defines its diagonal preconditioner and its stability threshold."""

    family: str
    diagonal: Callable[[Group, State, Tensor], Tensor] | None
    """``P`` for one parameter from its group, state and current value; None for the identity."""
    threshold: Callable[[Group, State | None], float]
    """The threshold of a group, given the state of one of its parameters (None before the first step)."""
    state_keys: tuple[str, ...]
    threshold_varies: Callable[[Group], bool] = lambda group: False
    """Whether the threshold changes from step to step (a momentum or step-size schedule)."""


def _rules() -> dict[type, PreconditionerRule]:
    import optarena

    sgd = PreconditionerRule("SGD", None, _sgd_threshold, ())
    adam = PreconditionerRule("Adam", _adam, _adam_threshold, ("step", "exp_avg_sq"))
    nadam = PreconditionerRule(
        "NAdam", _nadam, _nadam_threshold, ("step", "mu_product", "exp_avg_sq"), lambda group: True
    )
    radam = PreconditionerRule("RAdam", _radam, _adam_threshold, ("step", "exp_avg_sq"))
    adafactor = PreconditionerRule(
        "Adafactor", _adafactor, _adafactor_threshold, ("step",), lambda group: bool(group["relative_step"])
    )
    rmsprop = PreconditionerRule(
        "RMSprop",
        _rmsprop,
        lambda g, s: (2 + 2 * float(g.get("momentum", 0.0))) / _rate(g["lr"]),
        ("square_avg",),
    )
    adagrad = PreconditionerRule("Adagrad", _adagrad, lambda g, s: 2 / _rate(g["lr"]), ("step", "sum"))
    return {
        optarena.SGD: sgd,
        torch.optim.SGD: sgd,
        optarena.Adam: adam,
        optarena.AdamW: adam,
        torch.optim.Adam: adam,
        torch.optim.AdamW: adam,
        optarena.NAdam: nadam,
        torch.optim.NAdam: nadam,
        optarena.RAdam: radam,
        torch.optim.RAdam: radam,
        optarena.Adafactor: adafactor,
        optarena.RMSprop: rmsprop,
        torch.optim.RMSprop: rmsprop,
        optarena.Adagrad: adagrad,
        torch.optim.Adagrad: adagrad,
    }


UNSUPPORTED = {
    "optarena.LAMB": "its trust ratio ||theta|| / ||u|| divides by the norm of the update itself, so each layer's step has "
    "the length lr ||theta|| whatever the curvature: no fixed P makes the step linear in the gradient",
    "torch.Adafactor": "its second moment, step size and update differ from optarena.Adafactor's",
}
"""Optimizers without a rule that one might expect to have one, and why (docs/diagnostics.md)."""


def _qualified(cls: type) -> str:
    return f"{cls.__module__.split('.')[0]}.{cls.__name__}"


def supported_optimizers() -> list[str]:
    """The optimizer classes whose preconditioner is read, as ``module.Class`` names."""
    return sorted({_qualified(cls) for cls in _rules()})


def rule_for(optimizer: torch.optim.Optimizer) -> PreconditionerRule:
    """The rule for ``optimizer``'s exact class; TypeError naming the supported ones otherwise."""
    rule = _rules().get(type(optimizer))
    if rule is None:
        reason = UNSUPPORTED.get(_qualified(type(optimizer)))
        raise TypeError(
            f"no diagonal preconditioner is defined for {type(optimizer).__name__}"
            f"{f' ({reason})' if reason else ''}; supported: "
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
        diagonal = rule.diagonal(groups[id(parameter)], state, parameter)
        pieces.append(diagonal.detach().to(dtype=parameter.dtype, device=parameter.device).reshape(-1))
    return torch.cat(pieces)


def _group_state(optimizer: torch.optim.Optimizer, group: Group) -> State | None:
    """The state of the group's first parameter that has one (None before the first step)."""
    return next((optimizer.state[p] for p in group["params"] if optimizer.state.get(p)), None)


def stability_threshold(optimizer: torch.optim.Optimizer) -> float:
    """The largest eigenvalue of ``P^-1 H`` at which the optimizer's step is stable on a quadratic.

    ``2 / lr`` for plain gradient descent; see the module's table for the others. For NAdam and
    Adafactor with its relative step it is that of the last step taken (it changes from step to
    step). Raises ValueError when the param groups disagree (different learning rates or
    momenta), when the learning rate is 0, and for those two before their first step.
    """
    rule = rule_for(optimizer)
    thresholds = {rule.threshold(group, _group_state(optimizer, group)) for group in optimizer.param_groups}
    if len(thresholds) != 1:
        listed = ", ".join(f"{t:g}" for t in sorted(thresholds))
        raise ValueError(
            f"the param groups have different stability thresholds ({listed}); measure one group's parameters at a time"
        )
    return thresholds.pop()


def threshold_varies(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer's threshold changes from step to step (NAdam; Adafactor's relative step)."""
    rule = rule_for(optimizer)
    return any(rule.threshold_varies(group) for group in optimizer.param_groups)


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
