"""The same race on a local Ray instance stores the same rows as in this process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from arena_helpers import contents, race

pytest.importorskip("ray")

TESTS = Path(__file__).resolve().parent


def test_a_race_on_a_local_ray_instance_matches_an_inline_race(tmp_path):
    on_ray = tmp_path / "ray.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    command = [sys.executable, "-m", "optarena", "race", "--workload", "toy_workloads:classifier",
               "--optimizers", "sgd,adam", "--trials", "2", "--seeds", "1", "--db", str(on_ray),
               "--executor", "ray", "--address", "local", "--workers", "2", "--threads", "1"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 ray workers x 1 thread" in " ".join(done.stdout.split())
    assert "6 trials run, 0 reused" in " ".join(done.stdout.split())

    inline = tmp_path / "inline.sqlite"
    race(inline, workloads=("toy_workloads:classifier",), optimizers=("sgd", "adam"), trials=2, seeds=1)
    assert contents(on_ray) == contents(inline)
