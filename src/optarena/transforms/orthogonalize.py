"""Muon's transforms: a momentum average and the Newton-Schulz orthogonalisation of each matrix.

Jordan et al. 2024 (https://kellerjordan.github.io/posts/muon/); Liu et al. 2025, Muon is
Scalable for LLM Training (https://arxiv.org/abs/2502.16982), as ``torch.optim.Muon`` computes it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, Choice, Constraint, Flag, Hyper, Integer, Real, Tuple
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, zeros
from optarena.transforms.matrix import MatrixTransform, ctx_compiled, kernel
from optarena.transforms.ops import ListOps

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
"""The quintic's coefficients (a, b, c) of Jordan et al., as torch.optim.Muon."""

NS_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


class TraceAverage(Transform):
    """Momentum as an average, as ``torch.optim.Muon``: ``b <- momentum * b + (1 - momentum) * u``.

    Output ``(1 - momentum) * u + momentum * b`` with ``nesterov``, else ``b``. The buffer
    starts at zero (so the first step's average is ``(1 - momentum) u``, as torch's).
    """

    hyperparameters = {
        "momentum": Hyper(0.95, NONNEGATIVE, "momentum: the weight of the old average"),
        "nesterov": Hyper(True, Flag(), "use the Nesterov form of the average"),
    }
    state_keys = ("momentum_buffer",)

    def prepare(self, ctx: StepContext) -> Prepared:
        ctx.init_state("momentum_buffer", zeros)
        momentum = float(self.value(ctx, "momentum"))
        return Prepared(
            scalars={"momentum": momentum, "one_minus_momentum": 1.0 - momentum},
            static={"nesterov": bool(self.value(ctx, "nesterov"))},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        buffers = ops.lerp_(k.state("momentum_buffer"), updates, k.scalar("one_minus_momentum"))
        if not k.static("nesterov"):
            return buffers
        out = k.writable(ops, updates)
        return ops.lerp_(out, buffers, k.scalar("momentum"))


class AdjustLrChoice(Constraint):
    """``None``, ``"original"`` or ``"match_rms_adamw"``, refused in torch.optim.Muon's words."""

    options = (None, "original", "match_rms_adamw")

    def describe(self, name: str) -> str:
        return f"{name} one of None, 'original', 'match_rms_adamw'"

    def check(self, name: str, value: Any) -> None:
        if value not in self.options:
            raise ValueError(f"Adjust learning rate function {value} is not supported; allowed: {self.describe(name)}")


def lr_ratio(adjust_lr_fn: str | None, rows: int, cols: int) -> float:
    """The factor ``adjust_lr_fn`` puts on the learning rate of a ``rows x cols`` matrix:
    ``sqrt(max(1, rows / cols))`` (``"original"``, None) or ``0.2 sqrt(max(rows, cols))``
    (``"match_rms_adamw"``, Liu et al.'s RMS matching)."""
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1.0, rows / cols)) if cols else 1.0  # an empty matrix takes no update


@kernel
def newton_schulz(matrix: Tensor, a: float, b: float, c: float, steps: int, eps: float, dtype: torch.dtype) -> Tensor:
    """``steps`` quintic Newton-Schulz iterations towards the orthogonal factor ``U V^T`` of ``matrix``.

    In ``dtype``, on the wide orientation (a tall matrix is transposed and back), after scaling
    to a Frobenius norm of at most 1: ``A = X X^T``, ``X <- a X + (b A + c A^2) X``. The
    operations and their order are ``torch.optim.Muon``'s, so in bfloat16 the two agree bit for bit.
    """
    x = matrix.to(dtype)
    tall = matrix.size(0) > matrix.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        polynomial = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, polynomial, x, beta=a)
    return x.T if tall else x


class Orthogonalize(MatrixTransform):
    """Each matrix ``U S V^T`` replaced by Newton-Schulz's approximation of ``U V^T``, times the
    learning-rate factor of ``adjust_lr_fn``.

    Matrix view (:func:`optarena.transforms.matrix.flattened_matrix`): a 2-D tensor is itself;
    a tensor of more dimensions is ``shape[0] x prod(shape[1:])`` (a convolution's filters:
    output channels against fan-in, as Jordan et al.'s code); a 1-D tensor of ``n`` is a
    ``1 x n`` row, whose orthogonal factor is ``u / ||u||`` (factor 1 under ``"original"``).
    The iterations run in ``ns_dtype`` (bfloat16 as torch.optim.Muon; float32 or float64 for
    exact arithmetic) and the result returns to the dtype of the math. Signal: ``update_rms``,
    the RMS of each tensor's result.
    """

    hyperparameters = {
        "ns_coefficients": Hyper(
            NS_COEFFICIENTS, Tuple((Real(), Real(), Real())), "coefficients (a, b, c) of the quintic iteration"
        ),
        "eps": Hyper(1e-7, NONNEGATIVE, "least norm the update is divided by before the iterations"),
        "ns_steps": Hyper(5, Integer(0, 99), "Newton-Schulz iterations (fewer than 100, as torch.optim.Muon)"),
        "adjust_lr_fn": Hyper(
            None,
            AdjustLrChoice(),
            "learning-rate factor per matrix: None or 'original' sqrt(max(1, rows/cols)); "
            "'match_rms_adamw' 0.2 sqrt(max(rows, cols))",
        ),
        "ns_dtype": Hyper("bfloat16", Choice(tuple(NS_DTYPES)), "dtype of the Newton-Schulz iterations"),
    }

    def prepare(self, ctx: StepContext) -> Prepared:
        adjust = self.value(ctx, "adjust_lr_fn")
        ratios = [lr_ratio(adjust, *self.matrix_shape(p.shape)) for p in ctx.originals]
        a, b, c = (float(x) for x in self.value(ctx, "ns_coefficients"))
        return Prepared(
            scalars={"lr_ratio": ctx.per_tensor(ratios)},
            static={
                "coefficients": (a, b, c),
                "eps": float(self.value(ctx, "eps")),
                "ns_steps": int(self.value(ctx, "ns_steps")),
                "ns_dtype": self.value(ctx, "ns_dtype"),
                "compiled": ctx_compiled(ctx),
            },
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        out = super().apply(ops, updates, k)
        if k.recording:  # the RMS of each orthogonalised update, r * O (what lr multiplies)
            k.report("update_rms", [n / math.sqrt(max(u.numel(), 1)) for n, u in zip(ops.norm(out), out)])
        return out

    def update_matrix(self, matrix: Tensor, state: dict[str, Any], values: dict[str, Any], k: Kernel) -> Tensor:
        a, b, c = k.static("coefficients")
        dtype = NS_DTYPES[k.static("ns_dtype")]
        out = newton_schulz(
            matrix, a, b, c, k.static("ns_steps"), k.static("eps"), dtype, compiled=k.static("compiled")
        )
        return out.to(matrix.dtype).mul_(values["lr_ratio"])
