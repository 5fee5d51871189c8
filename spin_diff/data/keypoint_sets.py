"""Synthetic fitting problems without images: sampled bodies seen by SPIN's crop camera.

Each problem is a ground-truth body (pose incl. orientation, shape, camera translation), its
projected 49 keypoints in the 224 crop, optionally degraded like a detector, and starts for
a fitter: the mean pose, or the truth perturbed the way a regressor's estimate is wrong.
Tests and benchmarks use these; ``spin-diff synth`` renders full images instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spin_diff.body import joints as J
from spin_diff.body.model import BodyModel
from spin_diff.geometry.cameras import perspective_projection
from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle


@dataclass
class KeypointProblems:
    """A batch of fitting problems. Shapes: B problems."""

    pose: torch.Tensor  # (B, 72) ground truth, axis-angle
    betas: torch.Tensor  # (B, 10)
    transl: torch.Tensor  # (B, 3) crop-camera translation
    keypoints: torch.Tensor  # (B, 49, 3) crop pixels + confidence (possibly corrupted)
    clean_keypoints: torch.Tensor  # (B, 49, 3) before corruption
    postures: list[str]


def make_problems(
    model: BodyModel,
    count: int,
    seed: int = 0,
    corruption=None,
    max_yaw_degrees: float = 45.0,
    shift_px: tuple[float, float] = (0.0, 0.0),
    crop_size: int = 224,
    focal_length: float = 5000.0,
    poses: np.ndarray | None = None,
) -> KeypointProblems:
    """Sample ``count`` problems; ``corruption`` is a CorruptionConfig (None: clean).

    ``shift_px`` moves the person in the crop (e.g. partly out of it, for border occlusion).
    ``poses`` (N, 72), whole poses in a y-up world (e.g. real mocap, :mod:`spin_diff.data.real_poses`),
    replaces the pose sampler: ``count`` of them are drawn without replacement, and each keeps its
    own tilt (bending, lying) while turned to face the camera within ``max_yaw_degrees``.
    """
    from spin_diff.data.corruption import corrupt_keypoints
    from spin_diff.priors.pose_sampler import sample_poses

    rng = np.random.default_rng(seed)
    device, dtype = model.fast.joint_template.device, model.fast.joint_template.dtype
    flip = axis_angle_to_matrix(torch.tensor([np.pi, 0.0, 0.0], dtype=dtype))  # y-up world -> camera
    if poses is None:
        body_pose, postures = sample_poses(count, rng)
        world = torch.eye(3, dtype=dtype).expand(count, 3, 3)
    else:
        from spin_diff.diffusion.representation import facing_yaw, yaw_matrix

        if count > len(poses):
            raise ValueError(f"asked for {count} problems from {len(poses)} poses")
        chosen = np.sort(rng.choice(len(poses), count, replace=False))
        body_pose, postures = np.asarray(poses[chosen, 3:]), ["real"] * count
        world = axis_angle_to_matrix(torch.tensor(np.asarray(poses[chosen, :3]), dtype=dtype))
        facing = flip @ world
        world = flip.T @ yaw_matrix(-facing_yaw(facing)) @ facing  # facing the camera, tilt kept
    yaw = np.deg2rad(rng.uniform(-max_yaw_degrees, max_yaw_degrees, count))
    orient = axis_angle_to_matrix(torch.tensor(np.c_[np.zeros(count), yaw, np.zeros(count)], dtype=dtype)) @ flip @ world
    pose = torch.cat([matrix_to_axis_angle(orient), torch.tensor(body_pose, dtype=dtype)], 1).to(device)
    betas = torch.tensor(rng.normal(0.0, 0.8, (count, 10)), dtype=dtype, device=device)
    depth = rng.uniform(40.0, 55.0, count)
    transl = torch.tensor(np.c_[rng.normal(0, 0.1, (count, 2)), depth], dtype=dtype, device=device)
    with torch.no_grad():
        joints = model.joints(pose, betas).joints
    center = torch.full((count, 2), crop_size / 2.0, dtype=dtype, device=device)
    pixels = perspective_projection(joints, transl, focal_length, center) + torch.tensor(shift_px, dtype=dtype, device=device)
    clean = torch.cat([pixels, torch.ones(count, J.NUM_JOINTS, 1, dtype=dtype, device=device)], -1)
    keypoints = clean
    if corruption is not None:
        result = corrupt_keypoints(
            clean.cpu().numpy(), np.full((count, 2), crop_size / 2.0), np.full(count, float(crop_size)),
            corruption, rng, J.KEYPOINT_FLIP_PERM, image_size=np.array([crop_size, crop_size]),
        )  # fmt: skip
        keypoints = torch.tensor(result.keypoints, dtype=dtype, device=device)
    return KeypointProblems(pose, betas, transl, keypoints, clean, list(postures))


def perturbed_start(
    problems: KeypointProblems, seed: int = 1, pose_sigma: float = 0.15, betas_sigma: float = 0.5,
    orient_sigma: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A regressor-like estimate: truth plus per-joint rotation noise, shape and depth error."""
    gen = torch.Generator().manual_seed(seed)
    pose, betas, transl = problems.pose, problems.betas, problems.transl
    noise = torch.randn(pose.shape, generator=gen, dtype=pose.dtype).to(pose.device)
    scale = torch.full((72,), pose_sigma, dtype=pose.dtype, device=pose.device)
    scale[:3] = orient_sigma
    rotations = axis_angle_to_matrix((noise * scale).view(-1, 24, 3)) @ axis_angle_to_matrix(pose.view(-1, 24, 3))
    start_pose = matrix_to_axis_angle(rotations).reshape(-1, 72)
    start_betas = betas + betas_sigma * torch.randn(betas.shape, generator=gen, dtype=betas.dtype).to(betas.device)
    depth_error = 1.0 + 0.1 * torch.randn(transl.shape[0], generator=gen, dtype=transl.dtype).to(transl.device)
    start_transl = transl * torch.stack([torch.ones_like(depth_error), torch.ones_like(depth_error), depth_error], 1)
    return start_pose, start_betas, start_transl
