"""Train a small transformer-style MLP sharded with FSDP2, with any optarena optimizer.

Run on CPU (gloo) or GPUs (nccl), one process per rank::

    torchrun --nproc_per_node 2 examples/fsdp2_train.py --optimizer lamb --steps 20
    torchrun --nproc_per_node 2 examples/fsdp2_train.py --optimizer adamw --checkpoint /tmp/ckpt

Nothing optimizer-specific is needed: build the optimizer over the sharded model's parameters
as you would over a plain model. Elementwise optimizers step each rank's shards on their own;
optimizers with per-tensor quantities (LAMB's trust ratios, Adafactor's factored moments)
complete them across ranks, so the run follows the same numbers as one process on the whole
batch (docs/distributed.md). ``--checkpoint`` saves model and optimizer with
torch.distributed.checkpoint after half the steps and resumes from it in fresh objects.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import optarena


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.relu(self.up(self.norm(x))))


def build(width: int, depth: int, mesh) -> nn.Module:
    torch.manual_seed(0)  # the same initial weights on every rank
    model = nn.Sequential(*[Block(width) for _ in range(depth)], nn.Linear(width, 1))
    for block in model[:-1]:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def batch(step: int, size: int, width: int, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of a global batch: inputs and the outputs of a fixed random teacher."""
    teacher = torch.randn(width, 1, generator=torch.Generator().manual_seed(12345)) / width**0.5
    g = torch.Generator().manual_seed(step)
    x = torch.randn(size, width, generator=g)
    y = torch.tanh(x @ teacher)
    return x.chunk(world)[rank], y.chunk(world)[rank]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="adamw", help="a registered optimizer (optarena list)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (the optimizer's default if omitted)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64, help="global batch, split over the ranks")
    parser.add_argument("--checkpoint", default=None, help="a folder: save at half the steps, then resume from it")
    args = parser.parse_args()

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = "cuda" if backend == "nccl" else "cpu"
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    mesh = init_device_mesh(device, (world,))
    torch.set_default_device(device)

    hyper = {} if args.lr is None else {"lr": args.lr}
    model = build(args.width, args.depth, mesh)
    optimizer = optarena.create(args.optimizer, model.parameters(), **hyper)
    start = 0
    for step in range(args.steps):
        if args.checkpoint and step == args.steps // 2:
            state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}
            dcp.save(state, checkpoint_id=args.checkpoint)
            # resume in new objects, as a restarted job would
            model = build(args.width, args.depth, mesh)
            optimizer = optarena.create(args.optimizer, model.parameters(), **hyper)
            state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}
            dcp.load(state, checkpoint_id=args.checkpoint)
            set_model_state_dict(model, state["model"])
            set_optimizer_state_dict(model, optimizer, state["optim"])
            start = step
            if rank == 0:
                print(f"step {step}: saved and resumed from {args.checkpoint}")
        x, y = batch(step, args.batch, args.width, rank, world)
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        total = loss.detach().clone()
        dist.all_reduce(total)
        if rank == 0 and (step % 5 == 0 or step == args.steps - 1):
            print(f"step {step:3d}  loss {float(total) / world:.5f}")
    if rank == 0:
        print(f"done: {args.optimizer} on {world} ranks ({backend}), resumed at step {start}" if start else "done")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
