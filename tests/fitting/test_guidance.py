"""Guided refinement (ScoreHMR) on the bundled prior."""

import math

import torch

from spin_diff.diffusion.config import GuidedConfig
from spin_diff.diffusion.representation import upright_orientation
from spin_diff.diffusion.schedule import q_sample
from spin_diff.fitting.guidance import guided_refinement
from spin_diff.geometry.cameras import perspective_projection
from spin_diff.geometry.rotations import geodesic_angle

CENTER = 112.0


def denoising_residual(prior, x, t=20, seed=0):
    """Mean squared error of the prior's noise prediction at x noised to t: small on its manifold."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator)
    return ((prior.predict_noise(q_sample(prior.alpha_bars, x, t, noise), t) - noise) ** 2).mean(1)


def problem(prior, body_model, n=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = prior.sample(n, generator=generator)
    rotmats, _ = prior.decode(x, orient=upright_orientation(n, x))
    betas = torch.zeros(n, 10)
    transl = torch.tensor([0.0, 0.2, 45.0]).expand(n, 3).clone()
    joints = body_model.fast(rotmats, betas).joints
    keypoints = perspective_projection(joints, transl, 5000.0, torch.full((n, 2), CENTER))
    return x, rotmats, betas, transl, keypoints


def refine(prior, body_model, keypoints, rotmats, betas, transl, settings, active=None):
    n = keypoints.shape[0]
    return guided_refinement(
        prior, lambda r, b: body_model.fast(r, b).joints, keypoints, torch.ones(n, 49), rotmats, betas, transl,
        torch.full((n, 2), CENTER), torch.full((n,), 5000.0), settings=settings, active=active,
    )  # fmt: skip


def test_zero_guidance_leaves_a_sample_on_the_learned_manifold(bundled_prior, body_model):
    """Acceptance: with the guidance weight at 0, refinement keeps a sample of the prior on the
    prior's manifold (as plausible to it as before, far from an off-manifold perturbation).
    ScoreHMR's approximate inversion lets it slide a little along the manifold over the 10
    loops; the exact inversion (3 fixed-point iterations) returns it in place."""
    x, rotmats, betas, transl, keypoints = problem(bundled_prior, body_model)
    off = denoising_residual(bundled_prior, x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5)))
    # (with the prior trained on four CMU subjects a sample ended at up to 38% of an off-manifold
    # residual; the prior retrained with subject 05's dance ends at up to 43% after the approximate
    # inversion and 46% after the exact one, whose sample 4 already starts less plausible to it;
    # every refined sample stays as plausible as the sample itself (the check above); the
    # sampler-trained prior stayed under 30% and 1 degree)
    for iterations, max_degrees, off_share in ((1, 8.0, 0.5), (3, 2.5, 0.5)):
        settings = GuidedConfig(guidance_scale=0.0, early_stop_tol=0.0, inversion_iterations=iterations)
        result = refine(bundled_prior, body_model, keypoints + 30.0, rotmats, betas, transl, settings)
        angles = torch.rad2deg(geodesic_angle(result.rotmats, rotmats))
        assert angles.mean() < 2.0 and angles.max() < max_degrees, (iterations, angles.mean(), angles.max())
        out, _ = bundled_prior.encode(result.rotmats)
        on = denoising_residual(bundled_prior, out)
        assert (on < 1.5 * denoising_residual(bundled_prior, x)).all()
        assert (on < off_share * off).all(), (iterations, on, off)
        # meanwhile the camera (its own Adam step sees the keypoints) followed the shifted keypoints
        assert (result.loss < 0.01 * result.initial_loss).all()
        assert ((result.transl - transl)[:, :2].abs() > 0.1).all()


def test_guidance_pulls_a_perturbed_estimate_toward_the_keypoints(bundled_prior, body_model):
    x, rotmats, betas, transl, keypoints = problem(bundled_prior, body_model, seed=1)
    generator = torch.Generator().manual_seed(2)
    from spin_diff.geometry.rotations import axis_angle_to_matrix

    start = rotmats.clone()
    start[:, 1:] = axis_angle_to_matrix(0.25 * torch.randn(4, 23, 3, generator=generator)) @ rotmats[:, 1:]
    settings = GuidedConfig(loops=4)
    active = torch.tensor([True, True, False, True])
    result = refine(bundled_prior, body_model, keypoints, start, betas, transl + torch.tensor([0.0, 0.0, 2.0]), settings, active)
    improved = result.loss < 0.5 * result.initial_loss
    assert improved[[0, 1, 3]].all(), (result.loss, result.initial_loss)
    before = geodesic_angle(start[:, 1:], rotmats[:, 1:]).mean(1)
    after = geodesic_angle(result.rotmats[:, 1:], rotmats[:, 1:]).mean(1)
    assert (after[[0, 1, 3]] < before[[0, 1, 3]]).all()
    # an inactive sample comes back as it went in
    assert torch.allclose(result.rotmats[2], start[2], atol=1e-5) and result.steps[2] == 0
    assert math.isclose(float(result.transl[2, 2]), 47.0, rel_tol=1e-6)


def test_every_orientation_mode_and_betas_run_guided_and_as_a_term(body_model):
    import dataclasses

    from spin_diff.diffusion.config import DenoiserConfig, DiffusionModelConfig
    from spin_diff.diffusion.model import DiffusionPrior
    from spin_diff.fitting.diffusion_term import DiffusionPoseTerm
    from spin_diff.fitting.terms import FitState

    base = DiffusionModelConfig(denoiser=DenoiserConfig(width=32, hidden=64, blocks=1, time_dim=16))
    for config in (dataclasses.replace(base, orientation="camera"), dataclasses.replace(base, orientation="none"),
                   dataclasses.replace(base, use_betas=True)):  # fmt: skip
        torch.manual_seed(0)
        prior = DiffusionPrior(config).requires_grad_(False)
        x, rotmats, betas, transl, keypoints = problem(prior, body_model, n=2)
        result = refine(prior, body_model, keypoints + 5.0, rotmats, betas, transl, GuidedConfig(loops=1, t_start=10))
        assert torch.isfinite(result.rotmats).all() and torch.isfinite(result.loss).all()
        aa = torch.zeros(2, 72, requires_grad=True)
        state = FitState(aa[:, :3], aa[:, 3:], betas, transl, None, None, None, None, None, transl)
        value = DiffusionPoseTerm(prior)(state)
        (grad,) = torch.autograd.grad(value.sum(), aa)
        assert torch.isfinite(grad).all()
        if config.orientation == "none":
            assert (grad[:, :3] == 0).all()  # the prior never moves an orientation it does not model
