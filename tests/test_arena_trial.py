"""One trial: the training loop, divergence as a result, time to target, determinism."""

from __future__ import annotations

import pytest
import torch

from optarena.arena import trial
from optarena.arena.trial import TrialFailed, TrialSpec, prepare_worker, run_trial, trial_key


def _spec(workload="toy_workloads:classifier", optimizer="adam", seed=0, threads=1, **hyperparameters):
    return TrialSpec(workload, {}, None, "w", optimizer, hyperparameters or {"lr": 0.01}, seed, "0", threads)


def test_a_trial_records_every_step_and_every_evaluation():
    result = run_trial(_spec())
    losses = [(step, value) for name, step, value in result.metrics if name == "train_loss"]
    accuracy = [(step, value) for name, step, value in result.metrics if name == "test_accuracy"]
    assert [step for step, _ in losses] == list(range(30))
    assert [step for step, _ in accuracy] == [5, 10, 15, 20, 25, 30]
    assert result.status == "finished" and result.steps_done == 30
    assert result.final_metric == accuracy[-1][1]
    assert result.best_metric == max(value for _, value in accuracy)
    reached = [step for step, value in accuracy if value >= 0.8]
    assert result.steps_to_target == (reached[0] if reached else None)
    assert (result.seconds_to_target is None) == (result.steps_to_target is None)


def test_the_same_spec_gives_the_same_numbers_and_another_seed_does_not():
    first, again, other = run_trial(_spec()), run_trial(_spec()), run_trial(_spec(seed=1))
    assert first.metrics == again.metrics
    assert first.metrics != other.metrics
    assert first.key == again.key != other.key


def test_a_non_finite_loss_is_a_diverged_result_not_an_error():
    result = run_trial(_spec("toy_workloads:exploding", "sgd", lr=0.01))
    assert result.status == "diverged"
    assert result.diverged_step == 3 and result.steps_done == 3
    assert result.final_metric is None
    assert [step for name, step, _ in result.metrics if name == "train_loss"] == [0, 1, 2]


def test_a_huge_learning_rate_diverges():
    result = run_trial(_spec("toy_workloads:regression", "sgd", lr=1e6))
    assert result.status == "diverged" and result.final_metric is None


def test_a_workload_without_its_target_metric_fails_clearly():
    with pytest.raises(TrialFailed, match="without its target metric 'test_loss'"):
        run_trial(_spec("toy_workloads:missing_metric"))


def test_torch_threads_are_set_for_the_trial_and_restored():
    before = torch.get_num_threads()
    result = run_trial(_spec(threads=1))
    assert result.threads == 1
    assert torch.get_num_threads() == before


def test_preparing_a_worker_changes_no_result_and_leaves_errors_to_the_trial(monkeypatch):
    monkeypatch.setattr(trial, "_WORKLOADS", {})
    fresh = run_trial(_spec(optimizer="lamb"))
    monkeypatch.setattr(trial, "_WORKLOADS", {})
    generator = torch.get_rng_state()
    prepare_worker([_spec(optimizer="lamb"), _spec(optimizer="no-such-optimizer"), _spec("toy_workloads:missing")])
    assert list(trial._WORKLOADS) == [("toy_workloads:classifier", "{}", None)]  # the data stays loaded
    assert torch.equal(torch.get_rng_state(), generator)
    assert run_trial(_spec(optimizer="lamb")).metrics == fresh.metrics


def test_the_key_depends_on_exactly_what_determines_a_result():
    base = trial_key("w", "adam", {"lr": 0.01, "betas": (0.9, 0.999)}, 0, "0.1.0")
    assert base == trial_key("w", "adam", {"betas": [0.9, 0.999], "lr": 0.01}, 0, "0.1.0")
    for changed in (
        trial_key("w2", "adam", {"lr": 0.01, "betas": (0.9, 0.999)}, 0, "0.1.0"),
        trial_key("w", "adamw", {"lr": 0.01, "betas": (0.9, 0.999)}, 0, "0.1.0"),
        trial_key("w", "adam", {"lr": 0.010000001, "betas": (0.9, 0.999)}, 0, "0.1.0"),
        trial_key("w", "adam", {"lr": 0.01, "betas": (0.9, 0.999)}, 1, "0.1.0"),
        trial_key("w", "adam", {"lr": 0.01, "betas": (0.9, 0.999)}, 0, "0.2.0"),
    ):
        assert changed != base


def test_schedule_free_is_evaluated_at_its_average_and_trains_on():
    """The trial evaluates a Schedule-Free optimizer at x (eval() around evaluate()), then trains
    at y again: its numbers are those of the loop written out with the switches."""
    import toy_workloads

    import optarena

    spec = _spec("toy_workloads:regression", "schedule_free_adamw", lr=0.05)
    result = run_trial(spec)
    workload = toy_workloads.regression()
    torch.manual_seed(0)
    run = workload.setup(0)
    optimizer = optarena.create("schedule_free_adamw", run.model.parameters(), lr=0.05)
    at_x, at_y = [], []
    for step in range(workload.steps):
        optimizer.zero_grad(set_to_none=True)
        run.train_loss(step).backward()
        optimizer.step()
        if (step + 1) % workload.eval_every == 0:
            at_y.append(run.evaluate()["test_loss"])
            optimizer.eval()
            at_x.append(run.evaluate()["test_loss"])
            optimizer.train()
    recorded = [value for name, _, value in result.metrics if name == "test_loss"]
    assert recorded == at_x
    assert recorded != at_y
