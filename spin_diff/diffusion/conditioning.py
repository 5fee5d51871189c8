"""A diffusion prior conditioned on a regressor's features (ScoreHMR's design).

The denoiser of a conditional prior (``model.denoiser.cond_dim = F``) takes a feature vector
concatenated to the input of every block. Training pairs each pose with the features a
trained regressor computes from that example's own input (its 49 crop keypoints, or its
crop), batched and without gradients (:func:`spin_diff.fitting.conditioning.feature_training_pairs`).
The checkpoint records that regressor (:func:`spin_diff.fitting.conditioning.conditioning_record`:
path, SHA-256 of the file, feature size, input kind), so fitting can refuse a regressor whose
features the prior never saw (:func:`spin_diff.fitting.conditioning.check_regressor`).

In fitting, a per-sample ``(B, F)`` tensor reaches the ``diffusion_pose`` term and guided
refinement through ``SMPLify.fit(..., condition=)``; :func:`prepare_condition` checks its
size, moves it to the prior, and zeroes non-finite rows (that row alone then uses the
unconditional mode, which conditioning dropout trained). An unconditional prior ignores it;
a conditional prior given none runs unconditionally and says so once in the log.
"""

from __future__ import annotations

import logging

import torch

from spin_diff.errors import BadInputError

__all__ = ["ConditioningError", "prepare_condition"]

log = logging.getLogger(__name__)


class ConditioningError(BadInputError):
    """Conditioning features that do not fit the prior (size, regressor, shape)."""


def prepare_condition(prior, condition: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    """The conditioning a fit hands the prior: ``(B, F)`` on the prior's device and dtype,
    non-finite rows zeroed (unconditional for that row only); None for an unconditional
    prior, or for a conditional one given no features (logged once per prior)."""
    cond_dim = prior.config.denoiser.cond_dim
    if not cond_dim:
        return None
    if condition is None:
        if not getattr(prior, "_told_unconditional", False):
            log.info(
                "the diffusion prior %s is conditional (%d features) but the fit has no regressor features: "
                "it runs in its unconditional mode (trained by conditioning dropout)", prior.source, cond_dim
            )
            prior._told_unconditional = True
        return None
    if condition.ndim != 2 or condition.shape[0] != batch or condition.shape[1] != cond_dim:
        raise ConditioningError(
            f"condition must be ({batch}, {cond_dim}): one row of {cond_dim} regressor features per sample for "
            f"the diffusion prior {prior.source}, got {tuple(condition.shape)}"
            + (f" ({condition.shape[-1]} features where the prior takes {cond_dim})" if condition.ndim == 2 else "")
        )
    condition = condition.detach().to(prior.alpha_bars.device, prior.alpha_bars.dtype)
    finite = torch.isfinite(condition).all(1, keepdim=True)
    return torch.where(finite, condition, torch.zeros_like(condition))


