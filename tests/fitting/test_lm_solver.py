"""The per-sample Levenberg-Marquardt solver (``optimizer: lm``): known minima, derivatives
equal to autograd's, and independence of a sample's fit from its batch-mates. Stages whose
terms all have least-squares forms run on closed-form normal equations
(:mod:`spin_diff.fitting.least_squares`); others on exact autograd Hessians
(:func:`minimise_per_sample`)."""

import pytest
import torch

from spin_diff.body.model import load_body_model
from spin_diff.constants import NUM_KEYPOINTS
from spin_diff.fitting.base import FitProgress
from spin_diff.fitting.config import FittingConfig, StageConfig, spin_stages
from spin_diff.fitting.least_squares import (
    LEAST_SQUARES_FORMS,
    Linearisation,
    camera_jacobian,
    joints_and_jacobian,
    normal_equations,
)
from spin_diff.fitting.lm import minimise_per_sample, per_sample_hessian
from spin_diff.fitting.smplify import SMPLify
from spin_diff.fitting.terms import register_term
from spin_diff.geometry.cameras import perspective_projection
from spin_diff.utils.configs import ConfigError


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


def _projected_truth(model, pose, betas, transl, focal=500.0):
    center = torch.full((pose.shape[0], 2), 112.0, dtype=pose.dtype)
    kp = perspective_projection(model.joints(pose, betas).joints, transl, focal, center)
    return torch.cat([kp, torch.ones_like(kp[..., :1])], -1), center


def test_gauss_newton_reaches_the_known_minimum_from_a_0_2_rad_start(model64):
    """SMPLify's own stage code on a noise-free problem whose minimum is the truth: every joint
    seen, the robust reprojection, and a weak pose anchor held at the true pose (it fixes the
    twists no joint sees)."""
    truth, betas, transl, gen = _random_bodies(model64, 3, seed=2)
    start = truth + 0.2 / 3**0.5 * (2 * torch.rand(truth.shape, generator=gen, dtype=torch.float64) - 1)
    keypoints, center = _projected_truth(model64, truth, betas, transl)
    stage = StageConfig(name="body", iterations=25, optimize=["global_orient", "body_pose"],
                        terms={"reprojection": 1.0, "pose_anchor": 1.0})  # fmt: skip
    fitter = SMPLify(model64, FittingConfig(optimizer="lm", stages=[stage]))
    problem = fitter.prepare(keypoints, start, betas, transl, center, 500.0)
    problem.data["body_confidence"] = problem.data["raw_confidence"]  # every joint, hips included
    problem.data["init_body_pose"] = truth[:, 3:]
    problem.data["anchor_mask"] = torch.ones(3, dtype=torch.float64)
    fitted = fitter.improve(problem, FitProgress.start_of(problem)).params
    pose = torch.cat([fitted["global_orient"], fitted["body_pose"]], 1)
    assert (start - truth).abs().max() > 0.1
    assert (pose - truth).abs().max() < 1e-3, (pose - truth).abs().max()


def _linearised(fitter, index, params, data, names):
    """(objective, gradient, Gauss-Newton Hessian) at ``params`` through the least-squares
    forms, and the flat free parameters (requiring grad) the objective is a function of."""
    sizes = [params[k].shape[1] for k in names]
    columns = dict(zip(names, (slice(sum(sizes[:i]), sum(sizes[: i + 1])) for i in range(len(sizes)))))
    flat = torch.cat([params[k] for k in names], 1).requires_grad_(True)
    moved = dict(params)
    moved.update(zip(names, flat.split(sizes, 1)))
    with torch.no_grad():
        joints, jac = joints_and_jacobian(fitter.body, moved, columns, flat.shape[1])
        state = fitter._state(moved, data, index, 0.0, True, joints=joints)
        camera = camera_jacobian(joints + moved["transl"][:, None], data["focal"])
        lin = Linearisation(state=state, columns=columns, projected_jacobian=camera @ jac, size=flat.shape[1],
                            joints_jacobian=jac)  # fmt: skip
        grad, hess = normal_equations(lin, [(n, w) for n, w, _ in fitter.stage_terms[index]], fitter.context)
    return flat, moved, grad, hess


@pytest.mark.parametrize("free", [["global_orient", "transl"], ["body_pose", "betas", "global_orient", "transl"]])
def test_every_least_squares_form_has_autograds_gradient(model64, free):
    """Every term with a form, weighted and summed, at a random body with noisy keypoints and
    random confidences: the closed-form gradient equals autograd's; the rigid camera-stage
    Jacobian (first case) and the kinematic chain's (second) both, extra joints included."""
    truth, betas, transl, gen = _random_bodies(model64, 3, seed=3)
    keypoints, center = _projected_truth(model64, truth, betas, transl)
    keypoints[..., :2] += 20 * torch.randn(keypoints[..., :2].shape, generator=gen, dtype=torch.float64)
    keypoints[..., 2] = torch.rand(keypoints.shape[:2], generator=gen, dtype=torch.float64)
    keypoints[0, 2, 2] = 0.0  # an OpenPose torso joint missing: the torso term takes the GT set
    terms = {name: 0.5 + i for i, name in enumerate(sorted(LEAST_SQUARES_FORMS))}
    fitter = SMPLify(model64, FittingConfig(optimizer="lm", sigma=30.0, stages=[
        StageConfig(name="all", iterations=1, optimize=free, terms=terms)]))  # fmt: skip
    start = truth + 0.3 * torch.randn(truth.shape, generator=gen, dtype=torch.float64)
    problem = fitter.prepare(keypoints, start, betas + 0.2, transl + 0.3, center, 500.0)
    params = dict(problem.start)
    params["body_pose"] = params["body_pose"] + 0.05  # away from the anchor's minimum
    params["transl"] = params["transl"] + 0.1  # and from the depth term's
    flat, moved, grad, _ = _linearised(fitter, 0, params, problem.data, free)
    value = fitter._stage_objective(0, moved, problem.data, 0.0, True)
    (expected,) = torch.autograd.grad(value.sum(), flat)
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item())


def test_the_gauss_newton_hessian_is_exact_at_a_zero_residual(model64):
    """Where every keypoint is met, GMoF's Gauss-Newton Hessian is its exact Hessian, so the
    normal equations equal autograd's second derivatives there (GMM, angle, shape: exact anywhere)."""
    truth, betas, transl, _ = _random_bodies(model64, 2, seed=4)
    keypoints, center = _projected_truth(model64, truth, betas, transl)
    free = ["body_pose", "betas", "global_orient"]
    fitter = SMPLify(model64, FittingConfig(optimizer="lm", stages=[StageConfig(
        name="body", iterations=1, optimize=free,
        terms={"reprojection": 1.0, "gmm_pose": 22.8, "angle": 231.0, "shape": 25.0})]))  # fmt: skip
    problem = fitter.prepare(keypoints, truth, betas, transl, center, 500.0)
    flat, _, _, hess = _linearised(fitter, 0, dict(problem.start), problem.data, free)
    sizes = [problem.start[k].shape[1] for k in free]

    def objective(x):
        moved = dict(problem.start)
        moved.update(zip(free, x.split(sizes, 1)))
        return fitter._stage_objective(0, moved, problem.data, 0.0, True)

    _, _, exact = per_sample_hessian(objective, flat.detach())
    torch.testing.assert_close(hess, exact, rtol=1e-6, atol=1e-6 * exact.abs().max().item())


@register_term("test_quartic_pull")
def _quartic_pull(context):
    """A term with no least-squares form (test only): sum (theta - 0.3)^4."""
    return lambda s: ((s.body_pose - 0.3) ** 4).sum(-1)


def test_a_term_without_a_least_squares_form_falls_back_to_exact_hessians(model64):
    truth, betas, transl, _ = _random_bodies(model64, 2, seed=6)
    keypoints, center = _projected_truth(model64, truth, betas, transl)
    stage = StageConfig(name="body", iterations=30, optimize=["body_pose"], terms={"test_quartic_pull": 1.0})
    result = SMPLify(model64, FittingConfig(optimizer="lm", stages=[stage])).fit(
        keypoints, truth, betas, transl, center, 500.0)  # fmt: skip
    assert "test_quartic_pull" not in LEAST_SQUARES_FORMS
    assert (result.pose[:, 3:] - 0.3).abs().max() < 0.05  # Newton on a quartic: linear convergence


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
def test_gauss_newton_fits_on_cuda_like_on_cpu(turned_problems):
    cpu, gpu = load_body_model(), load_body_model(device="cuda")
    start, betas, keypoints = turned_problems(cpu, 4, seed=7)
    config = FittingConfig(optimizer="lm", stages=spin_stages(5))
    on_cpu = SMPLify(cpu, config).fit(keypoints, start, betas)
    on_gpu = SMPLify(gpu, config).fit(keypoints.cuda(), start.cuda(), betas.cuda())
    torch.testing.assert_close(on_gpu.pose.cpu(), on_cpu.pose, atol=1e-3, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA part only: no GPU here")
def test_the_solver_runs_on_cuda_like_on_cpu():
    model = load_body_model(dtype=torch.float64, device="cuda")
    truth, betas, transl, gen = _random_bodies(model, 2, seed=0)
    truth, betas, transl = truth.cuda(), betas.cuda(), transl.cuda()
    objective = _projection_objective(model, truth, betas, transl)
    fitted, _ = minimise_per_sample(objective, truth + 0.05, iterations=20)
    assert (fitted - truth).abs().max() < 1e-3


def _count_host_reads(run) -> int:
    """How many times ``run()`` reads a tensor's value on the host (a GPU sync each)."""
    names = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy")
    originals = {name: getattr(torch.Tensor, name) for name in names}
    count = [0]

    def counted(method):
        def read(self, *args, **kwargs):
            count[0] += 1
            return method(self, *args, **kwargs)

        return read

    try:
        for name, method in originals.items():
            setattr(torch.Tensor, name, counted(method))
        run()
    finally:
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)
    return count[0]


def test_the_iterations_read_nothing_on_the_host(turned_problems):
    """A fit's host reads (GPU syncs) do not grow with its iterations: the loop has none, so
    it can be captured as a CUDA graph."""
    model = load_body_model()
    start, betas, keypoints = turned_problems(model, 3, seed=8)
    reads = {}
    for n in (2, 6):
        fitter = SMPLify(model, FittingConfig(optimizer="lm", stages=spin_stages(n)))
        reads[n] = _count_host_reads(lambda fitter=fitter: fitter.fit(keypoints, start, betas))
    assert reads[2] == reads[6], reads
