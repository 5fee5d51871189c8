"""The small base every fitting method shares: one interface, one preparation, one result.

A fitting method improves a start (SMPL pose, shape, camera) against 2D keypoints, batched
and per sample. All of them are called the same way::

    result = method.fit(keypoints, init_pose, init_betas, init_transl, camera_center,
                        focal_length, sample_seeds=..., condition=...)   # -> FitResult

and :class:`FittingMethod` runs every fit in three steps, so that a method only writes its
middle one:

1. :meth:`FittingMethod.prepare` checks the inputs, marks the samples that cannot be fitted
   (non-finite input, too few confident joints) and replaces their values by harmless
   placeholders, gives each sample its camera and its starting translation, and returns a
   :class:`FitProblem`. The caller's tensors are never modified.
2. :meth:`FittingMethod.improve` (the method's own) turns the start into a fit, recording
   each step's iterations and loss in a :class:`FitProgress`; a sample whose loss grows past
   ``divergence_factor`` times its start, or turns non-finite, is marked diverged.
3. :meth:`FittingMethod.assemble` keeps the start where a sample failed, scores every fit
   with SPIN's comparison metric and says why each failed sample did.

The methods: staged SMPLify (:class:`spin_diff.fitting.smplify.SMPLify`), ScoreHMR's guided
refinement (:class:`spin_diff.fitting.guidance.GuidedRefinement`), and several starts per
sample keeping the best (:class:`spin_diff.fitting.multi_start.MultiStart`, which wraps
another method and so only shares the :class:`Fitter` interface).

Camera: a pinhole with principal point ``camera_center`` and focal ``focal_length`` in crop
pixels; by default SPIN's crop camera (the crop centre, ``config.focal_length``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from spin_diff.constants import NUM_POSE, NUM_SMPL_JOINTS
from spin_diff.body import joints as J
from spin_diff.body.model import BodyModel, pose_to_rotmat
from spin_diff.diffusion.conditioning import prepare_condition
from spin_diff.errors import BadInputError
from spin_diff.fitting.config import FittingConfig
from spin_diff.fitting.losses import reprojection_per_joint
from spin_diff.geometry.cameras import default_depth, estimate_translation, perspective_projection
from spin_diff.geometry.rotations import axis_angle_to_matrix, canonical_axis_angle, matrix_to_axis_angle

# Loss growth below this absolute amount (squared pixels, summed over joints) is never called
# divergence: from an exact optimum Adam's first, fixed-size steps raise the loss a little
# (measured: 0 -> 6-9) before it settles, and such a fit has not diverged.
DIVERGENCE_FLOOR = 100.0


@dataclass
class FitResult:
    """Per-sample outcome of a fit. B = batch size."""

    pose: torch.Tensor  # (B, 72) axis-angle, global orientation first
    betas: torch.Tensor  # (B, S)
    transl: torch.Tensor  # (B, 3) camera translation (crop camera)
    score: torch.Tensor  # (B,) SPIN's comparison metric: body-stage reprojection term, mean over 49 joints
    initial_score: torch.Tensor  # (B,) the same metric at the initial parameters
    joint_losses: torch.Tensor  # (B, 49) conf^2 * GMoF per joint (body-stage confidences)
    joint_residuals: torch.Tensor  # (B, 49) reprojection distance in pixels
    success: torch.Tensor  # (B,) bool
    failure: list[str | None]  # reason per sample, None where it succeeded
    iterations: torch.Tensor  # (B,) optimiser iterations run, all stages
    flipped: torch.Tensor  # (B,) bool, the 180-degree orientation trial won
    stage_losses: dict[str, torch.Tensor] = field(default_factory=dict)  # final loss per stage
    # which start each fit came from, where several were tried (spin_diff.fitting.multi_start):
    # "given" or a hypothesis' name; None for a fit from one start
    hypothesis: list[str] | None = None


class Fitter(Protocol):
    """What every fitting method offers: a batched, per-sample fit to 2D keypoints."""

    config: FittingConfig

    def fit(
        self,
        keypoints: torch.Tensor,
        init_pose: torch.Tensor,
        init_betas: torch.Tensor,
        init_transl: torch.Tensor | None = None,
        camera_center: torch.Tensor | None = None,
        focal_length=None,
        *,
        sample_seeds: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> FitResult: ...


@dataclass
class FitProblem:
    """A batch made ready to fit by :meth:`FittingMethod.prepare`. B = batch size.

    Samples that cannot be fitted (``valid`` false) hold zeros in place of their keypoints
    and start, so that they never disturb their batch-mates; ``data`` holds what a method's
    objective reads, only (B, ...) tensors (the orientation-flip trial doubles each one).
    """

    keypoints: torch.Tensor  # (B, 49, 3) crop pixels + confidence, zeros where not valid
    init_pose: torch.Tensor  # (B, 72) the caller's start as canonical axis-angle
    init_betas: torch.Tensor  # (B, num_betas) the caller's betas, zero-padded
    init_rotmats: torch.Tensor  # (B, 24, 3, 3) the caller's start as rotation matrices
    start: dict[str, torch.Tensor]  # global_orient (B, 3), body_pose (B, 69), betas, transl (B, 3)
    data: dict[str, torch.Tensor]  # keypoints (B, 49, 2), confidences (B, 49), camera, seeds, ...
    center: torch.Tensor  # (B, 2) principal point
    focal: torch.Tensor  # (B,) focal length
    valid: torch.Tensor  # (B,) bool: the sample is fitted
    finite_keypoints: torch.Tensor  # (B,) bool
    finite_start: torch.Tensor  # (B,) bool
    enough_joints: torch.Tensor  # (B,) bool
    confident_joints: torch.Tensor  # (B,) joints above the confidence threshold

    @property
    def start_transl(self) -> torch.Tensor:
        """(B, 3) the starting camera translation (SPIN's mean depth where not valid)."""
        return self.start["transl"]


@dataclass
class FitProgress:
    """The parameters of a fit in progress and what each of its steps did. B = batch size."""

    params: dict[str, torch.Tensor]  # global_orient (B, 3), body_pose (B, 69), betas, transl (B, 3)
    iterations: torch.Tensor  # (B,) long
    diverged: torch.Tensor  # (B,) bool
    flipped: torch.Tensor  # (B,) bool
    stage_losses: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def start_of(cls, problem: FitProblem) -> "FitProgress":
        """Nothing run yet: the problem's start (copies: a method may update them in place)."""
        batch, device = problem.valid.shape[0], problem.valid.device
        return cls(
            params={k: v.clone() for k, v in problem.start.items()},
            iterations=torch.zeros(batch, dtype=torch.long, device=device),
            diverged=torch.zeros(batch, dtype=torch.bool, device=device),
            flipped=torch.zeros(batch, dtype=torch.bool, device=device),
        )

    def record(self, name: str, params: dict, iterations, start_loss, end_loss, valid, divergence_factor) -> None:
        """Take a step's parameters, count its iterations, keep its loss, and mark the valid
        samples that diverged in it (loss non-finite or grown, or a parameter non-finite)."""
        self.params = params
        self.iterations = self.iterations + iterations
        self.stage_losses[name] = end_loss.detach()
        grew = end_loss > divergence_factor * start_loss.abs() + DIVERGENCE_FLOOR
        self.diverged = self.diverged | (valid & (~torch.isfinite(end_loss) | grew))
        for value in params.values():
            self.diverged = self.diverged | (valid & ~torch.isfinite(value).all(1))


class FittingMethod:
    """Base of the fitting methods over a :class:`BodyModel` (joints-only path inside loops).

    Subclasses implement :meth:`improve`; :attr:`condition_prior` names the diffusion prior
    that reads ``condition`` (None: the method ignores it).
    """

    def __init__(self, body_model: BodyModel, config: FittingConfig | None = None) -> None:
        body_model.require_keypoint_regressor()  # a clear error now, not 9 joints at the origin
        self.body = body_model
        self.config = config or FittingConfig()
        mask = torch.ones(J.NUM_KEYPOINTS)
        mask[J.joint_indices(self.config.ignore_in_body_stage)] = 0.0
        self._body_stage_mask = mask

    @property
    def device(self) -> torch.device:
        return self.body.device

    @property
    def dtype(self) -> torch.dtype:
        return self.body.dtype

    @property
    def condition_prior(self):
        """The diffusion prior that ``condition`` feeds, or None."""
        return None

    # ------------------------------------------------------------------ the fit
    def fit(
        self,
        keypoints: torch.Tensor,
        init_pose: torch.Tensor,
        init_betas: torch.Tensor,
        init_transl: torch.Tensor | None = None,
        camera_center: torch.Tensor | None = None,
        focal_length=None,
        *,
        sample_seeds: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> FitResult:
        """Fit a batch.

        Args:
            keypoints: (B, 49, 3) crop pixels (x, y) and confidence, SPIN's layout.
            init_pose: (B, 72) axis-angle or (B, 24, 3, 3) rotation matrices. Both give the
                same fit: the start is converted to matrices and read back as one canonical
                axis-angle (a half-turn's axis sign fixed), whatever form it came in.
            init_betas: (B, S), S <= the body model's num_betas (the rest start at zero; the
                result has all num_betas).
            init_transl: (B, 3) camera translation; None: :meth:`starting_camera` of the
                initial joints (GT joints, as the score's camera).
            camera_center: (B, 2) principal point; None -> the crop centre.
            focal_length: scalar or (B,); None -> config.focal_length.
            sample_seeds: (B,) int64 key of each sample's noise in stochastic terms (the
                diffusion term), e.g. ``spin_diff.utils.seeds.example_seeds(name,
                indices)``. A sample's fit depends only on its own inputs and seed, never on
                its batch-mates or row (with the Adam optimiser; see the L-BFGS note in
                ``FittingConfig``). None: every sample uses the same key
                (``fitting.diffusion.seed``), which is batch-invariant too.
            condition: (B, F) regressor features (``RegressorOutput.features``) for a
                conditional diffusion prior, in the term and in guided refinement; row i
                conditions sample i only. Ignored by an unconditional prior; a conditional
                prior without it runs unconditionally (logged once).
        """
        problem = self.prepare(
            keypoints, init_pose, init_betas, init_transl, camera_center, focal_length,
            sample_seeds=sample_seeds, condition=condition,
        )  # fmt: skip
        progress = self.improve(problem, FitProgress.start_of(problem))
        return self.assemble(problem, progress)

    def improve(self, problem: FitProblem, progress: FitProgress) -> FitProgress:
        """The method itself: from ``progress`` (the start, or an earlier method's fit) to its
        fit, each step recorded with :meth:`FitProgress.record`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ prepare
    def prepare(
        self,
        keypoints: torch.Tensor,
        init_pose: torch.Tensor,
        init_betas: torch.Tensor,
        init_transl: torch.Tensor | None = None,
        camera_center: torch.Tensor | None = None,
        focal_length=None,
        *,
        sample_seeds: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> FitProblem:
        """The inputs of :meth:`fit` checked, copied to the model's device and dtype, and made
        safe to fit: see the module docstring. Raises ValueError for inconsistent shapes."""
        keypoints, init_rot, init_aa, init_betas = self._checked_inputs(keypoints, init_pose, init_betas)
        batch = keypoints.shape[0]
        center, focal = self._camera(batch, camera_center, focal_length)
        sample_seeds = self._sample_seeds(sample_seeds, batch)
        condition = self._condition(condition, batch)
        if init_transl is not None:
            init_transl = init_transl.detach().to(self.device, self.dtype).clone()
        finite_kp, finite_init, confident, enough = self._usable_samples(keypoints, init_aa, init_betas, init_transl)
        valid = finite_kp & finite_init & enough
        keypoints, aa, betas = self._placeholders_where_invalid(valid, keypoints, init_aa, init_betas)
        conf = keypoints[..., 2].clamp_min(0.0)
        target = keypoints[..., :2]
        start_transl = self._start_transl(valid, aa, betas, target, conf, center, focal, init_transl)
        start = {
            "global_orient": aa[:, :3].clone(),
            "body_pose": aa[:, 3:].clone(),
            "betas": betas.clone(),
            "transl": start_transl.clone(),
        }
        with torch.no_grad():  # the start's joints (camera frame, no translation), for depth_anchor
            start_joints = self._joints(aa[:, :3], aa[:, 3:], betas)
        data = {
            "keypoints": target,
            "raw_confidence": conf,
            "body_confidence": self.body_stage_confidence(conf),
            "init_transl": start_transl,
            "init_global_orient": aa[:, :3].clone(),
            "init_body_pose": aa[:, 3:].clone(),
            "init_joints": start_joints,
            "anchor_mask": self.informative_start(init_rot).to(self.dtype),
            "center": center,
            "focal": focal,
            "seeds": sample_seeds,
        }
        if condition is not None:  # only tensors here: the flip trial doubles every entry
            data["condition"] = condition
        return FitProblem(
            keypoints=keypoints, init_pose=init_aa, init_betas=init_betas, init_rotmats=init_rot,
            start=start, data=data, center=center, focal=focal, valid=valid,
            finite_keypoints=finite_kp, finite_start=finite_init, enough_joints=enough,
            confident_joints=confident,
        )  # fmt: skip

    def _checked_inputs(self, keypoints, init_pose, init_betas):
        """Copies on the model's device: keypoints (B, 49, 3), the start as matrices
        (B, 24, 3, 3) and as canonical axis-angle (B, 72), and betas (B, num_betas)."""
        if keypoints.ndim != 3 or keypoints.shape[1:] != (J.NUM_KEYPOINTS, 3):
            raise ValueError(f"keypoints must be (B, {J.NUM_KEYPOINTS}, 3), got {tuple(keypoints.shape)}")
        batch = keypoints.shape[0]
        device, dtype = self.device, self.dtype
        keypoints = keypoints.detach().to(device, dtype).clone()
        init_rot = pose_to_rotmat(init_pose.detach().to(device, dtype), "init_pose")
        if init_rot.shape[0] != batch or init_betas.shape[0] != batch:
            raise ValueError("keypoints, init_pose and init_betas must have the same batch size")
        init_aa = canonical_axis_angle(matrix_to_axis_angle(init_rot)).reshape(batch, NUM_POSE)
        init_betas = self._full_betas(init_betas.detach().to(device, dtype)).clone()
        return keypoints, init_rot, init_aa, init_betas

    def _sample_seeds(self, sample_seeds, batch: int) -> torch.Tensor:
        """(B,) int64 noise keys; zeros (the config's seed for every sample) when None."""
        if sample_seeds is None:
            sample_seeds = torch.zeros(batch, dtype=torch.long, device=self.device)
        sample_seeds = torch.as_tensor(sample_seeds, device=self.device)
        if sample_seeds.shape != (batch,) or sample_seeds.dtype != torch.int64:
            raise ValueError(f"sample_seeds must be ({batch},) int64, got {sample_seeds.dtype} {tuple(sample_seeds.shape)}")
        return sample_seeds

    def _condition(self, condition, batch: int) -> torch.Tensor | None:
        """The features ready for :attr:`condition_prior`, or None without a prior that reads them."""
        prior = self.condition_prior
        if prior is not None and hasattr(prior, "config"):
            return prepare_condition(prior, condition, batch)
        return None

    def _usable_samples(self, keypoints, init_aa, init_betas, init_transl):
        """Per sample (B,): finite keypoints, finite start, confident-joint count, and whether
        it reaches ``config.min_confident_joints``."""
        cfg = self.config
        finite_kp = torch.isfinite(keypoints).all(dim=(1, 2))
        finite_init = torch.isfinite(init_aa).all(1) & torch.isfinite(init_betas).all(1)
        if init_transl is not None:
            finite_init &= torch.isfinite(init_transl).all(1)
        confident = (torch.nan_to_num(keypoints[..., 2]) > cfg.confidence_threshold).sum(1)
        enough = confident >= cfg.min_confident_joints
        return finite_kp, finite_init, confident, enough

    @staticmethod
    def _placeholders_where_invalid(valid, keypoints, init_aa, init_betas):
        """Keypoints, pose and betas with zeros for the samples that are not fitted (new tensors)."""
        keypoints = torch.where(valid[:, None, None], keypoints, torch.zeros_like(keypoints))
        aa = torch.where(valid[:, None], init_aa, torch.zeros_like(init_aa))
        betas = torch.where(valid[:, None], init_betas, torch.zeros_like(init_betas))
        return keypoints, aa, betas

    def _start_transl(self, valid, aa, betas, target, conf, center, focal, init_transl) -> torch.Tensor:
        """(B, 3) the given translation, else :meth:`starting_camera` of the start; SPIN's
        mean depth for samples that are not fitted."""
        cfg = self.config
        batch = valid.shape[0]
        if init_transl is None:
            with torch.no_grad():
                joints0 = self._joints(aa[:, :3], aa[:, 3:], betas)
            init_transl = self.starting_camera(joints0, target, conf, center, focal)
        default_t = torch.tensor(
            [0.0, 0.0, default_depth(cfg.focal_length, cfg.crop_size)], device=self.device, dtype=self.dtype
        )
        return torch.where(valid[:, None], init_transl, default_t.expand(batch, 3))

    # ------------------------------------------------------------------ assemble
    def assemble(self, problem: FitProblem, progress: FitProgress) -> FitResult:
        """The :class:`FitResult`: failed samples (invalid or diverged) keep their start."""
        ok = problem.valid & ~progress.diverged
        params = progress.params
        pose = torch.cat([params["global_orient"], params["body_pose"]], 1).detach()
        pose = torch.where(ok[:, None], pose, problem.init_pose)
        betas = torch.where(ok[:, None], params["betas"].detach(), problem.init_betas)
        transl = torch.where(ok[:, None], params["transl"].detach(), problem.start_transl)
        center, focal = problem.center, problem.focal
        score, losses, _ = self.score(pose, betas, problem.keypoints, transl, center, focal)
        with torch.no_grad():
            initial_score, _, _ = self.score(
                problem.init_pose, problem.init_betas, problem.keypoints, problem.start_transl, center, focal
            )
            projected = self._project(self._joints(pose[:, :3], pose[:, 3:], betas), transl, center, focal)
            residuals = (projected - problem.data["keypoints"]).norm(dim=-1)
        return FitResult(
            pose=pose,
            betas=betas,
            transl=transl,
            score=torch.where(ok, score, initial_score),
            initial_score=initial_score,
            joint_losses=losses,
            joint_residuals=residuals,
            success=ok,
            failure=self._failure_reasons(problem, progress.diverged, ok),
            iterations=progress.iterations,
            flipped=progress.flipped & ok,
            stage_losses=progress.stage_losses,
        )

    def _failure_reasons(self, problem: FitProblem, diverged, ok) -> list[str | None]:
        """Why each sample failed, None where it succeeded (one host sync for the batch)."""
        cfg = self.config
        status = torch.stack([problem.finite_keypoints, problem.finite_start, problem.enough_joints, diverged, ok])
        status = status.cpu()
        counts = problem.confident_joints.cpu()
        reasons: list[str | None] = [None] * status.shape[1]
        for i in range(status.shape[1]):
            if not status[0, i]:
                reasons[i] = "non-finite keypoints (NaN or inf)"
            elif not status[1, i]:
                reasons[i] = "non-finite initial parameters"
            elif not status[2, i]:
                reasons[i] = (
                    f"too few confident joints ({int(counts[i])} above {cfg.confidence_threshold}, "
                    f"need {cfg.min_confident_joints})"
                )
            elif status[3, i]:
                reasons[i] = "optimisation diverged"
        return reasons

    # ------------------------------------------------------------------ shared helpers
    def informative_start(self, init_rot: torch.Tensor) -> torch.Tensor:
        """(B,) whether each start is an estimate worth anchoring to (the ``pose_anchor`` term):
        false for the body model's mean pose and the rest pose, the starts that carry no
        information about the person (anchoring to them measured worse than not, on the
        real validation split)."""
        body = init_rot[:, 1:]
        rest = torch.eye(3, dtype=body.dtype, device=body.device)
        uninformative = (body - rest).abs().flatten(1).amax(1) < 1e-3
        if self.body.mean_params is not None:
            mean = self.body.mean_pose_rotmat(1)[:, 1:].to(body.dtype)
            uninformative |= (body - mean).abs().flatten(1).amax(1) < 1e-3
        return ~uninformative

    def _camera(self, batch: int, camera_center, focal_length) -> tuple[torch.Tensor, torch.Tensor]:
        if camera_center is None:
            half = self.config.crop_size / 2.0
            camera_center = torch.full((batch, 2), half, device=self.device, dtype=self.dtype)
        if focal_length is None:
            focal_length = self.config.focal_length
        focal = torch.as_tensor(focal_length, device=self.device, dtype=self.dtype)
        if focal.ndim == 0:
            focal = focal.expand(batch)
        return camera_center.to(self.device, self.dtype), focal

    def _joints(self, global_orient, body_pose, betas) -> torch.Tensor:
        axis_angle = torch.cat([global_orient, body_pose], dim=1).view(-1, NUM_SMPL_JOINTS, 3)
        return self.body.joints(axis_angle_to_matrix(axis_angle), betas).joints

    def starting_camera(self, joints, keypoints, confidence, center, focal) -> torch.Tensor:
        """The camera translation (B, 3) that SPIN gives parameters without one: weighted least
        squares over the 24 GT joints (confidence weights), as SPIN scores a stored fit.
        Used for a fit's start when no ``init_transl`` is given and by :meth:`score`, so a
        start and its score see the same camera; samples with fewer than two usable GT
        joints get SPIN's mean depth."""
        gt = slice(J.NUM_OPENPOSE_JOINTS, J.NUM_KEYPOINTS)
        return estimate_translation(
            torch.nan_to_num(joints[:, gt]), keypoints[:, gt], confidence[:, gt].clamp_min(0),
            focal_length=focal, camera_center=center,
        )  # fmt: skip

    def _project(self, joints, transl, camera_center, focal) -> torch.Tensor:
        return perspective_projection(joints, transl, focal_length=focal, camera_center=camera_center)

    def _full_betas(self, betas: torch.Tensor) -> torch.Tensor:
        """(B, S) betas padded with zeros to the body model's num_betas (S <= num_betas)."""
        num = self.body.num_betas
        if betas.ndim != 2 or betas.shape[1] > num:
            raise BadInputError(
                f"betas must be (B, <= {num}) for this body model (body.num_betas = {num}), got "
                f"{tuple(betas.shape)}; pass --set body.num_betas=N to fit more shape coefficients"
            )
        return torch.nn.functional.pad(betas, (0, num - betas.shape[1]))

    def body_stage_confidence(self, confidence: torch.Tensor) -> torch.Tensor:
        """Confidences with SPIN's ignored joints zeroed (a new tensor)."""
        return confidence * self._body_stage_mask.to(confidence)

    def score(
        self,
        pose: torch.Tensor,
        betas: torch.Tensor,
        keypoints: torch.Tensor,
        transl: torch.Tensor | None = None,
        camera_center: torch.Tensor | None = None,
        focal_length=None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """SPIN's fit score of given parameters: (score (B,), joint_losses (B, 49), transl (B, 3)).

        Parameters without a camera (e.g. a stored fit) get the weighted least-squares
        translation over the GT joints, as SPIN does. Non-finite samples score +inf.
        """
        with torch.no_grad():
            keypoints = keypoints.to(self.device, self.dtype)
            batch = keypoints.shape[0]
            center, focal = self._camera(batch, camera_center, focal_length)
            rotmats = pose_to_rotmat(pose.to(self.device, self.dtype))
            joints = self.body.joints(rotmats, self._full_betas(betas.to(self.device, self.dtype))).joints
            finite = torch.isfinite(keypoints).all(-1)
            conf = torch.where(finite.all(-1, keepdim=True), keypoints[..., 2], torch.zeros_like(keypoints[..., 2]))
            target = torch.nan_to_num(keypoints[..., :2])
            if transl is None:
                transl = self.starting_camera(joints, target, conf, center, focal)
            transl = transl.to(self.device, self.dtype)
            projected = self._project(torch.nan_to_num(joints), torch.nan_to_num(transl), center, focal)
            losses = reprojection_per_joint(projected, target, self.body_stage_confidence(conf), self.config.sigma)
            score = losses.mean(-1)
            bad = ~(finite.all(-1) & torch.isfinite(joints).all((1, 2)) & torch.isfinite(transl).all(-1))
            score = torch.where(bad, torch.full_like(score, float("inf")), score)
            return score, losses, transl
