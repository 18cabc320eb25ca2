"""Sharded training on 2 CPU ranks (gloo): FSDP2 and tensor parallelism give one process's numbers.

The ranks run ``tests/sharded_worker.py`` once for the whole module (every registered optimizer,
eager, with the default ``fused=None`` and with ``fused=True``, in float64 so that only the order of additions
differs from one process); each test below reads its case from the ranks' reports.
Single-rank meshes, mixed groups and refusals run in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from optimizer_table import CASES
from torch import nn

import optarena
from optarena.transforms.matrix import has_matrix_transform

WORKER = Path(__file__).with_name("sharded_worker.py")
NAMES = [entry.name for entry in optarena.available()]
LAYOUTS = [f"{layout}-{mode}" for layout in ("fsdp2", "tp") for mode in ("eager", "default", "fused")]
TOLERANCE = 1e-9
"""Relative distance of the parameters' total change from one process's, in float64 (the
acceptance bound is 1e-4; the measured figures are below 1e-13)."""

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("sharded")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(out),
        "float64",
    ]
    done = subprocess.run(command, env=env, cwd=WORKER.parent, capture_output=True, text=True, timeout=1200)
    # a rank killed by a signal (a crash, not an exception) fails here for every test of the module
    assert done.returncode == 0, done.stderr[-5000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def _case(reports: list[dict], key: str) -> dict:
    found = [r[key] for r in reports]
    for result in found:
        assert result.get("error") is None, f"{key}: {result['error']}\n{result.get('trace', '')}"
    return found[0]


def _transforms(name: str) -> tuple:
    chain = optarena.registry.lookup(name).cls.chain()
    return tuple(getattr(chain, "transforms", chain))  # every chain of a partition


DISCONTINUOUS = {c.name for c in CASES if not c.continuous}
MATRIX = [name for name in NAMES if name != "lookahead" and has_matrix_transform(_transforms(name))]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", NAMES)
def test_sharded_training_equals_one_process(reports, name, layout):
    result = _case(reports, f"training/{name}-{layout}")
    if name in DISCONTINUOUS:  # its numbers are compared on identical gradients below
        assert all(v == v for v in result["per_parameter"])  # trained, finite
    else:
        assert result["relative_change_error"] <= TOLERANCE
    # both ranks took the same decisions, the skipped step (an inf on one rank) included
    assert (
        reports[0][f"training/{name}-{layout}"]["collectives"] == reports[1][f"training/{name}-{layout}"]["collectives"]
    )


def _elementwise(name: str) -> bool:
    return name == "lookahead" or all(t.elementwise for t in _transforms(name))


@pytest.mark.parametrize("name", [n for n in NAMES if _elementwise(n)])
def test_elementwise_chains_communicate_only_the_nonfinite_verdict(reports, name):
    for layout in LAYOUTS:
        assert _case(reports, f"training/{name}-{layout}")["collectives"] == [1] * 7


@pytest.mark.parametrize("name", [n for n in NAMES if not _elementwise(n)])
def test_reductions_take_a_fixed_number_of_collectives(reports, name):
    counts = reports[0][f"scaling/{name}"]
    for layout in ("fsdp2", "tp"):
        # 2 linear layers or 4: the same collectives per step
        assert counts[f"{layout}-1"] == counts[f"{layout}-3"]
        assert max(counts[f"{layout}-1"]) <= 9


@pytest.mark.parametrize("key", ["adamw", "sgd", "ranger", "lookahead"])
@pytest.mark.parametrize("state_dtype", ["None", "bfloat16"])
def test_half_precision_elementwise_shards_are_bit_identical(reports, key, state_dtype):
    assert reports[0][f"half/{key}-{state_dtype}"]["equal"]


@pytest.mark.parametrize("key", ["lamb", "adafactor"])
@pytest.mark.parametrize("state_dtype", ["None", "bfloat16"])
def test_half_precision_reductions_match_within_rounding(reports, key, state_dtype):
    # norms summed in another order can round a bf16 parameter the other way; the value the
    # optimizer keeps (parameter plus rounding remainder) stays within 1e-4 of one process's
    assert reports[0][f"half/{key}-{state_dtype}"]["exact_relative_change_error"] <= 1e-4


@pytest.mark.parametrize("layout", ["fsdp2", "tp"])
@pytest.mark.parametrize("name", MATRIX)
def test_matrix_work_on_identical_gradients_equals_one_process(reports, name, layout):
    """Fed the same gradients as one process, each matrix gathered whole on one rank gives its numbers."""
    assert _case(reports, f"same_gradients/{name}-{layout}")["relative_change_error"] <= 1e-12


@pytest.mark.parametrize("kind", ["ddp", "zero"])
def test_data_parallel_wrappers(reports, kind):
    assert _case(reports, f"data_parallel/{kind}")["relative_change_error"] <= TOLERANCE


@pytest.mark.parametrize("name", ["adamw", "adafactor", "lamb", "ranger"])
def test_distributed_checkpoint_resumes_bit_for_bit(reports, name):
    assert _case(reports, f"checkpoint/{name}")["equal"]


def test_partial_placement_is_refused_on_every_rank(reports):
    for report in reports:
        result = report["refusal/partial"]
        assert result["error"].startswith("ValueError") and "Partial" in result["error"]
        assert "param_groups[0]['params'][0]" in result["error"]
        assert result["state_empty"]


def test_nonfinite_raise_is_raised_on_every_rank(reports):
    messages = [report["refusal/raise"]["error"] for report in reports]
    assert all(m.startswith("FloatingPointError") for m in messages)
    # the verdict is shared: the rank whose part is finite names the same parameter
    assert messages[0] == messages[1] and "param_groups[0]['params'][2]" in messages[0]  # the first linear weight
    assert all(report["refusal/raise"]["unchanged"] and report["refusal/raise"]["state_empty"] for report in reports)


# -- one process: meshes of one rank, mixed groups, refusals ----------------------------------------


@pytest.fixture(scope="module")
def one_rank_mesh():
    from torch.distributed.device_mesh import init_device_mesh

    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.LayerNorm(5), nn.Linear(5, 3)).double()


def _train(model: nn.Module, optimizer, steps: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        x, y = torch.randn(8, 6, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
        ((model(x) - y) ** 2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    return [(p.full_tensor() if hasattr(p, "full_tensor") else p).detach() for p in model.parameters()]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mesh_of_one_rank_and_mixed_groups(one_rank_mesh, case):
    """Only the first linear layer is sharded (a model partly parallelised): one param group
    mixes DTensors and plain tensors, and the numbers are those of the plain model."""
    from torch.distributed.fsdp import fully_shard

    config = case.with_lr(case.configs[0], case.descent_lr)
    plain = _model()
    want = _train(plain, case.create(plain.parameters(), **config))
    sharded = _model()
    fully_shard(sharded[0], mesh=one_rank_mesh)
    kinds = {type(p).__name__ for p in sharded.parameters()}
    assert kinds == {"DTensor", "Parameter"}
    got = _train(sharded, case.create(sharded.parameters(), **config))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_interleaved_shards_are_refused_by_chains_that_reduce_over_rows(one_rank_mesh):
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor.placement_types import _StridedShard

    weight = nn.Parameter(DTensor.from_local(torch.ones(4, 6), one_rank_mesh, [_StridedShard(0, split_factor=2)]))
    weight.grad = DTensor.from_local(torch.ones(4, 6), one_rank_mesh, [_StridedShard(0, split_factor=2)])
    optimizer = optarena.Adafactor([weight])
    with pytest.raises(ValueError, match=r"_StridedShard.*reduces over rows or columns"):
        optimizer.step()
    assert len(optimizer.state) == 0
    # an elementwise chain steps them
    optarena.AdamW([weight]).step()


@pytest.mark.parametrize("name", NAMES)
def test_empty_local_shards(reports, name):
    result = _case(reports, f"small_shards/{name}")
    assert result["relative_change_error"] <= TOLERANCE or name in DISCONTINUOUS


def test_sophia_estimates_of_sharded_parameters_equal_the_plain_model(one_rank_mesh):
    """Sophia's Gauss-Newton-Bartlett estimate through ``hessian_closure`` with one layer sharded
    (its gradient from ``backward()``, as FSDP2 makes it): the numbers of the plain model.
    Hutchinson's estimate, which needs second derivatives, is refused with nothing changed."""
    from torch.distributed.fsdp import fully_shard

    def train(model, estimator="gnb"):
        optimizer = optarena.Sophia(model.parameters(), lr=1e-2, estimator=estimator, update_period=2, batch_size=4)
        g = torch.Generator().manual_seed(3)
        for _ in range(5):
            x, y = (
                torch.randn(8, 6, generator=g, dtype=torch.float64),
                torch.randn(8, 3, generator=g, dtype=torch.float64),
            )
            ((model(x) - y) ** 2).mean().backward()
            optimizer.step(hessian_closure=lambda x=x, y=y: ((model(x) - 0.5 * y) ** 2).mean())
            optimizer.zero_grad()
        return [(p.full_tensor() if hasattr(p, "full_tensor") else p).detach() for p in model.parameters()]

    want = train(_model())
    sharded = _model()
    fully_shard(sharded[0], mesh=one_rank_mesh)
    got = train(sharded)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    refused = _model()
    fully_shard(refused[0], mesh=one_rank_mesh)
    before = [(p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone() for p in refused.parameters()]
    with pytest.raises(ValueError, match="estimator='hutchinson'.*use estimator='gnb'"):
        train(refused, "hutchinson")
    after = [(p.full_tensor() if hasattr(p, "full_tensor") else p).detach() for p in refused.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
