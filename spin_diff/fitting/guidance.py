"""Guided refinement of an initial estimate by the diffusion prior (ScoreHMR's method).

Starting from the estimate x (its pose in the prior's layout), repeat ``loops`` times:

1. DDIM-invert x from level 0 to ``t_start`` (deterministic; stride ``step``).
2. Run deterministic DDIM back to level 0. At each level t the predicted noise eps (network
   not differentiated) gives x0-hat = (x_t - sqrt(1 - ab) eps) / sqrt(ab); the robust
   keypoint loss of x0-hat (through the joints-only body model, betas fixed) is
   differentiated with respect to x_t, and the noise is corrected toward the data:
   ``eps' = eps + sqrt(1 - ab) * scale * grad``. The camera translation takes one Adam step
   on the same loss.
3. A sample stops (keeps its x0-hat and camera) when its loss changes by less than
   ``early_stop_tol`` (relative) between two steps.

Everything is batched; whether all samples have stopped is checked (one host sync) once per
loop. Samples marked inactive from the start (failed inputs) are carried through unchanged.

:func:`guided_refinement` is the algorithm on tensors; :class:`GuidedRefinement` is it as a
fitting method (:mod:`spin_diff.fitting.base`), which SMPLify with ``method: guided`` runs
after its pre-stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from spin_diff.constants import NUM_POSE, NUM_SMPL_JOINTS
from spin_diff.body.model import BodyModel
from spin_diff.diffusion.config import GuidedConfig
from spin_diff.diffusion.model import DiffusionPrior
from spin_diff.diffusion.representation import project_to_rotations
from spin_diff.diffusion.schedule import ddim_move, ddim_timesteps, predict_x0
from spin_diff.fitting.base import FitProblem, FitProgress, FittingMethod
from spin_diff.fitting.config import FittingConfig
from spin_diff.fitting.losses import reprojection_loss
from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

JointsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (B,24,3,3), (B,S) -> (B,49,3)


@dataclass
class GuidedResult:
    """Outcome of guided refinement. B batch."""

    rotmats: torch.Tensor  # (B, 24, 3, 3) refined pose, global orientation first
    transl: torch.Tensor  # (B, 3) refined camera translation
    loss: torch.Tensor  # (B,) keypoint loss at the returned pose and camera
    initial_loss: torch.Tensor  # (B,) keypoint loss at the start
    steps: torch.Tensor  # (B,) guided DDIM steps taken before stopping


def guided_refinement(
    prior: DiffusionPrior,
    joints_fn: JointsFn,
    keypoints: torch.Tensor,
    confidence: torch.Tensor,
    init_rotmats: torch.Tensor,
    betas: torch.Tensor,
    init_transl: torch.Tensor,
    camera_center: torch.Tensor,
    focal: torch.Tensor,
    settings: GuidedConfig | None = None,
    sigma: float = 100.0,
    active: torch.Tensor | None = None,
    cond: torch.Tensor | None = None,
) -> GuidedResult:
    """Refine a batch of estimates against 2D keypoints with the prior.

    Args:
        prior: the diffusion prior (its dtype and device are used for x).
        joints_fn: (B, 24, 3, 3), (B, S) -> (B, 49, 3) model joints (the fast path).
        keypoints: (B, 49, 2) target pixels; confidence: (B, 49).
        init_rotmats: (B, 24, 3, 3); betas: (B, S), fixed; init_transl: (B, 3).
        camera_center: (B, 2); focal: (B,) pixels.
        active: (B,) bool, samples to refine (default all); the others come back unchanged.
        cond: (B, C) conditioning for a conditional prior.
    """
    settings = settings or GuidedConfig()
    if not 0 < settings.t_start < prior.timesteps:
        raise ValueError(f"guided t_start must be in (0, {prior.timesteps}), got {settings.t_start}")
    batch = keypoints.shape[0]
    device = keypoints.device
    work_dtype = keypoints.dtype
    prior_dtype = prior.alpha_bars.dtype
    alpha_bars = prior.alpha_bars
    active = torch.ones(batch, dtype=torch.bool, device=device) if active is None else active.clone()
    mode = prior.config.orientation

    shape = None
    if prior.config.use_betas:  # modelled but held fixed here, as in ScoreHMR without betas guidance
        shape = torch.nn.functional.pad(betas[:, :10], (0, max(0, 10 - betas.shape[1]))).to(prior_dtype)
    x, yaw = prior.encode(init_rotmats.to(prior_dtype), shape)
    orient_aa = None
    leaves = [init_transl.detach().clone().requires_grad_(True)]
    if mode == "none":  # the prior does not model orientation: optimise it like the camera
        orient_aa = matrix_to_axis_angle(init_rotmats[:, 0]).detach().clone().requires_grad_(True)
        leaves.append(orient_aa)
    transl = leaves[0]
    optimizer = torch.optim.Adam(leaves, lr=settings.camera_lr)

    def decode(x0: torch.Tensor) -> torch.Tensor:
        orient = None
        if orient_aa is not None:
            orient = axis_angle_to_matrix(orient_aa).to(x0.dtype)
        rotmats, _ = prior.decode(x0, yaw, orient)
        return rotmats.to(work_dtype)

    def loss_of(x0: torch.Tensor) -> torch.Tensor:
        joints = joints_fn(decode(x0), betas)
        return reprojection_loss(joints, transl, keypoints, confidence, camera_center, focal, sigma)

    with torch.no_grad():
        initial_loss = loss_of(x)
    x_out = x.clone()
    transl_out = transl.detach().clone()
    previous = initial_loss.clone()
    steps = torch.zeros(batch, dtype=torch.long, device=device)
    levels = ddim_timesteps(settings.t_start, settings.step)
    pairs = list(zip(levels[:-1], levels[1:]))

    for _ in range(settings.loops):
        with torch.no_grad():
            x_t = prior.ddim_invert(x, settings.t_start, settings.step, cond, settings.inversion_iterations)
        for t, t_next in pairs:
            with torch.no_grad():
                eps = prior.predict_noise(x_t, t, cond)
            leaf = x_t.detach().requires_grad_(True)
            x0_hat = predict_x0(alpha_bars, leaf, t, eps)
            loss = loss_of(x0_hat)
            weight = active.to(loss.dtype)
            gradients = torch.autograd.grad((weight * loss).sum(), [leaf, *leaves])
            with torch.no_grad():
                before = [p.detach().clone() for p in leaves]
                for p, g in zip(leaves, gradients[1:]):
                    p.grad = g
                optimizer.step()
                for p, old in zip(leaves, before):  # stopped samples keep their camera
                    p.copy_(torch.where(active.view(-1, *([1] * (p.ndim - 1))), p, old))
                scale = (1 - alpha_bars[t]).sqrt() * settings.guidance_scale
                eps_guided = eps + scale * gradients[0] * weight[:, None].to(prior_dtype)
                x0_guided = predict_x0(alpha_bars, x_t, t, eps_guided)
                x_t = ddim_move(alpha_bars, x0_guided, eps_guided, t_next)

                value = loss.detach()
                change = (previous - value).abs() / torch.maximum(torch.maximum(previous, value), torch.ones_like(value))
                x_out = torch.where(active[:, None], x0_guided, x_out)
                transl_out = torch.where(active[:, None], transl.detach(), transl_out)
                steps += active.long()
                active &= change >= settings.early_stop_tol
                previous = value
        x = x_t
        if not bool(active.any()):  # one host sync per loop
            break
    x_out = project_to_rotations(x_out)
    with torch.no_grad():
        rotmats = decode(x_out)
        final = reprojection_loss(joints_fn(rotmats, betas), transl_out, keypoints, confidence, camera_center, focal, sigma)
    return GuidedResult(rotmats.detach(), transl_out, final, initial_loss, steps)


class GuidedRefinement(FittingMethod):
    """ScoreHMR's guided refinement as a fitting method: pose and camera refined from the
    current parameters by ``prior`` (betas fixed), settings ``config.diffusion.guided``.

    Its loss is the robust reprojection term with the body-stage confidences; the step is
    recorded as stage ``"guided"``.
    """

    def __init__(self, body_model: BodyModel, config: FittingConfig | None, prior: DiffusionPrior) -> None:
        super().__init__(body_model, config)
        self.prior = prior

    @property
    def condition_prior(self):
        return self.prior

    def improve(self, problem: FitProblem, progress: FitProgress) -> FitProgress:
        params, steps, start_loss, end_loss = self.refine(progress.params, problem.data, problem.valid)
        progress.record("guided", params, steps, start_loss, end_loss, problem.valid, self.config.divergence_factor)
        return progress

    def refine(self, params: dict, data: dict, valid: torch.Tensor):
        """Guided refinement of a batch of parameters (global_orient (B, 3), body_pose (B, 69),
        betas, transl (B, 3)) against ``data`` (see :class:`FitProblem`). Returns (params,
        steps (B,), start loss (B,), end loss (B,))."""
        aa = torch.cat([params["global_orient"], params["body_pose"]], 1).view(-1, NUM_SMPL_JOINTS, 3)
        result = guided_refinement(
            self.prior,
            lambda rotmats, betas: self.body.joints(rotmats, betas).joints,
            data["keypoints"], data["body_confidence"], axis_angle_to_matrix(aa), params["betas"],
            params["transl"], data["center"], data["focal"],
            settings=self.config.diffusion.guided, sigma=self.config.sigma, active=valid,
            cond=data.get("condition"),
        )  # fmt: skip
        pose = matrix_to_axis_angle(result.rotmats).reshape(-1, NUM_POSE).to(self.dtype)
        refined = {
            "global_orient": pose[:, :3],
            "body_pose": pose[:, 3:],
            "betas": params["betas"],
            "transl": result.transl.to(self.dtype),
        }
        return refined, result.steps, result.initial_loss, result.loss
