"""A race killed with SIGKILL mid-race resumes to exactly the rows of an uninterrupted race."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from arena_helpers import contents, race

TESTS = Path(__file__).resolve().parent
RACE = ["--workload", "toy_workloads:slow_regression", "--optimizers", "sgd,adam", "--trials", "4", "--seeds", "2"]
TOTAL = 2 * (4 + 2)


def _command(db: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "optarena",
        "race",
        *RACE,
        "--db",
        str(db),
        "--executor",
        "local",
        "--workers",
        "2",
        "--threads",
        "1",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def _stored(db: Path) -> int:
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error:  # not created yet
        return 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigkill_mid_race_then_resume_equals_an_uninterrupted_race(tmp_path):
    killed = tmp_path / "killed.sqlite"
    process = subprocess.Popen(
        _command(killed), env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while _stored(killed) < 3:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the race stored nothing in two minutes"
        time.sleep(0.02)
    workers = _children(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    stored = _stored(killed)
    assert 3 <= stored < TOTAL, "kill the race while it runs"

    # The pool's workers notice that their parent is gone and stop.
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)

    resumed = subprocess.run(_command(killed), env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{TOTAL - stored} trials run, {stored} reused" in " ".join(resumed.stdout.split())

    # An uninterrupted race of the same plan (in this process, one thread) stores exactly the same rows.
    whole = tmp_path / "whole.sqlite"
    race(whole, workloads=("toy_workloads:slow_regression",), optimizers=("sgd", "adam"), trials=4, seeds=2)
    assert contents(killed) == contents(whole)
