"""Sparse gradients in half precision, mixed with dense ones, and with non-finite sums.

LazyAdam, SGD and Adagrad update the rows a sparse gradient holds with the dense path's
rules: float32 state and math for bf16/fp16 parameters, through the rounding remainder, so
sparse and dense steps alternate on one parameter. A non-finite check sees the gradient as
the update does, with duplicate indices summed.
"""

from __future__ import annotations

import pytest
import torch

import optarena

SPARSE_OPTIMIZERS = [
    ("lazyadam", {"lr": 0.01}),
    ("sgd", {"lr": 0.05}),
    ("adagrad", {"lr": 0.05}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in config.items())}" for name, config in SPARSE_OPTIMIZERS]


def embedding(dtype: torch.dtype, seed: int = 0) -> torch.nn.Embedding:
    torch.manual_seed(seed)
    return torch.nn.Embedding(12, 4, sparse=True).to(dtype)


def batch(step: int) -> torch.Tensor:
    return torch.tensor([1, 5, 5, (3 * step) % 12])


def train(module: torch.nn.Embedding, opt, steps: int, dense_every: int = 0) -> None:
    """Steps with sparse gradients; every ``dense_every``-th step a dense gradient instead."""
    for step in range(steps):
        opt.zero_grad()
        ((module(batch(step)).float() - 0.3) ** 2).sum().backward()
        if dense_every and step % dense_every == dense_every - 1:
            module.weight.grad = module.weight.grad.to_dense()
        opt.step()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("name,config", SPARSE_OPTIMIZERS, ids=IDS)
def test_half_precision_sparse_steps_keep_float32_state_and_follow_float32(name, config, dtype):
    low, full = embedding(dtype), embedding(torch.float32)
    full.weight.data.copy_(low.weight.data.float())
    opt_low = optarena.create(name, low.parameters(), **config)
    opt_full = optarena.create(name, full.parameters(), **config)
    train(low, opt_low, 20)
    train(full, opt_full, 20)
    state = opt_low.state[low.weight]
    for key, value in state.items():
        if key != "step":
            assert value.dtype == torch.float32, key
    assert torch.isfinite(low.weight).all()
    exact = low.weight.float() + state.get("param_remainder", torch.zeros(()))
    # the rounding remainder carries what the half-precision weights lost: close to float32
    # (the gradients differ a little: they come from the rounded weights)
    tolerance = 2e-3 if dtype == torch.float16 else 2e-2
    torch.testing.assert_close(exact, full.weight.detach(), rtol=tolerance, atol=tolerance / 5)


@pytest.mark.parametrize("name,config", SPARSE_OPTIMIZERS, ids=IDS)
def test_sparse_and_dense_steps_alternate_on_a_half_precision_parameter(name, config):
    low, full = embedding(torch.float16), embedding(torch.float32)
    full.weight.data.copy_(low.weight.data.float())
    opt_low = optarena.create(name, low.parameters(), **config)
    opt_full = optarena.create(name, full.parameters(), **config)
    train(low, opt_low, 12, dense_every=3)
    train(full, opt_full, 12, dense_every=3)
    exact = low.weight.float() + opt_low.state[low.weight].get("param_remainder", torch.zeros(()))
    torch.testing.assert_close(exact, full.weight.detach(), rtol=2e-3, atol=2e-4)


def test_lazyadam_half_precision_embedding_is_not_pushed_to_infinity():
    module = embedding(torch.float16)
    opt = optarena.LazyAdam(module.parameters(), lr=1e-3)
    for step in range(3):
        opt.zero_grad()
        (module(batch(step)).sum() * 1e-4).backward()  # squared gradients underflow in fp16
        opt.step()
    assert torch.isfinite(module.weight).all()


@pytest.mark.parametrize("name,config", SPARSE_OPTIMIZERS, ids=IDS)
def test_duplicate_indices_whose_sum_overflows_are_skipped(name, config):
    weight = torch.zeros(6, 2, requires_grad=True)
    opt = optarena.create(name, [weight], **config, nonfinite="skip")
    big = torch.full((2, 2), 3e38)  # each finite; their sum for row 1 is inf in float32
    weight.grad = torch.sparse_coo_tensor(torch.tensor([[1, 1]]), big, (6, 2))
    opt.step()
    assert torch.equal(weight, torch.zeros(6, 2))
    assert opt.param_groups[0]["nonfinite_skips"] == 1
    assert not opt.state.get(weight)


@pytest.mark.parametrize("name,config", SPARSE_OPTIMIZERS, ids=IDS)
def test_duplicate_indices_whose_sum_overflows_raise_under_raise(name, config):
    weight = torch.zeros(6, 2, requires_grad=True)
    opt = optarena.create(name, [weight], **config, nonfinite="raise")
    weight.grad = torch.sparse_coo_tensor(torch.tensor([[1, 1]]), torch.full((2, 2), 3e38), (6, 2))
    with pytest.raises(FloatingPointError, match="non-finite gradient"):
        opt.step()
    assert torch.equal(weight, torch.zeros(6, 2))


def test_adagrad_refuses_weight_decay_with_sparse_gradients_before_any_group_moves():
    first = torch.ones(3, requires_grad=True)
    module = embedding(torch.float64)
    opt = optarena.Adagrad([{"params": [first]}, {"params": module.parameters(), "weight_decay": 0.1}])
    first.grad = torch.ones(3)
    module(batch(0)).sum().backward()
    before = module.weight.detach().clone()
    with pytest.raises(RuntimeError, match="weight_decay option is not compatible with sparse gradients"):
        opt.step()
    assert torch.equal(first, torch.ones(3)) and torch.equal(module.weight, before)
    assert not opt.state


def test_sgd_without_momentum_keeps_no_state_for_sparse_or_dense_gradients():
    module = embedding(torch.float64)
    dense = torch.ones(3, requires_grad=True)
    opt = optarena.SGD([*module.parameters(), dense], lr=0.1)
    module(batch(0)).sum().backward()
    dense.grad = torch.ones(3)
    opt.step()
    assert len(opt.state) == 0 and opt.state_dict()["state"] == {}


def test_torch_sgd_sparse_momentum_buffer_loads_and_continues_alike():
    def run(cls, state_dict=None, start=0, steps=3):
        module = embedding(torch.float64)
        if state_dict is not None:
            module.weight.data.copy_(state_dict[1])
        opt = cls(module.parameters(), lr=0.1, momentum=0.9)
        if state_dict is not None:
            opt.load_state_dict(state_dict[0])
        for step in range(start, start + steps):
            opt.zero_grad()
            module(batch(step)).sin().sum().backward()
            opt.step()
        return opt.state_dict(), module.weight.detach().clone()

    saved = run(torch.optim.SGD)
    assert saved[0]["state"][0]["momentum_buffer"].is_sparse
    ours = run(optarena.SGD, saved, start=3)
    theirs = run(torch.optim.SGD, saved, start=3)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-12, atol=1e-14)
    assert not ours[0]["state"][0]["momentum_buffer"].is_sparse
