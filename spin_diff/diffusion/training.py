"""Training a diffusion pose prior from pose files (``spin-diff prior train``).

Data: npz files of SMPL axis-angle poses, the layouts :func:`read_training_poses` accepts.
Each batch draws poses, gives them camera-like orientations (random yaw about the vertical,
small tilt; see ``representation.camera_orientations``), encodes them in the prior's layout
and trains the denoiser to predict the added noise (MSE; t uniform over [0, T) for part of
each batch, over the small levels fitting uses for the rest). Optional
conditioning vectors (image features) are zeroed for a share of samples (conditioning
dropout), so one model serves conditioned and unconditioned use.

Outputs in the run folder: ``config.yaml`` (the resolved training config), ``loss_log.csv``,
``last.pt`` (resumable: weights, EMA weights, optimiser, step, random state) and
``prior.pt`` (EMA weights only: what fitting loads).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spin_diff.constants import NUM_POSE, NUM_SMPL_JOINTS
from spin_diff.diffusion.config import DiffusionTrainConfig
from spin_diff.diffusion.model import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    DiffusionPrior,
    DiffusionPriorError,
    _config_from_dict,
)
from spin_diff.diffusion.representation import camera_orientations
from spin_diff.diffusion.schedule import q_sample
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.priors.pose_files import read_smpl_poses
from spin_diff.utils.checkpoints import check_version, save_checkpoint, verify_torch_file
from spin_diff.utils.configs import save_config

log = logging.getLogger(__name__)

TRAINING_FORMAT = CHECKPOINT_FORMAT + ".training"


def read_training_poses(path: str | Path) -> np.ndarray:
    """Full SMPL poses (N, 72) float64 from an npz; rows with NaN or inf are dropped.

    Accepted: the sampler's output (orientation filled with the posture's upright one),
    AMASS-style files (``poses``), SPIN dataset files (``pose`` rows where ``has_smpl``).
    """
    return read_smpl_poses(path, sampler_orientation=True, drop_non_finite=True)


def _lr_at(step: int, config: DiffusionTrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * min(progress, 1.0)))


class PoseBatches:
    """Random training batches: poses -> camera-like orientation -> the prior's vector."""

    def __init__(self, poses: torch.Tensor, config: DiffusionTrainConfig, prior: DiffusionPrior,
                 cond: torch.Tensor | None = None, betas: torch.Tensor | None = None) -> None:  # fmt: skip
        self.rotmats = axis_angle_to_matrix(poses.view(-1, NUM_SMPL_JOINTS, 3).float())
        self.config, self.prior, self.cond, self.betas = config, prior, cond, betas

    def __len__(self) -> int:
        return self.rotmats.shape[0]

    def draw(self, index: torch.Tensor, generator: torch.Generator):
        rotmats = self.rotmats[index].clone()
        rotmats[:, 0] = camera_orientations(
            rotmats[:, 0], generator, self.config.tilt_degrees, self.config.pose_frame
        )  # fmt: skip
        betas = None
        if self.prior.config.use_betas:
            betas = self.betas[index] if self.betas is not None else torch.randn(len(index), 10, generator=generator)
        x0, _ = self.prior.encode(rotmats, betas)
        cond = None
        if self.cond is not None:
            cond = self.cond[index]
            keep = torch.rand(len(index), 1, generator=generator) >= self.prior.config.denoiser.cond_dropout
            cond = cond * keep
        return x0, cond


def diffusion_loss(
    prior: DiffusionPrior, x0, cond, generator, small_t_fraction: float = 0.0, small_t_max: int = 250
) -> torch.Tensor:
    """Epsilon-prediction MSE (the DDPM 'simple' loss) at random t: uniform over [0, T), except
    a ``small_t_fraction`` of the batch uniform over [0, small_t_max). -> scalar."""
    batch = x0.shape[0]
    t = torch.randint(0, prior.timesteps, (batch,), generator=generator)
    if small_t_fraction > 0:
        small = torch.rand(batch, generator=generator) < small_t_fraction
        t = torch.where(small, torch.randint(0, min(small_t_max, prior.timesteps), (batch,), generator=generator), t)
    noise = torch.randn(x0.shape, generator=generator)
    x_t = q_sample(prior.alpha_bars, x0, t, noise)
    return ((prior.denoiser(x_t, t, cond) - noise) ** 2).mean()


def train_diffusion_prior(
    poses: np.ndarray | torch.Tensor,
    config: DiffusionTrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    cond: np.ndarray | torch.Tensor | None = None,
    conditioning: dict | None = None,
    progress: bool = True,
) -> Path:
    """Train (or resume) a prior on ``poses`` (N, 72) axis-angle; returns the path of ``prior.pt``.

    Args:
        cond: (N, C) conditioning vectors aligned with the poses (needs model.denoiser.cond_dim = C).
        conditioning: what produced ``cond`` (``conditioning.conditioning_record``: the
            regressor's path, hash, feature size), written into the checkpoints.
        resume: continue from ``out_dir/last.pt`` (the config must describe the same model).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    poses = torch.as_tensor(np.asarray(poses), dtype=torch.float32)
    if poses.ndim != 2 or poses.shape[1] != NUM_POSE:
        raise BadInputError(f"training poses must be (N, 72) axis-angle, got {tuple(poses.shape)}")
    cond_dim = config.model.denoiser.cond_dim
    if cond is not None:
        cond = torch.as_tensor(np.asarray(cond), dtype=torch.float32)
        if cond.shape != (poses.shape[0], cond_dim):
            raise BadInputError(f"cond must be (N, {cond_dim}) aligned with the poses, got {tuple(cond.shape)}")
    elif cond_dim:
        raise BadInputError(f"model.denoiser.cond_dim = {cond_dim} but no conditioning vectors were given")

    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(poses.shape[0], generator=generator)
    n_val = max(1, int(round(config.val_fraction * poses.shape[0]))) if poses.shape[0] > 1 else 0
    val_index, train_index = order[:n_val], order[n_val:]
    if len(train_index) == 0:
        raise BadInputError("need at least 2 poses to train (one is held out for validation)")

    prior = DiffusionPrior(config.model)
    prior.conditioning = dict(conditioning) if conditioning else None
    ema = copy.deepcopy(prior).requires_grad_(False)
    optimizer = torch.optim.AdamW(prior.denoiser.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step = 0
    last = out_dir / "last.pt"
    if resume:
        if not last.is_file():
            raise MissingInputError(f"--resume: no checkpoint at {last}")
        verify_torch_file(last, DiffusionPriorError)
        try:  # tensors only, as the prior's own reader: these files are ours, never SPIN's
            state = torch.load(last, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
            raise DiffusionPriorError(f"cannot read {last} as a training checkpoint ({type(err).__name__}: {err}); "
                                      "start again without --resume or into another --out") from err  # fmt: skip
        if not isinstance(state, dict) or state.get("format") != TRAINING_FORMAT:
            raise DiffusionPriorError(f"{last} is not a spin_diff training checkpoint")
        check_version(state, last, CHECKPOINT_VERSION, DiffusionPriorError)
        if _config_from_dict(state["train_config"]["model"]) != config.model:
            raise DiffusionPriorError(
                f"{last} was trained with another model config; resume with the same --config/--set "
                "as the run that wrote it (see its config.yaml)"
            )
        stored = state["prior"].get("conditioning") or None
        if (stored or {}).get("regressor_sha256") != (conditioning or {}).get("regressor_sha256"):
            raise DiffusionPriorError(
                f"{last} was trained on the features of {(stored or {}).get('regressor', 'no regressor')}, "
                f"not of {(conditioning or {}).get('regressor', 'no regressor')}; resume with the same --features-from"
            )
        prior.denoiser.load_state_dict(state["model"])
        ema.denoiser.load_state_dict(state["prior"]["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step = int(state["step"])
        log.info("resumed %s at step %d", last, step)
    save_config(config, out_dir / "config.yaml")

    batches = PoseBatches(poses, config, prior, cond)
    val_generator = torch.Generator().manual_seed(config.seed + 1)
    val_rows = val_index[torch.arange(min(len(val_index), 4096))] if n_val else None
    if val_rows is not None:
        with torch.no_grad():
            val_x0, val_cond = batches.draw(val_rows, val_generator)

    def validate() -> tuple[float, float]:
        """EMA model on held-out poses: loss at uniform t, and at t < small_t_max only."""
        if val_rows is None:
            return float("nan"), float("nan")
        with torch.no_grad():
            seed = config.seed + 2
            uniform = diffusion_loss(ema, val_x0, val_cond, torch.Generator().manual_seed(seed))
            small = diffusion_loss(ema, val_x0, val_cond, torch.Generator().manual_seed(seed), 1.0, config.small_t_max)
            return float(uniform), float(small)

    log_path = out_dir / "loss_log.csv"
    new_log = not (resume and log_path.is_file())
    log_file = log_path.open("w" if new_log else "a", newline="")
    writer = csv.writer(log_file)
    if new_log:
        writer.writerow(["step", "train_loss", "val_loss_ema", "val_loss_ema_small_t", "lr", "seconds"])
    params = list(prior.denoiser.parameters())
    ema_params = list(ema.denoiser.parameters())
    running, count, tic = 0.0, 0, time.perf_counter()
    bar = tqdm(total=config.steps, initial=step, unit="step", disable=not progress, desc="training prior")
    try:
        while step < config.steps:
            lr = _lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            index = train_index[torch.randint(0, len(train_index), (config.batch_size,), generator=generator)]
            with torch.no_grad():
                x0, batch_cond = batches.draw(index, generator)
            loss = diffusion_loss(prior, x0, batch_cond, generator, config.small_t_fraction, config.small_t_max)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(ema_params, params, 1 - decay)
            step += 1
            running += float(loss.detach())
            count += 1
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                val, val_small = validate()
                writer.writerow([step, f"{running / count:.6f}", f"{val:.6f}", f"{val_small:.6f}", f"{lr:.3g}",
                                 f"{time.perf_counter() - tic:.1f}"])  # fmt: skip
                log_file.flush()
                bar.set_postfix(loss=f"{running / count:.4f}", val=f"{val:.4f}")
                running, count = 0.0, 0
            if step % config.checkpoint_every == 0 or step == config.steps:
                _save_training(last, prior, ema, optimizer, generator, step, config)
    finally:
        bar.close()
        log_file.close()
    path = ema.save(out_dir / "prior.pt", extra={"steps": step, "poses": int(poses.shape[0])})
    log.info("wrote %s (EMA weights, %d steps)", path, step)
    return path


def _save_training(path: Path, prior, ema, optimizer, generator, step: int, config: DiffusionTrainConfig) -> None:
    """Resumable checkpoint, written atomically (a crash mid-write keeps the previous one)."""
    state = {
        "format": TRAINING_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": step,
        "train_config": dataclasses.asdict(config),
        "model": prior.denoiser.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "prior": {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "data_dim": ema.data_dim,
            "config": dataclasses.asdict(ema.config),
            "state_dict": ema.denoiser.state_dict(),
            "extra": {"steps": step},
            "conditioning": ema.conditioning,
        },
    }
    save_checkpoint(state, path)
