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
        c = {
            "lr": 1e-3,
            "weight_decay": 0.1,
            "momentum": 0.95,
            "nesterov": True,
            "ns_coefficients": NS,
            "eps": 1e-7,
            "ns_steps": 5,
            "adjust_lr_fn": None,
            "ns_dtype": "bfloat16",
            **self.config,
        }
        mu = c["momentum"]
        buf = state.setdefault("buf", torch.zeros_like(g))
        buf.mul_(mu).add_((1 - mu) * g)
        u = (1 - mu) * g + mu * buf if c["nesterov"] else buf
        o = newton_schulz(u, c["ns_steps"], c["ns_coefficients"], c["eps"], DTYPES[c["ns_dtype"]])
        rows, cols = g.shape
        ratio = (
            0.2 * math.sqrt(max(rows, cols))
            if c["adjust_lr_fn"] == "match_rms_adamw"
            else math.sqrt(max(1, rows / cols))
        )
        p.mul_(1 - c["lr"] * c["weight_decay"])
        p.sub_(c["lr"] * ratio * o.reshape(p.shape))


def inverse_root(m, exponent, eps):
    """(M + eps I)^(-exponent) of a symmetric matrix by its eigendecomposition (eigenvalues floored at eps)."""
    if not torch.isfinite(m).all():
        return torch.full_like(m, float("nan"))
    w, v = torch.linalg.eigh(m + eps * torch.eye(m.shape[0], dtype=m.dtype))
    return v @ torch.diag(w.clamp(min=eps) ** -exponent) @ v.T


def block_slices(rows, cols, size):
    """The (row slice, column slice) of each block, row by row."""
    return [
        (slice(r, min(r + size, rows)), slice(c, min(c + size, cols)))
        for r in range(0, rows, size)
        for c in range(0, cols, size)
    ]


class ShampooLoop(ReferenceOptimizer):
    """Shampoo, Algorithm 1 of Gupta et al. 2018 per block (L_0 = R_0 = eps I; a side of size 1 of the
    matrix keeps no statistic and the exponent is -1/(2 * sides)), roots every precondition_frequency steps, grafting
    per block (Anil et al. 2020), then torch.optim.SGD's momentum and decoupled weight decay."""

    def update(self, p, g, state):
        c = {
            "lr": 1e-2,
            "momentum": 0.0,
            "weight_decay": 0.0,
            "beta2": 1.0,
            "matrix_eps": 1e-6,
            "precondition_frequency": 10,
            "start_preconditioning_step": 1,
            "max_preconditioner_dim": 1024,
            "grafting": "adagrad",
            "grafting_eps": 1e-8,
            "grafting_beta2": 0.999,
            "matrix_dtype": "float64",
            **self.config,
        }
        t = state["t"]
        rows, cols = g.shape
        if c["grafting"] == "adagrad":
            s = state.setdefault("sum", torch.zeros_like(g))
            s += g * g
            graft = g / (s.sqrt() + c["grafting_eps"])
        elif c["grafting"] == "adam":
            b2 = c["grafting_beta2"]
            v = state.setdefault("v", torch.zeros_like(g))
            v.mul_(b2).add_((1 - b2) * g * g)
            graft = g / ((v / (1 - b2**t)).sqrt() + c["grafting_eps"])
        else:
            graft = None
        direction = torch.zeros_like(g)
        for n, (rs, cs) in enumerate(block_slices(rows, cols, c["max_preconditioner_dim"])):
            block = g[rs, cs]
            stats = state.setdefault(n, {})
            sides = [side for side, size in (("L", rows), ("R", cols)) if size > 1]
            for side in sides:
                product = block @ block.T if side == "L" else block.T @ block
                if side not in stats:
                    stats[side] = torch.zeros_like(product)
                if c["beta2"] == 1.0:
                    stats[side] += product
                else:
                    stats[side] = c["beta2"] * stats[side] + (1 - c["beta2"]) * product
            start, every = c["start_preconditioning_step"], c["precondition_frequency"]
            if t < start:
                direction[rs, cs] = block if graft is None else graft[rs, cs]
                continue
            if (t - start) % every == 0:
                for side in sides:
                    stats[side + "root"] = inverse_root(stats[side], 1 / (2 * len(sides)), c["matrix_eps"])
            out = block
            if "L" in sides:
                out = stats["Lroot"] @ out
            if "R" in sides:
                out = out @ stats["Rroot"]
            if graft is not None:
                norm = out.norm()
                out = torch.zeros_like(out) if norm == 0 else out * (graft[rs, cs].norm() / norm)
            direction[rs, cs] = out
        if c["momentum"]:
            if "buf" in state:
                state["buf"] = c["momentum"] * state["buf"] + direction
            else:
                state["buf"] = direction.clone()
            direction = state["buf"]
        p.sub_(c["lr"] * (direction.reshape(p.shape) + c["weight_decay"] * p))


class SoapLoop(ReferenceOptimizer):
    """SOAP, Algorithms 3 and 4 of Vyas et al. 2024 (M in the parameter's coordinates, V in the
    eigenbasis), with the authors' first step (statistics and eigenbases only), bias correction
    (lr * sqrt(1 - b2^s) / (1 - b1^s), s = t - 1) and unrotated sides; AdamW's decoupled decay."""

    def update(self, p, g, state):
        c = {
            "lr": 3e-3,
            "betas": (0.95, 0.95),
            "shampoo_beta": None,
            "eps": 1e-8,
            "weight_decay": 0.01,
            "precondition_frequency": 10,
            "max_preconditioner_dim": 10000,
            "precondition_1d": False,
            "correct_bias": True,
            "matrix_dtype": "float32",
            **self.config,
        }
        b1, b2 = c["betas"]
        sb = b2 if c["shampoo_beta"] is None else c["shampoo_beta"]
        dtype = DTYPES[c["matrix_dtype"]]
        rows, cols = g.shape
        vector = rows == 1 or cols == 1
        rotated_sides = [
            n > 1 and n <= c["max_preconditioner_dim"] and (not vector or c["precondition_1d"]) for n in (rows, cols)
        ]
        grams = [g @ g.T, g.T @ g]
        decay = c["weight_decay"] * p
        if state["t"] == 1:
            state["Q"] = []
            state["S"] = []
            for rotated, gram in zip(rotated_sides, grams):
                if rotated:
                    stat = (1 - sb) * gram
                    if torch.isfinite(stat).all():
                        w, v = torch.linalg.eigh(stat.to(dtype))
                    else:  # a NaN gradient: a NaN basis, as optarena's (torch's eigh would raise)
                        v = torch.full(stat.shape, float("nan"), dtype=dtype)
                    state["S"].append(stat)
                    state["Q"].append(v[:, torch.arange(v.shape[1] - 1, -1, -1)].to(g.dtype))
                else:
                    state["S"].append(None)
                    state["Q"].append(None)
            state["M"] = torch.zeros_like(g)
            state["V"] = torch.zeros_like(g)
            p.sub_(c["lr"] * decay)
            return
        s = state["t"] - 1
        ql, qr = state["Q"]

        def into(x):
            x = ql.T @ x if ql is not None else x
            return x @ qr if qr is not None else x

        def out_of(x):
            x = ql @ x if ql is not None else x
            return x @ qr.T if qr is not None else x

        state["M"] = state["M"].lerp(g, 1 - b1)
        gr = into(g)
        state["V"] = b2 * state["V"] + (1 - b2) * gr * gr
        n = out_of(into(state["M"]) / (state["V"].sqrt() + c["eps"]))
        if c["correct_bias"]:
            n = n * math.sqrt(1 - b2**s) / (1 - b1**s)
        p.sub_(c["lr"] * (n.reshape(p.shape) + decay))
        for i, gram in enumerate(grams):
            if state["S"][i] is not None:
                # the average written as a lerp: the bases of rank-deficient statistics (early steps)
                # depend on their last bits, so the reference rounds them as optarena does
                state["S"][i] = state["S"][i].lerp(gram, 1 - sb)
        if s % c["precondition_frequency"] == 0:
            for i in range(2):
                if state["S"][i] is None:
                    continue
                stat, q = state["S"][i].to(dtype), state["Q"][i].to(dtype)
                order = torch.diag(q.T @ stat @ q).argsort(descending=True, stable=True)
                q = q[:, order]
                state["V"] = state["V"][order, :] if i == 0 else state["V"][:, order]
                state["Q"][i] = torch.linalg.qr(stat @ q)[0].to(g.dtype)


class PackageSM3:
    """The ``torch-sm3`` package's ``SM3``, given torch.optim's ``maximize`` and skipped gradients.

    Its step reads every parameter's gradient (it tests ``p is None`` where it means ``p.grad is
    None``), so this adapter hands it only the parameters that have one this step, each through a
    view that keeps its state; under ``maximize`` the gradient is negated. Empty tensors are left out.
    """

    def __init__(self, params, maximize=False, **config):
        from SM3 import SM3

        self.params = [p for p in params if p.numel()]
        self.maximize = maximize
        self.inner = SM3([p.detach() for p in self.params], **config)
        self.views = self.inner.param_groups[0]["params"]

    def step(self):
        group = self.inner.param_groups[0]
        active = []
        for p, view in zip(self.params, self.views):
            if p.grad is not None:
                view.grad = -p.grad if self.maximize else p.grad.clone()
                active.append(view)
        group["params"] = active
        self.inner.step()
        group["params"] = self.views


class MuonAdamWReference:
    """Muon (:class:`MuonLoop`) on the tensors of two or more dimensions and ``torch.optim.AdamW`` on
    the others, with one ``lr`` and ``weight_decay``: ``optarena.MuonWithAdamW`` for parameters
    without names (its defaults: ``adjust_lr_fn="match_rms_adamw"``, AdamW's betas (0.9, 0.95))."""

    def __init__(self, params, maximize=False, **config):
        params = list(params)
        shared = {"lr": config.get("lr", 1e-3), "weight_decay": config.get("weight_decay", 0.1)}
        adamw = {**shared, "betas": config.get("betas", (0.9, 0.95)), "eps": config.get("adamw_eps", 1e-8)}
        muon = {
            "adjust_lr_fn": "match_rms_adamw",
            **{k: v for k, v in config.items() if k not in ("betas", "adamw_eps")},
        }
        self.parts = []
        matrices = [p for p in params if p.dim() >= 2]
        others = [p for p in params if p.dim() < 2]
        if matrices:
            self.parts.append(MuonLoop(matrices, maximize=maximize, **muon))
        if others:
            self.parts.append(torch.optim.AdamW(others, maximize=maximize, **adamw))

    def step(self):
        for part in self.parts:
            part.step()
