"""BlazePose's 33 landmarks in the project's 49-joint layout (its OpenPose BODY_25 block).

Each BODY_25 joint is one BlazePose landmark, or the midpoint of two (the neck of the
shoulders, the mid-hip of the hips), or missing: BlazePose has no small toes, so they get
confidence 0 (never a guess). BlazePose's ``foot_index`` (the tip of the foot) stands for
OpenPose's big toe. The 24 "GT" joints stay at confidence 0, as for OpenPose input.

The confidence of a joint is BlazePose's visibility (probability that the landmark is seen,
not occluded); a midpoint takes the smaller of its two. A landmark outside the image (a
cut-off person; BlazePose still places it) gets confidence 0, and so does a face point the
head hides (:func:`hidden_face_points`): BlazePose places those too, with full visibility,
where OpenPose reports nothing.
"""

from __future__ import annotations

import numpy as np

from spin_diff.body import joints as J
from spin_diff.constants import NUM_KEYPOINTS
from spin_diff.data.corruption import hidden_by_head
from spin_diff.detect.blazepose import BODY_LANDMARKS

__all__ = ["BLAZEPOSE_LANDMARK_NAMES", "BODY25_FROM_BLAZEPOSE", "blazepose_to_keypoints49", "hidden_face_points"]

BLAZEPOSE_LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

# BODY_25 joint -> the BlazePose landmarks it is the mean of; () = BlazePose has no such point.
BODY25_FROM_BLAZEPOSE: dict[str, tuple[str, ...]] = {
    "OP Nose": ("nose",),
    "OP Neck": ("left_shoulder", "right_shoulder"),
    "OP RShoulder": ("right_shoulder",),
    "OP RElbow": ("right_elbow",),
    "OP RWrist": ("right_wrist",),
    "OP LShoulder": ("left_shoulder",),
    "OP LElbow": ("left_elbow",),
    "OP LWrist": ("left_wrist",),
    "OP MidHip": ("left_hip", "right_hip"),
    "OP RHip": ("right_hip",),
    "OP RKnee": ("right_knee",),
    "OP RAnkle": ("right_ankle",),
    "OP LHip": ("left_hip",),
    "OP LKnee": ("left_knee",),
    "OP LAnkle": ("left_ankle",),
    "OP REye": ("right_eye",),
    "OP LEye": ("left_eye",),
    "OP REar": ("right_ear",),
    "OP LEar": ("left_ear",),
    "OP LBigToe": ("left_foot_index",),
    "OP LSmallToe": (),
    "OP LHeel": ("left_heel",),
    "OP RBigToe": ("right_foot_index",),
    "OP RSmallToe": (),
    "OP RHeel": ("right_heel",),
}
assert tuple(BODY25_FROM_BLAZEPOSE) == J.OPENPOSE_JOINT_NAMES
assert tuple(BLAZEPOSE_LANDMARK_NAMES[i] for i in BODY_LANDMARKS) == tuple(
    f"{side}_{part}" for part in ("shoulder", "elbow", "wrist") for side in ("left", "right")
) + tuple(f"{side}_{part}" for part in ("hip", "knee", "ankle") for side in ("left", "right"))


def _mixing_matrix() -> np.ndarray:
    """(25, 33): row j averages the landmarks BODY_25 joint j is made of (a zero row: missing)."""
    index = {name: i for i, name in enumerate(BLAZEPOSE_LANDMARK_NAMES)}
    mix = np.zeros((len(BODY25_FROM_BLAZEPOSE), len(BLAZEPOSE_LANDMARK_NAMES)))
    for row, sources in enumerate(BODY25_FROM_BLAZEPOSE.values()):
        for name in sources:
            mix[row, index[name]] = 1.0 / len(sources)
    return mix


_MIX = _mixing_matrix()
_INDEX = {name: i for i, name in enumerate(BLAZEPOSE_LANDMARK_NAMES)}
_FACE_FRONT = [_INDEX[n] for n in ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner",
                                   "right_eye", "right_eye_outer", "mouth_left", "mouth_right")]  # fmt: skip
_PAIRS = [("left_ear", "right_ear"), ("left_eye", "right_eye")]


def hidden_face_points(landmarks: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(..., 33) bool: face landmarks the head itself hides, from BlazePose's depths
    (:func:`spin_diff.data.corruption.hidden_by_head`, the rule the synthetic people share).

    The face looks away when the ears are nearer the camera than the nose: then the nose,
    eyes and mouth are hidden. The head is turned side-on when an ear pair (eye pair) is
    further apart in depth than across the image: then the farther of the pair is hidden.

    Args: landmarks (..., 33, 2) pixels; depth (..., 33) in the same pixels, larger = farther.
    """
    return hidden_by_head(landmarks, depth, (_INDEX["left_ear"], _INDEX["right_ear"]), _INDEX["nose"],
                          _FACE_FRONT, [(_INDEX[left], _INDEX[right]) for left, right in _PAIRS])


def blazepose_to_keypoints49(
    landmarks: np.ndarray,
    confidence: np.ndarray,
    image_size: tuple[int, int] | None = None,
    depth: np.ndarray | None = None,
) -> np.ndarray:
    """BlazePose landmarks as 49-joint keypoints.

    Args:
        landmarks: (..., 33, 2) pixels.
        confidence: (..., 33) in [0, 1] (BlazePose's visibility).
        image_size: (width, height); landmarks outside ``[0, width) x [0, height)`` get
            confidence 0. None: no such check.
        depth: (..., 33) BlazePose's depths; face points the head hides
            (:func:`hidden_face_points`) get confidence 0. None: no such check.

    Returns:
        (..., 49, 3) pixels and confidence; a missing joint is ``0, 0, 0``.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    if image_size is not None:
        width, height = image_size
        x, y = landmarks[..., 0], landmarks[..., 1]
        confidence = np.where((x >= 0) & (x < width) & (y >= 0) & (y < height), confidence, 0.0)
    if depth is not None:
        confidence = np.where(hidden_face_points(landmarks, np.asarray(depth, np.float64)), 0.0, confidence)
    xy = np.einsum("jl,...lc->...jc", _MIX, landmarks)
    used = _MIX > 0  # (25, 33)
    # a midpoint is as confident as its less confident end; a missing joint not at all
    spread = np.where(used, confidence[..., None, :], np.inf).min(-1)
    joint_confidence = np.where(used.any(-1), spread, 0.0)
    out = np.zeros(landmarks.shape[:-2] + (NUM_KEYPOINTS, 3))
    out[..., : len(_MIX), :2] = np.where(joint_confidence[..., None] > 0, xy, 0.0)
    out[..., : len(_MIX), 2] = joint_confidence
    return out
