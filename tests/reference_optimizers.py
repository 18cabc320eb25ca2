"""Independent implementations that the optimizer table compares against, beyond torch.optim.

- LAMB and LARS: plain per-tensor loops written from the papers' formulas (You et al. 2019,
  Algorithm 2 with phi the identity; You, Gitman & Ginsburg 2017, Algorithm 1 with the
  momentum buffer of torch.optim.SGD). They share no code with optarena's transforms; the
  optax trajectories (tests/test_reference_optax.py) check the same two from outside.
- QHM, QHAdam, QHAdamW: the authors' package ``qhoptim``, given ``maximize`` (which it
  lacks) by negating the gradients before its step. It still calls the ``add_(number,
  tensor)`` overload that torch deprecated; the warning is silenced around its step.
"""

from __future__ import annotations

import math
import warnings

import torch


class LambReference(torch.optim.Optimizer):
    """LAMB, one tensor at a time: bias-corrected Adam plus decay, times ||theta|| / ||update||."""

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, layer_adaptation=True, maximize=False
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, layer_adaptation=layer_adaptation, maximize=maximize
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad * (1 - beta1))
                v.mul_(beta2).add_(grad * grad * (1 - beta2))
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                update = m_hat / (v_hat.sqrt() + group["eps"]) + group["weight_decay"] * p
                ratio = 1.0
                if group["layer_adaptation"]:
                    p_norm = math.sqrt(float((p * p).sum()))
                    u_norm = math.sqrt(float((update * update).sum()))
                    if p_norm > 0 and u_norm > 0:
                        ratio = p_norm / u_norm
                p.sub_(group["lr"] * ratio * update)


class LarsReference(torch.optim.Optimizer):
    """LARS, one tensor at a time: local lr eta ||w|| / (||g|| + wd ||w|| + eps) on g + wd w, then momentum."""

    def __init__(
        self,
        params,
        lr,
        momentum=0.9,
        weight_decay=0.0,
        trust_coefficient=1e-3,
        eps=0.0,
        nesterov=False,
        layer_adaptation=True,
        maximize=False,
    ):
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            eps=eps,
            nesterov=nesterov,
            layer_adaptation=layer_adaptation,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            decay, momentum = group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                local = 1.0
                if group["layer_adaptation"]:
                    w_norm = math.sqrt(float((p * p).sum()))
                    g_norm = math.sqrt(float((grad * grad).sum()))
                    if w_norm > 0 and g_norm > 0:
                        local = group["trust_coefficient"] * w_norm / (g_norm + decay * w_norm + group["eps"])
                update = local * (grad + decay * p)
                if momentum != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = update.clone()
                    else:
                        state["momentum_buffer"].mul_(momentum).add_(update)
                    buffer = state["momentum_buffer"]
                    update = update + momentum * buffer if group["nesterov"] else buffer
                p.sub_(group["lr"] * update)


def qhoptim(name: str, **fixed):
    """A builder of ``qhoptim.pyt.<name>`` with ``fixed`` keywords first (optarena's defaults)."""

    def build(params, maximize=False, **config):
        import qhoptim.pyt

        optimizer = getattr(qhoptim.pyt, name)(params, **{**fixed, **config})
        step = optimizer.step

        def checked_step(closure=None):
            if maximize:
                for group in optimizer.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.grad.neg_()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="This overload of add_ is deprecated", category=UserWarning)
                return step(closure)

        optimizer.step = checked_step
        return optimizer

    return build
