"""The named terms of the fitting objective.

Each term maps the current :class:`FitState` to one value per sample, shape (B,). A stage's
objective is ``sum(weight * term(state))`` over the terms its config lists, so terms are
added, removed and re-weighted in YAML. New terms (the diffusion prior) register themselves
with :func:`register_term`; a factory receives the :class:`TermContext` (loaded priors and
models) and returns the term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from spin_diff.body import joints as J
from spin_diff.errors import BadInputError
from spin_diff.fitting.diffusion_term import DiffusionPoseTerm
from spin_diff.fitting.losses import gmof, reprojection_per_joint
from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.priors.angle import angle_prior

Term = Callable[["FitState"], torch.Tensor]
TermFactory = Callable[["TermContext"], Term]

_REGISTRY: dict[str, TermFactory] = {}


def register_term(name: str) -> Callable[[TermFactory], TermFactory]:
    """Decorator: make a term available to stage configs under ``name``."""

    def decorate(factory: TermFactory) -> TermFactory:
        _REGISTRY[name] = factory
        return factory

    return decorate


def available_terms() -> list[str]:
    return sorted(_REGISTRY)


def build_term(name: str, context: "TermContext", stage: str = "") -> Term:
    if name not in _REGISTRY:
        raise BadInputError(
            f"unknown fitting term {name!r} in stage {stage!r}; available: {', '.join(available_terms())}"
        )
    return _REGISTRY[name](context)


@dataclass
class TermContext:
    """What terms may need beyond the state: loaded priors, models, settings."""

    sigma: float = 100.0
    gmm: torch.nn.Module | None = None  # MaxMixturePrior
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. a diffusion prior


@dataclass
class FitState:
    """The current fit of a batch, as the terms see it. Shapes: B batch, 49 joints."""

    global_orient: torch.Tensor  # (B, 3) axis-angle
    body_pose: torch.Tensor  # (B, 69) axis-angle
    betas: torch.Tensor  # (B, S)
    transl: torch.Tensor  # (B, 3) camera translation
    joints: torch.Tensor  # (B, 49, 3) model joints (before translation)
    projected: torch.Tensor  # (B, 49, 2) pixels
    keypoints: torch.Tensor  # (B, 49, 2) target pixels
    confidence: torch.Tensor  # (B, 49) stage confidences (ignored joints zeroed)
    raw_confidence: torch.Tensor  # (B, 49) confidences as given
    init_transl: torch.Tensor  # (B, 3) camera translation at the start of the fit
    init_global_orient: torch.Tensor | None = None  # (B, 3) axis-angle at the start of the fit
    init_body_pose: torch.Tensor | None = None  # (B, 69) axis-angle at the start of the fit
    init_joints: torch.Tensor | None = None  # (B, 49, 3) model joints at the start of the fit
    anchor_mask: torch.Tensor | None = None  # (B,) 1 where the start is an estimate to anchor to
    progress: float = 0.0  # fraction of the current stage done, in [0, 1)
    stage_index: int = 0
    sample_seed: torch.Tensor | None = None  # (B,) int64 key of each sample's noise (stochastic terms)
    condition: torch.Tensor | None = None  # (B, F) regressor features for a conditional diffusion prior


@register_term("reprojection")
def _reprojection(context: TermContext) -> Term:
    sigma = context.sigma
    return lambda s: reprojection_per_joint(s.projected, s.keypoints, s.confidence, sigma).sum(-1)


@register_term("reprojection_conf")
def _reprojection_linear_confidence(context: TermContext) -> Term:
    """The robust data term with confidences entering once (conf, not conf^2): a detector's
    typical 0.6-0.8 weighs 0.6-0.8 instead of 0.36-0.64 (measured in the cold-start recipe)."""
    sigma = context.sigma
    return lambda s: (s.confidence * gmof(s.projected - s.keypoints, sigma).sum(-1)).sum(-1)


@register_term("reprojection_thresholded")
def _reprojection_thresholded(context: TermContext) -> Term:
    """The robust data term with every keypoint above ``extras["confidence_threshold"]``
    (default 0.1) weighted 1 and the rest 0 (SPIN's ignored joints stay at 0)."""
    sigma = context.sigma
    threshold = float(context.extras.get("confidence_threshold", 0.1))

    def term(s: FitState) -> torch.Tensor:
        weight = (s.confidence > threshold).to(s.projected.dtype)
        return (weight * gmof(s.projected - s.keypoints, sigma).sum(-1)).sum(-1)

    return term


_TORSO_OP = J.joint_indices(J.TORSO_OPENPOSE)
_TORSO_GT = J.joint_indices(J.TORSO_GT)


@register_term("torso_reprojection")
def _torso_reprojection(context: TermContext) -> Term:
    """SPIN's camera-stage data term: squared error on the 4 torso joints, unweighted.

    The OpenPose hips and shoulders are used when all four are detected (more reliable for
    the camera), otherwise the GT ones.
    """

    def term(s: FitState) -> torch.Tensor:
        use_op = (s.raw_confidence[:, _TORSO_OP] > 0).all(dim=1, keepdim=True)
        op_error = ((s.projected[:, _TORSO_OP] - s.keypoints[:, _TORSO_OP]) ** 2).sum(-1)
        gt_error = ((s.projected[:, _TORSO_GT] - s.keypoints[:, _TORSO_GT]) ** 2).sum(-1)
        # a sample with neither set detected contributes nothing (marked failed elsewhere)
        gt_present = (s.raw_confidence[:, _TORSO_GT] > 0).to(gt_error.dtype)
        return torch.where(use_op, op_error, gt_error * gt_present).sum(-1)

    return term


@register_term("camera_depth")
def _camera_depth(context: TermContext) -> Term:
    """Keeps the camera depth near its initial estimate: (t_z - t_z_init)^2."""
    return lambda s: (s.transl[:, 2] - s.init_transl[:, 2]) ** 2


@register_term("gmm_pose")
def _gmm_pose(context: TermContext) -> Term:
    if context.gmm is None:
        raise BadInputError("the gmm_pose term needs a GMM pose prior (gmm_08.pkl); none is loaded")
    gmm = context.gmm
    return lambda s: gmm(s.body_pose)


@register_term("angle")
def _angle(context: TermContext) -> Term:
    return lambda s: angle_prior(s.body_pose)


@register_term("shape")
def _shape(context: TermContext) -> Term:
    return lambda s: (s.betas**2).sum(-1)


@register_term("diffusion_pose")
def _diffusion_pose(context: TermContext) -> Term:
    """The learned diffusion pose prior, by score distillation (``spin_diff.fitting.diffusion_term``).

    Needs ``context.extras["diffusion_prior"]`` (SMPLify loads it from
    ``fitting.diffusion.checkpoint``); settings from ``context.extras["diffusion_config"]``.
    """
    prior = context.extras.get("diffusion_prior")
    if prior is None:
        raise BadInputError(
            "the diffusion_pose term needs a diffusion pose prior; none is loaded (SMPLify loads "
            "fitting.diffusion.checkpoint, or the bundled one when it is unset)"
        )
    return DiffusionPoseTerm(prior, context.extras.get("diffusion_config"))


@register_term("pose_anchor")
def _pose_anchor(context: TermContext) -> Term:
    """Keeps the body pose near the fit's start (a regressor's estimate), CamSMPLify-style:
    ``2 ||theta - theta_start||^2`` over the 69 axis-angle numbers (for small differences the
    same as sum_j ||R_j - R_start,j||_F^2). A convex quadratic on purpose: the rotation-matrix
    distance is bounded and periodic, and with it L-BFGS's line search extrapolated to
    non-finite poses. Zero for samples whose start carries no information (the mean or rest
    pose; ``FitState.anchor_mask``, set by SMPLify.informative_start)."""

    def term(s: FitState) -> torch.Tensor:
        if s.init_body_pose is None:
            raise ValueError("the pose_anchor term needs the fit's starting pose (FitState.init_body_pose)")
        value = 2.0 * ((s.body_pose - s.init_body_pose) ** 2).sum(-1)
        return value if s.anchor_mask is None else value * s.anchor_mask

    return term


@register_term("orientation_anchor")
def _orientation_anchor(context: TermContext) -> Term:
    """Keeps the global orientation near the start's: ``||R - R_start||_F^2`` (0 to 8). A
    regressor reads the whole person's layout; the camera stage's four torso keypoints
    measured worse (a wrong lean and turn) than the regressor's own orientation, on the real
    validation split (benchmarks/real_starts.py). Zero for starts that carry no information
    (``FitState.anchor_mask``), whose orientation is free."""

    def term(s: FitState) -> torch.Tensor:
        if s.init_global_orient is None:
            raise ValueError("the orientation_anchor term needs the fit's starting orientation")
        current = axis_angle_to_matrix(s.global_orient)
        start = axis_angle_to_matrix(s.init_global_orient)
        value = ((current - start) ** 2).sum((-1, -2))
        return value if s.anchor_mask is None else value * s.anchor_mask

    return term


_SMPL_JOINTS = slice(J.NUM_OPENPOSE_JOINTS, J.NUM_KEYPOINTS)


@register_term("depth_anchor")
def _depth_anchor(context: TermContext) -> Term:
    """Keeps each joint's depth, relative to the body's mean depth, near the start's: the sum
    over the 24 ground-truth joints of ``(dz - dz_start)^2`` in metres, camera z. The 2D
    keypoints fix where the joints are across the image and say nothing of their depth,
    which is what a regressor guesses from the whole person; so the fit may move every joint
    across the image freely and keeps only the regressor's depth ordering. Zero for starts
    that carry no information (``FitState.anchor_mask``)."""

    def term(s: FitState) -> torch.Tensor:
        if s.init_joints is None:
            raise ValueError("the depth_anchor term needs the fit's starting joints (FitState.init_joints)")
        depth = s.joints[:, _SMPL_JOINTS, 2]
        start = s.init_joints[:, _SMPL_JOINTS, 2]
        relative = (depth - depth.mean(1, keepdim=True)) - (start - start.mean(1, keepdim=True))
        value = (relative**2).sum(-1)
        return value if s.anchor_mask is None else value * s.anchor_mask

    return term
