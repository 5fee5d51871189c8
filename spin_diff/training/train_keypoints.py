"""Supervised training of the keypoint-input regressor on synthetic keypoints.

The keypoint regressor never sees pixels, so it can learn from bodies that exist only as
parameters: people drawn by the one generator, :mod:`spin_diff.data.people`, under its
``"regressor"`` preset (pose pool, orientation, shape, SPIN's crop camera and framing,
detector-like corruption; the preset table is in that module). Every batch is fresh (the
next people of the stream; poses drawn from a pool made once), and the ground truth is
exact, so plain supervision suffices: SPIN's loss (:mod:`spin_diff.training.losses`, weights
in :class:`~spin_diff.training.config.LossConfig`) with 2D on the clean keypoints of both
blocks, 3D on the 24 GT joints, rotations and betas supervised on every example.

:func:`train_keypoint_regressor` returns the regressor in eval mode and the loss history.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from spin_diff.constants import CROP_SIZE, NUM_OPENPOSE_JOINTS
from spin_diff.data.people import PosePool, draw_people, preset
from spin_diff.errors import BadInputError
from spin_diff.models.config import RegressorConfig
from spin_diff.models.hmr import Regressor, build_regressor
from spin_diff.training import losses as L
from spin_diff.training.config import LossConfig

log = logging.getLogger(__name__)

__all__ = [
    "KeypointBatch", "KeypointTrainConfig", "SyntheticKeypoints", "keypoint_losses", "train_keypoint_regressor",
]  # fmt: skip


@dataclass
class KeypointBatch:
    """Synthetic people in SPIN's crop frame. B batch."""

    keypoints: torch.Tensor  # (B, 49, 3) detector-like crop pixels + confidence (the input)
    clean: torch.Tensor  # (B, 49, 3) exact projections, confidence 1 inside the crop
    rotmat: torch.Tensor  # (B, 24, 3, 3) ground-truth pose
    pose: torch.Tensor  # (B, 72) axis-angle
    betas: torch.Tensor  # (B, S)
    transl: torch.Tensor  # (B, 3) crop-camera translation
    joints: torch.Tensor  # (B, 49, 3) body-frame keypoints, metres


class SyntheticKeypoints:
    """An endless stream of synthetic people as the keypoint regressor sees them: the
    ``"regressor"`` preset of :mod:`spin_diff.data.people`, person after person.

    Args:
        body: the :class:`~spin_diff.body.model.BodyModel` whose keypoints are projected.
        seed: keys the stream (person ``i`` of ``seed`` is the same in any batch).
        pool_size: pose-sampler poses drawn once when ``poses`` is None (drawing is the slow part).
        poses: optional ``(N, 72)`` whole poses in a y-up world (e.g. the CMU training split,
            ``spin_diff/data/poses/cmu_train.npz``) as the pose pool: each keeps its own tilt
            (bending, lying), its heading replaced by the sampled yaw.
        postures: pose-sampler postures of the pool (None: all).
        **overrides: fields of the preset to replace (e.g. ``corruption="heavy"``).
    """

    def __init__(self, body, seed: int = 0, pool_size: int = 2048, poses: np.ndarray | None = None,
                 postures: list[str] | None = None, **overrides) -> None:  # fmt: skip
        self.body = body
        self.seed = seed
        self.preset = preset("regressor", **overrides)
        if poses is not None:
            self.pool = PosePool.from_poses(poses)
        else:
            self.pool = PosePool.from_sampler(pool_size, seed, postures)
        self.drawn = 0  # people handed out so far: the next batch starts here

    def sample(self, num: int, start: int | None = None) -> KeypointBatch:
        """People ``start .. start + num`` of the stream (default: the next ``num``), on the
        body model's device."""
        if start is None:
            start, self.drawn = self.drawn, self.drawn + num
        people = draw_people(self.body, self.preset, num, self.seed, start=start, pool=self.pool)
        clean = torch.cat([people.clean[..., :2], people.inside[..., None].to(people.clean.dtype)], -1)
        return KeypointBatch(keypoints=people.keypoints, clean=clean, rotmat=people.rotmat, pose=people.pose,
                             betas=people.betas, transl=people.transl, joints=people.joints)  # fmt: skip


@dataclass
class KeypointTrainConfig:
    """The supervised loop."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3  # Adam
    seed: int = 0
    pool_size: int = 2048
    corruption: str = "detector"  # preset of spin_diff.data.corruption
    # SPIN's weights. scale 1, not the in-loop trainer's 60: Adam's steps do not depend on it,
    # but the gradient clip does, and the bundled regressor's clip was tuned at scale 1. Both
    # blocks' 2D keypoints are supervised: here they are exact, not a detector's.
    loss: LossConfig = field(default_factory=lambda: LossConfig(scale=1.0, openpose_weight=1.0))
    log_every: int = 100
    grad_clip: float | None = None  # clip the gradients' global norm to this (None: no clipping)
    model: RegressorConfig = field(default_factory=lambda: RegressorConfig(input="keypoints"))


def keypoint_losses(output, batch: KeypointBatch, config: KeypointTrainConfig) -> dict[str, torch.Tensor]:
    """SPIN's loss (:func:`spin_diff.training.losses.spin_loss`) for a batch with exact ground
    truth on every row: ``{"loss", "2d", "3d", "pose", "betas", "camera"}`` scalars."""
    rows = torch.ones(batch.keypoints.shape[0], dtype=torch.bool, device=batch.keypoints.device)
    weights = config.loss
    gt_joints = batch.joints[:, NUM_OPENPOSE_JOINTS:]
    joints3d = torch.cat([gt_joints, torch.ones_like(gt_joints[..., :1])], -1)
    terms = {
        "keypoints": L.keypoint_loss(output.keypoints_2d, batch.clean, rows, CROP_SIZE,
                                     weights.openpose_weight, weights.gt_weight),  # fmt: skip
        "joints3d": L.joints3d_loss(output.joints, joints3d, rows),
        "pose": L.rotation_loss(output.rotmat, batch.rotmat, rows),
        "betas": L.betas_loss(output.betas[:, : batch.betas.shape[1]], batch.betas, rows),
        "camera": L.camera_loss(output.cam, rows),
    }
    total = L.spin_loss(terms, weights)
    return {"loss": total.total, "2d": total.keypoints, "3d": total.joints3d, "pose": total.pose,
            "betas": total.betas, "camera": total.camera}  # fmt: skip


def train_keypoint_regressor(
    body,
    config: KeypointTrainConfig | None = None,
    *,
    source: SyntheticKeypoints | None = None,
    progress: bool = False,
) -> tuple[Regressor, list[dict[str, float]]]:
    """Train a keypoint regressor on fresh synthetic batches; returns it (eval mode) and the
    logged losses (every ``log_every`` steps, averaged since the last log)."""
    config = config or KeypointTrainConfig()
    if config.model.input != "keypoints":
        raise BadInputError("train_keypoint_regressor trains keypoint-input regressors (model.input: keypoints)")
    if config.steps < 1 or config.batch_size < 1:
        raise BadInputError("steps and batch_size must be at least 1")
    torch.manual_seed(config.seed)
    model = build_regressor(config.model, body=body).to(body.fast.joint_template.device).train()
    if source is None:
        source = SyntheticKeypoints(body, seed=config.seed, pool_size=config.pool_size, corruption=config.corruption)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    history: list[dict[str, float]] = []
    running: dict[str, torch.Tensor] = {}
    start = time.perf_counter()
    for step in tqdm(range(1, config.steps + 1), disable=not progress, desc="training", unit="step"):
        batch = source.sample(config.batch_size)
        losses = keypoint_losses(model(batch.keypoints), batch, config)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        for name, value in losses.items():  # summed on the device; read once per log
            running[name] = running.get(name, 0.0) + value.detach()
        if step % config.log_every == 0 or step == config.steps:
            count = step - (history[-1]["step"] if history else 0)
            entry = {"step": step, "seconds": time.perf_counter() - start}
            entry.update({name: float(total) / count for name, total in running.items()})
            history.append(entry)
            running.clear()
            log.info(
                "step %d: loss %.4f (2d %.4f, 3d %.4f, pose %.4f)",
                step,
                entry["loss"],
                entry["2d"],
                entry["3d"],
                entry["pose"],
            )
    return model.eval(), history
