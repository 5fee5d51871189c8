"""Batched SMPLify: fit SMPL pose, shape, orientation and camera to 2D keypoints in stages.

The default configuration is SPIN's in-the-loop recipe (docs/conventions.md#smplifys-stages-and-prior-weights); stages, terms,
weights and the optimiser come from :class:`FittingConfig`. Inside the loop only joints are
computed (``BodyModel.joints``, the joints-only path), never meshes. Preparing a batch and
assembling its result are shared with the other fitting methods
(:mod:`spin_diff.fitting.base`); this module runs the stages.

The learned diffusion pose prior enters in one of two ways: as the ``diffusion_pose`` term
of a stage (in the default body stage, beside the GMM; :mod:`spin_diff.fitting.diffusion_term`),
or, with ``method: guided``, as ScoreHMR's guided refinement
(:class:`spin_diff.fitting.guidance.GuidedRefinement`), which replaces every stage after
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
from pathlib import Path

import torch

from spin_diff.body import joints as J
from spin_diff.body.files import BodyModelNotFoundError, find_beside_model
from spin_diff.body.model import BodyModel
from spin_diff.diffusion.model import BUNDLED_DIFFUSION_PRIOR, PRIOR_FILE_NAME, load_diffusion_prior
from spin_diff.fitting.base import FitProblem, FitProgress, FittingMethod
from spin_diff.fitting.config import PARAMETER_GROUPS, FittingConfig, StageConfig
from spin_diff.fitting.guidance import GuidedRefinement
from spin_diff.fitting.least_squares import (
    Linearisation,
    camera_jacobian,
    has_least_squares_form,
    joints_and_jacobian,
    normal_equations,
)
from spin_diff.fitting.lm import minimise_gauss_newton, minimise_per_sample
from spin_diff.fitting.terms import FitState, TermContext, build_term
from spin_diff.geometry.rotations import axis_angle_to_matrix, canonical_axis_angle, matrix_to_axis_angle
from spin_diff.priors.gmm import load_gmm_prior
from spin_diff.utils.configs import ConfigError

log = logging.getLogger(__name__)

_IN_MEMORY = "(given in memory)"


def _term_weights(stage: StageConfig) -> list[tuple[str, float]]:
    return [(name, float(weight)) for name, weight in stage.terms.items() if weight != 0]


class SMPLify(FittingMethod):
    """Batched, staged SMPLify over a :class:`BodyModel` (fast joints-only path inside the loop).

    :meth:`fit` (from :class:`~spin_diff.fitting.base.FittingMethod`) prepares the batch, runs
    the stages (:meth:`improve`) and assembles the :class:`~spin_diff.fitting.base.FitResult`.
    """

    def __init__(
        self,
        body_model: BodyModel,
        config: FittingConfig | None = None,
        gmm: torch.nn.Module | None = None,
        extra_terms: dict | None = None,
    ) -> None:
        super().__init__(body_model, config)
        self._check_stages()
        # every file that shapes a fit, for its provenance hash (spin_diff.cache.provenance);
        # priors handed in as objects are named by "(given in memory)"
        self.input_files: dict[str, Path | str] = {"body_model": body_model.files.model}
        self.input_files["J_regressor_extra"] = body_model.files.j_regressor_extra
        self.context = self._term_context(gmm, extra_terms)
        run = self._stages_to_run()
        self.stage_terms = [
            [(name, weight, build_term(name, self.context, stage.name)) for name, weight in _term_weights(stage)]
            if stage in run else []
            for stage in self.config.stages
        ]  # fmt: skip
        self.guided = None
        if self.config.method == "guided":
            self.guided = GuidedRefinement(body_model, self.config, self.context.extras["diffusion_prior"])

    def _check_stages(self) -> None:
        """Refuse a method or stage list that cannot run (ConfigError says what to change)."""
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
            if (stage.optimizer or self.config.optimizer) == "lm" and stage.terms.get("diffusion_pose", 0) != 0:
                raise ConfigError(
                    f"stage {stage.name!r} has the diffusion_pose term, which optimizer 'lm' does not support "
                    "(its Hessian would need double backward through the prior network): set this stage's "
                    "optimizer: adam, or use spin_stages' terms"
                )
        if self.config.method not in ("smplify", "guided"):
            raise ConfigError(f"fitting.method must be 'smplify' or 'guided', got {self.config.method!r}")

    def _term_context(self, gmm, extra_terms) -> TermContext:
        """The priors the stages' terms use: the GMM and the diffusion prior, given or loaded
        from the config's files (recorded in :attr:`input_files`)."""
        body_model = self.body
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
        return TermContext(sigma=self.config.sigma, gmm=gmm, extras=extras)

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
    def condition_prior(self):
        return self.context.extras.get("diffusion_prior")

    # ------------------------------------------------------------------ the stages
    def improve(self, problem: FitProblem, progress: FitProgress) -> FitProgress:
        """Run the stages in order (the first with the orientation-flip trial when enabled),
        then, with ``method: guided``, guided refinement in place of the later ones."""
        cfg = self.config
        self._restart_stochastic_terms()
        run = self._stages_to_run()
        for index, stage in enumerate(cfg.stages):
            if stage not in run:
                continue
            if index == 0 and cfg.orientation_flip.enabled and "global_orient" in stage.optimize:
                params, progress.flipped, its, start_loss, end_loss = self._stage_with_flip_trial(
                    index, stage, progress.params, problem.data, problem.valid
                )
            else:
                params, its, start_loss, end_loss = self._run_stage(
                    index, stage, progress.params, problem.data, problem.valid
                )
            progress.record(stage.name, params, its, start_loss, end_loss, problem.valid, cfg.divergence_factor)
        if self.guided is not None:
            progress = self.guided.improve(problem, progress)
        return progress

    def _restart_stochastic_terms(self) -> None:
        """A fit's stochastic terms (the diffusion term's cached target) start afresh."""
        for stage_terms in self.stage_terms:
            for _, _, term in stage_terms:
                if hasattr(term, "reset"):
                    term.reset()

    def _state(self, params, data, stage_index: int, progress: float, body_stage: bool, joints=None) -> FitState:
        if joints is None:
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
            init_global_orient=data.get("init_global_orient"),
            init_body_pose=data.get("init_body_pose"),
            init_joints=data.get("init_joints"),
            anchor_mask=data.get("anchor_mask"),
            progress=progress,
            stage_index=stage_index,
            sample_seed=data["seeds"],
            condition=data.get("condition"),
        )

    def _stage_objective(self, index: int, params, data, progress: float, body_stage: bool) -> torch.Tensor:
        return self._objective_of(index, self._state(params, data, index, progress, body_stage))

    def _objective_of(self, index: int, state: FitState) -> torch.Tensor:
        total = torch.zeros(state.joints.shape[0], device=self.device, dtype=self.dtype)
        for _, weight, term in self.stage_terms[index]:
            total = total + weight * term(state)
        return total

    def _gauss_newton_stage(self, index: int, stage: StageConfig, leaves: dict, data: dict, valid, body_stage: bool):
        """``optimizer: lm`` on a stage whose terms all have least-squares forms: per-sample
        Levenberg-Marquardt on closed-form normal equations (:mod:`spin_diff.fitting.least_squares`).
        Returns (params, accepted steps (B,))."""
        names = list(stage.optimize)
        sizes = [leaves[k].shape[1] for k in names]
        offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        columns = {k: slice(o, o + n) for k, o, n in zip(names, offsets, sizes)}
        weights = [(name, weight) for name, weight, _ in self.stage_terms[index]]

        @torch.no_grad()
        def linearise(flat):
            moved = dict(leaves)
            moved.update(zip(names, flat.split(sizes, dim=1)))
            joints, jac = joints_and_jacobian(self.body, moved, columns, flat.shape[1])
            state = self._state(moved, data, index, 0.0, body_stage, joints=joints)
            camera = camera_jacobian(joints + moved["transl"][:, None], data["focal"])
            lin = Linearisation(state=state, columns=columns, projected_jacobian=camera @ jac, size=flat.shape[1],
                                joints_jacobian=jac)  # fmt: skip
            grad, hess = normal_equations(lin, weights, self.context)
            return self._objective_of(index, state), grad, hess

        flat = torch.cat([leaves[k].detach() for k in names], 1)
        flat, accepted = minimise_gauss_newton(
            linearise, flat, stage.iterations, self.config.lm_damping, active=valid, groups=list(columns.values()),
            floor=self.config.lm_damping_floor,
        )
        return dict(zip(names, flat.split(sizes, dim=1))), accepted

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
        if optimizer_name == "lm" and has_least_squares_form(dict(_term_weights(stage))):
            solved, its = self._gauss_newton_stage(index, stage, leaves, data, valid, body_stage)
            leaves.update({k: v.detach() for k, v in solved.items()})
        elif optimizer_name == "lm":
            names = list(stage.optimize)
            sizes = [leaves[k].shape[1] for k in names]

            def objective(flat):
                moved = dict(leaves)
                moved.update(zip(names, flat.split(sizes, dim=1)))
                return self._stage_objective(index, moved, data, 0.0, body_stage)

            flat = torch.cat([leaves[k].detach() for k in names], 1)
            flat, its = minimise_per_sample(
                objective, flat, stage.iterations, damping=cfg.lm_damping, active=valid
            )
            leaves.update({k: v.detach() for k, v in zip(names, flat.split(sizes, dim=1))})
        elif optimizer_name == "lbfgs":
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
    path = config.diffusion.checkpoint or find_beside_model(body_model.files.model, PRIOR_FILE_NAME)
    return BUNDLED_DIFFUSION_PRIOR if path is None else Path(path).expanduser()


def gmm_prior_path(config: FittingConfig, body_model: BodyModel) -> Path | None:
    """Which GMM a fit uses: ``config.gmm_path`` or ``gmm_08.pkl`` beside the body model."""
    path = config.gmm_path or find_beside_model(body_model.files.model, "gmm_08.pkl")
    return None if path is None else Path(path).expanduser()


def load_diffusion_prior_for(config: FittingConfig, body_model: BodyModel):
    """The diffusion pose prior of :func:`diffusion_prior_path` (the bundled one's poses mean
    the same for SMPL)."""
    path = diffusion_prior_path(config, body_model)
    return load_diffusion_prior(path, device=body_model.device, dtype=body_model.dtype)


def gmm_prior_for(config: FittingConfig, body_model: BodyModel) -> torch.nn.Module:
    """SMPLify's GMM pose prior from :func:`gmm_prior_path`, on the body model's device."""
    path = gmm_prior_path(config, body_model)
    if path is None:
        raise BodyModelNotFoundError(
            f"no gmm_08.pkl next to the body model {body_model.files.model}: pass --set "
            "fitting.gmm_path=PATH (SMPLify's gmm_08.pkl, or one made with 'spin-diff prior fit-gmm'), "
            "or remove gmm_pose from the stage terms"
        )
    return load_gmm_prior(path, dtype=body_model.dtype).to(body_model.device)
