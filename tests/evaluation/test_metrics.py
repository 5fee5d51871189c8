"""spin_diff.evaluation.metrics against a second implementation: the H36M regressor applied
to smplx's vertices in numpy, MPJPE by hand, PA-MPJPE by scipy's orthogonal Procrustes
with the optimal scale."""

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes

from spin_diff.body.joints import H36M_TO_J14
from spin_diff.body.model import load_body_model
from spin_diff.evaluation.metrics import evaluation_joints, joint_errors


@pytest.fixture(scope="module")
def model():
    return load_body_model(dtype=torch.float64)


def reference_joints(model, pose, betas) -> np.ndarray:
    vertices = model(pose, betas).vertices.numpy()
    regressor = np.load(model.files.j_regressor_h36m)
    joints = np.einsum("jv,bvc->bjc", regressor, vertices)[:, list(H36M_TO_J14)]
    return joints - joints[:, [2, 3]].mean(1, keepdims=True)  # LSP hips (right, left) -> pelvis


def reference_pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    a, b = pred - pred.mean(0), gt - gt.mean(0)
    rotation, singular_sum = orthogonal_procrustes(a, b)
    assert np.linalg.det(rotation) > 0  # a proper rotation (no reflection case here)
    aligned = singular_sum / (a**2).sum() * a @ rotation + gt.mean(0)
    return float(np.linalg.norm(aligned - gt, axis=-1).mean())


def test_joint_errors_match_an_independent_computation(model):
    gen = torch.Generator().manual_seed(0)
    gt_pose = 0.3 * torch.randn(6, 72, generator=gen, dtype=torch.float64)
    gt_betas = torch.randn(6, 10, generator=gen, dtype=torch.float64)
    pose = gt_pose + 0.2 * torch.randn(6, 72, generator=gen, dtype=torch.float64)
    betas = gt_betas + 0.5 * torch.randn(6, 10, generator=gen, dtype=torch.float64)
    errors = joint_errors(model, pose, betas, gt_pose, gt_betas)
    pred, gt = reference_joints(model, pose, betas), reference_joints(model, gt_pose, gt_betas)
    np.testing.assert_allclose(evaluation_joints(model, pose, betas).numpy(), pred, atol=1e-9)
    expected_mpjpe = 1000 * np.linalg.norm(pred - gt, axis=-1).mean(-1)
    expected_pa = [1000 * reference_pa_mpjpe(p, g) for p, g in zip(pred, gt)]
    np.testing.assert_allclose(errors["mpjpe"].numpy(), expected_mpjpe, rtol=1e-9)
    np.testing.assert_allclose(errors["pa_mpjpe"].numpy(), expected_pa, rtol=1e-6)
    assert (errors["pa_mpjpe"] < errors["mpjpe"]).all() and (errors["pa_mpjpe"] > 1.0).all()


def test_a_turned_body_has_no_pa_error_and_a_different_body_does(model):
    pose = torch.zeros(2, 72, dtype=torch.float64)
    pose[1, :3] = torch.tensor([0.0, 1.2, 0.0])  # the same body, turned: rotation is aligned away
    betas = torch.zeros(2, 10, dtype=torch.float64)
    errors = joint_errors(model, pose, betas, pose[:1].expand(2, -1), betas)
    assert errors["pa_mpjpe"].max() < 1e-6
    assert errors["mpjpe"][0] < 1e-9 and errors["mpjpe"][1] > 50.0
