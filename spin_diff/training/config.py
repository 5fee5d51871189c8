"""Configuration of ``spin-diff train``: typed sections read from YAML (the shipped ``spin_diff/recipes/train_*.yaml``).

Sections: ``body`` (which body model), ``model`` (the regressor: input kind, backbone),
``data`` (batch, workers, mixing ratios, augmentation), ``fitting`` (SMPLify in the loop:
on/off, which prior, stages and iterations), ``loss`` (SPIN's weights), ``optim`` (Adam,
schedule, clipping, AMP) and the run's length, checkpoint and logging intervals. Every value
has SPIN's default where SPIN has one (docs/conventions.md#spins-training-loss).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

from spin_diff.body.config import BodyConfig
from spin_diff.fitting.config import DIFFUSION_POSE_WEIGHT, FittingConfig, StageConfig, spin_stages
from spin_diff.models.config import RegressorConfig
from spin_diff.training.datasets import DataConfig

__all__ = [
    "InLoopFittingConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "effective_fitting_config",
    "names_conditional_prior",
    "resolve_auto_prior",
    "scoring_config",
]


@dataclass
class InLoopFittingConfig(FittingConfig):
    """SMPLify inside the training loop: SPIN's recipe plus the switches of the comparisons.

    ``in_loop: false`` trains from what the store already holds (SPIN's static fits, or none:
    2D-only HMR training). ``prior`` picks the body stage's pose prior: ``gmm`` (SPIN),
    ``gmm+diffusion`` (the learned diffusion term beside the GMM), ``stages`` (the stages
    exactly as written) or ``auto`` (:func:`resolve_auto_prior`: the training study's best
    loop for the diffusion prior at hand). ``method: guided`` runs ScoreHMR's guided refinement
    instead (after ``diffusion.guided.pre_stages``).
    """

    in_loop: bool = True
    prior: Literal["auto", "gmm", "gmm+diffusion", "stages"] = "auto"
    diffusion_weight: float = DIFFUSION_POSE_WEIGHT
    threshold: float = 100.0  # SPIN's smplify_threshold: fits scoring below it supervise
    # which of stored and new fit is kept, and what `threshold` bounds (spin_diff.fitting.keep):
    # reprojection (SPIN's score) or objective (+ the body stage's GMM/angle/shape energies per joint)
    keep: Literal["reprojection", "objective"] = "reprojection"
    plausibility_gate: float | None = None  # a fit with GMM energy above it neither replaces nor supervises
    beta_limit: float = 3.0  # fits with any |beta| above it give no shape supervision (SPIN)
    # a conditional diffusion prior's features in the loop: those of the network being trained
    # (drifting from the regressor the prior was trained on), or of a frozen copy in eval mode,
    # the starting network throughout (condition_refresh_every: 0) or re-copied every N steps
    condition_features: Literal["network", "frozen"] = "network"
    condition_refresh_every: int = 0
    stages: list[StageConfig] = field(default_factory=spin_stages)


@dataclass
class LossConfig:
    """SPIN's loss: scale * (keypoints * L2D + joints3d * L3D + pose * Lrot + betas * Lbeta
    + camera * mean(exp(-10 s)^2))."""

    scale: float = 60.0
    keypoints: float = 5.0
    joints3d: float = 5.0
    pose: float = 1.0
    betas: float = 0.001
    camera: float = 1.0
    openpose_weight: float = 0.0  # the 2D loss's weight of the 25 OpenPose joints (SPIN: 0)
    gt_weight: float = 1.0  # ... and of the 24 GT joints


@dataclass
class OptimConfig:
    """Adam (SPIN: lr 5e-5, no schedule)."""

    lr: float = 5e-5
    weight_decay: float = 0.0
    schedule: Literal["none", "cosine"] = "none"
    grad_clip: float | None = None  # max gradient norm; None: no clipping
    amp: bool = True  # mixed precision for the network on CUDA (fitting stays float32)


@dataclass
class TrainConfig:
    """Everything ``spin-diff train`` reads (the shipped recipe ``train_spin`` is SPIN's)."""

    device: str = "cpu"
    seed: int = 0
    body: BodyConfig = field(default_factory=BodyConfig)
    model: RegressorConfig = field(default_factory=RegressorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    fitting: InLoopFittingConfig = field(default_factory=InLoopFittingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 1
    max_steps: int | None = None  # stop after this many steps (counted across resumes)
    checkpoint_every: int = 1000  # steps
    keep_last: int = 3  # periodic checkpoints kept as RUN_DIR/step-NNNNNNNN.pt (0: only last.pt)
    summary_every: int = 10  # steps between CSV rows (and the logging host syncs)
    validate_every: int = 0  # steps; 0: never
    validation_data: str | None = None  # held-out npz evaluated as `spin-diff eval` does (its protocol)
    validation_images: str | None = None
    summary_images: int = 4  # fixed examples drawn to TensorBoard every summary_every steps (0: none)
    log_indices: bool = False  # write every step's example indices to RUN_DIR/indices.csv


# What ``prior: auto`` runs with a diffusion prior conditioned on the network's features: the
# training study's row l (benchmarks/README.md, "The prior in the loop"), chosen on validation.
CONDITIONED_LOOP = {"guidance_scale": 0.015, "loops": 3, "step": 5}


def resolve_auto_prior(config: InLoopFittingConfig, conditional: bool) -> str:
    """``prior: auto`` made concrete, in place; returns what was chosen, for the log.

    With a diffusion prior conditioned on the regressor's features (``conditional``; ``spin-diff
    prior train --features-from`` the ``--pretrained`` network): the GMM and the conditioned
    diffusion term in the body stage, fed by a frozen copy of the starting network
    (``condition_features: frozen``), then ScoreHMR's guided refinement with the same prior
    after every stage (3 loops of 10 steps from t = 50, scale 0.015). Otherwise SPIN's GMM alone:
    in the study the unconditioned term did not beat it. Other values are left as they are."""
    if config.prior != "auto":
        return config.prior
    if not conditional:
        config.prior = "gmm"
        return "gmm (SPIN's; no diffusion prior conditioned on the network's features is named)"
    config.prior = "gmm+diffusion"
    config.condition_features = "frozen"
    config.method = "guided"
    guided = config.diffusion.guided
    guided.pre_stages = [stage.name for stage in config.stages]
    guided.guidance_scale = CONDITIONED_LOOP["guidance_scale"]
    guided.loops, guided.step = CONDITIONED_LOOP["loops"], CONDITIONED_LOOP["step"]
    return (f"gmm + the conditioned diffusion term (features of a frozen copy of the start), then guided "
            f"refinement ({guided.loops} loops, step {guided.step}, scale {guided.guidance_scale:g})")


def names_conditional_prior(config: InLoopFittingConfig, body=None) -> bool:
    """Whether the diffusion prior the loop would load (``diffusion.checkpoint``, else the one
    beside ``body``'s model file, else the bundled one) is conditioned on regressor features."""
    from spin_diff.diffusion.model import BUNDLED_DIFFUSION_PRIOR, load_diffusion_prior
    from spin_diff.fitting.smplify import diffusion_prior_path

    path = diffusion_prior_path(config, body) if body is not None else config.diffusion.checkpoint
    return bool(load_diffusion_prior(path or BUNDLED_DIFFUSION_PRIOR).config.denoiser.cond_dim)


def effective_fitting_config(config: InLoopFittingConfig, body=None) -> FittingConfig:
    """The :class:`FittingConfig` SMPLify runs with, ``prior`` applied to the stages (``auto``
    resolved on a copy, :func:`resolve_auto_prior`; ``body`` tells where a prior beside the
    body model is)."""
    if config.prior == "auto":  # (without fits in the loop the prior only names the scoring stages)
        config = copy.deepcopy(config)
        resolve_auto_prior(config, config.in_loop and names_conditional_prior(config, body))
    values = {name: copy.deepcopy(getattr(config, name)) for name in FittingConfig.__dataclass_fields__}
    fitting = FittingConfig(**values)
    if config.prior == "stages":
        return fitting
    for stage in fitting.stages:
        if "reprojection" not in stage.terms:
            continue  # only body stages carry a pose prior
        stage.terms.pop("diffusion_pose", None)
        if config.prior == "gmm+diffusion":
            stage.terms["diffusion_pose"] = config.diffusion_weight
    return fitting


def scoring_config(config: FittingConfig) -> FittingConfig:
    """A config for an SMPLify that only scores (in-loop fitting off): the same camera, sigma
    and ignored joints as the fits, and one prior-free stage that never runs, so no prior file
    is needed to train from stored fits alone."""
    values = {name: copy.deepcopy(getattr(config, name)) for name in FittingConfig.__dataclass_fields__}
    values["stages"] = [StageConfig(name="score-only", iterations=1, optimize=["transl"], terms={"reprojection": 1.0})]
    values["method"] = "smplify"
    return FittingConfig(**values)
