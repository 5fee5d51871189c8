"""Measures of a posed body's torso: which way it points and how far it leans.

Joints are in SPIN's 49-keypoint layout, camera frame (x right, y down, z forward).
"""

from __future__ import annotations

import torch

from spin_diff.body.joints import joint_indices

__all__ = ["torso_up", "torso_angle", "torso_lean"]


_TORSO_HIPS = ("Right Hip", "Left Hip")


_TORSO_SHOULDERS = ("Right Shoulder", "Left Shoulder")


def torso_up(joints: torch.Tensor) -> torch.Tensor:
    """(B, 3) unit vectors from the hips' midpoint to the shoulders' midpoint.

    Args:
        joints: (B, 49, 3) SPIN-layout joints (the GT hips and shoulders are used).
    """
    hips = joints[:, joint_indices(_TORSO_HIPS)].mean(1)
    shoulders = joints[:, joint_indices(_TORSO_SHOULDERS)].mean(1)
    return torch.nn.functional.normalize(shoulders - hips, dim=-1)


def torso_angle(joints: torch.Tensor, true_joints: torch.Tensor) -> torch.Tensor:
    """(B,) degrees between the fitted and the true torso (hips -> shoulders), both (B, 49, 3)
    in the same camera frame; no alignment, so a body leaning in depth counts in full."""
    cosine = (torso_up(joints) * torso_up(true_joints)).sum(-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cosine))


def torso_lean(joints: torch.Tensor) -> dict[str, torch.Tensor]:
    """How far a torso leans from the camera's upright (-y, image up), in degrees.

    Returns {"total": (B,), "depth": (B,), "sideways": (B,)}: the angle to upright, and its
    parts seen from the side (in the camera's y-z plane; positive: the shoulders lean away
    from the camera) and from the front (the x-y plane; positive: shoulders to image right).

    Args:
        joints: (B, 49, 3) camera-frame joints (x right, y down, z forward).
    """
    up = torso_up(joints)
    total = torch.rad2deg(torch.arccos((-up[:, 1]).clamp(-1.0, 1.0)))
    depth = torch.rad2deg(torch.atan2(up[:, 2], -up[:, 1]))
    sideways = torch.rad2deg(torch.atan2(up[:, 0], -up[:, 1]))
    return {"total": total, "depth": depth, "sideways": sideways}
