"""Fixtures of the fitting tests: fitting problems with known bodies, their keypoints, starts."""

import numpy as np
import pytest
import torch

from spin_diff.body.demo_poses import named_pose
from spin_diff.constants import CROP_SIZE, FOCAL_LENGTH, NUM_KEYPOINTS
from spin_diff.geometry.cameras import perspective_projection
from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

POSE_NAMES = ["walk", "arms_up", "apose", "sit", "reach", "tpose"]


def make_turned_problems(model, n: int, seed: int = 3):
    """``n`` bodies turned to random yaws (some side-on), their keypoints with 2 px jitter and
    10% dropped joints, and starts perturbed from the truth.

    Returns: start pose (n, 72), zero betas (n, num_betas), keypoints (n, 49, 3).
    """
    gen = torch.Generator().manual_seed(seed)
    pose = torch.tensor(np.stack([named_pose(POSE_NAMES[i % len(POSE_NAMES)]) for i in range(n)]), dtype=torch.float32)
    pose[:, 3:] += 0.1 * torch.randn(n, 69, generator=gen)
    yaw = (torch.rand(n, generator=gen) * 2 - 1) * torch.pi
    turn = axis_angle_to_matrix(torch.stack([torch.zeros(n), yaw, torch.zeros(n)], 1))
    facing_camera = axis_angle_to_matrix(torch.tensor([[torch.pi, 0.0, 0.0]]))
    pose[:, :3] = matrix_to_axis_angle(turn @ facing_camera)
    betas = 0.5 * torch.randn(n, 10, generator=gen)[:, : model.num_betas]
    transl = torch.tensor([0.0, 0.25, 45.0]).expand(n, 3).clone()
    kp = perspective_projection(model.joints(pose, betas).joints, transl, FOCAL_LENGTH, torch.full((n, 2), CROP_SIZE / 2))
    kp = kp + 2.0 * torch.randn(kp.shape, generator=gen)
    conf = (torch.rand(n, NUM_KEYPOINTS, generator=gen) > 0.1).float()
    keypoints = torch.cat([kp, conf[..., None]], -1)
    start = pose.clone()
    start[:, 3:] += 0.15 * torch.randn(n, 69, generator=gen)
    return start, torch.zeros(n, model.num_betas), keypoints


@pytest.fixture(scope="session")
def turned_problems():
    """:func:`make_turned_problems`: ``turned_problems(model, n, seed)`` -> start, betas, keypoints."""
    return make_turned_problems
