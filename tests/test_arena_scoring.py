"""Scoring: expected best after k trials, performance profiles, leaderboard order, lr sensitivity."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from optarena.arena.results import StudyResult, TrialRecord, WorkloadResult
from optarena.arena.scoring import (
    expected_best,
    expected_max,
    floor_value,
    leaderboard,
    lr_sensitivity,
    median_cost,
    performance_profile,
)
from optarena.arena.workload import Target


def _trial(phase, number, final, steps=None, lr=0.01, status="finished"):
    return TrialRecord(
        key=f"{phase}{number}{final}",
        optimizer="x",
        hyperparameters={"lr": lr},
        seed=number,
        status=status,
        final_metric=final,
        best_metric=final,
        steps_to_target=steps,
        seconds_to_target=None if steps is None else steps / 100,
        train_seconds=1.0,
        steps_done=10,
        phase=phase,
        number=number,
    )


def _study(name, tuning=(), reruns=()):
    study = StudyResult(name, name, "quasi-random", ["lr"], len(tuning), len(reruns), "0")
    study.tuning = list(tuning)
    study.reruns = list(reruns)
    return study


def _workload(name, mode, studies):
    return WorkloadResult(name, name, name, "", {}, Target("m", 0.5, mode), 10, 1, list(studies))


def test_expected_max_matches_enumerating_every_draw():
    values = np.array([0.3, 0.9, 0.5, 0.1])
    for k in (1, 2, 3):
        draws = itertools.product(values, repeat=k)
        exact = np.mean([max(d) for d in draws])
        assert expected_max(values, np.array([float(k)]))[0] == pytest.approx(exact)


def test_expected_best_starts_at_the_mean_and_rises_to_the_best():
    study = _study("a", tuning=[_trial("tune", i, v) for i, v in enumerate([0.2, 0.6, 0.4, 0.8])])
    curve = expected_best(study, "max", floor=None)
    assert list(curve.ks) == [1, 2, 3, 4]
    assert curve.mean[0] == pytest.approx(0.5)
    assert np.all(np.diff(curve.mean) > 0) and curve.mean[-1] < 0.8
    assert np.all(curve.low <= curve.mean + 1e-12) and np.all(curve.mean <= curve.high + 1e-12)
    low = expected_best(study, "min", floor=None)  # lower is better: the curve falls towards 0.2
    assert low.mean[0] == pytest.approx(0.5) and np.all(np.diff(low.mean) < 0)
    assert np.all(low.low <= low.mean + 1e-12) and np.all(low.mean <= low.high + 1e-12)


def test_diverged_trials_count_as_the_floor():
    tuning = [_trial("tune", 0, 0.9), _trial("tune", 1, None, status="diverged")]
    workload = _workload("w", "max", [_study("a", tuning), _study("b", [_trial("tune", 0, 0.3)])])
    assert floor_value(workload) == 0.3
    curve = expected_best(workload.studies[0], "max", floor=0.3)
    assert curve.mean[0] == pytest.approx((0.9 + 0.3) / 2)


def test_performance_profile_ratios_rho_and_score():
    w1 = _workload(
        "w1",
        "max",
        [_study("a", reruns=[_trial("rerun", 1, 0.9, 10)]), _study("b", reruns=[_trial("rerun", 1, 0.9, 20)])],
    )
    w2 = _workload(
        "w2",
        "max",
        [
            _study("a", reruns=[_trial("rerun", 1, 0.9, 40)]),
            _study("b", reruns=[_trial("rerun", 1, 0.9, 10)]),
            _study("c", reruns=[_trial("rerun", 1, 0.1, None)]),
        ],
    )
    profile = performance_profile([w1, w2])
    assert profile.ratios == {"a": [1.0, 4.0], "b": [2.0, 1.0], "c": [math.inf, math.inf]}
    assert list(profile.rho("a", np.array([1.0, 3.9, 4.0]))) == [0.5, 0.5, 1.0]
    assert list(profile.rho("b", np.array([1.0, 2.0]))) == [0.5, 1.0]
    assert profile.score("a") == pytest.approx((3 + 0) / 2 / 3)
    assert profile.score("b") == pytest.approx((2 + 3) / 2 / 3)
    assert profile.score("c") == 0.0


def test_median_cost_is_infinite_when_most_seeds_miss_the_target():
    assert median_cost([_trial("rerun", 1, 0, 10), _trial("rerun", 2, 0, 30), _trial("rerun", 3, 0, None)]) == 30
    assert (
        median_cost([_trial("rerun", 1, 0, 10), _trial("rerun", 2, 0, None), _trial("rerun", 3, 0, None)]) == math.inf
    )
    assert median_cost([_trial("rerun", 1, 0, 10)], "seconds") == pytest.approx(0.1)


@pytest.mark.parametrize("mode, order", [("max", ["b", "a", "c", "d"]), ("min", ["a", "b", "c", "d"])])
def test_leaderboard_ranks_by_the_target_direction_and_puts_divergence_last(mode, order):
    studies = [
        _study("a", reruns=[_trial("rerun", 1, 0.2), _trial("rerun", 2, 0.4)]),
        _study("b", reruns=[_trial("rerun", 1, 0.7), _trial("rerun", 2, 0.5)]),
        _study(
            "c",
            reruns=[_trial("rerun", 1, 0.1 if mode == "min" else 0.99), _trial("rerun", 2, None, status="diverged")],
        ),
        _study("d", tuning=[_trial("tune", 0, None, status="diverged")]),
    ]
    rows = leaderboard(_workload("w", mode, studies))
    assert [r.optimizer for r in rows] == order
    a = next(r for r in rows if r.optimizer == "a")
    assert a.final_mean == pytest.approx(0.3) and a.final_std == pytest.approx(math.sqrt(0.02))
    assert rows[-1].final_mean is None and rows[-1].tuning_diverged == 1


def test_lr_sensitivity_sorts_by_learning_rate_and_separates_divergence():
    study = _study(
        "a",
        tuning=[
            _trial("tune", 0, 0.5, lr=0.1),
            _trial("tune", 1, 0.7, lr=0.001),
            _trial("tune", 2, None, lr=1.0, status="diverged"),
        ],
    )
    curve = lr_sensitivity(study)
    assert list(curve.lr) == [0.001, 0.1] and list(curve.value) == [0.7, 0.5]
    assert list(curve.diverged_lr) == [1.0]
