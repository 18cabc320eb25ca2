"""Search spaces and the two search strategies."""

from __future__ import annotations

import math

import pytest
import torch

from optarena.registry import available, lookup
from optarena.search_space import Categorical, LogUniform, OneMinusLogUniform, SearchSpace, Uniform
from optarena.tuning import QuasiRandomSearch, TPESearch, make_search


def test_dimensions_map_the_unit_interval_onto_their_range():
    lr = LogUniform(1e-4, 1e-1)
    assert lr.value(0.0) == pytest.approx(1e-4)
    assert lr.value(1.0) == pytest.approx(1e-1)
    assert lr.value(0.5) == pytest.approx(math.sqrt(1e-4 * 1e-1))
    assert Uniform(-1, 3).value(0.25) == pytest.approx(0.0)
    beta = OneMinusLogUniform(0.9, 0.999)
    assert beta.value(0.0) == pytest.approx(0.9) and beta.value(1.0) == pytest.approx(0.999)
    assert beta.value(0.5) == pytest.approx(1 - math.sqrt(0.1 * 0.001))
    assert Categorical(("a", "b")).value(0.99) == "b"


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: LogUniform(0.0, 1.0), "0 < low"),
        (lambda: LogUniform(1.0, 0.1), "low < high"),
        (lambda: OneMinusLogUniform(0.5, 1.0), "high < 1"),
        (lambda: Categorical(()), "at least one"),
    ],
)
def test_bad_dimensions_are_rejected(make, fragment):
    with pytest.raises(ValueError, match=fragment):
        make()


def test_every_registered_optimizer_declares_a_learning_rate_first_and_its_keys_exist():
    for entry in available():
        space = entry.search_space
        assert list(space)[0] == "lr", entry.name
        defaults = entry.defaults()
        sample = space.from_unit([0.5] * len(space))
        hyperparameters = space.hyperparameters(sample, defaults)
        assert set(hyperparameters) <= set(defaults), entry.name
        entry.build([torch.zeros(2, requires_grad=True)], **hyperparameters)  # accepted as given


def test_tuple_items_go_into_their_tuple():
    sample = {"lr": 0.01, "betas[0]": 0.8}
    assert SearchSpace.to_hyperparameters(sample, {"betas": (0.9, 0.999)}) == {"lr": 0.01, "betas": (0.8, 0.999)}


def test_restrict_keeps_order_and_names_unknown_keys():
    space = lookup("adamw").search_space
    assert list(space.restrict(["weight_decay", "lr"])) == ["lr", "weight_decay"]
    with pytest.raises(ValueError, match="'momentum'.*tunable: lr"):
        space.restrict(["momentum"])


def test_quasi_random_points_are_the_same_for_every_optimizer_and_cover_the_range():
    adam = QuasiRandomSearch(lookup("adam").search_space.restrict(["lr"]), 16, seed=3)
    sgd = QuasiRandomSearch(lookup("sgd").search_space.restrict(["lr"]), 16, seed=3)
    assert (adam.points == sgd.points).all()
    lrs = sorted(s.hyperparameters["lr"] for s in adam.all())
    low, high = 1e-5, 1e-1
    assert low <= lrs[0] < 1e-4 and 1e-2 < lrs[-1] <= high
    gaps = [math.log(b / a) for a, b in zip(lrs, lrs[1:])]
    assert max(gaps) < 3 * math.log(high / low) / 16  # evenly spread, unlike 16 random draws could be


def test_budget_is_enforced_and_tell_checks_the_trial():
    search = make_search("quasi-random", lookup("sgd").search_space, 2)
    first = search.ask()
    search.ask()
    with pytest.raises(RuntimeError, match="budget of 2"):
        search.ask()
    search.tell(first.number, 0.5)
    with pytest.raises(ValueError, match="never asked"):
        search.tell(7, 0.1)
    with pytest.raises(ValueError, match="budget"):
        make_search("quasi-random", lookup("sgd").search_space, 0)
    with pytest.raises(ValueError, match="'grid'"):
        make_search("grid", lookup("sgd").search_space, 4)


def test_tpe_concentrates_near_the_optimum_of_a_simple_objective():
    search = TPESearch(SearchSpace({"lr": LogUniform(1e-5, 1.0)}), 40, seed=0)
    best = 1e-2
    for _ in range(40):
        s = search.ask()
        search.tell(s.number, abs(math.log10(s.hyperparameters["lr"]) - math.log10(best)))
    late = [abs(math.log10(search._study.trials[i].params["lr"] / best)) for i in range(30, 40)]
    assert sorted(late)[5] < 0.5  # the median of the last ten is within half a decade


def test_fixed_settings_come_with_every_sample_even_when_tuning_the_lr_alone():
    entry = lookup("adafactor")
    search = make_search("quasi-random", entry.search_space, 3, defaults=entry.defaults(), tune=["lr"])
    for suggestion in search.all():
        assert suggestion.hyperparameters["relative_step"] is False
        entry.build([torch.zeros(3, 2, requires_grad=True)], **suggestion.hyperparameters)
