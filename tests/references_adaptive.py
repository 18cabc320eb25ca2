"""Reference implementations for the adaptive family of 2023-2024 (Schedule-Free, Lion,
Prodigy, D-Adaptation, Sophia, cautious masking), behind one thin adapter.

The authors' packages run unchanged; :class:`RealViews` gives them torch.optim's conventions
they lack, and every difference from calling the package directly is stated there. Cautious
AdamW, which no package in the test extra implements, is written from its definition.
"""

from __future__ import annotations

import contextlib
import io

import torch


class RealViews:
    """A package optimizer over real views of the parameters, fed copies of the gradients.

    - complex parameters step as their real view (two reals per number), as torch.optim does;
    - ``maximize`` negates the gradients (none of these packages has the option);
    - each step hands the package a copy of the gradient: Schedule-Free divides ``p.grad`` in
      place and Prodigy and D-Adaptation add the L2 decay into it, which would change the
      gradients the caller sees;
    - what the packages print at construction ("Using decoupled weight decay") is swallowed.

    ``step_keywords`` are passed to every ``step`` (sophia-opt's ``bs``); ``after_build`` runs
    once on the package's optimizer (Schedule-Free's ``train()``).
    """

    def __init__(self, params, make, maximize=False, step_keywords=None, after_build=None, **config):
        self.params = list(params)
        self.views = [torch.view_as_real(p.detach()) if p.is_complex() else p.detach() for p in self.params]
        self.maximize = maximize
        self.step_keywords = step_keywords or {}
        with contextlib.redirect_stdout(io.StringIO()):
            self.inner = make(self.views, **config)
        if after_build is not None:
            after_build(self.inner)

    def load_grads(self, grads=None):
        for _, view, g in zip(self.params, self.views, grads or [p.grad for p in self.params]):
            if g is None:
                view.grad = None
                continue
            g = torch.view_as_real(g) if g.is_complex() else g
            view.grad = -g if self.maximize else g.clone()

    def step(self):
        self.load_grads()
        self.inner.step(**self.step_keywords)

    def state_dict(self):
        return self.inner.state_dict()


def schedule_free(kind: str):
    def build(params, **config):
        import schedulefree

        cls = {"adamw": schedulefree.AdamWScheduleFree, "sgd": schedulefree.SGDScheduleFree}[kind]
        return RealViews(params, cls, after_build=lambda opt: opt.train(), **config)

    return build


def lion(cautious: bool = False):
    def build(params, **config):
        if cautious:
            from lion_pytorch.cautious_lion import Lion

            return RealViews(params, Lion, cautious_factor=0.0, **config)
        from lion_pytorch import Lion

        return RealViews(params, Lion, **config)

    return build


def _renamed(config: dict) -> dict:
    """optarena's ``decoupled_weight_decay`` is the packages' ``decouple``."""
    config = dict(config)
    if "decoupled_weight_decay" in config:
        config["decouple"] = config.pop("decoupled_weight_decay")
    return config


def prodigy(params, maximize=False, **config):
    from prodigyopt import Prodigy

    return RealViews(params, Prodigy, maximize=maximize, **{"decouple": True, **_renamed(config)})


def dadapt_adam(params, maximize=False, **config):
    from dadaptation import DAdaptAdam

    return RealViews(params, DAdaptAdam, maximize=maximize, **_renamed(config))


def sophia(params, maximize=False, batch_size=1, update_period=None, estimator=None, **config):
    """sophia-opt's SophiaG; its ``bs`` (the factor of the estimate in the denominator) is
    optarena's ``batch_size``, by which optarena scales the estimate itself. The estimate's
    schedule and kind (``update_period``, ``estimator``) are the caller's business with SophiaG
    (it calls ``update_hessian``): tests/test_reference_sophia.py drives them."""
    from sophia_opt import SophiaG

    return RealViews(params, SophiaG, maximize=maximize, step_keywords={"bs": batch_size}, **config)


class CautiousAdamWDefinition:
    """Cautious AdamW from its definition (Liang et al. 2024, https://arxiv.org/abs/2411.16085,
    Algorithm 2), one tensor at a time: AdamW's direction ``u``, the mask ``phi = 1[u g > 0]``,
    ``u phi n / max(nnz(phi), 1)``, then the decoupled decay. Complex tensors as their real view."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, maximize=False):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.wd, self.maximize = lr, betas, eps, weight_decay, maximize
        self.state = {}

    @torch.no_grad()
    def step(self):
        beta1, beta2 = self.betas
        for p in self.params:
            if p.grad is None:
                continue
            x = torch.view_as_real(p) if p.is_complex() else p
            g = torch.view_as_real(p.grad) if p.grad.is_complex() else p.grad
            g = -g if self.maximize else g
            state = self.state.setdefault(id(p), {"t": 0, "m": torch.zeros_like(x), "v": torch.zeros_like(x)})
            state["t"] += 1
            t = state["t"]
            state["m"] = beta1 * state["m"] + (1 - beta1) * g
            state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
            u = (state["m"] / (1 - beta1**t)) / ((state["v"] / (1 - beta2**t)).sqrt() + self.eps)
            mask = (u * g > 0).to(u.dtype)
            u = u * mask * (x.numel() / max(float(mask.sum()), 1.0))
            x -= self.lr * (u + self.wd * x)
