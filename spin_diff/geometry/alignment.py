"""Rigid and similarity alignment of point sets, and the joint errors built on it.

Errors are returned in the units of the inputs (metres for SMPL joints); callers convert to
millimetres for reporting. Inputs are expected to be root-centred already where the
evaluation protocol asks for it (MPJPE on pelvis-centred joints); these functions do not
pick a root joint.
"""

from __future__ import annotations

import torch

__all__ = ["similarity_procrustes", "mpjpe", "pa_mpjpe"]


def similarity_procrustes(
    source: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best similarity transform taking ``source`` onto ``target`` (Umeyama's method).

    Minimises ``sum_n w_n |scale * R @ source_n + t - target_n|^2`` over a scale, a proper
    rotation (``det R = +1``) and a translation. Without the determinant correction the SVD
    solution can be a reflection, which would make a mirrored prediction look perfect.

    Args:
        source: ``(B, N, 3)`` points to align.
        target: ``(B, N, 3)`` points to align to.
        weights: ``(B, N)`` non-negative point weights, or ``None`` for uniform.

    Returns:
        A tuple ``(aligned, scale, rotation, translation)``:
        ``aligned`` ``(B, N, 3)`` = ``scale * source @ rotation^T + translation``;
        ``scale`` ``(B,)``; ``rotation`` ``(B, 3, 3)``; ``translation`` ``(B, 3)``.
    """
    if weights is None:
        weights = torch.ones(source.shape[:-1], dtype=source.dtype, device=source.device)
    weights = weights.clamp_min(0)
    # The clamp only matters when every weight is zero, where any answer is arbitrary.
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)

    source_mean = (weights[..., None] * source).sum(-2)
    target_mean = (weights[..., None] * target).sum(-2)
    source_centred = source - source_mean[:, None, :]
    target_centred = target - target_mean[:, None, :]

    # cross_cov = sum_n w_n x_n y_n^T; R = V D U^T maximises trace(R cross_cov).
    cross_cov = torch.einsum("bn,bni,bnj->bij", weights, source_centred, target_centred)
    u, singular_values, vh = torch.linalg.svd(cross_cov)
    v = vh.transpose(-1, -2)
    ut = u.transpose(-1, -2)
    det_sign = torch.where(torch.linalg.det(v @ ut) < 0, -1.0, 1.0).to(source.dtype)
    correction = torch.ones_like(singular_values)
    correction = torch.cat([correction[:, :2], det_sign[:, None]], dim=-1)
    rotation = v @ (correction[:, :, None] * ut)

    source_variance = (weights * (source_centred * source_centred).sum(-1)).sum(-1)
    scale = (correction * singular_values).sum(-1) / source_variance.clamp_min(
        torch.finfo(source.dtype).tiny
    )
    translation = target_mean - scale[:, None] * torch.einsum("bij,bj->bi", rotation, source_mean)
    aligned = scale[:, None, None] * source @ rotation.transpose(-1, -2) + translation[:, None, :]
    return aligned, scale, rotation, translation


def mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error.

    Args:
        pred: ``(B, J, 3)`` predicted joints.
        gt: ``(B, J, 3)`` ground-truth joints, in the same units and frame.

    Returns:
        ``(B,)`` mean Euclidean distance over joints, in the input units.
    """
    return torch.linalg.vector_norm(pred - gt, dim=-1).mean(-1)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MPJPE after aligning each prediction to its ground truth by a similarity transform.

    Args:
        pred: ``(B, J, 3)`` predicted joints.
        gt: ``(B, J, 3)`` ground-truth joints.

    Returns:
        ``(B,)`` Procrustes-aligned mean per-joint error, in the input units.
    """
    aligned, _, _, _ = similarity_procrustes(pred, gt)
    return mpjpe(aligned, gt)
