"""optarena.diagnostics against PyHessian (Yao et al. 2020, https://arxiv.org/abs/1912.07145) on digits-mlp.

PyHessian 0.1 (the PyPI release) computes Hessian-vector products by double backward
through the model's ``.grad``, its top eigenvalues by power iteration with deflation, the
trace by Hutchinson's method and the density by stochastic Lanczos quadrature. It runs on
modern torch as it is, except for its density, which calls ``torch.eig`` (removed in torch
2.0): the test supplies that function, built on ``torch.linalg.eigh`` (the tridiagonal is
symmetric), without touching PyHessian's code. PyHessian puts the model it is given in eval
mode and writes its ``.grad``, so it gets a copy.
"""

import copy
import math

import pyhessian  # the test extra installs it
import pytest
import torch
from landscape_models import one_thread  # noqa: F401  (autouse)

from optarena.diagnostics import hessian_eigenvalues, hessian_trace, spectral_density
from optarena.landscape.workloads import get_workload


@pytest.fixture(scope="module")
def digits():
    """digits-mlp (64-64-10, ReLU, 4,810 parameters) at its seed-0 start, after 100 steps of SGD, on 512 samples."""
    workload = get_workload("digits-mlp")
    model = workload.make_model(0)
    inputs, targets = workload.evaluation_batch(512, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        workload.loss_fn(model(inputs), targets).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model.eval(), workload.loss_fn, (inputs, targets)


def pyhessian_of(model, loss_fn, batch):
    return pyhessian.hessian(copy.deepcopy(model), loss_fn, data=batch, cuda=False)


def test_top_eigenvalues_match_pyhessian_power_iteration(digits):
    model, loss_fn, batch = digits
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        theirs, _ = pyhessian_of(model, loss_fn, batch).eigenvalues(maxIter=1000, tol=1e-6, top_n=2)
    ours = hessian_eigenvalues(model, loss_fn, batch, k=2)
    # PyHessian stops when an eigenvalue changes by less than 1e-6 relative between iterations; its
    # error is that times about 1 / (1 - (lambda_2 / lambda_1)^2), and both run in float32.
    assert ours.tolist() == pytest.approx(theirs, rel=1e-4)


def test_trace_matches_pyhessian_hutchinson_within_its_standard_error(digits):
    model, loss_fn, batch = digits
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        samples = pyhessian_of(model, loss_fn, batch).trace(maxIter=100, tol=0.0)
    their_mean = sum(samples) / len(samples)
    their_error = torch.tensor(samples).std().item() / math.sqrt(len(samples))
    exact = hessian_trace(model, loss_fn, batch, exact=True).value
    assert abs(their_mean - exact) < 4 * their_error
    ours = hessian_trace(model, loss_fn, batch, probes=100, seed=0)
    assert abs(ours.value - exact) < 4 * ours.standard_error
    # Seeded alike, both draw their signs from torch's CPU generator in the same order (probe by probe,
    # parameter by parameter): the same probes, so the same z^T H z up to float32 rounding.
    torch.testing.assert_close(ours.samples, torch.tensor(samples, dtype=torch.float64), rtol=1e-4, atol=1e-4)
    assert ours.standard_error == pytest.approx(their_error, rel=1e-4)


def _eig(matrix, eigenvectors=False):
    """``torch.eig`` as torch 1.x had it, for a symmetric matrix: ``(n, 2)`` real and imaginary parts, vectors."""
    values, vectors = torch.linalg.eigh(matrix)
    return torch.stack([values, torch.zeros_like(values)], dim=1), vectors


def test_density_support_matches_pyhessian_slq(digits, monkeypatch):
    model, loss_fn, batch = digits
    monkeypatch.setattr(torch, "eig", _eig, raising=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        nodes, weights = pyhessian_of(model, loss_fn, batch).density(iter=60, n_v=1)
    ours = spectral_density(model, loss_fn, batch, steps=60, probes=1)
    top = float(hessian_eigenvalues(model, loss_fn, batch)[0])
    # Sixty Lanczos steps resolve the extreme eigenvalue in both (the outer nodes converge first).
    assert max(nodes[0]) == pytest.approx(top, rel=1e-3)
    assert float(ours.nodes[0].max()) == pytest.approx(top, rel=1e-3)
    assert sum(weights[0]) == pytest.approx(1.0, abs=1e-4) and float(ours.weights[0].sum()) == pytest.approx(1.0)
    # The same spectral measure seen from two probes: the share of weight on the outliers (above a tenth of
    # the top eigenvalue) agrees to within what one probe's randomness allows.
    theirs_outer = sum(w for t, w in zip(nodes[0], weights[0]) if t > 0.1 * top)
    ours_outer = float(ours.weights[0][ours.nodes[0] > 0.1 * top].sum())
    assert ours_outer == pytest.approx(theirs_outer, abs=0.05)
