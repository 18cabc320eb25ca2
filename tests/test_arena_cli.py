"""``optarena race`` and ``optarena report`` from the command line."""

from __future__ import annotations

import sqlite3

import pytest

from optarena.cli import main

TOY = "toy_workloads:classifier"


def _race(db, *extra):
    return main(
        [
            "race",
            "--workload",
            TOY,
            "--optimizers",
            "sgd,adam",
            "--trials",
            "2",
            "--seeds",
            "1",
            "--db",
            str(db),
            "--executor",
            "inline",
            *extra,
        ]
    )


def test_race_prints_a_leaderboard_and_a_rerun_runs_nothing(tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    assert _race(db) == 0
    out = capsys.readouterr().out
    assert "toy-classifier: final test_accuracy (target >= 0.8)" in out
    assert "sgd" in out and "adam" in out and "lr=" in out
    assert "6 trials run, 0 reused" in out
    assert _race(db) == 0
    assert "0 trials run, 6 reused" in capsys.readouterr().out


def test_report_writes_html_from_the_store(tmp_path, capsys):
    db, out = tmp_path / "runs.sqlite", tmp_path / "out" / "report.html"
    assert _race(db) == 0
    capsys.readouterr()
    assert main(["report", "--db", str(db), "--out", str(out)]) == 0
    assert f"Wrote {out}" in capsys.readouterr().out
    assert "toy-classifier" in out.read_text(encoding="utf-8")


def test_quick_uses_the_short_budget_and_fewer_trials(tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    assert (
        main(["race", "--workload", TOY, "--optimizers", "adam", "--quick", "--db", str(db), "--executor", "inline"])
        == 0
    )
    connection = sqlite3.connect(db)
    assert connection.execute("SELECT steps FROM workloads").fetchone() == (12,)
    assert connection.execute("SELECT trials, seeds FROM studies").fetchone() == (4, 2)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["race", "--workload", TOY, "--optimizers", "adam,lamdba"], "Unknown optimizer 'lamdba'"),
        (["race", "--workload", "toy_workloads:nothing_here"], "nothing_here"),
        (["race", "--workload", TOY, "--trials", "0"], "from 1 to 100000, got 0"),
        (["race", "--workload", TOY, "--search", "grid"], "invalid choice: 'grid'"),
        (["race", "--workload", TOY, "--address", "auto"], "--address is for the ray executor"),
        (["race", "--workload", TOY, "--executor", "inline", "--workers", "3"], "--workers does not apply"),
        (["race"], "required: --workload"),
    ],
)
def test_usage_errors_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, argv, message):
    db = tmp_path / "runs.sqlite"
    assert main([*argv, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not db.exists()


def test_report_errors(tmp_path, capsys):
    assert main(["report", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert "no result store" in capsys.readouterr().err
    foreign = tmp_path / "foreign.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)")
    assert main(["report", "--db", str(foreign), "--out", str(tmp_path / "r.html")]) == 2
    assert "not an optarena result store" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_a_store_of_another_schema_version_is_refused(tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    assert _race(db) == 0
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA user_version = 7")
    connection.close()
    capsys.readouterr()
    assert _race(db) == 2
    assert "schema version 7" in capsys.readouterr().err


def test_a_failing_trial_stops_the_race_with_a_clear_error(tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    status = main(
        [
            "race",
            "--workload",
            "toy_workloads:missing_metric",
            "--optimizers",
            "sgd",
            "--trials",
            "2",
            "--seeds",
            "1",
            "--db",
            str(db),
            "--executor",
            "inline",
        ]
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "without its target metric 'test_loss'" in err and "Traceback" not in err
