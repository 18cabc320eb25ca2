"""Per-parameter routing: partition, masked transforms, param_groups, named parameters."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

import optarena
from optarena.transforms import AddDecayedWeights, ScaleByAdam, ScaleByLearningRate, Trace


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(10, 6), nn.Linear(6, 8), nn.LayerNorm(8), nn.Linear(8, 3)).double()


def train(module: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        tokens = torch.randint(0, 10, (16,), generator=g)
        target = torch.randn(16, 3, generator=g, dtype=torch.float64)
        ((module(tokens) - target) ** 2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()


def matrices(name, p):
    return "sgd" if p.dim() == 2 and not name.startswith("0.") else "adam"


def partitioned(**hyper):
    chains = {
        "sgd": [Trace(), ScaleByLearningRate()],
        "adam": [ScaleByAdam(), ScaleByLearningRate().bind(lr="adam_lr")],
    }
    return optarena.partition(matrices, chains)


@pytest.mark.parametrize("fused", [False, True])
def test_a_partition_steps_each_parameter_with_its_own_chain(fused):
    """The same numbers as two torch optimizers, one per set of parameters."""
    ours, theirs = model(), model()
    opt = optarena.Chain(ours.named_parameters(), partitioned(), lr=0.05, momentum=0.9, adam_lr=1e-2, fused=fused)
    names = dict(theirs.named_parameters())
    hidden = [p for n, p in names.items() if matrices(n, p) == "sgd"]
    rest = [p for n, p in names.items() if matrices(n, p) == "adam"]
    reference = [torch.optim.SGD(hidden, lr=0.05, momentum=0.9), torch.optim.Adam(rest, lr=1e-2)]

    class Both:
        def step(self):
            for r in reference:
                r.step()

        def zero_grad(self):
            for r in reference:
                r.zero_grad()

    train(ours, opt)
    train(theirs, Both())
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    routes = {row["route"] for row in opt.explain()}
    assert routes == {"sgd", "adam"}
    assert opt.composition().startswith("partition(matrices) {sgd: trace -> scale_by_learning_rate; adam:")


def test_a_partition_by_group_key():
    module = model()
    groups = [
        {"params": list(module[1].parameters()) + list(module[3].parameters()), "chain": "sgd"},
        {"params": list(module[0].parameters()) + list(module[2].parameters())},
    ]
    chains = {"adam": [ScaleByAdam(), ScaleByLearningRate()], "sgd": [Trace(), ScaleByLearningRate()]}
    opt = optarena.Chain(groups, optarena.partition("chain", chains), lr=0.01, momentum=0.9)
    assert [g["chain"] for g in opt.param_groups] == ["sgd", "adam"]
    train(module, opt, steps=2)
    assert "momentum_buffer" in opt.state[module[1].weight] and "exp_avg" in opt.state[module[0].weight]
    with pytest.raises(ValueError, match="chain: 'adamw'"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "chain": "adamw"})


def test_a_rule_that_invents_a_label_is_named():
    module = model()
    opt = optarena.Chain(module.named_parameters(), optarena.partition(lambda n, p: "other", {"a": [Trace()]}))
    train_grads = [p.grad for p in module.parameters()]
    assert all(g is None for g in train_grads)
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    with pytest.raises(ValueError, match="rule sent '0.weight' to 'other'.*chains: 'a'"):
        opt.step()


def test_partitions_check_their_chains():
    with pytest.raises(TypeError, match="non-empty mapping"):
        optarena.partition(matrices, {})
    with pytest.raises(TypeError, match="list of optarena transforms"):
        optarena.partition(matrices, {"a": [torch.optim.SGD]})
    with pytest.raises(TypeError, match="identifier"):
        optarena.partition("a key", {"a": [Trace()]})


def no_decay_on_vectors(name, p):
    return p.dim() >= 2


@pytest.mark.parametrize("fused", [False, True])
def test_masked_decay_skips_the_masked_out_parameters(fused):
    module = model()
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    chain = [ScaleByAdam(), optarena.masked(AddDecayedWeights(), no_decay_on_vectors), ScaleByLearningRate()]
    opt = optarena.Chain(module.named_parameters(), chain, lr=0.1, weight_decay=0.5, fused=fused)
    twin = model()
    plain = optarena.Chain(twin.named_parameters(), [ScaleByAdam(), ScaleByLearningRate()], lr=0.1, fused=fused)
    decayed = model()
    full = optarena.Chain(
        decayed.named_parameters(),
        [ScaleByAdam(), AddDecayedWeights(), ScaleByLearningRate()],
        lr=0.1,
        weight_decay=0.5,
        fused=fused,
    )
    for m, o in ((module, opt), (twin, plain), (decayed, full)):
        g = torch.Generator().manual_seed(2)
        for _ in range(3):  # gradients that do not depend on the parameters: each tensor steps alone
            for p in m.parameters():
                p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
            o.step()
    for (name, p), q, r in zip(module.named_parameters(), twin.parameters(), decayed.parameters()):
        expected = r if before[name].dim() >= 2 else q
        torch.testing.assert_close(p, expected, rtol=0, atol=0)
    assert "masked(add_decayed_weights, no_decay_on_vectors)" in opt.composition()
    copy.deepcopy(opt).step()  # the mask's memory is not part of a copy


def test_param_groups_leave_biases_norms_and_embeddings_without_decay():
    module = model()
    groups = optarena.param_groups(module, weight_decay=0.1)
    names = [[n for n, _ in g["params"]] for g in groups]
    assert names == [["1.weight", "3.weight"], ["0.weight", "1.bias", "2.weight", "2.bias", "3.bias"]]
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    opt = optarena.AdamW(groups, lr=1e-2)
    assert opt.param_groups[0]["param_names"] == ["1.weight", "3.weight"]
    train(module, opt, steps=2)
    by_fragment = optarena.param_groups(module, no_decay=["bias"])
    assert [n for n, _ in by_fragment[1]["params"]] == ["1.bias", "2.bias", "3.bias"]
    with pytest.raises(TypeError, match="as a list"):
        optarena.param_groups(module, no_decay="bias")


def test_named_parameters_round_trip_through_state_dict():
    module = model()
    opt = optarena.AdamW(module.named_parameters(), lr=1e-2)
    train(module, opt, steps=2)
    saved = opt.state_dict()
    assert saved["param_groups"][0]["param_names"] == [n for n, _ in module.named_parameters()]
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    again = optarena.AdamW(module.named_parameters(), lr=1e-2)
    again.load_state_dict(torch.load(buffer))
    assert again.state_dict()["param_groups"] == saved["param_groups"]
    theirs = torch.optim.AdamW(module.named_parameters(), lr=1e-2)
    theirs.load_state_dict(saved)  # torch's optimizer reads it as its own
    assert theirs.state_dict()["param_groups"][0]["param_names"] == saved["param_groups"][0]["param_names"]
