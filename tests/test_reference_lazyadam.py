"""LazyAdam with sparse gradients equals torch.optim.SparseAdam: 1e-10 relative in float64 over 100 steps.

Dense gradients are compared with torch.optim.Adam by the table (tests/test_reference_torch.py);
here an embedding with sparse gradients runs alone, and beside dense layers (SparseAdam for
the embedding plus Adam for the rest is the reference of a mixed model).
"""

from __future__ import annotations

import io

import pytest
import torch

import optarena

CONFIGS = [{}, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}, {"lr": 0.003, "maximize": True}]


class Model(torch.nn.Module):
    """An embedding with sparse gradients followed by a dense layer."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.embedding = torch.nn.Embedding(20, 4, sparse=True).double()
        self.head = torch.nn.Linear(4, 2).double()

    def loss(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(step)
        ids = torch.randint(0, 20, (6,), generator=g)  # repeated ids give uncoalesced gradients
        target = torch.randn(6, 2, generator=g, dtype=torch.float64)
        return ((self.head(self.embedding(ids)) - target) ** 2).mean()


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def train(model: Model, optimizers: list, steps: int, start: int = 0) -> None:
    for step in range(start, start + steps):
        for opt in optimizers:
            opt.zero_grad()
        model.loss(step).backward()
        for opt in optimizers:
            opt.step()


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_sparse_embedding_matches_sparse_adam(config):
    ours, theirs = Model(0), Model(0)
    train(ours, [optarena.LazyAdam(ours.embedding.parameters(), **config)], 100)
    train(theirs, [torch.optim.SparseAdam(theirs.embedding.parameters(), **config)], 100)
    assert relative_error(ours.embedding.weight, theirs.embedding.weight) <= 1e-10


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_mixed_model_matches_sparse_adam_plus_adam(config):
    ours, theirs = Model(1), Model(1)
    train(ours, [optarena.LazyAdam(ours.parameters(), **config)], 100)
    train(
        theirs,
        [
            torch.optim.SparseAdam(theirs.embedding.parameters(), **config),
            torch.optim.Adam(theirs.head.parameters(), **config),
        ],
        100,
    )
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert relative_error(a, b) <= 1e-10


def test_rows_absent_keep_parameters_and_moments_while_adam_decays_them():
    model = Model(2)
    opt = optarena.LazyAdam(model.embedding.parameters(), lr=0.01)
    model.embedding(torch.tensor([3, 5])).sum().backward()
    opt.step()
    state = opt.state[model.embedding.weight]
    moments = {k: state[k].clone() for k in ("exp_avg", "exp_avg_sq")}
    weight = model.embedding.weight.detach().clone()
    opt.zero_grad()
    model.embedding(torch.tensor([7])).sum().backward()
    opt.step()
    for key, before in moments.items():
        assert torch.equal(state[key][[3, 5]], before[[3, 5]]), key
        assert state[key][7].abs().min() > 0, key
    assert torch.equal(model.embedding.weight[[3, 5]], weight[[3, 5]])
    assert state["step"].item() == 2


def test_sparse_adam_checkpoint_continues_in_lazyadam():
    ours, theirs = Model(3), Model(3)
    reference = torch.optim.SparseAdam(theirs.embedding.parameters(), lr=0.01)
    train(theirs, [reference], 10)
    ours.load_state_dict(theirs.state_dict())
    opt = optarena.LazyAdam(ours.embedding.parameters(), lr=0.01)
    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer)
    buffer.seek(0)
    opt.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.is_tensor(opt.state[ours.embedding.weight]["step"])
    train(ours, [opt], 20, start=10)
    train(theirs, [reference], 20, start=10)
    assert relative_error(ours.embedding.weight, theirs.embedding.weight) <= 1e-10


def test_empty_sparse_gradient_counts_the_step_and_moves_nothing():
    weight = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    opt = optarena.LazyAdam([weight])
    before = weight.detach().clone()
    weight.grad = torch.sparse_coo_tensor(
        torch.zeros(1, 0, dtype=torch.long), torch.zeros(0, 2), (4, 2), check_invariants=True
    ).double()
    opt.step()
    assert torch.equal(weight, before)
    assert opt.state[weight]["step"].item() == 1


def test_sparse_gradient_of_a_complex_parameter_is_a_clear_error():
    weight = torch.zeros(4, 2, dtype=torch.complex128, requires_grad=True)
    opt = optarena.LazyAdam([weight])
    weight.grad = torch.zeros(4, 2, dtype=torch.complex128).to_sparse()
    with pytest.raises(RuntimeError, match="sparse gradients of complex parameters"):
        opt.step()
