"""Hessian-vector products, top eigenvalues, trace and spectral density against an explicitly formed Hessian."""

import copy
import math

import pytest
import torch
from hessian_models import classification_batch, explicit_hessian, mlp, tiny_cnn
from landscape_models import one_thread  # noqa: F401  (autouse)
from torch import nn

from optarena.diagnostics import (
    HessianOperator,
    broadened_density,
    hessian_eigenpairs,
    hessian_eigenvalues,
    hessian_trace,
    hessian_vector_product,
    spectral_density,
)
from optarena.diagnostics.density import quadrature
from optarena.diagnostics.krylov import lanczos_tridiagonal
from optarena.diagnostics.trace import rademacher

loss_fn = nn.functional.cross_entropy


def mlp_case():
    return mlp(), classification_batch()


def cnn_case(train: bool):
    model = tiny_cnn()
    model.train(train)
    return model, classification_batch(samples=24, shape=(1, 6, 6), classes=4)


CASES = {
    "mlp": mlp_case,
    "cnn-eval": lambda: cnn_case(False),
    "cnn-train": lambda: cnn_case(True),  # batch norm on the batch's statistics
}


@pytest.fixture(params=list(CASES), scope="module")
def case(request):
    model, batch = CASES[request.param]()
    return model, batch, explicit_hessian(model, loss_fn, batch)


def test_products_equal_the_explicit_hessian_times_the_vectors(case):
    model, batch, H = case
    vectors = torch.randn(7, H.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for chunk_size in (1, 3, 64):  # chunking changes memory, not numbers
        products = hessian_vector_product(model, loss_fn, batch, vectors, chunk_size=chunk_size)
        torch.testing.assert_close(products, vectors @ H, rtol=0, atol=1e-12)
    single = hessian_vector_product(model, loss_fn, batch, vectors[0])
    torch.testing.assert_close(single, H @ vectors[0], rtol=0, atol=1e-12)


def test_top_eigenvalues_match_the_explicit_spectrum_to_1e_8(case):
    model, batch, H = case
    exact = torch.linalg.eigvalsh(H).flip(0)
    scale = float(exact.abs().max())
    lanczos = hessian_eigenpairs(model, loss_fn, batch, k=4, tol=1e-10)
    assert lanczos.converged
    assert lanczos.eigenvalues.dtype == torch.float64 and lanczos.eigenvalues.shape == (4,)
    assert torch.all(lanczos.eigenvalues[:-1] >= lanczos.eigenvalues[1:])
    torch.testing.assert_close(lanczos.eigenvalues, exact[:4], rtol=0, atol=1e-8 * scale)
    # The vectors are unit eigenvectors: H u = lambda u.
    residual = lanczos.eigenvectors @ H - lanczos.eigenvalues[:, None] * lanczos.eigenvectors
    assert float(residual.abs().max()) < 1e-8 * scale
    torch.testing.assert_close(lanczos.eigenvectors.norm(dim=1), torch.ones(4, dtype=torch.float64))

    # Power iteration finds the largest magnitudes (the train-mode CNN's second is negative), descending.
    # Two at once, unless the third magnitude is so close to the second that it would take thousands of steps.
    magnitudes = exact.abs().sort(descending=True).values
    k = 2 if magnitudes[2] < 0.95 * magnitudes[1] else 1
    largest = exact[exact.abs().argsort(descending=True)[:k]].sort(descending=True).values
    power = hessian_eigenpairs(model, loss_fn, batch, k=k, method="power", tol=1e-10, max_steps=2000)
    assert power.converged
    torch.testing.assert_close(power.eigenvalues, largest, rtol=0, atol=1e-8 * scale)

    top = hessian_eigenvalues(model, loss_fn, batch)
    assert top.shape == (1,)
    assert float(top[0]) == pytest.approx(float(exact[0]), rel=1e-9)


def test_the_exact_trace_is_the_diagonal_sum(case):
    model, batch, H = case
    result = hessian_trace(model, loss_fn, batch, exact=True, chunk_size=16)
    assert result.value == pytest.approx(float(H.trace()), rel=0, abs=1e-8 * float(H.abs().max()))
    assert result.standard_error == 0 and result.probes == H.shape[0]


def test_hutchinson_is_unbiased_within_its_variance_and_reports_it():
    model, batch = mlp_case()
    H = explicit_hessian(model, loss_fn, batch)
    n, probes = H.shape[0], 400
    # Var(z^T H z) for independent signs: 2 (||H||_F^2 - sum_i H_ii^2).
    sd = math.sqrt(2 * (float((H**2).sum()) - float((H.diagonal() ** 2).sum())))
    result = hessian_trace(model, loss_fn, batch, probes=probes, seed=5)
    # Fixed seed; 4 standard errors: a biased estimator (or a wrong sign, a missing factor) fails.
    assert abs(result.value - float(H.trace())) < 4 * sd / math.sqrt(probes)
    # The reported standard error estimates sd / sqrt(probes) (the sample sd of 400 draws: within 25%).
    assert 0.75 < result.standard_error / (sd / math.sqrt(probes)) < 1.25
    assert float(result) == result.value

    # Each sample is exactly z^T H z for the seeded probes.
    few = hessian_trace(model, loss_fn, batch, probes=20, seed=5, chunk_size=20)
    z = rademacher(20, n, torch.Generator().manual_seed(5), torch.float64, torch.device("cpu"))
    torch.testing.assert_close(few.samples, torch.einsum("pi,ij,pj->p", z, H, z), rtol=0, atol=1e-10)


def test_quadrature_of_a_full_lanczos_run_is_the_exact_broadened_density(case):
    model, batch, H = case
    n = H.shape[0]
    eigenvalues, vectors = torch.linalg.eigh(H)
    result = spectral_density(model, loss_fn, batch, steps=n, probes=1, seed=2, grid=400)
    probe = rademacher(1, n, torch.Generator().manual_seed(2), torch.float64, torch.device("cpu"))[0]
    probe = probe / probe.norm()
    # One probe, every step: the density is sum_j (u_j . q)^2 N(t; lambda_j, sigma^2), exactly.
    expected = broadened_density([eigenvalues], [(vectors.T @ probe) ** 2], result.grid, result.sigma)
    assert float((result.density - expected).abs().max()) < 1e-8 * float(expected.max())
    assert float(result.weights[0].sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(torch.trapezoid(result.density, result.grid)) == pytest.approx(1.0, abs=1e-3)


def test_a_short_lanczos_run_is_a_gauss_quadrature_exact_to_degree_2m_minus_1():
    model, batch = mlp_case()
    H = explicit_hessian(model, loss_fn, batch)
    n, m = H.shape[0], 8
    scale = float(torch.linalg.eigvalsh(H).abs().max())
    starts = torch.randn(3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    runs = lanczos_tridiagonal(HessianOperator(model, loss_fn, batch), starts, m)
    for start, (alphas, betas) in zip(starts, runs):
        assert len(alphas) == m
        nodes, weights = quadrature(alphas, betas)
        q = start / start.norm()
        power = q.clone()
        for degree in range(2 * m):
            moment = float((weights * (nodes / scale) ** degree).sum())
            assert moment == pytest.approx(float(q @ power), abs=1e-9)
            power = (H / scale) @ power


def test_the_density_of_many_probes_approaches_the_eigenvalue_density():
    model, batch = mlp_case()
    H = explicit_hessian(model, loss_fn, batch)
    eigenvalues = torch.linalg.eigvalsh(H)
    n = H.shape[0]
    result = spectral_density(model, loss_fn, batch, steps=30, probes=40, sigma=0.02, seed=0)
    exact = broadened_density([eigenvalues], [torch.full((n,), 1.0 / n, dtype=torch.float64)], result.grid, 0.02)
    gap = float(torch.trapezoid((result.density - exact).abs(), result.grid))
    assert gap < 0.2  # L1 distance between two densities (at most 2); one probe alone is about 0.5 away
    assert len(result.nodes) == 40


def test_the_model_is_left_exactly_as_it_was():
    model, batch = cnn_case(train=True)
    model[4].weight.grad = torch.full_like(model[4].weight, 0.5)  # one parameter with a gradient, others None
    model[1].weight.requires_grad_(False)  # a frozen parameter: a constant, not a variable
    before = copy.deepcopy(model.state_dict())
    grads = {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}
    operator = HessianOperator(model, loss_fn, batch)
    assert operator.numel == sum(p.numel() for p in model.parameters() if p.requires_grad)
    hessian_eigenvalues(model, loss_fn, batch, k=2)
    hessian_trace(model, loss_fn, batch, probes=4)
    spectral_density(model, loss_fn, batch, steps=5)
    assert model.training and model[1].training
    for name, value in model.state_dict().items():  # parameters and buffers, running statistics included
        assert torch.equal(value, before[name]), name
    for name, p in model.named_parameters():
        assert (p.grad is None) == (grads[name] is None), name
        if p.grad is not None:
            assert torch.equal(p.grad, grads[name])
    assert not model[1].weight.requires_grad


def test_eval_mode_uses_the_running_statistics_and_train_mode_the_batch():
    model, batch = cnn_case(train=False)
    in_eval = hessian_eigenvalues(model, loss_fn, batch, k=1)
    model.train()
    in_train = hessian_eigenvalues(model, loss_fn, batch, k=1)
    assert not torch.allclose(in_eval, in_train, rtol=1e-3)


def test_dropout_in_train_mode_draws_the_same_masks_at_every_product():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Dropout(0.5), nn.Linear(16, 3)).double()
    batch = classification_batch()
    operator = HessianOperator(model, loss_fn, batch)
    vectors = torch.randn(4, operator.numel, dtype=torch.float64)
    state = torch.random.get_rng_state()
    together = operator(vectors)
    one_by_one = torch.stack([operator(v) for v in vectors])
    torch.testing.assert_close(together, one_by_one, rtol=0, atol=1e-12)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is untouched
    # A symmetric operator: u^T H v = v^T H u.
    assert float(vectors[0] @ together[1]) == pytest.approx(float(vectors[1] @ together[0]), rel=1e-10)


def test_bad_input_is_refused_with_a_clear_message():
    model, batch = mlp_case()
    with pytest.raises(ValueError, match="k must be a whole number between 1 and"):
        hessian_eigenvalues(model, loss_fn, batch, k=0)
    with pytest.raises(ValueError, match="k must be a whole number between 1 and the operator's size 83"):
        hessian_eigenvalues(model, loss_fn, batch, k=84)
    with pytest.raises(ValueError, match="method must be one of lanczos, power"):
        hessian_eigenvalues(model, loss_fn, batch, method="arnoldi")
    with pytest.raises(ValueError, match="batch must be a pair"):
        hessian_eigenvalues(model, loss_fn, batch[0])
    with pytest.raises(ValueError, match="loss_fn must return a single number"):
        hessian_eigenvalues(model, lambda out, y: nn.functional.cross_entropy(out, y, reduction="none"), batch)
    with pytest.raises(ValueError, match="chunk_size must be a whole number >= 1"):
        hessian_trace(model, loss_fn, batch, chunk_size=0)
    with pytest.raises(ValueError, match="probes must be a whole number >= 2"):
        hessian_trace(model, loss_fn, batch, probes=1)
    with pytest.raises(ValueError, match=r"vectors must be \(numel,\) or \(m, numel\) with numel = 83"):
        HessianOperator(model, loss_fn, batch)(torch.zeros(3, dtype=torch.float64))
    frozen = mlp().requires_grad_(False)
    with pytest.raises(ValueError, match="no parameters that require gradients"):
        hessian_eigenvalues(frozen, loss_fn, batch)
    mixed = mlp()
    mixed[2].float()
    with pytest.raises(ValueError, match="must share one dtype and device"):
        hessian_eigenvalues(mixed, loss_fn, batch)
    with pytest.warns(RuntimeWarning, match="raise max_steps"):
        hessian_eigenvalues(model, loss_fn, batch, k=3, max_steps=3, tol=1e-12)
