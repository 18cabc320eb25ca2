"""The result store: schema version, WAL, idempotent and atomic trial writes, clear errors."""

from __future__ import annotations

import sqlite3

import pytest

from optarena.arena.store import SCHEMA_VERSION, Store, StoreError


def _trial_row(key="k1", **overrides):
    row = {
        "key": key,
        "workload_key": "w",
        "optimizer": "adam",
        "hyperparameters": '{"lr":0.01}',
        "seed": 0,
        "optarena_version": "0",
        "status": "finished",
        "steps_done": 3,
        "diverged_step": None,
        "final_metric": 0.5,
        "best_metric": 0.4,
        "best_step": 2,
        "final_train_loss": 0.6,
        "steps_to_target": None,
        "seconds_to_target": None,
        "train_seconds": 0.1,
        "eval_seconds": 0.01,
        "threads": 1,
        "host": "here",
        "finished_at": "now",
    }
    row.update(overrides)
    return row


def _store_with_study(path):
    store = Store(path)
    store.add_workload(
        {
            "key": "w",
            "name": "toy",
            "spec": "toy:w",
            "description": "",
            "config": "{}",
            "target_metric": "test_loss",
            "target_value": 0.1,
            "target_mode": "min",
            "steps": 3,
            "eval_every": 1,
        }
    )
    store.add_study(
        {
            "id": "s",
            "workload_key": "w",
            "optimizer": "adam",
            "search": "quasi-random",
            "tune": '["lr"]',
            "trials": 1,
            "seeds": 1,
            "search_seed": 0,
            "optarena_version": "0",
            "created_at": "now",
        }
    )
    return store


def test_a_new_store_carries_its_schema_version_and_uses_wal(tmp_path):
    path = tmp_path / "runs.sqlite"
    Store(path).close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_writing_a_trial_twice_changes_nothing(tmp_path):
    store = _store_with_study(tmp_path / "runs.sqlite")
    metrics = [("train_loss", 0, 1.0), ("train_loss", 1, 0.8), ("test_loss", 2, 0.5)]
    assert store.save_trial(_trial_row(), metrics, [("s", "tune", 0)]) is True
    assert store.save_trial(_trial_row(final_metric=9.0), [("train_loss", 0, 5.0)], [("s", "tune", 0)]) is False
    assert store.count("trials") == 1 and store.count("metrics") == 3 and store.count("study_trials") == 1
    assert store.find("k1").final_metric == 0.5  # the first writer's result stands
    assert store.find("missing") is None


def test_a_trial_that_fails_halfway_leaves_nothing_behind(tmp_path):
    store = _store_with_study(tmp_path / "runs.sqlite")
    duplicated = [("train_loss", 0, 1.0), ("train_loss", 0, 2.0)]  # violates the metrics primary key
    with pytest.raises(sqlite3.IntegrityError):
        store.save_trial(_trial_row(), duplicated, [("s", "tune", 0)])
    assert store.count("trials") == 0 and store.count("metrics") == 0 and store.count("study_trials") == 0
    assert store.save_trial(_trial_row(), duplicated[:1], [("s", "tune", 0)])  # and the store still works


def test_nan_is_stored_as_null_and_infinity_as_infinity(tmp_path):
    store = _store_with_study(tmp_path / "runs.sqlite")
    store.save_trial(_trial_row(final_train_loss=float("nan")), [("test_loss", 1, float("inf"))])
    assert store.rows("SELECT final_train_loss FROM trials")[0]["final_train_loss"] is None
    assert store.rows("SELECT value FROM metrics")[0]["value"] == float("inf")


def test_a_schema_version_mismatch_is_a_clear_error(tmp_path):
    path = tmp_path / "runs.sqlite"
    Store(path).close()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(StoreError, match=f"schema version 99.*reads version {SCHEMA_VERSION}"):
        Store(path)
    with pytest.raises(StoreError, match="schema version 99"):
        Store(path, readonly=True)


def test_files_that_are_not_stores_are_refused_untouched(tmp_path):
    other = tmp_path / "other.sqlite"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="another application"):
        Store(other)
    assert [r[0] for r in sqlite3.connect(other).execute("SELECT name FROM sqlite_master")] == ["notes"]

    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some text that is long enough to have a header\n" * 20)
    before = text.read_bytes()
    with pytest.raises(StoreError, match="not an optarena result store"):
        Store(text)
    assert text.read_bytes() == before

    with pytest.raises(StoreError, match="no result store"):
        Store(tmp_path / "missing.sqlite", readonly=True)
    with pytest.raises(StoreError, match="directory"):
        Store(tmp_path)
