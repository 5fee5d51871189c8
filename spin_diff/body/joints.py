"""The joint layouts of spin_diff, in one place.

* ``SMPL_JOINT_NAMES``: SMPL's 24 skeleton joints, with ``SMPL_PARENTS``.
* ``JOINT_NAMES``: SPIN's 49-joint keypoint layout, the 25 OpenPose BODY_25 joints followed
  by 24 "GT" joints (LSP, MPII, H36M and face points). Every 2D keypoint array of the project
  uses it.
* ``SOURCE_JOINT_NAMES``: the 54 joints a body model computes before reordering into the 49:
  24 skeleton joints, the 21 vertex picks smplx appends (face, feet, fingertips) and the 9
  joints of SPIN's ``J_regressor_extra``. ``JOINT_MAP`` picks the 49 out of them.
* ``H36M_JOINT_NAMES``: the 17 joints of ``J_regressor_h36m``, and ``H36M_TO_J14``, the 14
  LSP joints evaluation is reported on.

Flip permutations are derived from the names, so they cannot drift from the tables.
"""

from __future__ import annotations

import re

import torch

from spin_diff.constants import NUM_KEYPOINTS, NUM_OPENPOSE_JOINTS

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

OPENPOSE_JOINT_NAMES = (
    "OP Nose", "OP Neck", "OP RShoulder", "OP RElbow", "OP RWrist", "OP LShoulder",
    "OP LElbow", "OP LWrist", "OP MidHip", "OP RHip", "OP RKnee", "OP RAnkle", "OP LHip",
    "OP LKnee", "OP LAnkle", "OP REye", "OP LEye", "OP REar", "OP LEar", "OP LBigToe",
    "OP LSmallToe", "OP LHeel", "OP RBigToe", "OP RSmallToe", "OP RHeel",
)  # fmt: skip
GT_JOINT_NAMES = (
    "Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle",
    "Right Wrist", "Right Elbow", "Right Shoulder", "Left Shoulder", "Left Elbow",
    "Left Wrist", "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)",
    "Spine (H36M)", "Jaw (H36M)", "Head (H36M)", "Nose", "Left Eye", "Right Eye", "Left Ear",
    "Right Ear",
)  # fmt: skip
JOINT_NAMES = OPENPOSE_JOINT_NAMES + GT_JOINT_NAMES
assert len(JOINT_NAMES) == NUM_KEYPOINTS and len(OPENPOSE_JOINT_NAMES) == NUM_OPENPOSE_JOINTS

# smplx's extra vertex joints, in the order its VertexJointSelector appends them.
VERTEX_JOINT_NAMES = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe",
    "RSmallToe", "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex",
    "rmiddle", "rring", "rpinky",
)  # fmt: skip
# Rows of SPIN's J_regressor_extra.npy.
EXTRA_REGRESSOR_JOINT_NAMES = (
    "Right Hip", "Left Hip", "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)",
    "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)", "Head (H36M)",
)  # fmt: skip
SOURCE_JOINT_NAMES = (
    SMPL_JOINT_NAMES + VERTEX_JOINT_NAMES + tuple("extra " + n for n in EXTRA_REGRESSOR_JOINT_NAMES)
)

_SOURCE = {name: i for i, name in enumerate(SOURCE_JOINT_NAMES)}
_JOINT_SOURCE = {
    "OP Nose": "nose", "OP Neck": "neck", "OP RShoulder": "right_shoulder",
    "OP RElbow": "right_elbow", "OP RWrist": "right_wrist", "OP LShoulder": "left_shoulder",
    "OP LElbow": "left_elbow", "OP LWrist": "left_wrist", "OP MidHip": "pelvis",
    "OP RHip": "right_hip", "OP RKnee": "right_knee", "OP RAnkle": "right_ankle",
    "OP LHip": "left_hip", "OP LKnee": "left_knee", "OP LAnkle": "left_ankle",
    "OP REye": "reye", "OP LEye": "leye", "OP REar": "rear", "OP LEar": "lear",
    "OP LBigToe": "LBigToe", "OP LSmallToe": "LSmallToe", "OP LHeel": "LHeel",
    "OP RBigToe": "RBigToe", "OP RSmallToe": "RSmallToe", "OP RHeel": "RHeel",
    "Right Ankle": "right_ankle", "Right Knee": "right_knee", "Right Hip": "extra Right Hip",
    "Left Hip": "extra Left Hip", "Left Knee": "left_knee", "Left Ankle": "left_ankle",
    "Right Wrist": "right_wrist", "Right Elbow": "right_elbow",
    "Right Shoulder": "right_shoulder", "Left Shoulder": "left_shoulder",
    "Left Elbow": "left_elbow", "Left Wrist": "left_wrist", "Neck (LSP)": "extra Neck (LSP)",
    "Top of Head (LSP)": "extra Top of Head (LSP)", "Pelvis (MPII)": "extra Pelvis (MPII)",
    "Thorax (MPII)": "extra Thorax (MPII)", "Spine (H36M)": "extra Spine (H36M)",
    "Jaw (H36M)": "extra Jaw (H36M)", "Head (H36M)": "extra Head (H36M)", "Nose": "nose",
    "Left Eye": "leye", "Right Eye": "reye", "Left Ear": "lear", "Right Ear": "rear",
}  # fmt: skip
# Index into the 54 source joints for each of the 49 joints (SPIN's joint_map).
JOINT_MAP = tuple(_SOURCE[_JOINT_SOURCE[name]] for name in JOINT_NAMES)

H36M_JOINT_NAMES = (
    "Pelvis", "R Hip", "R Knee", "R Ankle", "L Hip", "L Knee", "L Ankle", "Spine", "Thorax",
    "Neck/Nose", "Head", "L Shoulder", "L Elbow", "L Wrist", "R Shoulder", "R Elbow", "R Wrist",
)  # fmt: skip
# The 14 LSP-order evaluation joints taken from the 17 H36M-regressed joints (as SPIN).
H36M_TO_J17 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
H36M_TO_J14 = H36M_TO_J17[:14]
# The same 14 joints within the 24 GT joints of the 49 layout (offset by 25 in JOINT_NAMES).
GT_TO_J14 = tuple(range(14))

# SPIN's stage-2 SMPLify ignores these (SMPL's hips and neck differ from the 2D annotations).
IGNORED_FOR_BODY_FIT = ("OP Neck", "OP RHip", "OP LHip", "Right Hip", "Left Hip")
TORSO_OPENPOSE = ("OP RHip", "OP LHip", "OP RShoulder", "OP LShoulder")
TORSO_GT = ("Right Hip", "Left Hip", "Right Shoulder", "Left Shoulder")


def _mirror_name(name: str) -> str:
    swaps = [
        (r"^left_", "right_"), (r"^right_", "left_"), (r"\bLeft\b", "Right"),
        (r"\bRight\b", "Left"), (r"\bL(?=[A-Z ])", "R"), (r"\bR(?=[A-Z ])", "L"),
        (r"^l(?=[a-z])", "r"), (r"^r(?=[a-z])", "l"),
    ]  # fmt: skip
    for pattern, replacement in swaps:
        mirrored, count = re.subn(pattern, replacement, name)
        if count:
            return mirrored
    return name


def flip_permutation(names: tuple[str, ...]) -> tuple[int, ...]:
    """Index of each joint's mirror image (itself for joints on the midline)."""
    index = {n: i for i, n in enumerate(names)}
    perm = []
    for name in names:
        mirrored = _mirror_name(name)
        perm.append(index[mirrored] if mirrored in index else index[name])
    return tuple(perm)


KEYPOINT_FLIP_PERM = flip_permutation(JOINT_NAMES)
SMPL_JOINT_FLIP_PERM = flip_permutation(SMPL_JOINT_NAMES)
POSE_FLIP_PERM = tuple(3 * j + c for j in SMPL_JOINT_FLIP_PERM for c in range(3))


def joint_indices(names: tuple[str, ...] | list[str]) -> list[int]:
    """Positions of the given names in the 49-joint layout."""
    index = {n: i for i, n in enumerate(JOINT_NAMES)}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise KeyError(f"unknown joint names {unknown}; see spin_diff.body.joints.JOINT_NAMES")
    return [index[n] for n in names]


def flip_keypoints(keypoints: torch.Tensor, image_width: float | None = None) -> torch.Tensor:
    """Mirror 49-joint keypoints left-right.

    Args:
        keypoints: (..., 49, D); D = 2 or 3 for 2D pixels (with optional confidence in the
            last column when ``image_width`` is given) or 3D points (x negated).
        image_width: for pixel keypoints, u -> width - u; None for 3D points (x -> -x).
    """
    flipped = keypoints[..., list(KEYPOINT_FLIP_PERM), :].clone()
    if image_width is None:
        flipped[..., 0] = -flipped[..., 0]
    else:
        flipped[..., 0] = image_width - flipped[..., 0]
    return flipped


def flip_pose(pose: torch.Tensor) -> torch.Tensor:
    """Mirror an SMPL axis-angle pose (..., 72): swap sides, negate the y and z components."""
    flipped = pose[..., list(POSE_FLIP_PERM)].clone()
    flipped[..., 1::3] = -flipped[..., 1::3]
    flipped[..., 2::3] = -flipped[..., 2::3]
    return flipped
