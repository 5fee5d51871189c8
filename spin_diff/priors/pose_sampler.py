"""A sampler of plausible SMPL body poses (joints 1..23, no global orientation).

It feeds the free GMM pose prior (``scripts/build_free_priors.py``) and synthetic data. Poses
are valid for SMPL and for the bundled free model alike: the joints mean the same.

How a sample is made
--------------------
1. A posture ("walking", "sitting", ...) is drawn, and for it a body assembled from keyframes
   of its parts: legs, trunk and head (each sometimes moved part of the way towards another
   keyframe of the same part) and each arm (the right drawn independently of the left). Arm
   keyframes are given as upper-arm and forearm directions, solved to joint angles by two-bone
   inverse kinematics. Walking and running come from a gait phase instead, so that legs and
   arms swing in counter-phase; bending arms hang towards the ground from the bent trunk.
2. Correlated noise is added: a few synergies (spine flexion, twist, side bend, arm elevation,
   squat depth, ...) shared by neighbouring joints, noise passed down the kinematic tree from
   each joint to its child, and small independent noise.
3. Every joint angle is clamped to anatomical limits (:data:`JOINT_LIMITS`): knees and elbows
   bend one way only, the spine and neck a little.
4. Half the samples are mirrored left-right (the same as ``spin_diff.body.joints.flip_pose``).
5. Samples are drawn again when a limb passes through the body (limbs are capsules around the
   bones of the bundled model's skeleton, see :func:`self_intersections`) or when the pose
   lacks its posture's defining property (:func:`posture_checks`).

Everything is vectorised over samples; 10,000 poses take about a second on a CPU core.

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

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from spin_diff.body.joints import SMPL_JOINT_FLIP_PERM, SMPL_JOINT_NAMES, SMPL_PARENTS
from spin_diff.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_axis_angle,
)

__all__ = [
    "JOINT_LIMITS",
    "POINT_NAMES",
    "POSTURES",
    "BODY_JOINT_NAMES",
    "local_angles_to_pose",
    "pose_to_local_angles",
    "posture_checks",
    "posture_measures",
    "sample_poses",
    "self_intersections",
    "skeleton_points",
    "upright_global_orient",
    "within_limits",
]

POSTURES: tuple[str, ...] = (
    "standing",
    "walking",
    "running",
    "sitting",
    "crouching",
    "kneeling",
    "reaching",
    "arms_raised",
    "bending",
)

BODY_JOINT_NAMES = SMPL_JOINT_NAMES[1:]  # the 23 joints of a body pose
_NUM = len(BODY_JOINT_NAMES)
_ROW = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}
_ARM_CHAIN = ("collar", "shoulder", "elbow", "wrist", "hand")


def _side_free(name: str) -> str:
    return name.split("_", 1)[1] if name.startswith(("left_", "right_")) else name


# Twist axis of each joint: 0 (x) along the arm chain, 1 (y) elsewhere.
_TWIST_AXIS = np.array([0 if _side_free(n) in _ARM_CHAIN else 1 for n in BODY_JOINT_NAMES])
_TWIST_MASK = np.eye(3)[_TWIST_AXIS]  # (23, 3)
# Anatomical -> SMPL local angles: the right side is the mirror image (y, z negated).
_MIRROR_SIGN = np.array(
    [[1.0, -1.0, -1.0] if n.startswith("right_") else [1.0, 1.0, 1.0] for n in BODY_JOINT_NAMES]
)
# Row of each body joint's mirror image (the 24-joint flip permutation without the pelvis).
_FLIP_ROWS = np.array(SMPL_JOINT_FLIP_PERM[1:]) - 1

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
_ANATOMICAL_LIMITS = np.array([_LIMITS[_side_free(n)] for n in BODY_JOINT_NAMES])  # (23, 3, 2)


def _mirror_limits(limits: np.ndarray) -> np.ndarray:
    sign = _MIRROR_SIGN[:, :, None]
    flipped = limits * sign
    return np.stack([flipped.min(-1), flipped.max(-1)], axis=-1)


#: (23, 3, 2) low/high of each joint's local angles (SMPL signs, so the right side's y and z
#: ranges are the left side's negated). :func:`pose_to_local_angles` gives a pose's angles.
JOINT_LIMITS = _mirror_limits(_ANATOMICAL_LIMITS)
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
    return matrix_to_axis_angle(rotation).reshape(angles.shape[0], 3 * _NUM).numpy()


def pose_to_local_angles(pose) -> np.ndarray:
    """(N, 69) axis-angle body pose -> (N, 23, 3) local angles (swing-twist decomposition)."""
    pose = torch.as_tensor(np.asarray(pose, dtype=np.float64)).reshape(-1, _NUM, 3)
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


# ---------------------------------------------------------------------------------------------
# Skeleton and self-intersection test


@dataclass(frozen=True)
class _Skeleton:
    rest_joints: torch.Tensor  # (24, 3) bundled model, mean shape
    head_top: torch.Tensor  # (3,) offset from the head joint, rest pose
    hand_tips: torch.Tensor  # (2, 3) fingertip offsets from the left/right hand joints


@functools.lru_cache(maxsize=1)
def _skeleton() -> _Skeleton:
    from spin_diff.body.files import resolve_body_model
    from spin_diff.body.smpl_format import read_smpl_file

    arrays = read_smpl_file(resolve_body_model(None).model)
    vertices = np.asarray(arrays["v_template"], dtype=np.float64)
    joints = np.asarray(arrays["J_regressor"], dtype=np.float64) @ vertices
    head, left_hand = SMPL_JOINT_NAMES.index("head"), SMPL_JOINT_NAMES.index("left_hand")
    top = np.array([0.0, vertices[:, 1].max() - joints[head, 1] - 0.02, 0.0])
    reach = vertices[:, 0].max() - joints[left_hand, 0]  # hand joint to fingertip, along the arm
    tips = np.array([[reach, 0.0, 0.0], [-reach, 0.0, 0.0]])
    return _Skeleton(torch.as_tensor(joints), torch.as_tensor(top), torch.as_tensor(tips))


# Names of the points skeleton_points returns: the 24 joints, then these.
_EXTRA_POINTS = ("head_top", "left_fingertips", "right_fingertips")
POINT_NAMES = SMPL_JOINT_NAMES + _EXTRA_POINTS
_P = {name: i for i, name in enumerate(POINT_NAMES)}


def skeleton_points(pose) -> np.ndarray:
    """(N, 69) body poses -> (N, 27, 3) posed skeleton of the bundled model (mean shape, pelvis
    frame): the 24 SMPL joints, then head top, left and right fingertips (``POINT_NAMES``)."""
    from spin_diff.body.lbs import batch_rigid_transform

    skeleton = _skeleton()
    body = torch.as_tensor(np.asarray(pose, dtype=np.float64)).reshape(-1, _NUM, 3)
    full = torch.cat([body.new_zeros(body.shape[0], 1, 3), body], dim=1)
    rest = skeleton.rest_joints.expand(full.shape[0], -1, -1)
    joints, transforms = batch_rigid_transform(axis_angle_to_matrix(full), rest, SMPL_PARENTS)
    rotations = transforms[..., :3]
    head = SMPL_JOINT_NAMES.index("head")
    hands = [SMPL_JOINT_NAMES.index(n) for n in ("left_hand", "right_hand")]
    top = joints[:, head] + rotations[:, head] @ skeleton.head_top
    tips = joints[:, hands] + (rotations[:, hands] @ skeleton.hand_tips[..., None])[..., 0]
    return torch.cat([joints, top[:, None], tips], dim=1).numpy()


# Capsules around bones: (name, start point, end point, radius in metres). The radii are the
# core of each part (a little thinner than the flesh), so limbs may touch the body or rest on
# each other but not pass through.
_CAPSULES = (
    ("torso_low", "pelvis", "spine2", 0.085),
    ("torso_high", "spine2", "neck", 0.09),
    ("hips", "left_hip", "right_hip", 0.05),
    ("head", "neck", "head_top", 0.07),
    ("left_upper_arm", "left_shoulder", "left_elbow", 0.035),
    ("right_upper_arm", "right_shoulder", "right_elbow", 0.035),
    ("left_forearm", "left_elbow", "left_wrist", 0.025),
    ("right_forearm", "right_elbow", "right_wrist", 0.025),
    ("left_hand", "left_wrist", "left_fingertips", 0.015),
    ("right_hand", "right_wrist", "right_fingertips", 0.015),
    ("left_thigh", "left_hip", "left_knee", 0.04),
    ("right_thigh", "right_hip", "right_knee", 0.04),
    ("left_shin", "left_knee", "left_ankle", 0.04),
    ("right_shin", "right_knee", "right_ankle", 0.04),
    ("left_foot", "left_ankle", "left_foot", 0.03),
    ("right_foot", "right_ankle", "right_foot", 0.03),
)
_CAPSULE_INDEX = {c[0]: i for i, c in enumerate(_CAPSULES)}


def _collision_pairs() -> tuple[tuple[str, str], ...]:
    pairs = []
    trunk = ("torso_low", "torso_high", "hips", "head")
    for side, other in (("left", "right"), ("right", "left")):
        for part in ("forearm", "hand"):
            limb = f"{side}_{part}"
            pairs += [(limb, t) for t in trunk]
            pairs += [(limb, f"{s}_thigh") for s in ("left", "right")]
            pairs += [(limb, f"{other}_{p}") for p in ("upper_arm", "forearm", "hand")]
        pairs += [(f"{side}_upper_arm", t) for t in ("torso_low", "head")]
        pairs += [(f"{side}_elbow_point", "torso_high")]
        legs = ("thigh", "shin", "foot")
        pairs += [(f"{side}_{a}", f"{other}_{b}") for a in legs for b in ("shin", "foot")]
        pairs += [(f"{side}_foot", t) for t in ("torso_low", "hips")]
    pairs.append(("left_thigh", "right_thigh"))
    pairs.append(("left_upper_arm", "right_upper_arm"))
    unique = []
    for a, b in pairs:
        if (a, b) not in unique and (b, a) not in unique:
            unique.append((a, b))
    return tuple(unique)


def _segment_distances(p0, p1, q0, q1) -> torch.Tensor:
    """Closest distance between segments [p0, p1] and [q0, q1]; inputs (..., 3) -> (...)."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = (d1 * d1).sum(-1).clamp_min(1e-12)
    e = (d2 * d2).sum(-1).clamp_min(1e-12)
    b, c, f = (d1 * d2).sum(-1), (d1 * r).sum(-1), (d2 * r).sum(-1)
    denom = (a * e - b * b).clamp_min(1e-12)
    s = ((b * f - c * e) / denom).clamp(0, 1)
    t = ((b * s + f) / e).clamp(0, 1)
    s = ((b * t - c) / a).clamp(0, 1)
    t = ((b * s + f) / e).clamp(0, 1)
    return ((p0 + d1 * s[..., None]) - (q0 + d2 * t[..., None])).norm(dim=-1)


_PAIRS = _collision_pairs()
# "<side>_elbow_point" is the elbow alone (a zero-length capsule): the upper arm starts at the
# shoulder, which touches the chest capsule, but the elbow must stay clear of the chest.
_PAIR_FIRST = np.array([_CAPSULE_INDEX[a.replace("_elbow_point", "_upper_arm")] for a, _ in _PAIRS])
_PAIR_POINT_ONLY = np.array([a.endswith("_elbow_point") for a, _ in _PAIRS])
_PAIR_SECOND = np.array([_CAPSULE_INDEX[b] for _, b in _PAIRS])
_RADII = np.array([c[3] for c in _CAPSULES])
_PAIR_MARGIN = _RADII[_PAIR_FIRST] + _RADII[_PAIR_SECOND]


def _pair_clearances(points: torch.Tensor) -> tuple[torch.Tensor, tuple[tuple[str, str], ...]]:
    """(N, 27, 3) skeleton points -> (N, pairs) surface clearance of each tested capsule pair
    (negative: the capsules overlap), and the pairs' names."""
    start = torch.stack([points[:, _P[c[1]]] for c in _CAPSULES], dim=1)  # (N, C, 3)
    end = torch.stack([points[:, _P[c[2]]] for c in _CAPSULES], dim=1)
    first, second = torch.as_tensor(_PAIR_FIRST), torch.as_tensor(_PAIR_SECOND)
    p1 = end[:, first]
    p0 = torch.where(torch.as_tensor(_PAIR_POINT_ONLY)[None, :, None], p1, start[:, first])
    distances = _segment_distances(p0, p1, start[:, second], end[:, second])
    return distances - torch.as_tensor(_PAIR_MARGIN, dtype=distances.dtype), _PAIRS


def self_intersections(pose) -> np.ndarray:
    """(N, 69) body poses -> (N,) True where a limb passes through the body or another limb.

    A cheap test on the bundled model's skeleton: each bone is a capsule (:data:`_CAPSULES`);
    hands and forearms must stay clear of the trunk, the head, the thighs and the other arm;
    elbows of the chest; legs and feet of each other.
    """
    points = torch.as_tensor(skeleton_points(pose))
    clearance, _ = _pair_clearances(points)
    return (clearance < 0).any(dim=1).numpy()


# ---------------------------------------------------------------------------------------------
# Keyframes


def _anatomical(**joints: tuple[float, float, float]) -> np.ndarray:
    """(23, 3) anatomical local angles. A side-free name (``hip``) sets both sides alike."""
    angles = np.zeros((_NUM, 3))
    for name, value in joints.items():
        rows = [_ROW[name]] if name in _ROW else [_ROW["left_" + name], _ROW["right_" + name]]
        for row in rows:
            angles[row] = value
    return angles


def _swing_to(direction) -> np.ndarray:
    """(..., 3) upper-arm directions -> (..., 3) shoulder swings (axis-angle perpendicular to
    x) that turn the rest arm (+x) to them."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    axis = np.cross(np.array([1.0, 0.0, 0.0]), d)
    sin = np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.arctan2(sin, d[..., :1])
    return axis / np.maximum(sin, 1e-12) * angle


def _rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3), numpy (keyframe construction only)."""
    return axis_angle_to_matrix(torch.as_tensor(axis_angle, dtype=torch.float64)).numpy()


def _arm_ik(upper, forearm, straight_twist=0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left-arm shoulder and elbow angles pointing the upper arm and the forearm along the given
    body-frame directions (x out to the side, y up, z forward).

    The shoulder swings the arm from the T-pose straight to ``upper``; its twist turns the
    elbow's hinge (the rest y axis) perpendicular to both directions, so that bending the
    elbow (y < 0 on the left) carries the forearm onto ``forearm``. A straight arm keeps
    ``straight_twist``.

    Args:
        upper, forearm: (..., 3) directions, not necessarily unit.
    Returns:
        shoulder swing (..., 3) (x = 0), shoulder twist (...), elbow bend (...) >= 0.
    """
    u = np.asarray(upper, dtype=np.float64)
    f = np.asarray(forearm, dtype=np.float64)
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    swing = _swing_to(u)
    bend = np.arccos(np.clip((u * f).sum(-1), -1.0, 1.0))
    hinge = np.cross(f, u)  # a negative rotation about it turns u towards f
    norm = np.linalg.norm(hinge, axis=-1)
    hinge = hinge / np.maximum(norm, 1e-12)[..., None]
    local = np.einsum("...ji,...j->...i", _rodrigues(swing), hinge)  # S^T h
    twist = np.where(norm > 1e-6, np.arctan2(local[..., 2], local[..., 1]), straight_twist)
    return swing, twist, bend


@dataclass(frozen=True)
class _Arm:
    """A left-arm keyframe (the right arm uses its mirror image).

    upper, forearm: directions of the upper arm and the forearm in the body frame (x out to
        the side, y up, z forward). forearm_twist: rotation of the forearm about itself.
        wrist: (flexion, deviation); negative flexion lifts the back of the hand.
        collar: (forward/back, shrug).
    """

    upper: tuple[float, float, float]
    forearm: tuple[float, float, float] | None = None  # None: straight arm
    forearm_twist: float = 0.0
    wrist: tuple[float, float] = (0.0, 0.0)
    collar: tuple[float, float] = (0.0, 0.0)

    def angles(self) -> np.ndarray:
        """(5, 3) anatomical local angles of collar, shoulder, elbow, wrist, hand."""
        swing, twist, bend = _arm_ik(self.upper, self.upper if self.forearm is None else self.forearm)
        return np.array(
            [
                [0.0, self.collar[0], self.collar[1]],
                [float(twist), swing[1], swing[2]],
                [self.forearm_twist, -float(bend), 0.0],
                [0.0, self.wrist[0], self.wrist[1]],
                [0.0, 0.0, 0.0],
            ]
        )


_LEFT_ARM_ROWS = [_ROW["left_" + n] for n in _ARM_CHAIN]
_RIGHT_ARM_ROWS = [_ROW["right_" + n] for n in _ARM_CHAIN]


def _arm_library(*arms: _Arm) -> np.ndarray:
    return np.stack([arm.angles() for arm in arms])  # (K, 5, 3)


# Arms: everyday positions.
_ARMS_RELAXED = _arm_library(
    _Arm((0.15, -1.0, 0.0), (0.1, -1.0, 0.15)),  # hanging at the side
    _Arm((0.2, -1.0, 0.1), (0.1, -1.0, 0.4)),
    _Arm((0.12, -1.0, -0.15), (0.08, -1.0, 0.0)),
    _Arm((0.12, -1.0, 0.15), (-0.1, -0.2, 1.0)),  # forearm forward, holding something
    _Arm((0.1, -1.0, 0.3), (-0.35, 0.45, 0.8)),  # hand up in front (phone)
    _Arm((0.7, -0.6, -0.35), (-0.64, -0.68, 0.39)),  # hand on the hip
    _Arm((0.1, -1.0, 0.2), (-0.9, -0.1, 0.45)),  # forearm across the belly
    _Arm((0.15, -1.0, -0.05), (-0.15, -1.0, 0.3)),  # hand at the front pocket
)
_ARMS_RAISED = _arm_library(
    _Arm((0.5, 0.85, 0.1), collar=(0.0, 0.3)),  # V
    _Arm((0.2, 1.0, 0.05), (0.2, 1.0, 0.1), collar=(0.0, 0.4)),  # straight up
    _Arm((0.6, 0.8, 0.15), (0.1, 1.0, 0.2), collar=(0.0, 0.3)),  # cheering
    _Arm((0.55, 0.8, 0.05), (-0.5, 0.85, 0.0), collar=(0.0, 0.2)),  # hand on top of the head
    _Arm((0.35, 0.9, 0.25), (-0.5, 0.8, 0.2), collar=(0.0, 0.3)),  # holding something overhead
)
_ARMS_REACH = _arm_library(
    _Arm((0.05, 0.0, 1.0)),  # forward
    _Arm((0.1, 0.6, 0.8), collar=(-0.1, 0.2)),  # forward and up
    _Arm((0.6, 0.25, 0.75), collar=(-0.1, 0.1)),  # forward, to the side
    _Arm((-0.1, 0.1, 1.0), collar=(-0.2, 0.1)),  # forward, a little across
    _Arm((0.15, -0.35, 0.95)),  # forward and down
)
_ARMS_COUNTER = _arm_library(  # the free arm while reaching or bending
    _Arm((0.15, -1.0, 0.0), (0.1, -1.0, 0.15)),
    _Arm((0.2, -1.0, -0.3), (0.15, -1.0, -0.1)),
    _Arm((0.12, -1.0, 0.15), (-0.1, -0.2, 1.0)),
    _Arm((0.7, -0.6, -0.35), (-0.64, -0.68, 0.39)),  # on the hip
)
# Directions found by two-bone inverse kinematics to wrist targets on the posture's body.
_ARMS_SITTING = _arm_library(
    _Arm((0.08, -0.97, 0.21), (-0.2, -0.44, 0.88), wrist=(-0.5, 0.0)),  # hand on the thigh
    _Arm((0.04, -0.72, 0.69), (-0.03, -0.64, 0.76), wrist=(-0.4, 0.0)),  # hand on the knee
    _Arm((0.2, -1.0, 0.0), (0.15, -1.0, 0.1)),  # hanging (armchair)
    _Arm((0.12, -1.0, 0.2), (-0.2, 0.1, 1.0)),  # holding something
    _Arm((0.33, -0.93, 0.17), (-0.86, -0.36, 0.36), wrist=(-0.6, 0.0)),  # hands in the lap
)
_ARMS_CROUCH = _arm_library(
    _Arm((0.94, -0.13, 0.32), (-0.51, 0.06, 0.86)),  # forearm across the knee
    _Arm((0.72, 0.08, 0.69), (-0.62, 0.13, 0.78)),  # forearms over the knees
    _Arm((0.37, -0.63, 0.68), (0.25, -0.65, 0.71)),  # hand down to the floor, outside the knee
    _Arm((-0.03, 0.12, 0.99), (-0.07, 0.24, 0.97)),  # arms forward for balance
)
_ARMS_KNEELING = np.concatenate([_ARMS_RELAXED[[0, 1, 3, 5]], _ARMS_SITTING[[1]]])

_TORSO_UPRIGHT = np.stack(
    [
        _anatomical(),
        _anatomical(spine1=(0.05, 0.0, 0.0), spine2=(0.03, 0.0, 0.0), spine3=(0.03, 0.0, 0.0)),
        _anatomical(spine1=(-0.08, 0.0, 0.0), spine3=(0.05, 0.0, 0.0)),
        _anatomical(spine1=(0.0, 0.1, 0.05), spine2=(0.0, 0.1, 0.03), spine3=(0.0, 0.05, 0.0)),
    ]
)
_HEAD_NEUTRAL = np.stack(
    [
        _anatomical(),
        _anatomical(neck=(0.15, 0.0, 0.0), head=(0.1, 0.0, 0.0)),  # looking down a little
        _anatomical(neck=(0.0, 0.3, 0.0), head=(0.0, 0.2, 0.0)),  # turned
        _anatomical(neck=(-0.1, 0.0, 0.1), head=(-0.05, 0.0, 0.05)),
    ]
)

_LEGS_STANDING = np.stack(
    [
        _anatomical(hip=(0.0, 0.0, 0.03)),
        _anatomical(hip=(-0.03, 0.1, 0.09), ankle=(0.0, 0.0, -0.08)),  # feet apart
        _anatomical(left_hip=(-0.25, 0.05, 0.12), left_knee=(0.35, 0.0, 0.0), left_ankle=(0.15, 0.0, -0.05),
                    right_hip=(0.0, 0.0, -0.02)),  # weight on the right leg  # fmt: skip
        _anatomical(left_hip=(-0.3, 0.1, 0.05), left_knee=(0.1, 0.0, 0.0), left_ankle=(-0.2, 0.0, 0.0),
                    right_hip=(0.1, 0.0, 0.04), right_ankle=(0.1, 0.0, 0.0)),  # a foot forward  # fmt: skip
        _anatomical(hip=(-0.1, 0.0, 0.05), knee=(0.2, 0.0, 0.0), ankle=(-0.1, 0.0, 0.0)),  # soft knees
    ]
)
_LEGS_SITTING = np.stack(
    [
        _anatomical(hip=(-1.5, 0.0, 0.1), knee=(1.5, 0.0, 0.0)),
        _anatomical(hip=(-1.45, 0.1, 0.25), knee=(1.35, 0.0, 0.0), ankle=(0.0, 0.0, -0.15)),  # knees apart
        _anatomical(hip=(-1.6, 0.0, 0.05), knee=(1.95, 0.0, 0.0), ankle=(0.3, 0.0, 0.0)),  # feet tucked
        _anatomical(left_hip=(-1.4, 0.0, 0.12), left_knee=(1.0, 0.0, 0.0), left_ankle=(0.2, 0.0, 0.0),
                    right_hip=(-1.55, 0.0, 0.1), right_knee=(1.6, 0.0, 0.0)),  # a leg stretched  # fmt: skip
        _anatomical(hip=(-1.3, -0.1, 0.12), knee=(1.2, 0.0, 0.0), ankle=(0.2, 0.0, 0.0)),  # reclined
    ]
)
_TORSO_SITTING = np.stack(
    [
        _anatomical(),
        _anatomical(spine1=(0.15, 0.0, 0.0), spine2=(0.1, 0.0, 0.0), spine3=(0.05, 0.0, 0.0)),  # slouch
        _anatomical(spine1=(0.25, 0.0, 0.0), spine2=(0.15, 0.0, 0.0), neck=(-0.15, 0.0, 0.0)),  # lean in
        _anatomical(spine1=(-0.15, 0.0, 0.0), spine2=(0.05, 0.0, 0.0)),  # leaning back
    ]
)
_LEGS_CROUCHING = np.stack(
    [
        _anatomical(hip=(-2.0, 0.0, 0.35), knee=(2.3, 0.0, 0.0), ankle=(-0.35, 0.0, -0.1)),
        _anatomical(hip=(-1.8, 0.15, 0.45), knee=(2.1, 0.0, 0.0), ankle=(-0.3, 0.0, -0.15)),
        _anatomical(hip=(-2.1, 0.0, 0.25), knee=(2.45, 0.0, 0.0), ankle=(-0.2, 0.0, -0.05), foot=(-0.4, 0.0, 0.0)),
        _anatomical(left_hip=(-2.0, 0.0, 0.2), left_knee=(2.4, 0.0, 0.0), left_ankle=(-0.35, 0.0, 0.0),
                    right_hip=(-1.6, 0.0, 0.45), right_knee=(1.9, 0.0, 0.0), right_ankle=(-0.2, 0.0, -0.1)),  # fmt: skip
    ]
)
_TORSO_CROUCHING = np.stack(
    [
        _anatomical(spine1=(0.2, 0.0, 0.0), spine2=(0.15, 0.0, 0.0), spine3=(0.1, 0.0, 0.0), neck=(-0.2, 0.0, 0.0)),
        _anatomical(spine1=(0.35, 0.0, 0.0), spine2=(0.25, 0.0, 0.0), spine3=(0.1, 0.0, 0.0), neck=(-0.3, 0.0, 0.0)),
        _anatomical(spine1=(0.1, 0.0, 0.0), spine2=(0.1, 0.0, 0.0), neck=(-0.1, 0.0, 0.0)),
    ]
)
_LEGS_KNEELING = np.stack(
    [
        # on one knee: left foot planted in front, right knee down with the shin behind
        _anatomical(left_hip=(-1.5, 0.0, 0.15), left_knee=(1.6, 0.0, 0.0), left_ankle=(-0.1, 0.0, 0.0),
                    right_hip=(0.05, 0.0, 0.05), right_knee=(1.55, 0.0, 0.0), right_ankle=(0.5, 0.0, 0.0)),  # fmt: skip
        # upright on both knees
        _anatomical(hip=(-0.05, 0.0, 0.08), knee=(1.55, 0.0, 0.0), ankle=(0.6, 0.0, 0.0)),
        # sitting back on the heels
        _anatomical(hip=(-1.0, 0.0, 0.12), knee=(2.5, 0.0, 0.0), ankle=(0.8, 0.0, 0.0)),
        _anatomical(left_hip=(-1.3, 0.1, 0.2), left_knee=(1.9, 0.0, 0.0), left_ankle=(-0.3, 0.0, 0.0),
                    right_hip=(-0.2, 0.0, 0.05), right_knee=(1.8, 0.0, 0.0), right_ankle=(0.4, 0.0, 0.0),
                    right_foot=(-0.5, 0.0, 0.0)),  # fmt: skip
    ]
)
_LEGS_BENDING = np.stack(
    [
        _anatomical(hip=(-1.0, 0.0, 0.06)),
        _anatomical(hip=(-1.2, 0.0, 0.08), knee=(0.3, 0.0, 0.0), ankle=(-0.2, 0.0, 0.0)),
        _anatomical(hip=(-0.8, 0.05, 0.12), knee=(0.1, 0.0, 0.0), ankle=(0.0, 0.0, -0.08)),
        _anatomical(left_hip=(-1.2, 0.0, 0.08), left_knee=(0.5, 0.0, 0.0), left_ankle=(-0.3, 0.0, 0.0),
                    right_hip=(-0.85, 0.0, 0.06), right_knee=(0.05, 0.0, 0.0)),  # fmt: skip
    ]
)
_TORSO_BENDING = np.stack(
    [
        _anatomical(spine1=(0.2, 0.0, 0.0), spine2=(0.15, 0.0, 0.0), spine3=(0.1, 0.0, 0.0), neck=(-0.2, 0.0, 0.0)),
        _anatomical(spine1=(0.3, 0.0, 0.0), spine2=(0.25, 0.0, 0.0), spine3=(0.15, 0.0, 0.0), neck=(-0.35, 0.0, 0.0), head=(-0.1, 0.0, 0.0)),  # fmt: skip
        _anatomical(spine1=(0.15, 0.1, 0.0), spine2=(0.15, 0.1, 0.0), spine3=(0.1, 0.0, 0.0), neck=(0.1, 0.0, 0.0)),
    ]
)
_TORSO_REACHING = np.stack(
    [
        _anatomical(spine1=(0.1, 0.0, 0.0), spine2=(0.05, 0.0, 0.0)),
        _anatomical(spine1=(0.2, -0.12, -0.05), spine2=(0.15, -0.1, -0.05), spine3=(0.05, -0.05, 0.0)),  # towards the left hand  # fmt: skip
        _anatomical(spine1=(-0.05, 0.0, -0.05), spine2=(0.0, -0.05, -0.05), neck=(-0.15, 0.0, 0.0)),  # up on tiptoe
    ]
)

# ---------------------------------------------------------------------------------------------
# Gait


def _periodic_bump(phase: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A smooth periodic bump of height 1 at ``centre`` (phase in cycles)."""
    delta = (phase - centre + 0.5) % 1.0 - 0.5
    return np.exp(-0.5 * (delta / width) ** 2)


@dataclass(frozen=True)
class _Gait:
    hip_mean: float  # hip flexion about which the leg swings (negative: forward)
    hip_amplitude: float
    knee_stance: float
    knee_swing: float
    swing_centre: float  # phase of the largest knee bend
    swing_width: float
    ankle_push: float  # plantar flexion at push-off
    arm_swing: float
    elbow_mean: float
    elbow_amplitude: float
    trunk_lean: float


_WALK = _Gait(-0.15, 0.36, 0.2, 1.05, 0.72, 0.11, 0.3, 0.35, 0.3, 0.15, 0.04)
_RUN = _Gait(-0.35, 0.65, 0.5, 1.9, 0.74, 0.14, 0.45, 0.65, 1.55, 0.2, 0.15)


def _gait_leg(gait: _Gait, phase: np.ndarray, amplitude: np.ndarray) -> np.ndarray:
    """Hip, knee, ankle x angles (n, 3) over the cycle; phase 0 is the heel strike."""
    hip = gait.hip_mean - amplitude * gait.hip_amplitude * np.cos(2 * np.pi * phase)
    knee = (
        0.05
        + gait.knee_stance * _periodic_bump(phase, 0.15, 0.08)
        + amplitude * gait.knee_swing * _periodic_bump(phase, gait.swing_centre, gait.swing_width)
    )
    ankle = gait.ankle_push * _periodic_bump(phase, 0.6, 0.06) - 0.15 * _periodic_bump(phase, 0.4, 0.1)
    return np.stack([hip, knee, ankle], axis=1)


def _gait(gait: _Gait, n: int, rng: np.random.Generator) -> np.ndarray:
    # Phases where the swinging foot passes the standing one are left out: those look like
    # standing, and the cycle is the stride in between.
    phase = rng.uniform(-0.16, 0.16, n) + rng.integers(0, 2, n) * 0.5 + 0.05
    amplitude = rng.uniform(0.75, 1.15, n)
    angles = np.zeros((n, _NUM, 3))
    for side, shift in (("left", 0.0), ("right", 0.5)):
        leg = _gait_leg(gait, (phase + shift) % 1.0, amplitude)
        angles[:, _ROW[f"{side}_hip"], 0] = leg[:, 0]
        angles[:, _ROW[f"{side}_hip"], 2] = 0.04
        angles[:, _ROW[f"{side}_knee"], 0] = leg[:, 1]
        angles[:, _ROW[f"{side}_ankle"], 0] = leg[:, 2]
        # The arm swings with the opposite leg: forward when that leg is forward; the elbow
        # bends more on the forward swing.
        swing = -amplitude * gait.arm_swing * np.cos(2 * np.pi * (phase + shift + 0.5))
        bend = gait.elbow_mean + gait.elbow_amplitude * np.sin(np.clip(swing, 0.0, None))
        upper = np.stack([np.full(n, 0.2), -np.cos(swing), np.sin(swing)], axis=1)
        forearm = np.stack([np.full(n, 0.05), -np.cos(swing + bend), np.sin(swing + bend)], axis=1)
        shoulder, twist, elbow = _arm_ik(upper, forearm)
        angles[:, _ROW[f"{side}_shoulder"]] = shoulder + twist[:, None] * np.array([1.0, 0.0, 0.0])
        angles[:, _ROW[f"{side}_elbow"], 1] = -elbow
    lean = gait.trunk_lean * rng.uniform(0.5, 1.5, n)
    angles[:, _ROW["spine1"], 0] = lean
    angles[:, _ROW["spine2"], 0] = 0.5 * lean
    angles[:, _ROW["neck"], 0] = -0.5 * lean
    # Counter-rotation of the trunk against the pelvis.
    twist = 0.08 * np.cos(2 * np.pi * phase)
    for joint in ("spine1", "spine2", "spine3"):
        angles[:, _ROW[joint], 1] = twist
    return angles


# ---------------------------------------------------------------------------------------------
# Postures


def _pick(
    library: np.ndarray, n: int, rng: np.random.Generator, blend: float = 0.35, reach: float = 0.4
) -> np.ndarray:
    """n draws from a keyframe library (K, ...): a keyframe, moved part of the way (up to
    ``reach``) towards another one with probability ``blend``."""
    first = rng.integers(0, library.shape[0], n)
    second = rng.integers(0, library.shape[0], n)
    weight = rng.uniform(0.0, reach, n) * (rng.uniform(size=n) < blend)
    weight = weight.reshape((n,) + (1,) * (library.ndim - 1))
    return (1 - weight) * library[first] + weight * library[second]


def _arms(library: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Arm keyframes are not blended: angles between two arm positions with different upper-arm
    twists put the hand in odd places (the noise varies them instead)."""
    return _pick(library, n, rng, blend=0.0)


def _with_arms(angles: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    angles[:, _LEFT_ARM_ROWS] += left
    angles[:, _RIGHT_ARM_ROWS] += right
    return angles


def _posture_standing(n, rng):
    body = _pick(_LEGS_STANDING, n, rng) + _pick(_TORSO_UPRIGHT, n, rng) + _pick(_HEAD_NEUTRAL, n, rng)
    return _with_arms(body, _arms(_ARMS_RELAXED, n, rng), _arms(_ARMS_RELAXED, n, rng))


def _posture_walking(n, rng):
    return _gait(_WALK, n, rng) + _pick(_HEAD_NEUTRAL, n, rng, blend=0.3) * 0.5


def _posture_running(n, rng):
    return _gait(_RUN, n, rng)


def _posture_sitting(n, rng):
    body = _pick(_LEGS_SITTING, n, rng) + _pick(_TORSO_SITTING, n, rng) + _pick(_HEAD_NEUTRAL, n, rng)
    return _with_arms(body, _arms(_ARMS_SITTING, n, rng), _arms(_ARMS_SITTING, n, rng))


def _posture_crouching(n, rng):
    body = _pick(_LEGS_CROUCHING, n, rng) + _pick(_TORSO_CROUCHING, n, rng)
    return _with_arms(body, _arms(_ARMS_CROUCH, n, rng), _arms(_ARMS_CROUCH, n, rng))


def _posture_kneeling(n, rng):
    legs = _pick(_LEGS_KNEELING, n, rng, blend=0.0)
    body = legs + _pick(_TORSO_UPRIGHT, n, rng) + _pick(_HEAD_NEUTRAL, n, rng)
    return _with_arms(body, _arms(_ARMS_KNEELING, n, rng), _arms(_ARMS_KNEELING, n, rng))


def _posture_reaching(n, rng):
    # The left arm reaches; mirroring gives the right-handed half.
    legs = _pick(_LEGS_STANDING, n, rng)
    body = legs + _pick(_TORSO_REACHING, n, rng, blend=0.3) + _pick(_HEAD_NEUTRAL, n, rng) * 0.5
    left = _arms(_ARMS_REACH, n, rng)
    # A quarter reach with both hands, to the same place (the noise makes them differ a little).
    both = rng.uniform(size=n) < 0.25
    right = np.where(both[:, None, None], left, _arms(_ARMS_COUNTER, n, rng))
    return _with_arms(body, left, right)


def _posture_arms_raised(n, rng):
    body = _pick(_LEGS_STANDING, n, rng) + _pick(_TORSO_UPRIGHT, n, rng) + _pick(_HEAD_NEUTRAL, n, rng) * 0.5
    body[:, _ROW["neck"], 0] -= rng.uniform(0.0, 0.3, n)  # looking up a little
    return _with_arms(body, _arms(_ARMS_RAISED, n, rng), _arms(_ARMS_RAISED, n, rng))


def _hanging_arm(trunk_flexion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n,) forward flexion of the chest from upright -> (n, 5, 3) left-arm angles hanging
    towards the ground, or reaching a little ahead of it, with a soft elbow."""
    n = trunk_flexion.shape[0]
    ahead = trunk_flexion + rng.uniform(-0.15, 0.3, n)
    upper = np.stack([rng.uniform(0.05, 0.3, n), -np.cos(ahead), np.sin(ahead)], axis=1)
    bend = rng.uniform(0.0, 0.5, n)
    forearm = np.stack([np.full(n, 0.05), -np.cos(ahead + bend), np.sin(ahead + bend)], axis=1)
    swing, twist, elbow = _arm_ik(upper, forearm)
    arm = np.zeros((n, len(_ARM_CHAIN), 3))
    arm[:, 1] = swing + twist[:, None] * np.array([1.0, 0.0, 0.0])
    arm[:, 2, 1] = -elbow
    return arm


def _posture_bending(n, rng):
    body = _pick(_LEGS_BENDING, n, rng) + _pick(_TORSO_BENDING, n, rng)
    hips = body[:, [_ROW["left_hip"], _ROW["right_hip"]], 0].mean(1)
    spine = body[:, [_ROW["spine1"], _ROW["spine2"], _ROW["spine3"]], 0].sum(1)
    chest = spine - hips  # hip flexion is negative x
    return _with_arms(body, _hanging_arm(chest, rng), _hanging_arm(chest, rng))


_GENERATORS = {
    "standing": _posture_standing,
    "walking": _posture_walking,
    "running": _posture_running,
    "sitting": _posture_sitting,
    "crouching": _posture_crouching,
    "kneeling": _posture_kneeling,
    "reaching": _posture_reaching,
    "arms_raised": _posture_arms_raised,
    "bending": _posture_bending,
}
# How much of the generic noise each posture takes (its keyframes already span the rest).
_NOISE_SCALE = {name: 1.0 for name in POSTURES} | {
    "walking": 0.7, "running": 0.7, "sitting": 0.8, "kneeling": 0.8,
}

# ---------------------------------------------------------------------------------------------
# Noise


def _noise_basis() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synergies (M, 23, 3) with their standard deviations (M,), and the per-joint standard
    deviation (23, 3) of the tree-correlated noise (anatomical angles)."""
    synergies = [
        (0.08, _anatomical(spine1=(1, 0, 0), spine2=(1, 0, 0), spine3=(0.7, 0, 0), neck=(-0.5, 0, 0))),
        (0.08, _anatomical(spine1=(0, 1, 0), spine2=(0, 1, 0), spine3=(0, 0.8, 0), neck=(0, -0.5, 0))),
        (0.06, _anatomical(spine1=(0, 0, 1), spine2=(0, 0, 1), spine3=(0, 0, 0.7), neck=(0, 0, -0.6))),
        (0.10, _anatomical(neck=(1, 0, 0), head=(0.7, 0, 0))),
        (0.15, _anatomical(neck=(0, 1, 0), head=(0, 1, 0))),
        (0.07, _anatomical(hip=(-1, 0, 0), knee=(1.6, 0, 0), ankle=(-0.7, 0, 0))),
        (0.03, _anatomical(hip=(0, 0, 1), ankle=(0, 0, -0.8))),
        (0.05, _anatomical(hip=(0, 1, 0))),
    ]
    for side in ("left", "right"):
        synergies += [
            (0.08, _anatomical(**{f"{side}_collar": (0, 0, 0.3), f"{side}_shoulder": (0, 0, 1)})),
            (0.08, _anatomical(**{f"{side}_shoulder": (0, -1, 0), f"{side}_elbow": (0, -0.5, 0)})),
            (0.10, _anatomical(**{f"{side}_elbow": (0, -1, 0), f"{side}_wrist": (0, -0.5, 0)})),
        ]
    std = np.array([s for s, _ in synergies])
    basis = np.stack([b for _, b in synergies])
    joint_std = {
        "hip": (0.05, 0.08, 0.025), "knee": (0.06, 0.04, 0.01), "ankle": (0.06, 0.05, 0.04),
        "foot": (0.05, 0.02, 0.02), "spine1": (0.03, 0.03, 0.02), "spine2": (0.02, 0.02, 0.02),
        "spine3": (0.02, 0.02, 0.02), "neck": (0.05, 0.08, 0.04), "head": (0.05, 0.08, 0.04),
        "collar": (0.03, 0.04, 0.04), "shoulder": (0.12, 0.08, 0.08), "elbow": (0.12, 0.1, 0.02),
        "wrist": (0.15, 0.15, 0.1), "hand": (0.08, 0.12, 0.08),
    }  # fmt: skip
    per_joint = np.array([joint_std[_side_free(n)] for n in BODY_JOINT_NAMES])
    return basis, std, per_joint


_BASIS, _BASIS_STD, _JOINT_STD = _noise_basis()
_PARENT_ROWS = np.array([max(p - 1, 0) for p in SMPL_PARENTS[1:]])
_HAS_PARENT = np.array([p > 0 for p in SMPL_PARENTS[1:]], dtype=np.float64)


def _noise(n: int, rng: np.random.Generator, scale: np.ndarray) -> np.ndarray:
    """(n, 23, 3) correlated noise on anatomical angles; ``scale`` (n,) per sample."""
    coefficients = rng.standard_normal((n, _BASIS.shape[0])) * _BASIS_STD
    low_rank = np.einsum("nm,mjc->njc", coefficients, _BASIS)
    latent = rng.standard_normal((n, _NUM, 3))
    # Each joint shares half of its parent's latent noise: neighbours move together.
    tree = (latent + 0.5 * latent[:, _PARENT_ROWS] * _HAS_PARENT[None, :, None]) * _JOINT_STD
    independent = 0.3 * rng.standard_normal((n, _NUM, 3)) * _JOINT_STD
    return (low_rank + tree + independent) * scale[:, None, None]


def _clamp(anatomical: np.ndarray) -> np.ndarray:
    return np.clip(anatomical, _ANATOMICAL_LIMITS[..., 0], _ANATOMICAL_LIMITS[..., 1])


def _draw(posture_index: np.ndarray, names: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """(n,) indices into ``names`` -> (n, 23, 3) anatomical angles, mirrored at random."""
    n = posture_index.shape[0]
    angles = np.zeros((n, _NUM, 3))
    for k, name in enumerate(names):  # one vectorised draw per posture
        rows = np.flatnonzero(posture_index == k)
        if rows.size:
            angles[rows] = _GENERATORS[name](rows.size, rng)
    scale = np.array([_NOISE_SCALE[names[k]] for k in posture_index])
    angles = _clamp(angles + _noise(n, rng, scale))
    mirror = rng.uniform(size=n) < 0.5
    # Mirroring swaps the sides; in anatomical angles nothing else changes.
    angles[mirror] = angles[mirror][:, _FLIP_ROWS]
    return angles


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between (..., 3) vectors."""
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def posture_measures(points: np.ndarray) -> dict[str, np.ndarray]:
    """Geometric measures of posed skeletons (N, 27, 3) from :func:`skeleton_points`, each (N,)
    or (N, 2) for left/right: what tells the postures apart (angles in degrees, lengths in metres)."""
    def joint(name):
        return points[:, _P[name]]

    def pair(name):
        return np.stack([joint("left_" + name), joint("right_" + name)], axis=1)

    thigh, shin = pair("knee") - pair("hip"), pair("ankle") - pair("knee")
    upper, forearm = pair("elbow") - pair("shoulder"), pair("wrist") - pair("elbow")
    legs = pair("hip").mean(1) - pair("ankle").mean(1)
    return {
        # angle of the thigh from the pelvis's down direction (0 standing, 90 sitting)
        "hip_flexion": _angle_deg(thigh, np.array([0.0, -1.0, 0.0])),
        "knee_bend": _angle_deg(thigh, shin),
        "elbow_bend": _angle_deg(upper, forearm),
        "shin_backward": shin[..., 2] / np.linalg.norm(shin, axis=-1),  # -1: pointing straight back
        "ankle_z": pair("ankle")[..., 2] - joint("pelvis")[:, None, 2],
        "ankle_drop": joint("pelvis")[:, None, 1] - pair("ankle")[..., 1],
        "wrist_above_head": pair("wrist")[..., 1] - joint("head")[:, None, 1],
        "wrist_ahead": pair("wrist")[..., 2] - pair("shoulder")[..., 2],
        "arm_extension": np.linalg.norm(pair("wrist") - pair("shoulder"), axis=-1),
        "trunk_leg_angle": _angle_deg(joint("neck") - joint("pelvis"), legs),
    }


def _straddle(m):
    z = m["ankle_z"]
    return (z[:, 0] * z[:, 1] < 0) & (np.abs(z[:, 0] - z[:, 1]) > 0.15)


# What each posture must show, on the bundled skeleton; samples without it are drawn again.
_POSTURE_TESTS = {
    "standing": lambda m: (m["ankle_drop"].min(1) > 0.7) & (m["knee_bend"].max(1) < 50),
    "walking": _straddle,
    "running": lambda m: _straddle(m) & (m["elbow_bend"].min(1) > 60),
    "sitting": lambda m: (m["hip_flexion"].min(1) > 60) & (m["knee_bend"].min(1) > 40),
    "crouching": lambda m: (m["hip_flexion"].min(1) > 75) & (m["knee_bend"].min(1) > 90),
    "kneeling": lambda m: ((m["knee_bend"] > 70) & (m["shin_backward"] < -0.8)).any(1),
    "reaching": lambda m: ((m["arm_extension"] > 0.4) & (m["wrist_ahead"] > 0.2)).any(1),
    "arms_raised": lambda m: m["wrist_above_head"].min(1) > 0.03,
    "bending": lambda m: m["trunk_leg_angle"] > 40,
}


def posture_checks(pose, postures: Sequence[str]) -> np.ndarray:
    """(N, 69) body poses and their posture names -> (N,) True where a pose shows its posture's
    defining property (e.g. sitting: both thighs raised > 60 degrees and knees bent > 40)."""
    measures = posture_measures(skeleton_points(pose))
    ok = np.zeros(len(postures), dtype=bool)
    for name in set(postures):
        rows = np.array([p == name for p in postures])
        ok[rows] = _POSTURE_TESTS[name]({k: v[rows] for k, v in measures.items()})
    return ok


def sample_poses(
    num: int, rng: np.random.Generator, postures: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Draw ``num`` plausible body poses.

    Args:
        num: number of poses.
        rng: the source of randomness; the same seed gives the same poses.
        postures: names from :data:`POSTURES` to draw from, uniformly (default: all).
    Returns:
        poses: (num, 69) float64 SMPL axis-angle of joints 1..23 (no global orientation).
        names: the posture of each pose.
    """
    if isinstance(postures, str):
        postures = [postures]
    names = tuple(POSTURES if postures is None else postures)
    unknown = [p for p in names if p not in _GENERATORS]
    if unknown or not names:
        raise ValueError(f"unknown postures {unknown or '(none given)'}; choose from {', '.join(POSTURES)}")
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    index = rng.integers(0, len(names), num)
    angles = np.zeros((num, _NUM, 3))
    pending = np.arange(num)
    for _ in range(_MAX_ROUNDS):  # each round redraws only the rejected poses
        if pending.size == 0:
            break
        drawn = _draw(index[pending], names, rng)
        angles[pending] = drawn
        pose = local_angles_to_pose(drawn * _MIRROR_SIGN)
        rejected = self_intersections(pose) | ~posture_checks(pose, [names[k] for k in index[pending]])
        pending = pending[rejected]
    if pending.size:
        raise RuntimeError(f"could not draw {pending.size} valid poses in {_MAX_ROUNDS} rounds")
    return local_angles_to_pose(angles * _MIRROR_SIGN), [names[k] for k in index]


_MAX_ROUNDS = 100


# ---------------------------------------------------------------------------------------------
# Display


_SUPPORTED_BY_FEET = {"standing", "walking", "running", "crouching", "reaching", "arms_raised", "bending"}
# Rough segment masses (fractions) on the skeleton points: trunk and head dominate.
_MASS = {"pelvis": 0.14, "spine1": 0.1, "spine2": 0.1, "spine3": 0.1, "neck": 0.03, "head": 0.07,
         "left_hip": 0.0, "right_hip": 0.0, "left_knee": 0.1, "right_knee": 0.1, "left_ankle": 0.045,
         "right_ankle": 0.045, "left_elbow": 0.028, "right_elbow": 0.028, "left_wrist": 0.016,
         "right_wrist": 0.016, "left_shoulder": 0.02, "right_shoulder": 0.02}  # fmt: skip


def upright_global_orient(pose, postures: Sequence[str]) -> np.ndarray:
    """(N, 69) body poses and their postures -> (N, 3) global orientations (axis-angle, a pitch
    about x) that stand each body the way a person would be seen: balanced over its feet; when
    kneeling, with the kneeling shin flat on the ground; when sitting, with an upright pelvis."""
    points = skeleton_points(pose)
    weights = np.zeros(points.shape[1])
    for name, mass in _MASS.items():
        weights[_P[name]] = mass
    centre = (points * weights[:, None]).sum(1) / weights.sum()
    feet = points[:, [_P["left_ankle"], _P["right_ankle"], _P["left_foot"], _P["right_foot"]]].mean(1)
    offset = centre - feet
    balanced = -np.arctan2(offset[:, 2], offset[:, 1])  # turns the offset to straight up
    # Kneeling: the shin that points furthest back lies on the ground, pointing backwards.
    shins = points[:, [_P["left_ankle"], _P["right_ankle"]]] - points[:, [_P["left_knee"], _P["right_knee"]]]
    shin = shins[np.arange(len(shins)), shins[..., 2].argmin(1)]
    flat = np.arctan2(-shin[:, 1], -shin[:, 2])
    kneeling = np.array([p == "kneeling" for p in postures])
    sitting = np.array([p not in _SUPPORTED_BY_FEET and p != "kneeling" for p in postures])
    pitch = np.where(kneeling, flat, np.where(sitting, 0.0, balanced))
    return np.stack([pitch, np.zeros_like(pitch), np.zeros_like(pitch)], axis=1)
