"""Independent implementations the optimizer table compares against, where torch.optim has none.

Each is written from its definition (or wraps the authors' package through a thin adapter
whose every deviation from calling the package directly is stated), one tensor at a time,
with plain tensor arithmetic and none of optarena's code.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import torch

TORCH_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}


class PaperLookahead:
    """Lookahead, Algorithm 1 of Zhang et al. 2019 (https://arxiv.org/abs/1907.08610).

    ``phi = theta_0``; each call runs one step of the inner torch.optim optimizer; after
    every k calls ``phi <- phi + alpha (theta - phi)`` and ``theta <- phi`` for every parameter.
    """

    def __init__(self, params, inner="adam", k=5, alpha=0.5, **inner_config):
        self.params = list(params)
        self.inner = getattr(torch.optim, TORCH_NAMES[inner])(self.params, **inner_config)
        self.slow = [p.detach().clone() for p in self.params]
        self.k, self.alpha, self.calls = k, alpha, 0

    def step(self):
        self.inner.step()
        self.calls += 1
        if self.calls % self.k == 0:
            with torch.no_grad():
                for p, phi in zip(self.params, self.slow):
                    phi += self.alpha * (p - phi)
                    p.copy_(phi)


def centralised(g: torch.Tensor, conv_only: bool) -> torch.Tensor:
    """Gradient centralisation as Yong et al. define it: minus the mean over all dims but the first."""
    if g.dim() > (3 if conv_only else 1):
        return g - g.mean(dim=tuple(range(1, g.dim())), keepdim=True)
    return g


@contextlib.contextmanager
def float_is_identity_on_float64():
    """Make ``Tensor.float()`` return float64 tensors themselves, as it returns float32 ones.

    ``pytorch_ranger.Ranger`` works on ``p.data.float()`` and ``p.grad.data.float()``: for
    float32 parameters that is the tensor itself; for float64 ones it would be a float32
    copy, and every step would round the parameters to float32. Within this context the
    package runs on float64 parameters exactly as it runs on float32 ones.
    """
    original = torch.Tensor.float

    def float_(self, *args, **kwargs):
        if self.dtype == torch.float64 and not args and not kwargs:
            return self
        return original(self, *args, **kwargs)

    torch.Tensor.float = float_
    try:
        yield
    finally:
        torch.Tensor.float = original


class PackageRanger:
    """The authors' ``pytorch_ranger.Ranger`` (package ``pytorch-ranger``), fed centralised gradients.

    The package (version 0.1.1, Ranger 9.3.19) predates gradient centralisation; the 2020
    Ranger centralises each gradient first thing in its step (``gc_loc=True``), so feeding
    the package centralised gradients reproduces it. The adapter also negates the gradients
    for ``maximize`` (the package has no such option) and keeps float64 parameters in
    float64 (see :func:`float_is_identity_on_float64`). The package's deprecated
    ``add_``/``addcmul_`` overloads still run on torch 2.13, with warnings, which are silenced.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        alpha=0.5,
        k=6,
        sma_threshold=5,
        betas=(0.95, 0.999),
        eps=1e-5,
        weight_decay=0.0,
        use_gc=True,
        gc_conv_only=False,
        maximize=False,
    ):
        from pytorch_ranger import Ranger

        self.params = list(params)
        self.use_gc, self.gc_conv_only, self.maximize = use_gc, gc_conv_only, maximize
        self.package = Ranger(
            self.params,
            lr=lr,
            alpha=alpha,
            k=k,
            N_sma_threshhold=sma_threshold,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
        )

    def step(self):
        for p in self.params:
            if p.grad is None:
                continue
            g = -p.grad if self.maximize else p.grad
            p.grad = centralised(g, self.gc_conv_only) if self.use_gc else g
        with warnings.catch_warnings(), float_is_identity_on_float64():
            warnings.simplefilter("ignore", UserWarning)
            self.package.step()


class DefinitionRangerLARS:
    """RangerLARS from its definition, one tensor at a time.

    RAdam's direction ``d`` (torch.optim's form: ``r_t m_hat sqrt(1 - beta2^t) / (sqrt(v) + eps)``
    when ``rho_t > sma_threshold``, else ``m_hat``), plus ``weight_decay * theta``; LAMB's trust
    ratio ``min(||theta||, 10) / ||u||`` (1 where a norm is 0), capped at ``max_trust_ratio``;
    ``theta <- theta - lr r u``; Lookahead after every k-th step of the parameter.
    ``ratio_denominator="param"`` (with ``weight_decay=0``) divides by the norm of the
    parameter instead, as the widely copied ``Ralamb`` code does, for the comparison in the
    fidelity notes.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        alpha=0.5,
        k=6,
        sma_threshold=5,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        max_trust_ratio=None,
        maximize=False,
        ratio_denominator="step",
    ):
        self.params = list(params)
        self.lr, self.alpha, self.k, self.threshold = lr, alpha, k, sma_threshold
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay, self.cap, self.maximize = eps, weight_decay, max_trust_ratio, maximize
        if ratio_denominator not in ("step", "param") or (ratio_denominator == "param" and weight_decay):
            raise ValueError("ratio_denominator is 'step', or 'param' with weight_decay=0")
        self.ratio_denominator = ratio_denominator
        self.state = {}

    @torch.no_grad()
    def step(self):
        b1, b2 = self.beta1, self.beta2
        for p in self.params:
            if p.grad is None:
                continue
            g = -p.grad if self.maximize else p.grad
            s = self.state.setdefault(
                p, {"t": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p), "slow": p.clone()}
            )
            s["t"] += 1
            t = s["t"]
            s["m"] = b1 * s["m"] + (1 - b1) * g
            s["v"] = b2 * s["v"] + (1 - b2) * g * g
            m_hat = s["m"] / (1 - b1**t)
            rho_inf = 2 / (1 - b2) - 1
            rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
            if rho > self.threshold:
                r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
                d = r * m_hat * math.sqrt(1 - b2**t) / (s["v"].sqrt() + self.eps)
            else:
                d = m_hat
            u = d + self.weight_decay * p
            p_norm = min(p.norm().item(), 10.0)
            if self.ratio_denominator == "step":
                u_norm = u.norm().item()
            else:
                u_norm = p.norm().item()
            ratio = p_norm / u_norm if p_norm > 0 and u_norm > 0 else 1.0
            if self.cap is not None:
                ratio = min(ratio, self.cap)
            p -= self.lr * ratio * u
            if t % self.k == 0:
                s["slow"] += self.alpha * (p - s["slow"])
                p.copy_(s["slow"])
