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
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    command = [
        sys.executable,
        "-m",
        "optarena",
        "race",
        "--workload",
        "toy_workloads:classifier",
        "--optimizers",
        "sgd,adam",
        "--trials",
        "2",
        "--seeds",
        "1",
        "--db",
        str(on_ray),
        "--executor",
        "ray",
        "--address",
        "local",
        "--workers",
        "2",
        "--threads",
        "1",
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 ray workers x 1 thread" in " ".join(done.stdout.split())
    assert "6 trials run, 0 reused" in " ".join(done.stdout.split())

    inline = tmp_path / "inline.sqlite"
    race(inline, workloads=("toy_workloads:classifier",), optimizers=("sgd", "adam"), trials=2, seeds=1)
    assert contents(on_ray) == contents(inline)


def test_an_algoperf_race_on_a_local_ray_instance_matches_an_inline_one(tmp_path):
    from optarena.arena.algoperf import AlgoPerfConfig, make_algoperf_plan
    from optarena.arena.executors import InlineExecutor
    from optarena.arena.race import run_race
    from optarena.arena.store import Store
    from optarena.arena.targets import set_targets

    base = tmp_path / "targets.sqlite"
    with Store(base) as store:
        set_targets(store, InlineExecutor(threads=1), ["toy_workloads:classifier"], trials=1, seeds=1)
    on_ray, inline = tmp_path / "ray.sqlite", tmp_path / "inline.sqlite"
    on_ray.write_bytes(base.read_bytes())
    inline.write_bytes(base.read_bytes())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    command = [
        sys.executable,
        "-m",
        "optarena",
        "race",
        "--protocol",
        "algoperf",
        "--workload",
        "toy_workloads:classifier",
        "--optimizers",
        "sgd,adam",
        "--studies",
        "2",
        "--trials",
        "2",
        "--db",
        str(on_ray),
        "--executor",
        "ray",
        "--address",
        "local",
        "--workers",
        "2",
        "--threads",
        "1",
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 trials run, 0 reused" in " ".join(done.stdout.split())

    config = AlgoPerfConfig(("toy_workloads:classifier",), ("sgd", "adam"), studies=2, trials=2)
    with Store(inline) as store:
        run_race(make_algoperf_plan(config, store), store, InlineExecutor(threads=1))
    assert contents(on_ray) == contents(inline)
