"""Test-time refinement rows of ``spin-diff eval`` (the shape of ScoreHMR's Table 2).

Each row starts from the regressor's prediction (pose, betas, camera) and fits the dataset's
2D keypoints:

* ``none``: the regressor alone;
* ``smplify``: SPIN's SMPLify with the GMM prior only (every ``diffusion_pose`` term removed);
* ``term``: SMPLify with the learned diffusion-prior term in the body stage (the configured
  weight, or the default one when the configuration has none);
* ``guided``: ScoreHMR's guided refinement with the diffusion prior after the camera stage.

Stage lengths and the rest come from the configured ``fitting`` section. A sample whose fit
fails (too few confident joints, divergence) keeps the regressor's estimate and is counted.
For each row :func:`change_shares` gives the share of samples the row made worse / better by
more than 1 mm (PA-MPJPE) than the regressor alone: a prior can worsen good estimates, so both
are reported.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from spin_diff.body.model import pose_to_rotmat
from spin_diff.errors import BadInputError
from spin_diff.fitting.conditioning import check_fitter_regressor
from spin_diff.fitting.config import DIFFUSION_POSE_WEIGHT
from spin_diff.fitting.smplify import SMPLify

__all__ = ["REFINEMENTS", "Refiner", "change_shares", "parse_refinements", "refinement_config"]

REFINEMENTS = ("none", "smplify", "term", "guided")


def parse_refinements(text: str) -> list[str]:
    """``"none,smplify,term,guided"`` -> the rows, ``none`` always first."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in REFINEMENTS]
    if unknown:
        raise BadInputError(f"--refine: unknown row(s) {unknown}; choose from {', '.join(REFINEMENTS)}")
    return ["none"] + [n for n in REFINEMENTS[1:] if n in names]


def refinement_config(fitting, name: str):
    """The :class:`~spin_diff.fitting.config.FittingConfig` of one refinement row."""
    config = copy.deepcopy(fitting)
    if name == "smplify":
        config.method = "smplify"
        for stage in config.stages:
            stage.terms.pop("diffusion_pose", None)
    elif name == "term":
        config.method = "smplify"
        body_stages = [s for s in config.stages if "reprojection" in s.terms]
        if not body_stages:
            raise BadInputError(
                "fitting.stages has no body stage (with a reprojection term) for the diffusion term"
            )
        if not any("diffusion_pose" in s.terms for s in config.stages):
            body_stages[-1].terms["diffusion_pose"] = DIFFUSION_POSE_WEIGHT
    elif name == "guided":
        config.method = "guided"
    else:
        raise BadInputError(f"no fitting for refinement row {name!r}")
    return config


class Refiner:
    """The fitters of the requested rows, built once (the priors load once)."""

    def __init__(self, body, fitting, rows: list[str]) -> None:
        self.fitters = {
            name: SMPLify(body, refinement_config(fitting, name)) for name in rows if name != "none"
        }

    def check_regressor(self, regressor) -> None:
        """Refuse, before any work, a regressor whose features a row's conditional prior
        cannot use (:func:`spin_diff.fitting.conditioning.check_regressor`)."""
        for fitter in self.fitters.values():
            check_fitter_regressor(fitter, regressor)

    def refine(self, name: str, keypoints: torch.Tensor, rotmat, betas, transl, condition=None, seeds=None):
        """Fit one row from the start (``transl`` None: SMPLify estimates the camera); returns
        ``(rotmat (B, 24, 3, 3), betas, transl (B, 3), failed (B,) bool)``, failed samples
        keeping the start. ``condition``: (B, F) regressor features for a conditional prior;
        ``seeds``: (B,) per-sample noise keys, so a sample's row does not depend on its batch."""
        fitter = self.fitters[name]
        result = fitter.fit(keypoints, rotmat, betas, transl, condition=condition, sample_seeds=seeds)
        fitted = pose_to_rotmat(result.pose.detach()).to(rotmat.dtype)
        ok = result.success.to(rotmat.device)
        refined_rot = torch.where(ok[:, None, None, None], fitted, rotmat)
        refined_betas = torch.where(ok[:, None], result.betas.detach().to(betas.dtype), betas)
        fitted_transl = result.transl.detach().to(rotmat.dtype)
        refined_transl = fitted_transl if transl is None else torch.where(ok[:, None], fitted_transl, transl)
        return refined_rot, refined_betas, refined_transl, ~ok


def change_shares(start: np.ndarray, refined: np.ndarray, threshold_mm: float = 1.0) -> tuple[float, float]:
    """Shares of samples whose error rose / fell by more than ``threshold_mm``."""
    delta = np.asarray(refined) - np.asarray(start)
    valid = np.isfinite(delta)
    if not valid.any():
        return float("nan"), float("nan")
    return float((delta[valid] > threshold_mm).mean()), float((delta[valid] < -threshold_mm).mean())
