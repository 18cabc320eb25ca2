"""Step time and collectives per step of optimizers on parameters sharded with FSDP2.

Every rank holds its dim-0 shards of the benchmark's parameter sets (optarena.bench.params:
``transformer`` is 41.9M parameters in 157 tensors) as ``DTensor`` objects with fixed random
gradients, and times ``optimizer.step()`` alone (no forward or backward), against
``torch.optim.AdamW(foreach=True)`` on the same parameters, in interleaved rounds. Run with
one process per rank::

    torchrun --nproc_per_node 2 benchmarks/sharded_step.py --params transformer --threads 1
    torchrun --nproc_per_node 2 benchmarks/sharded_step.py --optimizers adamw,lamb --params small

Rank 0 prints one row per optimizer: the median ms per step over the rounds, the ratio to
torch's AdamW, and the collectives one step issues (counted by torch's CommDebugMode; a
collective is one call, whatever its size).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import distribute_tensor
from torch.distributed.tensor.debug import CommDebugMode

import optarena
from optarena.bench.params import make_param_set

DEFAULT = "adamw,adamw-eager,sgd,adam,lamb,lars,adafactor,ranger,rangerlars,lookahead"


def sharded_params(preset: str, mesh) -> list[nn.Parameter]:
    """The preset's parameters, each in its own FSDP2 unit (dim-0 shards), gradients set."""
    values = make_param_set(preset)
    holder = nn.Module()
    holder.params = nn.ParameterList([nn.Parameter(v.clone()) for v in values.values])
    fully_shard(holder, mesh=mesh)
    params = list(holder.parameters())
    for p, grad in zip(params, values.grads):
        p.grad = distribute_tensor(grad, mesh, p.placements)
    return params


def build(name: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if name == "torch-adamw":
        return torch.optim.AdamW(params, lr=1e-3, foreach=True)
    if name.endswith("-eager"):
        return optarena.create(name.removesuffix("-eager"), params, fused=False)
    defaults = {"lars": {"lr": 0.1}, "sgd": {"lr": 0.01}}
    return optarena.create(name, params, **defaults.get(name, {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="transformer", help="a parameter set of optarena.bench.params")
    parser.add_argument("--optimizers", default=DEFAULT, help="registry names; NAME-eager for fused=False")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per rank")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    names = ["torch-adamw", *[n.strip() for n in args.optimizers.split(",") if n.strip()]]
    runs = {}
    for name in names:
        params = sharded_params(args.params, mesh)
        optimizer = build(name, params)
        optimizer.step()  # state, and compilation for the fused path
        with CommDebugMode() as comm:
            optimizer.step()
        runs[name] = (optimizer, comm.get_total_counts())
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            optimizer = runs[name][0]
            dist.barrier()
            start = time.perf_counter()
            for _ in range(args.steps):
                optimizer.step()
            dist.barrier()
            times[name].append((time.perf_counter() - start) / args.steps * 1e3)
    if rank == 0:
        base = statistics.median(times["torch-adamw"])
        elements = sum(p.numel() for p in sharded_params(args.params, mesh))
        print(f"{args.params}: {elements:,} parameters, {world} ranks (gloo), {torch.get_num_threads()} threads each")
        print(f"{'optimizer':<16}{'ms/step':>10}{'x torch AdamW':>15}{'collectives':>13}")
        for name in names:
            ms = statistics.median(times[name])
            print(f"{name:<16}{ms:>10.2f}{ms / base:>15.2f}{runs[name][1]:>13}")
    else:
        sharded_params(args.params, mesh)  # the same collectives as rank 0's count above
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
