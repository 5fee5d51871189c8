"""Fitting Gaussian mixtures by EM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spin_diff.priors.em import fit_gmm, gmm_log_likelihood
from spin_diff.priors.gmm import GMMParams


def known_mixture() -> GMMParams:
    """Three well separated, correlated components in 5-D with unequal weights."""
    rng = np.random.default_rng(42)
    means = np.array([[0.0, 0, 0, 0, 0], [4.0, 4, 0, -2, 1], [-4.0, 3, 3, 2, -3]])
    covars = []
    for scale in (0.5, 1.0, 0.3):
        a = rng.normal(size=(5, 5))
        q, _ = np.linalg.qr(a)
        covars.append(scale * q @ np.diag([1.0, 0.8, 0.5, 0.3, 0.2]) @ q.T)
    return GMMParams(means, np.stack(covars), np.array([0.5, 0.3, 0.2]))


def draw(params: GMMParams, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.choice(params.num_components, size=n, p=params.weights)
    chol = np.linalg.cholesky(params.covars)
    noise = np.einsum("nij,nj->ni", chol[labels], rng.normal(size=(n, params.dim)))
    return params.means[labels] + noise


def test_em_recovers_a_known_mixture():
    truth = known_mixture()
    n = 6000
    fitted = fit_gmm(draw(truth, n, seed=0), components=3, iterations=200, seed=0)
    # Match components by their means (the order is arbitrary).
    order = [int(np.argmin(np.linalg.norm(fitted.means - m, axis=1))) for m in truth.means]
    assert sorted(order) == [0, 1, 2]
    for k, j in enumerate(order):
        n_k = truth.weights[k] * n
        # Sampling tolerances: ~4 standard errors of a weight, a mean, a covariance entry.
        assert abs(fitted.weights[j] - truth.weights[k]) < 4 * np.sqrt(truth.weights[k] * (1 - truth.weights[k]) / n)
        mean_se = np.sqrt(np.diag(truth.covars[k]) / n_k)
        np.testing.assert_array_less(np.abs(fitted.means[j] - truth.means[k]), 4 * mean_se + 1e-3)
        variances = np.diag(truth.covars[k])
        cov_se = np.sqrt((truth.covars[k] ** 2 + np.outer(variances, variances)) / n_k)
        np.testing.assert_array_less(np.abs(fitted.covars[j] - truth.covars[k]), 4 * cov_se + 2e-4)
    # The fit explains held-out data as well as the truth does.
    test = draw(truth, 2000, seed=1)
    assert gmm_log_likelihood(test, fitted).mean() > gmm_log_likelihood(test, truth).mean() - 0.02


def test_em_is_deterministic_and_accepts_tensors():
    samples = draw(known_mixture(), 600, seed=3)
    a = fit_gmm(samples, components=3, iterations=20, seed=5)
    b = fit_gmm(torch.as_tensor(samples, dtype=torch.float32), components=3, iterations=20, seed=5)
    np.testing.assert_allclose(a.means, b.means, atol=1e-4)
    c = fit_gmm(samples, components=3, iterations=20, seed=5)
    np.testing.assert_array_equal(a.covars, c.covars)


def test_em_output_is_a_valid_mixture_even_with_redundant_components():
    samples = draw(known_mixture(), 400, seed=4)
    fitted = fit_gmm(samples, components=8, iterations=30, seed=0)
    assert fitted.means.shape == (8, 5) and fitted.covars.shape == (8, 5, 5)
    assert np.isclose(fitted.weights.sum(), 1.0) and np.all(fitted.weights > 0)
    assert np.all(np.linalg.eigvalsh(fitted.covars) > 0)


@pytest.mark.parametrize(
    "samples, message",
    [(np.zeros((5, 3)), "at least 8 samples"), (np.zeros(10), r"\(N, D\)"), (np.full((20, 2), np.nan), "NaN")],
)
def test_bad_samples(samples, message):
    with pytest.raises(ValueError, match=message):
        fit_gmm(samples, components=8)
