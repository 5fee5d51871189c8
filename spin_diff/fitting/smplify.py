"""Batched SMPLify: fit SMPL pose, shape, orientation and camera to 2D keypoints.

The default configuration is SPIN's in-the-loop recipe (REFERENCE.md); stages, terms,
weights and the optimiser come from :class:`FittingConfig`. Inside the loop only joints are
computed (``BodyModel.joints``, the joints-only path), never meshes.

The learned diffusion pose prior enters in one of two ways (``spin_diff.diffusion``): as the
``diffusion_pose`` term of a stage (in the default body stage, beside the GMM), or, with
``method: guided``, as ScoreHMR's guided refinement, which replaces every stage after
``fitting.diffusion.guided.pre_stages`` (the camera stage). The prior is loaded from
``fitting.diffusion.checkpoint``, else ``diffusion_prior.pt`` beside the body model, else
the bundled one.

Robustness: a sample with non-finite input or too few confident joints is marked failed
before fitting and fitted on harmless placeholder values; a sample whose optimisation
diverges (non-finite, or its loss grows past ``divergence_factor`` times its start) is marked
failed after. Failed samples keep their initial parameters, and because every term is per
sample and failed samples are sanitised, they never disturb their batch-mates. Inputs are
never modified in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spin_diff.body import joints as J
from spin_diff.body.files import find_beside_model
from spin_diff.body.model import BodyModel, pose_to_rotmat
from spin_diff.config import ConfigError
from spin_diff.errors import BadInputError
from spin_diff.fitting.config import PARAMETER_GROUPS, FittingConfig, StageConfig
from spin_diff.fitting.losses import reprojection_per_joint
from spin_diff.fitting.terms import FitState, TermContext, build_term
from spin_diff.geometry.cameras import default_depth, estimate_translation, perspective_projection
from spin_diff.geometry.rotations import axis_angle_to_matrix, canonical_axis_angle, matrix_to_axis_angle

log = logging.getLogger(__name__)

# Loss growth below this absolute amount (squared pixels, summed over joints) is never called
# divergence: from an exact optimum Adam's first, fixed-size steps raise the loss a little
# (measured: 0 -> 6-9) before it settles, and such a fit has not diverged.
_DIVERGENCE_FLOOR = 100.0
_IN_MEMORY = "(given in memory)"


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


def _term_weights(stage: StageConfig) -> list[tuple[str, float]]:
    return [(name, float(weight)) for name, weight in stage.terms.items() if weight != 0]


class SMPLify:
    """Batched SMPLify over a :class:`BodyModel` (fast joints-only path inside the loop)."""

    def __init__(
        self,
        body_model: BodyModel,
        config: FittingConfig | None = None,
        gmm: torch.nn.Module | None = None,
        extra_terms: dict | None = None,
    ) -> None:
        body_model.require_keypoint_regressor()  # a clear error now, not 9 joints at the origin
        self.body = body_model
        self.config = config or FittingConfig()
        if self.config.method == "smplify" and sum(max(s.iterations, 0) for s in self.config.stages) == 0:
            raise ConfigError(
                "fitting.stages has no iterations to run (the list is empty or every stage has 0 "
                "iterations), so a fit would return its start unchanged: give at least one stage "
                "iterations > 0 (the default is SPIN's camera and body stages of 100 each)"
            )
        for stage in self.config.stages:
            unknown = [g for g in stage.optimize if g not in PARAMETER_GROUPS]
            if unknown:
                raise ConfigError(
                    f"stage {stage.name!r} optimises unknown parameters {unknown}; "
                    f"choose from {list(PARAMETER_GROUPS)}"
                )
            if stage.iterations < 0:
                raise ConfigError(f"stage {stage.name!r}: iterations must be >= 0")
        if self.config.method not in ("smplify", "guided"):
            raise ConfigError(f"fitting.method must be 'smplify' or 'guided', got {self.config.method!r}")
        # every file that shapes a fit, for its provenance hash (spin_diff.cache.provenance);
        # priors handed in as objects are named by "(given in memory)"
        self.input_files: dict[str, Path | str] = {"body_model": body_model.files.model}
        self.input_files["J_regressor_extra"] = body_model.files.j_regressor_extra
        uses_gmm = any("gmm_pose" in dict(_term_weights(s)) for s in self._stages_to_run())
        if gmm is None and uses_gmm:
            gmm = gmm_prior_for(self.config, body_model)
            self.input_files["gmm"] = gmm_prior_path(self.config, body_model)
        elif uses_gmm:
            self.input_files["gmm"] = _IN_MEMORY
        extras = dict(extra_terms or {})
        uses_diffusion = self.config.method == "guided" or any(
            "diffusion_pose" in dict(_term_weights(s)) for s in self._stages_to_run()
        )
        if uses_diffusion and extras.get("diffusion_prior") is None:
            extras["diffusion_prior"] = load_diffusion_prior_for(self.config, body_model)
            self.input_files["diffusion_prior"] = diffusion_prior_path(self.config, body_model)
        elif uses_diffusion:
            self.input_files["diffusion_prior"] = _IN_MEMORY
        extras.setdefault("diffusion_config", self.config.diffusion)
        extras.setdefault("confidence_threshold", self.config.confidence_threshold)
        self.context = TermContext(sigma=self.config.sigma, gmm=gmm, extras=extras)
        run = self._stages_to_run()
        self.stage_terms = [
            [(name, weight, build_term(name, self.context, stage.name)) for name, weight in _term_weights(stage)]
            if stage in run else []
            for stage in self.config.stages
        ]  # fmt: skip
        ignored = J.joint_indices(self.config.ignore_in_body_stage)
        mask = torch.ones(J.NUM_JOINTS)
        mask[ignored] = 0.0
        self._body_stage_mask = mask

    # ------------------------------------------------------------------ helpers
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

    def _stages_to_run(self) -> list[StageConfig]:
        """All stages for SMPLify; for guided refinement only the ones that precede it."""
        if self.config.method != "guided":
            return list(self.config.stages)
        wanted = self.config.diffusion.guided.pre_stages
        known = [s.name for s in self.config.stages]
        missing = [name for name in wanted if name not in known]
        if missing:
            raise ConfigError(
                f"fitting.diffusion.guided.pre_stages names stages {missing} that fitting.stages lacks "
                f"(stages: {known})"
            )
        return [s for s in self.config.stages if s.name in wanted]

    @property
    def device(self) -> torch.device:
        return self.body.device

    @property
    def dtype(self) -> torch.dtype:
        return self.body.dtype

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
        axis_angle = torch.cat([global_orient, body_pose], dim=1).view(-1, 24, 3)
        return self.body.joints(axis_angle_to_matrix(axis_angle), betas).joints

    def starting_camera(self, joints, keypoints, confidence, center, focal) -> torch.Tensor:
        """The camera translation (B, 3) that SPIN gives parameters without one: weighted least
        squares over the 24 GT joints (confidence weights), as SPIN scores a stored fit.
        Used for a fit's start when no ``init_transl`` is given and by :meth:`score`, so a
        start and its score see the same camera; samples with fewer than two usable GT
        joints get SPIN's mean depth."""
        gt = slice(J.NUM_OPENPOSE_JOINTS, J.NUM_JOINTS)
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

    # ------------------------------------------------------------------ scoring
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

    # ------------------------------------------------------------------ fitting
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
                diffusion term), e.g. ``spin_diff.diffusion.keyed_noise.example_seeds(name,
                indices)``. A sample's fit depends only on its own inputs and seed, never on
                its batch-mates or row (with the Adam optimiser; see the L-BFGS note in
                ``FittingConfig``). None: every sample uses the same key
                (``fitting.diffusion.seed``), which is batch-invariant too.
            condition: (B, F) regressor features (``RegressorOutput.features``) for a
                conditional diffusion prior, in the term and in guided refinement; row i
                conditions sample i only. Ignored by an unconditional prior; a conditional
                prior without it runs unconditionally (logged once).
        """
        cfg = self.config
        if keypoints.ndim != 3 or keypoints.shape[1:] != (J.NUM_JOINTS, 3):
            raise ValueError(f"keypoints must be (B, {J.NUM_JOINTS}, 3), got {tuple(keypoints.shape)}")
        batch = keypoints.shape[0]
        device, dtype = self.device, self.dtype
        keypoints = keypoints.detach().to(device, dtype).clone()
        init_rot = pose_to_rotmat(init_pose.detach().to(device, dtype), "init_pose")
        if init_rot.shape[0] != batch or init_betas.shape[0] != batch:
            raise ValueError("keypoints, init_pose and init_betas must have the same batch size")
        init_aa = canonical_axis_angle(matrix_to_axis_angle(init_rot)).reshape(batch, 72)
        init_betas = self._full_betas(init_betas.detach().to(device, dtype)).clone()
        center, focal = self._camera(batch, camera_center, focal_length)
        if sample_seeds is None:
            sample_seeds = torch.zeros(batch, dtype=torch.long, device=device)
        sample_seeds = torch.as_tensor(sample_seeds, device=device)
        if sample_seeds.shape != (batch,) or sample_seeds.dtype != torch.int64:
            raise ValueError(f"sample_seeds must be ({batch},) int64, got {sample_seeds.dtype} {tuple(sample_seeds.shape)}")

        prior = self.context.extras.get("diffusion_prior")
        if prior is not None and hasattr(prior, "config"):
            from spin_diff.diffusion.conditioning import prepare_condition

            condition = prepare_condition(prior, condition, batch)
        else:
            condition = None

        # --- validate and sanitise, per sample, without touching the caller's tensors
        conf = keypoints[..., 2]
        finite_kp = torch.isfinite(keypoints).all(dim=(1, 2))
        finite_init = torch.isfinite(init_aa).all(1) & torch.isfinite(init_betas).all(1)
        if init_transl is not None:
            init_transl = init_transl.detach().to(device, dtype).clone()
            finite_init &= torch.isfinite(init_transl).all(1)
        confident = (torch.nan_to_num(conf) > cfg.confidence_threshold).sum(1)
        enough = confident >= cfg.min_confident_joints
        valid = finite_kp & finite_init & enough
        keypoints = torch.where(valid[:, None, None], keypoints, torch.zeros_like(keypoints))
        conf = keypoints[..., 2].clamp_min(0.0)
        target = keypoints[..., :2]
        aa = torch.where(valid[:, None], init_aa, torch.zeros_like(init_aa))
        betas = torch.where(valid[:, None], init_betas, torch.zeros_like(init_betas))

        if init_transl is None:
            with torch.no_grad():
                joints0 = self._joints(aa[:, :3], aa[:, 3:], betas)
            init_transl = self.starting_camera(joints0, target, conf, center, focal)
        default_t = torch.tensor([0.0, 0.0, default_depth(cfg.focal_length, cfg.crop_size)], device=device, dtype=dtype)
        start_transl = torch.where(valid[:, None], init_transl, default_t.expand(batch, 3))

        params = {
            "global_orient": aa[:, :3].clone(),
            "body_pose": aa[:, 3:].clone(),
            "betas": betas.clone(),
            "transl": start_transl.clone(),
        }
        data = {
            "keypoints": target,
            "raw_confidence": conf,
            "body_confidence": self.body_stage_confidence(conf),
            "init_transl": start_transl,
            "init_body_pose": aa[:, 3:].clone(),
            "anchor_mask": self.informative_start(init_rot).to(dtype),
            "center": center,
            "focal": focal,
            "seeds": sample_seeds,
        }
        if condition is not None:  # only tensors here: the flip trial doubles every entry
            data["condition"] = condition
        iterations = torch.zeros(batch, dtype=torch.long, device=device)
        diverged = torch.zeros(batch, dtype=torch.bool, device=device)
        flipped = torch.zeros(batch, dtype=torch.bool, device=device)
        stage_losses: dict[str, torch.Tensor] = {}

        for stage_terms in self.stage_terms:  # a fit's stochastic terms start afresh
            for _, _, term in stage_terms:
                if hasattr(term, "reset"):
                    term.reset()
        def record(name: str, its, start_loss, end_loss) -> None:
            """Count iterations, keep the stage loss, and mark samples that diverged in it."""
            nonlocal iterations, diverged
            iterations = iterations + its
            stage_losses[name] = end_loss.detach()
            grew = end_loss > cfg.divergence_factor * start_loss.abs() + _DIVERGENCE_FLOOR
            diverged = diverged | (valid & (~torch.isfinite(end_loss) | grew))
            for value in params.values():
                diverged = diverged | (valid & ~torch.isfinite(value).all(1))

        run = self._stages_to_run()
        for index, stage in enumerate(cfg.stages):
            if stage not in run:
                continue
            if index == 0 and cfg.orientation_flip.enabled and "global_orient" in stage.optimize:
                params, flipped, its, start_loss, end_loss = self._stage_with_flip_trial(
                    index, stage, params, data, valid
                )
            else:
                params, its, start_loss, end_loss = self._run_stage(index, stage, params, data, valid)
            record(stage.name, its, start_loss, end_loss)
        if cfg.method == "guided":
            params, its, start_loss, end_loss = self._guided(params, data, valid)
            record("guided", its, start_loss, end_loss)

        # --- assemble the result; failed samples keep their initial parameters
        ok = valid & ~diverged
        pose = torch.cat([params["global_orient"], params["body_pose"]], 1).detach()
        pose = torch.where(ok[:, None], pose, init_aa)
        out_betas = torch.where(ok[:, None], params["betas"].detach(), init_betas)
        out_transl = torch.where(ok[:, None], params["transl"].detach(), start_transl)
        score, losses, _ = self.score(pose, out_betas, keypoints, out_transl, center, focal)
        with torch.no_grad():
            initial_score, _, _ = self.score(init_aa, init_betas, keypoints, start_transl, center, focal)
            projected = self._project(self._joints(pose[:, :3], pose[:, 3:], out_betas), out_transl, center, focal)
            residuals = (projected - target).norm(dim=-1)

        reasons: list[str | None] = [None] * batch
        status = torch.stack([finite_kp, finite_init, enough, diverged, ok]).cpu()  # one sync, at the end
        counts = confident.cpu()
        for i in range(batch):
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
        return FitResult(
            pose=pose,
            betas=out_betas,
            transl=out_transl,
            score=torch.where(ok, score, initial_score),
            initial_score=initial_score,
            joint_losses=losses,
            joint_residuals=residuals,
            success=ok,
            failure=reasons,
            iterations=iterations,
            flipped=flipped & ok,
            stage_losses=stage_losses,
        )

    def _state(self, params, data, stage_index: int, progress: float, body_stage: bool) -> FitState:
        joints = self._joints(params["global_orient"], params["body_pose"], params["betas"])
        projected = self._project(joints, params["transl"], data["center"], data["focal"])
        return FitState(
            global_orient=params["global_orient"],
            body_pose=params["body_pose"],
            betas=params["betas"],
            transl=params["transl"],
            joints=joints,
            projected=projected,
            keypoints=data["keypoints"],
            confidence=data["body_confidence"] if body_stage else data["raw_confidence"],
            raw_confidence=data["raw_confidence"],
            init_transl=data["init_transl"],
            init_body_pose=data.get("init_body_pose"),
            anchor_mask=data.get("anchor_mask"),
            progress=progress,
            stage_index=stage_index,
            sample_seed=data["seeds"],
            condition=data.get("condition"),
        )

    def _stage_objective(self, index: int, params, data, progress: float, body_stage: bool) -> torch.Tensor:
        state = self._state(params, data, index, progress, body_stage)
        total = torch.zeros(state.joints.shape[0], device=self.device, dtype=self.dtype)
        for _, weight, term in self.stage_terms[index]:
            total = total + weight * term(state)
        return total

    def _run_stage(self, index: int, stage: StageConfig, params: dict, data: dict, valid: torch.Tensor):
        """Optimise one stage. Returns (params, iterations (B,), start loss (B,), end loss (B,))."""
        cfg = self.config
        body_stage = "body_pose" in stage.optimize or "betas" in stage.optimize
        leaves = {
            k: v.detach().clone(memory_format=torch.contiguous_format).requires_grad_(k in stage.optimize)
            for k, v in params.items()
        }
        trainable = [leaves[k] for k in stage.optimize]
        batch = valid.shape[0]
        with torch.no_grad():
            start = self._stage_objective(index, leaves, data, 0.0, body_stage)
        its = torch.zeros(batch, dtype=torch.long, device=self.device)
        if stage.iterations == 0 or not trainable:
            return {k: v.detach() for k, v in leaves.items()}, its, start, start

        weight = valid.to(self.dtype)  # invalid samples add nothing to the summed loss
        optimizer_name = stage.optimizer or cfg.optimizer
        lr = stage.lr if stage.lr is not None else cfg.lr
        active = valid.clone()
        if optimizer_name == "lbfgs":
            # The batch shares one line search (the summed loss); early stopping is L-BFGS's
            # own tolerance on the whole batch.
            optimizer = torch.optim.LBFGS(
                trainable, lr=stage.lr if stage.lr is not None else cfg.lbfgs_lr,
                max_iter=cfg.lbfgs_max_iter, history_size=cfg.lbfgs_history,
                tolerance_grad=cfg.lbfgs_tolerance_grad, tolerance_change=cfg.lbfgs_tolerance_change,
                line_search_fn="strong_wolfe",
            )  # fmt: skip
            for step in range(stage.iterations):
                progress = step / stage.iterations

                def closure():
                    optimizer.zero_grad()
                    loss = (weight * self._stage_objective(index, leaves, data, progress, body_stage)).sum()
                    loss.backward()
                    return loss

                optimizer.step(closure)
            its += active.long() * int(optimizer.state[trainable[0]].get("n_iter", 0))
        else:
            optimizer = torch.optim.Adam(trainable, lr=lr, betas=(0.9, 0.999))
            previous = start.clone()
            calm = torch.zeros(batch, dtype=torch.long, device=self.device)
            es = cfg.early_stop
            for step in range(stage.iterations):
                optimizer.zero_grad()
                per_sample = self._stage_objective(index, leaves, data, step / stage.iterations, body_stage)
                (weight * per_sample).sum().backward()
                if es.enabled:
                    snapshot = [p.detach().clone() for p in trainable]
                optimizer.step()
                its += active.long()
                if es.enabled:
                    with torch.no_grad():
                        for p, old in zip(trainable, snapshot):
                            p.copy_(torch.where(active.view(-1, *([1] * (p.ndim - 1))), p, old))
                        value = per_sample.detach()
                        change = (previous - value).abs() / previous.abs().clamp_min(1e-9)
                        calm = torch.where(change < es.rel_tol, calm + 1, torch.zeros_like(calm))
                        active &= calm < es.patience
                        previous = value
                    if (step + 1) % es.check_every == 0 and not bool(active.any()):
                        break
        with torch.no_grad():
            end = self._stage_objective(index, leaves, data, 1.0, body_stage)
        return {k: v.detach() for k, v in leaves.items()}, its, start, end

    def _guided(self, params: dict, data: dict, valid: torch.Tensor):
        """ScoreHMR's guided refinement of pose and camera (betas fixed), after the pre-stages.
        Returns (params, steps (B,), start loss (B,), end loss (B,)), the loss being the
        robust reprojection term with the body-stage confidences."""
        from spin_diff.fitting.guidance import guided_refinement

        aa = torch.cat([params["global_orient"], params["body_pose"]], 1).view(-1, 24, 3)
        result = guided_refinement(
            self.context.extras["diffusion_prior"],
            lambda rotmats, betas: self.body.joints(rotmats, betas).joints,
            data["keypoints"], data["body_confidence"], axis_angle_to_matrix(aa), params["betas"],
            params["transl"], data["center"], data["focal"],
            settings=self.config.diffusion.guided, sigma=self.config.sigma, active=valid,
            cond=data.get("condition"),
        )  # fmt: skip
        pose = matrix_to_axis_angle(result.rotmats).reshape(-1, 72).to(self.dtype)
        refined = {
            "global_orient": pose[:, :3],
            "body_pose": pose[:, 3:],
            "betas": params["betas"],
            "transl": result.transl.to(self.dtype),
        }
        return refined, result.steps, result.initial_loss, result.loss

    def _stage_with_flip_trial(self, index, stage, params, data, valid):
        """Run the stage on the batch twice, as given and turned 180 degrees about the vertical
        (camera y) axis, for samples whose 2D shoulders are close; keep the lower-loss one."""
        cfg = self.config
        shoulders = J.joint_indices(["OP RShoulder", "OP LShoulder"])
        kp, conf = data["keypoints"], data["raw_confidence"]
        distance = (kp[:, shoulders[0]] - kp[:, shoulders[1]]).norm(dim=-1)
        seen = (conf[:, shoulders] > 0).all(1)
        eligible = valid & seen & (distance < cfg.orientation_flip.shoulder_distance_px)

        turn = axis_angle_to_matrix(torch.tensor([0.0, torch.pi, 0.0], device=self.device, dtype=self.dtype))
        flipped_orient = canonical_axis_angle(matrix_to_axis_angle(turn @ axis_angle_to_matrix(params["global_orient"])))
        doubled = {k: torch.cat([v, v]) for k, v in params.items()}
        doubled["global_orient"] = torch.cat([params["global_orient"], flipped_orient])
        doubled_data = {k: torch.cat([v, v]) for k, v in data.items()}
        doubled_valid = torch.cat([valid, eligible])
        out, its, start, end = self._run_stage(index, stage, doubled, doubled_data, doubled_valid)
        batch = valid.shape[0]
        take_flip = eligible & (end[batch:] < end[:batch])
        chosen = {k: torch.where(take_flip[:, None], v[batch:], v[:batch]) for k, v in out.items()}
        pick = lambda x: torch.where(take_flip, x[batch:], x[:batch])  # noqa: E731
        return chosen, take_flip, its[:batch] + its[batch:], pick(start), pick(end)


def diffusion_prior_path(config: FittingConfig, body_model: BodyModel) -> Path:
    """Which diffusion prior a fit uses: ``config.diffusion.checkpoint``, else
    ``diffusion_prior.pt`` beside the body model, else the bundled one."""
    from spin_diff.diffusion.model import BUNDLED_DIFFUSION_PRIOR, PRIOR_FILE_NAME

    path = config.diffusion.checkpoint or find_beside_model(body_model.files.model, PRIOR_FILE_NAME)
    return BUNDLED_DIFFUSION_PRIOR if path is None else Path(path).expanduser()


def gmm_prior_path(config: FittingConfig, body_model: BodyModel) -> Path | None:
    """Which GMM a fit uses: ``config.gmm_path`` or ``gmm_08.pkl`` beside the body model."""
    path = config.gmm_path or find_beside_model(body_model.files.model, "gmm_08.pkl")
    return None if path is None else Path(path).expanduser()


def load_diffusion_prior_for(config: FittingConfig, body_model: BodyModel):
    """The diffusion pose prior of :func:`diffusion_prior_path` (the bundled one's poses mean
    the same for SMPL)."""
    from spin_diff.diffusion.model import load_diffusion_prior

    path = diffusion_prior_path(config, body_model)
    return load_diffusion_prior(path, device=body_model.device, dtype=body_model.dtype)


def gmm_prior_for(config: FittingConfig, body_model: BodyModel) -> torch.nn.Module:
    """SMPLify's GMM pose prior from :func:`gmm_prior_path`, on the body model's device."""
    from spin_diff.body.files import BodyModelNotFoundError
    from spin_diff.priors.gmm import load_gmm_prior

    path = gmm_prior_path(config, body_model)
    if path is None:
        raise BodyModelNotFoundError(
            f"no gmm_08.pkl next to the body model {body_model.files.model}: pass --set "
            "fitting.gmm_path=PATH (SMPLify's gmm_08.pkl, or one made with 'spin-diff prior fit-gmm'), "
            "or remove gmm_pose from the stage terms"
        )
    return load_gmm_prior(path, dtype=body_model.dtype).to(body_model.device)
