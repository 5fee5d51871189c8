"""OpenPose JSON keypoint files (BODY_25) and their place in the 49-joint layout.

OpenPose writes one file per image, ``<stem>_keypoints.json``::

    {"version": 1.3, "people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...], ...}]}

with 25 BODY_25 joints per person (75 numbers) in full-image pixels; undetected joints are
``0, 0, 0``. In SPIN's 49-joint layout (:mod:`spin_diff.body.joints`) these fill the first
25 rows; the 24 GT joints that follow get zero confidence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np

from spin_diff.constants import NUM_KEYPOINTS, NUM_OPENPOSE_JOINTS
from spin_diff.errors import BadInputError

__all__ = [
    "OpenPoseFileError",
    "read_openpose_json",
    "read_openpose_people",
    "write_openpose_json",
    "openpose_to_keypoints49",
    "keypoints49_to_openpose",
    "select_person",
    "load_openpose_keypoints",
]

_VALUES_PER_PERSON = 3 * NUM_OPENPOSE_JOINTS  # 75
# OpenPose's confidences are heatmap peaks and can come out a little above 1 (HMR's example
# random_keypoints.json has 1.0059); up to this much over 1 they are read as 1, beyond it the
# file is taken for a mix-up of its columns.
CONFIDENCE_OVERSHOOT = 0.05


class OpenPoseFileError(BadInputError):
    """An OpenPose JSON file is malformed; the message names the file and the problem."""


def read_openpose_people(path: str | Path) -> tuple[np.ndarray, dict[int, str]]:
    """Every person's BODY_25 keypoints in an OpenPose JSON file, with what is wrong with each.

    A person whose keypoints cannot be used (not 75 numbers, not numeric, NaN or inf, or
    confidences outside OpenPose's [0, 1]) gets a row of NaN and a reason, so that the others
    of the image can still be used.

    Returns:
        ``(P, 25, 3)`` float64 (pixels ``x, y`` and confidence; ``(0, 25, 3)`` for no people)
        and ``{person index: reason}`` for the unusable ones.

    Raises:
        FileNotFoundError: no file at ``path``.
        OpenPoseFileError: not JSON, or no ``people`` list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OpenPose keypoint file not found: {path}")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OpenPoseFileError(
            f"{path}: not valid JSON ({err}); is it an OpenPose --write_json output?"
        ) from err
    if not isinstance(content, dict) or not isinstance(content.get("people"), list):
        raise OpenPoseFileError(
            f"{path}: expected an object with a 'people' list (OpenPose --write_json format), "
            f"got {type(content).__name__} with keys {sorted(content) if isinstance(content, dict) else []}"
        )
    people, reasons = [], {}
    for index, person in enumerate(content["people"]):
        array, reason = _person_keypoints(person, path, index)
        people.append(array)
        if reason is not None:
            reasons[index] = reason
    if not people:
        return np.zeros((0, NUM_OPENPOSE_JOINTS, 3)), reasons
    return np.stack(people), reasons


def _person_keypoints(person, path: Path, index: int) -> tuple[np.ndarray, str | None]:
    bad = np.full((NUM_OPENPOSE_JOINTS, 3), np.nan)
    values = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
    if not isinstance(values, list):
        return bad, f"{path}: person {index} has no 'pose_keypoints_2d' list"
    if len(values) != _VALUES_PER_PERSON:
        hint = " (COCO-18 model? spin_diff needs BODY_25)" if len(values) == 54 else ""
        return bad, (
            f"{path}: person {index} has {len(values)} numbers in pose_keypoints_2d, expected "
            f"{_VALUES_PER_PERSON} (25 BODY_25 joints x (x, y, confidence)){hint}"
        )
    try:
        array = np.asarray(values, dtype=np.float64).reshape(NUM_OPENPOSE_JOINTS, 3)
    except (TypeError, ValueError) as err:
        return bad, f"{path}: person {index} has non-numeric keypoints ({err})"
    if not np.all(np.isfinite(array)):
        return bad, f"{path}: person {index} has NaN or inf keypoints"
    confidence = array[:, 2]
    if confidence.min() < 0 or confidence.max() > 1 + CONFIDENCE_OVERSHOOT:
        return bad, (
            f"{path}: person {index} has confidences from {confidence.min():g} to {confidence.max():g}; "
            "OpenPose's lie in [0, 1] (are the columns x, y, confidence?)"
        )
    array[:, 2] = np.minimum(confidence, 1.0)
    return array, None


def read_openpose_json(path: str | Path, allow_empty: bool = False, allow_nonfinite: bool = False) -> np.ndarray:
    """Every person's BODY_25 keypoints in an OpenPose JSON file (:func:`read_openpose_people`).

    Args:
        path: the ``*_keypoints.json`` file.
        allow_empty: return ``(0, 25, 3)`` for a file with no people instead of raising.
        allow_nonfinite: keep unusable people as rows of NaN (the caller fails them one by one)
            instead of rejecting the file.

    Returns:
        ``(P, 25, 3)`` float64: pixels ``x, y`` and confidence.

    Raises:
        FileNotFoundError: no file at ``path``.
        OpenPoseFileError: not JSON, no ``people`` list, an unusable person (unless
            ``allow_nonfinite``), or no people (unless ``allow_empty``).
    """
    people, reasons = read_openpose_people(path)
    if reasons and not allow_nonfinite:
        raise OpenPoseFileError(reasons[min(reasons)])
    if len(people) == 0 and not allow_empty:
        raise OpenPoseFileError(f"{path}: no people detected in it; skip this image, or give it keypoints")
    return people


def _as_openpose_block(keypoints: np.ndarray, source: str) -> np.ndarray:
    """``(P, 25, 3)`` from ``(25, 3)``, ``(49, 3)``, ``(P, 25, 3)`` or ``(P, 49, 3)``."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim == 2:
        keypoints = keypoints[None]
    joints_ok = keypoints.ndim == 3 and keypoints.shape[1] in (NUM_OPENPOSE_JOINTS, NUM_KEYPOINTS)
    if not joints_ok or keypoints.shape[2] != 3:
        raise ValueError(
            f"{source}: keypoints must be (25, 3) or (49, 3), optionally with a leading person "
            f"axis, got {keypoints.shape}"
        )
    return keypoints[:, :NUM_OPENPOSE_JOINTS]


def write_openpose_json(path: str | Path, keypoints: np.ndarray, zero_undetected: bool = True) -> Path:
    """Write keypoints as an OpenPose JSON file (version 1.3, BODY_25).

    Args:
        path: output file (parent folders are created).
        keypoints: ``(25, 3)``, ``(49, 3)`` (OpenPose block used) or the same with a leading
            person axis ``(P, ...)``; pixels and confidence.
        zero_undetected: write joints with confidence <= 0 as ``0, 0, 0``, as OpenPose does.

    Returns:
        The path written.
    """
    path = Path(path)
    people = _as_openpose_block(keypoints, str(path)).copy()
    if not np.all(np.isfinite(people)):
        raise ValueError(f"{path}: keypoints contain NaN or inf")
    if zero_undetected:
        people[people[..., 2] <= 0] = 0.0
    content = {
        "version": 1.3,
        "people": [
            {
                "person_id": [-1],
                "pose_keypoints_2d": [float(v) for v in person.reshape(-1)],
                "face_keypoints_2d": [],
                "hand_left_keypoints_2d": [],
                "hand_right_keypoints_2d": [],
                "pose_keypoints_3d": [],
                "face_keypoints_3d": [],
                "hand_left_keypoints_3d": [],
                "hand_right_keypoints_3d": [],
            }
            for person in people
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def openpose_to_keypoints49(openpose: np.ndarray) -> np.ndarray:
    """``(..., 25, 3)`` OpenPose joints to the 49-joint layout ``(..., 49, 3)``; GT block zero."""
    openpose = np.asarray(openpose, dtype=np.float64)
    if openpose.shape[-2:] != (NUM_OPENPOSE_JOINTS, 3):
        raise ValueError(f"OpenPose keypoints must be (..., 25, 3), got {openpose.shape}")
    out = np.zeros(openpose.shape[:-2] + (NUM_KEYPOINTS, 3))
    out[..., :NUM_OPENPOSE_JOINTS, :] = openpose
    return out


def keypoints49_to_openpose(keypoints: np.ndarray) -> np.ndarray:
    """The OpenPose block ``(..., 25, 3)`` of 49-joint keypoints ``(..., 49, 3)``."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints must be (..., 49, 3), got {keypoints.shape}")
    return keypoints[..., :NUM_OPENPOSE_JOINTS, :].copy()


def select_person(
    people: np.ndarray,
    how: Literal["confidence", "largest"] | int = "confidence",
    box: np.ndarray | None = None,
) -> int:
    """Index of one person among ``(P, 25, 3)`` detections.

    Args:
        people: detections, ``P >= 1``.
        how: ``"confidence"`` (highest summed confidence), ``"largest"`` (largest extent
            of the confident joints), or an explicit index.
        box: optional ``(x0, y0, x1, y1)``; when given, the person with the most confident
            joints inside it wins (SPIN matches detections to its annotated box this way).
    """
    people = np.asarray(people)
    if people.ndim != 3 or people.shape[0] == 0:
        raise ValueError(f"need detections of shape (P >= 1, 25, 3), got {people.shape}")
    if isinstance(how, int):
        if not 0 <= how < people.shape[0]:
            raise ValueError(f"person index {how} out of range for {people.shape[0]} detections")
        return how
    confidence = people[..., 2]
    if box is not None:
        x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
        x, y = people[..., 0], people[..., 1]
        inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        return int(np.argmax((confidence * inside).sum(-1)))
    if how == "confidence":
        return int(np.argmax(confidence.sum(-1)))
    if how == "largest":
        sizes = []
        for person in people:
            seen = person[person[:, 2] > 0, :2]
            sizes.append(float(np.ptp(seen, axis=0).max()) if len(seen) > 1 else 0.0)
        return int(np.argmax(sizes))
    raise ValueError(f"unknown person selection {how!r}: use 'confidence', 'largest' or an index")


def load_openpose_keypoints(
    path: str | Path,
    how: Literal["confidence", "largest"] | int = "confidence",
    box: np.ndarray | None = None,
) -> np.ndarray:
    """One person's keypoints from an OpenPose JSON file, in the 49-joint layout ``(49, 3)``."""
    people = read_openpose_json(path)
    index = select_person(people, how, box)
    return openpose_to_keypoints49(people[index])

