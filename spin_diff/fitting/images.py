"""Fitting people in photos from their keypoints, in memory: crops, cameras, starts, fits.

This is the library half of ``spin-diff fit``; reading images and OpenPose files and writing
results is :mod:`spin_diff.apps.fit_photos`. From Python::

    fitter = SMPLify(model, config.fitting)  # spin_diff.fitting.smplify
    fit = fit_keypoints(model, fitter, keypoints, centers, sizes, image_sizes)  # -> ImageFit

Each person is fitted in its square box (SPIN's box around the confident keypoints padded by
20%, :func:`keypoint_box`, or a given one); :func:`crop_problem` refuses a degenerate crop
(a box of a few pixels, a box or keypoints outside the image). Several starts per person
(``fitting.start_hypotheses``) are fitted together and the best kept
(:class:`~spin_diff.fitting.multi_start.MultiStart`).

The camera (``fitting.camera``): "crop" fits in SPIN's crop camera (focal 5000 px on the
224 crop: nearly orthographic, about 45 m away); "full" fits in the photo's own camera
(focal from the image size or given, principal point at the image centre), expressed in crop
pixels as the equivalent pinhole (focal scaled by 224 / box, principal point moved with the
box) so that every pixel-valued setting keeps its meaning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spin_diff.body.measures import torso_lean
from spin_diff.body.model import BodyModel
from spin_diff.constants import NUM_POSE, NUM_SMPL_JOINTS
from spin_diff.data.crops import load_crops
from spin_diff.errors import BadInputError
from spin_diff.fitting.base import FitProgress, FitResult, Fitter, FittingMethod
from spin_diff.fitting.initialisation import regressor_start
from spin_diff.fitting.multi_start import MultiStart
from spin_diff.geometry.cameras import (
    crop_to_full_translation,
    estimate_translation,
    image_keypoints_to_crop,
    perspective_projection,
    translation_to_weak_perspective,
)
from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.utils.seeds import seed_from_text

BOX_PADDING = 1.2  # SPIN enlarges keypoint boxes by 20%
MIN_BOX_PX = 8.0  # a person box smaller than this (image pixels) cannot be fitted
KEYPOINT_MARGIN = 0.02  # confident keypoints may lie this fraction of the image outside it


@dataclass
class Box:
    """A square person box in image pixels and where it came from."""

    center: np.ndarray  # (2,)
    size: float
    source: str  # "keypoints", "x1,y1,x2,y2" or "SPIN bbox JSON [x, y, w, h] (path)"


@dataclass
class Person:
    """One person to fit: its keypoints, its crop, and where it came from."""

    name: str  # "<image name>/person_<index>": names its outputs and keys its noise
    keypoints_image: np.ndarray  # (49, 3) full-image pixels + confidence
    center: np.ndarray  # (2,) box centre, image pixels
    box_size: float  # square box side, pixels
    image_size: tuple[int, int]  # (width, height)
    box_source: str = "keypoints"
    image_path: Path | None = None  # the photo, for a regressor that reads image crops
    flags: list[str] = field(default_factory=list)  # reasons to trust it less (a detector's: small, cut off)


def keypoint_box(keypoints: np.ndarray, threshold: float = 0.1) -> tuple[np.ndarray, float]:
    """SPIN-style square box around confident keypoints (padded by 20%): (centre (2,), side)."""
    confident = keypoints[:, 2] > threshold
    points = keypoints[confident, :2]
    low, high = points.min(0), points.max(0)
    return (low + high) / 2.0, float(max(high - low) * BOX_PADDING)


def crop_problem(
    keypoints: np.ndarray, box: Box, image_size: tuple[int, int], threshold: float
) -> str | None:
    """Why a person's crop cannot be fitted (None: it can): a box of a few pixels, a box or
    confident keypoints outside the image (often an image paired with the wrong JSON)."""
    width, height = image_size
    if not np.all(np.isfinite(box.center)) or not math.isfinite(box.size) or box.size < MIN_BOX_PX:
        return f"person box of {box.size:.1f} px is degenerate (need at least {MIN_BOX_PX:g} px)"
    half = box.size / 2
    (cx, cy) = box.center
    if cx + half <= 0 or cy + half <= 0 or cx - half >= width or cy - half >= height:
        return f"person box (centre {cx:.0f},{cy:.0f}, side {box.size:.0f}) lies outside the {width}x{height} image"
    confident = keypoints[:, 2] > threshold
    margin = KEYPOINT_MARGIN * max(width, height)
    x, y = keypoints[confident, 0], keypoints[confident, 1]
    outside = (x < -margin) | (y < -margin) | (x > width + margin) | (y > height + margin)
    if outside.any():
        return (
            f"{int(outside.sum())} of {int(confident.sum())} confident keypoints lie outside the "
            f"{width}x{height} image: is the JSON from this image (and its resolution)?"
        )
    return None


def mean_initialisation(model: BodyModel, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean pose (rotation matrices) and zero betas of the body model's mean parameters."""
    device = model.fast.joint_template.device
    pose = model.mean_pose_rotmat(batch).to(device)
    betas = torch.zeros(batch, model.num_betas, device=device, dtype=pose.dtype)
    return pose, betas


def full_focal_length(image_size: torch.Tensor, focal: float | None = None) -> torch.Tensor:
    """(B,) focal length of a photo's camera in pixels: ``focal`` if given, else the image
    diagonal (about a 53-degree diagonal field of view; CLIFF's assumption)."""
    if focal is not None:
        return torch.full(image_size.shape[:1], float(focal), dtype=image_size.dtype)
    return image_size.norm(dim=-1)


@dataclass
class ImageFit:
    """A batch fitted in its crops, with both cameras. B = batch size."""

    result: FitResult
    crop_keypoints: torch.Tensor  # (B, 49, 3) crop pixels + confidence
    crop_center: torch.Tensor  # (B, 2) principal point the fit used, crop pixels
    crop_focal: torch.Tensor  # (B,) focal length the fit used, crop pixels
    transl_full: torch.Tensor  # (B, 3) translation for the full-image camera
    focal_full: torch.Tensor  # (B,) full-image camera focal, image pixels (principal point: image centre)
    joints_full: torch.Tensor  # (B, 49, 3) fitted joints in the full-image camera frame
    joints_fit: torch.Tensor  # (B, 49, 3) fitted joints in the camera frame the fit used
    initial_residuals: torch.Tensor  # (B, 49) crop-pixel residuals at the start
    camera: str
    initial_lean: dict[str, torch.Tensor] | None = None  # the start's torso lean (torso_lean), degrees


def fit_keypoints(
    model: BodyModel,
    fitter: Fitter,
    keypoints_image: torch.Tensor,
    centers: torch.Tensor,
    box_sizes: torch.Tensor,
    image_sizes: torch.Tensor,
    *,
    camera: str = "crop",
    focal: float | None = None,
    init_pose: torch.Tensor | None = None,
    init_betas: torch.Tensor | None = None,
    init_transl: torch.Tensor | None = None,
    sample_seeds: torch.Tensor | None = None,
    condition: torch.Tensor | None = None,
) -> ImageFit:
    """Fit people given in full-image pixels, each in its square box.

    Args:
        keypoints_image: (B, 49, 3) image pixels + confidence.
        centers: (B, 2) box centres; box_sizes: (B,) box sides; image_sizes: (B, 2) (width, height).
        camera: "crop" (SPIN's crop camera) or "full" (the photo's camera, focal ``focal``
            or the image diagonal, principal point at the image centre).
        init_pose: (B, 24, 3, 3) rotation matrices or (B, 72) axis-angle; None: the mean pose.
        init_betas: (B, S); None: zeros.
        init_transl: (B, 3) crop-camera translation of the start (a regressor's camera);
            None: SMPLify estimates it from the keypoints.
        sample_seeds: (B,) int64 per-person seeds of the fit's stochastic terms (every start
            hypothesis of a person shares its seed); None: SMPLify's default.
        condition: (B, F) the regressor's features for a feature-conditioned diffusion prior;
            None: unconditioned.
    """
    cfg = fitter.config
    crop = float(cfg.crop_size)
    batch = keypoints_image.shape[0]
    device, dtype = model.fast.joint_template.device, model.fast.joint_template.dtype
    keypoints_image, centers = keypoints_image.float(), centers.float()
    box_sizes, image_sizes = box_sizes.float(), image_sizes.float()
    crop_xy = image_keypoints_to_crop(keypoints_image[..., :2], centers, box_sizes / 200.0, crop_size=crop)
    crop_keypoints = torch.cat([crop_xy, keypoints_image[..., 2:]], dim=-1)
    if camera == "full":
        focal_full = full_focal_length(image_sizes, focal)
        crop_focal = focal_full * crop / box_sizes
        crop_center = (image_sizes / 2 - centers) * (crop / box_sizes)[:, None] + crop / 2
    elif camera == "crop":
        crop_focal = torch.full((batch,), float(cfg.focal_length))
        crop_center = torch.full((batch, 2), crop / 2)
        focal_full = crop_focal * box_sizes / crop  # the crop camera seen in the full image
    else:
        raise BadInputError(f"camera must be 'crop' or 'full', got {camera!r}")
    if init_pose is None or init_betas is None:
        mean_pose, zero_betas = mean_initialisation(model, batch)
        init_pose = mean_pose if init_pose is None else init_pose
        init_betas = zero_betas if init_betas is None else init_betas
    to = {"device": device, "dtype": dtype}
    crop_keypoints, crop_center, crop_focal = (
        crop_keypoints.to(**to),
        crop_center.to(**to),
        crop_focal.to(**to),
    )
    init_pose, init_betas = init_pose.to(**to), init_betas.to(**to)
    if init_pose.shape[-1] == NUM_POSE:
        init_pose = axis_angle_to_matrix(init_pose.reshape(batch, NUM_SMPL_JOINTS, 3))
    if init_transl is not None:
        init_transl = init_transl.float().cpu()
        if camera == "full":  # the regressor's crop camera seen by the photo's camera
            cam = translation_to_weak_perspective(init_transl, cfg.focal_length, cfg.crop_size)
            init_transl = crop_to_full_translation(
                cam, centers, box_sizes, image_sizes, focal_length=focal_full
            )
        init_transl = init_transl.to(**to)
    result = MultiStart(fitter).fit(
        crop_keypoints, init_pose, init_betas, init_transl, camera_center=crop_center, focal_length=crop_focal,
        sample_seeds=None if sample_seeds is None else sample_seeds.to(device),
        condition=None if condition is None else condition.to(**to),
    )  # fmt: skip

    with torch.no_grad():
        joints = model.joints(result.pose, result.betas, check_finite=False).joints
        joints_fit = joints + result.transl[:, None]
        start = model.joints(init_pose.to(**to), init_betas.to(**to), check_finite=False).joints
        finite = torch.isfinite(crop_keypoints).all(-1).all(-1)
        safe = torch.where(finite[:, None, None], crop_keypoints, torch.zeros_like(crop_keypoints))
        start_transl = estimate_translation(
            start,
            safe[..., :2],
            safe[..., 2].clamp_min(0),
            focal_length=crop_focal,
            camera_center=crop_center,
        )
        start_px = perspective_projection(start, start_transl, crop_focal, crop_center)
        initial_residuals = (start_px - safe[..., :2]).norm(dim=-1)
        initial_lean = {k: v.cpu().float() for k, v in torso_lean(start).items()}  # rotation only: no camera needed
    transl = result.transl.cpu().float()
    if camera == "full":
        transl_full = transl
    else:
        cam_crop = translation_to_weak_perspective(transl, cfg.focal_length, cfg.crop_size)
        transl_full = crop_to_full_translation(
            cam_crop, centers, box_sizes, image_sizes, focal_length=focal_full
        )
    joints_full = joints.cpu().float() + transl_full[:, None]
    return ImageFit(
        result, crop_keypoints, crop_center, crop_focal, transl_full, focal_full, joints_full,
        joints_fit.cpu().float(), initial_residuals, camera, initial_lean,
    )  # fmt: skip


def fit_people(
    model: BodyModel,
    fitter: Fitter,
    people: list[Person],
    *,
    camera: str | None = None,
    focal: float | None = None,
    init_pose: torch.Tensor | None = None,
    init_betas: torch.Tensor | None = None,
    regressor=None,
) -> ImageFit:
    """Fit a batch of people in their crops from ``init_pose`` (rotation matrices (B, 24, 3, 3)
    or axis-angle (B, 72)) and ``init_betas`` (B, S), or from ``regressor``'s prediction (a
    keypoint regressor reads the crop keypoints, an image regressor the crops); None: the
    mean pose and zero betas."""
    cfg = fitter.config
    keypoints = torch.tensor(np.stack([p.keypoints_image for p in people]), dtype=torch.float32)
    centers = torch.tensor(np.stack([p.center for p in people]), dtype=torch.float32)
    sizes = torch.tensor([p.box_size for p in people], dtype=torch.float32)
    init_transl = features = None
    if regressor is not None:
        if regressor.input_kind == "image":
            inputs = load_crops(
                [p.image_path for p in people], centers.numpy(), (sizes / 200.0).numpy(), cfg.crop_size
            )
        else:
            crop_xy = image_keypoints_to_crop(
                keypoints[..., :2], centers, sizes / 200.0, crop_size=cfg.crop_size
            )
            inputs = torch.cat([crop_xy, keypoints[..., 2:]], dim=-1).to(model.fast.joint_template.device)
        start = regressor_start(regressor, inputs, model.num_betas)
        init_pose, init_betas, init_transl, features = start.rotmat, start.betas, start.transl, start.features
    return fit_keypoints(
        model, fitter, keypoints, centers, sizes,
        torch.tensor([p.image_size for p in people], dtype=torch.float32),
        camera=camera or cfg.camera,
        focal=focal if focal is not None else cfg.full_focal_length,
        init_pose=init_pose, init_betas=init_betas, init_transl=init_transl,
        # each person's noise is keyed by its image and index: the same fit in any batch
        sample_seeds=torch.tensor([seed_from_text(p.name) for p in people], dtype=torch.int64),
        condition=features,
    )  # fmt: skip


class StartOnly:
    """A fitter that returns its start, judged as a fit is: with a regressor's start, the
    regressor's bodies (``spin-diff fit --no-optimise``), in a fraction of a fit's time.

    ``method`` (e.g. :class:`~spin_diff.fitting.smplify.SMPLify`) prepares the problem (its
    camera, its confidences) and scores the start; its stages do not run."""

    def __init__(self, method: FittingMethod) -> None:
        self.method = method

    def __getattr__(self, name: str):
        return getattr(self.method, name)

    def fit(
        self, keypoints, init_pose, init_betas, init_transl=None, camera_center=None, focal_length=None,
        *, sample_seeds=None, condition=None,
    ) -> FitResult:  # fmt: skip
        problem = self.method.prepare(
            keypoints, init_pose, init_betas, init_transl, camera_center, focal_length,
            sample_seeds=sample_seeds, condition=condition,
        )  # fmt: skip
        return self.method.assemble(problem, FitProgress.start_of(problem))
