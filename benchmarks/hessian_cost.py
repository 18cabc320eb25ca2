"""The cost of curvature against a gradient: one Hessian-vector product, a batch of them, the sharpness.

On the ``digits-mlp`` workload's network (64-64-10, 4,810 parameters) after 100 full-batch
SGD steps, on ``--samples`` training examples, each timed as the median of ``--repeats``
interleaved rounds:

- ``gradient``: forward and backward with autograd (``loss.backward()``), the unit of cost;
- ``HVP``: one product of :class:`optarena.diagnostics.HessianOperator` (forward-over-reverse
  with torch.func);
- ``HVP, batched``: ``--batch`` vectors in one vmapped call, per vector;
- ``HVP, double backward``: ``torch.autograd.grad`` twice (``create_graph=True``), as
  PyHessian computes it, for comparison;
- ``sharpness``: ``hessian_eigenvalues(k=1)`` with its defaults (Lanczos, tol 1e-6), with the
  number of products it took.

Example::

    python benchmarks/hessian_cost.py --samples 512,1438 --repeats 7
    python benchmarks/hessian_cost.py --device cuda --samples 1438
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from optarena.diagnostics import HessianOperator, hessian_eigenpairs
from optarena.landscape.workloads import get_workload


def _ints(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


def _timed(function: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def measure(samples: int, repeats: int, batch: int, device: torch.device) -> list[tuple[str, float, str]]:
    workload = get_workload("digits-mlp")
    model = workload.make_model(0).to(device)
    inputs, targets = (t.to(device) for t in workload.evaluation_batch(samples, seed=0))
    loss_fn = workload.loss_fn
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        loss_fn(model(inputs), targets).backward()
        optimizer.step()
    parameters = list(model.parameters())
    operator = HessianOperator(model, loss_fn, (inputs, targets))
    generator = torch.Generator().manual_seed(0)
    vector = torch.randn(operator.numel, generator=generator).to(device)
    vectors = torch.randn(batch, operator.numel, generator=generator).to(device)
    pieces = [piece.reshape(p.shape) for piece, p in zip(vector.split([p.numel() for p in parameters]), parameters)]
    steps: list[int] = []

    def gradient() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model(inputs), targets).backward()

    def double_backward() -> None:
        grads = torch.autograd.grad(loss_fn(model(inputs), targets), parameters, create_graph=True)
        torch.autograd.grad(grads, parameters, grad_outputs=pieces)

    def batched() -> None:
        operator(vectors)

    def sharpness() -> None:
        steps.append(hessian_eigenpairs(model, loss_fn, (inputs, targets), k=1).steps)

    methods = {
        "gradient": gradient,
        "HVP": lambda: operator(vector),
        f"HVP, batched ({batch} per call), per vector": batched,
        "HVP, double backward": double_backward,
        "sharpness: hessian_eigenvalues(k=1)": sharpness,
    }
    for method in methods.values():  # warm-up (first use of the jvp decompositions, allocations)
        method()
    steps.clear()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, method in methods.items():
            times[name].append(_timed(method, device))
    model.zero_grad(set_to_none=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    medians[f"HVP, batched ({batch} per call), per vector"] /= batch
    unit = medians["gradient"]
    rows = []
    for name, seconds in medians.items():
        note = f"{statistics.median(steps):.0f} products" if name.startswith("sharpness") else ""
        rows.append((name, seconds, f"{seconds / unit:6.1f} x gradient" + (f", {note}" if note else "")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=_ints, default=[512, 1438], help="batch sizes (default 512,1438)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds; the median is reported (default 7)")
    parser.add_argument("--batch", type=int, default=16, help="vectors per batched HVP call (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"digits-mlp (4,810 parameters), torch {torch.__version__}, {where}; median of {args.repeats} rounds")
    for samples in args.samples:
        print(f"\n{samples} samples")
        for name, seconds, relative in measure(samples, args.repeats, args.batch, device):
            print(f"  {name:<44} {seconds * 1e3:9.3f} ms   {relative}")


if __name__ == "__main__":
    main()
