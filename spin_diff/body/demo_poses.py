"""A few named poses for pictures, demos and tests (SMPL axis-angle, body facing +z).

Sign conventions follow SMPL: a hip's negative x rotation swings the thigh forward, a knee's
positive x rotation bends the shin backward, the left elbow's negative y rotation (right
elbow's positive y) bends the forearm forward, the left shoulder's negative z rotation lowers
the left arm.
"""

from __future__ import annotations

import numpy as np

from spin_diff.body.joints import SMPL_JOINT_NAMES

_POSES: dict[str, dict[str, tuple[float, float, float]]] = {
    "tpose": {},
    "apose": {"left_shoulder": (0.0, 0.0, -0.8), "right_shoulder": (0.0, 0.0, 0.8)},
    "walk": {
        "left_hip": (-0.5, 0.0, 0.0), "right_hip": (0.35, 0.0, 0.0),
        "right_knee": (0.6, 0.0, 0.0), "left_knee": (0.15, 0.0, 0.0),
        "left_shoulder": (0.35, 0.0, -1.2), "right_shoulder": (-0.35, 0.0, 1.2),
        "left_elbow": (0.0, -0.5, 0.0), "right_elbow": (0.0, 0.5, 0.0),
    },
    "sit": {
        "left_hip": (-1.5, 0.0, 0.0), "right_hip": (-1.5, 0.0, 0.0),
        "left_knee": (1.5, 0.0, 0.0), "right_knee": (1.5, 0.0, 0.0),
        "left_shoulder": (0.0, 0.0, -1.1), "right_shoulder": (0.0, 0.0, 1.1),
        "left_elbow": (0.0, -1.2, 0.0), "right_elbow": (0.0, 1.2, 0.0),
    },
    "arms_up": {
        "left_shoulder": (0.0, 0.0, 1.0), "right_shoulder": (0.0, 0.0, -1.0),
        "left_elbow": (0.0, -0.6, 0.0), "right_elbow": (0.0, 0.6, 0.0),
    },
    "reach": {
        "spine1": (0.25, 0.0, 0.0), "spine2": (0.2, 0.0, 0.0),
        "right_shoulder": (0.0, 1.2, 0.3), "left_shoulder": (0.0, 0.0, -1.2),
        "left_hip": (-0.2, 0.0, 0.0), "left_knee": (0.4, 0.0, 0.0),
    },
}  # fmt: skip

POSE_NAMES = tuple(_POSES)


def named_pose(name: str) -> np.ndarray:
    """The 72-D axis-angle pose (root orientation zero) called ``name``."""
    if name not in _POSES:
        raise KeyError(f"unknown pose {name!r}; known poses: {', '.join(POSE_NAMES)}")
    pose = np.zeros((24, 3))
    for joint, rotation in _POSES[name].items():
        pose[SMPL_JOINT_NAMES.index(joint)] = rotation
    return pose.reshape(72)
