"""People found in a photo as the rest of the project takes them: 49-joint keypoints, a box
per person and flags for results to trust less.

A person is flagged (never dropped) when it is small (a box under :data:`SMALL_PERSON_PX`
pixels on its longer side: the landmarks come from a crop upsampled to 256 px) or cut off
(body landmarks, shoulders to ankles, placed outside the image: BlazePose still places them,
and :func:`~spin_diff.detect.layout.blazepose_to_keypoints49` gives them confidence 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spin_diff.constants import NUM_KEYPOINTS
from spin_diff.detect.blazepose import BODY_LANDMARKS, BlazePose
from spin_diff.detect.layout import BLAZEPOSE_LANDMARK_NAMES, blazepose_to_keypoints49

__all__ = ["SMALL_PERSON_PX", "DetectedPeople", "detect_people"]

SMALL_PERSON_PX = 100.0


@dataclass
class DetectedPeople:
    """Everyone found in one image. P = number of people (0 when nobody was found).

    Attributes:
        keypoints: (P, 49, 3) pixels and confidence (the OpenPose BODY_25 block filled).
        boxes: (P, 4) x1, y1, x2, y2 per person.
        scores: (P,) the person detector's scores.
        flags: per person, the reasons to trust it less ("small ...", "cut off ..."); empty: none.
    """

    keypoints: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    flags: list[list[str]]

    def __len__(self) -> int:
        return len(self.keypoints)


def person_flags(landmarks: np.ndarray, box: np.ndarray, image_size: tuple[int, int]) -> list[str]:
    """The flags of one person: landmarks (33, 2), box (4,) x1, y1, x2, y2, image (width, height)."""
    flags = []
    side = float(max(box[2] - box[0], box[3] - box[1]))
    if side < SMALL_PERSON_PX:
        flags.append(f"small ({side:.0f} px box, under {SMALL_PERSON_PX:.0f} px): keypoints less reliable")
    width, height = image_size
    body = landmarks[list(BODY_LANDMARKS)]
    outside = (body[:, 0] < 0) | (body[:, 0] >= width) | (body[:, 1] < 0) | (body[:, 1] >= height)
    if outside.any():
        names = [BLAZEPOSE_LANDMARK_NAMES[BODY_LANDMARKS[i]] for i in np.flatnonzero(outside)]
        flags.append(f"cut off ({', '.join(names)} outside the image: missing)")
    return flags


def detect_people(detector: BlazePose, image: np.ndarray) -> DetectedPeople:
    """Everyone in ``image`` ((H, W, 3) uint8 RGB), left to right, in the 49-joint layout."""
    height, width = image.shape[:2]
    found = detector.detect(image)
    if not found:
        return DetectedPeople(np.zeros((0, NUM_KEYPOINTS, 3)), np.zeros((0, 4)), np.zeros(0), [])
    landmarks = np.stack([p.landmarks for p in found])
    visibility = np.stack([p.visibility for p in found])
    depth = np.stack([p.depth for p in found])
    keypoints = blazepose_to_keypoints49(landmarks, visibility, (width, height), depth)
    boxes = np.stack([p.box for p in found])
    flags = [person_flags(p.landmarks, p.box, (width, height)) for p in found]
    return DetectedPeople(keypoints, boxes, np.array([p.score for p in found]), flags)
