"""K-FAC against the natural gradient of the explicitly built Kronecker-factored Fisher (float64).

The factors are computed here from their definition, without hooks: inputs with a 1 appended,
and per-example output gradients ``s = batch * dL/d(output)`` from autograd. The damped Fisher
``(A + pi sqrt(l) I) kron (G + sqrt(l)/pi I)`` is built as a matrix and solved against the
column-stacked gradient ``[dW, db]``.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn

import optarena

TOLERANCE = 1e-10


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def batch(seed: int, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(size, 4, generator=g, dtype=torch.float64), torch.randn(
        size, 3, generator=g, dtype=torch.float64
    )


def loss_of(model, x, y):
    return ((model(x) - y) ** 2).mean()


def definition_factors(model: nn.Sequential, x, y) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(A, G) of each Linear layer from the definition: layer inputs and output gradients by autograd."""
    inputs, outputs = [], []
    h = x
    for module in model:
        if isinstance(module, nn.Linear):
            inputs.append(h)
            h = module(h)
            outputs.append(h)
        else:
            h = module(h)
    loss = ((h - y) ** 2).mean()
    grads = torch.autograd.grad(loss, outputs)
    factors = []
    for a, g in zip(inputs, grads):
        a = torch.cat([a.detach(), torch.ones(a.shape[0], 1, dtype=a.dtype)], dim=1)
        s = g * x.shape[0]
        factors.append((a.T @ a / x.shape[0], s.T @ s / x.shape[0]))
    return factors


def natural_gradient(a, g, gradient, damping):
    """The damped Kronecker-factored Fisher built as a matrix and solved against vec(gradient)."""
    pi = math.sqrt((a.trace() / a.shape[0]) / (g.trace() / g.shape[0]))
    fisher = torch.kron(
        a + pi * math.sqrt(damping) * torch.eye(a.shape[0], dtype=a.dtype),
        g + math.sqrt(damping) / pi * torch.eye(g.shape[0], dtype=g.dtype),
    )
    vec = gradient.T.reshape(-1)  # column-stacked, the ordering of kron(A, G)
    return torch.linalg.solve(fisher, vec).reshape(gradient.shape[1], gradient.shape[0]).T


def layer_gradients(model):
    return [torch.cat([m.weight.grad, m.bias.grad.unsqueeze(1)], dim=1) for m in model if isinstance(m, nn.Linear)]


def layer_params(model):
    return [
        torch.cat([m.weight.detach(), m.bias.detach().unsqueeze(1)], dim=1) for m in model if isinstance(m, nn.Linear)
    ]


def step(model, optimizer, seed):
    x, y = batch(seed)
    optimizer.zero_grad()
    loss_of(model, x, y).backward()
    optimizer.step()


def test_first_step_is_the_natural_gradient_of_the_explicit_fisher():
    model = mlp()
    x, y = batch(1)
    factors = definition_factors(model, x, y)
    opt = optarena.KFAC(model, lr=0.1, momentum=0.0, kl_clip=None, damping=1e-2)
    before = layer_params(model)
    loss_of(model, x, y).backward()
    grads = layer_gradients(model)
    opt.step()
    for (a, g), gradient, start, end in zip(factors, grads, before, layer_params(model)):
        expected = -0.1 * natural_gradient(a, g, gradient, 1e-2)
        assert ((end - start) - expected).abs().max() / expected.abs().max() <= TOLERANCE


def test_factors_average_and_inverses_wait_for_their_interval():
    model = mlp()
    opt = optarena.KFAC(
        model,
        lr=0.05,
        momentum=0.0,
        kl_clip=None,
        damping=1e-2,
        factor_decay=0.8,
        factor_update_interval=1,
        inverse_update_interval=3,
    )
    step(model, opt, 1)
    first = [opt.state[m.weight]["activation_factor"].clone() for m in model if isinstance(m, nn.Linear)]
    inverse = [opt.state[m.weight]["gradient_inverse"].clone() for m in model if isinstance(m, nn.Linear)]
    x, y = batch(2)
    second = definition_factors(model, x, y)
    step(model, opt, 2)
    for module, old, (a, _), inv in zip([m for m in model if isinstance(m, nn.Linear)], first, second, inverse):
        averaged = 0.8 * old + 0.2 * a
        assert torch.allclose(opt.state[module.weight]["activation_factor"], averaged, rtol=1e-12, atol=0)
        assert torch.equal(opt.state[module.weight]["gradient_inverse"], inv)  # step 2 of 3: not inverted again
    # the step taken with the stale inverses is their natural gradient
    model_b = mlp()
    opt_b = optarena.KFAC(
        model_b, lr=0.05, momentum=0.0, kl_clip=None, damping=1e-2, factor_decay=0.8, inverse_update_interval=3
    )
    step(model_b, opt_b, 1)
    x, y = batch(3)
    before = layer_params(model_b)
    opt_b.zero_grad()
    loss_of(model_b, x, y).backward()
    grads = layer_gradients(model_b)
    stale = [
        (opt_b.state[m.weight]["gradient_inverse"].clone(), opt_b.state[m.weight]["activation_inverse"].clone())
        for m in model_b
        if isinstance(m, nn.Linear)
    ]
    opt_b.step()
    for (g_inv, a_inv), gradient, start, end in zip(stale, grads, before, layer_params(model_b)):
        expected = -0.05 * g_inv @ gradient @ a_inv
        assert ((end - start) - expected).abs().max() / expected.abs().max() <= TOLERANCE


def test_factor_interval_skips_the_statistics_between_updates():
    model = mlp()
    opt = optarena.KFAC(model, factor_update_interval=2, kl_clip=None)
    step(model, opt, 1)
    kept = opt.state[model[0].weight]["activation_factor"].clone()
    step(model, opt, 2)
    assert torch.equal(opt.state[model[0].weight]["activation_factor"], kept)
    step(model, opt, 3)
    assert not torch.equal(opt.state[model[0].weight]["activation_factor"], kept)


def test_kl_clip_scales_every_layer_by_the_same_factor():
    lr, kl_clip = 0.5, 1e-6
    changes = []
    for clip in (None, kl_clip):
        model = mlp()
        x, y = batch(1)
        opt = optarena.KFAC(model, lr=lr, momentum=0.0, kl_clip=clip, damping=1e-2)
        before = layer_params(model)
        loss_of(model, x, y).backward()
        grads = layer_gradients(model)
        opt.step()
        changes.append([end - start for start, end in zip(before, layer_params(model))])
    # unclipped change = -lr V: the clipping factor from <V, grad>
    inner = sum(float((-change / lr * g).sum()) for change, g in zip(changes[0], grads)) * lr * lr
    nu = min(1.0, math.sqrt(kl_clip / inner))
    assert nu < 1
    for free, clipped in zip(*changes):
        assert torch.allclose(clipped, nu * free, rtol=1e-12, atol=0)


def test_conv2d_factors_are_grosse_and_martens():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, kernel_size=3, padding=1, stride=2).double()
    opt = optarena.KFAC(conv, kl_clip=None)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 2, 6, 7, generator=g, dtype=torch.float64)
    out = conv(x)
    out.retain_grad()
    (out.sin().mean()).backward()
    opt.step()
    patches = nn.functional.unfold(x, 3, padding=1, stride=2)  # (batch, 2*3*3, locations)
    rows = torch.cat(
        [patches.transpose(1, 2).reshape(-1, 18), torch.ones(patches.shape[0] * patches.shape[2], 1, dtype=x.dtype)], 1
    )
    a = rows.T @ rows / 5
    s = out.grad.permute(0, 2, 3, 1).reshape(-1, 3) * 5
    g_factor = s.T @ s / (5 * patches.shape[2])
    state = opt.state[conv.weight]
    assert torch.allclose(state["activation_factor"], a, rtol=1e-12, atol=1e-15)
    assert torch.allclose(state["gradient_factor"], g_factor, rtol=1e-12, atol=1e-15)


def test_state_dict_round_trip_continues_bit_for_bit():
    model = mlp()
    opt = optarena.KFAC(model, inverse_update_interval=2)
    for seed in range(3):
        step(model, opt, seed)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    twin = copy.deepcopy(model)
    twin_opt = optarena.KFAC(twin, inverse_update_interval=2)
    twin_opt.load_state_dict(torch.load(buffer, weights_only=True))
    for seed in range(3, 7):
        step(model, opt, seed)
        step(twin, twin_opt, seed)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_a_nonfinite_gradient_changes_no_factor(policy):
    model = mlp()
    opt = optarena.KFAC(model, nonfinite=policy)
    step(model, opt, 1)
    saved = copy.deepcopy(opt.state_dict())
    params = [p.detach().clone() for p in model.parameters()]
    x, y = batch(2)
    opt.zero_grad()
    loss_of(model, x, y).backward()
    model[0].weight.grad[0, 0] = float("nan")
    if policy == "raise":
        with pytest.raises(FloatingPointError, match="step 2"):
            opt.step()
    else:
        opt.step()
        assert opt.param_groups[0]["nonfinite_skips"] == 1
    for a, b in zip(params, model.parameters()):
        assert torch.equal(a, b)
    for key, value in saved["state"].items():
        for name, tensor in value.items():
            assert torch.equal(torch.as_tensor(tensor), torch.as_tensor(opt.state_dict()["state"][key][name]))


def test_the_model_trains():
    model = mlp()
    opt = optarena.KFAC(model, lr=0.1)
    x, y = batch(7, 64)
    first = loss_of(model, x, y).item()
    for _ in range(30):
        opt.zero_grad()
        loss_of(model, x, y).backward()
        opt.step()
    assert loss_of(model, x, y).item() < 0.7 * first
