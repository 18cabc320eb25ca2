"""The AlgoPerf protocol: stored targets, studies of trials, time to target, profiles and the benchmark score."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from arena_helpers import contents

from optarena.arena.algoperf import AlgoPerfConfig, MissingTarget, make_algoperf_plan
from optarena.arena.algoperf_scoring import AlgoPerfWorkloadResult, load_algoperf, rank_correlation, score_table
from optarena.arena.executors import InlineExecutor
from optarena.arena.race import run_race
from optarena.arena.store import Store
from optarena.arena.targets import BASELINES, all_targets, baseline_value, set_targets, stored_target
from optarena.arena.workload import Target
from optarena.arena.workloads import get_workload
from optarena.cli import main

TOY = "toy_workloads:classifier"


@pytest.fixture(scope="module")
def targeted_store(tmp_path_factory):
    """A store whose toy classifier has its target set by the baselines (2 trials, 1 rerun each)."""
    db = tmp_path_factory.mktemp("algoperf") / "runs.sqlite"
    with Store(db) as store:
        targets = set_targets(store, InlineExecutor(threads=1), [TOY], trials=2, seeds=1)
    return db, targets[0]


def test_targets_are_the_best_baseline_median_and_are_stored_with_the_workload_version(targeted_store):
    db, target = targeted_store
    assert set(target.baselines) == set(BASELINES) and target.metric == "test_accuracy"
    assert target.value == max(v for v in target.baselines.values() if v is not None)
    assert target.baselines[target.baseline] == target.value and target.version == "0"
    with Store(db, readonly=True) as store:
        assert stored_target(store, get_workload(TOY), {}) == target
        assert stored_target(store, get_workload(TOY, steps=31), {"steps": 31}) is None  # another budget
        assert all_targets(store) == [target]


def test_a_baseline_value_is_the_median_of_its_reruns_with_divergence_counted_worst():
    assert baseline_value([0.5, 0.9, 0.7], "max") == 0.7
    assert baseline_value([0.5, None, 0.7], "max") == 0.5
    assert baseline_value([0.2, None, None], "min") is None
    assert baseline_value([0.3, 0.1], "min") == 0.3  # an even count takes the conservative middle


def test_an_algoperf_race_runs_studies_of_trials_on_their_own_seeds_against_the_stored_target(targeted_store, tmp_path):
    db = tmp_path / "runs.sqlite"
    shutil.copy(targeted_store[0], db)
    config = AlgoPerfConfig((TOY,), ("sgd", "adam"), studies=2, trials=3, seed=5)
    with Store(db) as store:
        plan = make_algoperf_plan(config, store)
        assert plan.total == 2 * 2 * 3
        (planned,) = plan.workloads
        assert planned.workload.target.value == targeted_store[1].value
        outcome = run_race(plan, store, InlineExecutor(threads=1))
        assert outcome.ran == 12
        again = run_race(make_algoperf_plan(config, store), store, InlineExecutor(threads=1))
        assert again.ran == 0 and again.reused == 12
        rows = store.rows(
            "SELECT s.optimizer, s.search, s.search_seed, t.seed FROM studies s JOIN study_trials st "
            "ON st.study = s.id JOIN trials t ON t.key = st.trial WHERE s.search LIKE 'algoperf%'"
        )
        assert {(r["search_seed"], r["seed"]) for r in rows} == {(5, 5), (6, 6)}
        (result,) = load_algoperf(store)
    assert set(result.times) == {"sgd", "adam"} and all(len(v["steps"]) == 2 for v in result.times.values())


def test_self_tuning_runs_the_defaults_once_per_study_on_one_and_a_half_times_the_budget(targeted_store):
    config = AlgoPerfConfig((TOY,), ("adam",), ruleset="self", studies=3)
    with Store(targeted_store[0], readonly=True) as store:
        plan = make_algoperf_plan(config, store)
    (planned,) = plan.workloads
    assert planned.workload.steps == 45  # the toy classifier runs 30 steps
    assert [s.next_trials()[0].spec.hyperparameters for s in plan.studies] == [{}, {}, {}]
    with Store(targeted_store[0], readonly=True) as store, pytest.raises(ValueError, match="lars has none for lr"):
        make_algoperf_plan(AlgoPerfConfig((TOY,), ("lars",), ruleset="self"), store)


def test_a_workload_without_a_stored_target_is_an_error_that_says_how_to_set_it(tmp_path):
    with Store(tmp_path / "empty.sqlite") as store, pytest.raises(MissingTarget, match="run `optarena targets"):
        make_algoperf_plan(AlgoPerfConfig((TOY,), ("adam",)), store)


def _result(key, times, held_out_of=None):
    result = AlgoPerfWorkloadResult(key, key, key, Target("acc", 0.9, "max"), 100, held_out_of)
    result.times = {o: {"steps": list(map(float, t)), "seconds": list(map(float, t))} for o, t in times.items()}
    return result


def test_the_score_integrates_the_profile_and_a_miss_counts_as_infinite():
    inf = math.inf
    results = [
        _result("w1", {"a": [10, 10, 10], "b": [20, 20, 20], "c": [inf, inf, 10]}),
        _result("w2", {"a": [50, 50, 50], "b": [25, 25, 25], "c": [inf, inf, inf]}),
    ]
    table = score_table(results, "steps", resamples=50)
    scores = table.scores()
    # a: ratios 1 and 2 -> (3 + 2) / 6; b: 2 and 1 -> the same; c: never within 4x on either.
    assert scores["a"] == pytest.approx(5 / 6) and scores["b"] == pytest.approx(5 / 6) and scores["c"] == 0.0
    row_c = next(r for r in table.rows if r.optimizer == "c")
    assert math.isinf(row_c.times["w1"].value) and row_c.reached["w1"] == "1/3"
    for row in table.rows:
        assert row.score.low <= row.score.value <= row.score.high
    taus, low, high = table.rho_band["a"]
    assert np.all(low <= high) and taus[0] == 1.0


def test_missing_a_held_out_variant_s_target_makes_the_base_workload_infinite():
    inf = math.inf
    base = _result("w1", {"a": [10, 10], "b": [20, 20]})
    variant = _result("w1-held-out", {"a": [inf, inf], "b": [30, 30]}, held_out_of="w1")
    scores = score_table([base, variant], "steps", resamples=20).scores()
    assert scores == {"b": 1.0, "a": 0.0}


def test_rank_correlation_of_two_score_tables():
    rho, tau = rank_correlation({"a": 0.9, "b": 0.5, "c": 0.1}, {"a": 0.8, "b": 0.6, "c": 0.0, "d": 1.0})
    assert rho == pytest.approx(1.0) and tau == pytest.approx(1.0)
    rho, _ = rank_correlation({"a": 0.9, "b": 0.5, "c": 0.1}, {"a": 0.1, "b": 0.5, "c": 0.9})
    assert rho == pytest.approx(-1.0)


def test_the_command_prints_a_budget_estimate_and_with_budget_runs_nothing(targeted_store, tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    shutil.copy(targeted_store[0], db)
    before = contents(db)
    status = main(
        [
            "race",
            "--protocol",
            "algoperf",
            "--workload",
            TOY,
            "--optimizers",
            "sgd,adam",
            "--studies",
            "2",
            "--trials",
            "2",
            "--db",
            str(db),
            "--executor",
            "inline",
            "--budget",
        ]
    )
    out = " ".join(capsys.readouterr().out.split())
    assert status == 0 and "Budget: 8 trials, 240 training steps in all" in out
    assert contents(db) == before
    status = main(
        [
            "race",
            "--protocol",
            "algoperf",
            "--workload",
            TOY,
            "--optimizers",
            "sgd,adam",
            "--studies",
            "1",
            "--trials",
            "1",
            "--db",
            str(db),
            "--executor",
            "inline",
        ]
    )
    out = " ".join(capsys.readouterr().out.split())
    assert status == 0 and "AlgoPerf benchmark score by steps" in out and "by seconds" in out
    report = tmp_path / "report.html"
    assert main(["report", "--db", str(db), "--out", str(report)]) == 0
    html = report.read_text()
    assert "AlgoPerf benchmark score (external tuning)" in html
    assert "data-measure='steps'" in html and "data-measure='seconds'" in html and html.count("<svg") >= 3


def test_protocol_options_are_refused_where_they_do_not_apply(tmp_path, capsys):
    db = str(tmp_path / "runs.sqlite")
    assert main(["race", "--workload", TOY, "--studies", "2", "--db", db]) == 2
    assert "--studies is for --protocol algoperf" in capsys.readouterr().err
    assert main(["race", "--protocol", "algoperf", "--workload", TOY, "--seeds", "2", "--db", db]) == 2
    assert "--seeds is for the tune-rerun protocol" in capsys.readouterr().err
    assert main(["race", "--protocol", "algoperf", "--workload", TOY, "--db", db, "--executor", "inline"]) == 2
    assert "no stored target" in capsys.readouterr().err


def test_a_held_out_variant_is_drawn_given_its_own_target_and_raced_beside_its_base(tmp_path):
    pytest.importorskip("mnist1d")
    db = tmp_path / "runs.sqlite"
    with Store(db) as store:
        set_targets(
            store,
            InlineExecutor(threads=1),
            ["mnist1d-mlp"],
            options={"quick": True, "steps": 40},
            trials=1,
            seeds=1,
            baselines=("adamw", "momentum"),
        )
    config = AlgoPerfConfig(
        ("mnist1d-mlp",),
        ("sgd",),
        studies=1,
        trials=1,
        held_out=True,
        held_out_seed=3,
        options={"quick": True, "steps": 40},
    )
    from optarena.arena.algoperf import missing_variant_targets

    with Store(db) as store:
        ((spec, variant),) = missing_variant_targets(config, store)
        assert variant["data_seed"] != 42 and len(variant) == 4  # quick, steps, data seed, one architecture option
        set_targets(
            store,
            InlineExecutor(threads=1),
            [spec],
            options=variant,
            trials=1,
            seeds=1,
            baselines=("adamw", "momentum"),
        )
        plan = make_algoperf_plan(config, store)
        assert [p.base is not None for p in plan.workloads] == [False, True]
        run_race(plan, store, InlineExecutor(threads=1))
        results = load_algoperf(store)
    assert [r.held_out_of is not None for r in results] == [False, True]
    assert results[1].label.startswith("held-out mnist1d-mlp")
