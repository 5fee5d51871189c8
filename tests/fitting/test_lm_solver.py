"""The per-sample damped Newton solver (``optimizer: lm``): known minima, exact derivatives,
and independence of a sample's fit from its batch-mates."""

import pytest
import torch

from spin_diff.body.model import load_body_model
from spin_diff.constants import NUM_KEYPOINTS
from spin_diff.fitting.config import FittingConfig, spin_stages
from spin_diff.fitting.lm import minimise_per_sample, per_sample_hessian
from spin_diff.fitting.smplify import SMPLify
from spin_diff.utils.configs import ConfigError
from spin_diff.geometry.cameras import perspective_projection


@pytest.fixture(scope="module")
def model64():
    return load_body_model(dtype=torch.float64)


def _projection_objective(model, truth_pose, betas, transl, focal=500.0):
    """Squared 2D error of all 49 joints (extra, vertex-regressed ones included) plus a weak
    pull to the true pose (fixes the twists joints cannot see): the truth is the minimum."""
    center = torch.full((truth_pose.shape[0], 2), 112.0, dtype=truth_pose.dtype, device=truth_pose.device)
    target = perspective_projection(model.joints(truth_pose, betas).joints, transl, focal, center)

    def objective(pose):
        kp = perspective_projection(model.joints(pose, betas).joints, transl, focal, center)
        return ((kp - target) ** 2).sum((1, 2)) + 1.0 * ((pose - truth_pose) ** 2).sum(1)

    return objective


def _random_bodies(model, n, seed):
    gen = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(n, 72, generator=gen, dtype=torch.float64)
    pose[:, :3] = torch.tensor([torch.pi - 0.3, 0.0, 0.0], dtype=torch.float64)  # facing the camera
    betas = 0.5 * torch.randn(n, 10, generator=gen, dtype=torch.float64)
    transl = torch.tensor([0.0, 0.25, 4.5], dtype=torch.float64).expand(n, 3).clone()
    return pose, betas, transl, gen


def test_reaches_the_known_minimum_from_a_0_2_rad_start(model64):
    truth, betas, transl, gen = _random_bodies(model64, 3, seed=0)
    # every joint turned by up to 0.2 rad (each axis-angle coordinate within 0.2 / sqrt(3))
    start = truth + 0.2 / 3**0.5 * (2 * torch.rand(truth.shape, generator=gen, dtype=torch.float64) - 1)
    objective = _projection_objective(model64, truth, betas, transl)
    fitted, accepted = minimise_per_sample(objective, start, iterations=40)
    assert (start - truth).abs().max() > 0.1
    assert (fitted - truth).abs().max() < 1e-3, (fitted - truth).abs().max()
    assert (accepted > 0).all()


def test_gradient_and_hessian_equal_finite_differences(model64):
    truth, betas, transl, gen = _random_bodies(model64, 2, seed=1)
    objective = _projection_objective(model64, truth, betas, transl)
    x = truth + 0.1 * torch.randn(truth.shape, generator=gen, dtype=torch.float64)
    _, grad, hess = per_sample_hessian(objective, x)
    eps = 1e-6
    for k in (0, 5, 40, 71):  # orientation, a hip, an arm, a hand (whose extra joints follow it)
        e = torch.zeros_like(x)
        e[:, k] = eps
        with torch.no_grad():
            fd_grad = (objective(x + e) - objective(x - e)) / (2 * eps)
        assert torch.allclose(grad[:, k], fd_grad, rtol=1e-5, atol=1e-4), (grad[:, k], fd_grad)
        _, g_plus, _ = per_sample_hessian(objective, x + e)
        _, g_minus, _ = per_sample_hessian(objective, x - e)
        fd_hess = (g_plus - g_minus) / (2 * eps)
        assert torch.allclose(hess[:, :, k], fd_hess, rtol=1e-4, atol=1e-2 * fd_hess.abs().max())


def test_an_outlier_in_the_batch_changes_no_other_sample(turned_problems):
    model = load_body_model()
    start, betas, keypoints = turned_problems(model, 4, seed=5)
    fitter = SMPLify(model, FittingConfig(optimizer="lm", stages=spin_stages(4)))
    clean = fitter.fit(keypoints, start, betas)
    spoiled = keypoints.clone()
    spoiled[2, :, :2] = 1e5 * torch.rand(NUM_KEYPOINTS, 2)
    spoiled_start = start.clone()
    spoiled_start[2, 3:] = 3.0
    mixed = fitter.fit(spoiled, spoiled_start, betas)
    others = [0, 1, 3]
    assert not torch.allclose(mixed.pose[2], clean.pose[2])
    assert torch.allclose(mixed.pose[others], clean.pose[others], atol=1e-6, rtol=0)
    assert torch.allclose(mixed.betas[others], clean.betas[others], atol=1e-6, rtol=0)


def test_the_diffusion_term_with_lm_is_refused_with_the_fix(model64):
    with pytest.raises(ConfigError, match="optimizer: adam"):
        SMPLify(model64, FittingConfig(optimizer="lm"))  # the default body stage has diffusion_pose


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA part only: no GPU here")
def test_the_solver_runs_on_cuda_like_on_cpu():
    model = load_body_model(dtype=torch.float64, device="cuda")
    truth, betas, transl, gen = _random_bodies(model, 2, seed=0)
    truth, betas, transl = truth.cuda(), betas.cuda(), transl.cuda()
    objective = _projection_objective(model, truth, betas, transl)
    fitted, _ = minimise_per_sample(objective, truth + 0.05, iterations=20)
    assert (fitted - truth).abs().max() < 1e-3
