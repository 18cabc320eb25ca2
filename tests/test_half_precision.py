"""bf16/fp16 parameters: float32 state by default, and no update lost to rounding."""

from __future__ import annotations

import io

import pytest
import torch
from optimizer_table import CASES

import optarena
from optarena.optim import chunks
from optarena.optim.execution import REMAINDER

HALF_CASES = [c for c in CASES if c.fusable and c.complex]
"""Elementwise optimizers (the half-precision path is the same for the others)."""


def start(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(1.0 + 0.1 * torch.randn(shape, generator=g)).to(dtype).requires_grad_() for shape in [(8, 4), (6,)]]


def grads(params, step):
    for i, p in enumerate(params):
        wave = torch.cos(0.5 * torch.arange(p.numel()).reshape(p.shape) + step + i)
        p.grad = (1.0 + 0.5 * wave).to(p.dtype)  # one sign, so small steps add up


def exact(opt, params):
    """Each parameter's exact value: stored value plus its rounding remainder."""
    inner = getattr(opt, "optimizer", opt)  # a wrapper keeps the remainder in its inner optimizer
    return [p.detach().float() + inner.state[p][REMAINDER].float() for p in params]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_small_updates_accumulate_instead_of_vanishing(dtype):
    ours, plain, reference = start(dtype), start(dtype), start(torch.float32)
    reference = [r.detach().float().requires_grad_() for r in ours]
    opt = optarena.SGD(ours, lr=1e-4)
    naive = torch.optim.SGD(plain, lr=1e-4)
    full = torch.optim.SGD(reference, lr=1e-4)
    for step in range(200):
        for group in (ours, plain, reference):
            grads(group, step)
        opt.step()
        naive.step()
        full.step()
    assert all(torch.equal(p, q) for p, q in zip(plain, start(dtype))), "each step is below half an ulp"
    for value, target in zip(exact(opt, ours), reference):
        # float32 rounding of 200 additions on each side: a few ulps of 1.0 apart
        torch.testing.assert_close(value, target.detach(), rtol=1e-5, atol=1e-5)
    moved = [(p.detach().float() - q.float()).abs().max() for p, q in zip(ours, start(dtype))]
    assert all(m > 0 for m in moved), "the stored parameters move once the remainder adds up"


def test_state_is_float32_by_default_and_bfloat16_on_request():
    params = start(torch.bfloat16)
    opt = optarena.Adam(params)
    grads(params, 0)
    opt.step()
    state = opt.state[params[0]]
    assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == state[REMAINDER].dtype == torch.float32
    small = start(torch.bfloat16)
    opt = optarena.Adam(small, state_dtype="bfloat16")
    grads(small, 0)
    opt.step()
    state = opt.state[small[0]]
    assert state["exp_avg"].dtype == state[REMAINDER].dtype == torch.bfloat16
    with pytest.raises(ValueError, match="state_dtype: 'float64'"):
        optarena.Adam(start(torch.bfloat16), state_dtype="float64")


def test_full_precision_parameters_keep_their_own_state_and_no_remainder():
    params = start(torch.float32)
    opt = optarena.Adam(params, state_dtype="bfloat16")
    grads(params, 0)
    opt.step()
    assert REMAINDER not in opt.state[params[0]] and opt.state[params[0]]["exp_avg"].dtype == torch.float32


@pytest.mark.parametrize("case", HALF_CASES, ids=[c.name for c in HALF_CASES])
def test_bfloat16_follows_the_float32_run(case):
    config = case.configs[-1]
    half = start(torch.bfloat16)
    full = [p.detach().float().requires_grad_() for p in half]
    opt_half = case.create(half, **config)
    opt_full = case.create(full, **config)
    for step in range(30):
        grads(full, step)
        for p, q in zip(half, full):
            p.grad = q.grad.to(torch.bfloat16)
        opt_half.step()
        opt_full.step()
    for value, target in zip(exact(opt_half, half), full):
        # only the gradients were rounded to bf16; the arithmetic is float32
        assert ((value - target.detach()).abs().max() / target.detach().abs().max()).item() < 2e-2


def test_fused_half_precision_equals_eager(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 2)
    a, b = start(torch.bfloat16), start(torch.bfloat16)
    opt_a = optarena.AdamW(a, lr=1e-3, fused=True)
    opt_b = optarena.AdamW(b, lr=1e-3, fused=False)
    for step in range(10):
        grads(a, step)
        grads(b, step)
        opt_a.step()
        opt_b.step()
    for x, y in zip(exact(opt_a, a), exact(opt_b, b)):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


def test_half_precision_state_dict_round_trip_is_bit_identical():
    params = start(torch.bfloat16)
    opt = optarena.Adam(params, lr=1e-3)
    for step in range(4):
        grads(params, step)
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    twins = [p.detach().clone().requires_grad_() for p in params]
    twin = optarena.Adam(twins, lr=1e-3)
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    for step in range(4, 9):
        grads(params, step)
        grads(twins, step)
        opt.step()
        twin.step()
    assert all(torch.equal(p, q) for p, q in zip(params, twins))
    assert all(torch.equal(opt.state[p][REMAINDER], twin.state[q][REMAINDER]) for p, q in zip(params, twins))
