"""Regressor features for a conditional diffusion prior (ScoreHMR's design): computing them,
checking that a regressor's features are the ones a prior was trained on, and the training
pairs (pose, features) a conditional prior learns from.

The prior side (the ``(B, F)`` condition a fit hands the denoiser) lives with the prior, in
:mod:`spin_diff.diffusion.conditioning`; this module needs a regressor and the data readers,
so it sits above both.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from spin_diff.constants import CROP_SIZE
from spin_diff.data.crops import load_crops
from spin_diff.data.spin_npz import dataset_keypoints, read_spin_npz
from spin_diff.diffusion.conditioning import ConditioningError
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.utils.hashing import file_sha256

__all__ = [
    "check_fitter_regressor",
    "check_regressor",
    "conditioning_record",
    "feature_training_pairs",
    "regressor_features",
]

log = logging.getLogger(__name__)


def conditioning_record(regressor, path: str | Path) -> dict:
    """What a conditional prior's checkpoint records about the regressor it was trained on."""
    return {
        "regressor": str(Path(path).resolve()),
        "regressor_sha256": file_sha256(path),
        "feature_dim": int(regressor.encoder.feature_dim),
        "input": regressor.input_kind,
    }


def check_regressor(prior, regressor, path: str | Path | None = None, check: str = "hash") -> None:
    """Refuse a regressor whose features do not fit a conditional ``prior``.

    The feature size must always match. With ``check="hash"`` the checkpoint file ``path``
    must also be the one the prior was trained on (same SHA-256); ``"size"`` accepts another
    regressor of the same feature size (e.g. one fine-tuned from it). Unconditional priors
    accept anything.
    """
    cond_dim = prior.config.denoiser.cond_dim
    if not cond_dim:
        return
    record = getattr(prior, "conditioning", None) or {}
    size = int(regressor.encoder.feature_dim)
    if size != cond_dim:
        raise ConditioningError(
            f"the diffusion prior {prior.source} is conditioned on {cond_dim} features, but the regressor "
            f"{path or '(in memory)'} gives {size}; use the regressor the prior was trained on "
            f"({record.get('regressor', 'not recorded')}) or train a prior on this one with "
            "'spin-diff prior train --features-from CKPT'"
        )
    if check not in ("hash", "size"):
        raise BadInputError(f"fitting.diffusion.regressor_check must be 'hash' or 'size', got {check!r}")
    if check == "size" or path is None or not record.get("regressor_sha256"):
        return
    actual = file_sha256(path)
    if actual != record["regressor_sha256"]:
        raise ConditioningError(
            f"the diffusion prior {prior.source} was conditioned on the features of {record.get('regressor')} "
            f"(sha256 {record['regressor_sha256'][:12]}...), not on {path} (sha256 {actual[:12]}...): "
            "another regressor's features mean nothing to it. Use that regressor, train a prior on this one "
            "('spin-diff prior train --features-from CKPT'), or accept any regressor of the same feature "
            "size with --set fitting.diffusion.regressor_check=size"
        )


def check_fitter_regressor(fitter, regressor) -> None:
    """:func:`check_regressor` for the prior a :class:`~spin_diff.fitting.smplify.SMPLify`
    uses (if it uses a conditional one), with the regressor's checkpoint file (set by
    ``load_regressor``) and ``fitting.diffusion.regressor_check``."""
    prior = fitter.context.extras.get("diffusion_prior")
    if prior is not None and prior.config.denoiser.cond_dim:
        path = getattr(regressor, "checkpoint_path", None)
        check_regressor(prior, regressor, path, fitter.config.diffusion.regressor_check)


@torch.no_grad()
def regressor_features(regressor, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The regressor's features (``RegressorOutput.features``) of ``inputs`` (keypoints
    ``(N, 49, 3)`` or crops ``(N, 3, H, W)``), in eval mode, in batches, no gradient -> (N, F) float32 on CPU."""
    was_training = regressor.training
    regressor.eval()
    device = next(regressor.parameters()).device
    try:
        chunks = [
            regressor.encoder(inputs[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, inputs.shape[0], batch_size)
        ]
    finally:
        regressor.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0, int(regressor.encoder.feature_dim))


def feature_training_pairs(
    paths, regressor, images: str | Path | None = None, crop_size: int = CROP_SIZE, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """``(poses (N, 72), features (N, F))`` from SPIN-format npz files: each example's
    ground-truth pose (rows with ``has_smpl``, as ``spin-diff synth`` writes them) and the
    features the regressor computes from that example's input: its 49 crop keypoints
    (detector-like ones in synthetic sets) or, for an image regressor, its crop under
    ``images``. Rows whose pose or keypoints are not finite are dropped (logged)."""
    all_poses, all_features = [], []
    for path in paths:
        if not Path(path).is_file():
            raise MissingInputError(f"--poses {path}: no such file (a SPIN-format npz with pose and keypoints)")
        data = read_spin_npz(path, require=("pose", "center", "scale"))
        keep = np.isfinite(np.asarray(data["pose"], dtype=np.float64)).all(1)
        if "has_smpl" in data:
            keep &= np.asarray(data["has_smpl"]).reshape(-1) == 1
        if regressor.input_kind == "keypoints":
            keypoints = dataset_keypoints(data, crop_size)
            keep &= np.isfinite(keypoints).all((1, 2))
            features = regressor_features(regressor, torch.as_tensor(keypoints[keep], dtype=torch.float32), batch_size)
        else:
            if images is None:
                raise BadInputError(
                    f"{path}: the regressor reads person crops; pass --images DIR (the folder its imgname "
                    "paths are relative to), or use a keypoint regressor"
                )
            if "imgname" not in data:
                raise BadInputError(f"{path} has no 'imgname' key: the image regressor cannot find the crops")
            rows = np.flatnonzero(keep)
            chunks = [rows[i : i + batch_size] for i in range(0, rows.size, batch_size)]  # crops read per batch
            features = torch.cat([
                regressor_features(regressor, load_crops(
                    [Path(images) / str(n) for n in data["imgname"][chunk]], data["center"][chunk],
                    data["scale"][chunk], crop_size), batch_size)
                for chunk in chunks
            ]) if chunks else torch.zeros(0, int(regressor.encoder.feature_dim))  # fmt: skip
        dropped = int((~keep).sum())
        if dropped:
            log.warning("%s: %d of %d rows without a finite ground-truth pose and input are skipped", path, dropped, keep.size)
        all_poses.append(np.asarray(data["pose"], dtype=np.float64)[keep])
        all_features.append(features.numpy())
    return np.concatenate(all_poses), np.concatenate(all_features)
