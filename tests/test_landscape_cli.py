"""``optarena landscape``: real runs drawn on one plane, and clear errors."""

import numpy as np
import pytest
import torch
from landscape_models import one_thread  # noqa: F401  (autouse)

from optarena.cli import main
from optarena.landscape import loss_at, parameters_vector
from optarena.landscape.command import run_landscape
from optarena.landscape.workloads import get_workload

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL = {"grid": 7, "steps": 40, "record_every": 10, "evaluation_size": 300}


def test_the_picture_shows_real_runs_on_the_pca_plane(tmp_path):
    out = tmp_path / "landscape.png"
    result = run_landscape("digits-mlp", ["sgd", "adam", "radam"], out=out, **SMALL)
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    runs, landscape = result.trajectories, result.landscape
    assert [run.name for run in runs] == [path.name for path in landscape.paths] == ["sgd", "adam", "radam"]
    assert landscape.surface.losses.shape == (7, 7) and np.isfinite(landscape.surface.losses).all()

    workload = get_workload("digits-mlp")
    batch = workload.evaluation_batch(300, 0)
    start = parameters_vector(workload.make_model(0))
    for run, path in zip(runs, landscape.paths):
        assert torch.equal(run.points[0], start)  # one common start
        assert run.steps == [0, 10, 20, 30, 40]
        assert run.losses[-1] < run.losses[0]  # it trained
        assert path.xy.shape == (5, 2)
        # The plane is centred on the start, so every path begins at the origin, at the start's true loss.
        np.testing.assert_allclose(path.xy[0], 0.0, atol=1e-6)
        assert path.losses[0] == pytest.approx(
            loss_at(workload.make_model(0), workload.loss_fn, batch, start), rel=1e-5
        )
        assert result.final_losses[run.name] == pytest.approx(
            loss_at(workload.make_model(0), workload.loss_fn, batch, run.points[-1]), rel=1e-6
        )
        # The grid covers the whole path.
        assert landscape.surface.xs[0] < path.xy[:, 0].min() and path.xy[:, 0].max() < landscape.surface.xs[-1]
        assert landscape.surface.ys[0] < path.xy[:, 1].min() and path.xy[:, 1].max() < landscape.surface.ys[-1]
    assert landscape.surface.losses.min() < min(result.final_losses.values()) * 1.5
    assert 0.5 < sum(landscape.plane.explained) <= 1.0


def test_on_the_endpoints_plane_the_two_ends_sit_at_their_true_loss(tmp_path):
    result = run_landscape("digits-mlp", ["sgd", "adam"], out=None, plane="endpoints", **SMALL)
    for path in result.landscape.paths:
        assert path.off_plane < 1e-5
        assert path.losses[-1] == pytest.approx(result.final_losses[path.name], rel=1e-4)


def test_the_command_writes_a_png_with_log_levels(tmp_path, capsys):
    out = tmp_path / "paths.png"
    code = main(
        [
            "landscape",
            "--optimizers",
            "sgd,momentum",
            "--grid",
            "5",
            "--steps",
            "20",
            "--eval-size",
            "200",
            "--lr",
            "momentum=0.05",
            "--log",
            "--view",
            "contour",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    printed = capsys.readouterr().out
    assert "momentum" in printed and "0.05" in printed and f"wrote {out}" in printed


@pytest.mark.parametrize(
    "options, message",
    [
        ({"grid": 1}, "grid must be a whole number of points per axis from 2 to 1001, got 1"),
        ({"plane": "random"}, "plane must be one of pca, endpoints; got 'random'"),
        ({"center": "final"}, "center must be one of init, mean; got 'final'"),
        ({"view": "3d"}, "view must be one of contour, surface, both; got '3d'"),
        ({"margin": -0.1}, "margin must be >= 0, got -0.1"),
        ({"chunk_size": 0}, "chunk_size must be a whole number >= 1"),
    ],
)
def test_the_library_call_refuses_bad_settings_before_training(options, message, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the settings")

    monkeypatch.setattr("optarena.landscape.command.train_paths", no_training)
    with pytest.raises(ValueError, match=message):
        run_landscape("digits-mlp", ["sgd"], out=None, **options)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--grid", "1"], "a grid needs 2 to 1001 points per axis, got 1"),
        (["--grid", "many"], "expected a whole number of points per axis"),
        (["--optimizers", "sgd,adamm"], "Unknown optimizer 'adamm'. Did you mean 'adam'"),
        (["--workload", "digits-rnn"], "Unknown workload 'digits-rnn'. Did you mean 'digits-cnn', 'digits-mlp'"),
        (["--workload", "tiny-transformer"], "its runs lack loss_fn and train_data"),
        (["--optimizers", "sgd,SGD"], "each optimizer may appear once; repeated: sgd"),
        (["--lr", "adam=0.01"], "--lr names adam, which is not among the optimizers"),
        (["--lr", "sgd=-1"], "SGD: Invalid learning rate: -1.0"),
        (["--lr", "sgd"], "expected NAME=VALUE pairs"),
        (["--plane", "random"], "invalid choice: 'random'"),
        (["--plane", "endpoints", "--optimizers", "sgd"], "needs at least two optimizers"),
        (["--out", "/no/such/folder/landscape.png"], "the output folder '/no/such/folder' does not exist"),
    ],
)
def test_bad_input_exits_2_and_says_why(arguments, message, capsys, tmp_path):
    base = ["landscape", "--optimizers", "sgd", "--steps", "2", "--grid", "3", "--out", str(tmp_path / "x.png")]
    assert main(base + arguments) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_a_convolutional_arena_workload_draws_too():
    result = run_landscape(
        "digits-cnn", ["sgd", "adam"], out=None, grid=5, steps=20, record_every=10, evaluation_size=64
    )
    assert result.landscape.surface.losses.shape == (5, 5)
    assert np.isfinite(result.landscape.surface.losses).all()
    assert all(run.losses[-1] < run.losses[0] for run in result.trajectories)
