"""Robust keypoint losses shared by fitting, guided refinement and training.

A leaf module: it imports torch and the camera projection, nothing above ``geometry``, so
``fitting``, ``diffusion`` and ``training`` can all use it without importing each other.
"""

from __future__ import annotations

import torch

from spin_diff.geometry.cameras import perspective_projection

__all__ = ["gmof", "reprojection_per_joint", "reprojection_loss"]


def gmof(residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure robustifier, elementwise: sigma^2 r^2 / (sigma^2 + r^2)."""
    squared = residual**2
    return sigma**2 * squared / (sigma**2 + squared)


def reprojection_per_joint(
    projected: torch.Tensor, keypoints: torch.Tensor, confidence: torch.Tensor, sigma: float
) -> torch.Tensor:
    """SMPLify's robust data term per joint: conf^2 * sum_xy GMoF(residual).

    Args:
        projected, keypoints: (B, J, 2) pixels. confidence: (B, J).

    Returns:
        (B, J).
    """
    return confidence**2 * gmof(projected - keypoints, sigma).sum(-1)


def reprojection_loss(joints, transl, keypoints, confidence, center, focal, sigma: float) -> torch.Tensor:
    """The robust reprojection term of 3D joints (B, J, 3) under a camera, summed over joints:
    (B,). ``transl`` (B, 3), ``center`` (B, 2), ``focal`` scalar or (B,)."""
    projected = perspective_projection(joints, transl, focal_length=focal, camera_center=center)
    return reprojection_per_joint(projected, keypoints, confidence, sigma).sum(-1)
