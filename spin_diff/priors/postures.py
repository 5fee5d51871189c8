"""Keyframes of body parts and the generator of each posture (before noise and limits).

A posture's generator assembles ``n`` bodies as anatomical local angles (n, 23, 3) (left-side
signs on both sides; :mod:`spin_diff.priors.joint_angles`): legs, trunk and head from
keyframe libraries (each sometimes moved part of the way towards another keyframe of the
same part), each arm from an arm library (upper-arm and forearm directions solved to joint
angles by two-bone inverse kinematics). Walking and running come from a gait phase, so that
legs and arms swing in counter-phase; bending arms hang towards the ground from the bent
trunk. :mod:`spin_diff.priors.pose_sampler` adds the noise, clamps and checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.priors.joint_angles import ARM_CHAIN, BODY_ROW, NUM_BODY_JOINTS

__all__ = ["NOISE_SCALE", "POSTURES", "POSTURE_GENERATORS", "anatomical"]

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


# ---------------------------------------------------------------------------------------------
# Keyframes


def anatomical(**joints: tuple[float, float, float]) -> np.ndarray:
    """(23, 3) anatomical local angles. A side-free name (``hip``) sets both sides alike."""
    angles = np.zeros((NUM_BODY_JOINTS, 3))
    for name, value in joints.items():
        rows = [BODY_ROW[name]] if name in BODY_ROW else [BODY_ROW["left_" + name], BODY_ROW["right_" + name]]
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


_LEFT_ARM_ROWS = [BODY_ROW["left_" + n] for n in ARM_CHAIN]
_RIGHT_ARM_ROWS = [BODY_ROW["right_" + n] for n in ARM_CHAIN]


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
        anatomical(),
        anatomical(spine1=(0.05, 0.0, 0.0), spine2=(0.03, 0.0, 0.0), spine3=(0.03, 0.0, 0.0)),
        anatomical(spine1=(-0.08, 0.0, 0.0), spine3=(0.05, 0.0, 0.0)),
        anatomical(spine1=(0.0, 0.1, 0.05), spine2=(0.0, 0.1, 0.03), spine3=(0.0, 0.05, 0.0)),
    ]
)
_HEAD_NEUTRAL = np.stack(
    [
        anatomical(),
        anatomical(neck=(0.15, 0.0, 0.0), head=(0.1, 0.0, 0.0)),  # looking down a little
        anatomical(neck=(0.0, 0.3, 0.0), head=(0.0, 0.2, 0.0)),  # turned
        anatomical(neck=(-0.1, 0.0, 0.1), head=(-0.05, 0.0, 0.05)),
    ]
)

_LEGS_STANDING = np.stack(
    [
        anatomical(hip=(0.0, 0.0, 0.03)),
        anatomical(hip=(-0.03, 0.1, 0.09), ankle=(0.0, 0.0, -0.08)),  # feet apart
        anatomical(left_hip=(-0.25, 0.05, 0.12), left_knee=(0.35, 0.0, 0.0), left_ankle=(0.15, 0.0, -0.05),
                    right_hip=(0.0, 0.0, -0.02)),  # weight on the right leg  # fmt: skip
        anatomical(left_hip=(-0.3, 0.1, 0.05), left_knee=(0.1, 0.0, 0.0), left_ankle=(-0.2, 0.0, 0.0),
                    right_hip=(0.1, 0.0, 0.04), right_ankle=(0.1, 0.0, 0.0)),  # a foot forward  # fmt: skip
        anatomical(hip=(-0.1, 0.0, 0.05), knee=(0.2, 0.0, 0.0), ankle=(-0.1, 0.0, 0.0)),  # soft knees
    ]
)
_LEGS_SITTING = np.stack(
    [
        anatomical(hip=(-1.5, 0.0, 0.1), knee=(1.5, 0.0, 0.0)),
        anatomical(hip=(-1.45, 0.1, 0.25), knee=(1.35, 0.0, 0.0), ankle=(0.0, 0.0, -0.15)),  # knees apart
        anatomical(hip=(-1.6, 0.0, 0.05), knee=(1.95, 0.0, 0.0), ankle=(0.3, 0.0, 0.0)),  # feet tucked
        anatomical(left_hip=(-1.4, 0.0, 0.12), left_knee=(1.0, 0.0, 0.0), left_ankle=(0.2, 0.0, 0.0),
                    right_hip=(-1.55, 0.0, 0.1), right_knee=(1.6, 0.0, 0.0)),  # a leg stretched  # fmt: skip
        anatomical(hip=(-1.3, -0.1, 0.12), knee=(1.2, 0.0, 0.0), ankle=(0.2, 0.0, 0.0)),  # reclined
    ]
)
_TORSO_SITTING = np.stack(
    [
        anatomical(),
        anatomical(spine1=(0.15, 0.0, 0.0), spine2=(0.1, 0.0, 0.0), spine3=(0.05, 0.0, 0.0)),  # slouch
        anatomical(spine1=(0.25, 0.0, 0.0), spine2=(0.15, 0.0, 0.0), neck=(-0.15, 0.0, 0.0)),  # lean in
        anatomical(spine1=(-0.15, 0.0, 0.0), spine2=(0.05, 0.0, 0.0)),  # leaning back
    ]
)
_LEGS_CROUCHING = np.stack(
    [
        anatomical(hip=(-2.0, 0.0, 0.35), knee=(2.3, 0.0, 0.0), ankle=(-0.35, 0.0, -0.1)),
        anatomical(hip=(-1.8, 0.15, 0.45), knee=(2.1, 0.0, 0.0), ankle=(-0.3, 0.0, -0.15)),
        anatomical(hip=(-2.1, 0.0, 0.25), knee=(2.45, 0.0, 0.0), ankle=(-0.2, 0.0, -0.05), foot=(-0.4, 0.0, 0.0)),
        anatomical(left_hip=(-2.0, 0.0, 0.2), left_knee=(2.4, 0.0, 0.0), left_ankle=(-0.35, 0.0, 0.0),
                    right_hip=(-1.6, 0.0, 0.45), right_knee=(1.9, 0.0, 0.0), right_ankle=(-0.2, 0.0, -0.1)),  # fmt: skip
    ]
)
_TORSO_CROUCHING = np.stack(
    [
        anatomical(spine1=(0.2, 0.0, 0.0), spine2=(0.15, 0.0, 0.0), spine3=(0.1, 0.0, 0.0), neck=(-0.2, 0.0, 0.0)),
        anatomical(spine1=(0.35, 0.0, 0.0), spine2=(0.25, 0.0, 0.0), spine3=(0.1, 0.0, 0.0), neck=(-0.3, 0.0, 0.0)),
        anatomical(spine1=(0.1, 0.0, 0.0), spine2=(0.1, 0.0, 0.0), neck=(-0.1, 0.0, 0.0)),
    ]
)
_LEGS_KNEELING = np.stack(
    [
        # on one knee: left foot planted in front, right knee down with the shin behind
        anatomical(left_hip=(-1.5, 0.0, 0.15), left_knee=(1.6, 0.0, 0.0), left_ankle=(-0.1, 0.0, 0.0),
                    right_hip=(0.05, 0.0, 0.05), right_knee=(1.55, 0.0, 0.0), right_ankle=(0.5, 0.0, 0.0)),  # fmt: skip
        # upright on both knees
        anatomical(hip=(-0.05, 0.0, 0.08), knee=(1.55, 0.0, 0.0), ankle=(0.6, 0.0, 0.0)),
        # sitting back on the heels
        anatomical(hip=(-1.0, 0.0, 0.12), knee=(2.5, 0.0, 0.0), ankle=(0.8, 0.0, 0.0)),
        anatomical(left_hip=(-1.3, 0.1, 0.2), left_knee=(1.9, 0.0, 0.0), left_ankle=(-0.3, 0.0, 0.0),
                    right_hip=(-0.2, 0.0, 0.05), right_knee=(1.8, 0.0, 0.0), right_ankle=(0.4, 0.0, 0.0),
                    right_foot=(-0.5, 0.0, 0.0)),  # fmt: skip
    ]
)
_LEGS_BENDING = np.stack(
    [
        anatomical(hip=(-1.0, 0.0, 0.06)),
        anatomical(hip=(-1.2, 0.0, 0.08), knee=(0.3, 0.0, 0.0), ankle=(-0.2, 0.0, 0.0)),
        anatomical(hip=(-0.8, 0.05, 0.12), knee=(0.1, 0.0, 0.0), ankle=(0.0, 0.0, -0.08)),
        anatomical(left_hip=(-1.2, 0.0, 0.08), left_knee=(0.5, 0.0, 0.0), left_ankle=(-0.3, 0.0, 0.0),
                    right_hip=(-0.85, 0.0, 0.06), right_knee=(0.05, 0.0, 0.0)),  # fmt: skip
    ]
)
_TORSO_BENDING = np.stack(
    [
        anatomical(spine1=(0.2, 0.0, 0.0), spine2=(0.15, 0.0, 0.0), spine3=(0.1, 0.0, 0.0), neck=(-0.2, 0.0, 0.0)),
        anatomical(spine1=(0.3, 0.0, 0.0), spine2=(0.25, 0.0, 0.0), spine3=(0.15, 0.0, 0.0), neck=(-0.35, 0.0, 0.0), head=(-0.1, 0.0, 0.0)),  # fmt: skip
        anatomical(spine1=(0.15, 0.1, 0.0), spine2=(0.15, 0.1, 0.0), spine3=(0.1, 0.0, 0.0), neck=(0.1, 0.0, 0.0)),
    ]
)
_TORSO_REACHING = np.stack(
    [
        anatomical(spine1=(0.1, 0.0, 0.0), spine2=(0.05, 0.0, 0.0)),
        anatomical(spine1=(0.2, -0.12, -0.05), spine2=(0.15, -0.1, -0.05), spine3=(0.05, -0.05, 0.0)),  # towards the left hand  # fmt: skip
        anatomical(spine1=(-0.05, 0.0, -0.05), spine2=(0.0, -0.05, -0.05), neck=(-0.15, 0.0, 0.0)),  # up on tiptoe
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
    angles = np.zeros((n, NUM_BODY_JOINTS, 3))
    for side, shift in (("left", 0.0), ("right", 0.5)):
        leg = _gait_leg(gait, (phase + shift) % 1.0, amplitude)
        angles[:, BODY_ROW[f"{side}_hip"], 0] = leg[:, 0]
        angles[:, BODY_ROW[f"{side}_hip"], 2] = 0.04
        angles[:, BODY_ROW[f"{side}_knee"], 0] = leg[:, 1]
        angles[:, BODY_ROW[f"{side}_ankle"], 0] = leg[:, 2]
        # The arm swings with the opposite leg: forward when that leg is forward; the elbow
        # bends more on the forward swing.
        swing = -amplitude * gait.arm_swing * np.cos(2 * np.pi * (phase + shift + 0.5))
        bend = gait.elbow_mean + gait.elbow_amplitude * np.sin(np.clip(swing, 0.0, None))
        upper = np.stack([np.full(n, 0.2), -np.cos(swing), np.sin(swing)], axis=1)
        forearm = np.stack([np.full(n, 0.05), -np.cos(swing + bend), np.sin(swing + bend)], axis=1)
        shoulder, twist, elbow = _arm_ik(upper, forearm)
        angles[:, BODY_ROW[f"{side}_shoulder"]] = shoulder + twist[:, None] * np.array([1.0, 0.0, 0.0])
        angles[:, BODY_ROW[f"{side}_elbow"], 1] = -elbow
    lean = gait.trunk_lean * rng.uniform(0.5, 1.5, n)
    angles[:, BODY_ROW["spine1"], 0] = lean
    angles[:, BODY_ROW["spine2"], 0] = 0.5 * lean
    angles[:, BODY_ROW["neck"], 0] = -0.5 * lean
    # Counter-rotation of the trunk against the pelvis.
    twist = 0.08 * np.cos(2 * np.pi * phase)
    for joint in ("spine1", "spine2", "spine3"):
        angles[:, BODY_ROW[joint], 1] = twist
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
    body[:, BODY_ROW["neck"], 0] -= rng.uniform(0.0, 0.3, n)  # looking up a little
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
    arm = np.zeros((n, len(ARM_CHAIN), 3))
    arm[:, 1] = swing + twist[:, None] * np.array([1.0, 0.0, 0.0])
    arm[:, 2, 1] = -elbow
    return arm


def _posture_bending(n, rng):
    body = _pick(_LEGS_BENDING, n, rng) + _pick(_TORSO_BENDING, n, rng)
    hips = body[:, [BODY_ROW["left_hip"], BODY_ROW["right_hip"]], 0].mean(1)
    spine = body[:, [BODY_ROW["spine1"], BODY_ROW["spine2"], BODY_ROW["spine3"]], 0].sum(1)
    chest = spine - hips  # hip flexion is negative x
    return _with_arms(body, _hanging_arm(chest, rng), _hanging_arm(chest, rng))


POSTURE_GENERATORS = {
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
NOISE_SCALE = {name: 1.0 for name in POSTURES} | {
    "walking": 0.7, "running": 0.7, "sitting": 0.8, "kneeling": 0.8,
}
