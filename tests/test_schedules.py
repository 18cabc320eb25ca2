"""Warm-up on top of torch's schedulers, the re-exported cyclical ones, and batch-size scaling."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch.optim import lr_scheduler

import optarena
from optarena.schedules import CyclicLR, LinearWarmup, OneCycleLR, scale_lr


def optimizer(lrs=(0.1, 0.03), cls=torch.optim.SGD, **kwargs):
    g = torch.Generator().manual_seed(0)
    groups = [{"params": [torch.randn(3, generator=g, requires_grad=True)], "lr": lr} for lr in lrs]
    return cls(groups, **kwargs)


def lrs(opt):
    return [group["lr"] for group in opt.param_groups]


def step(opt):
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = torch.ones_like(p)
    opt.step()


@pytest.mark.parametrize("start_factor", [0.0, 0.25])
def test_warmup_alone_ramps_linearly_to_the_initial_rates(start_factor):
    opt = optimizer()
    warmup = LinearWarmup(opt, warmup_steps=4, start_factor=start_factor)
    seen = [lrs(opt)]
    for _ in range(6):
        step(opt)
        warmup.step()
        seen.append(lrs(opt))
    for t, values in enumerate(seen):
        w = start_factor + (1 - start_factor) * min(t, 4) / 4
        assert values == pytest.approx([0.1 * w, 0.03 * w], rel=1e-15, abs=0)
    assert seen[4] == [0.1, 0.03] == seen[6]
    assert warmup.get_last_lr() == seen[-1]


def test_warmup_alone_equals_torch_linear_lr():
    a, b = optimizer(), optimizer()
    ours, theirs = LinearWarmup(a, warmup_steps=5, start_factor=0.2), lr_scheduler.LinearLR(b, 0.2, total_iters=5)
    for _ in range(8):
        assert lrs(a) == pytest.approx(lrs(b), rel=1e-14)
        step(a)
        step(b)
        ours.step()
        theirs.step()


@pytest.mark.parametrize(
    "make",
    [
        lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=12, eta_min=0.001),
        lambda opt: lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
        lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.9),
        lambda opt: lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1 + t)),
    ],
    ids=["cosine", "step", "exponential", "lambda"],
)
def test_warmup_multiplies_the_main_schedule_which_keeps_its_own_clock(make):
    warm_opt, plain_opt = optimizer(), optimizer()
    warmup = LinearWarmup(warm_opt, warmup_steps=5, after=make(warm_opt))
    plain = make(plain_opt)
    for t in range(15):
        w = min(t, 5) / 5
        assert lrs(warm_opt) == pytest.approx([lr * w for lr in lrs(plain_opt)], rel=1e-15, abs=0)
        if t >= 5:
            assert lrs(warm_opt) == lrs(plain_opt)  # identical floats once warmed up
        step(warm_opt)
        step(plain_opt)
        warmup.step()
        plain.step()


def test_warmup_with_reduce_on_plateau_reduces_the_main_rate():
    warm_opt, plain_opt = optimizer(), optimizer()
    warmup = LinearWarmup(warm_opt, 3, after=lr_scheduler.ReduceLROnPlateau(warm_opt, factor=0.5, patience=1))
    plain = lr_scheduler.ReduceLROnPlateau(plain_opt, factor=0.5, patience=1)
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8]
    for t, loss in enumerate(losses):
        step(warm_opt)
        step(plain_opt)
        warmup.step(loss)
        plain.step(loss)
        w = min(t + 1, 3) / 3
        assert lrs(warm_opt) == pytest.approx([lr * w for lr in lrs(plain_opt)], rel=1e-15, abs=0)
    assert lrs(plain_opt)[0] < 0.1  # the plateau did reduce it
    with pytest.raises(TypeError, match="needs the metric"):
        warmup.step()


def test_warmup_state_dict_through_torch_save_resumes_the_same_rates():
    opt = optimizer()
    warmup = LinearWarmup(opt, 6, after=lr_scheduler.CosineAnnealingLR(opt, T_max=10))
    for _ in range(3):
        step(opt)
        warmup.step()
    buffer = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(), "scheduler": warmup.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    twin = optimizer()
    twin_warmup = LinearWarmup(twin, 6, after=lr_scheduler.CosineAnnealingLR(twin, T_max=10))
    twin.load_state_dict(saved["optimizer"])
    twin_warmup.load_state_dict(saved["scheduler"])
    for _ in range(8):
        step(opt)
        step(twin)
        warmup.step()
        twin_warmup.step()
        assert lrs(opt) == lrs(twin)
    with pytest.raises(ValueError, match="had an 'after' scheduler but this one has none"):
        LinearWarmup(optimizer(), 6).load_state_dict(saved["scheduler"])


def test_warmup_drives_optarena_optimizers_and_lookahead():
    params = [torch.zeros(2, requires_grad=True)]
    opt = optarena.Lookahead(optarena.Ranger(params, lr=0.01))
    warmup = LinearWarmup(opt, 4, start_factor=0.5)
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(0.005)
    for _ in range(4):
        step(opt)
        warmup.step()
    assert opt.optimizer.param_groups[0]["lr"] == 0.01


def test_warmup_rejects_bad_arguments():
    opt = optimizer()
    with pytest.raises(ValueError, match="Invalid warmup_steps: 0; allowed: an integer >= 1"):
        LinearWarmup(opt, 0)
    with pytest.raises(ValueError, match="Invalid warmup_steps: 2.5"):
        LinearWarmup(opt, 2.5)
    with pytest.raises(ValueError, match="Invalid start_factor: 1.5; allowed range: 0 <= start_factor <= 1"):
        LinearWarmup(opt, 3, start_factor=1.5)
    with pytest.raises(TypeError, match="after must be a torch.optim.lr_scheduler scheduler"):
        LinearWarmup(opt, 3, after=lambda t: 1.0)
    with pytest.raises(ValueError, match="another optimizer"):
        LinearWarmup(opt, 3, after=lr_scheduler.StepLR(optimizer(), 2))


def test_cyclical_schedulers_are_torchs_own_and_cycle_optarena_momentum():
    assert CyclicLR is lr_scheduler.CyclicLR and OneCycleLR is lr_scheduler.OneCycleLR
    sgd = optimizer(cls=optarena.SGD, momentum=0.9)
    adam = optimizer(cls=optarena.Adam)
    one_cycle = OneCycleLR(adam, max_lr=0.1, total_steps=10)
    cyclic = CyclicLR(sgd, base_lr=0.01, max_lr=0.1, step_size_up=2)
    betas, momenta = [], []
    for _ in range(4):
        step(adam)
        step(sgd)
        one_cycle.step()
        cyclic.step()
        betas.append(adam.param_groups[0]["betas"][0])
        momenta.append(sgd.param_groups[0]["momentum"])
    assert len(set(betas)) > 1 and len(set(momenta)) > 1  # momentum cycles against the learning rate


def test_scale_lr_rules():
    assert scale_lr(0.1, 1024, 256) == pytest.approx(0.4)
    assert scale_lr(0.1, 1024, 256, rule="sqrt") == pytest.approx(0.2)
    assert scale_lr(3e-4, 64, 256, rule="sqrt") == pytest.approx(1.5e-4)
    assert scale_lr(0.0, 8, 4) == 0.0
    assert isinstance(scale_lr(1, 2, 1), float)


@pytest.mark.parametrize(
    "args,message",
    [
        ((0.1, 0, 256), "Invalid batch: 0; allowed: an integer >= 1"),
        ((0.1, 512, 2.5), "Invalid base_batch: 2.5"),
        ((0.1, True, 256), "Invalid batch: True"),
        ((-0.1, 512, 256), "Invalid lr: -0.1; allowed: a finite number >= 0"),
        ((math.nan, 512, 256), "Invalid lr: nan"),
        ((0.1, 512, 256, "cubic"), "Invalid rule: 'cubic'; allowed: 'linear', 'sqrt'"),
    ],
)
def test_scale_lr_names_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=message):
        scale_lr(*args)
