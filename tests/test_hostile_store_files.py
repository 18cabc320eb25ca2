"""Result stores that are damaged, edited, read-only or not stores at all: one line, exit 2, the file untouched."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optarena.arena.results import load_curves, load_results
from optarena.arena.scoring import leaderboard
from optarena.arena.store import Store, StoreError
from optarena.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "store_0_1_0.sqlite"
RACE = [
    "race",
    "--workload",
    "rosenbrock",
    "--optimizers",
    "sgd",
    "--trials",
    "1",
    "--seeds",
    "1",
    "--quick",
    "--executor",
    "inline",
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "runs.sqlite"
    shutil.copy(FIXTURE, path)
    return path


def _both_commands_refuse(path: Path, tmp_path: Path, capsys, message: str) -> None:
    """``report`` and ``race`` on ``path`` exit 2 with one line holding ``message``; the file is untouched."""
    before = _digest(path)
    out = tmp_path / "report.html"
    for argv in (["report", "--db", str(path), "--out", str(out)], [*RACE, "--db", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert _digest(path) == before
    assert not out.exists()


def _overwrite(path: Path, start: int, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(start)
        handle.write(data)


def test_garbage_in_the_middle_pages(store, tmp_path, capsys):
    page = sqlite3.connect(store).execute("PRAGMA page_size").fetchone()[0]
    size = store.stat().st_size
    _overwrite(store, page, os.urandom(size - page))  # every page but the schema's
    _both_commands_refuse(store, tmp_path, capsys, "is damaged")


def test_a_dropped_table(store, tmp_path, capsys):
    connection = sqlite3.connect(store)
    connection.execute("DROP TABLE metrics")
    connection.commit()
    connection.close()
    _both_commands_refuse(store, tmp_path, capsys, "lacks the table(s) metrics")


def test_a_dropped_column(store, tmp_path, capsys):
    connection = sqlite3.connect(store)
    connection.execute("ALTER TABLE trials DROP COLUMN host")
    connection.commit()
    connection.close()
    _both_commands_refuse(store, tmp_path, capsys, "lacks the column(s) host")


def test_a_value_of_the_wrong_kind(store, tmp_path, capsys):
    connection = sqlite3.connect(store)
    connection.execute("UPDATE trials SET hyperparameters = 'not json' WHERE rowid = 1")
    connection.commit()
    connection.close()
    before = _digest(store)
    assert main(["report", "--db", str(store), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "has hyperparameters 'not json', expected JSON text of a dict" in err and "Traceback" not in err
    assert _digest(store) == before


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is a text file\n" * 100, "is not an optarena result store"),
        (b"SQLite format 3\x00" + bytes(84), "is not an optarena result store"),  # a header and nothing else
    ],
)
def test_a_file_that_is_not_a_store(tmp_path, capsys, content, message):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(content)
    _both_commands_refuse(path, tmp_path, capsys, message)


def test_a_store_cut_in_half(store, tmp_path, capsys):
    with open(store, "r+b") as handle:
        handle.truncate(store.stat().st_size // 2)
    _both_commands_refuse(store, tmp_path, capsys, "is damaged")


def test_a_missing_folder_and_a_folder_given_as_the_store(tmp_path, capsys):
    assert main([*RACE, "--db", str(tmp_path / "missing" / "runs.sqlite")]) == 2
    assert "the folder" in capsys.readouterr().err and not (tmp_path / "missing").exists()
    assert main([*RACE, "--db", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flips=st.lists(st.tuples(st.integers(0, FIXTURE.stat().st_size - 1), st.integers(1, 255)), min_size=1, max_size=8)
)
def test_flipped_bytes_give_a_report_or_a_store_error(tmp_path, flips):
    path = tmp_path / "flipped.sqlite"
    data = bytearray(FIXTURE.read_bytes())
    for offset, mask in flips:
        data[offset] ^= mask
    path.write_bytes(bytes(data))
    try:
        with Store(path, readonly=True) as opened:
            for workload in load_results(opened):  # everything a report reads but its figures
                for row in leaderboard(workload):
                    load_curves(opened, [t.key for t in row.study.reruns], workload.target.metric)
    except StoreError as error:
        assert str(path) in str(error)
    assert path.read_bytes() == bytes(data)


# -- read-only stores and folders: permissions, which root ignores unless it drops its capabilities --


def _unprivileged() -> list[str] | None:
    """A command prefix under which file permissions apply (None when there is none)."""
    if not hasattr(os, "geteuid"):
        return None
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all"] if setpriv else None


RUN_ALL = """
import contextlib, io, json, sys
from optarena.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(argv)
    results.append([status, err.getvalue()])
print(json.dumps(results))
"""


def _run_all(prefix: list[str], commands: list[list[str]], cwd: Path) -> list[tuple[int, str]]:
    """Each ``optarena`` command line run in one new process under ``prefix``: (exit status, stderr)."""
    import json

    done = subprocess.run(
        [*prefix, sys.executable, "-c", RUN_ALL, json.dumps(commands)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return [tuple(result) for result in json.loads(done.stdout)]


@pytest.fixture
def unprivileged(tmp_path):
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: file permissions cannot be made to apply")
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0o444)
    check = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r}, 'a')"], capture_output=True)
    if check.returncode == 0:
        pytest.skip("file permissions do not apply here")
    return prefix


def test_a_read_only_store_and_a_store_in_a_read_only_folder(store, tmp_path, unprivileged):
    folder = tmp_path / "locked"
    folder.mkdir()
    locked = folder / "runs.sqlite"
    shutil.copy(store, locked)
    store.chmod(0o444)
    folder.chmod(0o555)
    try:
        before = {path: _digest(path) for path in (store, locked)}
        results = _run_all(
            unprivileged,
            [
                [*RACE, "--db", str(store)],
                [*RACE, "--db", str(locked)],
                ["report", "--db", str(locked), "--out", str(tmp_path / "r.html")],
                [*RACE, "--db", str(folder / "new.sqlite")],
            ],
            tmp_path,
        )
        for status, err in results[:2]:
            assert status == 2 and "cannot write the result store" in err and "read-only" in err, err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert results[2][0] == 0, results[2][1]  # a store in a read-only folder can still be reported
        assert results[3][0] == 2 and "Traceback" not in results[3][1], results[3][1]
        assert not (folder / "new.sqlite").exists()
        assert {path: _digest(path) for path in (store, locked)} == before
    finally:
        folder.chmod(0o755)
