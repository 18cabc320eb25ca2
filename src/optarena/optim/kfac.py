"""K-FAC: natural-gradient steps with a Kronecker-factored Fisher per Linear and Conv2d layer."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from optarena.hyperparameters import UNIT, Hyper, Integer, Optional, Real
from optarena.optim.base import SKIP_COUNTER, NamedOptimizer, Paper, first_nonfinite
from optarena.search_space import LogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, Spec, TestPlan, configs, errors
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, Trace, Transform
from optarena.transforms.base import scalar_dtype
from optarena.transforms.sharding import is_sharded

KFAC_HYPERPARAMETERS = {
    "damping": Hyper(1e-3, Real(0.0, open_low=True), "Tikhonov damping lambda, split between the two factors"),
    "factor_decay": Hyper(0.95, UNIT, "weight of the old factors in their running averages"),
    "factor_update_interval": Hyper(1, Integer(1), "steps between updates of the Kronecker factors"),
    "inverse_update_interval": Hyper(10, Integer(1), "steps between inversions of the damped factors"),
    "kl_clip": Hyper(1e-3, Optional(Real(0.0, open_low=True)), "bound on lr^2 <update, gradient> (None: no clipping)"),
}
FACTOR_KEYS = ("activation_factor", "gradient_factor", "activation_inverse", "gradient_inverse")
"""Kept in the state of each layer's weight, with the layer's K-FAC step count (``step``)."""


class _Layer:
    """A Linear or Conv2d layer whose factors K-FAC keeps, and the statistics of its last batch."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.weight = module.weight
        self.bias = module.bias
        self.batch: tuple[Tensor, Tensor] | None = None
        """(A, G) of the last forward and backward pass, not yet folded into the running averages."""

    def patches(self, x: Tensor) -> Tensor:
        """The layer's inputs as rows ``(examples, fan_in)``: a Conv2d's unfolded patches, one row per
        output location; a Linear's leading dimensions all count as examples."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            cols = nn.functional.unfold(x, m.kernel_size, m.dilation, m.padding, m.stride)
            return cols.transpose(1, 2).reshape(-1, cols.shape[1])
        return x.reshape(-1, x.shape[-1])

    def statistics(self, x: Tensor, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        """``A = E_b[sum_l a a^T]`` (with a 1 appended for the bias) and ``G = E_b[mean_l s s^T]``
        with ``s = batch * dL/d(output)``: the per-example output gradients of a mean loss."""
        batch = x.shape[0]
        a = self.patches(x)
        if self.bias is not None:
            a = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
        g = grad_output
        locations = 1
        if isinstance(self.module, nn.Conv2d):
            locations = g.shape[2] * g.shape[3]
            g = g.permute(0, 2, 3, 1)
        g = g.reshape(-1, g.shape[-1]) * batch
        return a.T @ a / batch, g.T @ g / (batch * locations)

    def gradient_matrix(self, weight_grad: Tensor, bias_grad: Tensor | None) -> Tensor:
        """``[dW, db]`` as ``out x (fan_in + 1)`` (a Conv2d's filters flattened)."""
        grad = weight_grad.reshape(weight_grad.shape[0], -1)
        if self.bias is not None:
            grad = torch.cat(
                [grad, (bias_grad if bias_grad is not None else torch.zeros_like(grad[:, 0])).unsqueeze(1)], dim=1
            )
        return grad


def supported(module: nn.Module) -> bool:
    """Layers with Kronecker factors: Linear, and Conv2d with one group and zero padding."""
    if isinstance(module, nn.Linear):
        return module.weight.requires_grad
    if isinstance(module, nn.Conv2d):
        return (
            module.groups == 1
            and module.padding_mode == "zeros"
            and isinstance(module.padding, tuple)
            and module.weight.requires_grad
        )
    return False


class KFAC(NamedOptimizer):
    """K-FAC: each Linear and Conv2d layer's gradient preconditioned by its Kronecker-factored Fisher.

    Update rule::

        per layer, gradient Gr = [dW, db] (out x (in + 1)), inputs a = [x, 1], s = batch * dL/d(output):
            A = e A + (1 - e) mean_b sum_l a a^T;  G = e G + (1 - e) mean_b mean_l s s^T  (every factor_update_interval steps)
            pi = sqrt((tr A / dim A) / (tr G / dim G))
            every inverse_update_interval steps: A_inv = (A + pi sqrt(damping) I)^-1, G_inv = (G + sqrt(damping) / pi I)^-1
            V = G_inv Gr A_inv          (the natural gradient of the damped (A kron G))
        nu = min(1, sqrt(kl_clip / (lr^2 sum_layers <V, Gr>)))   (kl_clip None: nu = 1)
        d = nu V for layer parameters, the gradient for any other parameter
        b = momentum * b + (d + weight_decay * theta)       (torch.optim.SGD's buffer)
        theta = theta - lr * b

    ``KFAC(model, ...)`` takes the model: hooks on its Linear and Conv2d layers (one group, zero
    padding) collect the factors' statistics of each forward and backward pass in training mode; the loss
    is taken to be a mean over the batch. A Conv2d's factors are those of Grosse & Martens 2016
    (patches as examples, output locations summed in A and averaged in G). The first factors are
    the first batch's; until a layer has factors, and for any other parameter, the step is SGD
    with momentum on the gradient. Given parameters instead of a model (as ``optarena.create``
    passes them) there are no layers. Layers with sharded (``DTensor``) weights are refused.
    """

    paper = Paper(
        "Martens & Grosse",
        2015,
        "Optimizing Neural Networks with Kronecker-factored Approximate Curvature",
        "https://arxiv.org/abs/1503.05671",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-4, 1.0), "damping": LogUniform(1e-5, 1e-1)})

    def __init__(
        self,
        model: Any,
        lr: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        damping: float = 1e-3,
        factor_decay: float = 0.95,
        factor_update_interval: int = 1,
        inverse_update_interval: int = 10,
        kl_clip: float | None = 1e-3,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        nonfinite: str = "ignore",
    ):
        settings = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            damping=damping,
            factor_decay=factor_decay,
            factor_update_interval=factor_update_interval,
            inverse_update_interval=inverse_update_interval,
            kl_clip=kl_clip,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            nonfinite=nonfinite,
        )
        if isinstance(model, nn.Module):
            self.layers = [_Layer(m) for m in model.modules() if supported(m)]
            params: Any = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        else:
            self.layers = []
            params = model
        super().__init__(params, **settings)
        for layer in self.layers:
            if is_sharded(layer.weight):
                raise ValueError(
                    f"KFAC does not precondition sharded (DTensor) layers, found {type(layer.module).__name__} "
                    f"with weight {tuple(layer.weight.shape)}: its factors need the whole layer and batch"
                )
        self._hooks = []
        for layer in self.layers:
            self._hooks.append(layer.module.register_forward_hook(self._watch(layer)))

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights(), Trace(), ScaleByLearningRate()]

    @classmethod
    def declared_hyperparameters(cls, transforms):
        return {**super().declared_hyperparameters(transforms), **KFAC_HYPERPARAMETERS}

    @classmethod
    def defaults_from_signature(cls) -> dict[str, Any]:
        return {k: v for k, v in super().defaults_from_signature().items() if k != "model"}

    def state_keys(self) -> frozenset[str]:
        return super().state_keys() | set(FACTOR_KEYS)

    # -- hooks --------------------------------------------------------------------------------

    @staticmethod
    def _watch(layer: _Layer):
        """A forward hook: in training, keep the layer's inputs and, when the backward pass reaches
        its output, the batch's factor statistics."""

        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            if not (module.training and torch.is_grad_enabled() and output.requires_grad):
                return
            x = inputs[0].detach()

            def statistics(grad_output: Tensor) -> None:
                with torch.no_grad():
                    layer.batch = layer.statistics(x, grad_output.detach())

            output.register_hook(statistics)

        return hook

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_hooks", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._hooks = []  # a copy has no hooks on its (copied) model: it steps on what it has

    # -- the step -------------------------------------------------------------------------------

    def step(self, closure: Any = None) -> Any:
        """Fold the last batch's statistics into the factors, precondition the layers' gradients
        and take the chain's step (momentum, weight decay, learning rate) on them."""
        self._check_before_step()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        policy = group.get("nonfinite", "ignore")
        # the factors fold in the batch's statistics before the chain's own check: without layers
        # there are none to protect, and the chain's check (below) is the only one
        layered = any(layer.batch is not None for layer in self.layers)
        if policy != "ignore" and layered and params and first_nonfinite([p.grad for p in params]) is not None:
            if policy == "raise":
                self._step(None)  # the chain's own error, naming the parameter and the step
            for g in self.param_groups:
                g[SKIP_COUNTER] = g.get(SKIP_COUNTER, 0) + 1
            return loss
        with torch.no_grad():
            directions = self._preconditioned()
        originals = {}
        try:
            for p, d in directions.items():
                originals[p] = p.grad
                p.grad = d
            with torch.no_grad():
                self._step(None)  # the policy checks the directions again (they are finite when the gradients are)
        finally:
            for p, g in originals.items():
                p.grad = g
        return loss

    def _group_of(self, param: Tensor) -> dict[str, Any]:
        return next(g for g in self.param_groups if any(p is param for p in g["params"]))

    def _preconditioned(self) -> dict[Tensor, Tensor]:
        """The natural-gradient directions of the layers' parameters, KL-clipped (each layer with
        the settings of its weight's group; the clipping with the first group's)."""
        out: dict[Tensor, Tensor] = {}
        inner = 0.0
        for layer in self.layers:
            weight, bias = layer.weight, layer.bias
            if weight.grad is None:
                layer.batch = None
                continue
            s = self._group_of(weight)
            lr = float(s["lr"])
            sign = -1.0 if s.get("maximize") else 1.0
            state = self.state[weight]
            count = int(state["step"]) + 1 if "step" in state else 1
            if layer.batch is not None and (
                (count - 1) % s["factor_update_interval"] == 0 or "activation_factor" not in state
            ):
                a, g = layer.batch
                if "activation_factor" in state:
                    state["activation_factor"].lerp_(a, 1.0 - s["factor_decay"])
                    state["gradient_factor"].lerp_(g, 1.0 - s["factor_decay"])
                else:
                    state["activation_factor"], state["gradient_factor"] = a.clone(), g.clone()
            layer.batch = None
            if "activation_factor" not in state:
                continue
            state["step"] = torch.tensor(float(count), dtype=scalar_dtype())
            if (count - 1) % s["inverse_update_interval"] == 0 or "activation_inverse" not in state:
                state["activation_inverse"], state["gradient_inverse"] = damped_inverses(
                    state["activation_factor"], state["gradient_factor"], s["damping"]
                )
            bias_grad = bias.grad if bias is not None else None
            gradient = layer.gradient_matrix(sign * weight.grad, None if bias_grad is None else sign * bias_grad)
            v = state["gradient_inverse"] @ gradient @ state["activation_inverse"]
            inner += float((v * gradient).sum()) * lr * lr
            w = v[:, : weight[0].numel()].reshape(weight.shape)
            out[weight] = sign * w
            if bias is not None and bias.grad is not None:
                out[bias] = sign * v[:, -1].reshape(bias.shape)
        kl_clip = self.param_groups[0]["kl_clip"]
        if kl_clip is not None and inner > 0:
            nu = min(1.0, math.sqrt(kl_clip / inner))
            for p in out:
                out[p] = out[p] * nu
        return out


def damped_inverses(a: Tensor, g: Tensor, damping: float) -> tuple[Tensor, Tensor]:
    """``(A + pi sqrt(damping) I)^-1`` and ``(G + sqrt(damping) / pi I)^-1`` with Martens & Grosse's
    ``pi = sqrt((tr A / dim A) / (tr G / dim G))`` (section 6.3; 1 where a trace is 0)."""
    mean_a, mean_g = float(a.diagonal().mean()), float(g.diagonal().mean())
    pi = math.sqrt(mean_a / mean_g) if mean_a > 0 and mean_g > 0 else 1.0
    root = math.sqrt(damping)
    eye_a = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    eye_g = torch.eye(g.shape[0], dtype=g.dtype, device=g.device)
    return torch.linalg.inv(a + pi * root * eye_a), torch.linalg.inv(g + root / pi * eye_g)


SPECS = (
    Spec(
        # given parameters (no model) K-FAC has no layers: this row holds its contract; the layers'
        # natural gradient, intervals and clipping are tests/test_kfac.py's
        "kfac",
        KFAC,
        TestPlan(
            configs({}, ("no-momentum-decay", {"momentum": 0.0, "weight_decay": 0.1})),
            errors(
                COMMON_ERRORS,
                [
                    ({"damping": 0.0}, "damping value: 0.0; allowed range: 0 < damping"),
                    ({"factor_decay": 1.0}, "factor_decay value: 1.0"),
                    ({"factor_update_interval": 0}, "factor_update_interval: 0"),
                    ({"inverse_update_interval": 1.5}, "inverse_update_interval: 1.5"),
                    ({"kl_clip": -1.0}, "kl_clip value: -1.0"),
                ],
            ),
            complex=False,
            fusable=False,
            descent_lr=0.05,
            reference_state_loads=False,
        ),
        kind="per-tensor",
        second_pass=("param", "grad"),
    ),
)
