"""Configuration of the diffusion pose prior: the model, its training, and its use in fitting.

Plain dataclasses (no torch import) so that ``spin_diff.fitting.config`` and the YAML loader
can use them cheaply. ``DiffusionFitConfig`` is reachable as ``fitting.diffusion.*``;
``DiffusionTrainConfig`` is what ``spin-diff prior train --config/--set`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal



# How the prior sees the global orientation (see spin_diff/diffusion/representation.py):
#   camera:    the orientation as the camera sees it (ScoreHMR), yaw included;
#   canonical: the orientation with its yaw about the camera's vertical axis removed, so the
#              prior judges how upright the body is but not which way it faces;
#   none:      the orientation slot holds a constant; the prior never sees or moves it.
OrientationMode = Literal["camera", "canonical", "none"]


@dataclass
class DenoiserConfig:
    """The MLP that predicts the noise. Defaults: ScoreHMR's scale (residual width = data
    size 144, hidden 1024, 3 blocks, time embedding 4 x 144 = 576; ~1.3M parameters, ~11M
    with 3072 image features concatenated in each block)."""

    width: int = 144  # residual stream; ScoreHMR keeps it at the data size
    hidden: int = 1024  # inner width of each block
    blocks: int = 3
    time_dim: int = 576  # sinusoidal embedding size, then an MLP to this size
    cond_dim: int = 0  # conditioning vector size (image features); 0: unconditional
    cond_dropout: float = 0.1  # training: share of samples whose conditioning is zeroed


@dataclass
class DiffusionModelConfig:
    """What the prior models and how: data layout, schedule, denoiser."""

    timesteps: int = 1000
    schedule: Literal["cosine"] = "cosine"
    cosine_offset: float = 0.008  # Nichol & Dhariwal's s
    orientation: OrientationMode = "canonical"
    use_betas: bool = False  # ScoreHMR found no gain from modelling betas
    betas_scale: float = 3.0  # betas / scale enter the model (unit-variance betas -> ~[-1, 1])
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)


@dataclass
class DiffusionTrainConfig:
    """Training of a diffusion pose prior (``spin-diff prior train``)."""

    model: DiffusionModelConfig = field(default_factory=DiffusionModelConfig)
    steps: int = 100_000
    batch_size: int = 256
    lr: float = 1e-4
    lr_min: float = 1e-5  # cosine decay from lr to lr_min over the steps (after warm-up)
    warmup_steps: int = 500
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # Fitting uses the prior at small t only (the term at t <= 100, guidance from t = 50), so a
    # share of each batch draws t below small_t_max; the rest is uniform over [0, T). Each t's
    # optimum is unchanged (epsilon regression per level); only the training effort moves.
    small_t_fraction: float = 0.5
    small_t_max: int = 250
    seed: int = 0
    checkpoint_every: int = 2000  # steps between resumable checkpoints
    log_every: int = 100  # steps between loss-log lines
    # Orientation of the training poses. The sampler's and AMASS's poses carry no camera, so
    # camera-like orientations are made: the data's orientation (y_up: a y-up world as the
    # sampler's upright_global_orient gives; z_up: AMASS's world, turned to y-up; camera:
    # already SMPL camera frame, as in SPIN's npz files) is seen by a camera at a random yaw
    # (uniform over the circle) with a small random tilt.
    pose_frame: Literal["y_up", "z_up", "camera"] = "y_up"
    tilt_degrees: float = 10.0  # std of the random camera tilt (pitch and roll)
    val_fraction: float = 0.02
    threads: int = 0  # torch threads; 0: torch's default


@dataclass
class GuidedConfig:
    """Guided refinement (ScoreHMR): invert to t_start, guided DDIM back, repeated."""

    pre_stages: list[str] = field(default_factory=lambda: ["camera"])  # SMPLify stages run first
    t_start: int = 50
    step: int = 2
    loops: int = 10
    guidance_scale: float = 0.01  # weight of the keypoint loss (crop pixels^2) in the guidance
    camera_lr: float = 1e-2  # Adam on the camera translation, one step per DDIM step
    early_stop_tol: float = 1e-5  # per-sample relative change of the keypoint loss
    # 1 is ScoreHMR's inversion (noise from the lower level; round trip ~1e-2); 2 adds one
    # fixed-point refinement per step (3 make invert-then-sample exact to 1e-3). A refined
    # inversion measured worse in the ablation (README), so the default is ScoreHMR's.
    inversion_iterations: int = 1


@dataclass
class DiffusionFitConfig:
    """The diffusion prior in fitting: the ``diffusion_pose`` term and guided refinement."""

    checkpoint: str | None = None  # None: diffusion_prior.pt beside the body model (the bundled one)
    # the term: at stage progress p the pose is noised to t = t_max - (t_max - t_min) * p.
    # 700 -> 50 measured better than 100 -> 10 and 300 -> 10 on the real validation split (from
    # the mean pose, term weight 3000: 95.5 vs 103.0 and 101.5 mm PA-MPJPE, 64 problems, a
    # prior trained like the bundled one): high noise first pulls a far start toward the poses
    # the prior knows, not only to the nearest one.
    term_t_max: int = 700
    term_t_min: int = 50
    # the term's noise is hashed from this, each sample's seed (SMPLify.fit's sample_seeds), the
    # stage and the step: fits are reproducible and independent of their batch-mates
    seed: int = 0
    # a conditional prior (trained with --features-from) and the regressor whose features fitting
    # passes: hash: the regressor's checkpoint must be the file the prior was trained on; size:
    # any regressor with the same feature size (e.g. one fine-tuned from it)
    regressor_check: Literal["hash", "size"] = "hash"
    guided: GuidedConfig = field(default_factory=GuidedConfig)
