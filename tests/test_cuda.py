"""Every optimizer on a CUDA device: the same numbers as on the CPU, on each path.

Skipped where torch sees no CUDA device. Each registered optimizer steps the same start
with the same gradients (:mod:`optarena.bench.agreement`) on the GPU, eager and fused
(compiled, or torch's own fused kernel where the chain is exactly one), and is held to the
CPU in float64; bf16 parameters are held to the CPU in bf16. SGD, Adam, AdamW and Adagrad
on float32 parameters must step through torch's fused CUDA kernels and give their numbers.
"""

from __future__ import annotations

import pytest
import torch

import optarena
from optarena.bench.agreement import NEEDS_A_MODEL, case_for, deviation
from optarena.optim.torch_kernels import has_kernel
from optarena.registry import available

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

NAMES = [entry.name for entry in available() if entry.name not in NEEDS_A_MODEL]

FLOAT32_TOLERANCE = 2e-4
"""float32 on the GPU against float64 on the CPU after 5 steps; the CPU's own float32 lands
at 1e-7 to 9e-5 (LARS, whose steps are small next to the weights)."""
LOOSER = {
    "prodigy": 1e-3,  # the distance estimate d compounds rounding (2.5e-4 on the CPU in float32)
    "dadapt_adam": 1e-3,
    "shampoo": 1e-3,  # inverse roots of small statistics (5.6e-5 on the CPU in float32)
    "soap": 1e-3,
}
BF16_NEWTON_SCHULZ = {"muon": 5e-2, "muon_adamw": 5e-2}
"""Muon orthogonalises in bf16 by default, as torch.optim.Muon does: compiled and eager round
differently (1e-2 on the CPU), and the GPU's bf16 products differently again (2.4e-4 eager)."""
BF16_TOLERANCE = 3e-2
"""bf16 parameters (float32 state) on the GPU against bf16 on the CPU: a few last-place
differences of the stored weights (0 on the CPU, where both paths round alike)."""


@pytest.mark.parametrize("fused", [False, True], ids=["eager", "fused"])
@pytest.mark.parametrize("name", NAMES)
def test_float32_on_the_gpu_matches_float64_on_the_cpu(name, fused):
    value = deviation(name, "cuda", torch.float32, fused, **case_for(name))
    tolerance = max(LOOSER.get(name, FLOAT32_TOLERANCE), BF16_NEWTON_SCHULZ.get(name, 0.0))
    assert value <= tolerance, f"{name} fused={fused}: {value:.3g} from the CPU's float64 (allowed {tolerance:g})"


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("shampoo", "soap")])
def test_bf16_parameters_on_the_gpu_match_bf16_on_the_cpu(name):
    value = deviation(name, "cuda", torch.bfloat16, True, reference_dtype=torch.bfloat16)
    tolerance = max(BF16_TOLERANCE, 2 * BF16_NEWTON_SCHULZ.get(name, 0.0))
    assert value <= tolerance, f"{name}: {value:.3g} from the CPU's bf16 (allowed {tolerance:g})"


TORCH_KERNELS = {
    "sgd": ("SGD", {"lr": 0.1, "momentum": 0.9}),
    "adam": ("Adam", {"lr": 1e-3}),
    "adamw": ("AdamW", {"lr": 1e-3, "weight_decay": 0.01}),
    "adagrad": ("Adagrad", {"lr": 0.1}),
}


@pytest.mark.parametrize("name", sorted(TORCH_KERNELS))
def test_torch_algorithms_step_through_torch_fused_cuda_kernels(name):
    """float32 only: bf16 parameters keep a rounding remainder, which torch's kernels do not,
    so they take the compiled path."""
    dtype = torch.float32
    cls, settings = TORCH_KERNELS[name]
    generator = torch.Generator().manual_seed(1)
    start = [torch.randn(shape, generator=generator) for shape in ((64, 48), (48,), (7,))]
    grads = [[torch.randn_like(value) for value in start] for _ in range(4)]

    def run(make):
        params = [torch.nn.Parameter(value.to("cuda", dtype)) for value in start]
        optimizer = make(params)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g.to("cuda", dtype)
            optimizer.step()
        return optimizer, params

    ours, mine = run(lambda params: optarena.create(name, params, fused=True, **settings))
    backends = {row["backend"] for row in ours.explain()}
    if not has_kernel(f"_fused_{cls.lower()}_", "cuda"):  # torch's Adagrad kernel is for the CPU only
        assert backends == {"compiled"}, backends
        return
    assert backends == {f"torch._fused_{cls.lower()}_"}, backends
    try:
        _, theirs = run(lambda params: getattr(torch.optim, cls)(params, fused=True, **settings))
        exact = {"rtol": 0, "atol": 0}
    except RuntimeError:  # torch.optim refuses a kernel its build has (Adagrad's, torch 2.11)
        _, theirs = run(lambda params: getattr(torch.optim, cls)(params, foreach=True, **settings))
        exact = {}
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b, **exact)


def test_fused_none_on_the_gpu_steps_eagerly_or_through_torch_kernels():
    params = [torch.nn.Parameter(torch.randn(1 << 20, device="cuda"))]
    params[0].grad = torch.randn_like(params[0])
    (row,) = optarena.create("lion", params).explain()
    assert row["backend"] == "eager" and "fused=None on cuda" in row["reason"]
    (row,) = optarena.create("adamw", params).explain()
    assert row["backend"] == "torch._fused_adamw_"


def test_kfac_on_the_gpu_matches_the_cpu():
    def run(device):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(device)
        optimizer = optarena.KFAC(model, lr=0.05, damping=1e-2)
        generator = torch.Generator().manual_seed(2)
        for _ in range(6):
            x = torch.randn(16, 6, generator=generator).to(device)
            y = torch.randn(16, 3, generator=generator).to(device)
            optimizer.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            optimizer.step()
        return torch.cat([p.detach().cpu().flatten() for p in model.parameters()])

    torch.testing.assert_close(run("cuda"), run("cpu"), rtol=1e-4, atol=1e-5)
