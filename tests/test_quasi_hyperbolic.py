"""QHM and QHAdam: the identities of the paper, against torch.optim, and their required arguments."""

from __future__ import annotations

import pytest
import torch
from test_reference_torch import params_for, relative_error, run

import optarena


@pytest.fixture(autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def agree(ours, theirs, steps=100):
    a, b = params_for(4), params_for(4)
    run(ours, a, steps)
    run(theirs, b, steps)
    return relative_error(a, b)


@pytest.mark.parametrize("config", [{}, {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}])
def test_qhadam_with_unit_nus_is_adam(config):
    full = {"betas": (0.9, 0.999), **config}
    error = agree(lambda p: optarena.QHAdam(p, nus=(1.0, 1.0), **full), lambda p: torch.optim.Adam(p, **full))
    assert error <= 1e-10


def test_qhadamw_with_unit_nus_is_adamw():
    config = {"lr": 3e-3, "betas": (0.9, 0.99), "weight_decay": 0.1}
    error = agree(lambda p: optarena.QHAdamW(p, nus=(1.0, 1.0), **config), lambda p: torch.optim.AdamW(p, **config))
    assert error <= 1e-10


def test_qhadam_nus_change_the_path():
    assert agree(lambda p: optarena.QHAdam(p), lambda p: torch.optim.Adam(p, betas=(0.995, 0.999))) > 1e-3


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_qhm_with_nu_zero_is_sgd(weight_decay):
    error = agree(
        lambda p: optarena.QHM(p, lr=0.05, momentum=0.9, nu=0.0, weight_decay=weight_decay),
        lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=weight_decay),
    )
    assert error <= 1e-10


def zero_buffer_sgd(params, momentum, **config):
    """torch.optim.SGD with dampening = momentum, its buffers made (as zeros) before the first step."""
    sgd = torch.optim.SGD(params, momentum=momentum, dampening=momentum, **config)
    for p in params:
        sgd.state[p]["momentum_buffer"] = torch.zeros_like(p)
    return sgd


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_qhm_with_nu_one_is_averaged_momentum(weight_decay):
    """nu = 1: an exponential moving average of gradients from zero (torch's dampened buffer from zero)."""
    error = agree(
        lambda p: optarena.QHM(p, lr=0.5, momentum=0.9, nu=1.0, weight_decay=weight_decay),
        lambda p: zero_buffer_sgd(p, 0.9, lr=0.5, weight_decay=weight_decay),
    )
    assert error <= 1e-10


def test_qhm_nu_one_differs_from_torch_dampened_momentum_on_its_first_step():
    """torch.optim.SGD starts its buffer at the gradient, QHM at (1 - momentum) times it."""
    error = agree(
        lambda p: optarena.QHM(p, lr=0.5, momentum=0.9, nu=1.0),
        lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9, dampening=0.9),
        steps=1,
    )
    assert error > 1e-3


@pytest.mark.parametrize("missing", ["lr", "momentum", "nu"])
def test_qhm_requires_lr_momentum_and_nu(missing):
    given = {"lr": 0.1, "momentum": 0.9, "nu": 0.7}
    del given[missing]
    with pytest.raises(TypeError, match=f"missing 1 required positional argument: '{missing}'"):
        optarena.QHM([torch.zeros(2, requires_grad=True)], **given)
