"""Supervised training of the keypoint-input regressor on synthetic keypoints.

The keypoint regressor never sees pixels, so it can learn from bodies that exist only as
parameters: poses from :mod:`spin_diff.priors.pose_sampler`, orientations and shapes drawn as
:mod:`spin_diff.data.synth` draws them, the body model's 49 keypoints projected by SPIN's crop
camera, then degraded like a detector's (:mod:`spin_diff.data.corruption`). Every batch is
fresh (new orientation, shape, framing and corruption; poses drawn from a pool sampled once),
and the ground truth is exact, so plain supervision suffices:

    loss = 5 * 2D (clean keypoints, [-1, 1] crop units) + 5 * 3D (24 GT joints, pelvis-centred)
         + 1 * rotation-matrix MSE + 0.001 * betas MSE        (SPIN's weights)

This is the small loop the training issue builds on; :func:`train_keypoint_regressor` returns
the regressor in eval mode and the loss history.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from spin_diff.body.joints import NUM_OPENPOSE_JOINTS
from spin_diff.data.corruption import CorruptionConfig, corrupt_keypoints
from spin_diff.errors import BadInputError
from spin_diff.geometry.cameras import CROP_SIZE, FOCAL_LENGTH, perspective_projection
from spin_diff.models.config import RegressorConfig
from spin_diff.models.hmr import Regressor, build_regressor

log = logging.getLogger(__name__)

__all__ = ["KeypointBatch", "KeypointTrainConfig", "SyntheticKeypoints", "train_keypoint_regressor"]

# The 24 GT joints follow the 25 OpenPose ones; hips are GT joints 2 and 3 (SPIN's order).
_GT = slice(NUM_OPENPOSE_JOINTS, None)
_GT_HIPS = [NUM_OPENPOSE_JOINTS + 2, NUM_OPENPOSE_JOINTS + 3]


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
    """An endless source of synthetic people as the keypoint regressor sees them.

    Args:
        body: the :class:`~spin_diff.body.model.BodyModel` whose keypoints are projected.
        seed: seeds the pose pool and :meth:`sample`'s default generator.
        pool_size: poses drawn once from the pose sampler (drawing is the slow part).
        corruption: detector-like degradation (default: the ``"detector"`` preset).
        openpose_only_prob: share of people whose 24 GT keypoints are removed, as for
            OpenPose-only input (``spin-diff fit`` on OpenPose JSON).
        gt_only_prob: share of people whose 25 OpenPose keypoints are removed.
        fill: (low, high) of the person's larger projected side over the crop side / 1.2.
        poses: optional ``(N, 72)`` whole poses in a y-up world (e.g. the CMU training split,
            ``spin_diff/data/poses/cmu_train.npz``) as the pose pool instead of the sampler
            (``pool_size`` and ``postures`` are then unused): each keeps its own tilt (bending,
            lying) as the base orientation, its heading is replaced by the sampled yaw.
    """

    def __init__(
        self,
        body,
        seed: int = 0,
        pool_size: int = 2048,
        corruption: CorruptionConfig | None = None,
        openpose_only_prob: float = 0.4,
        gt_only_prob: float = 0.1,
        fill: tuple[float, float] = (0.8, 1.05),
        shape_std: float = 1.0,
        postures: list[str] | None = None,
        poses: np.ndarray | None = None,
    ) -> None:
        from spin_diff.data.synth import _sample_body_poses

        self.body = body
        self.corruption = corruption if corruption is not None else CorruptionConfig.preset("detector")
        self.openpose_only_prob = openpose_only_prob
        self.gt_only_prob = gt_only_prob
        self.fill = fill
        self.shape_std = shape_std
        self.rng = np.random.default_rng([seed, 1])
        if poses is None:
            self.body_poses, self.postures, self.lean = _sample_body_poses(
                pool_size, np.random.default_rng([seed, 0]), postures
            )
        else:
            self.body_poses, self.lean = _real_pose_pool(poses)
            self.postures = ["real"] * len(self.body_poses)

    def sample(self, num: int, rng: np.random.Generator | None = None) -> KeypointBatch:
        """``num`` fresh people (on the body model's device)."""
        from spin_diff.body.model import pose_to_rotmat
        from spin_diff.data.synth import GT_FLIP_PERM, OPENPOSE_FLIP_PERM, sample_global_orient

        rng = self.rng if rng is None else rng
        picks = rng.integers(0, len(self.body_poses), num)
        orient, _ = sample_global_orient(num, rng, base_orient=self.lean[picks])
        pose = np.concatenate([orient, self.body_poses[picks]], axis=1)
        betas = np.clip(rng.standard_normal((num, self.body.num_betas)) * self.shape_std, -3, 3)
        fill = rng.uniform(self.fill[0], self.fill[1], num)
        offset = rng.uniform(-0.05, 0.05, (num, 2)) * CROP_SIZE

        device = self.body.fast.joint_template.device
        pose_t = torch.as_tensor(pose, dtype=torch.float32, device=device)
        betas_t = torch.as_tensor(betas, dtype=torch.float32, device=device)
        with torch.no_grad():
            rotmat = pose_to_rotmat(pose_t)
            joints = self.body.joints(rotmat, betas_t).joints
        # Frame the person as SPIN's crops do: centred, larger side ~ crop / 1.2.
        low, high = joints[..., :2].amin(1), joints[..., :2].amax(1)
        extent = (high - low).amax(-1)
        size = torch.as_tensor(fill, dtype=joints.dtype, device=device) * CROP_SIZE / 1.2
        depth = FOCAL_LENGTH * extent / size
        centre = 0.5 * (low + high)
        lateral = (
            -centre
            + torch.as_tensor(offset, dtype=joints.dtype, device=device) * depth[:, None] / FOCAL_LENGTH
        )
        transl = torch.cat([lateral, depth[:, None]], dim=1)
        pixels = perspective_projection(joints, transl)
        inside = ((pixels >= 0) & (pixels < CROP_SIZE)).all(-1, keepdim=True).to(pixels.dtype)
        clean = torch.cat([pixels, inside], dim=-1)

        detected = clean.double().cpu().numpy()
        centre_px = np.full((num, 2), CROP_SIZE / 2.0)
        box = np.full(num, float(CROP_SIZE))
        crop = np.array([CROP_SIZE, CROP_SIZE], dtype=np.float64)
        detected[:, :NUM_OPENPOSE_JOINTS] = corrupt_keypoints(
            detected[:, :NUM_OPENPOSE_JOINTS], centre_px, box, self.corruption, rng, OPENPOSE_FLIP_PERM, crop
        ).keypoints
        detected[:, NUM_OPENPOSE_JOINTS:] = corrupt_keypoints(
            detected[:, NUM_OPENPOSE_JOINTS:], centre_px, box, self.corruption, rng, GT_FLIP_PERM, crop
        ).keypoints
        which = rng.random(num)
        detected[which < self.openpose_only_prob, NUM_OPENPOSE_JOINTS:] = 0
        gt_only = (which >= self.openpose_only_prob) & (which < self.openpose_only_prob + self.gt_only_prob)
        detected[gt_only, :NUM_OPENPOSE_JOINTS] = 0
        return KeypointBatch(
            keypoints=torch.as_tensor(detected, dtype=torch.float32, device=device),
            clean=clean,
            rotmat=rotmat,
            pose=pose_t,
            betas=betas_t,
            transl=transl,
            joints=joints,
        )


def _real_pose_pool(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body poses ``(N, 69)`` and base orientations ``(N, 3)`` (y-up world, heading removed so
    the body faces +z) of whole poses ``(N, 72)``."""
    from spin_diff.diffusion.representation import facing_yaw, yaw_matrix
    from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 72 or len(poses) == 0:
        raise BadInputError(f"poses: expected a non-empty (N, 72) axis-angle array, got shape {poses.shape}")
    if not np.isfinite(poses).all():
        raise BadInputError("poses: contains NaN or infinite values; drop those rows first")
    flip = axis_angle_to_matrix(torch.tensor([np.pi, 0.0, 0.0], dtype=torch.float64))  # y-up -> camera
    facing = flip @ axis_angle_to_matrix(torch.as_tensor(poses[:, :3]))
    base = flip.T @ yaw_matrix(-facing_yaw(facing)) @ facing
    return poses[:, 3:].copy(), matrix_to_axis_angle(base).numpy()


@dataclass
class KeypointTrainConfig:
    """The supervised loop. Loss weights are SPIN's."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3  # Adam
    seed: int = 0
    pool_size: int = 2048
    corruption: str = "detector"  # preset of spin_diff.data.corruption
    weight_2d: float = 5.0
    weight_3d: float = 5.0
    weight_pose: float = 1.0
    weight_betas: float = 0.001
    log_every: int = 100
    grad_clip: float | None = None  # clip the gradients' global norm to this (None: no clipping)
    model: RegressorConfig = field(default_factory=lambda: RegressorConfig(input="keypoints"))


def keypoint_losses(output, batch: KeypointBatch, config: KeypointTrainConfig) -> dict[str, torch.Tensor]:
    """SPIN's supervised terms for a batch with exact ground truth (each a scalar)."""
    half = CROP_SIZE / 2.0
    conf = batch.clean[..., 2:]
    residual_2d = (output.keypoints_2d - batch.clean[..., :2]) / half
    loss_2d = (conf * residual_2d**2).mean()
    pred = output.joints[:, _GT] - output.joints[:, _GT_HIPS].mean(1, keepdim=True)
    true = batch.joints[:, _GT] - batch.joints[:, _GT_HIPS].mean(1, keepdim=True)
    loss_3d = ((pred - true) ** 2).mean()
    loss_pose = ((output.rotmat - batch.rotmat) ** 2).mean()
    loss_betas = ((output.betas[:, : batch.betas.shape[1]] - batch.betas) ** 2).mean()
    total = (
        config.weight_2d * loss_2d
        + config.weight_3d * loss_3d
        + config.weight_pose * loss_pose
        + config.weight_betas * loss_betas
    )
    return {"loss": total, "2d": loss_2d, "3d": loss_3d, "pose": loss_pose, "betas": loss_betas}


def train_keypoint_regressor(
    body,
    config: KeypointTrainConfig | None = None,
    *,
    source: SyntheticKeypoints | None = None,
    progress: bool = False,
) -> tuple[Regressor, list[dict[str, float]]]:
    """Train a keypoint regressor on fresh synthetic batches; returns it (eval mode) and the
    logged losses (every ``log_every`` steps, averaged since the last log)."""
    from tqdm import tqdm

    config = config or KeypointTrainConfig()
    if config.model.input != "keypoints":
        raise BadInputError("train_keypoint_regressor trains keypoint-input regressors (model.input: keypoints)")
    if config.steps < 1 or config.batch_size < 1:
        raise BadInputError("steps and batch_size must be at least 1")
    torch.manual_seed(config.seed)
    model = build_regressor(config.model, body=body).to(body.fast.joint_template.device).train()
    if source is None:
        source = SyntheticKeypoints(
            body,
            seed=config.seed,
            pool_size=config.pool_size,
            corruption=CorruptionConfig.preset(config.corruption),
        )
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
