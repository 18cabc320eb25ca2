"""Your own workload: ``package.module:factory``, its errors, the documented example, and the CLI."""

from __future__ import annotations

import itertools
import re
import textwrap
from pathlib import Path

import pytest
import torch

import optarena
from optarena.arena.workloads import WorkloadError, check_trainable, get_workload
from optarena.cli import main

ROOT = Path(__file__).resolve().parents[1]
_names = (f"user_workload_{i}" for i in itertools.count())

VALID = """
import torch
from torch import nn
from optarena.arena import Target


class Run:
    def __init__(self, seed):
        torch.manual_seed(seed)
        self.model = nn.Linear(3, 1)

    def train_loss(self, step):
        return self.model(torch.ones(4, 3)).pow(2).mean()

    def evaluate(self):
        with torch.no_grad():
            return {"loss": float(self.model(torch.ones(1, 3)).pow(2))}


class Tiny:
    name = "tiny"
    description = "a tiny user workload"
    target = Target("loss", 1e-3, "min")
    eval_every = 5

    def __init__(self, steps=50):
        self.steps = steps

    def setup(self, seed, *, sparse=False):
        return Run(seed)
"""


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def module(tmp_path, monkeypatch):
    """``module(source)``: write ``source`` as a fresh importable module; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = next(_names)
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        return name

    return write


def test_a_valid_factory_is_loaded_and_gets_its_declared_options(module):
    name = module(VALID + "\ndef make(steps=50):\n    return Tiny(steps)\n")
    workload = get_workload(f"{name}:make", steps=7, quick=True, data_dir="/somewhere")
    assert (workload.name, workload.steps) == ("tiny", 7)  # quick and data_dir dropped: not declared
    assert get_workload(f"{name}:Tiny").steps == 50  # a class is a factory too
    metrics = check_trainable(workload.setup(0), workload)
    assert set(metrics) == {"loss"}


def test_quick_and_data_dir_reach_a_factory_that_declares_them(module):
    name = module(
        VALID + "\ndef make(quick=False, data_dir=None):\n    w = Tiny(5 if quick else 50)\n"
        "    w.data_dir = data_dir\n    return w\n"
    )
    workload = get_workload(f"{name}:make", data_dir="/data", quick=True)
    assert workload.steps == 5 and workload.data_dir == Path("/data")


def test_an_option_the_factory_does_not_take(module):
    name = module(VALID + "\ndef make():\n    return Tiny()\n")
    with pytest.raises(TypeError, match=rf"'{name}:make' does not accept the option 'width'\. It accepts: no options"):
        get_workload(f"{name}:make", width=3)


def test_missing_module():
    with pytest.raises(ValueError, match=r"Cannot import module 'no_such_pkg\.mod' .*no module named 'no_such_pkg'"):
        get_workload("no_such_pkg.mod:make")


def test_a_module_whose_own_import_fails_is_reported_as_such(module):
    name = module("import no_such_dependency_xyz\n")
    with pytest.raises(ValueError, match=rf"Importing '{name}' .* failed: No module named 'no_such_dependency_xyz'"):
        get_workload(f"{name}:make")
    broken = module("raise RuntimeError('broken on import')\n")
    with pytest.raises(ValueError, match="RuntimeError: broken on import"):
        get_workload(f"{broken}:make")


def test_missing_attribute_lists_what_the_module_has(module):
    name = module(VALID)
    with pytest.raises(ValueError, match=rf"Module '{name}' has no attribute 'make' .*public callables: .*Tiny"):
        get_workload(f"{name}:make")


def test_an_attribute_that_is_not_callable(module):
    name = module(VALID + "\nworkload = 3\n")
    with pytest.raises(ValueError, match="is a int, not callable"):
        get_workload(f"{name}:workload")


@pytest.mark.parametrize("spec", ["a.b:", ":make", "a:b:c", " : "])
def test_malformed_specs(spec):
    with pytest.raises(ValueError, match=re.escape(f"{spec!r} is not of the form package.module:factory")):
        get_workload(spec)


def test_a_result_without_target_names_the_missing_attribute(module):
    name = module(
        VALID + "\nclass NoTarget:\n    name, description, steps, eval_every = 'x', 'y', 10, 5\n"
        "    def setup(self, seed, *, sparse=False):\n        return Run(seed)\n"
    )
    with pytest.raises(WorkloadError, match="returned a NoTarget without the workload attribute\\(s\\) target;"):
        get_workload(f"{name}:NoTarget")


def test_a_result_with_bad_values_lists_each_problem(module):
    name = module(VALID + "\ndef make():\n    w = Tiny(steps=0)\n    w.target = ('loss', 1)\n    return w\n")
    with pytest.raises(WorkloadError) as caught:
        get_workload(f"{name}:make")
    message = str(caught.value)
    assert (
        "target must be an optarena.arena.Target" in message and "steps must be a whole number >= 1, got 0" in message
    )


def test_a_factory_that_raises(module):
    name = module("def make():\n    raise FileNotFoundError('no data here')\n")
    with pytest.raises(WorkloadError, match="raised FileNotFoundError: no data here"):
        get_workload(f"{name}:make")


def test_check_trainable_names_what_breaks_the_protocol(module):
    name = module(
        VALID
        + """
class NoGraph(Run):
    def train_loss(self, step):
        return torch.tensor(1.0)

class NoMetric(Run):
    def evaluate(self):
        return {"accuracy": 1.0}

def make_no_graph():
    w = Tiny(); w.setup = lambda seed, sparse=False: NoGraph(seed); return w

def make_no_metric():
    w = Tiny(); w.setup = lambda seed, sparse=False: NoMetric(seed); return w
"""
    )
    for factory, expected in (
        ("make_no_graph", "scalar tensor with a graph"),
        ("make_no_metric", "without the target metric 'loss'"),
    ):
        workload = get_workload(f"{name}:{factory}")
        with pytest.raises(WorkloadError, match=expected):
            check_trainable(workload.setup(0), workload)


def test_a_module_in_the_current_directory_is_found(tmp_path, monkeypatch):
    (tmp_path / "cwd_workload_mod.py").write_text(VALID + "\ndef make():\n    return Tiny()\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    assert get_workload("cwd_workload_mod:make").name == "tiny"


# -- the example in docs/workloads.md -------------------------------------------------------


def _documented_example() -> str:
    text = (ROOT / "docs" / "workloads.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example: my_workload\.py -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/workloads.md lost its example"
    return match.group(1)


def test_the_documented_example_runs_and_reaches_its_target(module):
    name = module(_documented_example())
    workload = get_workload(f"{name}:make_workload", quick=True)
    assert workload.steps < get_workload(f"{name}:make_workload").steps
    trainable = workload.setup(0)
    again = workload.setup(0)
    assert torch.equal(trainable.train_loss(3), again.train_loss(3))  # deterministic per seed
    optimizer = optarena.create("adam", trainable.model.parameters(), lr=0.05)
    for step in range(workload.steps):
        optimizer.zero_grad()
        trainable.train_loss(step).backward()
        optimizer.step()
    final = trainable.evaluate()[workload.target.metric]
    assert workload.target.reached(final), final
    optimizer = optarena.create("sgd", again.model.parameters(), lr=1e-4)  # a poor setting does not
    for step in range(workload.steps):
        optimizer.zero_grad()
        again.train_loss(step).backward()
        optimizer.step()
    assert not workload.target.reached(again.evaluate()[workload.target.metric])


# -- optarena workloads ----------------------------------------------------------------------


def test_cli_lists_every_builtin(capsys):
    assert main(["workloads"]) == 0
    out = capsys.readouterr().out
    for name in ("digits-mlp", "tiny-transformer", "sparse-bow", "large-batch", "mnist-mlp", "cifar10-cnn"):
        assert name in out
    assert "test_accuracy" in out


def test_cli_checks_builtin_and_own_workloads(module, capsys):
    assert main(["workloads", "--check", "DIGITS-MLP", "--quick"]) == 0
    assert "digits-mlp: ok (200 steps" in capsys.readouterr().out
    name = module(_documented_example())
    assert main(["workloads", "--check", f"{name}:make_workload"]) == 0
    assert "least-squares: ok" in capsys.readouterr().out


def test_cli_errors_are_one_line(module, capsys):
    assert main(["workloads", "--check", "digits-mpl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optarena workloads: Unknown workload 'digits-mpl'") and err.count("\n") == 1
    assert main(["workloads", "--check", "mnist-mlp"]) == 2
    assert "--data-dir" in capsys.readouterr().err
    name = module("def make():\n    raise RuntimeError('kaput')\n")
    assert main(["workloads", "--check", f"{name}:make"]) == 2
    assert "RuntimeError: kaput" in capsys.readouterr().err
    crash = module(
        VALID + "\nclass Bad(Run):\n    def evaluate(self):\n        raise KeyError('x')\n"
        "def make():\n    w = Tiny(); w.setup = lambda seed, sparse=False: Bad(seed); return w\n"
    )
    assert main(["workloads", "--check", f"{crash}:make"]) == 1
    assert "failed: KeyError" in capsys.readouterr().err
