"""The bundled model's posed skeleton: joint positions, capsules around the bones, the
self-intersection test, and the measures that tell postures apart.

All on the bundled free model at its mean shape, in the pelvis frame (SMPL's axes: y up,
+z forward, left at +x); poses are (N, 69) body axis-angle, no global orientation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from spin_diff.body.files import resolve_body_model
from spin_diff.body.joints import SMPL_JOINT_NAMES, SMPL_PARENTS
from spin_diff.body.lbs import batch_rigid_transform
from spin_diff.body.smpl_format import read_smpl_file
from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.priors.joint_angles import NUM_BODY_JOINTS

__all__ = ["POINT_INDEX", "POINT_NAMES", "posture_measures", "self_intersections", "skeleton_points"]


@dataclass(frozen=True)
class _Skeleton:
    rest_joints: torch.Tensor  # (24, 3) bundled model, mean shape
    head_top: torch.Tensor  # (3,) offset from the head joint, rest pose
    hand_tips: torch.Tensor  # (2, 3) fingertip offsets from the left/right hand joints


@functools.lru_cache(maxsize=1)
def _skeleton() -> _Skeleton:
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
POINT_INDEX = {name: i for i, name in enumerate(POINT_NAMES)}


def skeleton_points(pose) -> np.ndarray:
    """(N, 69) body poses -> (N, 27, 3) posed skeleton of the bundled model (mean shape, pelvis
    frame): the 24 SMPL joints, then head top, left and right fingertips (``POINT_NAMES``)."""
    skeleton = _skeleton()
    body = torch.as_tensor(np.asarray(pose, dtype=np.float64)).reshape(-1, NUM_BODY_JOINTS, 3)
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
    start = torch.stack([points[:, POINT_INDEX[c[1]]] for c in _CAPSULES], dim=1)  # (N, C, 3)
    end = torch.stack([points[:, POINT_INDEX[c[2]]] for c in _CAPSULES], dim=1)
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



def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between (..., 3) vectors."""
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def posture_measures(points: np.ndarray) -> dict[str, np.ndarray]:
    """Geometric measures of posed skeletons (N, 27, 3) from :func:`skeleton_points`, each (N,)
    or (N, 2) for left/right: what tells the postures apart (angles in degrees, lengths in metres)."""
    def joint(name):
        return points[:, POINT_INDEX[name]]

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

