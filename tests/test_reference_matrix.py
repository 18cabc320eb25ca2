"""Muon, Shampoo, SOAP and SM3 beyond the table: torch.optim.Muon, optax.sm3's stored trajectories,
the torch-sm3 package, the definitions of Shampoo's blocking and grafting, whole-model Muon,
the compiled kernels and half precision."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matrix_references import PackageSM3
from torch import nn

import optarena
from optarena.transforms import ScaleByLearningRate
from optarena.transforms import matrix as matrix_module
from optarena.transforms import sm3 as sm3_module
from optarena.transforms.matrix import MatrixTransform

FIXTURES = Path(__file__).parent / "fixtures" / "optax_sm3.npz"


def matrices(seed=0, dtype=torch.float64, shapes=((6, 4), (3, 5), (7, 7))):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).to(dtype).requires_grad_() for s in shapes]


def run(optimizer, params, steps, start=0):
    for t in range(start, start + steps):
        for i, p in enumerate(params):
            p.grad = (torch.sin(1.3 * p.detach().double() + 0.7 * t + i) + 0.1 * p.detach().double()).to(p.dtype)
        optimizer.step()


def relative(a, b):
    return max(((x.double() - y.double()).abs().max() / y.double().abs().max()).item() for x, y in zip(a, b))


# -- Muon ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, bound", [(torch.float64, 1e-12), (torch.float32, 2**-8)])
@pytest.mark.parametrize("config", [{}, {"lr": 0.02, "nesterov": False, "adjust_lr_fn": "match_rms_adamw"}])
def test_muon_matches_torch_on_matrices_with_bfloat16_iterations(dtype, bound, config):
    """The same bfloat16 iterations: over 100 steps, equal up to the rounding of the float64 steps around
    them, and for float32 parameters within bfloat16 rounding (a flip of one bfloat16 rounding moves
    an update by up to 2^-8 of itself)."""
    ours, theirs = matrices(dtype=dtype), matrices(dtype=dtype)
    run(optarena.Muon(ours, **config), ours, 100)
    run(torch.optim.Muon(theirs, **config), theirs, 100)
    assert relative(ours, theirs) <= bound


def test_muon_float64_iterations_differ_from_bfloat16_by_bfloat16_rounding():
    exact, rounded = matrices(), matrices()
    run(optarena.Muon(exact, ns_dtype="float64"), exact, 20)
    run(optarena.Muon(rounded), rounded, 20)
    gap = relative(exact, rounded)
    assert 0 < gap < 2**-8


def tiny_transformer() -> nn.Module:
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(8)
            self.attn = nn.Linear(8, 24)
            self.proj = nn.Linear(8, 8)

        def forward(self, x):
            q, k, v = self.attn(self.norm(x)).chunk(3, dim=-1)
            return x + self.proj(torch.softmax(q @ k.transpose(-1, -2), -1) @ v)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(11, 8)
            self.blocks = nn.ModuleList([Block(), Block()])
            self.lm_head = nn.Linear(8, 11, bias=False)

        def forward(self, ids):
            x = self.wte(ids)
            for block in self.blocks:
                x = block(x)
            return self.lm_head(x)

    torch.manual_seed(0)
    return Model().double()


def routes(optimizer, model):
    """Each named parameter's chain, from the state it keeps after a step."""
    return {n: ("muon" if "momentum_buffer" in optimizer.state[p] else "adamw") for n, p in model.named_parameters()}


def train_tokens(model, optimizer, steps, start=0):
    g = torch.Generator().manual_seed(5)
    data = [torch.randint(0, 11, (4, 6), generator=g) for _ in range(start + steps)]
    for ids in data[start:]:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.roll(1, 1).flatten()).backward()
        optimizer.step()


def test_whole_model_rule_gives_hidden_matrices_to_muon():
    model = tiny_transformer()
    optimizer = optarena.MuonWithAdamW(model, ns_dtype="float64")
    train_tokens(model, optimizer, 1)
    chains = routes(optimizer, model)
    assert sorted(n for n, r in chains.items() if r == "muon") == [
        "blocks.0.attn.weight",
        "blocks.0.proj.weight",
        "blocks.1.attn.weight",
        "blocks.1.proj.weight",
    ]
    assert {n for n, r in chains.items() if r == "adamw"} >= {
        "wte.weight",
        "lm_head.weight",
        "blocks.0.norm.weight",
        "blocks.0.attn.bias",
    }
    assert {row["route"] for row in optimizer.explain()} == {"muon", "adamw"}
    assert optimizer.state_dict()["param_groups"][0]["param_names"][0] == "wte.weight"
    assert optarena.is_hidden_matrix("model.layers.3.mlp.up_proj.weight", torch.zeros(4, 4))
    assert not optarena.is_hidden_matrix("model.embed_tokens.weight", torch.zeros(4, 4))
    assert optarena.is_hidden_matrix(None, torch.zeros(4, 4)) and not optarena.is_hidden_matrix(None, torch.zeros(4))
    # the rule is the caller's to change: here the head is Muon's too
    model = tiny_transformer()
    optimizer = optarena.MuonWithAdamW(model.named_parameters(), hidden=lambda n, p: p.dim() == 2 and "wte" not in n)
    train_tokens(model, optimizer, 1)
    assert routes(optimizer, model)["lm_head.weight"] == "muon"
    with pytest.raises(TypeError, match="hidden must be a function"):
        optarena.MuonWithAdamW(model, hidden="matrices")


def test_muon_with_adamw_equals_the_two_optimizers_and_round_trips():
    settings = {"lr": 0.02, "weight_decay": 0.01, "ns_dtype": "float64", "fused": False}
    model, twin = tiny_transformer(), tiny_transformer()
    combined = optarena.MuonWithAdamW(model.named_parameters(), **settings)
    hidden = [p for n, p in twin.named_parameters() if optarena.is_hidden_matrix(n, p)]
    rest = [p for n, p in twin.named_parameters() if not optarena.is_hidden_matrix(n, p)]
    separate = [
        optarena.Muon(hidden, adjust_lr_fn="match_rms_adamw", **settings),
        optarena.AdamW(rest, betas=(0.9, 0.95), lr=0.02, weight_decay=0.01, fused=False),
    ]

    class Both:
        def zero_grad(self):
            for o in separate:
                o.zero_grad()

        def step(self):
            for o in separate:
                o.step()

    train_tokens(model, combined, 4)
    train_tokens(twin, Both(), 4)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)

    buffer = io.BytesIO()
    torch.save(combined.state_dict(), buffer)
    buffer.seek(0)
    resumed_model = copy.deepcopy(model)
    resumed = optarena.MuonWithAdamW(resumed_model.named_parameters(), **settings)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    train_tokens(model, combined, 3, start=4)
    train_tokens(resumed_model, resumed, 3, start=4)
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)

    # one learning rate: a scheduler drives both chains
    torch.optim.lr_scheduler.LambdaLR(combined, lambda epoch: 0.0)  # sets lr = 0 at once
    assert [g["lr"] for g in combined.param_groups] == [0.0]
    before = [p.detach().clone() for p in model.parameters()]
    train_tokens(model, combined, 1, start=7)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# -- SM3 -------------------------------------------------------------------------------------------


def load_sm3():
    with np.load(FIXTURES, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return json.loads(str(arrays.pop("meta"))), arrays


META, ARRAYS = load_sm3()


def sm3_replay(keywords):
    names = META["tensors"]
    params = [torch.tensor(ARRAYS[f"problem/{n}/init"], requires_grad=True) for n in names]
    curvature = [torch.tensor(ARRAYS[f"problem/{n}/curvature"]) for n in names]
    noise = [torch.tensor(ARRAYS[f"problem/{n}/noise"]) for n in names]
    opt = optarena.SM3(params, **keywords)
    paths = {n: [] for n in names}
    for step in range(META["steps"]):
        for p, h, c in zip(params, curvature, noise):
            p.grad = h * p.detach() + c[step]
        opt.step()
        for n, p in zip(names, params):
            paths[n].append(p.detach().numpy().copy())
    return {n: np.stack(v) for n, v in paths.items()}


@pytest.mark.parametrize("config", META["configs"], ids=[c["name"] for c in META["configs"]])
def test_sm3_follows_optax_trajectories(config):
    ours = sm3_replay(config["optarena"])
    for name, path in ours.items():
        theirs = ARRAYS[f"{config['name']}/{name}"].reshape(META["steps"], -1)
        error = np.abs(path.reshape(theirs.shape) - theirs).max(axis=1)
        scale = np.maximum(np.abs(theirs).max(axis=1), 1e-300)
        assert (error / scale).max() <= 1e-8, name
    assert not ours["z"].any()  # a tensor without gradient: accumulator 0, update 0


def test_torch_sm3_keeps_a_running_maximum_when_beta_is_positive():
    """With beta > 0 the torch-sm3 package takes max(old accumulator, new maxima): its paths part from
    optax's (and optarena's), which replace the accumulators (SM3-II)."""
    ours, theirs = matrices(), matrices()
    run(optarena.SM3(ours, beta=0.9, momentum=0.5), ours, 50)
    run(PackageSM3(theirs, beta=0.9, momentum=0.5), theirs, 50)
    assert relative(ours, theirs) > 1e-4
    same_a, same_b = matrices(), matrices()
    run(optarena.SM3(same_a, momentum=0.5), same_a, 50)
    run(PackageSM3(same_b, momentum=0.5), same_b, 50)
    assert relative(same_a, same_b) <= 1e-12


def test_sm3_keeps_m_plus_n_numbers_for_a_matrix():
    p = matrices(shapes=((30, 20),))
    opt = optarena.SM3(p)
    run(opt, p, 1)
    assert sum(v.numel() for v in opt.state[p[0]].values() if torch.is_tensor(v)) == 30 + 20


@pytest.mark.parametrize("config", [{}, {"momentum": 0.5}, {"beta": 0.9}])
def test_sm3_compiled_step_follows_the_eager_step(config, monkeypatch):
    """fused=True runs each tensor's whole SM3 step (accumulators, momentum, learning rate and the
    parameter's update) as one compiled graph: the same path, to rounding, on tensors of 0 to 3
    dimensions (the accumulators and the buffer included; 16 rows take the maxima over the first
    dimension in blocks of rows), under a learning rate that changes at every step."""
    monkeypatch.setattr(sm3_module, "COMPILE_MIN_ELEMENTS", 0)  # compile these small ones
    shapes = ((6, 5), (16, 3), (5,), (3, 4, 2), (16, 2, 3), ())
    eager, compiled = matrices(shapes=shapes), matrices(shapes=shapes)
    opt_eager = optarena.SM3(eager, fused=False, **config)
    opt_compiled = optarena.SM3(compiled, fused=True, **config)
    for t in range(6):
        for opt, params in ((opt_eager, eager), (opt_compiled, compiled)):
            opt.param_groups[0]["lr"] = 0.1 / (1 + t)
            run(opt, params, 1, start=t)
    assert relative(compiled, eager) <= 1e-12
    beta, momentum = float(config.get("beta", 0.0)), float(config.get("momentum", 0.0))
    settings = ((("NoneType", None),) if momentum == 0 else ()) + (
        ("float", beta),
        ("float", 1e-30),
        ("float", momentum),
    )
    ran = [key for key in matrix_module._compiled_kernels if key[1] == "sm3_step" and key[2] == settings]
    assert ran and not set(ran) & matrix_module._broken_kernels  # this configuration's step compiled
    for a, b in zip(eager, compiled):
        assert opt_compiled.state[b].keys() == opt_eager.state[a].keys()
        for key, value in opt_eager.state[a].items():
            torch.testing.assert_close(opt_compiled.state[b][key], value, rtol=1e-12, atol=0)


@pytest.mark.parametrize("config", [{}, {"momentum": 0.5}, {"beta": 0.9, "eps": 0.0}])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sm3_vectors_and_scalars_step_together_with_the_numbers_of_one_by_one(config, dtype):
    """SM3 on a vector or a scalar is elementwise (one accumulator of its own shape), so a group's
    vectors and scalars step as one flat tensor: the same numbers, bit for bit, as each alone in a
    group of its own (the state included), beside a matrix that steps as before; with gradients
    that are zero in places, so that the mask of nu > 0 matters with eps = 0."""
    shapes = ((5,), (), (6, 4), (7,), (), (3,))
    together, alone = matrices(shapes=shapes, dtype=dtype), matrices(shapes=shapes, dtype=dtype)
    opt_together = optarena.SM3(together, lr=0.1, **config)
    opt_alone = optarena.SM3([{"params": [p]} for p in alone], lr=0.1, **config)
    for t in range(5):
        for opt, params in ((opt_together, together), (opt_alone, alone)):
            for i, p in enumerate(params):
                grad = torch.sin(1.3 * p.detach() + 0.7 * t + i)
                p.grad = grad.masked_fill(grad.abs() < 0.3, 0.0) if t < 2 else grad
            opt.step()
    for a, b in zip(together, alone):
        assert torch.equal(a, b)
        assert opt_together.state[a].keys() == opt_alone.state[b].keys()
        for key, value in opt_alone.state[b].items():
            assert torch.equal(opt_together.state[a][key], value), key


def test_a_failed_sm3_step_compilation_runs_the_step_as_it_is(monkeypatch):
    """The compiled step writes its inputs in place; a compilation that fails has written nothing,
    and the step runs eagerly from the same inputs, with one warning."""
    from optarena.optim import toolchain

    def broken(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no compiler today")

        return fail

    monkeypatch.setattr(sm3_module, "COMPILE_MIN_ELEMENTS", 0)
    monkeypatch.setattr(matrix_module.torch, "compile", broken)
    monkeypatch.setattr(matrix_module, "_compiled_kernels", {})
    monkeypatch.setattr(matrix_module, "_broken_kernels", set())
    monkeypatch.setattr(toolchain, "_warned", set())
    shapes = ((6, 5), (5,))
    eager, compiled = matrices(shapes=shapes), matrices(shapes=shapes)
    run(optarena.SM3(eager, fused=False, momentum=0.5), eager, 3)
    with pytest.warns(RuntimeWarning, match="sm3_step"):
        run(optarena.SM3(compiled, fused=True, momentum=0.5), compiled, 3)
    assert relative(compiled, eager) <= 1e-12
    assert matrix_module._broken_kernels


class Doubled(MatrixTransform):
    """``2 u``, per matrix, noting the parameters as each tensor's step begins."""

    def __init__(self):
        self.seen = []

    def update_matrix(self, matrix, state, values, k):
        self.seen.append([p.detach().clone() for p in k.params])
        return 2 * matrix


def test_a_matrix_step_ending_the_chain_updates_each_parameter_before_the_next_tensor():
    """A matrix transform followed only by the learning rate: each parameter takes its update as soon
    as it is made, so no update is held while the other tensors step (SM3's eager and fused paths)."""
    params = matrices(shapes=((3, 4), (2, 5), (4,)))
    start = [p.detach().clone() for p in params]
    doubled = Doubled()
    opt = optarena.Chain(params, [doubled, ScaleByLearningRate()], lr=0.1)
    run(opt, params, 1)
    grads = [p.grad for p in params]
    for i in range(len(params)):
        for j, seen in enumerate(doubled.seen[i]):
            torch.testing.assert_close(seen, start[j] - 0.2 * grads[j] if j < i else start[j], rtol=1e-15, atol=0)
    for p, s, g in zip(params, start, grads):
        torch.testing.assert_close(p.detach(), s - 0.2 * g, rtol=1e-15, atol=0)


# -- Shampoo's blocking and grafting, by their definitions ---------------------------------------------


def test_shampoo_blocks_are_shampoo_on_each_block():
    """max_preconditioner_dim=2 on a 4 x 6 matrix: each 2 x 2 block steps as a 2 x 2 parameter of its own."""
    whole = matrices(shapes=((4, 6),))
    blocks = [whole[0].detach()[r : r + 2, c : c + 2].clone().requires_grad_() for r in (0, 2) for c in (0, 2, 4)]
    opt_whole = optarena.Shampoo(whole, max_preconditioner_dim=2, grafting=None, precondition_frequency=1)
    opt_blocks = optarena.Shampoo(blocks, grafting=None, precondition_frequency=1)
    for t in range(10):
        g = torch.sin(1.3 * whole[0].detach() + 0.7 * t)
        whole[0].grad = g
        for b, (r, c) in zip(blocks, [(r, c) for r in (0, 2) for c in (0, 2, 4)]):
            b.grad = g[r : r + 2, c : c + 2].clone()
        opt_whole.step()
        opt_blocks.step()
    for b, (r, c) in zip(blocks, [(r, c) for r in (0, 2) for c in (0, 2, 4)]):
        torch.testing.assert_close(whole[0].detach()[r : r + 2, c : c + 2], b.detach(), rtol=1e-10, atol=0)


@pytest.mark.parametrize("grafting", ["adagrad", "adam"])
def test_shampoo_grafting_gives_each_block_the_norm_of_the_grafted_direction(grafting):
    p = matrices(shapes=((4, 6),))
    opt = optarena.Shampoo(p, lr=1.0, grafting=grafting, max_preconditioner_dim=3, grafting_eps=1e-8, weight_decay=0.0)
    squares = torch.zeros(4, 6, dtype=torch.float64)
    for t in range(1, 6):
        before = p[0].detach().clone()
        g = torch.sin(1.3 * before + 0.7 * t)
        p[0].grad = g
        opt.step()
        if grafting == "adagrad":
            squares += g * g
            direction = g / (squares.sqrt() + 1e-8)
        else:
            squares = 0.999 * squares + 0.001 * g * g
            direction = g / ((squares / (1 - 0.999**t)).sqrt() + 1e-8)
        change = before - p[0].detach()
        for r in (0, 3):
            for c in (0, 3):
                got = change[r : r + 3, c : c + 3].norm()
                torch.testing.assert_close(got, direction[r : r + 3, c : c + 3].norm(), rtol=1e-12, atol=0)


# -- compiled kernels and half precision ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name, config", [("muon", {"ns_dtype": "float64"}), ("shampoo", {"precondition_frequency": 1})]
)
def test_compiled_kernels_equal_the_eager_ones(name, config):
    eager, compiled = matrices(shapes=((6, 4),)), matrices(shapes=((6, 4),))
    run(optarena.create(name, eager, **config, fused=False), eager, 5)
    run(optarena.create(name, compiled, **config, fused=True), compiled, 5)
    assert relative(compiled, eager) <= 1e-12


@pytest.mark.parametrize("name", ["muon", "shampoo", "soap", "sm3"])
def test_bfloat16_parameters_follow_the_float32_run(name):
    """bf16 parameters keep float32 state and a rounding remainder: fed the same gradients, their exact
    value (parameter plus remainder) follows a float32 run from the same start."""
    config = {"ns_dtype": "float32"} if name == "muon" else {}
    half = matrices(dtype=torch.bfloat16)
    full = [p.detach().float().requires_grad_() for p in half]
    start = [p.detach().clone() for p in full]
    opt_half, opt_full = optarena.create(name, half, **config), optarena.create(name, full, **config)
    g = torch.Generator().manual_seed(2)
    for _ in range(10):
        grads = [torch.randn(p.shape, generator=g) for p in full]
        for p, q, grad in zip(half, full, grads):
            p.grad, q.grad = grad.to(torch.bfloat16), grad.to(torch.bfloat16).float()
        opt_half.step()
        opt_full.step()
    assert all(
        v.dtype == torch.float32 for s in opt_half.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()
    )
    with torch.no_grad():
        exact = [p.float() + opt_half.state[p]["param_remainder"] for p in half]
        moved = sum(float((f - s).norm() ** 2) for f, s in zip(full, start)) ** 0.5
        gap = sum(float((e - f).norm() ** 2) for e, f in zip(exact, full)) ** 0.5
    assert gap <= 1e-4 * moved
