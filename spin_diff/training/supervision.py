"""Which fit supervises which example (SPIN's rules, docs/conventions.md#which-fit-supervises), batched.

Per example, in the training view:

1. the stored fit (read from the store, mapped to the view) and the new in-loop fit are both
   scored with SPIN's score; the lower one is the example's fit (a missing stored fit scores
   +inf; a failed new fit does not compete);
2. where the dataset has ground-truth SMPL (``has_smpl``), the ground truth replaces it;
3. the pose and shape losses see an example only if its fit scores under the threshold or
   is ground truth, and its prediction is finite;
4. a fit with any ``|beta| > beta_limit`` gives no shape supervision: its betas are zeroed
   for the loss only (what is stored is untouched).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Supervision", "choose_supervision"]


@dataclass
class Supervision:
    """The targets of one batch. B rows."""

    pose: torch.Tensor  # (B, 72) axis-angle, the view's frame
    betas: torch.Tensor  # (B, 10) for the loss (|beta| rule applied)
    score: torch.Tensor  # (B,) the best fit's score, stored or new (+inf: no fit)
    new_is_better: torch.Tensor  # (B,) bool: the in-loop fit beat the stored one
    supervised: torch.Tensor  # (B,) bool: pose/betas losses see this row


def choose_supervision(
    stored_pose: torch.Tensor,
    stored_betas: torch.Tensor,
    stored_score: torch.Tensor,
    new_pose: torch.Tensor | None,
    new_betas: torch.Tensor | None,
    new_score: torch.Tensor | None,
    new_ok: torch.Tensor | None,
    gt_pose: torch.Tensor,
    gt_betas: torch.Tensor,
    has_smpl: torch.Tensor,  # (B,) ground truth exists (dataset or store)
    finite_prediction: torch.Tensor,
    threshold: float,
    beta_limit: float,
) -> Supervision:
    """Apply SPIN's rules (module docstring). ``new_*`` are None when fitting is off."""
    if new_pose is None:
        new_is_better = torch.zeros_like(has_smpl)
        pose, betas, score = stored_pose, stored_betas, stored_score
    else:
        better = new_ok & (new_score < stored_score)
        new_is_better = better & ~has_smpl  # a fit never stands in for ground truth
        pose = torch.where(new_is_better[:, None], new_pose, stored_pose)
        betas = torch.where(new_is_better[:, None], new_betas, stored_betas)
        score = torch.where(better, new_score, stored_score)  # the best fit's score (logged)
    pose = torch.where(has_smpl[:, None], gt_pose, pose)
    betas = torch.where(has_smpl[:, None], gt_betas, betas)
    supervised = ((score < threshold) | has_smpl) & finite_prediction
    extreme = (betas.abs() > beta_limit).any(-1)
    loss_betas = torch.where(extreme[:, None], torch.zeros_like(betas), betas)
    return Supervision(pose, loss_betas, score, new_is_better, supervised)
