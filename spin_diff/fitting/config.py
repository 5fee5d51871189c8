"""Configuration of the fitting stage.

The objective of each stage is a weighted sum of named terms (see ``spin_diff.fitting.terms``
for the catalogue). The default is SPIN's SMPLify recipe: a camera stage (global orientation
and camera translation, torso joints plus a depth term) then a body stage (body pose, shape
and orientation with the robust reprojection term and the GMM, angle and shape priors), with
the learned diffusion pose prior (``diffusion_pose``; settings in ``fitting.diffusion``) and
the pose anchor (``pose_anchor``, distance to an informative start) added to the body stage.
``spin_stages()`` is SPIN's recipe without them.

``method: guided`` replaces the stages after ``fitting.diffusion.guided.pre_stages`` (the
camera stage) by ScoreHMR's guided refinement with the diffusion prior.

Batch independence and L-BFGS: with Adam (the default) every sample's fit depends only on
its own inputs and its noise seed, never on its batch-mates (tested for batches of 1, 5 and
12, rows permuted). ``optimizer: lbfgs`` uses ``torch.optim.LBFGS``, which runs ONE strong-Wolfe line
search and one convergence test on the summed loss of the whole batch: the step lengths, and
when a step ends, depend on the batch-mates, so L-BFGS fits are coupled across the batch by
construction (fit with batch size 1 where that matters; a per-sample L-BFGS is not
implemented). ``torch.optim.LBFGS`` also reads its loss and gradients on the host, a GPU
sync about 7 times per objective evaluation (``benchmarks/host_syncs.py``); Adam's loop has
none. The cost of those syncs on a GPU has not been measured (no GPU was available).

SMPLify-X-style schedules are lists of stages with decaying prior weights, in YAML::

    fitting:
      optimizer: lbfgs
      stages:
        - {name: camera, iterations: 30, optimize: [global_orient, transl],
           terms: {torso_reprojection: 1.0, camera_depth: 10000.0}}
        - {name: body1, iterations: 30, optimize: [body_pose, betas, global_orient],
           terms: {reprojection: 1.0, gmm_pose: 163216.0, shape: 10000.0, angle: 231.04}}
        - ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from spin_diff.body.config import BodyConfig
from spin_diff.constants import CROP_SIZE, FOCAL_LENGTH
from spin_diff.diffusion.config import DiffusionFitConfig

# SPIN's weights are given squared in its loss (weight ** 2); these are the applied factors.
SPIN_POSE_PRIOR_WEIGHT = 4.78**2
SPIN_ANGLE_PRIOR_WEIGHT = 15.2**2
SPIN_SHAPE_PRIOR_WEIGHT = 5.0**2
SPIN_DEPTH_WEIGHT = 100.0**2
# The default body stage's diffusion term and pose anchor, chosen on the real CMU validation
# split (benchmarks/prior_ablation.py --poses val; never on the test split). The term's value
# is ||x - x0_hat||^2 over the 144 6D numbers (noise levels in fitting.diffusion: t 700 -> 50);
# the anchor's is sum over 23 joints of ||R - R_start||_F^2, and it is off for starts that carry
# no information (mean or rest pose).
DIFFUSION_POSE_WEIGHT = 3000.0
POSE_ANCHOR_WEIGHT = 10000.0

PARAMETER_GROUPS = ("global_orient", "body_pose", "betas", "transl")


@dataclass
class StageConfig:
    """One optimisation stage: what moves, for how long, under which weighted terms."""

    name: str = "stage"
    iterations: int = 100
    optimize: list[str] = field(default_factory=lambda: ["body_pose", "betas", "global_orient"])
    terms: dict[str, float] = field(default_factory=dict)
    lr: float | None = None  # None: FittingConfig.lr
    optimizer: Literal["adam", "lbfgs", "lm"] | None = None  # None: FittingConfig.optimizer


def spin_stages(iterations: int = 100) -> list[StageConfig]:
    """SPIN's in-the-loop SMPLify: camera stage then body stage (docs/conventions.md#smplifys-stages-and-prior-weights)."""
    return [
        StageConfig(
            name="camera",
            iterations=iterations,
            optimize=["global_orient", "transl"],
            terms={"torso_reprojection": 1.0, "camera_depth": SPIN_DEPTH_WEIGHT},
        ),
        StageConfig(
            name="body",
            iterations=iterations,
            optimize=["body_pose", "betas", "global_orient"],
            terms={
                "reprojection": 1.0,
                "gmm_pose": SPIN_POSE_PRIOR_WEIGHT,
                "angle": SPIN_ANGLE_PRIOR_WEIGHT,
                "shape": SPIN_SHAPE_PRIOR_WEIGHT,
            },
        ),
    ]


def default_stages(iterations: int = 100) -> list[StageConfig]:
    """SPIN's recipe with the diffusion pose prior beside the GMM in the body stage, and the
    pose anchor holding a fit near an informative start (a regressor's estimate)."""
    stages = spin_stages(iterations)
    stages[1].terms["diffusion_pose"] = DIFFUSION_POSE_WEIGHT
    stages[1].terms["pose_anchor"] = POSE_ANCHOR_WEIGHT
    return stages


@dataclass
class EarlyStopConfig:
    """Per-sample early stopping on the relative change of the stage's loss."""

    enabled: bool = False  # SPIN runs every iteration; turn on for offline fitting
    rel_tol: float = 1e-5
    patience: int = 5  # consecutive iterations below rel_tol before a sample stops
    check_every: int = 10  # iterations between (host-syncing) checks whether all stopped


@dataclass
class OrientationFlipConfig:
    """SMPLify-X's trial of the orientation turned 180 degrees about the vertical axis."""

    enabled: bool = False  # SPIN does not; SMPLify-X does
    shoulder_distance_px: float = 25.0  # try the flip when the 2D shoulders are this close


@dataclass
class FitQualityConfig:
    """When ``spin-diff fit`` calls a finished fit a success (SMPLify itself only checks that
    the optimisation ran). Residuals are in 224-crop pixels, so the thresholds do not depend
    on the image's size; ``spin_diff.fitting.quality`` applies them."""

    enabled: bool = True
    confident: float = 0.3  # a keypoint counts as confident above this confidence
    # mean distance (crop px) between confident keypoints and the fitted joints; a fit that
    # follows its keypoints stays well under it (synthetic detector-like keypoints: 2-5 px)
    max_residual_px: float = 10.0
    # GMM pose prior energy of the fitted body pose; beyond it the pose is a contortion. For
    # the bundled gmm_08.pkl: 500 sampled plausible poses score 85-149, the same poses with
    # 0.1 rad noise per angle 213-646 (a GMM file of another origin needs its own value)
    max_pose_prior: float = 200.0


@dataclass
class FittingConfig:
    """The fitting stage (SPIN's SMPLify with the diffusion term by default)."""

    method: Literal["smplify", "guided"] = "smplify"
    optimizer: Literal["adam", "lbfgs", "lm"] = "adam"  # lbfgs: batch-coupled line search; lm: per-sample damped Newton (spin_diff.fitting.lm)
    lm_damping: float = 1.0  # lm: starting damping (relative to the Hessian diagonal)
    # lm: every parameter's damping scale is its curvature plus this fraction of its group's mean
    # curvature, so a direction the keypoints barely see (a torso's yaw) cannot take a huge step
    lm_damping_floor: float = 1.0
    lr: float = 1e-2
    lbfgs_lr: float = 1.0
    lbfgs_max_iter: int = 20  # inner iterations per L-BFGS step
    lbfgs_history: int = 100
    lbfgs_tolerance_grad: float = 1e-7  # torch's defaults; tighten for noise-free known answers
    lbfgs_tolerance_change: float = 1e-9
    sigma: float = 100.0  # GMoF scale in pixels
    focal_length: float = FOCAL_LENGTH
    crop_size: int = CROP_SIZE
    stages: list[StageConfig] = field(default_factory=default_stages)
    # SPIN zeroes these confidences in the body stage (SMPL's hips/neck differ from 2D labels)
    ignore_in_body_stage: list[str] = field(
        default_factory=lambda: ["OP Neck", "OP RHip", "OP LHip", "Right Hip", "Left Hip"]
    )
    min_confident_joints: int = 6
    confidence_threshold: float = 0.1
    # a sample whose final loss exceeds this multiple of its initial loss has diverged
    divergence_factor: float = 10.0
    early_stop: EarlyStopConfig = field(default_factory=EarlyStopConfig)
    orientation_flip: OrientationFlipConfig = field(default_factory=OrientationFlipConfig)
    gmm_path: str | None = None  # None: gmm_08.pkl next to the body model (bundled or SPIN's data)
    diffusion: DiffusionFitConfig = field(default_factory=DiffusionFitConfig)
    # The camera ``spin-diff fit`` fits images in: "crop" is SPIN's (focal 5000 px on the 224
    # crop, principal point at the crop centre); "full" is the photo's own (CLIFF-style:
    # focal ``full_focal_length`` in image pixels, None for the image diagonal, principal
    # point at the image centre). SMPLify.fit takes the camera as arguments instead.
    camera: Literal["crop", "full"] = "crop"
    full_focal_length: float | None = None
    # Extra starts ``spin-diff fit`` tries beside the given one, in the same batch (names of
    # spin_diff.fitting.multi_start.START_HYPOTHESES, e.g. the start with its legs bent, or of
    # OTHER_STARTS: flipped, mean_pose), keeping per person the fit hypothesis_selection picks.
    # From the mean pose a kneeling or crouching body otherwise stays in the straight-legged
    # local minimum; from the bundled regressor the whole-start ones measured no gain.
    start_hypotheses: list[str] = field(default_factory=list)
    # How the fit of each person is chosen among its starts: "objective", the lowest
    # final-stage objective (the starts differ in a few joints, under the same terms); or
    # "reprojection_prior", the lowest body-stage reprojection score (FitResult.score) plus
    # ``hypothesis_prior_weight`` times the GMM pose energy, for starts whose objectives differ
    # (the pose anchor is off from the mean pose). Neither uses ground truth.
    hypothesis_selection: Literal["objective", "reprojection_prior"] = "objective"
    hypothesis_prior_weight: float = 0.0
    quality: FitQualityConfig = field(default_factory=FitQualityConfig)


@dataclass
class Config:
    """Top-level configuration shared by the ``spin-diff`` commands."""

    device: str = "cpu"
    seed: int = 0
    body: BodyConfig = field(default_factory=BodyConfig)
    fitting: FittingConfig = field(default_factory=FittingConfig)
