"""Detector-like corruption of 2D keypoints, batched and reproducible.

Clean projected keypoints are far better than what a 2D detector such as OpenPose gives.
:func:`corrupt_keypoints` degrades them the ways detectors fail, in this order:

1. confidence: each joint's confidence is multiplied by ``c = 1 - confidence_spread * U(0, 1)``;
2. jitter: Gaussian noise with standard deviation
   ``jitter_std * box_side * ((1 - c) + jitter_floor)`` pixels per coordinate, so less
   confident joints are less accurate, as with real detectors;
3. left/right swaps: each left/right pair (from a flip permutation) is exchanged with
   probability ``swap_prob``, and a whole person with ``full_swap_prob`` (the front/back
   confusion of people seen from behind); position and confidence move together;
4. outliers: with ``outlier_prob`` a joint lands anywhere in the person's box with a
   moderate confidence drawn from ``outlier_confidence``;
5. misses: with ``miss_prob`` a joint is not detected;
6. image border: with ``border_occlusion`` joints outside ``[0, W) x [0, H)`` are not detected.

Undetected joints (steps 5, 6) are written as OpenPose does: ``0, 0, 0``. Joints whose input
confidence is 0 pass through unchanged except for label swaps. All probabilities and scales
zero (and ``border_occlusion`` off), as in ``CorruptionConfig()``, is the identity.

Every call draws the same random arrays whatever the configuration, so a given generator
state corrupts the same joints the same way when only one setting changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from spin_diff.errors import BadInputError

__all__ = ["CorruptionConfig", "CorruptionResult", "CORRUPTION_PRESETS", "corrupt_keypoints", "hidden_by_head"]


@dataclass
class CorruptionConfig:
    """How strongly :func:`corrupt_keypoints` degrades keypoints; the defaults do nothing."""

    confidence_spread: float = 0.0  # confidence *= 1 - spread * U(0, 1)
    jitter_std: float = 0.0  # noise std as a fraction of the box side, at confidence 0
    jitter_floor: float = 0.0  # added to (1 - confidence) in the noise scale
    swap_prob: float = 0.0  # per left/right pair
    full_swap_prob: float = 0.0  # per person: every pair swapped
    outlier_prob: float = 0.0  # per joint
    outlier_confidence: tuple[float, float] = (0.2, 0.6)  # range of an outlier's confidence
    miss_prob: float = 0.0  # per joint
    border_occlusion: bool = False  # joints outside the image are not detected

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        for name in ("confidence_spread", "swap_prob", "full_swap_prob", "outlier_prob", "miss_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise BadInputError(f"corruption.{name} must lie in [0, 1], got {value}")
        for name in ("jitter_std", "jitter_floor"):
            if getattr(self, name) < 0.0:
                raise BadInputError(f"corruption.{name} must be >= 0, got {getattr(self, name)}")
        low, high = self.outlier_confidence
        if not 0.0 <= low <= high <= 1.0:
            raise BadInputError(
                "corruption.outlier_confidence must be (low, high) within [0, 1], "
                f"got {self.outlier_confidence}"
            )

    @classmethod
    def preset(cls, name: str) -> "CorruptionConfig":
        """``"none"``, ``"detector"`` (OpenPose-like on clear images) or ``"heavy"``."""
        if name not in CORRUPTION_PRESETS:
            raise BadInputError(f"unknown corruption preset {name!r}; choose from {sorted(CORRUPTION_PRESETS)}")
        return replace(CORRUPTION_PRESETS[name])


CORRUPTION_PRESETS: dict[str, CorruptionConfig] = {
    "none": CorruptionConfig(),
    # Roughly OpenPose on unoccluded people: typical errors of 1-3% of the person's size.
    "detector": CorruptionConfig(
        confidence_spread=0.5,
        jitter_std=0.03,
        jitter_floor=0.2,
        swap_prob=0.02,
        full_swap_prob=0.01,
        outlier_prob=0.01,
        miss_prob=0.03,
        border_occlusion=True,
    ),
    "heavy": CorruptionConfig(
        confidence_spread=0.8,
        jitter_std=0.05,
        jitter_floor=0.3,
        swap_prob=0.06,
        full_swap_prob=0.04,
        outlier_prob=0.05,
        miss_prob=0.1,
        border_occlusion=True,
    ),
}


@dataclass
class CorruptionResult:
    """Corrupted keypoints and which joints each failure hit; masks are ``(N, J)`` bool."""

    keypoints: np.ndarray  # (N, J, 3)
    swapped: np.ndarray = field(repr=False)
    outlier: np.ndarray = field(repr=False)
    missed: np.ndarray = field(repr=False)
    occluded: np.ndarray = field(repr=False)


def _pairs(flip_perm: Sequence[int], num_joints: int) -> np.ndarray:
    perm = np.asarray(flip_perm, dtype=np.int64)
    if perm.shape != (num_joints,) or not np.array_equal(np.sort(perm), np.arange(num_joints)):
        raise BadInputError(f"flip_perm must be a permutation of {num_joints} joints, got {list(flip_perm)}")
    if not np.array_equal(perm[perm], np.arange(num_joints)):
        raise BadInputError("flip_perm must be its own inverse (a left/right pairing)")
    return perm


def corrupt_keypoints(
    keypoints: np.ndarray,
    box_center: np.ndarray,
    box_size: np.ndarray,
    config: CorruptionConfig,
    rng: np.random.Generator,
    flip_perm: Sequence[int],
    image_size: np.ndarray | None = None,
) -> CorruptionResult:
    """Degrade clean keypoints like a 2D detector would (see the module docstring).

    Args:
        keypoints: ``(N, J, 3)`` pixels and confidence (input is not modified).
        box_center: ``(N, 2)`` centre of each person's box, pixels.
        box_size: ``(N,)`` side of each person's (square) box, pixels (SPIN: ``200 * scale``).
        config: the corruption strengths.
        rng: numpy generator; the only source of randomness.
        flip_perm: ``J`` indices of each joint's mirror joint (itself on the midline), e.g.
            the OpenPose block of :data:`spin_diff.body.joints.KEYPOINT_FLIP_PERM`.
        image_size: ``(N, 2)`` or ``(2,)`` image ``(width, height)``; needed for
            ``border_occlusion``.

    Returns:
        :class:`CorruptionResult`.
    """
    config.validate()
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[2] != 3:
        raise BadInputError(f"keypoints must be (N, J, 3), got {keypoints.shape}")
    num, joints = keypoints.shape[:2]
    box_center = np.broadcast_to(np.asarray(box_center, dtype=np.float64), (num, 2))
    box_size = np.broadcast_to(np.asarray(box_size, dtype=np.float64), (num,))
    perm = _pairs(flip_perm, joints)
    if config.border_occlusion and image_size is None:
        raise BadInputError("border_occlusion needs image_size=(width, height)")

    # Fixed draws, whatever the configuration (see the module docstring).
    confidence_draw = rng.random((num, joints))
    noise = rng.standard_normal((num, joints, 2))
    pair_draw = rng.random((num, joints))
    person_draw = rng.random(num)
    outlier_draw = rng.random((num, joints))
    outlier_position = rng.random((num, joints, 2))
    outlier_confidence = rng.random((num, joints))
    miss_draw = rng.random((num, joints))

    out = keypoints.copy()
    visible = keypoints[..., 2] > 0

    # 1-2. confidence and confidence-dependent jitter
    factor = 1.0 - config.confidence_spread * confidence_draw
    sigma = config.jitter_std * box_size[:, None] * ((1.0 - factor) + config.jitter_floor)
    out[..., :2] = np.where(visible[..., None], out[..., :2] + noise * sigma[..., None], out[..., :2])
    out[..., 2] = np.where(visible, out[..., 2] * factor, out[..., 2])

    # 3. left/right swaps; the draw of a pair is the one of its lower index
    lower = np.minimum(np.arange(joints), perm)
    pair_swap = (pair_draw[:, lower] < config.swap_prob) & (perm != np.arange(joints))[None]
    person_swap = (person_draw < config.full_swap_prob)[:, None] & (perm != np.arange(joints))[None]
    swapped = pair_swap | person_swap
    out = np.where(swapped[..., None], out[:, perm], out)
    visible = np.where(swapped, visible[:, perm], visible)

    # 4. outliers anywhere in the person's box, moderate confidence
    outlier = visible & (outlier_draw < config.outlier_prob)
    corner = box_center - 0.5 * box_size[:, None]
    anywhere = corner[:, None, :] + outlier_position * box_size[:, None, None]
    low, high = config.outlier_confidence
    out[..., :2] = np.where(outlier[..., None], anywhere, out[..., :2])
    out[..., 2] = np.where(outlier, low + (high - low) * outlier_confidence, out[..., 2])

    # 5. misses
    missed = visible & (miss_draw < config.miss_prob)

    # 6. image border
    occluded = np.zeros_like(missed)
    if config.border_occlusion:
        size = np.broadcast_to(np.asarray(image_size, dtype=np.float64), (num, 2))
        inside = (
            (out[..., 0] >= 0)
            & (out[..., 0] < size[:, None, 0])
            & (out[..., 1] >= 0)
            & (out[..., 1] < size[:, None, 1])
        )
        occluded = visible & ~missed & ~inside
    out[missed | occluded] = 0.0
    return CorruptionResult(keypoints=out, swapped=swapped, outlier=outlier, missed=missed, occluded=occluded)


def hidden_by_head(
    points: np.ndarray,
    depth: np.ndarray,
    ears: tuple[int, int],
    nose: int,
    front: Sequence[int],
    pairs: Sequence[tuple[int, int]],
) -> np.ndarray:
    """(..., J) bool: face points the head itself hides from the camera, by their depths.

    The face looks away when the ears are nearer the camera than the nose: then every point
    of ``front`` (nose, eyes) is hidden. The head is turned side-on when a left/right pair of
    ``pairs`` (ears, eyes) is further apart in depth than across the image: then the farther
    of the pair is hidden. Detectors report such points missing (OpenPose) or place them where
    they cannot be seen (BlazePose, whose mapping applies this rule), so the project's
    detector and its synthetic people share this one rule.

    Args:
        points: (..., J, 2) pixels.
        depth: (..., J) in the same pixel units, larger = farther from the camera.
        ears: the (left, right) ear indices; nose: the nose index; front, pairs: indices.
    """
    hidden = np.zeros(depth.shape, dtype=bool)
    away = (depth[..., ears[0]] + depth[..., ears[1]]) / 2 < depth[..., nose]
    hidden[..., list(front)] |= away[..., None]
    for i, j in pairs:
        across = np.linalg.norm(points[..., i, :] - points[..., j, :], axis=-1)
        apart = depth[..., i] - depth[..., j]
        side_on = np.abs(apart) > across
        hidden[..., i] |= side_on & (apart > 0)
        hidden[..., j] |= side_on & (apart < 0)
    return hidden
