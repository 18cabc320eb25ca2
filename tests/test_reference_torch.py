"""Step-by-step agreement with each table row's reference: 1e-10 relative in float64 over 100 steps.

The references are torch.optim optimizers, the paper authors' packages (through the thin
adapters of the table), or implementations written from the paper (tests/references.py);
fixture-based references have test files of their own.
"""

from __future__ import annotations

import io

import pytest
import torch
from optimizer_table import CASES, case_config_ids

PAIRS = [(p, i) for p, i in case_config_ids() if p[0].reference is not None]
WITH_REFERENCE = pytest.mark.parametrize("case,config", [p for p, _ in PAIRS], ids=[i for _, i in PAIRS])
SHAPES = [(6, 4), (0,), (5,), (2, 3, 2), ()]
SKIPPED_PARAM = 2
"""This parameter's grad is None on every third step."""


@pytest.fixture(autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # scalar state (step) in float64, as in torch.optim
    yield
    torch.set_default_dtype(previous)


def params_for(seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype).requires_grad_() for shape in SHAPES]


def set_grads(params, step: int):
    for i, p in enumerate(params):
        if i == SKIPPED_PARAM and step % 3 == 0:
            p.grad = None
        else:
            p.grad = torch.sin(1.3 * p.detach() + 0.7 * step + i) + 0.1 * p.detach()


def relative_error(ours, theirs) -> float:
    worst = 0.0
    for a, b in zip(ours, theirs):
        if a.numel():
            worst = max(worst, ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item())
    return worst


def run(optimizer_factory, params, steps, start=0):
    opt = optimizer_factory(params)
    for step in range(start, start + steps):
        set_grads(params, step)
        opt.step()
    return opt


@WITH_REFERENCE
def test_matches_reference_over_100_steps(case, config):
    ours = params_for(0)
    theirs = params_for(0)
    run(lambda p: case.create(p, **config), ours, 100)
    run(lambda p: case.reference(p, **config), theirs, 100)
    assert relative_error(ours, theirs) <= 1e-10


@WITH_REFERENCE
def test_maximize_matches_reference(case, config):
    ours = params_for(1)
    theirs = params_for(1)
    run(lambda p: case.create(p, **{**config, "maximize": True}), ours, 30)
    run(lambda p: case.reference(p, **{**config, "maximize": True}), theirs, 30)
    assert relative_error(ours, theirs) <= 1e-10


COMPLEX_REFERENCES = [c for c in CASES if c.complex and c.reference and c.reference_complex]


@pytest.mark.parametrize("case", COMPLEX_REFERENCES, ids=[c.name for c in COMPLEX_REFERENCES])
def test_complex_parameters_match_reference(case):
    def complex_params():
        g = torch.Generator().manual_seed(3)
        return [torch.randn(4, 3, dtype=torch.complex128, generator=g).requires_grad_()]

    def grads(params, step):
        for p in params:
            p.grad = torch.sin(p.detach() * 1.1 + step) + 0.1j * p.detach()

    config = case.complex_reference_config or case.configs[-1]
    ours, theirs = complex_params(), complex_params()
    opt, ref = case.create(ours, **config), case.reference(theirs, **config)
    for step in range(50):
        grads(ours, step)
        grads(theirs, step)
        opt.step()
        ref.step()
    error = (ours[0] - theirs[0]).abs().max() / theirs[0].abs().max()
    assert error.item() <= 1e-10


LOADABLE = [(p, i) for p, i in PAIRS if p[0].reference_state_loads]


@pytest.mark.parametrize("case,config", [p for p, _ in LOADABLE], ids=[i for _, i in LOADABLE])
def test_reference_state_dict_loads_and_continues(case, config):
    """A checkpoint of the reference optimizer resumes in ours (same state names)."""
    theirs = params_for(2)
    ref = run(lambda p: case.reference(p, **config), theirs, 10)
    buffer = io.BytesIO()
    torch.save(ref.state_dict(), buffer)
    buffer.seek(0)
    ours = [p.detach().clone().requires_grad_() for p in theirs]
    opt = case.create(ours, **config)
    opt.load_state_dict(torch.load(buffer, weights_only=True))
    for step in range(10, 40):
        set_grads(ours, step)
        set_grads(theirs, step)
        opt.step()
        ref.step()
    assert relative_error(ours, theirs) <= 1e-10
