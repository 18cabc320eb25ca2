"""Kronecker-factored statistics of a matrix's gradients, in blocks: what Shampoo and SOAP share.

A matrix ``G`` (``rows x cols``) is cut into blocks of at most ``max_preconditioner_dim`` rows
and columns (Anil et al. 2020, https://arxiv.org/abs/2002.09018, section 3.2: each block is
preconditioned as a matrix of its own, with the matrix's sides and exponent). The blocks are kept as one batch ``(blocks, r, c)``:
the last row and column of blocks are padded with zeros, which leaves every statistic's real
part unchanged and makes the padded part of every result zero, so no block needs a loop of
its own. Each block keeps a left statistic ``L = sum G G^T`` (``r x r``) and a right one
``R = sum G^T G`` (``c x c``); a side of size 1 of the matrix (a ``1 x n`` row vector) has none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Blocks:
    """How a ``rows x cols`` matrix is cut: blocks of ``block_rows x block_cols``, a grid of
    ``grid_rows x grid_cols`` of them."""

    rows: int
    cols: int
    block_rows: int
    block_cols: int

    @classmethod
    def of(cls, rows: int, cols: int, max_dim: int) -> Blocks:
        return cls(rows, cols, max(1, min(rows, max_dim)), max(1, min(cols, max_dim)))

    @property
    def grid_rows(self) -> int:
        return math.ceil(self.rows / self.block_rows)

    @property
    def grid_cols(self) -> int:
        return math.ceil(self.cols / self.block_cols)

    @property
    def count(self) -> int:
        return self.grid_rows * self.grid_cols

    @property
    def left(self) -> bool:
        """Whether the blocks have a left statistic: the matrix has more than one row (an edge block
        of one row keeps its 1 x 1 statistic, as the padded batch computes it)."""
        return self.rows > 1

    @property
    def right(self) -> bool:
        """Whether the blocks have a right statistic: the matrix has more than one column."""
        return self.cols > 1

    def split(self, matrix: Tensor) -> Tensor:
        """``(count, block_rows, block_cols)``: the blocks in row-major order, zero-padded."""
        pad_rows = self.grid_rows * self.block_rows - self.rows
        pad_cols = self.grid_cols * self.block_cols - self.cols
        if pad_rows or pad_cols:
            matrix = torch.nn.functional.pad(matrix, (0, pad_cols, 0, pad_rows))
        grid = matrix.reshape(self.grid_rows, self.block_rows, self.grid_cols, self.block_cols)
        return grid.permute(0, 2, 1, 3).reshape(self.count, self.block_rows, self.block_cols)

    def join(self, blocks: Tensor) -> Tensor:
        """The matrix the blocks of :meth:`split` came from (padding dropped)."""
        grid = blocks.reshape(self.grid_rows, self.grid_cols, self.block_rows, self.block_cols)
        full = grid.permute(0, 2, 1, 3).reshape(self.grid_rows * self.block_rows, self.grid_cols * self.block_cols)
        return full[: self.rows, : self.cols]

    def left_shape(self) -> tuple[int, int, int]:
        return (self.count, self.block_rows, self.block_rows)

    def right_shape(self) -> tuple[int, int, int]:
        return (self.count, self.block_cols, self.block_cols)


def accumulate(statistics: Tensor, products: Tensor, beta: float) -> None:
    """``S <- S + P`` for ``beta == 1`` (a sum, as Gupta et al.), else ``S <- beta S + (1 - beta) P``."""
    if beta == 1.0:
        statistics.add_(products)
    else:
        statistics.mul_(beta).add_(products, alpha=1.0 - beta)


def _eigh(matrices: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.linalg.eigh`` of a batch whose non-finite matrices (a NaN or infinite gradient under
    ``nonfinite="ignore"``) give NaN eigenvalues and eigenvectors instead of an error."""
    finite = torch.isfinite(matrices).all(dim=-1).all(dim=-1)
    if bool(finite.all()):
        values, vectors = torch.linalg.eigh(matrices)
        return values, vectors
    eye = torch.eye(matrices.shape[-1], dtype=matrices.dtype, device=matrices.device)
    values, vectors = torch.linalg.eigh(torch.where(finite[..., None, None], matrices, eye))
    nan = torch.tensor(float("nan"), dtype=matrices.dtype, device=matrices.device)
    return torch.where(finite[..., None], values, nan), torch.where(finite[..., None, None], vectors, nan)


def inverse_root(statistics: Tensor, exponent: float, eps: float, dtype: torch.dtype) -> Tensor:
    """``(S + eps I)^(-exponent)`` of each symmetric matrix of the batch, by eigendecomposition in
    ``dtype``; eigenvalues below ``eps`` (rounding of a positive semi-definite ``S``) count as ``eps``."""
    matrices = statistics.to(dtype)
    eye = torch.eye(matrices.shape[-1], dtype=dtype, device=matrices.device)
    values, vectors = _eigh(matrices + eps * eye)
    scaled = vectors * values.clamp(min=eps).pow(-exponent).unsqueeze(-2)
    return (scaled @ vectors.mT).to(statistics.dtype)


def eigenbasis(statistics: Tensor, dtype: torch.dtype) -> Tensor:
    """The eigenvectors of each symmetric matrix of the batch, by descending eigenvalue."""
    _, vectors = _eigh(statistics.to(dtype))
    return vectors.flip(-1).to(statistics.dtype)


def precondition(blocks: Tensor, left: Tensor, right: Tensor, use_left: bool, use_right: bool) -> Tensor:
    """``L_root @ B @ R_root`` for each block (a side without a statistic is left alone)."""
    out = left @ blocks if use_left else blocks
    return out @ right if use_right else out


def rotate(blocks: Tensor, left: Tensor, right: Tensor, use_left: bool, use_right: bool) -> Tensor:
    """``Q_L^T @ B @ Q_R`` for each block: into the eigenbases (SOAP)."""
    out = left.mT @ blocks if use_left else blocks
    return out @ right if use_right else out


def rotate_back(blocks: Tensor, left: Tensor, right: Tensor, use_left: bool, use_right: bool) -> Tensor:
    """``Q_L @ B @ Q_R^T`` for each block: out of the eigenbases (SOAP)."""
    out = left @ blocks if use_left else blocks
    return out @ right.mT if use_right else out


def refreshed_basis(statistics: Tensor, basis: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """One power iteration with QR towards the eigenvectors of ``statistics`` (SOAP, Vyas et al.'s
    Algorithm 4): the columns of ``basis`` reordered by the eigenvalues they estimate,
    ``diag(Q^T S Q)``, descending, then ``Q <- QR(S Q)``. Returns the new basis and the order
    (the moments kept in the basis are reordered with it)."""
    s, q = statistics.to(dtype), basis.to(dtype)
    estimates = (q.mT @ s @ q).diagonal(dim1=-2, dim2=-1)
    order = estimates.argsort(dim=-1, descending=True, stable=True)
    q = q.gather(-1, order.unsqueeze(-2).expand_as(q))
    new, _ = torch.linalg.qr(s @ q)
    return new.to(statistics.dtype), order
