"""Periodic validation of a training run on a held-out SPIN npz with 3D joints (``S``).

The regressor sees each held-out example un-augmented (its keypoints, or its crop for image
models); the errors are measured on the 24 GT joints of SPIN's layout, both sides centred on
the mid-hip: MPJPE and PA-MPJPE (similarity Procrustes with the reflection fix), in mm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spin_diff.data.datasets import SpinDataset, TrainingData
from spin_diff.data.sampler import BatchRequest
from spin_diff.geometry.alignment import mpjpe, pa_mpjpe

__all__ = ["validate"]


def _centred(joints: torch.Tensor) -> torch.Tensor:
    return joints - 0.5 * (joints[:, 2] + joints[:, 3])[:, None]


@torch.no_grad()
def validate(model, body, npz: Path, config, images: str | None = None, batch_size: int = 64) -> dict[str, float]:
    """``{"mpjpe_mm", "pa_mpjpe_mm", "examples"}`` of ``model`` on ``npz`` (needs ``S``)."""
    use_images = config.model.input == "image"
    dataset = SpinDataset(npz, images, keypoints=config.data.keypoints, need_images=use_images)
    if not dataset.has_joints3d:
        raise ValueError(f"validation data {npz} has no 'S' (3D joints): choose a held-out set with 3D ground truth")
    data = TrainingData([dataset], crop_size=config.fitting.crop_size, use_images=use_images)
    device = body.fast.joint_template.device
    was_training = model.training
    model.eval()
    errors, aligned = [], []
    try:
        for begin in range(0, len(dataset), batch_size):
            index = np.arange(begin, min(begin + batch_size, len(dataset)))
            n = index.size
            request = BatchRequest(0, 0, np.zeros(n, np.int64), index, np.zeros(n, bool), np.zeros(n),
                                   np.ones(n), np.ones((n, 3)))  # fmt: skip
            batch = data.__getitems__(request)
            inputs = batch["images"] if use_images else batch["keypoints"]
            out = model(inputs.to(device))
            joints = body.fast(out.rotmat.float(), out.betas.float()[:, : body.num_betas]).joints[:, 25:]
            gt = batch["joints3d"].to(device)
            visible = gt[..., 3] > 0
            pred, target = _centred(joints), _centred(gt[..., :3])
            # Joints without 3D ground truth are left out by collapsing them onto the target.
            pred = torch.where(visible[..., None], pred, target)
            errors.append(mpjpe(pred, target) * 24 / visible.sum(1).clamp_min(1))
            aligned.append(pa_mpjpe(pred, target) * 24 / visible.sum(1).clamp_min(1))
    finally:
        model.train(was_training)
    error, pa = torch.cat(errors), torch.cat(aligned)
    return {"mpjpe_mm": float(error.mean()) * 1000, "pa_mpjpe_mm": float(pa.mean()) * 1000, "examples": float(len(error))}
