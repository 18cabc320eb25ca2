"""``optarena trajectories`` and ``optarena nqm``."""

from __future__ import annotations

import pytest

from optarena.cli import main
from optarena.functions.command import DEFAULT_TRAJECTORY_OPTIMIZERS, default_optimizers
from optarena.registry import REGISTRY

QUICK = ["--steps", "40", "--trials", "3", "--starts", "4"]


def test_trajectories_prints_the_tuned_table_and_writes_the_pictures(tmp_path, capsys):
    out, gif = tmp_path / "quadratic.png", tmp_path / "quadratic.gif"
    argv = [
        "trajectories",
        "--function",
        "quadratic",
        "--optimizers",
        "sgd,Adam",
        "--out",
        str(out),
        "--animate",
        str(gif),
        "--frames",
        "4",
        *QUICK,
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "sgd" in printed and "adam" in printed and "lr=" in printed
    assert f"wrote {out}" in printed and f"wrote {gif}" in printed
    assert out.stat().st_size > 10_000 and gif.stat().st_size > 1_000


def test_trajectories_with_gradient_noise(tmp_path, capsys):
    out = tmp_path / "noisy.png"
    argv = [
        "trajectories",
        "--function",
        "saddle",
        "--optimizers",
        "momentum",
        "--noise",
        "0.1",
        "--seeds",
        "2",
        "--no-surface",
        "--out",
        str(out),
        *QUICK,
    ]
    assert main(argv) == 0
    assert "gradient noise 0.1" in capsys.readouterr().out
    assert out.exists()


def test_default_list_leaves_out_what_is_not_registered():
    registered, missing = default_optimizers()
    assert registered + missing == [n for n in DEFAULT_TRAJECTORY_OPTIMIZERS if n in registered + missing]
    assert set(registered) <= set(REGISTRY) and not set(missing) & set(REGISTRY)
    assert set(DEFAULT_TRAJECTORY_OPTIMIZERS) == set(registered) | set(missing)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--optimizers", "sgd,adamm"], "Unknown optimizer 'adamm'. Did you mean 'adam'"),
        (["--function", "rosenbrok"], "Unknown test function 'rosenbrok'. Did you mean 'rosenbrock'"),
        (["--optimizers", "sgd,SGD"], "listed twice"),
    ],
)
def test_trajectories_bad_names_exit_2_with_one_line(argv, fragment, tmp_path, capsys):
    assert main(["trajectories", *argv, "--out", str(tmp_path / "x.png"), *QUICK]) == 2
    captured = capsys.readouterr()
    assert fragment in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["trajectories", "--out", "picture.jpg"],
        ["trajectories", "--out", "/no/such/folder/x.png"],
        ["trajectories", "--steps", "0"],
        ["trajectories", "--quantile", "1.5"],
        ["trajectories", "--animate", "x.png"],
        ["nqm", "--lr", "-1"],
        ["nqm", "--target", "2"],
        ["nqm", "--alpha", "0"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_nqm_prints_the_check_and_the_sweep_and_writes_the_picture(tmp_path, capsys):
    out = tmp_path / "nqm.png"
    argv = ["nqm", "--out", str(out), "--dim", "10", "--steps", "40", "--runs", "30", "--max-batch-size", "8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "steady" in printed and "Lookahead(SGD)" in printed and "momentum" in printed
    assert out.stat().st_size > 10_000


def test_nqm_rejects_a_sweep_below_the_panel_batch_size(tmp_path, capsys):
    argv = ["nqm", "--out", str(tmp_path / "n.png"), "--batch-size", "64", "--max-batch-size", "8"]
    assert main(argv) == 2
    assert "--max-batch-size (8.0) is below --batch-size (64)" in capsys.readouterr().err
