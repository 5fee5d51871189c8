"""SMPL body-pose joint angles as anatomists read them: swing and twist per joint, and limits.

Joint angles ("local angles")
-----------------------------
Each joint's rotation is ``R = exp(swing) @ exp(twist)``: a twist about the bone's own axis in
the rest pose (x for the arm chain, y for everything else), then a swing about an axis
perpendicular to it. The three numbers per joint are the axis-angle components of both: the
twist axis component is the twist angle, the other two are the swing. For small angles they
equal SMPL's axis-angle. With SMPL's conventions (body faces +z, y up, left at +x):

- hips: x < 0 swings the thigh forward (flexion), z > 0 swings the left thigh out, y twists;
- knees: x > 0 bends the shin back; ankles: x > 0 points the toes down;
- spine, neck, head: x > 0 bends forward, z tilts sideways, y turns;
- left shoulder: z < 0 lowers the arm from the T-pose, y < 0 swings it forward, x twists it;
  left elbow: y < 0 bends the forearm forward; left collar: z > 0 shrugs.

Limits and keyframes are written for the left side ("anatomical" angles); the right side is
the mirror image, whose SMPL angles have the y and z components negated.
"""

from __future__ import annotations

import numpy as np
import torch

from spin_diff.body.joints import SMPL_JOINT_FLIP_PERM, SMPL_JOINT_NAMES
from spin_diff.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_axis_angle,
)

__all__ = [
    "ANATOMICAL_LIMITS",
    "ARM_CHAIN",
    "BODY_JOINT_NAMES",
    "BODY_ROW",
    "FLIP_ROWS",
    "JOINT_LIMITS",
    "MIRROR_SIGN",
    "NUM_BODY_JOINTS",
    "local_angles_to_pose",
    "pose_to_local_angles",
    "side_free",
    "within_limits",
]

BODY_JOINT_NAMES = SMPL_JOINT_NAMES[1:]  # the 23 joints of a body pose
NUM_BODY_JOINTS = len(BODY_JOINT_NAMES)
BODY_ROW = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}
ARM_CHAIN = ("collar", "shoulder", "elbow", "wrist", "hand")


def side_free(name: str) -> str:
    """A joint name without its side: ``left_knee`` -> ``knee``; ``spine1`` stays."""
    return name.split("_", 1)[1] if name.startswith(("left_", "right_")) else name


# Twist axis of each joint: 0 (x) along the arm chain, 1 (y) elsewhere.
_TWIST_AXIS = np.array([0 if side_free(n) in ARM_CHAIN else 1 for n in BODY_JOINT_NAMES])
_TWIST_MASK = np.eye(3)[_TWIST_AXIS]  # (23, 3)
# Anatomical -> SMPL local angles: the right side is the mirror image (y, z negated).
MIRROR_SIGN = np.array(
    [[1.0, -1.0, -1.0] if n.startswith("right_") else [1.0, 1.0, 1.0] for n in BODY_JOINT_NAMES]
)
# Row of each body joint's mirror image (the 24-joint flip permutation without the pelvis).
FLIP_ROWS = np.array(SMPL_JOINT_FLIP_PERM[1:]) - 1

# Anatomical limits per side-free joint name: (low, high) for the x, y, z local angles.
_LIMITS = {
    "hip": ((-2.4, 0.6), (-0.7, 0.7), (-0.45, 1.0)),
    "knee": ((0.0, 2.6), (-0.4, 0.4), (-0.1, 0.1)),
    "ankle": ((-0.6, 0.9), (-0.4, 0.4), (-0.35, 0.35)),
    "foot": ((-0.7, 0.35), (-0.15, 0.15), (-0.15, 0.15)),
    "spine1": ((-0.4, 0.7), (-0.4, 0.4), (-0.3, 0.3)),
    "spine2": ((-0.3, 0.6), (-0.35, 0.35), (-0.25, 0.25)),
    "spine3": ((-0.3, 0.5), (-0.35, 0.35), (-0.25, 0.25)),
    "neck": ((-0.5, 0.6), (-0.6, 0.6), (-0.35, 0.35)),
    "head": ((-0.5, 0.5), (-0.6, 0.6), (-0.35, 0.35)),
    "collar": ((-0.3, 0.3), (-0.35, 0.25), (-0.2, 0.45)),
    "shoulder": ((-1.6, 1.6), (-2.3, 1.0), (-1.65, 1.6)),
    "elbow": ((-1.2, 1.2), (-2.6, 0.05), (-0.15, 0.15)),
    "wrist": ((-0.8, 0.8), (-1.2, 1.2), (-0.6, 0.5)),
    "hand": ((-0.3, 0.3), (-0.4, 0.4), (-0.3, 0.3)),
}
ANATOMICAL_LIMITS = np.array([_LIMITS[side_free(n)] for n in BODY_JOINT_NAMES])  # (23, 3, 2)


def _mirror_limits(limits: np.ndarray) -> np.ndarray:
    sign = MIRROR_SIGN[:, :, None]
    flipped = limits * sign
    return np.stack([flipped.min(-1), flipped.max(-1)], axis=-1)


#: (23, 3, 2) low/high of each joint's local angles (SMPL signs, so the right side's y and z
#: ranges are the left side's negated). :func:`pose_to_local_angles` gives a pose's angles.
JOINT_LIMITS = _mirror_limits(ANATOMICAL_LIMITS)
JOINT_LIMITS.setflags(write=False)


# ---------------------------------------------------------------------------------------------
# Local angles <-> axis-angle


def _quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., 4) x (..., 4) scalar-first quaternions -> (..., 4) product a * b."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def local_angles_to_pose(angles) -> np.ndarray:
    """(N, 23, 3) local angles (SMPL signs) -> (N, 69) axis-angle body pose."""
    angles = torch.as_tensor(np.asarray(angles, dtype=np.float64))
    mask = torch.as_tensor(_TWIST_MASK)
    rotation = axis_angle_to_matrix(angles * (1 - mask)) @ axis_angle_to_matrix(angles * mask)
    return matrix_to_axis_angle(rotation).reshape(angles.shape[0], 3 * NUM_BODY_JOINTS).numpy()


def pose_to_local_angles(pose) -> np.ndarray:
    """(N, 69) axis-angle body pose -> (N, 23, 3) local angles (swing-twist decomposition)."""
    pose = torch.as_tensor(np.asarray(pose, dtype=np.float64)).reshape(-1, NUM_BODY_JOINTS, 3)
    mask = torch.as_tensor(_TWIST_MASK)
    quaternion = matrix_to_quaternion(axis_angle_to_matrix(pose))  # w >= 0
    along = (quaternion[..., 1:] * mask).sum(-1)
    twist_angle = 2.0 * torch.atan2(along, quaternion[..., 0])
    half = 0.5 * twist_angle[..., None]
    twist_inverse = torch.cat([torch.cos(half), -torch.sin(half) * mask], dim=-1)
    swing = quaternion_to_axis_angle(_quaternion_multiply(quaternion, twist_inverse))
    return (swing * (1 - mask) + twist_angle[..., None] * mask).numpy()


def within_limits(pose, tolerance: float = 1e-6) -> np.ndarray:
    """(N, 69) body poses -> (N,) True where every local angle is inside :data:`JOINT_LIMITS`."""
    angles = pose_to_local_angles(pose)
    low, high = JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1]
    return np.all((angles >= low - tolerance) & (angles <= high + tolerance), axis=(1, 2))

