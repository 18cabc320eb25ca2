"""Built-in workloads: the protocol, determinism per seed, learning, sparse gradients, the resolver."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from data_files import write_cifar10, write_mnist

import optarena
from optarena.arena import Trainable, Workload
from optarena.arena.workloads import (
    BUILTIN,
    WorkloadError,
    available_workloads,
    check_trainable,
    check_workload,
    get_workload,
)
from optarena.arena.workloads.base import ShuffledBatches, derived_seed
from optarena.data.idx import DataFormatError

REQUIRED = {
    "digits-mlp",
    "digits-cnn",
    "tiny-transformer",
    "sparse-bow",
    "large-batch",
    "rosenbrock",
    "nqm",
    "mnist-mlp",
    "cifar10-cnn",
}

ADAM_LR = {
    "digits-mlp": 1e-2,
    "digits-cnn": 1e-2,
    "mnist1d-mlp": 1e-2,
    "mnist1d-cnn": 1e-2,
    "char-lm": 1e-2,
    "tiny-transformer": 3e-3,
    "sparse-bow": 3e-2,
    "large-batch": 1e-2,
    "rosenbrock": 1e-1,
    "nqm": 3e-2,
    "mnist-mlp": 1e-3,
    "cifar10-cnn": 1e-3,
}
"""A decent Adam learning rate per workload, for the short learning test."""


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_mnist(root / "mnist", sizes=(("train", 64), ("test", 16)))
    write_cifar10(root / "cifar", per_file=8)
    return {"mnist-mlp": root / "mnist", "cifar10-cnn": root / "cifar"}


@pytest.fixture(scope="module")
def make(data_dirs):
    """``make(name, **options)``: a built-in workload; those on real data get the small files."""

    def build(name: str, **options):
        if BUILTIN[name].needs_data_dir:
            options = {"batch_size": 16, **options}
            return get_workload(name, data_dir=data_dirs[name], **options)
        return get_workload(name, **options)

    return build


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: the runs are tiny, and threads fight over a shared CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _parameters(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# -- every built-in -------------------------------------------------------------------------


def test_the_required_workloads_are_built_in_and_listed():
    listed = {info.name: info for info in available_workloads()}
    assert REQUIRED <= set(listed) == set(BUILTIN)
    for info in listed.values():
        assert info.description and info.target.metric
        assert info.quick_budget.steps < info.budget.steps
    assert listed["large-batch"].budget.batch_size >= 4096
    assert listed["mnist-mlp"].needs_data_dir and not listed["digits-mlp"].needs_data_dir


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_satisfies_the_protocol(make, name):
    workload = make(name)
    assert isinstance(workload, Workload)
    assert check_workload(workload, name) is workload
    assert make(name, quick=True).steps < workload.steps
    trainable = workload.setup(0)
    assert isinstance(trainable, Trainable)
    metrics = check_trainable(trainable, workload)
    value = metrics[workload.target.metric]
    assert math.isfinite(value)
    if "accuracy" in workload.target.metric:
        assert 0.0 <= value <= 1.0
    assert not workload.target.reached(value)  # one step does not solve a workload


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_deterministic_per_seed_and_seeds_differ(make, name):
    workload = make(name)
    global_state = torch.get_rng_state()
    first, again, other = workload.setup(3), workload.setup(3), workload.setup(4)
    steps = [0, 1, 97]
    losses = [[t.train_loss(s).item() for s in steps] for t in (first, again, other)]
    assert torch.equal(torch.get_rng_state(), global_state)  # nothing draws from torch's global RNG
    for a, b in zip(_parameters(first.model), _parameters(again.model), strict=True):
        assert torch.equal(a, b)
    assert losses[0] == losses[1]
    # Another seed changes the initial weights (the NQM always starts from its fixed point) and the batches.
    if name != "nqm":
        assert any(
            not torch.equal(a, b) for a, b in zip(_parameters(first.model), _parameters(other.model), strict=True)
        )
    assert losses[0] != losses[2]
    assert first.evaluate() == again.evaluate()


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_a_short_adam_run_lowers_the_training_loss(make, name):
    workload = make(name)
    trainable = workload.setup(0)
    optimizer = optarena.create("adam", trainable.model.parameters(), lr=ADAM_LR[name])
    with torch.no_grad():
        before = float(trainable.train_loss(0))
    for step in range(25):
        optimizer.zero_grad()
        trainable.train_loss(step).backward()
        optimizer.step()
    with torch.no_grad():
        after = float(trainable.train_loss(0))
    assert after < 0.9 * before, (before, after)


# -- pieces -----------------------------------------------------------------------------------


def test_batches_are_epochs_of_permutations_fixed_by_the_seed():
    batches = ShuffledBatches(10, 3, seed=5)
    assert batches.per_epoch == 3
    epoch = torch.cat([batches(s) for s in range(3)])
    assert len(set(epoch.tolist())) == 9  # one epoch visits distinct examples
    later = batches(4)
    replay = ShuffledBatches(10, 3, seed=5)
    assert torch.equal(replay(4), later)  # a step's batch does not depend on the steps before
    assert torch.equal(replay(0), epoch[:3])
    assert not torch.equal(ShuffledBatches(10, 3, seed=6)(0), epoch[:3])
    with pytest.raises(ValueError, match="batch_size must be between 1 and the 10 training examples"):
        ShuffledBatches(10, 11, seed=0)


def test_derived_seeds_depend_on_every_key():
    seeds = {derived_seed(a, b) for a in range(4) for b in range(4)}
    assert len(seeds) == 16
    with pytest.raises(ValueError, match="non-negative"):
        derived_seed(-1)


def test_sparse_bow_gives_sparse_gradients_only_when_asked():
    workload = get_workload("sparse-bow")
    for sparse in (True, False):
        trainable = workload.setup(0, sparse=sparse)
        trainable.train_loss(0).backward()
        embedding = trainable.model.embedding.weight.grad
        assert embedding.is_sparse is sparse
        assert not trainable.model.classifier.weight.grad.is_sparse
    rows = embedding.coalesce().indices() if embedding.is_sparse else embedding.abs().sum(1).nonzero()
    assert 0 < len(rows) < workload.vocab  # a batch touches a few of the rows


def test_sparse_bow_corpus_is_zipf_shaped_and_labelled_by_the_text():
    workload = get_workload("sparse-bow")
    docs, labels, test_docs, test_labels = workload.corpus()
    assert docs.shape == (workload.train_docs, workload.length) and len(test_docs) == workload.test_docs
    counts = torch.bincount(docs.reshape(-1), minlength=workload.vocab)
    assert counts[0] > 20 * counts[100] > 0  # frequent head
    assert counts[:30].sum() > 0.4 * counts.sum()  # thirty tokens make nearly half the text
    assert (counts < 10).float().mean() > 0.5  # most tokens are rare
    shares = torch.bincount(labels, minlength=workload.classes).float() / len(labels)
    assert shares.min() > 0.1


def test_large_batch_uses_a_large_batch():
    workload = get_workload("large-batch", quick=True)
    trainable = workload.setup(0)
    assert workload.batch_size >= 4096
    assert len(trainable.batches(0)) == workload.batch_size


def test_tiny_transformer_is_post_ln_without_dropout():
    trainable = get_workload("tiny-transformer").setup(0)
    layers = list(trainable.model.blocks.layers)
    assert layers and all(not layer.norm_first for layer in layers)
    assert all(m.p == 0.0 for m in trainable.model.modules() if isinstance(m, torch.nn.Dropout))


# -- the resolver ---------------------------------------------------------------------------


def test_names_are_case_insensitive_and_options_apply():
    workload = get_workload("  Digits-MLP ", quick=True, eval_every=7, batch_size=32)
    assert workload.name == "digits-mlp"
    assert (workload.steps, workload.eval_every, workload.batch_size) == (
        BUILTIN["digits-mlp"].quick_budget.steps,
        7,
        32,
    )
    assert get_workload("digits-mlp", steps=11).steps == 11


def test_unknown_name_lists_close_matches():
    with pytest.raises(
        ValueError, match=r"Unknown workload 'digits-mpl'\. Did you mean 'digits-mlp'.*Built-in: digits-mlp"
    ):
        get_workload("digits-mpl")


def test_unknown_or_bad_option():
    with pytest.raises(TypeError, match=r"no option 'step'\. Did you mean 'steps'\?"):
        get_workload("digits-mlp", step=3)
    with pytest.raises(ValueError, match="steps must be a whole number >= 1, got 0"):
        get_workload("digits-mlp", steps=0)
    with pytest.raises(ValueError, match="width .* must be a multiple of heads"):
        get_workload("tiny-transformer", width=30, heads=4)


@pytest.mark.parametrize(
    "name, expected", [("mnist-mlp", "train-images-idx3-ubyte"), ("cifar10-cnn", "data_batch_1.bin")]
)
def test_real_data_workloads_need_a_data_dir(tmp_path, name, expected):
    with pytest.raises(DataFormatError, match=f"give --data-dir DIR .*{expected}"):
        get_workload(name)
    with pytest.raises(DataFormatError, match=expected):
        get_workload(name, data_dir=tmp_path)


def test_real_data_workload_checks_batch_size_against_the_files(data_dirs):
    with pytest.raises(ValueError, match=r"batch_size \(128\) exceeds the 64 training images"):
        get_workload("mnist-mlp", data_dir=data_dirs["mnist-mlp"])


def test_bad_spec_type():
    with pytest.raises(WorkloadError, match="name or package.module:factory"):
        get_workload("")


def test_rosenbrock_starts_differ_per_seed_and_noise_is_per_step():
    exact = get_workload("rosenbrock")
    starts = {tuple(exact.setup(seed).model.x.tolist()) for seed in range(5)}
    assert len(starts) == 5
    noisy = get_workload("rosenbrock", noise=1.0)
    run = noisy.setup(0)
    grads = []
    for step in (0, 1, 0):
        run.model.x.grad = None
        run.train_loss(step).backward()
        grads.append(run.model.x.grad.clone())
    assert torch.equal(grads[0], grads[2]) and not torch.equal(grads[0], grads[1])
    assert run.evaluate()["loss"] == noisy.setup(0).evaluate()["loss"]  # the metric is the exact gap
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        get_workload("rosenbrock", noise=-1.0)


def test_nqm_batch_size_scales_the_gradient_noise():
    def noise_spread(batch_size: int) -> float:
        run = get_workload("nqm", batch_size=batch_size).setup(0)
        grads = []
        for step in range(64):
            run.model.x.grad = None
            run.train_loss(step).backward()
            grads.append(run.model.x.grad[0].item())
        return float(torch.tensor(grads).std())

    small, large = noise_spread(1), noise_spread(100)
    assert 5 < small / large < 20  # the noise's standard deviation falls as 1 / sqrt(B): 10x here


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_workloads_pickle_for_worker_processes(make, name):
    workload = make(name, quick=True)
    copy = pickle.loads(pickle.dumps(workload))
    assert (copy.name, copy.steps, copy.eval_every) == (workload.name, workload.steps, workload.eval_every)
    assert copy.setup(2).train_loss(5).item() == workload.setup(2).train_loss(5).item()


def test_sparse_bow_trains_with_a_sparse_optimizer():
    trainable = get_workload("sparse-bow").setup(0, sparse=True)
    optimizer = optarena.create("lazyadam", trainable.model.parameters(), lr=0.1)
    with torch.no_grad():
        before = trainable.train_loss(0).item()
    for step in range(25):
        optimizer.zero_grad()
        trainable.train_loss(step).backward()
        assert trainable.model.embedding.weight.grad.is_sparse
        optimizer.step()
    with torch.no_grad():
        assert trainable.train_loss(0).item() < 0.9 * before
