"""One SPIN training step, with the fit store and (optionally) the diffusion prior in the loop.

:func:`train_step` is SPIN's sequence (docs/conventions.md#which-fit-supervises) on a batch from
:class:`~spin_diff.training.datasets.TrainingData`, batched throughout, with no host
synchronisation except the fit updates' copy to the store writer (done on a background
thread after a CUDA event) and what the caller logs:

1. score the stored fits of the batch, read from the store and mapped to this view;
2. the network's forward pass (mixed precision on CUDA) and the body model on its output;
3. SMPLify from the detached prediction;
4. the better of stored and new fit per example, ground truth where the dataset has it,
   supervision only under the threshold (:mod:`spin_diff.training.supervision`);
5. the new fits (and ground truth not yet stored) back to the store, in the canonical frame;
6. SPIN's loss and an optimiser step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spin_diff.cache.records import Source
from spin_diff.constants import NUM_SMPL_JOINTS
from spin_diff.fitting.base import FitResult
from spin_diff.fitting.keep import KeepRule
from spin_diff.fitting.smplify import SMPLify
from spin_diff.geometry.cameras import perspective_projection
from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.training import losses as L
from spin_diff.training.fit_updates import pack_updates
from spin_diff.training.frames import root_joint, to_canonical
from spin_diff.training.supervision import Supervision, choose_supervision
from spin_diff.utils.seeds import mix64, seed_from_text

__all__ = ["Prediction", "StepParts", "train_step", "regress", "condition_features", "score_stored_fits", "fit_from_prediction", "supervise",
           "canonical_updates", "spin_losses"]  # fmt: skip

_GROUND_TRUTH = int(Source.GROUND_TRUTH)
_BODY_POSE = slice(3, None)  # axis-angle of joints 1..23 (the priors' input)
SPIN_RULE = KeepRule()


@dataclass
class Prediction:
    """The network's output in float32, with the body model's joints. B rows."""

    rotmat: torch.Tensor  # (B, 24, 3, 3)
    betas: torch.Tensor  # (B, 10)
    cam: torch.Tensor  # (B, 3) weak perspective
    transl: torch.Tensor  # (B, 3)
    joints: torch.Tensor  # (B, 49, 3) body frame
    keypoints_2d: torch.Tensor  # (B, 49, 2) crop pixels
    finite: torch.Tensor  # (B,) bool: every output of the row is finite
    features: torch.Tensor | None = None  # (B, F) encoder features (a conditional prior's input)


@dataclass
class StepParts:
    """What a step leaves for the logs and the store (device tensors, no syncs)."""

    losses: L.LossTerms
    supervision: Supervision
    updates: torch.Tensor  # (B, 139) packed fit updates (see fit_updates.pack_updates)
    improved: torch.Tensor  # (B,) bool: the in-loop fit beat the stored one
    nonfinite: torch.Tensor  # (B,) bool: the prediction had NaN/inf (skipped)


def train_step(run, batch: dict[str, torch.Tensor]) -> StepParts:
    """One SPIN step. ``run`` holds the model, body model, fitter, optimiser, scaler and
    config (:class:`spin_diff.training.run.Run`); ``batch`` is on ``run.device``."""
    config = run.config
    stored_score = score_stored_fits(run.fitter, batch, run.keep)
    prediction = regress(run, batch)
    if run.condition_network is not None:  # fitting.condition_features: frozen
        prediction.features = condition_features(run, batch)
    fit = fit_from_prediction(run.fitter, prediction, batch, run.dataset_names) if config.fitting.in_loop else None
    targets = supervise(batch, stored_score, prediction, fit, config.fitting, run.keep)
    updates = canonical_updates(run.fitter, batch, fit, targets, run.keep)
    losses = spin_losses(prediction, batch, targets, config)
    optimizer_step(run, losses.total)
    return StepParts(losses, targets, updates, targets.new_is_better, ~prediction.finite)


# ---------------------------------------------------------------------------------- the parts
def score_stored_fits(fitter: SMPLify, batch, keep: KeepRule = SPIN_RULE) -> torch.Tensor:
    """The keep rule's score of each stored fit in this view (SPIN's least-squares camera);
    +inf where none."""
    pose, betas = batch["stored_pose"], batch["stored_betas"]
    score, _, _ = fitter.score(pose, betas, batch["keypoints"])
    score = keep(score, pose[:, _BODY_POSE], betas)
    return torch.where(batch["stored_found"], score, torch.full_like(score, float("inf")))


def ground_truth(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ground-truth pose (view), betas and where it exists: the dataset's SMPL (``has_smpl``),
    else a ground-truth record of the store (imported with ``spin-diff cache``)."""
    stored_gt = batch["stored_found"] & (batch["stored_source"] == _GROUND_TRUTH)
    has_smpl = batch["has_smpl"]
    pose = torch.where(has_smpl[:, None], batch["pose"], batch["stored_pose"])
    betas = torch.where(has_smpl[:, None], batch["betas"], batch["stored_betas"])
    return pose, betas, has_smpl | stored_gt


def supervise(batch, stored_score: torch.Tensor, prediction: Prediction, fit: FitResult | None, fitting,
              keep: KeepRule = SPIN_RULE) -> Supervision:  # fmt: skip
    """SPIN's choice of each example's target (:func:`~spin_diff.training.supervision.choose_supervision`),
    the stored and new fits compared under the keep rule (``stored_score`` already is)."""
    gt_pose, gt_betas, has_gt = ground_truth(batch)
    new_score = keep(fit.score, fit.pose[:, _BODY_POSE], fit.betas) if fit else None
    return choose_supervision(
        batch["stored_pose"], batch["stored_betas"], stored_score,
        fit.pose if fit else None, fit.betas if fit else None, new_score,
        fit.success & prediction.finite if fit else None, gt_pose, gt_betas, has_gt, prediction.finite,
        fitting.threshold, fitting.beta_limit,
    )  # fmt: skip


def regress(run, batch) -> Prediction:
    """The network's forward pass (autocast on CUDA if enabled) and the body model in float32."""
    inputs = batch["images"] if run.model_input == "image" else batch["keypoints"]
    with torch.autocast(run.device.type, enabled=run.amp):
        out = run.model(inputs)
    rotmat, betas, cam = out.rotmat.float(), out.betas.float(), out.cam.float()
    transl = out.transl.float()
    finite = torch.isfinite(rotmat).flatten(1).all(1) & torch.isfinite(betas).all(1) & torch.isfinite(cam).all(1)
    # Non-finite rows are replaced before the body model so they cannot reach other rows'
    # values; their gradient is zero (torch.where), and the losses skip them.
    eye = torch.eye(3, device=rotmat.device, dtype=rotmat.dtype).expand_as(rotmat)
    rotmat = torch.where(finite[:, None, None, None], rotmat, eye)
    betas = torch.where(finite[:, None], betas, torch.zeros_like(betas))
    cam = torch.where(finite[:, None], cam, torch.ones_like(cam))
    transl = torch.where(finite[:, None], transl, torch.ones_like(transl))
    fitting = run.fitter.config
    joints = run.body.fast(rotmat, betas[:, : run.body.num_betas]).joints
    centre = torch.full_like(transl[:, :2], fitting.crop_size / 2.0)
    keypoints_2d = perspective_projection(joints, transl, focal_length=fitting.focal_length, camera_center=centre)
    return Prediction(rotmat, betas, cam, transl, joints, keypoints_2d, finite, out.features.float())


def condition_features(run, batch) -> torch.Tensor:
    """(B, F) encoder features of the frozen conditioning network (eval mode, no gradient), float32:
    what ``spin-diff prior train --features-from`` trained a conditional prior on."""
    inputs = batch["images"] if run.model_input == "image" else batch["keypoints"]
    with torch.no_grad(), torch.autocast(run.device.type, enabled=run.amp):
        return run.condition_network.encoder(inputs).float()


def batch_seeds(batch, names: list[str]) -> torch.Tensor:
    """(B,) int64 per-example seeds of the fits' stochastic terms, from the dataset name and
    example index only (the seeds ``spin-diff cache build`` gives the same example), so an
    example's fit never depends on its batch-mates."""
    table = torch.tensor([seed_from_text(name) for name in names], dtype=torch.int64, device=batch["index"].device)
    return mix64(batch["index"] ^ table[batch["dataset"]])


def fit_from_prediction(fitter: SMPLify, prediction: Prediction, batch, names: list[str] = ()) -> FitResult:
    """SMPLify from the detached prediction (rotation matrices, betas, camera), float32.

    Each example's stochastic terms get its own seed (:func:`batch_seeds`). Rows with a non-finite prediction are
    fitted from the placeholder :func:`regress` put there, and their result is never used. A conditional diffusion
    prior gets the network's features of each example (detached; an unconditional one ignores them).
    """
    features = getattr(prediction, "features", None)
    conditioning = {} if features is None else {"condition": features.detach()}
    return fitter.fit(
        batch["keypoints"], prediction.rotmat.detach(), prediction.betas.detach(), prediction.transl.detach(),
        sample_seeds=batch_seeds(batch, list(names)), **conditioning,
    )  # fmt: skip


def _residuals(fitter: SMPLify, pose, betas, transl, keypoints) -> torch.Tensor:
    """Reprojection distance per joint (B, 49), crop pixels; NaN where the confidence is 0."""
    with torch.no_grad():
        joints = fitter.body.fast(axis_angle_to_matrix(pose.view(-1, NUM_SMPL_JOINTS, 3)), betas).joints
        centre = torch.full_like(transl[:, :2], fitter.config.crop_size / 2.0)
        projected = perspective_projection(joints, transl, fitter.config.focal_length, centre)
        distance = (projected - keypoints[..., :2]).norm(dim=-1)
        return torch.where(keypoints[..., 2] > 0, distance, torch.full_like(distance, float("nan")))


def canonical_updates(fitter: SMPLify, batch, fit: FitResult | None, targets: Supervision,
                      keep: KeepRule = SPIN_RULE) -> torch.Tensor:  # fmt: skip
    """The step's store updates, packed: new fits that beat the stored one, and ground truth
    the store lacks, both mapped to the example's canonical frame and scored there.

    The view's box is ``scale`` times the canonical one, so the canonical camera is nearer by
    that factor (exact for SPIN's nearly orthographic crop camera up to the body's depth
    over its distance, about 1%)."""
    flip, rotation, scale = batch["flip"], batch["rotation"], batch["scale"]
    keypoints = batch["canonical_keypoints"]
    has_smpl = batch["has_smpl"]
    write_gt = has_smpl & (batch["stored_source"] != _GROUND_TRUTH)
    gt_pose = to_canonical(batch["pose"], flip, rotation)
    gt_score, _, gt_transl = fitter.score(gt_pose, batch["betas"], keypoints)
    gt_score = keep.without_gate(gt_score, gt_pose[:, _BODY_POSE], batch["betas"])
    if fit is None:
        write_fit = torch.zeros_like(has_smpl)
        pose, betas, transl, score = gt_pose, batch["betas"], gt_transl, gt_score
    else:
        write_fit = targets.new_is_better & ~has_smpl & (batch["stored_source"] != _GROUND_TRUTH)
        root = root_joint(fitter.body, fit.betas)
        fit_pose, fit_transl = to_canonical(fit.pose, flip, rotation, fit.transl, root)
        fit_transl = fit_transl * torch.stack([torch.ones_like(scale), torch.ones_like(scale), 1.0 / scale], -1)
        fit_score, _, _ = fitter.score(fit_pose, fit.betas, keypoints, fit_transl)
        fit_score = keep(fit_score, fit_pose[:, _BODY_POSE], fit.betas)
        pose = torch.where(write_gt[:, None], gt_pose, fit_pose)
        betas = torch.where(write_gt[:, None], batch["betas"], fit.betas)
        transl = torch.where(write_gt[:, None], gt_transl, fit_transl)
        score = torch.where(write_gt, gt_score, fit_score)
    residuals = _residuals(fitter, pose, betas, transl, keypoints)
    source = torch.where(write_gt, torch.full_like(batch["index"], _GROUND_TRUTH), torch.full_like(batch["index"], int(Source.IN_LOOP)))
    return pack_updates(write_fit | write_gt, source, batch["dataset"], batch["index"], score, pose, betas, transl, residuals)


def spin_losses(prediction: Prediction, batch, targets: Supervision, config) -> L.LossTerms:
    """SPIN's weighted loss over the rows with a finite prediction."""
    rows = prediction.finite
    supervised = targets.supervised & rows
    target_rotmat = axis_angle_to_matrix(targets.pose.view(-1, NUM_SMPL_JOINTS, 3))
    weights = config.loss
    terms = {
        "keypoints": L.keypoint_loss(prediction.keypoints_2d, batch["keypoints"], rows, config.fitting.crop_size,
                                     weights.openpose_weight, weights.gt_weight),  # fmt: skip
        "joints3d": L.joints3d_loss(prediction.joints, batch["joints3d"], rows & batch["has_joints3d"]),
        "pose": L.rotation_loss(prediction.rotmat, target_rotmat, supervised),
        "betas": L.betas_loss(prediction.betas, targets.betas, supervised),
        "camera": L.camera_loss(prediction.cam, rows),
    }
    return L.spin_loss(terms, weights)


def optimizer_step(run, loss: torch.Tensor) -> None:
    """Backward and step through the gradient scaler: a step whose gradients are not finite
    is skipped (the scaler's check), so one bad batch cannot poison the weights."""
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.config.optim.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.optim.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.scheduler is not None:
        run.scheduler.step()
