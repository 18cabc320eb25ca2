"""One rank of the sharded-training checks (run by ``torch.distributed.run``; see test_sharded.py).

Scenarios, each writing its findings per case into ``OUT_DIR/rank{r}.json``:

- ``training``: every registered optimizer trains a small model three ways from the same start
  on the same data: in one process on the whole batch, sharded with FSDP2 (each rank half of
  the batch), and with tensor parallelism (each rank the whole batch, weights split by rows
  and by columns, a layer norm left as plain tensors in the same param group). At step 4 one
  rank's gradient holds an infinity under ``nonfinite="skip"``, so every rank must skip that
  step together. Recorded: how far the sharded parameters' total change lies from the single
  process's, and the collectives of each step.
- ``small_shards``: parameters so small that some ranks hold empty parts.
- ``scaling``: the collectives of a step do not grow with the number of tensors.
- ``half``: bf16 parameters with float32 and bfloat16 state, fed the same gradients sharded
  and whole.
- ``same_gradients``: the matrix optimizers fed the same gradients sharded and whole (float64).
- ``ddp``, ``zero``: DistributedDataParallel and ZeroRedundancyOptimizer around optarena's AdamW.
- ``refusal``: a placement no optimizer can step (``Partial``) is a ValueError on every rank.
- ``checkpoint``: a run saved with torch.distributed.checkpoint after 3 steps and resumed in a
  new model and optimizer continues bit for bit.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 sharded_worker.py OUT_DIR DTYPE [NAME ...]``
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from optimizer_table import CASES
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.distributed.tensor import DTensor, distribute_tensor
from torch.distributed.tensor.debug import CommDebugMode
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
from torch.nn.parallel import DistributedDataParallel

import optarena
from optarena.transforms.matrix import has_matrix_transform

STEPS = 7
MODES = {False: "eager", None: "default", True: "fused"}
"""fused=False, the default (fused=None: eager until compiling pays, or torch's kernel), fused=True."""
INF_STEP = 4
IN, HIDDEN, OUT, BATCH = 1024, 1026, 7, 8
"""1024 x 1026 weights: over 2**20 elements in the group, so ``fused=None`` compiles; the 7
outputs split unevenly over two ranks (FSDP2's rows; torch's tensor-parallel matmuls need even
splits)."""
SMALL_IN, SMALL_HIDDEN = 64, 66
"""The model of the optimizers with matrix transforms, which never take the compiled path of
elementwise chains (``fused=None`` does not wait for 2**20 elements): matrices small enough for
their products and eigendecompositions to take a fraction of a second."""


def matrix_chain(name: str) -> bool:
    cls = optarena.registry.lookup(name).cls
    if not hasattr(cls, "chain"):  # a wrapper (Lookahead) around a chain of its own
        return False
    chain = cls.chain()
    return has_matrix_transform(getattr(chain, "transforms", chain))


def make_model(depth: int = 1, small: bool = False) -> nn.Module:
    torch.manual_seed(0)
    n_in, n_hidden = (SMALL_IN, SMALL_HIDDEN) if small else (IN, HIDDEN)
    hidden = [m for _ in range(depth) for m in (nn.Linear(n_hidden, n_hidden), nn.ReLU())][: 2 * (depth - 1)]
    return nn.Sequential(nn.LayerNorm(n_in), nn.Linear(n_in, n_hidden), nn.ReLU(), *hidden, nn.Linear(n_hidden, OUT))


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


def shard(model: nn.Module, layout: str, mesh) -> nn.Module:
    """FSDP2 over every linear layer and the whole model, or tensor parallelism alternating
    column- and row-wise layers (the layer norm stays plain)."""
    if layout == "fsdp2":
        for layer in linear_layers(model):
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    elif layout == "tp":
        names = [name for name, m in model.named_children() if isinstance(m, nn.Linear)]
        plan = {name: ColwiseParallel() if i % 2 == 0 else RowwiseParallel() for i, name in enumerate(names)}
        parallelize_module(model, mesh, plan)
    return model


def batches(n_in: int = IN) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(BATCH, n_in, generator=g), torch.randn(BATCH, OUT, generator=g)) for _ in range(STEPS)]


def full(t: torch.Tensor) -> torch.Tensor:
    return (t.full_tensor() if isinstance(t, DTensor) else t).detach().clone()


def spoil(model: nn.Module, rank_only: int | None) -> None:
    """An infinity in one element of the first linear layer's gradient (on one rank only when
    sharded: the other ranks' parts stay finite)."""
    grad = linear_layers(model)[0].weight.grad
    part = grad._local_tensor if isinstance(grad, DTensor) else grad
    if rank_only is None or dist.get_rank() == rank_only:
        part.view(-1)[3] = float("inf")


def config_for(name: str) -> dict:
    """Default arguments, or the fewest the optimizer needs (its first configuration in the
    optimizer table), with ``nonfinite="skip"``."""
    case = next((c for c in CASES if c.name == name), None)
    return {**(case.configs[0] if case else {}), "nonfinite": "skip"}


def train(name: str, config: dict, layout: str, mesh, depth: int = 1, steps: int = STEPS) -> tuple[list, list]:
    small = matrix_chain(name)
    model = shard(make_model(depth, small), layout, mesh)
    rank, world = dist.get_rank(), dist.get_world_size()
    optimizer = optarena.create(name, model.parameters(), **config)
    collectives = []
    for step, (x, y) in enumerate(batches(SMALL_IN if small else IN)[:steps], start=1):
        if layout == "fsdp2":
            x, y = x.chunk(world)[rank], y.chunk(world)[rank]
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        if step == INF_STEP:
            spoil(model, rank_only=1 if layout != "single" else None)
        with CommDebugMode() as comm:
            optimizer.step()
        collectives.append(comm.get_total_counts())
        optimizer.zero_grad()
    return [full(p) for p in model.parameters()], collectives


def relative_change_error(start, got, want) -> float:
    """``||(got - start) - (want - start)|| / ||want - start||`` over all parameters together."""
    num = sum(float(((g.double() - w.double()) ** 2).sum()) for g, w in zip(got, want))
    den = sum(float(((w.double() - s.double()) ** 2).sum()) for s, w in zip(start, want))
    return (num / den) ** 0.5 if den > 0 else (0.0 if num == 0 else float("inf"))


def training(names: list[str], mesh) -> dict[str, Any]:
    out = {}
    for name in names:
        start = [full(p) for p in make_model(small=matrix_chain(name)).parameters()]
        for fused in (False, None, True):
            config = {**config_for(name), "fused": fused}
            want, _ = train(name, config, "single", mesh)
            for layout in ("fsdp2", "tp"):
                key = f"training/{name}-{layout}-{MODES[fused]}"
                out[key] = run_case(
                    lambda name=name, config=config, layout=layout: train(name, config, layout, mesh), start, want
                )
    return out


def run_case(make: Callable[[], tuple[list, list]], start, want) -> dict[str, Any]:
    try:
        got, collectives = make()
        result = {
            "error": None,
            "relative_change_error": relative_change_error(start, got, want),
            "per_parameter": [relative_change_error([s], [g], [w]) for s, g, w in zip(start, got, want)],
            "collectives": collectives,
        }
    except Exception as error:  # noqa: BLE001 - reported per case
        result = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
    dist.barrier()
    return result


def small_shards(names: list[str], mesh) -> dict[str, Any]:
    """A model so small that FSDP2 leaves some ranks empty parts (a 1 x 3 head: 1 row and 0
    rows), eagerly, against one process."""

    def make() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.LayerNorm(16), nn.Linear(16, 3), nn.ReLU(), nn.Linear(3, 1))

    start = [full(p) for p in make().parameters()]
    out = {}
    g = torch.Generator().manual_seed(5)
    data = [(torch.randn(8, 16, generator=g), torch.randn(8, 1, generator=g)) for _ in range(5)]
    rank, world = dist.get_rank(), dist.get_world_size()
    for name in names:
        config = {**config_for(name), "fused": False}

        def run(sharded: bool) -> tuple[list, list]:
            model = make()
            if sharded:
                for layer in (model[1], model[3]):
                    fully_shard(layer, mesh=mesh)
                fully_shard(model, mesh=mesh)
            optimizer = optarena.create(name, model.parameters(), **config)  # noqa: B023 - run is called within this iteration
            for x, y in data:
                if sharded:
                    x, y = x.chunk(world)[rank], y.chunk(world)[rank]
                ((model(x) - y) ** 2).mean().backward()
                optimizer.step()
                optimizer.zero_grad()
            return [full(p) for p in model.parameters()], []

        want, _ = run(False)
        out[f"small_shards/{name}"] = run_case(lambda: run(True), start, want)
    return out


def scaling(mesh) -> dict[str, Any]:
    """Collectives of one step with 2 and with 4 linear layers, for the optimizers whose chains
    reduce per tensor."""
    out = {}
    for case in CASES:
        if case.name == "lookahead":
            continue
        chain = optarena.registry.lookup(case.name).cls.chain()
        if all(t.elementwise for t in getattr(chain, "transforms", chain)):
            continue
        config = {**config_for(case.name), "fused": False}
        counts = {}
        for depth in (1, 3):
            for layout in ("fsdp2", "tp"):
                counts[f"{layout}-{depth}"] = train(case.name, config, layout, mesh, depth, steps=2)[1]
        out[f"scaling/{case.name}"] = counts
        dist.barrier()
    return out


def synthetic_grad(p: torch.Tensor, step: int, index: int) -> torch.Tensor:
    """The same full gradient on every rank and in one process, as a tensor shaped like ``p``."""
    shape = p.shape
    g = torch.Generator().manual_seed(1000 * step + index)
    grad = torch.randn(shape, generator=g, dtype=torch.float32)
    return grad.to(p.dtype)


def exact_values(model: nn.Module, optimizer) -> list[torch.Tensor]:
    """bf16 parameters in float32 with the rounding remainder the optimizer keeps added back."""
    inner = getattr(optimizer, "optimizer", optimizer)
    out = []
    for p in model.parameters():
        value = full(p).float()
        remainder = inner.state.get(p, {}).get("param_remainder")
        out.append(value + full(remainder).float() if remainder is not None else value)
    return out


def half(mesh) -> dict[str, Any]:
    """bf16 parameters, float32 or bfloat16 state, sharded against whole, the same gradients."""
    out = {}
    for name in ("adamw", "sgd", "lamb", "adafactor", "ranger", "lookahead"):
        for state_dtype in (None, "bfloat16"):
            config = {**config_for(name), "state_dtype": state_dtype, "fused": False}
            stored, exact = [], []
            for layout in ("single", "fsdp2"):
                model = shard(make_model().to(torch.bfloat16), layout, mesh)
                optimizer = optarena.create(name, model.parameters(), **config)
                for step in range(1, 7):
                    for i, p in enumerate(model.parameters()):
                        grad = synthetic_grad(p, step, i)
                        p.grad = (
                            distribute_tensor(grad, p.device_mesh, p.placements) if isinstance(p, DTensor) else grad
                        )
                    optimizer.step()
                stored.append([full(p) for p in model.parameters()])
                exact.append(exact_values(model, optimizer))
            start = [full(p).float() for p in make_model().to(torch.bfloat16).parameters()]
            out[f"half/{name}-{state_dtype}"] = {
                "equal": all(torch.equal(a, b) for a, b in zip(*stored)),
                "relative_change_error": relative_change_error(start, stored[1], stored[0]),
                "exact_relative_change_error": relative_change_error(start, exact[1], exact[0]),
            }
            dist.barrier()
    return out


def same_gradients(names: list[str], mesh) -> dict[str, Any]:
    """Matrix optimizers fed identical full gradients sharded and whole (no summation-order
    differences): the matrices gathered on their owner ranks must give one process's numbers."""
    out = {}
    for name in names:
        if not matrix_chain(name):
            continue
        config = {**config_for(name), "fused": False}
        start = [full(p) for p in make_model(small=True).parameters()]
        runs = {}
        for layout in ("single", "fsdp2", "tp"):
            model = shard(make_model(small=True), layout, mesh)
            optimizer = optarena.create(name, model.parameters(), **config)
            for step in range(1, 5):
                for i, p in enumerate(model.parameters()):
                    grad = synthetic_grad(p, step, i).to(torch.get_default_dtype())
                    p.grad = distribute_tensor(grad, p.device_mesh, p.placements) if isinstance(p, DTensor) else grad
                optimizer.step()
            runs[layout] = [full(p) for p in model.parameters()]
        for layout in ("fsdp2", "tp"):
            out[f"same_gradients/{name}-{layout}"] = {
                "error": None,
                "relative_change_error": relative_change_error(start, runs[layout], runs["single"]),
            }
        dist.barrier()
    return out


def data_parallel(mesh) -> dict[str, Any]:
    """DDP and ZeroRedundancyOptimizer against one process on the whole batch."""
    rank, world = dist.get_rank(), dist.get_world_size()
    start = [full(p) for p in make_model().parameters()]
    out = {}

    def run(kind: str) -> tuple[list, list]:
        model = make_model()
        if kind == "single":
            optimizer = optarena.AdamW(model.parameters(), lr=1e-2)
        else:
            model = DistributedDataParallel(model)
            if kind == "zero":
                optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=optarena.AdamW, lr=1e-2)
            else:
                optimizer = optarena.AdamW(model.parameters(), lr=1e-2)
        for x, y in batches():
            if kind != "single":
                x, y = x.chunk(world)[rank], y.chunk(world)[rank]
            ((model(x) - y) ** 2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
        return [p.detach().clone() for p in model.parameters()], []

    want, _ = run("single")
    for kind in ("ddp", "zero"):
        out[f"data_parallel/{kind}"] = run_case(lambda kind=kind: run(kind), start, want)
    return out


def checkpoint(names: list[str], mesh, folder: str) -> dict[str, Any]:
    """Save after 3 steps with torch.distributed.checkpoint, resume in new objects, compare."""
    out = {}
    rank, world = dist.get_rank(), dist.get_world_size()

    def steps(model, optimizer, data) -> None:
        for x, y in data:
            x, y = x.chunk(world)[rank], y.chunk(world)[rank]
            ((model(x) - y) ** 2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()

    for name in names:
        key = f"checkpoint/{name}"
        try:
            config = config_for(name)
            data = batches()
            model = shard(make_model(), "fsdp2", mesh)
            optimizer = optarena.create(name, model.parameters(), **config)
            steps(model, optimizer, data[:3])
            path = os.path.join(folder, name)
            dcp.save(
                {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)},
                checkpoint_id=path,
            )
            steps(model, optimizer, data[3:])
            uninterrupted = [full(p) for p in model.parameters()]

            resumed_model = shard(make_model(depth=1), "fsdp2", mesh)
            resumed = optarena.create(name, resumed_model.parameters(), **config)
            state = {
                "model": get_model_state_dict(resumed_model),
                "optim": get_optimizer_state_dict(resumed_model, resumed),
            }
            dcp.load(state, checkpoint_id=path)
            set_model_state_dict(resumed_model, state["model"])
            set_optimizer_state_dict(resumed_model, resumed, state["optim"])
            steps(resumed_model, resumed, data[3:])
            again = [full(p) for p in resumed_model.parameters()]
            out[key] = {"error": None, "equal": all(torch.equal(a, b) for a, b in zip(uninterrupted, again))}
        except Exception as error:  # noqa: BLE001 - reported per case
            out[key] = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
        dist.barrier()
    return out


def refusal(mesh) -> dict[str, Any]:
    """A parameter holding partial sums: a ValueError on every rank, nothing changed."""
    from torch.distributed.tensor.placement_types import Partial

    weight = DTensor.from_local(torch.ones(4, 3), mesh, [Partial()], run_check=False)
    param = nn.Parameter(weight)
    param.grad = DTensor.from_local(torch.ones(4, 3), mesh, [Partial()], run_check=False)
    optimizer = optarena.AdamW([param])
    try:
        optimizer.step()
        result = {"error": None}
    except ValueError as error:
        result = {"error": f"ValueError: {error}", "state_empty": len(optimizer.state) == 0}
    dist.barrier()
    out = {"refusal/partial": result}

    # an infinity in rank 1's part only: both ranks raise, naming the same parameter
    model = shard(make_model(), "fsdp2", mesh)
    optimizer = optarena.AdamW(model.parameters(), nonfinite="raise")
    x, y = batches()[0]
    ((model(x) - y) ** 2).mean().backward()
    spoil(model, rank_only=1)
    before = [full(p) for p in model.parameters()]
    try:
        optimizer.step()
        result = {"error": None}
    except FloatingPointError as error:
        result = {
            "error": f"FloatingPointError: {error}",
            "unchanged": all(torch.equal(a, full(p)) for a, p in zip(before, model.parameters())),
            "state_empty": len(optimizer.state) == 0,
        }
    dist.barrier()
    out["refusal/raise"] = result
    return out


def main() -> None:
    out_dir, dtype = sys.argv[1], getattr(torch, sys.argv[2])
    names = sys.argv[3:] or [entry.name for entry in optarena.available()]
    torch.set_default_dtype(dtype)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    results: dict[str, Any] = {}
    results.update(training(names, mesh))
    results.update(small_shards(names, mesh))
    results.update(scaling(mesh))
    results.update(half(mesh))
    results.update(same_gradients(names, mesh))
    results.update(data_parallel(mesh))
    results.update(refusal(mesh))
    folder = tempfile.mkdtemp(prefix="dcp-") if rank == 0 else ""
    shared = [folder]
    dist.broadcast_object_list(shared, src=0)
    results.update(checkpoint(["adamw", "adafactor", "lamb", "ranger"], mesh, shared[0]))
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
