"""Whether a finished fit earned its success: residual on confident keypoints, pose prior.

SMPLify marks a fit failed only when it could not run (bad input) or diverged. A fit can
still be wrong while its optimiser converged: limbs that do not follow the keypoints, or a
contorted pose bought with a low reprojection error. :func:`assess_fits` measures both and
applies the documented thresholds of :class:`~spin_diff.fitting.config.FitQualityConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spin_diff.fitting.config import FitQualityConfig


@dataclass
class FitQuality:
    """Per-sample measurements and verdicts. B = batch size."""

    residual_px: torch.Tensor  # (B,) mean residual on confident keypoints, crop pixels (NaN: none)
    confident_joints: torch.Tensor  # (B,) how many keypoints were used for it
    pose_prior: torch.Tensor  # (B,) GMM pose prior energy of the body pose (NaN: no GMM)
    success: torch.Tensor  # (B,) bool: the fit's success and both measures within thresholds
    failure: list[str | None]  # the first reason a sample failed, None where it succeeded


def confident_residual(
    residuals: torch.Tensor, confidence: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``residuals`` (B, J) over joints whose ``confidence`` (B, J) exceeds
    ``threshold``: ((B,) mean, NaN where no joint is confident; (B,) counts)."""
    mask = (torch.nan_to_num(confidence) > threshold).to(residuals.dtype)
    count = mask.sum(-1)
    total = (torch.nan_to_num(residuals) * mask).sum(-1)
    mean = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))
    return mean, count


def assess_fits(
    residuals: torch.Tensor,
    confidence: torch.Tensor,
    body_pose: torch.Tensor,
    fit_success: torch.Tensor,
    fit_failure: list[str | None],
    config: FitQualityConfig,
    gmm: torch.nn.Module | None = None,
) -> FitQuality:
    """Judge a batch of finished fits.

    Args:
        residuals: (B, 49) crop-pixel distances between fitted joints and keypoints.
        confidence: (B, 49) keypoint confidences, SPIN's ignored joints already zeroed (the
            SMPL hips and neck are placed differently from a detector's, by definition).
        body_pose: (B, 69) fitted body pose, axis-angle.
        fit_success, fit_failure: the fitter's own verdict (kept when it already failed).
        config: the thresholds.
        gmm: the GMM pose prior; None skips the pose-prior check.
    """
    residual, count = confident_residual(residuals, confidence, config.confident)
    if gmm is not None:
        with torch.no_grad():
            prior = gmm(torch.nan_to_num(body_pose).to(next(gmm.buffers()).dtype)).to(residual.dtype)
    else:
        prior = torch.full_like(residual, float("nan"))
    too_far = residual > config.max_residual_px
    contorted = prior > config.max_pose_prior
    success = fit_success.to(residual.device).clone()
    if config.enabled:
        success &= ~too_far & ~contorted & (count > 0)
    checks = torch.stack([too_far, contorted, count > 0]).cpu()
    values = torch.stack([residual, prior]).cpu()
    failure: list[str | None] = []
    for i, reason in enumerate(fit_failure):
        if reason is None and config.enabled:
            if not checks[2, i]:
                reason = f"no keypoint above confidence {config.confident} to judge the fit by"
            elif checks[0, i]:
                reason = (
                    f"the body does not follow the keypoints: mean residual {values[0, i]:.1f} px "
                    f"(224 crop) on {int(count[i])} confident joints, over fitting.quality.max_residual_px "
                    f"{config.max_residual_px:g}"
                )
            elif checks[1, i]:
                reason = (
                    f"implausible pose: GMM pose prior energy {values[1, i]:.1f}, over "
                    f"fitting.quality.max_pose_prior {config.max_pose_prior:g}"
                )
        failure.append(reason)
    if not config.enabled:
        failure = list(fit_failure)
    return FitQuality(residual, count, prior, success, failure)
