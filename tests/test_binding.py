"""Hyperparameters bound per transform: group keys, renaming, fixed values, conflicts."""

from __future__ import annotations

import pytest
import torch

import optarena
from optarena.transforms import AddDecayedWeights, ScaleByAdam, ScaleByLars, ScaleByLearningRate, ScaleByRadam


def params():
    g = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64))]


def test_two_meanings_of_one_key_are_refused_at_construction():
    # Adam's eps (1e-8, in the denominator) and LARS's (0, in the local rate) are different knobs
    with pytest.raises(TypeError, match=r"'eps' with different meanings.*bind\(eps="):
        optarena.Chain(params(), [ScaleByAdam(), ScaleByLars(), ScaleByLearningRate()])


def test_one_meaning_is_shared():
    # two decay terms read the same weight_decay, declared alike
    opt = optarena.Chain(params(), [AddDecayedWeights(), ScaleByAdam(), AddDecayedWeights(), ScaleByLearningRate()])
    assert opt.param_groups[0]["weight_decay"] == 0.0


def test_bound_keys_keep_values_apart():
    chain = [ScaleByAdam(), ScaleByLars().bind(eps="lars_eps"), ScaleByLearningRate()]
    opt = optarena.Chain(params(), chain, eps=1e-6, lars_eps=1e-3, lr=0.1)
    group = opt.param_groups[0]
    assert (group["eps"], group["lars_eps"]) == (1e-6, 1e-3)
    # each transform reads its own value: changing LARS's leaves Adam's alone and changes the step
    twin = optarena.Chain(params(), chain, eps=1e-6, lars_eps=10.0, lr=0.1)
    for o in (opt, twin):
        o.param_groups[0]["params"][0].grad = torch.ones(4, 3, dtype=torch.float64)
        o.step()
    assert not torch.equal(opt.param_groups[0]["params"][0], twin.param_groups[0]["params"][0])
    assert "scale_by_lars(eps<-lars_eps)" in opt.composition()


def test_a_fixed_value_is_a_constant_the_groups_do_not_hold():
    fixed = optarena.Chain(params(), [ScaleByRadam(sma_threshold=6.0), ScaleByLearningRate()])
    assert "sma_threshold" not in fixed.param_groups[0]
    read = optarena.Chain(params(), [ScaleByRadam(), ScaleByLearningRate()], sma_threshold=6.0)
    assert read.param_groups[0]["sma_threshold"] == 6.0
    with pytest.raises(TypeError, match="unexpected keyword argument 'sma_threshold'"):
        optarena.Chain(params(), [ScaleByRadam(sma_threshold=6.0), ScaleByLearningRate()], sma_threshold=6.0)
    # both give the same steps
    for opt in (fixed, read):
        for step in range(8):
            opt.param_groups[0]["params"][0].grad = torch.full((4, 3), 0.1 * (step + 1), dtype=torch.float64)
            opt.step()
    torch.testing.assert_close(fixed.param_groups[0]["params"][0], read.param_groups[0]["params"][0], rtol=0, atol=0)


def test_named_optimizers_keep_torchs_group_keys():
    # RAdam fixes the threshold, as torch.optim.RAdam has none; Ranger exposes it
    assert "sma_threshold" not in optarena.RAdam(params()).param_groups[0]
    assert optarena.Ranger(params()).param_groups[0]["sma_threshold"] == 5


@pytest.mark.parametrize(
    "make,error,fragment",
    [
        (lambda: ScaleByRadam(threshold=4.0), TypeError, "no hyperparameter 'threshold'"),
        (lambda: ScaleByRadam(sma_threshold=3.0), ValueError, "sma_threshold"),
        (lambda: ScaleByAdam().bind(epsilon="e"), TypeError, "no hyperparameter 'epsilon'"),
        (lambda: ScaleByAdam().bind(eps="not a key"), TypeError, "identifier"),
        (lambda: ScaleByRadam(sma_threshold=5.0).bind(sma_threshold="t"), TypeError, "fixed at construction"),
    ],
)
def test_bad_bindings_are_named(make, error, fragment):
    with pytest.raises(error, match=fragment):
        make()


def test_bind_returns_a_copy():
    adam = ScaleByAdam()
    renamed = adam.bind(eps="adam_eps")
    assert adam.key("eps") == "eps" and renamed.key("eps") == "adam_eps"
