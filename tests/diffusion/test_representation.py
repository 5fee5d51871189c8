"""Pose <-> the prior's vector, for each orientation mode."""

import math

import numpy as np
import pytest
import torch

from spin_diff.diffusion.representation import camera_orientations, decode_pose, encode_pose, project_to_rotations
from spin_diff.geometry.rotations import facing_yaw, yaw_matrix
from spin_diff.geometry.rotations import axis_angle_to_matrix


def poses(n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    aa = 0.4 * torch.randn(n, 24, 3, generator=gen, dtype=torch.float64)
    rotmats = axis_angle_to_matrix(aa)
    upright = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    rotmats[:, 0] = rotmats[:, 0] @ upright  # roughly upright, facing the camera
    return rotmats


@pytest.mark.parametrize("mode", ["camera", "canonical", "none"])
def test_encode_decode_round_trip(mode):
    rotmats = poses()
    betas = torch.randn(6, 10, dtype=torch.float64)
    x, yaw = encode_pose(rotmats, mode, betas, betas_scale=3.0)
    assert x.shape == (6, 154)
    decoded, decoded_betas = decode_pose(x, mode, yaw, orient=rotmats[:, 0], betas_scale=3.0)
    assert torch.allclose(decoded, rotmats, atol=1e-10)
    assert torch.allclose(decoded_betas, betas)


def test_canonical_mode_ignores_the_yaw_and_keeps_the_tilt():
    rotmats = poses()
    x, _ = encode_pose(rotmats, "canonical")
    for angle in (0.7, -2.0, math.pi):
        turned = rotmats.clone()
        turned[:, 0] = yaw_matrix(torch.full((6,), angle, dtype=torch.float64)) @ rotmats[:, 0]
        x_turned, yaw = encode_pose(turned, "canonical")
        assert torch.allclose(x_turned, x, atol=1e-9)
    # the canonical orientation faces the camera: forward axis in the camera's y-z plane, toward it
    orient = decode_pose(x, "canonical")[0][:, 0]
    assert torch.allclose(orient[:, 0, 2], torch.zeros(6, dtype=torch.float64), atol=1e-12)
    assert (orient[:, 2, 2] < 0).all()
    assert torch.allclose(facing_yaw(orient), torch.zeros(6, dtype=torch.float64), atol=1e-12)


def test_canonical_gradient_leaves_the_yaw_alone():
    aa = torch.tensor([[math.pi * 0.9, 0.3, 0.1]], dtype=torch.float64, requires_grad=True)
    rotmats = torch.cat([axis_angle_to_matrix(aa)[:, None], torch.eye(3, dtype=torch.float64).expand(1, 23, 3, 3)], 1)
    x, _ = encode_pose(rotmats, "canonical")
    (grad,) = torch.autograd.grad(x[:, :6].sum(), aa)
    # a tiny yaw of the input changes nothing: the directional derivative along the yaw is 0
    eps = 1e-6
    yawed = yaw_matrix(torch.tensor([eps], dtype=torch.float64)) @ axis_angle_to_matrix(aa.detach())
    x2, _ = encode_pose(torch.cat([yawed[:, None], rotmats[:, 1:].detach()], 1), "canonical")
    assert torch.allclose(x2, x.detach(), atol=1e-9)
    assert torch.isfinite(grad).all()


def test_none_mode_hides_the_orientation():
    rotmats = poses()
    x, _ = encode_pose(rotmats, "none")
    other = rotmats.clone()
    other[:, 0] = axis_angle_to_matrix(torch.randn(6, 3, dtype=torch.float64))
    assert torch.equal(encode_pose(other, "none")[0], x)


def test_projection_makes_valid_rotations_and_keeps_valid_ones():
    rotmats = poses()
    x, _ = encode_pose(rotmats, "camera")
    assert torch.allclose(project_to_rotations(x), x, atol=1e-12)
    noisy = x + 0.2 * torch.randn_like(x)
    projected = project_to_rotations(noisy)
    decoded = decode_pose(projected, "camera")[0]
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(decoded.transpose(-1, -2) @ decoded, eye.expand_as(decoded), atol=1e-10)
    assert torch.allclose(project_to_rotations(projected), projected, atol=1e-12)


def test_camera_orientations_are_upright_with_any_yaw():
    gen = torch.Generator().manual_seed(0)
    identity = torch.eye(3).expand(2000, 3, 3)
    seen = camera_orientations(identity, gen, tilt_degrees=10.0)
    up = -seen[:, 1, 1]  # body's +y seen along camera -y
    assert up.min() > math.cos(math.radians(45.0)) and up.mean() > 0.96
    yaw = facing_yaw(seen).numpy()
    counts, _ = np.histogram(yaw, bins=4, range=(-math.pi, math.pi))
    assert counts.min() > 400  # spread over the whole circle
    z_up = camera_orientations(torch.tensor([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]).expand(10, 3, 3), gen, 0.0, "z_up")
    assert torch.allclose(-z_up[:, 1, 1], torch.ones(10), atol=1e-5)  # an AMASS-upright body stands upright
