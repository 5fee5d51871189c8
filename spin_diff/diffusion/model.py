"""The diffusion pose prior: a denoiser, its schedule, DDIM sampling and inversion, files.

A :class:`DiffusionPrior` holds the (EMA) weights of a :class:`Denoiser` and the cosine
schedule. Inference only: training lives in :mod:`spin_diff.diffusion.training`.

Robustness: a sample whose input is not finite is never fed to the network (its row is
replaced by zeros there and its predicted noise is zero), so NaN stays in its own row and
never reaches the batch-mates; the network itself is row-wise (no batch statistics).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch import nn

from spin_diff.constants import NUM_BETAS, NUM_POSE_6D
from spin_diff.diffusion.config import DenoiserConfig, DiffusionModelConfig
from spin_diff.diffusion.denoiser import Denoiser
from spin_diff.diffusion.representation import decode_pose, encode_pose, project_to_rotations
from spin_diff.diffusion.schedule import cosine_alpha_bars, ddim_move, ddim_timesteps, predict_eps, predict_x0
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.utils.checkpoints import check_version, save_checkpoint, verify_torch_file

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "spin_diff.diffusion_prior"
CHECKPOINT_VERSION = 1
PRIOR_FILE_NAME = "diffusion_prior.pt"
BUNDLED_DIFFUSION_PRIOR = Path(__file__).resolve().parents[1] / "body" / "assets" / "free_body" / PRIOR_FILE_NAME


class DiffusionPriorError(BadInputError):
    """A prior checkpoint is missing, unreadable or does not fit this version."""


def data_dim(config: DiffusionModelConfig) -> int:
    return NUM_POSE_6D + (NUM_BETAS if config.use_betas else 0)


class DiffusionPrior(nn.Module):
    """Denoiser + cosine schedule over x = 24 x 6D pose (+ betas). Shapes: B batch, D data."""

    def __init__(self, config: DiffusionModelConfig | None = None, denoiser: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config or DiffusionModelConfig()
        if self.config.schedule != "cosine":
            raise BadInputError(f"unknown schedule {self.config.schedule!r}; only 'cosine' is implemented")
        self.data_dim = data_dim(self.config)
        self.denoiser = denoiser if denoiser is not None else Denoiser(self.data_dim, self.config.denoiser)
        alpha_bars = cosine_alpha_bars(self.config.timesteps, self.config.cosine_offset)
        self.register_buffer("alpha_bars", alpha_bars.float(), persistent=False)
        self.source = "in memory"
        # a conditional prior's record of the regressor whose features it was trained on
        # (spin_diff.fitting.conditioning.conditioning_record); None when unconditional
        self.conditioning: dict | None = None

    @property
    def timesteps(self) -> int:
        return self.config.timesteps

    # ------------------------------------------------------------------ the network
    def predict_noise(self, x_t: torch.Tensor, t, cond: torch.Tensor | None = None) -> torch.Tensor:
        """eps_theta(x_t, t): (B, D) -> (B, D); ``t`` an int or (B,) long. Non-finite rows get 0."""
        batch = x_t.shape[0]
        finite = torch.isfinite(x_t).all(dim=1, keepdim=True)
        safe = torch.where(finite, x_t, torch.zeros_like(x_t))
        if isinstance(t, int):
            t = torch.full((batch,), t, dtype=torch.long, device=x_t.device)
        eps = self.denoiser(safe, t, cond)
        return torch.where(finite, eps, torch.zeros_like(eps))

    def denoise(self, x_t: torch.Tensor, t, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One network call: (predicted noise, one-step denoised x0-hat), both (B, D)."""
        eps = self.predict_noise(x_t, t, cond)
        return eps, predict_x0(self.alpha_bars.to(x_t.dtype), x_t, t, eps)

    # ------------------------------------------------------------------ DDIM
    def ddim_invert(
        self, x0: torch.Tensor, t_start: int, step: int, cond: torch.Tensor | None = None, iterations: int = 1
    ) -> torch.Tensor:
        """Deterministic DDIM from level 0 up to ``t_start``: the x_T that :meth:`ddim_sample`
        maps back to ``x0``. Each step uses the noise predicted at the lower level (ScoreHMR);
        ``iterations > 1`` refines it by fixed-point iteration toward the exact inverse of the
        sampling step (the noise predicted at the upper level). (B, D) -> (B, D)."""
        alpha_bars = self.alpha_bars.to(x0.dtype)
        levels = ddim_timesteps(t_start, step)[::-1]  # [0, step, ..., t_start]
        x = x0
        for t, t_next in zip(levels[:-1], levels[1:]):
            eps, x0_hat = self.denoise(x, t, cond)
            x_next = ddim_move(alpha_bars, x0_hat, eps, t_next)
            for _ in range(iterations - 1):
                eps = self.predict_noise(x_next, t_next, cond)
                x_next = ddim_move(alpha_bars, predict_x0(alpha_bars, x, t, eps), eps, t_next)
            x = x_next
        return x

    def ddim_sample(
        self, x_t: torch.Tensor, t_start: int, step: int, cond: torch.Tensor | None = None, clip: bool = False
    ) -> torch.Tensor:
        """Deterministic DDIM from level ``t_start`` down to level 0. (B, D) -> (B, D), raw
        (not re-orthonormalised, so that inversion round-trips exactly).

        ``clip`` clamps each x0-hat to [-1, 1] (where valid 6D numbers live) and re-derives the
        noise from it: needed from pure noise, where x0-hat = (x_t - ...) / sqrt(alpha_bar)
        divides by almost zero; it breaks the exact inversion, so refinement leaves it off.
        """
        alpha_bars = self.alpha_bars.to(x_t.dtype)
        levels = ddim_timesteps(t_start, step)
        x = x_t
        for t, t_next in zip(levels[:-1], levels[1:]):
            eps, x0_hat = self.denoise(x, t, cond)
            if clip:
                x0_hat = x0_hat.clamp(-1.0, 1.0)
                eps = predict_eps(alpha_bars, x, t, x0_hat)
            x = ddim_move(alpha_bars, x0_hat, eps, t_next)
        return x

    @torch.no_grad()
    def sample(
        self, n: int, step: int = 20, cond: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` samples by DDIM from pure noise (level T-1) with stride ``step``, each 6D slot
        re-orthonormalised. -> (n, D)."""
        device = self.alpha_bars.device
        noise = torch.randn(n, self.data_dim, generator=generator, device=device, dtype=self.alpha_bars.dtype)
        return project_to_rotations(self.ddim_sample(noise, self.timesteps - 1, step, cond, clip=True))

    # ------------------------------------------------------------------ poses
    def encode(self, rotmats: torch.Tensor, betas: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 24, 3, 3) [+ (B, 10)] -> x (B, D), removed yaw (B,). See ``representation``."""
        if self.config.use_betas and betas is None:
            raise BadInputError("this prior models betas: pass them to encode()")
        return encode_pose(
            rotmats, self.config.orientation, betas if self.config.use_betas else None, self.config.betas_scale
        )

    def decode(self, x: torch.Tensor, yaw: torch.Tensor | None = None, orient: torch.Tensor | None = None):
        """x (B, D) -> rotmats (B, 24, 3, 3), betas (B, 10) or None."""
        return decode_pose(x, self.config.orientation, yaw, orient, self.config.betas_scale)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write the weights and config (the EMA weights when called on the EMA model)."""
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "data_dim": self.data_dim,
            "config": dataclasses.asdict(self.config),
            "state_dict": {k: v.detach().float().cpu() for k, v in self.denoiser.state_dict().items()},
            "extra": extra or {},
            "conditioning": dict(self.conditioning) if self.conditioning else None,
        }
        return save_checkpoint(payload, path)

    def describe(self) -> str:
        parameters = sum(p.numel() for p in self.parameters())
        c = self.config
        return (
            f"diffusion prior ({self.source}): {self.data_dim} numbers per pose, orientation {c.orientation}, "
            f"{c.denoiser.blocks} blocks width {c.denoiser.width} hidden {c.denoiser.hidden}, "
            f"{parameters / 1e6:.2f}M parameters, T = {c.timesteps}"
            + (f", conditioned on {c.denoiser.cond_dim} regressor features" if c.denoiser.cond_dim else "")
        )


def _config_from_dict(values: dict) -> DiffusionModelConfig:
    values = dict(values)
    denoiser = DenoiserConfig(**values.pop("denoiser", {}))
    return DiffusionModelConfig(**values, denoiser=denoiser)


def load_diffusion_prior(
    path: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> DiffusionPrior:
    """Load a prior saved by :meth:`DiffusionPrior.save` or ``spin-diff prior train``
    (None: the bundled one). Training checkpoints (``last.pt``) are accepted too; their EMA
    weights are used.

    Raises:
        FileNotFoundError: no file at ``path``.
        DiffusionPriorError: not a prior checkpoint, or one for another pose size.
    """
    path = BUNDLED_DIFFUSION_PRIOR if path is None else Path(path).expanduser()
    if not path.is_file():
        raise MissingInputError(
            f"diffusion prior checkpoint not found: {path}. Pass --set fitting.diffusion.checkpoint=PATH "
            "(a file from 'spin-diff prior train'), leave it unset for the bundled prior, or remove "
            "diffusion_pose from the stage terms"
        )
    verify_torch_file(path, DiffusionPriorError)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise DiffusionPriorError(f"cannot read {path} as a diffusion prior checkpoint ({type(err).__name__}: {err})") from err
    if isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT + ".training":
        payload = payload["prior"]
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise DiffusionPriorError(
            f"{path} is not a spin_diff diffusion prior checkpoint (expected a file written by "
            "'spin-diff prior train' or DiffusionPrior.save)"
        )
    check_version(payload, path, CHECKPOINT_VERSION, DiffusionPriorError)
    config = _config_from_dict(payload["config"])
    expected = data_dim(config)
    stored = int(payload.get("data_dim", -1))
    weight_in = payload["state_dict"].get("input.weight")
    actual = int(weight_in.shape[1]) if weight_in is not None else -1
    if stored != expected or actual != expected:
        raise DiffusionPriorError(
            f"{path} models {actual if actual > 0 else stored} numbers per pose, but this version's pose prior "
            f"needs {expected} ({NUM_POSE_6D} = 24 joints x 6D{' + 10 betas' if config.use_betas else ''}); "
            "it was trained for another pose size. Retrain with 'spin-diff prior train'."
        )
    prior = DiffusionPrior(config)
    try:
        prior.denoiser.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise DiffusionPriorError(f"{path}: weights do not match the stored config ({err})") from err
    prior.source = str(path)
    prior.conditioning = payload.get("conditioning") or None
    if config.denoiser.cond_dim and prior.conditioning is None:
        log.warning("%s is a conditional prior without a record of the regressor it was trained on", path)
    prior.requires_grad_(False)
    prior.eval()
    return prior.to(device=device, dtype=dtype)
