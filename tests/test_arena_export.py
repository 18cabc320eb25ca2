"""Results out: the store as pandas DataFrames, and CSV or Parquet files of every table."""

from __future__ import annotations

import json

import pytest
from arena_helpers import race

import optarena.arena
from optarena.cli import main

pandas = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "runs.sqlite"
    race(path, optimizers=("sgd", "adam"), trials=2, seeds=1)
    return path


def test_load_returns_every_trial_and_every_per_step_value_as_dataframes(db):
    runs = optarena.arena.load(db)
    assert len(runs.trials) == 2 * (2 + 1) and set(runs.trials.optimizer) == {"sgd", "adam"}
    assert set(runs.trials.workload) == {"toy-regression"}
    assert {"final_metric", "steps_to_target", "seed", "train_seconds"} <= set(runs.trials.columns)
    assert json.loads(runs.trials.hyperparameters.iloc[0])["lr"] > 0
    losses = runs.metrics[runs.metrics.name == "train_loss"]
    assert len(losses) == 6 * 30 and losses.groupby("trial").step.max().eq(29).all()
    assert len(runs.studies) == 2 and len(runs.study_trials) == 6 and runs.targets.empty


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_one_file_per_table_that_reads_back_the_same(db, tmp_path, fmt, capsys):
    out = tmp_path / "out"
    assert main(["export", "--db", str(db), "--format", fmt, "--out", str(out)]) == 0
    assert "Wrote 6 files" in capsys.readouterr().out
    read = pandas.read_csv if fmt == "csv" else pandas.read_parquet
    runs = optarena.arena.load(db)
    trials = read(out / f"trials.{fmt}")
    assert list(trials.columns) == list(runs.trials.columns) and len(trials) == len(runs.trials)
    assert read(out / f"metrics.{fmt}").value.sum() == pytest.approx(runs.metrics.value.sum())


def test_export_errors_name_the_problem(tmp_path, capsys):
    assert main(["export", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert "no result store" in capsys.readouterr().err
    plain = tmp_path / "file.txt"
    plain.write_text("x")
    assert main(["export", "--db", str(plain)]) == 2
    assert "not an optarena result store" in capsys.readouterr().err
