"""Recording optimizer paths from one initial point."""

import pytest
import torch
from landscape_models import classification_batch, one_thread  # noqa: F401  (autouse)
from torch import nn

from optarena.landscape import loss_at, parameters_vector, train_paths

LOSS = nn.functional.cross_entropy


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def test_every_run_starts_at_the_model_and_records_on_schedule():
    model = small_model()
    start = parameters_vector(model)
    data = classification_batch(samples=64)
    runs = train_paths(
        model,
        LOSS,
        data,
        ["sgd", "adam"],
        steps=25,
        batch_size=16,
        record_every=10,
        hyperparameters={"sgd": {"lr": 0.5}},
    )
    assert [run.name for run in runs] == ["sgd", "adam"]
    assert runs[0].hyperparameters == {"lr": 0.5} and runs[1].hyperparameters == {}
    for run in runs:
        assert run.steps == [0, 10, 20, 25]
        assert run.matrix().shape == (4, start.numel())
        assert torch.equal(run.points[0], start)
        assert not torch.equal(run.points[-1], start)
        assert loss_at(model, LOSS, data, run.points[-1]) < loss_at(model, LOSS, data, start)
    assert not torch.allclose(runs[0].points[-1], runs[1].points[-1])
    torch.testing.assert_close(parameters_vector(model), start, rtol=0, atol=0)  # the model is not trained


def test_runs_differ_only_by_the_optimizer():
    model = small_model()
    data = classification_batch(samples=64)
    first, second = train_paths(model, LOSS, data, ["adam", "adam"], steps=12, batch_size=16, record_every=4)
    for a, b in zip(first.points, second.points):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"steps": 0}, "steps must be a whole number >= 1"),
        ({"record_every": 0}, "record_every must be a whole number >= 1"),
        ({"batch_size": 65}, r"batch_size must be at most the number of samples \(64\)"),
    ],
)
def test_bad_settings_are_refused(options, message):
    settings = {"steps": 5, "batch_size": 16, "record_every": 1, **options}
    with pytest.raises(ValueError, match=message):
        train_paths(small_model(), LOSS, classification_batch(samples=64), ["sgd"], **settings)


def test_an_unknown_optimizer_is_refused_by_name():
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'"):
        train_paths(
            small_model(), LOSS, classification_batch(samples=64), ["adamm"], steps=2, batch_size=8, record_every=1
        )
