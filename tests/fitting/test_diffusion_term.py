"""The diffusion_pose term: direction of its gradient, its target's life cycle, batch isolation."""

import copy
import math

import torch
from torch import nn

from spin_diff.diffusion.config import DiffusionFitConfig
from spin_diff.diffusion.model import DiffusionPrior
from spin_diff.fitting.diffusion_term import DiffusionPoseTerm, score_distillation_loss
from spin_diff.fitting.terms import FitState, TermContext, build_term


class GaussianMixtureDenoiser(nn.Module):
    """The exact noise predictor of an isotropic 2-D Gaussian mixture: eps = -sqrt(1-ab) score_t."""

    def __init__(self, alpha_bars, means, sigma, weights):
        super().__init__()
        self.alpha_bars, self.means, self.sigma, self.weights = alpha_bars, means, sigma, weights

    def score(self, x, ab):
        ab = ab.reshape(-1, 1, 1)
        centres = ab.sqrt() * self.means[None]  # (B, K, 2)
        variance = ab * self.sigma**2 + (1 - ab)  # (B, 1, 1)
        diff = x[:, None] - centres
        log_w = torch.log(self.weights)[None] - (diff**2).sum(-1) / (2 * variance[..., 0]) - torch.log(variance[..., 0])
        resp = torch.softmax(log_w, dim=1)
        return (resp[..., None] * (-diff / variance)).sum(1)

    def forward(self, x, t, cond=None):
        ab = self.alpha_bars[t].to(x.dtype)
        return -(1 - ab).sqrt()[:, None] * self.score(x, ab)


def toy_prior():
    prior = DiffusionPrior()
    means = torch.tensor([[-1.5, 0.0], [1.5, 0.0], [0.0, 1.5]], dtype=torch.float64)
    prior.denoiser = GaussianMixtureDenoiser(prior.alpha_bars.double(), means, 0.5, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    return prior.double()


def test_gradient_points_toward_higher_likelihood_on_a_toy_distribution():
    """Acceptance: averaged over the noise, -grad of the term aligns with the known score."""
    prior = toy_prior()
    data_score = lambda x: prior.denoiser.score(x, torch.ones(x.shape[0], dtype=torch.float64))  # noqa: E731
    points = torch.tensor([[0.0, 0.0], [2.5, 1.0], [-0.5, 2.5], [0.7, -1.2], [-3.0, -0.5]], dtype=torch.float64)
    draws = 4096
    generator = torch.Generator().manual_seed(0)
    for t in (10, 50, 100):
        x = points.repeat_interleave(draws, 0).requires_grad_(True)
        half = torch.randn(len(points), draws // 2, 2, generator=generator, dtype=torch.float64)
        noise = torch.cat([half, -half], 1).reshape(-1, 2)  # antithetic pairs: the average converges fast
        loss = score_distillation_loss(prior, x, t, noise, project=None)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        descent = -grad.view(len(points), draws, 2).mean(1)
        score = data_score(points)
        cosine = (descent * score).sum(-1) / (descent.norm(dim=-1) * score.norm(dim=-1))
        assert (cosine > 0.95).all(), (t, cosine)
        # a small step along it raises the log-density
        log_p = lambda y: torch.logsumexp(torch.log(prior.denoiser.weights) - ((y[:, None] - prior.denoiser.means) ** 2).sum(-1) / 0.5, 1)  # noqa: E731
        assert (log_p(points + 1e-2 * descent / descent.norm(dim=-1, keepdim=True)) > log_p(points)).all()


def pose_state(batch, progress=0.0, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    orient = torch.tensor([[math.pi, 0.0, 0.0]]).repeat(batch, 1).to(device)
    body = (0.3 * torch.randn(batch, 69, generator=gen)).to(device)
    zeros = torch.zeros(batch, 3, device=device)
    return FitState(orient, body.requires_grad_(True), torch.zeros(batch, 10, device=device), zeros, None, None,
                    None, None, None, zeros, progress=progress, stage_index=1)  # fmt: skip


def test_target_is_fixed_within_an_optimiser_step_and_reproducible(tiny_prior, device):
    prior = tiny_prior if device.type == "cpu" else copy.deepcopy(tiny_prior).to(device)
    term = DiffusionPoseTerm(prior, DiffusionFitConfig(term_t_max=100, term_t_min=10))
    state = pose_state(3, device=device)
    first = term(state)
    if device.type != "cpu":  # one denoiser call in float32: the device's kernels round differently
        on_cpu = DiffusionPoseTerm(tiny_prior, DiffusionFitConfig(term_t_max=100, term_t_min=10))(pose_state(3))
        torch.testing.assert_close(first.detach().cpu(), on_cpu.detach(), rtol=1e-4, atol=1e-5)
    assert torch.equal(term(state), first)  # the same step (an L-BFGS line search): same quadratic
    later = term(pose_state(3, progress=0.5, device=device))
    assert not torch.equal(later, first)
    term.reset()
    assert torch.equal(term(state), first)  # a new fit starts the same noise again
    (grad,) = torch.autograd.grad(first.sum(), state.body_pose)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert term.timestep(0.0) == 100 and term.timestep(0.5) == 55 and term.timestep(1.0) == 10


def test_a_nan_sample_leaves_the_others_alone(tiny_prior):
    clean = pose_state(4)
    values = DiffusionPoseTerm(tiny_prior)(clean)
    poisoned = pose_state(4)
    with torch.no_grad():
        poisoned.body_pose[1, 7] = float("nan")
    out = DiffusionPoseTerm(tiny_prior)(poisoned)
    assert torch.isnan(out[1])
    keep = [0, 2, 3]
    assert torch.allclose(out[keep], values[keep])


def test_registered_as_a_fitting_term(tiny_prior):
    import pytest

    term = build_term("diffusion_pose", TermContext(extras={"diffusion_prior": tiny_prior}))
    assert term(pose_state(2)).shape == (2,)
    with pytest.raises(ValueError, match="needs a diffusion pose prior"):
        build_term("diffusion_pose", TermContext())
