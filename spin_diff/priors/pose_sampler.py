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

The parts: joint angles and their limits (:mod:`spin_diff.priors.joint_angles`), the
skeleton, its capsules and posture measures (:mod:`spin_diff.priors.skeleton`), the
keyframes and posture generators (:mod:`spin_diff.priors.postures`); this module adds the
noise, draws, checks and stands the bodies up.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from spin_diff.body.joints import SMPL_PARENTS
from spin_diff.errors import BadInputError
from spin_diff.priors.joint_angles import (
    ANATOMICAL_LIMITS,
    BODY_JOINT_NAMES,
    FLIP_ROWS,
    MIRROR_SIGN,
    NUM_BODY_JOINTS,
    local_angles_to_pose,
    side_free,
)
from spin_diff.priors.postures import NOISE_SCALE, POSTURE_GENERATORS, POSTURES, anatomical
from spin_diff.priors.skeleton import POINT_INDEX, posture_measures, self_intersections, skeleton_points

__all__ = ["POSTURES", "posture_checks", "sample_poses", "upright_global_orient"]

# ---------------------------------------------------------------------------------------------
# Noise


def _noise_basis() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synergies (M, 23, 3) with their standard deviations (M,), and the per-joint standard
    deviation (23, 3) of the tree-correlated noise (anatomical angles)."""
    synergies = [
        (0.08, anatomical(spine1=(1, 0, 0), spine2=(1, 0, 0), spine3=(0.7, 0, 0), neck=(-0.5, 0, 0))),
        (0.08, anatomical(spine1=(0, 1, 0), spine2=(0, 1, 0), spine3=(0, 0.8, 0), neck=(0, -0.5, 0))),
        (0.06, anatomical(spine1=(0, 0, 1), spine2=(0, 0, 1), spine3=(0, 0, 0.7), neck=(0, 0, -0.6))),
        (0.10, anatomical(neck=(1, 0, 0), head=(0.7, 0, 0))),
        (0.15, anatomical(neck=(0, 1, 0), head=(0, 1, 0))),
        (0.07, anatomical(hip=(-1, 0, 0), knee=(1.6, 0, 0), ankle=(-0.7, 0, 0))),
        (0.03, anatomical(hip=(0, 0, 1), ankle=(0, 0, -0.8))),
        (0.05, anatomical(hip=(0, 1, 0))),
    ]
    for side in ("left", "right"):
        synergies += [
            (0.08, anatomical(**{f"{side}_collar": (0, 0, 0.3), f"{side}_shoulder": (0, 0, 1)})),
            (0.08, anatomical(**{f"{side}_shoulder": (0, -1, 0), f"{side}_elbow": (0, -0.5, 0)})),
            (0.10, anatomical(**{f"{side}_elbow": (0, -1, 0), f"{side}_wrist": (0, -0.5, 0)})),
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
    per_joint = np.array([joint_std[side_free(n)] for n in BODY_JOINT_NAMES])
    return basis, std, per_joint


_BASIS, _BASIS_STD, _JOINT_STD = _noise_basis()
_PARENT_ROWS = np.array([max(p - 1, 0) for p in SMPL_PARENTS[1:]])
_HAS_PARENT = np.array([p > 0 for p in SMPL_PARENTS[1:]], dtype=np.float64)


def _noise(n: int, rng: np.random.Generator, scale: np.ndarray) -> np.ndarray:
    """(n, 23, 3) correlated noise on anatomical angles; ``scale`` (n,) per sample."""
    coefficients = rng.standard_normal((n, _BASIS.shape[0])) * _BASIS_STD
    low_rank = np.einsum("nm,mjc->njc", coefficients, _BASIS)
    latent = rng.standard_normal((n, NUM_BODY_JOINTS, 3))
    # Each joint shares half of its parent's latent noise: neighbours move together.
    tree = (latent + 0.5 * latent[:, _PARENT_ROWS] * _HAS_PARENT[None, :, None]) * _JOINT_STD
    independent = 0.3 * rng.standard_normal((n, NUM_BODY_JOINTS, 3)) * _JOINT_STD
    return (low_rank + tree + independent) * scale[:, None, None]


def _clamp(angles: np.ndarray) -> np.ndarray:
    return np.clip(angles, ANATOMICAL_LIMITS[..., 0], ANATOMICAL_LIMITS[..., 1])


def _draw(posture_index: np.ndarray, names: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """(n,) indices into ``names`` -> (n, 23, 3) anatomical angles, mirrored at random."""
    n = posture_index.shape[0]
    angles = np.zeros((n, NUM_BODY_JOINTS, 3))
    for k, name in enumerate(names):  # one vectorised draw per posture
        rows = np.flatnonzero(posture_index == k)
        if rows.size:
            angles[rows] = POSTURE_GENERATORS[name](rows.size, rng)
    scale = np.array([NOISE_SCALE[names[k]] for k in posture_index])
    angles = _clamp(angles + _noise(n, rng, scale))
    mirror = rng.uniform(size=n) < 0.5
    # Mirroring swaps the sides; in anatomical angles nothing else changes.
    angles[mirror] = angles[mirror][:, FLIP_ROWS]
    return angles



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
    unknown = [p for p in names if p not in POSTURE_GENERATORS]
    if unknown or not names:
        raise BadInputError(f"unknown postures {unknown or '(none given)'}; choose from {', '.join(POSTURES)}")
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    index = rng.integers(0, len(names), num)
    angles = np.zeros((num, NUM_BODY_JOINTS, 3))
    pending = np.arange(num)
    for _ in range(_MAX_ROUNDS):  # each round redraws only the rejected poses
        if pending.size == 0:
            break
        drawn = _draw(index[pending], names, rng)
        angles[pending] = drawn
        pose = local_angles_to_pose(drawn * MIRROR_SIGN)
        rejected = self_intersections(pose) | ~posture_checks(pose, [names[k] for k in index[pending]])
        pending = pending[rejected]
    if pending.size:
        raise RuntimeError(f"could not draw {pending.size} valid poses in {_MAX_ROUNDS} rounds")
    return local_angles_to_pose(angles * MIRROR_SIGN), [names[k] for k in index]


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
        weights[POINT_INDEX[name]] = mass
    centre = (points * weights[:, None]).sum(1) / weights.sum()
    feet = points[:, [POINT_INDEX["left_ankle"], POINT_INDEX["right_ankle"], POINT_INDEX["left_foot"], POINT_INDEX["right_foot"]]].mean(1)
    offset = centre - feet
    balanced = -np.arctan2(offset[:, 2], offset[:, 1])  # turns the offset to straight up
    # Kneeling: the shin that points furthest back lies on the ground, pointing backwards.
    shins = points[:, [POINT_INDEX["left_ankle"], POINT_INDEX["right_ankle"]]] - points[:, [POINT_INDEX["left_knee"], POINT_INDEX["right_knee"]]]
    shin = shins[np.arange(len(shins)), shins[..., 2].argmin(1)]
    flat = np.arctan2(-shin[:, 1], -shin[:, 2])
    kneeling = np.array([p == "kneeling" for p in postures])
    sitting = np.array([p not in _SUPPORTED_BY_FEET and p != "kneeling" for p in postures])
    pitch = np.where(kneeling, flat, np.where(sitting, 0.0, balanced))
    return np.stack([pitch, np.zeros_like(pitch), np.zeros_like(pitch)], axis=1)
