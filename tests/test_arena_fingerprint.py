"""Trial keys name the workload's definition and data: another race with other data reuses nothing."""

from __future__ import annotations

import shutil
import sqlite3
import textwrap
from pathlib import Path

import pytest
from arena_helpers import contents, race
from data_files import write_mnist

from optarena.arena.fingerprint import definition_digest, folder_digest, workload_fingerprint
from optarena.arena.race import RaceConfig, make_plan
from optarena.arena.report import write_report
from optarena.arena.results import load_results
from optarena.arena.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "store_0_1_0.sqlite"
"""A store written before fingerprints: rosenbrock (steps=20, eval_every=10) and
toy_workloads:regression (steps=10), each with sgd and adam, 2 trials and 1 seed."""

MNIST = {"steps": 2, "eval_every": 2, "batch_size": 8}


def test_a_second_data_folder_gets_its_own_trials_and_the_first_is_reused(tmp_path):
    first, second, copy = tmp_path / "a", tmp_path / "b", tmp_path / "copy-of-a"
    write_mnist(first, seed=0)
    write_mnist(second, seed=1)
    shutil.copytree(first, copy)
    db = tmp_path / "runs.sqlite"
    settings = {"workloads": ("mnist-mlp",), "optimizers": ("sgd",), "trials": 1, "seeds": 1, "options": MNIST}

    ran = race(db, data_dir=str(first), **settings)
    assert (ran.ran, ran.reused) == (2, 0)
    other = race(db, data_dir=str(second), **settings)
    assert (other.ran, other.reused) == (2, 0)  # not the first folder's trials
    again = race(db, data_dir=str(copy), **settings)
    assert (again.ran, again.reused) == (0, 2)  # the same files elsewhere are the same data

    with Store(db, readonly=True) as store:
        labels = sorted(w.label for w in load_results(store))
    assert len(labels) == 2 and all(label.startswith("mnist-mlp (") and "data " in label for label in labels)


def _module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body), encoding="utf-8")


SHADOW = """
    import sys
    sys.path.insert(0, {tests!r})
    from toy_workloads import ToyWorkload
    from optarena.arena.workload import Target

    def digits(quick=False, steps=None, eval_every=None, batch_size=None):
        workload = ToyWorkload("digits-mlp", Target("test_accuracy", 0.95, "max"), steps=steps, eval_every=eval_every,
                               classes={classes})
        workload.batch_size = 64  # the built-in's: name, budget, target and options all agree
        return workload
"""


def test_a_custom_workload_with_a_built_in_name_does_not_reuse_the_built_ins_trials(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    tests = str(Path(__file__).parent)
    _module(tmp_path, "shadow_one", SHADOW.format(tests=tests, classes=3))
    _module(tmp_path, "shadow_two", SHADOW.format(tests=tests, classes=4))
    options = {"steps": 4, "eval_every": 2}
    builtin = make_plan(RaceConfig(("digits-mlp",), ("sgd",), options=options)).workloads[0]
    one = make_plan(RaceConfig(("shadow_one:digits",), ("sgd",), options=options)).workloads[0]
    two = make_plan(RaceConfig(("shadow_two:digits",), ("sgd",), options=options)).workloads[0]
    assert builtin.workload.name == one.workload.name == two.workload.name == "digits-mlp"
    shared = ("name", "steps", "eval_every", "target", "options", "batch_size")
    assert {k: builtin.config[k] for k in shared} == {k: one.config[k] for k in shared}
    assert len({builtin.key, one.key, two.key}) == 3
    assert one.config["spec"] == "shadow_one:digits" and "definition" in one.config and "spec" not in builtin.config

    db = tmp_path / "runs.sqlite"
    assert race(db, ("digits-mlp",), ("sgd",), trials=1, seeds=1, options=options).ran == 2
    outcome = race(db, ("shadow_one:digits",), ("sgd",), trials=1, seeds=1, options=options)
    assert (outcome.ran, outcome.reused) == (2, 0)


def test_the_definition_digest_follows_the_source_and_a_folder_digest_its_files(tmp_path):
    class Workload:
        pass

    one = definition_digest(Workload(), "json:dumps")
    assert one == definition_digest(Workload(), "json:dumps") and one != definition_digest(Workload(), "json:loads")
    (tmp_path / "a.bin").write_bytes(b"1")
    before = folder_digest(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"12")
    assert folder_digest(tmp_path) != before


def test_a_workloads_own_fingerprint_is_used_and_must_be_a_string(tmp_path):
    class Workload:
        fingerprint = "v2 of my data"

    assert workload_fingerprint(Workload(), "mine:make", tmp_path)["data"] == "v2 of my data"
    assert "data" not in workload_fingerprint(object(), "digits-mlp", None)
    assert workload_fingerprint(object(), "mine:make", tmp_path)["data"] == folder_digest(tmp_path)
    Workload.fingerprint = 3
    with pytest.raises(ValueError, match="fingerprint must be a non-empty string"):
        workload_fingerprint(Workload(), "mine:make", None)


def test_a_store_written_before_fingerprints_is_read_and_its_built_in_trials_reused(tmp_path):
    db = tmp_path / "old.sqlite"
    shutil.copy(FIXTURE, db)
    before = contents(db)
    assert write_report(db, tmp_path / "old.html").stat().st_size > 0
    assert contents(db) == before  # reading writes nothing

    outcome = race(db, ("rosenbrock",), ("sgd", "adam"), trials=2, seeds=1, options={"steps": 20, "eval_every": 10})
    assert (outcome.ran, outcome.reused) == (0, 5)  # a built-in without data keeps its key
    outcome = race(db, ("toy_workloads:regression",), ("sgd", "adam"), trials=2, seeds=1, options={"steps": 10})
    assert (outcome.ran, outcome.reused) == (6, 0)  # a custom workload's key now names its code

    after = contents(db)
    for table, rows in before.items():
        assert set(rows) <= set(after[table])  # every old row is still there, unchanged
    connection = sqlite3.connect(db)
    configs = [row[0] for row in connection.execute("SELECT config FROM workloads WHERE spec LIKE 'toy%'")]
    connection.close()
    assert len(configs) == 2 and sum('"definition"' in c for c in configs) == 1
    with Store(db, readonly=True) as store:
        assert sorted(w.label for w in load_results(store)) == [
            "rosenbrock (eval_every=10, steps=20)",
            "toy-regression (steps=10)",
            "toy-regression (steps=10)",
        ]
