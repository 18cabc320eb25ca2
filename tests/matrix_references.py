"""The matrix-preconditioned optimizers written from their papers, one tensor at a time.

Plain loops of tensor arithmetic over each parameter's matrix (``shape[0] x rest``; a vector is
a ``1 x n`` row, a scalar ``1 x 1``), none of optarena's code. The optimizer table compares
optarena's Muon, Shampoo, SOAP and SM3 with these over 100 steps in float64.
"""

from __future__ import annotations

import math

import torch

NS = (3.4445, -4.7750, 2.0315)
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 0:
        return t.reshape(1, 1)
    if t.dim() == 1:
        return t.reshape(1, -1)
    return t.reshape(t.shape[0], -1)


class ReferenceOptimizer:
    """Steps a list of parameters; ``maximize`` negates the gradients; empty ones are left alone."""

    def __init__(self, params, maximize=False, **config):
        self.params = list(params)
        self.maximize = maximize
        self.config = config
        self.state = [dict() for _ in self.params]
        self.t = 0

    def step(self):
        self.t += 1
        with torch.no_grad():
            for p, state in zip(self.params, self.state):
                if p.grad is None or p.numel() == 0:
                    continue
                g = -p.grad if self.maximize else p.grad
                state["t"] = state.get("t", 0) + 1
                self.update(p, as_matrix(g.detach().clone()), state)

    def update(self, p, g, state):
        raise NotImplementedError


def newton_schulz(g, steps, coefficients, eps, dtype):
    """Jordan et al.'s quintic iteration, written out: X = G / ||G||; X <- aX + (bA + cA^2)X, A = XX^T.

    In bfloat16 it is torch.optim.Muon's own function (whose rounding a loop written otherwise
    would not reproduce).
    """
    if dtype == torch.bfloat16:
        from torch.optim._muon import _zeropower_via_newtonschulz

        return _zeropower_via_newtonschulz(g, coefficients, steps, eps).to(g.dtype)
    a, b, c = coefficients
    x = g.to(dtype)
    tall = g.shape[0] > g.shape[1]
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(g.dtype)


class MuonLoop(ReferenceOptimizer):
    """Muon (Jordan et al. 2024; torch.optim.Muon's form of momentum, decay and lr adjustment)."""

    def update(self, p, g, state):
        c = {"lr": 1e-3, "weight_decay": 0.1, "momentum": 0.95, "nesterov": True, "ns_coefficients": NS,
             "eps": 1e-7, "ns_steps": 5, "adjust_lr_fn": None, "ns_dtype": "bfloat16", **self.config}
        mu = c["momentum"]
        buf = state.setdefault("buf", torch.zeros_like(g))
        buf.mul_(mu).add_((1 - mu) * g)
        u = (1 - mu) * g + mu * buf if c["nesterov"] else buf
        o = newton_schulz(u, c["ns_steps"], c["ns_coefficients"], c["eps"], DTYPES[c["ns_dtype"]])
        rows, cols = g.shape
        ratio = 0.2 * math.sqrt(max(rows, cols)) if c["adjust_lr_fn"] == "match_rms_adamw" else math.sqrt(max(1, rows / cols))
        p.mul_(1 - c["lr"] * c["weight_decay"])
        p.sub_(c["lr"] * ratio * o.reshape(p.shape))
