"""SMPLify's hand-made priors: the elbow/knee bending prior and the shape prior (unweighted).

SPIN weights them by 15.2^2 and 5^2 inside its SMPLify objective.
"""

from __future__ import annotations

import torch

__all__ = ["ANGLE_PRIOR_INDICES", "ANGLE_PRIOR_SIGNS", "angle_prior", "shape_prior"]

# Body-pose entries (joints 1..23, 3 numbers each) of the left elbow's y, right elbow's y, left
# knee's x and right knee's x rotation. With the sign, exp(sign * theta) grows as the joint
# bends the wrong way: the left elbow bends with negative y, the right elbow with positive y,
# knees with positive x.
ANGLE_PRIOR_INDICES = (52, 55, 9, 12)
ANGLE_PRIOR_SIGNS = (1.0, -1.0, -1.0, -1.0)


def angle_prior(body_pose: torch.Tensor) -> torch.Tensor:
    """body_pose (B, 69) axis-angle -> (B,) sum_i exp(s_i * theta_i)^2 over the four hinge angles."""
    if body_pose.ndim != 2 or body_pose.shape[1] != 69:
        raise ValueError(f"body_pose must be (B, 69), got {tuple(body_pose.shape)}")
    # Plain slicing with Python-number signs: no index or sign tensors are copied to the device
    # on every call of the fitting loop.
    pairs = zip(ANGLE_PRIOR_INDICES, ANGLE_PRIOR_SIGNS)
    signed = torch.stack([sign * body_pose[:, index] for index, sign in pairs], dim=1)
    return torch.exp(2.0 * signed).sum(1)


def shape_prior(betas: torch.Tensor) -> torch.Tensor:
    """betas (B, S) -> (B,) squared norm."""
    if betas.ndim != 2:
        raise ValueError(f"betas must be (B, S), got {tuple(betas.shape)}")
    return betas.square().sum(1)
