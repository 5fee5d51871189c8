"""SPIN's training losses, as pure functions of tensors (docs/conventions.md#spins-training-loss).

Every loss takes a per-row mask of the examples it may see (finite predictions; examples with
3D joints; supervised fits). Masked rows contribute exactly nothing, forward or backward, and
no loss synchronises with the host: a batch with no valid row gives 0, not NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spin_diff.constants import NUM_OPENPOSE_JOINTS

__all__ = ["LossTerms", "keypoint_loss", "joints3d_loss", "rotation_loss", "betas_loss", "camera_loss", "spin_loss"]

# SPIN centres 3D joints on the midpoint of the GT block's hips (Right Hip, Left Hip).
_GT_RIGHT_HIP, _GT_LEFT_HIP = 2, 3


@dataclass
class LossTerms:
    """The parts of SPIN's loss (unweighted) and their weighted total. Scalars."""

    total: torch.Tensor
    keypoints: torch.Tensor
    joints3d: torch.Tensor
    pose: torch.Tensor
    betas: torch.Tensor
    camera: torch.Tensor


def _masked_mean(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (B, ...) over the rows where ``rows`` (B,) holds; 0 when none do."""
    per_row = values[0].numel() if values.shape[0] else 1
    picked = torch.where(rows.view(-1, *[1] * (values.ndim - 1)), values, torch.zeros_like(values))
    return picked.sum() / (rows.sum() * per_row).clamp_min(1)


def keypoint_loss(
    predicted: torch.Tensor, keypoints: torch.Tensor, rows: torch.Tensor, crop_size: float,
    openpose_weight: float = 0.0, gt_weight: float = 1.0,
) -> torch.Tensor:  # fmt: skip
    """SPIN's 2D loss: confidence-weighted squared error in [-1, 1] crop coordinates.

    Args:
        predicted: (B, 49, 2) projected joints, crop pixels.
        keypoints: (B, 49, 3) target crop pixels and confidence.
        rows: (B,) bool, the rows to use (others add 0 but still count in the mean, as SPIN's
            mean over the batch counts zero-confidence joints).
    """
    half = crop_size / 2.0
    weight = torch.ones(keypoints.shape[1], device=keypoints.device, dtype=keypoints.dtype)
    weight[:NUM_OPENPOSE_JOINTS] = openpose_weight
    weight[NUM_OPENPOSE_JOINTS:] = gt_weight
    conf = keypoints[..., 2] * weight
    error = ((predicted - keypoints[..., :2]) / half) ** 2
    error = torch.where(rows[:, None, None], conf[..., None] * error, torch.zeros_like(error))
    return error.mean()


def joints3d_loss(predicted: torch.Tensor, joints3d: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """SPIN's 3D loss on the 24 GT joints, both sides centred on the mid-hip.

    Args:
        predicted: (B, 49, 3) predicted joints (body frame).
        joints3d: (B, 24, 4) ground truth and confidence.
        rows: (B,) examples with 3D ground truth.
    """
    pred = predicted[:, NUM_OPENPOSE_JOINTS:]
    gt = joints3d[..., :3]
    pred = pred - 0.5 * (pred[:, _GT_RIGHT_HIP] + pred[:, _GT_LEFT_HIP])[:, None]
    gt = gt - 0.5 * (gt[:, _GT_RIGHT_HIP] + gt[:, _GT_LEFT_HIP])[:, None]
    return _masked_mean(joints3d[..., 3:] * (pred - gt) ** 2, rows)


def rotation_loss(predicted: torch.Tensor, target: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean squared error of rotation matrices (B, 24, 3, 3) over the supervised rows."""
    return _masked_mean((predicted - target) ** 2, rows)


def betas_loss(predicted: torch.Tensor, target: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean squared error of shape coefficients (B, 10) over the supervised rows."""
    return _masked_mean((predicted - target) ** 2, rows)


def camera_loss(cam: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """SPIN's penalty on a negative weak-perspective scale: mean(exp(-10 s)^2)."""
    return _masked_mean(torch.exp(-10.0 * cam[:, 0]) ** 2, rows)


def spin_loss(terms: dict[str, torch.Tensor], weights) -> LossTerms:
    """Weighted total of the unweighted parts (``weights``: a :class:`LossConfig`)."""
    total = weights.scale * (
        weights.keypoints * terms["keypoints"]
        + weights.joints3d * terms["joints3d"]
        + weights.pose * terms["pose"]
        + weights.betas * terms["betas"]
        + weights.camera * terms["camera"]
    )
    return LossTerms(total=total, **terms)
