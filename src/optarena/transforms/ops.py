"""List operations that transforms are written in, with two backends.

A transform's math is written once, against lists of tensors, with the operations of
:class:`ListOps`. Two backends run it:

- :data:`FOREACH` (the eager path): each operation is one ``torch._foreach_*`` call over
  the whole list, so a step issues a fixed number of kernels whatever the number of
  parameters.
- :data:`LOOP` (the fused path): each operation is a Python loop of ordinary tensor
  operations. Under ``torch.compile`` the loop is unrolled and Inductor fuses the chain
  into one or two passes over memory.

A *scalar* argument is a Python number, a 0-d tensor, or a list holding one of those per
tensor of the list (per-tensor values such as bias corrections or trust ratios).
"""

from __future__ import annotations

from typing import Any, TypeGuard

import torch
from torch import Tensor

Scalar = float | Tensor | list[float] | list[Tensor]


class Fresh(list):  # type: ignore[type-arg]
    """Tensors an operation has just made, in memory of their own: the chain owns them and a
    transform may change them in place.

    A plain list may alias the gradients (which must come out of a step unchanged), a state
    tensor or the parameters, so a transform copies it before writing (:func:`owned`,
    ``Kernel.writable``). Every out-of-place operation of :class:`ListOps` returns a ``Fresh``
    list; in-place operations return their first list, whatever it is.
    """


def owned(updates: list[Tensor]) -> bool:
    """Whether the chain may change ``updates`` in place (they are :class:`Fresh`)."""
    return isinstance(updates, Fresh)


def _item(scalar: Scalar, index: int) -> Any:
    """The value of ``scalar`` for the tensor at ``index``."""
    if isinstance(scalar, (list, tuple)):
        return scalar[index]
    return scalar


def _times(x: Tensor, scalar: Scalar | None, index: int) -> Tensor:
    """``x`` times the value of ``scalar`` for the tensor at ``index``; ``x`` itself for None."""
    return x if scalar is None else x * _item(scalar, index)


def _is_number(value: object) -> TypeGuard[float]:
    """A plain Python number (the fast ``torch._foreach_*`` overloads take only these as ``alpha``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _sum_of_squares(x: Tensor) -> Tensor:
    """The sum of ``x * x``, over the last dimension first.

    Summing rows first keeps the reduction in the loop nest of a pointwise pass over the same
    tensor (rows outside, elements inside), so the compiler can take both in one pass.
    """
    squares = x * x
    return squares.sum(dim=-1).sum() if x.dim() > 1 else squares.sum()


class ListOps:
    """The operations a transform may use; a ``*_`` method works in place on its first list."""

    def mul_(self, xs: list[Tensor], s: Scalar) -> list[Tensor]:
        """``x *= s``."""
        raise NotImplementedError

    def div_(self, xs: list[Tensor], s: Scalar) -> list[Tensor]:
        """``x /= s``."""
        raise NotImplementedError

    def add_(self, xs: list[Tensor], ys: list[Tensor], alpha: Scalar = 1.0) -> list[Tensor]:
        """``x += alpha * y`` (``ys`` shaped like ``xs``)."""
        raise NotImplementedError

    def add_scalar_(self, xs: list[Tensor], s: Scalar) -> list[Tensor]:
        """``x += s``."""
        raise NotImplementedError

    def addcmul_(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar = 1.0) -> list[Tensor]:
        """``x += s * a * b``."""
        raise NotImplementedError

    def addcdiv_(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar = 1.0) -> list[Tensor]:
        """``x += s * a / b``."""
        raise NotImplementedError

    def addcmul(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar = 1.0) -> Fresh:
        """``x + s * a * b``, new tensors."""
        raise NotImplementedError

    def lerp_(self, xs: list[Tensor], ys: list[Tensor], weight: Scalar) -> list[Tensor]:
        """``x += weight * (y - x)``."""
        raise NotImplementedError

    def maximum_(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        """``x = max(x, y)`` elementwise."""
        raise NotImplementedError

    def sqrt_(self, xs: list[Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def reciprocal_(self, xs: list[Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def copy_(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def clone(self, xs: list[Tensor]) -> Fresh:
        raise NotImplementedError

    def cast(self, xs: list[Tensor], dtype: torch.dtype) -> list[Tensor]:
        """The tensors in ``dtype``: new (:class:`Fresh`) tensors, or ``xs`` itself when it already is."""
        raise NotImplementedError

    def scaled(self, xs: list[Tensor], s: Scalar) -> Fresh:
        """``s * x``, new tensors."""
        raise NotImplementedError

    def product(self, xs: list[Tensor], ys: list[Tensor]) -> Fresh:
        """``x * y``, new tensors."""
        raise NotImplementedError

    def added(self, xs: list[Tensor], ys: list[Tensor], alpha: Scalar = 1.0) -> Fresh:
        """``x + alpha * y``, new tensors."""
        raise NotImplementedError

    def plus(self, xs: list[Tensor], s: Scalar) -> Fresh:
        """``x + s``, new tensors."""
        raise NotImplementedError

    def sqrt(self, xs: list[Tensor]) -> Fresh:
        raise NotImplementedError

    def abs(self, xs: list[Tensor]) -> Fresh:
        raise NotImplementedError

    def neg(self, xs: list[Tensor]) -> Fresh:
        raise NotImplementedError

    def sign(self, xs: list[Tensor]) -> Fresh:
        raise NotImplementedError

    def norm(self, xs: list[Tensor]) -> list[Tensor]:
        """The Euclidean norm of each tensor: a list of 0-d tensors."""
        raise NotImplementedError

    def norm_alongside(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        """``norm(xs)``, taken in the pass over memory that reads ``ys`` (same shapes).

        The values are those of :meth:`norm`. On the fused path a reduction over ``xs``
        alone shares no input with the pass that computes ``ys`` and becomes a pass of its
        own; tying it to ``ys`` lets the compiler take both in one.
        """
        return self.norm(xs)

    def norms_alongside(self, xs: list[Tensor], ys: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """``(norm_alongside(xs, ys), norm(ys))``: the two norms of a trust ratio, asked together
        so that a backend over sharded tensors completes both in one exchange between ranks."""
        return self.norm_alongside(xs, ys), self.norm(ys)

    def ratio_or(self, num: list[Tensor], den: list[Tensor], default: float) -> list[Tensor]:
        """Per item (0-d tensors): ``num / den`` where both are positive, else ``default``."""
        raise NotImplementedError

    # -- added for Rprop, AdaBound and Adafactor ------------------------------------------

    def clamp_(self, xs: list[Tensor], low: Scalar | None = None, high: Scalar | None = None) -> list[Tensor]:
        """``x = min(max(x, low), high)``; a bound of None is left open."""
        raise NotImplementedError

    def clamp(self, xs: list[Tensor], low: list[Tensor], high: list[Tensor]) -> Fresh:
        """``min(max(x, low), high)`` with tensor bounds shaped like ``xs``, new tensors."""
        raise NotImplementedError

    # Selections are one ``torch.where`` per tensor on both backends: exact for every value
    # (infinities and NaN included) and, in eager mode, cheaper than selecting by multi-tensor
    # arithmetic despite the per-tensor calls (docs/design.md).

    def select_by_sign(self, xs: list[Tensor], negative: Scalar, zero: Scalar, positive: Scalar) -> Fresh:
        """New tensors holding ``negative``, ``zero`` or ``positive`` where ``x`` is below, at or
        above zero; a NaN counts as zero (as in :func:`torch.sign`)."""
        out = []
        for i, x in enumerate(xs):
            middle = _item(zero, i)
            if not isinstance(middle, Tensor):  # a 0-d tensor: the result takes x's dtype, not the default one
                middle = torch.tensor(middle, dtype=x.dtype, device=x.device)
            out.append(torch.where(x > 0, _item(positive, i), torch.where(x < 0, _item(negative, i), middle)))
        return Fresh(out)

    def zero_where_negative(self, xs: list[Tensor], ys: list[Tensor]) -> Fresh:
        """New tensors: ``0`` where ``y < 0``, else ``x`` (``y`` NaN included)."""
        return Fresh([torch.where(y < 0, 0.0, x) for x, y in zip(xs, ys)])

    def rsqrt(self, xs: list[Tensor]) -> Fresh:
        """``1 / sqrt(x)``, new tensors."""
        raise NotImplementedError

    def div(self, xs: list[Tensor], ys: list[Tensor]) -> Fresh:
        """``x / y`` (broadcasting), new tensors."""
        raise NotImplementedError

    def mean(self, xs: list[Tensor], dim: int, keepdim: bool = False) -> Fresh:
        """The mean of each tensor over dimension ``dim``, new tensors.

        Reductions over a dimension have no multi-tensor form in torch: both backends run
        them tensor by tensor.
        """
        raise NotImplementedError

    def materialize(self, xs: list[Tensor]) -> list[Tensor]:
        """The same values, computed once into memory.

        For small tensors (per-tensor or per-row numbers) that a pass over a large tensor
        reads at every element: on the fused path the compiler would otherwise recompute them
        inside that pass, once per element. The eager path has them in memory already.
        """
        return xs

    def unsqueeze(self, xs: list[Tensor], dim: int) -> list[Tensor]:
        """Views with a dimension of size 1 inserted at ``dim``."""
        raise NotImplementedError

    def where_positive(self, values: list[Tensor], gates: list[list[Tensor]], default: float) -> list[Tensor]:
        """Per item (0-d tensors): ``value`` where every gate list holds a positive number, else ``default``."""
        raise NotImplementedError

    def centralize(self, xs: list[Tensor], min_dim: int) -> list[Tensor]:
        """Each ``x`` with more than ``min_dim`` dimensions minus its mean over all dimensions but
        the first, as a new tensor; the others are returned as they are (not copied), so the
        list is :class:`Fresh` only when every tensor was centralised."""
        raise NotImplementedError

    def centralize_(self, xs: list[Tensor], min_dim: int) -> list[Tensor]:
        """:meth:`centralize` in place."""
        raise NotImplementedError


class ForeachOps(ListOps):
    """Each operation is one multi-tensor ``torch._foreach_*`` call."""

    def mul_(self, xs: list[Tensor], s: Scalar) -> list[Tensor]:
        torch._foreach_mul_(xs, s)
        return xs

    def div_(self, xs: list[Tensor], s: Scalar) -> list[Tensor]:
        torch._foreach_div_(xs, s)
        return xs

    def add_(self, xs: list[Tensor], ys: list[Tensor], alpha: Scalar = 1.0) -> list[Tensor]:
        if _is_number(alpha):
            torch._foreach_add_(xs, ys, alpha=alpha)
        else:
            torch._foreach_add_(xs, torch._foreach_mul(ys, alpha))
        return xs

    def add_scalar_(self, xs: list[Tensor], s: Scalar) -> list[Tensor]:
        torch._foreach_add_(xs, s)
        return xs

    def addcmul_(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar = 1.0) -> list[Tensor]:
        if _is_number(s):
            torch._foreach_addcmul_(xs, a, b, s)
        else:
            products = torch._foreach_mul(a, b)
            torch._foreach_mul_(products, s)
            torch._foreach_add_(xs, products)
        return xs

    def addcdiv_(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar = 1.0) -> list[Tensor]:
        if _is_number(s):
            torch._foreach_addcdiv_(xs, a, b, s)
        else:
            quotients = torch._foreach_div(a, b)
            torch._foreach_mul_(quotients, s)
            torch._foreach_add_(xs, quotients)
        return xs

    def addcmul(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar = 1.0) -> Fresh:
        if not xs:
            return Fresh([])
        if _is_number(s):
            return Fresh(list(torch._foreach_addcmul(xs, a, b, s)))
        products = torch._foreach_mul(a, b)
        torch._foreach_mul_(products, s)
        return Fresh(list(torch._foreach_add(xs, products)))

    def lerp_(self, xs: list[Tensor], ys: list[Tensor], weight: Scalar) -> list[Tensor]:
        torch._foreach_lerp_(xs, ys, weight)  # type: ignore[arg-type]  # torch takes any Scalar; its stubs, one form per overload
        return xs

    def maximum_(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        torch._foreach_maximum_(xs, ys)
        return xs

    def sqrt_(self, xs: list[Tensor]) -> list[Tensor]:
        torch._foreach_sqrt_(xs)
        return xs

    def reciprocal_(self, xs: list[Tensor]) -> list[Tensor]:
        torch._foreach_reciprocal_(xs)
        return xs

    def copy_(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        torch._foreach_copy_(xs, ys)
        return xs

    def clone(self, xs: list[Tensor]) -> Fresh:
        return Fresh(list(torch._foreach_mul(xs, 1.0)) if xs else [])

    def cast(self, xs: list[Tensor], dtype: torch.dtype) -> list[Tensor]:
        # torch has no multi-tensor conversion: one copy per tensor (half precision only)
        return Fresh([x.to(dtype) for x in xs]) if xs and xs[0].dtype != dtype else xs

    def scaled(self, xs: list[Tensor], s: Scalar) -> Fresh:
        return Fresh(list(torch._foreach_mul(xs, s)) if xs else [])

    def product(self, xs: list[Tensor], ys: list[Tensor]) -> Fresh:
        return Fresh(list(torch._foreach_mul(xs, ys)) if xs else [])

    def added(self, xs: list[Tensor], ys: list[Tensor], alpha: Scalar = 1.0) -> Fresh:
        if not xs:
            return Fresh([])
        if _is_number(alpha):
            return Fresh(list(torch._foreach_add(xs, ys, alpha=alpha)))
        return Fresh(list(torch._foreach_add(xs, torch._foreach_mul(ys, alpha))))

    def plus(self, xs: list[Tensor], s: Scalar) -> Fresh:
        return Fresh(list(torch._foreach_add(xs, s)) if xs else [])

    def sqrt(self, xs: list[Tensor]) -> Fresh:
        return Fresh(list(torch._foreach_sqrt(xs)) if xs else [])

    def abs(self, xs: list[Tensor]) -> Fresh:
        return Fresh(list(torch._foreach_abs(xs)) if xs else [])

    def neg(self, xs: list[Tensor]) -> Fresh:
        return Fresh(list(torch._foreach_neg(xs)) if xs else [])

    def sign(self, xs: list[Tensor]) -> Fresh:
        return Fresh(list(torch._foreach_sign(xs)) if xs else [])

    def norm(self, xs: list[Tensor]) -> list[Tensor]:
        return list(torch._foreach_norm(xs)) if xs else []

    def ratio_or(self, num: list[Tensor], den: list[Tensor], default: float) -> list[Tensor]:
        if not num:
            return []
        n, d = torch.stack(num), torch.stack(den)
        ok = (n > 0) & (d > 0)
        out = torch.where(ok, n / torch.where(ok, d, torch.ones_like(d)), torch.full_like(n, default))
        return list(out.unbind())

    # -- added for Rprop, AdaBound and Adafactor ------------------------------------------

    def clamp_(self, xs: list[Tensor], low: Scalar | None = None, high: Scalar | None = None) -> list[Tensor]:
        if low is not None:
            torch._foreach_clamp_min_(xs, low)  # type: ignore[arg-type]  # as lerp_
        if high is not None:
            torch._foreach_clamp_max_(xs, high)  # type: ignore[arg-type]  # as lerp_
        return xs

    def clamp(self, xs: list[Tensor], low: list[Tensor], high: list[Tensor]) -> Fresh:
        if not xs:
            return Fresh([])
        out = list(torch._foreach_clamp_min(xs, low))
        torch._foreach_clamp_max_(out, high)
        return Fresh(out)

    def rsqrt(self, xs: list[Tensor]) -> Fresh:
        return Fresh(list(torch._foreach_rsqrt(xs)) if xs else [])

    def div(self, xs: list[Tensor], ys: list[Tensor]) -> Fresh:
        return Fresh(list(torch._foreach_div(xs, ys)) if xs else [])

    def mean(self, xs: list[Tensor], dim: int, keepdim: bool = False) -> Fresh:
        return Fresh([x.mean(dim=dim, keepdim=keepdim) for x in xs])

    def unsqueeze(self, xs: list[Tensor], dim: int) -> list[Tensor]:
        return [x.unsqueeze(dim) for x in xs]

    def where_positive(self, values: list[Tensor], gates: list[list[Tensor]], default: float) -> list[Tensor]:
        if not values:
            return []
        ok = torch.stack(gates[0]) > 0
        for gate in gates[1:]:
            ok &= torch.stack(gate) > 0
        stacked = torch.stack(values)
        return list(torch.where(ok, stacked, torch.full_like(stacked, default)).unbind())

    def centralize(self, xs: list[Tensor], min_dim: int) -> list[Tensor]:
        out = list(xs)
        for indices, means in _means_by_shape(xs, min_dim):
            centred = torch._foreach_sub([xs[i] for i in indices], means)
            for i, c in zip(indices, centred):
                out[i] = c
        return Fresh(out) if all(x.dim() > min_dim for x in xs) else out

    def centralize_(self, xs: list[Tensor], min_dim: int) -> list[Tensor]:
        for indices, means in _means_by_shape(xs, min_dim):
            torch._foreach_sub_([xs[i] for i in indices], means)
        return xs


class LoopOps(ListOps):
    """Each operation is a loop of ordinary tensor operations, for ``torch.compile`` to fuse.

    Optional factors default to None here, not 1.0: Dynamo makes a float default argument an
    input of the graph, and the kernel would multiply every element by it.
    """

    def mul_(self, xs: list[Tensor], s: Scalar) -> list[Tensor]:
        for i, x in enumerate(xs):
            x.mul_(_item(s, i))
        return xs

    def div_(self, xs: list[Tensor], s: Scalar) -> list[Tensor]:
        for i, x in enumerate(xs):
            x.div_(_item(s, i))
        return xs

    def add_(self, xs: list[Tensor], ys: list[Tensor], alpha: Scalar | None = None) -> list[Tensor]:
        for i, x in enumerate(xs):
            x.add_(_times(ys[i], alpha, i))
        return xs

    def add_scalar_(self, xs: list[Tensor], s: Scalar) -> list[Tensor]:
        for i, x in enumerate(xs):
            x.add_(_item(s, i))
        return xs

    def addcmul_(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar | None = None) -> list[Tensor]:
        for i, x in enumerate(xs):
            x.add_(_times(a[i] * b[i], s, i))
        return xs

    def addcdiv_(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar | None = None) -> list[Tensor]:
        for i, x in enumerate(xs):
            x.add_(_times(a[i] / b[i], s, i))
        return xs

    def addcmul(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar | None = None) -> Fresh:
        return Fresh([x + _times(a[i] * b[i], s, i) for i, x in enumerate(xs)])

    def lerp_(self, xs: list[Tensor], ys: list[Tensor], weight: Scalar) -> list[Tensor]:
        for i, x in enumerate(xs):
            x.add_((ys[i] - x) * _item(weight, i))
        return xs

    def maximum_(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        for x, y in zip(xs, ys):
            x.copy_(torch.maximum(x, y))
        return xs

    def sqrt_(self, xs: list[Tensor]) -> list[Tensor]:
        for x in xs:
            x.sqrt_()
        return xs

    def reciprocal_(self, xs: list[Tensor]) -> list[Tensor]:
        for x in xs:
            x.reciprocal_()
        return xs

    def copy_(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        for x, y in zip(xs, ys):
            x.copy_(y)
        return xs

    def clone(self, xs: list[Tensor]) -> Fresh:
        return Fresh([x.clone() for x in xs])

    def cast(self, xs: list[Tensor], dtype: torch.dtype) -> list[Tensor]:
        return Fresh([x.to(dtype) for x in xs]) if xs and xs[0].dtype != dtype else xs

    def scaled(self, xs: list[Tensor], s: Scalar) -> Fresh:
        return Fresh([x * _item(s, i) for i, x in enumerate(xs)])

    def product(self, xs: list[Tensor], ys: list[Tensor]) -> Fresh:
        return Fresh([x * y for x, y in zip(xs, ys)])

    def added(self, xs: list[Tensor], ys: list[Tensor], alpha: Scalar | None = None) -> Fresh:
        return Fresh([x + _times(y, alpha, i) for i, (x, y) in enumerate(zip(xs, ys))])

    def plus(self, xs: list[Tensor], s: Scalar) -> Fresh:
        return Fresh([x + _item(s, i) for i, x in enumerate(xs)])

    def sqrt(self, xs: list[Tensor]) -> Fresh:
        return Fresh([x.sqrt() for x in xs])

    def abs(self, xs: list[Tensor]) -> Fresh:
        return Fresh([x.abs() for x in xs])

    def neg(self, xs: list[Tensor]) -> Fresh:
        return Fresh([x.neg() for x in xs])

    def sign(self, xs: list[Tensor]) -> Fresh:
        return Fresh([x.sign() for x in xs])

    def norm(self, xs: list[Tensor]) -> list[Tensor]:
        return [_sum_of_squares(x).sqrt() for x in xs]

    def norm_alongside(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        # where(y == y, x, x) is x itself; reading y puts the reduction in y's loop
        return [_sum_of_squares(torch.where(y == y, x, x)).sqrt() for x, y in zip(xs, ys)]

    def ratio_or(self, num: list[Tensor], den: list[Tensor], default: float) -> list[Tensor]:
        out = []
        for n, d in zip(num, den):
            ok = (n > 0) & (d > 0)
            out.append(torch.where(ok, n / torch.where(ok, d, torch.ones_like(d)), torch.full_like(n, default)))
        return out

    # -- added for Rprop, AdaBound and Adafactor ------------------------------------------

    def clamp_(self, xs: list[Tensor], low: Scalar | None = None, high: Scalar | None = None) -> list[Tensor]:
        for i, x in enumerate(xs):
            x.clamp_(min=None if low is None else _item(low, i), max=None if high is None else _item(high, i))
        return xs

    def clamp(self, xs: list[Tensor], low: list[Tensor], high: list[Tensor]) -> Fresh:
        return Fresh([torch.minimum(torch.maximum(x, lo), hi) for x, lo, hi in zip(xs, low, high)])

    def rsqrt(self, xs: list[Tensor]) -> Fresh:
        return Fresh([x.rsqrt() for x in xs])

    def div(self, xs: list[Tensor], ys: list[Tensor]) -> Fresh:
        return Fresh([x / y for x, y in zip(xs, ys)])

    def mean(self, xs: list[Tensor], dim: int, keepdim: bool = False) -> Fresh:
        return Fresh(
            [_column_means(x) if _over_columns(x, dim, keepdim) else x.mean(dim=dim, keepdim=keepdim) for x in xs]
        )

    def materialize(self, xs: list[Tensor]) -> list[Tensor]:
        # a matrix product is an external kernel for Inductor, so its input is computed into
        # memory; one product for the whole list
        if not xs:
            return xs
        flat = torch.cat([x.reshape(-1) for x in xs])
        one = torch.ones(1, 1, dtype=flat.dtype, device=flat.device)
        flat = (flat.unsqueeze(-1) @ one).squeeze(-1)
        return [part.view(x.shape) for part, x in zip(flat.split([x.numel() for x in xs]), xs)]  # type: ignore[no-untyped-call]  # Tensor.split has no annotations in torch

    def unsqueeze(self, xs: list[Tensor], dim: int) -> list[Tensor]:
        return [x.unsqueeze(dim) for x in xs]

    def where_positive(self, values: list[Tensor], gates: list[list[Tensor]], default: float) -> list[Tensor]:
        out = []
        for i, value in enumerate(values):
            ok = gates[0][i] > 0
            for gate in gates[1:]:
                ok = ok & (gate[i] > 0)
            out.append(torch.where(ok, value, torch.full_like(value, default)))
        return out

    def centralize(self, xs: list[Tensor], min_dim: int) -> list[Tensor]:
        out = [x - _row_means(x) if x.dim() > min_dim else x for x in xs]
        return Fresh(out) if all(x.dim() > min_dim for x in xs) else out

    def centralize_(self, xs: list[Tensor], min_dim: int) -> list[Tensor]:
        for x in xs:
            if x.dim() > min_dim:
                x.sub_(_row_means(x))
        return xs


def _trailing_dims(x: Tensor) -> tuple[int, ...]:
    """Every dimension but the first."""
    return tuple(range(1, x.dim()))


def _row_means(x: Tensor) -> Tensor:
    """The mean over all dimensions but the first, kept for broadcasting, as a matrix product.

    A product rather than ``x.mean(...)``: Inductor's C++ backend (torch 2.13) fails to
    compile a row reduction fused with the in-place moment updates that follow it
    (``KeyError: 'bufN'`` in its outer-loop fusion, pytorch/pytorch#196570); the product is
    an external kernel, which that fusion leaves alone.
    """
    rows = x.flatten(1)
    ones = torch.ones(rows.shape[1], 1, dtype=x.dtype, device=x.device)
    return ((rows @ ones) / rows.shape[1]).reshape((x.shape[0],) + (1,) * (x.dim() - 1))


ROW_BLOCK = 32
"""Rows per block in :func:`_column_means`."""


def _over_columns(x: Tensor, dim: int, keepdim: bool) -> bool:
    """Whether ``x.mean(dim, keepdim)`` is the column means of a matrix."""
    return x.dim() == 2 and dim in (0, -2) and not keepdim


def _column_means(x: Tensor) -> Tensor:
    """``x.mean(0)`` of a matrix, summed over blocks of :data:`ROW_BLOCK` whole rows first.

    Written as ``x.mean(0)``, a column reduction makes Inductor's C++ backend walk each strip
    of columns down the whole matrix, one cache line per row; by blocks, each block of rows is
    read once, row after row (docs/design.md has the figures). The rows past the last whole
    block are summed as they are. A graph holds for any number of
    rows only if it was traced with two blocks or more (see ``compiled.stand_ins``).
    """
    rows, cols = x.shape
    blocks = rows // ROW_BLOCK
    whole = blocks * ROW_BLOCK
    sums = x[:whole].view(blocks, ROW_BLOCK, cols).sum(dim=1).sum(dim=0) + x[whole:].sum(dim=0)
    return sums / rows


def _means_by_shape(xs: list[Tensor], min_dim: int) -> list[tuple[list[int], list[Tensor]]]:
    """For the tensors with more than ``min_dim`` dimensions, grouped by shape: their positions
    and their means over all dimensions but the first (kept, for broadcasting).

    A group of several tensors is stacked and reduced in one operation, so the number of
    operations grows with the number of distinct shapes, not with the number of tensors.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(xs):
        if x.dim() > min_dim:
            groups.setdefault(tuple(x.shape), []).append(i)
    out = []
    for indices in groups.values():
        if len(indices) == 1:
            x = xs[indices[0]]
            out.append((indices, [x.mean(dim=_trailing_dims(x), keepdim=True)]))
        else:
            stacked = torch.stack([xs[i] for i in indices])
            means = stacked.mean(dim=tuple(range(2, stacked.dim())), keepdim=True)
            out.append((indices, list(means.unbind(0))))
    return out


def _private(value: Any) -> Any:
    """A copy of every tensor in ``value`` (a tensor, or lists of them); anything else as is."""
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, list) and value and isinstance(value[0], (Tensor, list)):
        copies = [_private(v) for v in value]
        return Fresh(copies) if isinstance(value, Fresh) else copies
    return value


class AutogradOps:
    """Another backend's operations made safe to record for autograd (``differentiable=True``).

    Every tensor operand is first copied, an out-of-place operation returns a copy of its
    result, and an in-place operation works on the copy of its first list, which is then
    copied back into the original tensors one by one. So no tensor the transforms can reach
    is one the backward pass saved: later in-place updates of temporaries, state or
    parameters overwrite nothing it needs, and the gradient flows through every step.
    """

    def __init__(self, inner: ListOps):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if not callable(method):
            return method

        def recorded(*args: Any, **kwargs: Any) -> Any:
            private = [_private(a) for a in args]
            kwargs = {k: _private(v) for k, v in kwargs.items()}
            if name == "copy_":
                targets, results = args[0], private[1]
            elif name.endswith("_"):
                targets, results = args[0], method(*private, **kwargs)
            else:
                return _private(method(*private, **kwargs))
            for target, result in zip(targets, results):
                target.copy_(result)
            return targets

        return recorded


FOREACH = ForeachOps()
LOOP = LoopOps()
AUTOGRAD = AutogradOps(FOREACH)
"""The eager backend for ``differentiable=True`` groups."""
