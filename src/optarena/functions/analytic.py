"""Classic analytic test functions, each with its value, closed-form gradient and minima.

References for the definitions and minima: Rosenbrock (1960, https://doi.org/10.1093/comjnl/3.3.175),
Rastrigin (1974), Beale (1958), Himmelblau (1972, *Applied Nonlinear Programming*); the
survey of Jamil & Yang (2013, https://arxiv.org/abs/1308.4008) lists them all.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from optarena.checks import finite_number, whole_number
from optarena.functions.base import TestFunction, check_box


class Rosenbrock(TestFunction):
    """Rosenbrock's banana valley: ``sum_i b (x[i+1] - x[i]^2)^2 + (a - x[i])^2``.

    A narrow curved valley whose floor is nearly flat: gradient descent finds the valley at
    once and then crawls along it. Defaults ``a=1``, ``b=100``; the minimum is ``(a, a^2)`` in
    two dimensions and ``(1, ..., 1)`` in more (where only ``a=1`` is allowed).
    """

    name = "rosenbrock"
    description = "Rosenbrock's curved valley: easy to find, slow to follow."

    def __init__(self, dim: int = 2, a: float = 1.0, b: float = 100.0):
        self.dim = whole_number("Rosenbrock dim", dim, 2)
        self.a = float(a)
        self.b = finite_number("Rosenbrock b", b, strict=True)
        if self.dim > 2 and self.a != 1.0:
            raise ValueError(f"Rosenbrock with dim > 2 has a known minimum only for a=1, got a={a!r}")
        if self.dim == 2:
            self.formula = f"{self.b:g} (y - x^2)^2 + ({self.a:g} - x)^2"
        else:
            self.formula = f"sum_i {self.b:g} (x[i+1] - x[i]^2)^2 + ({self.a:g} - x[i])^2"
        self.minima = [(self.a, self.a**2)] if self.dim == 2 else [(1.0,) * self.dim]
        self.min_value = 0.0
        if self.dim == 2:
            self.bounds = check_box(((-2.0, 2.0), (-1.0, 3.0)), 2, "bounds")
            self.start = (-1.2, 1.0)
        else:
            self.bounds = ((-2.0, 2.0),) * self.dim
            self.start = tuple(-1.2 if i % 2 == 0 else 1.0 for i in range(self.dim))
        self.start_region = self.bounds

    def value(self, x: Tensor) -> Tensor:
        head, tail = x[..., :-1], x[..., 1:]
        return (self.b * (tail - head**2) ** 2 + (self.a - head) ** 2).sum(dim=-1)

    def gradient(self, x: Tensor) -> Tensor:
        head, tail = x[..., :-1], x[..., 1:]
        valley = tail - head**2
        grad = torch.zeros_like(x)
        grad[..., :-1] = -4.0 * self.b * head * valley - 2.0 * (self.a - head)
        grad[..., 1:] += 2.0 * self.b * valley
        return grad


class Rastrigin(TestFunction):
    """Rastrigin's egg box: ``A n + sum_i x[i]^2 - A cos(2 pi x[i])``, minimum 0 at the origin.

    A bowl covered with a regular grid of local minima (near every integer point): a test of
    whether noise or momentum carries an optimizer across the bumps.
    """

    name = "rastrigin"
    description = "A bowl covered with local minima at the integer points."

    def __init__(self, dim: int = 2, A: float = 10.0):
        self.dim = whole_number("Rastrigin dim", dim, 1)
        self.A = finite_number("Rastrigin A", A, strict=True)
        if self.dim == 2:
            self.formula = f"{2 * self.A:g} + x^2 + y^2 - {self.A:g} (cos 2 pi x + cos 2 pi y)"
        else:
            self.formula = f"{self.A:g} n + sum_i x[i]^2 - {self.A:g} cos(2 pi x[i])"
        self.minima = [(0.0,) * self.dim]
        self.min_value = 0.0
        self.bounds = ((-5.12, 5.12),) * self.dim
        self.start = (2.7, -3.3) if self.dim == 2 else tuple(2.7 if i % 2 == 0 else -3.3 for i in range(self.dim))
        self.start_region = self.bounds

    def value(self, x: Tensor) -> Tensor:
        return self.A * self.dim + (x**2 - self.A * torch.cos(2 * math.pi * x)).sum(dim=-1)

    def gradient(self, x: Tensor) -> Tensor:
        return 2.0 * x + 2.0 * math.pi * self.A * torch.sin(2 * math.pi * x)


class Beale(TestFunction):
    """Beale's function: ``(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2``.

    Flat plateaus (along ``y = 1``) and steep walls in the corners; minimum 0 at ``(3, 0.5)``.
    """

    name = "beale"
    description = "Flat plateaus and steep corners; minimum at (3, 0.5)."
    formula = "(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2"

    def __init__(self) -> None:
        self.dim = 2
        self.minima = [(3.0, 0.5)]
        self.min_value = 0.0
        self.bounds = ((-4.5, 4.5), (-4.5, 4.5))
        self.start = (1.0, 1.5)
        self.start_region = ((-2.0, 4.5), (-2.0, 2.0))

    @staticmethod
    def _terms(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        a, b = x[..., 0], x[..., 1]
        return a, b, 1.5 - a + a * b, 2.25 - a + a * b**2, 2.625 - a + a * b**3

    def value(self, x: Tensor) -> Tensor:
        _, _, u1, u2, u3 = self._terms(x)
        return u1**2 + u2**2 + u3**2

    def gradient(self, x: Tensor) -> Tensor:
        a, b, u1, u2, u3 = self._terms(x)
        da = 2 * (u1 * (b - 1) + u2 * (b**2 - 1) + u3 * (b**3 - 1))
        db = 2 * a * (u1 + 2 * u2 * b + 3 * u3 * b**2)
        return torch.stack([da, db], dim=-1)


class Himmelblau(TestFunction):
    """Himmelblau's function: ``(x^2 + y - 11)^2 + (x + y^2 - 7)^2``, four minima of value 0.

    Which of the four an optimizer reaches depends on where it starts and how it moves.
    """

    name = "himmelblau"
    description = "Four equal minima: which one a path ends in depends on the optimizer."
    formula = "(x^2 + y - 11)^2 + (x + y^2 - 7)^2"

    def __init__(self) -> None:
        self.dim = 2
        # (3, 2) is exact; the others solve grad = 0 to double precision (checked in the tests).
        self.minima = [
            (3.0, 2.0),
            (-2.805118086952745, 3.131312518250573),
            (-3.779310253377747, -3.2831859912861696),
            (3.5844283403304917, -1.8481265269644036),
        ]
        self.min_value = 0.0
        self.bounds = ((-5.0, 5.0), (-5.0, 5.0))
        self.start = (0.0, -1.0)
        self.start_region = self.bounds

    def value(self, x: Tensor) -> Tensor:
        a, b = x[..., 0], x[..., 1]
        return (a**2 + b - 11) ** 2 + (a + b**2 - 7) ** 2

    def gradient(self, x: Tensor) -> Tensor:
        a, b = x[..., 0], x[..., 1]
        p, q = a**2 + b - 11, a + b**2 - 7
        return torch.stack([4 * a * p + 2 * q, 2 * p + 4 * b * q], dim=-1)


class IllConditionedQuadratic(TestFunction):
    """``0.5 x^T A x`` with eigenvalues of ``A`` log-spaced from 1 down to ``1 / condition``.

    In two dimensions the steep axis is turned ``angle`` degrees from the x-axis (default 30),
    so that a per-coordinate preconditioner cannot undo the conditioning; in more dimensions
    ``A`` is diagonal. Minimum 0 at the origin.
    """

    name = "quadratic"
    description = "An ill-conditioned, rotated quadratic bowl: steep across, flat along."

    def __init__(self, dim: int = 2, condition: float = 100.0, angle: float | None = None):
        self.dim = whole_number("quadratic dim", dim, 1)
        self.condition = finite_number("quadratic condition", condition, strict=True)
        if self.condition < 1:
            raise ValueError(f"quadratic condition must be >= 1, got {condition!r}")
        if angle is not None and self.dim != 2:
            raise ValueError(f"quadratic angle applies in two dimensions only, got dim={dim}")
        self.angle = (30.0 if angle is None else float(angle)) if self.dim == 2 else 0.0
        eigenvalues = torch.logspace(0.0, -math.log10(self.condition), self.dim, dtype=torch.float64)
        if self.dim == 2:
            t = math.radians(self.angle)
            rotation = torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]], dtype=torch.float64)
            self.matrix = rotation @ torch.diag(eigenvalues) @ rotation.T
        else:
            self.matrix = torch.diag(eigenvalues)
        self.eigenvalues = eigenvalues
        self.formula = f"0.5 x^T A x, eigenvalues of A from 1 to 1/{self.condition:g}"
        if self.dim == 2:
            self.formula += f", steep axis at {self.angle:g} degrees"
        self.minima = [(0.0,) * self.dim]
        self.min_value = 0.0
        self.bounds = ((-6.0, 6.0),) * self.dim
        self.start = (5.0, -2.0) if self.dim == 2 else (5.0,) * self.dim
        self.start_region = self.bounds

    def _matrix(self, x: Tensor) -> Tensor:
        return self.matrix.to(dtype=x.dtype, device=x.device)

    def value(self, x: Tensor) -> Tensor:
        return 0.5 * (x * (x @ self._matrix(x))).sum(dim=-1)

    def gradient(self, x: Tensor) -> Tensor:
        return x @ self._matrix(x)  # A is symmetric


class Saddle(TestFunction):
    """``x^2 + (y^2 - 1)^2 / 4``: a saddle at the origin between minima at ``(0, +-1)``.

    The curvature at the saddle is +2 along x and -1 along y. A path that starts near
    ``y = 0`` first slides to the saddle, where the gradient vanishes, and must then escape
    along y: plain gradient descent leaves slowly, momentum and adaptive steps faster.
    """

    name = "saddle"
    description = "A saddle point between two minima: how fast does each method escape?"
    formula = "x^2 + (y^2 - 1)^2 / 4"

    def __init__(self) -> None:
        self.dim = 2
        self.minima = [(0.0, 1.0), (0.0, -1.0)]
        self.min_value = 0.0
        self.bounds = ((-2.0, 2.0), (-1.5, 1.5))
        self.start = (-1.8, 1e-3)
        self.start_region = ((-2.0, 2.0), (-0.01, 0.01))

    def value(self, x: Tensor) -> Tensor:
        a, b = x[..., 0], x[..., 1]
        return a**2 + 0.25 * (b**2 - 1) ** 2

    def gradient(self, x: Tensor) -> Tensor:
        a, b = x[..., 0], x[..., 1]
        return torch.stack([2 * a, b * (b**2 - 1)], dim=-1)


FUNCTIONS: dict[str, type[TestFunction]] = {
    cls.name: cls for cls in (Rosenbrock, Rastrigin, Beale, Himmelblau, IllConditionedQuadratic, Saddle)
}
"""The built-in functions by registry name, in the order they are listed."""
