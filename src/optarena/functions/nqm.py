"""The noisy quadratic model (NQM) and its closed-form expected loss.

Zhang, Li, Nado, Martens, Sachdeva, Dahl, Shallue & Grosse (2019), "Which algorithmic
choices matter at which batch sizes? Insights from a noisy quadratic model",
https://arxiv.org/abs/1907.04164.

The loss is ``L(theta) = 1/2 sum_i h_i theta_i^2`` with curvatures ``h_i = 1 / i``; a
mini-batch of size ``B`` gives the gradient ``h * theta + eps`` with ``eps ~ N(0, C / B)`` and
``C = diag(c_i)``, ``c_i = 1 / i`` (the paper takes ``C = H``). Every coordinate evolves on its
own and linearly, so the second moments of the iterates obey an exact affine recursion
``s_{t+1} = M s_t + n``, and ``E[L] = sum_i h_i E[theta_i^2] / 2``:

- SGD, ``theta' = r theta - lr eps`` with ``r = 1 - lr h``:
  ``E[theta'^2] = r^2 E[theta^2] + lr^2 c / B``.
- heavy-ball momentum as in ``torch.optim.SGD`` (``v' = beta v + g``, ``theta' = theta - lr v'``;
  Polyak, 1964): the moments ``(E theta^2, E theta v, E v^2)`` follow a 3x3 affine map.
- Lookahead around SGD (Zhang, Lucas, Hinton & Ba, 2019, https://arxiv.org/abs/1907.08610):
  ``k`` SGD steps from the slow weights ``phi``, then ``phi' = phi + alpha (theta_k - phi)``
  and the fast weights restart from ``phi'``. Per cycle
  ``E[phi'^2] = a^2 E[phi^2] + alpha^2 lr^2 (c / B) sum_{j<k} r^{2j}``, ``a = 1 - alpha + alpha r^k``.

Nothing here depends on the learning rate until a method is chosen, so one model serves a
whole sweep; learning rates may be given as a 1-D tensor to compute many curves at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from optarena.checks import whole_number

METHODS = ("sgd", "momentum", "lookahead")
"""The methods with a closed form: SGD, heavy-ball momentum and Lookahead(SGD)."""

DEFAULT_MOMENTUM = 0.9
DEFAULT_K = 5
DEFAULT_ALPHA = 0.5


@dataclass(frozen=True)
class MomentRecursion:
    """An exact affine recursion ``s' = M s + n`` for each coordinate's second moments.

    ``matrix`` is ``[..., d, m, m]``, ``offset`` ``[..., d, m]`` (leading dims: one per learning
    rate), ``weight`` ``[d, m]`` gives the expected loss ``sum(weight * s)``, ``initial`` the
    moments at step 0, and ``period`` how many optimizer steps one application covers.
    """

    matrix: Tensor
    offset: Tensor
    weight: Tensor
    initial: Tensor
    period: int = 1

    def apply(self, s: Tensor) -> Tensor:
        """The moments one application later."""
        # einsum beats a batched matmul on many tiny matrices by several times on CPU.
        return torch.einsum("...ij,...j->...i", self.matrix, s) + self.offset

    def then(self, other: MomentRecursion) -> MomentRecursion:
        """This recursion followed by ``other``."""
        return MomentRecursion(
            torch.einsum("...ij,...jk->...ik", other.matrix, self.matrix),
            other.apply(self.offset),
            self.weight,
            self.initial,
            self.period + other.period,
        )

    def loss(self, s: Tensor) -> Tensor:
        """The expected loss for moments ``s``: ``[...]``."""
        return torch.einsum("...dm,dm->...", s, self.weight)

    def start(self) -> Tensor:
        """The initial moments, broadcast to the recursion's leading dims."""
        return self.initial.expand(self.offset.shape).clone()

    def curve(self, applications: int) -> Tensor:
        """The expected loss after 0, 1, ..., ``applications`` applications: ``[..., applications + 1]``."""
        s = self.start()
        losses = [self.loss(s)]
        for _ in range(applications):
            s = self.apply(s)
            losses.append(self.loss(s))
        return torch.stack(losses, dim=-1)

    def stable(self) -> Tensor:
        """Whether every coordinate's recursion contracts (spectral radius < 1): ``[...]``."""
        radius = torch.linalg.eigvals(self.matrix).abs().amax(dim=-1)
        return (radius < 1.0).all(dim=-1)

    def steady_state_loss(self) -> Tensor:
        """The limit of the expected loss (``inf`` where the recursion does not contract)."""
        eye = torch.eye(self.matrix.shape[-1], dtype=self.matrix.dtype)
        s, _ = torch.linalg.solve_ex(eye - self.matrix, self.offset.unsqueeze(-1))  # unstable ones are masked
        s = s.squeeze(-1)
        loss = self.loss(s)
        return torch.where(self.stable(), loss, torch.full_like(loss, math.inf))


def _number(value: Any, name: str, low: float, high: float, low_open: bool, high_open: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be in {left}{low:g}, {high:g}{right}, got {value!r}")
    return float(value)


def _vector(values: Sequence[float] | Tensor | None, dim: int, default: Tensor, name: str) -> Tensor:
    if values is None:
        return default.clone()
    tensor = torch.as_tensor(values, dtype=torch.float64).flatten()
    if tensor.numel() != dim:
        raise ValueError(f"{name} needs {dim} values (one per coordinate), got {tensor.numel()}")
    return tensor


class NoisyQuadraticModel:
    """The NQM of Zhang et al. (2019): ``L = 1/2 sum h_i theta_i^2``, gradient noise ``N(0, C / B)``.

    Args:
        dim: number of coordinates (default 100).
        batch_size: ``B`` (> 0, default 1); the noise covariance is ``C / B``.
        curvatures: ``h`` (default ``1 / i``, i = 1..dim).
        noise: the diagonal of ``C`` (default ``1 / i``).
        initial: ``theta_0`` (default all ones).

    Computation is in float64. ``loss``, ``gradient`` and ``minibatch_loss`` take
    ``theta[..., dim]``; the closed forms take the learning rate as a number or a 1-D tensor.
    """

    def __init__(
        self,
        dim: int = 100,
        batch_size: float = 1.0,
        curvatures: Sequence[float] | Tensor | None = None,
        noise: Sequence[float] | Tensor | None = None,
        initial: Sequence[float] | Tensor | None = None,
    ):
        self.dim = whole_number("NQM dim", dim)
        self.batch_size = _number(batch_size, "NQM batch_size", 0.0, math.inf, True, True)
        harmonic = 1.0 / torch.arange(1, dim + 1, dtype=torch.float64)
        self.curvatures = _vector(curvatures, dim, harmonic, "curvatures")
        self.noise = _vector(noise, dim, harmonic, "noise")
        self.initial = _vector(initial, dim, torch.ones(dim, dtype=torch.float64), "initial")
        if not bool((self.curvatures > 0).all()):
            raise ValueError("NQM curvatures must all be > 0")
        if not bool((self.noise >= 0).all()):
            raise ValueError("NQM noise variances must all be >= 0")

    def __repr__(self) -> str:
        return f"NoisyQuadraticModel(dim={self.dim}, batch_size={self.batch_size:g})"

    def with_batch_size(self, batch_size: float) -> NoisyQuadraticModel:
        """The same model with another batch size."""
        return NoisyQuadraticModel(self.dim, batch_size, self.curvatures, self.noise, self.initial)

    @property
    def noise_variance(self) -> Tensor:
        """The per-coordinate gradient-noise variance ``c / B``."""
        return self.noise / self.batch_size

    @property
    def initial_loss(self) -> float:
        return float(self.loss(self.initial))

    # -- the model ---------------------------------------------------------------------------

    def _check(self, theta: Tensor) -> Tensor:
        if theta.ndim == 0 or theta.shape[-1] != self.dim:
            raise ValueError(f"the NQM takes theta[..., {self.dim}], got shape {tuple(theta.shape)}")
        return theta

    def _h(self, like: Tensor) -> Tensor:
        return self.curvatures.to(dtype=like.dtype, device=like.device)

    def loss(self, theta: Tensor) -> Tensor:
        """The exact loss ``1/2 sum h theta^2``: shape ``[...]``."""
        theta = self._check(theta)
        return 0.5 * (self._h(theta) * theta**2).sum(dim=-1)

    def sample_noise(self, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One draw of ``eps ~ N(0, C / B)`` per row of ``like``."""
        std = self.noise_variance.sqrt().to(dtype=like.dtype)
        device = generator.device if generator is not None else like.device
        draw = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=device)
        return (draw * std.to(device)).to(like.device)

    def gradient(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A mini-batch gradient ``h * theta + eps``."""
        theta = self._check(theta).detach()
        return self._h(theta) * theta + self.sample_noise(theta, generator)

    def minibatch_loss(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A mini-batch loss ``L(theta) + eps . theta``: unbiased, and its gradient is :meth:`gradient`."""
        theta = self._check(theta)
        return self.loss(theta) + (self.sample_noise(theta.detach(), generator) * theta).sum(dim=-1)

    # -- closed forms ------------------------------------------------------------------------

    def recursion(self, method: str, lr: float | Tensor, **options: Any) -> MomentRecursion:
        """The exact second-moment recursion of ``method`` ('sgd', 'momentum', 'lookahead').

        Options: ``momentum`` (default 0.9) for 'momentum'; ``k`` (5) and ``alpha`` (0.5) for
        'lookahead', whose recursion advances one Lookahead cycle (``k`` steps) at a time.
        """
        if method not in METHODS:
            raise ValueError(f"unknown NQM method {method!r}; allowed: {', '.join(map(repr, METHODS))}")
        allowed = {"sgd": set(), "momentum": {"momentum"}, "lookahead": {"k", "alpha"}}[method]
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise TypeError(
                f"NQM method {method!r} got unknown option(s) {', '.join(map(repr, unknown))}; "
                f"its options: {', '.join(sorted(allowed)) or 'none'}"
            )
        lr_tensor = self._learning_rates(lr)
        if method == "sgd":
            return self._sgd(lr_tensor)
        if method == "momentum":
            beta = _number(options.get("momentum", DEFAULT_MOMENTUM), "momentum", 0.0, 1.0, False, True)
            return self._momentum(lr_tensor, beta)
        k = options.get("k", DEFAULT_K)
        whole_number("Lookahead k", k)
        alpha = _number(options.get("alpha", DEFAULT_ALPHA), "Lookahead alpha", 0.0, 1.0, True, False)
        return self._lookahead(lr_tensor, k, alpha)

    @staticmethod
    def _learning_rates(lr: float | Tensor) -> Tensor:
        tensor = torch.as_tensor(lr, dtype=torch.float64)
        if tensor.ndim > 1 or not bool(torch.isfinite(tensor).all()) or not bool((tensor > 0).all()):
            raise ValueError(f"the learning rate must be a number > 0 or a 1-D tensor of them, got {lr!r}")
        return tensor

    def _coefficients(self, lr: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per (learning rate, coordinate): ``lr``, ``r = 1 - lr h`` and ``sigma^2 = c / B``."""
        a = lr.unsqueeze(-1)  # [..., 1] broadcasts against [d]
        h = self.curvatures
        return a.expand(*lr.shape, self.dim), 1.0 - a * h, self.noise_variance.expand(*lr.shape, self.dim)

    def _sgd(self, lr: Tensor) -> MomentRecursion:
        a, r, var = self._coefficients(lr)
        weight = (0.5 * self.curvatures).unsqueeze(-1)
        return MomentRecursion((r**2)[..., None, None], (a**2 * var)[..., None], weight, (self.initial**2)[:, None])

    def _momentum(self, lr: Tensor, beta: float) -> MomentRecursion:
        # z = (theta, v):  theta' = r theta - a beta v - a eps,   v' = h theta + beta v + eps.
        a, r, var = self._coefficients(lr)
        h = self.curvatures.expand_as(a)
        b = torch.full_like(a, beta)
        rows = [
            [r**2, -2 * r * a * b, a**2 * b**2],
            [r * h, r * b - a * b * h, -a * b**2],
            [h**2, 2 * h * b, b**2],
        ]
        matrix = torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)
        offset = torch.stack([a**2 * var, -a * var, var], dim=-1)
        weight = torch.zeros(self.dim, 3, dtype=torch.float64)
        weight[:, 0] = 0.5 * self.curvatures
        initial = torch.zeros(self.dim, 3, dtype=torch.float64)
        initial[:, 0] = self.initial**2
        return MomentRecursion(matrix, offset, weight, initial)

    def _lookahead(self, lr: Tensor, k: int, alpha: float) -> MomentRecursion:
        a, r, var = self._coefficients(lr)
        contraction = 1.0 - alpha + alpha * r**k
        r2 = r**2
        # sum_{j<k} r^{2j}, written as a sum to stay exact when r^2 is 1.
        geometric = torch.stack([r2**j for j in range(k)], dim=0).sum(dim=0)
        offset = alpha**2 * a**2 * var * geometric
        weight = (0.5 * self.curvatures).unsqueeze(-1)
        return MomentRecursion(
            (contraction**2)[..., None, None], offset[..., None], weight, (self.initial**2)[:, None], period=k
        )

    def expected_loss(self, method: str, lr: float | Tensor, steps: int, **options: Any) -> Tensor:
        """``E[L(theta_t)]`` for t = 0..steps: ``[..., steps + 1]`` (leading dims: learning rates).

        For Lookahead, ``theta_t`` is what the parameters hold after step ``t``: the fast
        weights, which are reset to the slow weights after every ``k``-th step.
        """
        whole_number("steps", steps, 0)
        recursion = self.recursion(method, lr, **options)
        if method != "lookahead":
            return recursion.curve(steps)
        inner = self._sgd(self._learning_rates(lr))
        slow = recursion.start()
        losses = [recursion.loss(slow)]
        while len(losses) <= steps:
            fast = slow
            for _ in range(recursion.period - 1):
                fast = inner.apply(fast)
                losses.append(inner.loss(fast))
            slow = recursion.apply(slow)
            losses.append(recursion.loss(slow))
        return torch.stack(losses[: steps + 1], dim=-1)

    def steady_state_loss(self, method: str, lr: float | Tensor, **options: Any) -> Tensor:
        """The limit of the expected loss (for Lookahead: of the slow weights); ``inf`` if unstable."""
        return self.recursion(method, lr, **options).steady_state_loss()

    def steps_to_target(
        self,
        method: str,
        lr: float | Tensor,
        target: float,
        max_steps: int = 10**7,
        per_octave: int = 16,
        first_only: bool = False,
        **options: Any,
    ) -> Tensor:
        """The first step at which the expected loss is at most ``target`` (``inf`` if never).

        Checked at every step up to ``per_octave`` applications, then ``per_octave`` times per
        doubling of the step count (so the answer is exact to within ``2^(1/per_octave)``),
        jumping ahead with powers of the exact recursion; for Lookahead, at its sync steps.
        With ``first_only`` the search stops as soon as any learning rate reaches the target
        (the others read ``inf``): enough to find the fastest one, and much quicker.
        """
        if not math.isfinite(target) or target <= 0:
            raise ValueError(f"target must be a finite loss > 0, got {target!r}")
        recursion = self.recursion(method, lr, **options)
        powers = [recursion]  # powers[j] advances 2^j applications
        s = recursion.start()
        found = torch.full(s.shape[:-2], math.inf, dtype=torch.float64)
        done = recursion.loss(s) <= target
        found[done] = 0.0
        applications = 0
        while applications * recursion.period < max_steps and not bool(done.all()):
            jump = max(0, int(math.floor(math.log2(max(applications, 1) / per_octave)))) if applications else 0
            while len(powers) <= jump:
                powers.append(powers[-1].then(powers[-1]))
            s = powers[jump].apply(s)
            applications += 2**jump
            loss = recursion.loss(s)
            hit = (loss <= target) & ~done
            found[hit] = float(applications * recursion.period)
            done = done | hit | ~torch.isfinite(loss)
            if first_only and bool(hit.any()):
                break
        return found
