"""Where a fit starts: the mean pose, the bundled keypoint regressor, or a regressor checkpoint.

``--init`` of ``spin-diff fit``, ``spin-diff cache build`` and ``spin-diff eval`` takes

* ``mean``: SPIN's mean pose and zero betas (the camera from SMPLify's estimate);
* ``regressor`` (the default of ``fit`` and ``cache build``): the keypoint regressor shipped
  with spin_diff (``spin_diff/models/assets/keypoint_regressor.pt``, trained by
  ``scripts/train_bundled_keypoint_regressor.py``; its data in ``assets/PROVENANCE.md``);
* a checkpoint path: SPIN's ``model_checkpoint.pt`` or one of ours. An image regressor reads
  the person crops (so images are needed), a keypoint regressor reads the 2D keypoints.

The regressor's prediction (pose, betas and its camera translation) starts SMPLify, as in
SPIN's training loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from spin_diff.body.files import body_model_hash
from spin_diff.errors import MissingInputError
from spin_diff.geometry.cameras import weak_perspective_to_translation
from spin_diff.models.checkpoints import load_regressor, peek_checkpoint
from spin_diff.utils.checkpoints import CheckpointError

__all__ = [
    "BUNDLED_CONDITIONAL_PRIOR", "BUNDLED_KEYPOINT_REGRESSOR", "FitStart", "default_init",
    "prior_for_start", "regressor_start", "resolve_init",
]  # fmt: skip

BUNDLED_KEYPOINT_REGRESSOR = (
    Path(__file__).resolve().parent.parent / "models" / "assets" / "keypoint_regressor.pt"
)
# The diffusion prior conditioned on the bundled regressor's features (ScoreHMR's design),
# trained by scripts/train_conditional_prior.py (models/assets/PROVENANCE.md)
BUNDLED_CONDITIONAL_PRIOR = BUNDLED_KEYPOINT_REGRESSOR.with_name("keypoint_regressor_prior.pt")


def prior_for_start(fitting, init: str | Path | None) -> None:
    """Point ``fitting.diffusion.checkpoint`` at :data:`BUNDLED_CONDITIONAL_PRIOR` when the fit
    starts from the bundled regressor (``--init regressor`` or its file) and no prior was
    chosen: the fits then read the regressor's features (the term and guided refinement). Any
    other start keeps the unconditional prior. In place; returns nothing."""
    if init is None or fitting.diffusion.checkpoint is not None or not BUNDLED_CONDITIONAL_PRIOR.is_file():
        return
    bundled = str(init) == "regressor" or Path(init).resolve() == BUNDLED_KEYPOINT_REGRESSOR.resolve()
    if bundled:
        fitting.diffusion.checkpoint = str(BUNDLED_CONDITIONAL_PRIOR)


def default_init(body) -> str:
    """``--init`` when none is given: ``regressor`` (the bundled keypoint regressor), except for
    a body model other than the one it was trained for (e.g. ``--body-model SMPL``), where its
    predictions mean nothing: ``mean`` then, said in the log. A missing bundled file stays
    ``regressor``, so that :func:`resolve_init` reports the broken install."""
    if not BUNDLED_KEYPOINT_REGRESSOR.is_file():
        return "regressor"
    recorded = peek_checkpoint(BUNDLED_KEYPOINT_REGRESSOR)["body_model_sha256"]
    if recorded and recorded != body_model_hash(body):
        logging.getLogger(__name__).warning(
            "the bundled keypoint regressor is for the bundled body model, not %s: fits start from "
            "the mean pose (--init mean); pass --init CKPT with a regressor trained for this body model",
            body.files.model,
        )
        return "mean"
    return "regressor"


def resolve_init(init: str, body, *, images_available: bool, device="cpu"):
    """``None`` for ``mean``, else the loaded :class:`~spin_diff.models.hmr.Regressor`.

    Raises:
        MissingInputError: no checkpoint at the path, or the bundled regressor is missing.
        CheckpointError: a checkpoint that cannot be used here (damaged, another body model,
            an image regressor without images).
    """
    if init == "mean":
        return None
    if init == "regressor":
        if not BUNDLED_KEYPOINT_REGRESSOR.is_file():
            raise MissingInputError(
                f"--init regressor: the bundled keypoint regressor is missing (expected at "
                f"{BUNDLED_KEYPOINT_REGRESSOR}; reinstall spin_diff, or rebuild it with "
                "scripts/train_bundled_keypoint_regressor.py). Pass --init CKPT with a regressor "
                "checkpoint, or --init mean"
            )
        path = BUNDLED_KEYPOINT_REGRESSOR
    else:
        path = Path(init)
        if not path.is_file():
            raise MissingInputError(f"--init {init}: not 'mean' or 'regressor', and no checkpoint file there")
    regressor = load_regressor(path, body, device=device)
    if regressor.input_kind == "image" and not images_available:
        raise CheckpointError(
            f"--init {init} is an image regressor: it reads the person crops, and no images are "
            "available here (pass --images DIR with the dataset's images, or use a keypoint "
            "regressor checkpoint)"
        )
    return regressor


@dataclass
class FitStart:
    """A fit's starting point. B batch."""

    rotmat: torch.Tensor  # (B, 24, 3, 3)
    betas: torch.Tensor  # (B, S)
    transl: torch.Tensor  # (B, 3) crop-camera translation
    features: torch.Tensor | None = None  # (B, F) the regressor's features (a conditional prior's input)


@torch.no_grad()
def regressor_start(regressor, inputs: torch.Tensor, num_betas: int) -> FitStart:
    """Run ``regressor`` (eval mode) on crops or crop keypoints ``inputs``; non-finite
    predictions become the identity rotation / zero betas (as SPIN does before fitting)."""
    device = next(regressor.parameters()).device
    out = regressor(inputs.to(device))
    finite = torch.isfinite(out.rotmat).flatten(1).all(1)
    eye = torch.eye(3, dtype=out.rotmat.dtype, device=device).expand_as(out.rotmat)
    rotmat = torch.where(finite[:, None, None, None], out.rotmat, eye)
    betas = torch.nan_to_num(out.betas[:, :num_betas], nan=0.0, posinf=0.0, neginf=0.0)
    # A camera behind the crop camera or not finite: SPIN's mean-body depth instead.
    usable = torch.isfinite(out.transl).all(1) & (out.transl[:, 2] > 0)
    fallback = weak_perspective_to_translation(torch.tensor([0.9, 0.0, 0.0], device=device)).to(
        out.transl.dtype
    )
    transl = torch.where(usable[:, None], out.transl, fallback)
    return FitStart(rotmat=rotmat, betas=betas, transl=transl, features=out.features.float())
