"""SMPL pose <-> the vector the diffusion prior models.

``x = [orientation slot (6), 23 body joints (6 each)]`` in the SPIN 6D layout (144 numbers),
optionally followed by ``betas / betas_scale`` (10). The orientation slot depends on the
prior's orientation mode:

* ``camera``: the global orientation as given (the camera's frame), yaw included (ScoreHMR).
* ``canonical``: the orientation turned about the camera's vertical (y) axis so the body
  faces the camera: ``R_yaw(-a) R`` with ``a`` the azimuth of the body's forward axis. The
  prior sees how upright the body stands but not which way it faces; the removed yaw is
  returned and put back on decoding, so a fit keeps its facing direction unless the data
  move it.
* ``none``: a constant (the upright, camera-facing orientation); the prior never sees the
  orientation and gives it no gradient.

Why ``canonical`` is the default (measured by ``benchmarks/prior_ablation.py --priors``, three
priors trained alike, 6,000 steps each): a pose prior should not care which way the camera
looks. With the yaw modelled (``camera``) the term's value on the same pose changes by 3.5%
(std/mean) as the body turns; ``canonical`` and ``none`` are exactly invariant. In fitting the
three were within about 1 mm PA-MPJPE of each other (GMM + term: 46.1 camera, 45.9
canonical, 46.6 none), but ``none`` gave up 2 mm MPJPE (81.3 vs 79.0): knowing how upright
a body stands relative to the camera helps place it. ``canonical`` keeps that and drops the
yaw.

The camera convention is OpenCV's (x right, y down, z forward): a body standing upright and
facing the camera has orientation ``R_x(pi)`` (SMPL's +y up -> camera -y, its +z front ->
camera -z).
"""

from __future__ import annotations

import math

import torch

from spin_diff.constants import NUM_POSE_6D, NUM_SMPL_JOINTS
from spin_diff.diffusion.config import OrientationMode
from spin_diff.geometry.rotations import axis_angle_to_matrix, facing_yaw, matrix_to_rot6d, rot6d_to_matrix, yaw_matrix

# The upright, camera-facing orientation R_x(pi).
UPRIGHT_FACING_CAMERA = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def upright_orientation(batch: int, like: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) copies of the upright, camera-facing orientation."""
    return torch.tensor(UPRIGHT_FACING_CAMERA, dtype=like.dtype, device=like.device).expand(batch, 3, 3)


def encode_pose(
    rotmats: torch.Tensor,
    orientation: OrientationMode,
    betas: torch.Tensor | None = None,
    betas_scale: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose (and betas) to the prior's vector. Differentiable.

    Args:
        rotmats: (B, 24, 3, 3) global orientation then 23 body joints.
        orientation: the prior's orientation mode.
        betas: (B, 10) when the prior models shape, else None.
    Returns:
        x: (B, 144) or (B, 154).
        yaw: (B,) the azimuth removed in ``canonical`` mode (0 otherwise), for decoding.
    """
    batch = rotmats.shape[0]
    orient = rotmats[:, 0]
    yaw = torch.zeros(batch, dtype=rotmats.dtype, device=rotmats.device)
    if orientation == "canonical":
        yaw = facing_yaw(orient)
        orient = yaw_matrix(-yaw) @ orient
    elif orientation == "none":
        orient = upright_orientation(batch, rotmats)
    elif orientation != "camera":
        raise ValueError(f"unknown orientation mode {orientation!r}; choose camera, canonical or none")
    slots = torch.cat([matrix_to_rot6d(orient)[:, None], matrix_to_rot6d(rotmats[:, 1:])], 1)
    x = slots.reshape(batch, NUM_POSE_6D)
    if betas is not None:
        x = torch.cat([x, betas / betas_scale], 1)
    return x, yaw


def decode_pose(
    x: torch.Tensor,
    orientation: OrientationMode,
    yaw: torch.Tensor | None = None,
    orient: torch.Tensor | None = None,
    betas_scale: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The prior's vector to rotation matrices (Gram-Schmidt: always valid rotations).

    Args:
        x: (B, 144) or (B, 154).
        yaw: (B,) azimuth to put back in ``canonical`` mode (None: 0).
        orient: (B, 3, 3) the orientation to use in ``none`` mode (None: upright, facing).
    Returns:
        rotmats (B, 24, 3, 3) and betas (B, 10) or None.
    """
    batch = x.shape[0]
    rotmats = rot6d_to_matrix(x[:, :NUM_POSE_6D].reshape(batch, NUM_SMPL_JOINTS, 6))
    if orientation == "canonical" and yaw is not None:
        rotmats = torch.cat([(yaw_matrix(yaw) @ rotmats[:, 0])[:, None], rotmats[:, 1:]], 1)
    elif orientation == "none" and orient is not None:
        rotmats = torch.cat([orient[:, None], rotmats[:, 1:]], 1)
    betas = x[:, NUM_POSE_6D:] * betas_scale if x.shape[1] > NUM_POSE_6D else None
    return rotmats, betas


def project_to_rotations(x: torch.Tensor) -> torch.Tensor:
    """Re-orthonormalise every 6D slot of x (B, 144 [+ 10]); betas pass through."""
    batch = x.shape[0]
    pose = matrix_to_rot6d(rot6d_to_matrix(x[:, :NUM_POSE_6D].reshape(batch, NUM_SMPL_JOINTS, 6))).reshape(batch, NUM_POSE_6D)
    return torch.cat([pose, x[:, NUM_POSE_6D:]], 1)


def camera_orientations(
    frame_orient: torch.Tensor, generator: torch.Generator | None = None, tilt_degrees: float = 10.0,
    frame: str = "y_up",
) -> torch.Tensor:
    """Orientations as a camera would see them: ``R_tilt R_yaw(a) C R_frame`` with a uniform
    yaw ``a`` about the world's vertical, a normal tilt (pitch and roll, std ``tilt_degrees``)
    and ``C`` turning a y-up world into the camera's y-down frame.

    Args:
        frame_orient: (N, 3, 3) orientations in the data's world (``frame``: y_up, z_up, or
            camera, where the data already hold camera-frame orientations and only the
            tilt is added).
    Returns:
        (N, 3, 3).
    """
    n = frame_orient.shape[0]
    dtype, device = frame_orient.dtype, frame_orient.device
    if frame == "z_up":  # AMASS: z up -> y up is R_x(-90 degrees)
        to_y_up = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=dtype, device=device)
        frame_orient = to_y_up @ frame_orient
    elif frame not in ("y_up", "camera"):
        raise ValueError(f"unknown pose frame {frame!r}; choose y_up, z_up or camera")
    tilt = torch.randn(n, 2, generator=generator, dtype=torch.float64).to(device, dtype) * math.radians(tilt_degrees)
    if frame == "camera":
        oriented = frame_orient
    else:
        yaw = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 * math.pi).to(device, dtype)
        oriented = upright_orientation(n, frame_orient) @ yaw_matrix(yaw) @ frame_orient
    tilt_aa = torch.stack([tilt[:, 0], torch.zeros_like(tilt[:, 0]), tilt[:, 1]], 1)
    return axis_angle_to_matrix(tilt_aa) @ oriented
