"""Fitting a full-covariance Gaussian mixture by expectation-maximisation.

Used to build ``gmm_08.pkl``-format pose priors from pose collections (the bundled prior is
fitted to the pose sampler's output; users can fit one to AMASS or their own data). All work
is batched over components and over blocks of samples; there is no loop over samples.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from spin_diff.priors.gmm import GMMParams

__all__ = ["fit_gmm", "gmm_log_likelihood"]

log = logging.getLogger(__name__)

# Rows per block: bounds the (rows, K, D) temporaries to about 16M numbers.
_BLOCK_NUMBERS = 1 << 24


def _as_samples(samples, components: int) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(samples) if not torch.is_tensor(samples) else samples)
    x = x.detach().to(dtype=torch.float64, device="cpu")
    if x.ndim != 2:
        raise ValueError(f"samples must be (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] < components:
        raise ValueError(f"need at least {components} samples for {components} components, got {x.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("samples contain NaN or inf; drop those rows first")
    return x


def _blocks(num_rows: int, components: int, dim: int):
    size = max(1, _BLOCK_NUMBERS // max(1, components * dim))
    return [(start, min(num_rows, start + size)) for start in range(0, num_rows, size)]


def _log_densities(x: torch.Tensor, means: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """x (N, D), means (K, D), chol (K, D, D) lower Cholesky factors -> (N, K) log N(x | mu_k, Sigma_k)."""
    dim = x.shape[1]
    diff = (x[:, None, :] - means).transpose(0, 1)  # (K, N, D)
    whitened = torch.linalg.solve_triangular(chol, diff.transpose(1, 2), upper=False)  # (K, D, N)
    half_logdet = torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)  # (K,)
    return (-0.5 * whitened.square().sum(1) - half_logdet[:, None] - 0.5 * dim * math.log(2 * math.pi)).T


def _statistics(x: torch.Tensor, resp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (N, D), resp (N, K) -> counts (K,), sums (K, D), outer-product sums (K, D, D)."""
    counts = resp.sum(0)
    sums = resp.T @ x
    outer = torch.einsum("nk,nd,ne->kde", resp, x, x)
    return counts, sums, outer


def _maximise(
    counts: torch.Tensor, sums: torch.Tensor, outer: torch.Tensor, num_rows: int, reg_covar: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sufficient statistics -> weights (K,), means (K, D), covariances (K, D, D)."""
    dim = sums.shape[1]
    safe = counts.clamp_min(1e-10)
    means = sums / safe[:, None]
    covars = outer / safe[:, None, None] - means[:, :, None] * means[:, None, :]
    covars = 0.5 * (covars + covars.transpose(1, 2)) + reg_covar * torch.eye(dim, dtype=covars.dtype)
    weights = (counts + 1e-10) / (num_rows + 1e-10 * counts.numel())
    return weights, means, covars


def _kmeans_pp(x: torch.Tensor, components: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: (N, D) -> (K, D) centres, each drawn with probability ~ squared distance."""
    first = torch.randint(x.shape[0], (1,), generator=generator)
    centres = [x[first[0]]]
    nearest = (x - centres[0]).square().sum(1)
    for _ in range(components - 1):  # K draws, each vectorised over samples
        total = nearest.sum()
        probs = nearest / total if total > 0 else torch.full_like(nearest, 1.0 / nearest.numel())
        pick = torch.multinomial(probs, 1, generator=generator)[0]
        centres.append(x[pick])
        nearest = torch.minimum(nearest, (x - x[pick]).square().sum(1))
    return torch.stack(centres)


def _hard_assign(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N,) index of the nearest centre."""
    return torch.cdist(x, centres).argmin(1)


def fit_gmm(
    samples,
    components: int = 8,
    iterations: int = 200,
    tol: float = 1e-6,
    reg_covar: float = 1e-4,
    seed: int = 0,
    kmeans_iterations: int = 10,
) -> GMMParams:
    """Fit a full-covariance Gaussian mixture by EM.

    Initialisation: k-means++ seeding, a few Lloyd iterations, then each cluster's weight, mean
    and covariance. EM stops after ``iterations`` or when the mean log-likelihood per sample
    changes by less than ``tol`` relative to its magnitude.

    Args:
        samples: (N, D) array or tensor, finite.
        components: K.
        reg_covar: added to every covariance's diagonal (keeps them positive definite).
        seed: seeds the k-means++ draws; the same inputs and seed give the same mixture.
    Returns:
        GMMParams with means (K, D), covars (K, D, D), weights (K,), float64.
    """
    if components < 1:
        raise ValueError(f"components must be >= 1, got {components}")
    x = _as_samples(samples, components)
    num_rows, dim = x.shape
    offset = x.mean(0)  # centring keeps the second moments well conditioned
    x = x - offset
    blocks = _blocks(num_rows, components, dim)
    generator = torch.Generator().manual_seed(int(seed))

    centres = _kmeans_pp(x, components, generator)
    for _ in range(kmeans_iterations):
        labels = _hard_assign(x, centres)
        one_hot = torch.nn.functional.one_hot(labels, components).to(x.dtype)
        counts = one_hot.sum(0)
        # An empty cluster keeps its centre.
        centres = torch.where(counts[:, None] > 0, (one_hot.T @ x) / counts.clamp_min(1)[:, None], centres)
    labels = _hard_assign(x, centres)
    resp = torch.nn.functional.one_hot(labels, components).to(x.dtype)
    weights, means, covars = _maximise(*_statistics(x, resp), num_rows, reg_covar)

    previous = -math.inf
    mean_ll = -math.inf
    for iteration in range(1, iterations + 1):
        chol = torch.linalg.cholesky(covars)
        log_weights = torch.log(weights)
        counts = torch.zeros(components, dtype=x.dtype)
        sums = torch.zeros(components, dim, dtype=x.dtype)
        outer = torch.zeros(components, dim, dim, dtype=x.dtype)
        total_ll = x.new_zeros(())
        for start, stop in blocks:
            block = x[start:stop]
            joint = _log_densities(block, means, chol) + log_weights  # (n, K)
            block_ll = torch.logsumexp(joint, dim=1)
            resp = torch.exp(joint - block_ll[:, None])
            block_counts, block_sums, block_outer = _statistics(block, resp)
            counts += block_counts
            sums += block_sums
            outer += block_outer
            total_ll += block_ll.sum()
        mean_ll = float(total_ll) / num_rows
        weights, means, covars = _maximise(counts, sums, outer, num_rows, reg_covar)
        if abs(mean_ll - previous) <= tol * max(abs(mean_ll), 1e-12):
            log.info("EM converged after %d iterations, mean log-likelihood %.4f", iteration, mean_ll)
            break
        previous = mean_ll
    else:
        log.info("EM stopped after %d iterations, mean log-likelihood %.4f", iterations, mean_ll)

    return GMMParams(
        means=(means + offset).numpy(),
        covars=covars.numpy(),
        weights=(weights / weights.sum()).numpy(),
    ).validate("fitted mixture")


def gmm_log_likelihood(samples, params: GMMParams) -> np.ndarray:
    """(N, D) samples -> (N,) log-density under the mixture (the full sum, not the max)."""
    x = _as_samples(samples, 1)
    means = torch.as_tensor(params.means, dtype=torch.float64)
    chol = torch.linalg.cholesky(torch.as_tensor(params.covars, dtype=torch.float64))
    log_weights = torch.log(torch.as_tensor(params.weights, dtype=torch.float64))
    out = [
        torch.logsumexp(_log_densities(x[a:b], means, chol) + log_weights, dim=1)
        for a, b in _blocks(x.shape[0], params.num_components, params.dim)
    ]
    return torch.cat(out).numpy()
