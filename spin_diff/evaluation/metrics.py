"""MPJPE and PA-MPJPE on the 14 LSP joints from the H36M regressor, in millimetres (as SPIN)."""

from __future__ import annotations

import torch

from spin_diff.body.joints import H36M_TO_J14
from spin_diff.body.model import BodyModel
from spin_diff.errors import MissingInputError
from spin_diff.geometry.alignment import mpjpe, pa_mpjpe

# In H36M_TO_J14's order, the two hips are positions 2 and 3; their midpoint is the pelvis.
_HIPS = (2, 3)


def evaluation_joints(model: BodyModel, pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """(B, 14, 3) evaluation joints, pelvis-centred, from the body model's H36M regressor."""
    if model.h36m_regressor is None:
        raise MissingInputError(
            f"no J_regressor_h36m.npy next to {model.files.model}: evaluation needs it "
            "(SPIN's data file; pass --set body.j_regressor_h36m=PATH)"
        )
    with torch.no_grad():
        joints = model(pose, betas, check_finite=False).h36m_joints[:, list(H36M_TO_J14)]
    pelvis = joints[:, list(_HIPS)].mean(1, keepdim=True)
    return joints - pelvis


def joint_errors(model: BodyModel, pose, betas, gt_pose, gt_betas) -> dict[str, torch.Tensor]:
    """Per-sample MPJPE and PA-MPJPE in mm: {"mpjpe": (B,), "pa_mpjpe": (B,)}."""
    predicted = evaluation_joints(model, pose, betas)
    target = evaluation_joints(model, gt_pose, gt_betas)
    return {"mpjpe": 1000 * mpjpe(predicted, target), "pa_mpjpe": 1000 * pa_mpjpe(predicted, target)}


_TORSO_HIPS = ("Right Hip", "Left Hip")
_TORSO_SHOULDERS = ("Right Shoulder", "Left Shoulder")


def torso_up(joints: torch.Tensor) -> torch.Tensor:
    """(B, 3) unit vectors from the hips' midpoint to the shoulders' midpoint.

    Args:
        joints: (B, 49, 3) SPIN-layout joints (the GT hips and shoulders are used).
    """
    from spin_diff.body.joints import joint_indices

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
