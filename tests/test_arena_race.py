"""Races: same budget per optimizer, tuning then fresh-seed reruns of the winner, resume and reuse."""

from __future__ import annotations

import json

import pytest
from arena_helpers import contents, race

from optarena.arena.executors import InlineExecutor
from optarena.arena.race import TUNING_SEED, RaceConfig, make_plan, run_race
from optarena.arena.results import load_results
from optarena.arena.store import Store


def _studies(db):
    with Store(db, readonly=True) as store:
        return {s.optimizer: s for w in load_results(store) for s in w.studies}


@pytest.mark.parametrize("workload, mode", [("toy_workloads:regression", "min"), ("toy_workloads:classifier", "max")])
def test_every_optimizer_gets_the_same_budget_and_its_winner_is_rerun_on_fresh_seeds(tmp_path, workload, mode):
    db = tmp_path / "runs.sqlite"
    outcome = race(db, workloads=(workload,), optimizers=("sgd", "adam", "momentum"), trials=4, seeds=2)
    assert outcome.ran == 3 * (4 + 2) and outcome.reused == 0
    for name, study in _studies(db).items():
        assert [t.number for t in study.tuning] == [0, 1, 2, 3]
        assert {t.seed for t in study.tuning} == {TUNING_SEED}
        assert [t.seed for t in study.reruns] == [1, 2]
        finished = [t for t in study.tuning if not t.diverged]
        pick = max if mode == "max" else min
        winner = pick(finished, key=lambda t: t.final_metric)
        assert all(t.hyperparameters == winner.hyperparameters for t in study.reruns), name
        assert set(study.tune) == set(study.tuned(winner.hyperparameters))


def test_rerunning_a_finished_race_adds_nothing(tmp_path):
    db = tmp_path / "runs.sqlite"
    race(db)
    before = contents(db)
    outcome = race(db)
    assert outcome.ran == 0 and outcome.reused == 2 * (3 + 2)
    assert contents(db) == before


def test_a_larger_budget_reuses_the_trials_it_shares_with_a_smaller_one(tmp_path):
    db = tmp_path / "runs.sqlite"
    race(db, trials=3)
    outcome = race(db, trials=5)
    assert outcome.reused >= 2 * 3  # the first three quasi-random points are the same
    studies = _studies(db)
    assert all(len(s.tuning) == 5 for s in studies.values())  # the report shows the latest complete study


class _Stop(Exception):
    pass


@pytest.mark.parametrize("search", ["quasi-random", "tpe"])
def test_an_interrupted_race_resumes_to_exactly_the_uninterrupted_rows(tmp_path, search):
    config = RaceConfig(("toy_workloads:regression",), ("sgd", "adam"), trials=4, seeds=2, search=search)
    whole, broken = tmp_path / "whole.sqlite", tmp_path / "broken.sqlite"
    with Store(whole) as store:
        run_race(make_plan(config), store, InlineExecutor(threads=1))

    seen = []

    def stop_after_five(role, status, final, reused):
        seen.append(role)
        if len(seen) == 5:
            raise _Stop

    with Store(broken) as store, pytest.raises(_Stop):
        run_race(make_plan(config), store, InlineExecutor(threads=1), on_trial=stop_after_five)
    assert 0 < Store(broken).count("trials") < Store(whole).count("trials")
    with Store(broken) as store:
        outcome = run_race(make_plan(config), store, InlineExecutor(threads=1))
    assert outcome.reused == 5
    assert contents(broken) == contents(whole)


def test_tpe_races_are_deterministic(tmp_path):
    race(tmp_path / "a.sqlite", search="tpe", trials=4)
    race(tmp_path / "b.sqlite", search="tpe", trials=4)
    assert contents(tmp_path / "a.sqlite") == contents(tmp_path / "b.sqlite")
    studies = _studies(tmp_path / "a.sqlite")
    assert all(s.search == "tpe" and len(s.tuning) == 4 for s in studies.values())


def test_tuning_the_learning_rate_only(tmp_path):
    race(tmp_path / "runs.sqlite", optimizers=("adamw",), tune="lr")
    study = _studies(tmp_path / "runs.sqlite")["adamw"]
    assert study.tune == ["lr"]
    assert all(set(t.hyperparameters) == {"lr"} for t in study.tuning)


def test_when_every_tuning_trial_diverges_the_reruns_are_skipped(tmp_path):
    db = tmp_path / "runs.sqlite"
    outcome = race(db, workloads=("toy_workloads:exploding",), optimizers=("sgd",), trials=2, seeds=3)
    assert outcome.ran == 2 and outcome.diverged == 2 and outcome.skipped == 3
    study = _studies(db)["sgd"]
    assert study.complete and study.reruns == []
    assert all(t.diverged and t.final_metric is None for t in study.tuning)


def test_bad_names_and_settings_fail_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="Unknown optimizer 'lamdba'"):
        make_plan(RaceConfig(("toy_workloads:regression",), ("adam", "lamdba")))
    with pytest.raises(ValueError, match="listed twice"):
        make_plan(RaceConfig(("toy_workloads:regression",), ("adam", "Adam")))
    with pytest.raises(ValueError, match="trials must be"):
        make_plan(RaceConfig(("toy_workloads:regression",), ("adam",), trials=0))
    with pytest.raises(ValueError, match="unknown search 'grid'"):
        make_plan(RaceConfig(("toy_workloads:regression",), ("adam",), search="grid"))


def test_workload_options_are_part_of_its_identity(tmp_path):
    db = tmp_path / "runs.sqlite"
    race(db, optimizers=("sgd",), trials=1, seeds=1)
    race(db, optimizers=("sgd",), trials=1, seeds=1, options={"quick": True})
    with Store(db, readonly=True) as store:
        workloads = load_results(store)
    assert [w.label for w in workloads] == ["toy-regression", "toy-regression (quick)"]
    assert [w.steps for w in workloads] == [30, 10]
    assert json.loads(json.dumps(workloads[1].config))["options"] == {"quick": True}
