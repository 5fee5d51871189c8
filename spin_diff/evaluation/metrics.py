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
