"""Measure how far the well-known variants of NAdam, AMSGrad, RAdam and RangerLARS land from optarena's.

Each variant is written here from its published formula, one tensor at a time, and run
against the optarena optimizer it differs from (a "control" row runs the same formula with
optarena's choice, and must print a figure near 1e-16), on the reference test's problem (five
parameter shapes, deterministic gradients, float64, 100 steps). Two figures per variant:

- ``final``: ``max |a - b| / max |b|`` over the parameters after 100 steps (the table's metric);
- ``path``: ``||(a - a0) - (b - b0)|| / ||b - b0||``, the gap relative to the distance travelled.

    python tools/variant_gaps.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from references import DefinitionRangerLARS  # noqa: E402
from test_reference_torch import params_for, relative_error, run  # noqa: E402

import optarena  # noqa: E402


class AdamLike:
    """Adam-family updates from formulas; ``direction(state, g, t)`` returns the step before lr."""

    def __init__(self, params, lr, direction):
        self.params, self.lr, self.direction, self.state = list(params), lr, direction, {}

    @torch.no_grad()
    def step(self):
        for p in self.params:
            if p.grad is None:
                continue
            s = self.state.setdefault(p, {"t": 0})
            s["t"] += 1
            step = self.direction(s, p.grad, s["t"])
            if step is not None:
                p -= self.lr * step


def moments(s, g, b1, b2):
    s["m"] = b1 * s.get("m", torch.zeros_like(g)) + (1 - b1) * g
    s["v"] = b2 * s.get("v", torch.zeros_like(g)) + (1 - b2) * g * g
    return s["m"], s["v"]


def nadam(psi, b1=0.9, b2=0.999, eps=1e-8):
    """NAdam with mu_t = beta1 (1 - 0.5 * 0.96^(t psi)): psi = 0.004 is Dozat's (and torch's),
    psi = 1 is Keras 3's ``keras.optimizers.Nadam``."""

    def direction(s, g, t):
        m, v = moments(s, g, b1, b2)
        mu_t, mu_next = (b1 * (1 - 0.5 * 0.96 ** ((t + i) * psi)) for i in (0, 1))
        s["prod"] = s.get("prod", 1.0) * mu_t
        m_hat = mu_next * m / (1 - s["prod"] * mu_next) + (1 - mu_t) * g / (1 - s["prod"])
        return m_hat / ((v / (1 - b2**t)).sqrt() + eps)

    return direction


def amsgrad(kind, b1=0.9, b2=0.999, eps=1e-8):
    """``"torch"``: the maximum of v, then corrected; ``"optax"``: the maximum of the corrected
    v; ``"paper"``: no bias correction at all."""

    def direction(s, g, t):
        m, v = moments(s, g, b1, b2)
        if kind == "torch":
            s["vmax"] = torch.maximum(s.get("vmax", torch.zeros_like(g)), v)
            return (m / (1 - b1**t)) / ((s["vmax"] / (1 - b2**t)).sqrt() + eps)
        if kind == "optax":
            s["vmax"] = torch.maximum(s.get("vmax", torch.zeros_like(g)), v / (1 - b2**t))
            return (m / (1 - b1**t)) / (s["vmax"].sqrt() + eps)
        s["vmax"] = torch.maximum(s.get("vmax", torch.zeros_like(g)), v)
        return m / (s["vmax"].sqrt() + eps)

    return direction


def radam(threshold=5.0, degenerate="momentum", b1=0.9, b2=0.999, eps=1e-8):
    """RAdam with the given threshold on rho_t; before it, bias-corrected momentum or no step."""

    def direction(s, g, t):
        m, v = moments(s, g, b1, b2)
        rho_inf = 2 / (1 - b2) - 1
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        m_hat = m / (1 - b1**t)
        if rho > threshold:
            r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            return r * m_hat * math.sqrt(1 - b2**t) / (v.sqrt() + eps)
        return m_hat if degenerate == "momentum" else None

    return direction


def gaps(ours_factory, variant_factory):
    a, b = params_for(0), params_for(0)
    a0, b0 = [p.detach().clone() for p in a], [p.detach().clone() for p in b]
    run(ours_factory, a, 100)
    run(variant_factory, b, 100)
    travelled = torch.cat([(x - x0).flatten() for x, x0 in zip(b, b0)])
    gap = torch.cat([((x - x0) - (y - y0)).flatten() for x, x0, y, y0 in zip(a, a0, b, b0)])
    return relative_error(a, b), (gap.norm() / travelled.norm()).item()


def main() -> None:
    torch.set_default_dtype(torch.float64)
    lr = 1e-2
    rows = [
        (
            "NAdam",
            "control: Dozat's 0.96^(0.004 t)",
            lambda p: optarena.NAdam(p, lr=lr),
            lambda p: AdamLike(p, lr, nadam(0.004)),
        ),
        ("NAdam", "Keras 3 schedule 0.96^t", lambda p: optarena.NAdam(p, lr=lr), lambda p: AdamLike(p, lr, nadam(1.0))),
        (
            "AMSGrad",
            "control: torch's",
            lambda p: optarena.Adam(p, lr=lr, amsgrad=True),
            lambda p: AdamLike(p, lr, amsgrad("torch")),
        ),
        (
            "AMSGrad",
            "optax: max of corrected v",
            lambda p: optarena.Adam(p, lr=lr, amsgrad=True),
            lambda p: AdamLike(p, lr, amsgrad("optax")),
        ),
        (
            "AMSGrad",
            "paper: no bias correction",
            lambda p: optarena.Adam(p, lr=lr, amsgrad=True),
            lambda p: AdamLike(p, lr, amsgrad("paper")),
        ),
        ("RAdam", "control: torch's", lambda p: optarena.RAdam(p, lr=lr), lambda p: AdamLike(p, lr, radam(5.0))),
        (
            "RAdam",
            "threshold 4 (paper's text)",
            lambda p: optarena.RAdam(p, lr=lr),
            lambda p: AdamLike(p, lr, radam(4.0)),
        ),
        (
            "RAdam",
            "no step before the threshold",
            lambda p: optarena.RAdam(p, lr=lr),
            lambda p: AdamLike(p, lr, radam(5.0, "skip")),
        ),
        (
            "RangerLARS",
            "control: the definition",
            lambda p: optarena.RangerLARS(p, lr=lr),
            lambda p: DefinitionRangerLARS(p, lr=lr),
        ),
        (
            "RangerLARS",
            "over9000 Ralamb: divide by ||theta||",
            lambda p: optarena.RangerLARS(p, lr=lr),
            lambda p: DefinitionRangerLARS(p, lr=lr, ratio_denominator="param"),
        ),
    ]
    print(f"lr = {lr}, 100 steps, float64")
    print("| optimizer | variant | final | path |")
    print("|---|---|---|---|")
    for name, variant, ours, theirs in rows:
        final, path = gaps(ours, theirs)
        print(f"| {name} | {variant} | {final:.2g} | {path:.2g} |")


if __name__ == "__main__":
    main()
