"""Fitting people in images from OpenPose keypoints: what ``spin-diff fit`` runs.

For every image, each person in its OpenPose BODY_25 JSON is cropped (SPIN's square box
around the confident keypoints, or a given box), initialised from the mean pose, fitted with
SMPLify in batches, and written out: parameters (npz and json; camera in crop and full-image
form), the mesh (.obj), an overlay on the image, a side view and per-joint residuals.

Bad items (unreadable image, malformed JSON, no people, too few confident joints, a failed
fit) get one message each; the rest are still processed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spin_diff.body import joints as J
from spin_diff.body.model import BodyModel
from spin_diff.fitting.smplify import SMPLify

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
BOX_PADDING = 1.2  # SPIN enlarges keypoint boxes by 20%


@dataclass
class Person:
    """One person to fit: where it came from and its crop."""

    image_path: Path
    index: int
    keypoints_image: np.ndarray  # (49, 3) full-image pixels + confidence
    center: np.ndarray  # (2,) box centre, image pixels
    box_size: float  # square box side, pixels
    image_size: tuple[int, int]  # (width, height)

    @property
    def name(self) -> str:
        return f"{self.image_path.stem}/person_{self.index:02d}"


@dataclass
class FitReport:
    """What happened to every item: fitted people and failures with reasons."""

    fitted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def find_inputs(images: Path, keypoints: Path) -> list[tuple[Path, Path | None]]:
    """Pair images with their OpenPose JSON (``<stem>_keypoints.json`` or ``<stem>.json``)."""
    if images.is_dir():
        image_paths = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        image_paths = [images]
    pairs = []
    for image in image_paths:
        if keypoints.is_dir():
            candidates = [keypoints / f"{image.stem}_keypoints.json", keypoints / f"{image.stem}.json"]
            found = next((c for c in candidates if c.is_file()), None)
        else:
            found = keypoints if keypoints.is_file() else None
        pairs.append((image, found))
    return pairs


def keypoint_box(keypoints: np.ndarray, threshold: float = 0.1) -> tuple[np.ndarray, float]:
    """SPIN-style square box around confident keypoints: (centre (2,), side)."""
    confident = keypoints[:, 2] > threshold
    points = keypoints[confident, :2]
    low, high = points.min(0), points.max(0)
    return (low + high) / 2.0, float(max(high - low) * BOX_PADDING)


def parse_bbox(text: str) -> tuple[np.ndarray, float]:
    """``x1,y1,x2,y2`` -> (centre, square side)."""
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError as err:
        raise ValueError(f"--bbox must be x1,y1,x2,y2 in pixels, got {text!r}") from err
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"--bbox {text!r} is empty (need x2 > x1 and y2 > y1)")
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2]), max(x2 - x1, y2 - y1)


def collect_people(
    pairs: list[tuple[Path, Path | None]], report: FitReport, bbox: str | None, min_joints: int
) -> list[Person]:
    """Read every image's keypoints; record a failure per bad item."""
    import cv2

    from spin_diff.data.openpose import OpenPoseFileError, openpose_to_keypoints49, read_openpose_json

    people: list[Person] = []
    for image_path, json_path in pairs:
        image = cv2.imread(str(image_path)) if image_path.is_file() else None
        if image is None:
            report.failed.append((str(image_path), "image missing or unreadable"))
            continue
        if json_path is None:
            report.failed.append((str(image_path), "no OpenPose JSON found for it"))
            continue
        try:
            detections = read_openpose_json(json_path)
        except OpenPoseFileError as err:
            report.failed.append((str(image_path), str(err)))
            continue
        height, width = image.shape[:2]
        for index, detection in enumerate(detections):
            keypoints = openpose_to_keypoints49(detection)
            confident = int((keypoints[:, 2] > 0.1).sum())
            person_name = f"{image_path.stem}/person_{index:02d}"
            if confident < min_joints:
                report.failed.append(
                    (person_name, f"too few confident joints ({confident}, need {min_joints})")
                )
                continue
            center, size = parse_bbox(bbox) if bbox else keypoint_box(keypoints)
            people.append(Person(image_path, index, keypoints, center, size, (width, height)))
    return people


def mean_initialisation(model: BodyModel, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean pose (rotation matrices) and zero betas of the body model's mean parameters."""
    device = model.fast.joint_template.device
    pose = model.mean_pose_rotmat(batch).to(device)
    betas = torch.zeros(batch, model.num_betas, device=device, dtype=pose.dtype)
    return pose, betas


def fit_people(model: BodyModel, fitter: SMPLify, people: list[Person], crop_size: int, regressor=None):
    """Fit a batch of people in their crops, from the mean pose or from ``regressor``'s
    prediction (a keypoint regressor reads the crop keypoints, an image regressor the crops).
    Returns the FitResult and crop keypoints."""
    from spin_diff.fitting.initialisation import regressor_start
    from spin_diff.geometry.cameras import image_keypoints_to_crop

    device = model.fast.joint_template.device
    keypoints = torch.tensor(np.stack([p.keypoints_image for p in people]), dtype=torch.float32)
    centers = torch.tensor(np.stack([p.center for p in people]), dtype=torch.float32)
    scales = torch.tensor([p.box_size / 200.0 for p in people], dtype=torch.float32)
    crop_xy = image_keypoints_to_crop(keypoints[..., :2], centers, scales, crop_size=crop_size)
    crop_keypoints = torch.cat([crop_xy, keypoints[..., 2:]], dim=-1).to(device)
    if regressor is None:
        pose, betas = mean_initialisation(model, len(people))
        return fitter.fit(crop_keypoints, pose, betas), crop_keypoints
    if regressor.input_kind == "image":
        from spin_diff.data.crops import load_crops

        inputs = load_crops([p.image_path for p in people], centers.numpy(), scales.numpy(), crop_size)
    else:
        inputs = crop_keypoints
    start = regressor_start(regressor, inputs, model.num_betas)
    return fitter.fit(crop_keypoints, start.rotmat, start.betas, start.transl), crop_keypoints


def write_person(
    out_dir: Path, person: Person, result, i: int, model: BodyModel, fitter: SMPLify, init: str = "mean"
) -> Path:
    """Write one person's parameters, mesh, pictures and residuals (``init``: where the fit
    started, recorded in params.json)."""
    import cv2

    from spin_diff.body.mesh_io import write_obj
    from spin_diff.geometry.cameras import crop_to_full_translation, translation_to_weak_perspective
    from spin_diff.render import render_mesh, save_png

    cfg = fitter.config
    folder = out_dir / person.image_path.stem / f"person_{person.index:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    pose, betas, transl = result.pose[i : i + 1], result.betas[i : i + 1], result.transl[i : i + 1]
    with torch.no_grad():
        vertices = model(pose, betas, check_finite=False).vertices[0].cpu().numpy()
    crop_cam = translation_to_weak_perspective(transl, cfg.focal_length, cfg.crop_size)[0]
    # The crop camera seen in the full image: focal scales with the box; principal point at
    # the box centre (exact), and the HMR2/ScoreHMR convention with it at the image centre.
    full_focal = cfg.focal_length * person.box_size / cfg.crop_size
    full_transl = crop_to_full_translation(
        crop_cam[None].cpu(),
        torch.tensor(person.center, dtype=torch.float32)[None],
        torch.tensor([person.box_size], dtype=torch.float32),
        torch.tensor(person.image_size, dtype=torch.float32)[None],
        focal_length=full_focal,
    )[0]
    params = {
        "pose": pose[0].cpu().numpy(),
        "betas": betas[0].cpu().numpy(),
        "transl_crop": transl[0].cpu().numpy(),
        "cam_crop": crop_cam.cpu().numpy(),
        "focal_length_crop": np.float32(cfg.focal_length),
        "crop_size": np.int32(cfg.crop_size),
        "box_center": person.center.astype(np.float32),
        "box_size": np.float32(person.box_size),
        "transl_full": full_transl.numpy(),
        "focal_length_full": np.float32(full_focal),
        "image_size": np.array(person.image_size, np.int32),
        "score": np.float32(result.score[i].cpu()),
        "success": np.bool_(result.success[i].cpu()),
    }
    np.savez(folder / "params.npz", **params)
    as_json = {k: (v.tolist() if isinstance(v, np.ndarray) else v.item()) for k, v in params.items()}
    as_json["failure"] = result.failure[i]
    as_json["init"] = init
    as_json["camera_note"] = (
        "transl_crop: crop camera (focal_length_crop, principal point at the crop centre); "
        "transl_full: full-image camera (focal_length_full, principal point at the image centre)"
    )
    (folder / "params.json").write_text(json.dumps(as_json, indent=1))
    write_obj(folder / "mesh.obj", vertices + transl[0].cpu().numpy(), model.faces)

    image = cv2.cvtColor(cv2.imread(str(person.image_path)), cv2.COLOR_BGR2RGB)
    overlay = render_mesh(
        vertices,
        model.faces,
        translation=transl[0].cpu().numpy(),
        focal_length=full_focal,
        camera_center=tuple(person.center),
        image=image,
        alpha=0.8,
    ).image
    save_png(folder / "overlay.png", overlay)
    save_png(folder / "side.png", _side_view(vertices, model.faces, size=min(512, max(256, image.shape[0]))))

    residuals = {
        name: {"residual_px_crop": float(r), "confidence": float(c)}
        for name, r, c in zip(
            J.JOINT_NAMES, result.joint_residuals[i].cpu().tolist(), person.keypoints_image[:, 2].tolist()
        )
    }
    (folder / "residuals.json").write_text(json.dumps(residuals, indent=1))
    return folder


def _side_view(vertices: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """The fitted mesh (camera orientation) turned 90 degrees about the image's vertical axis."""
    from spin_diff.render import look_at_translation, render_mesh

    angle = np.pi / 2
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    translation = look_at_translation(vertices, rotation, 5000.0, (size, size), fill=0.85)
    return render_mesh(vertices, faces, rotation=rotation, translation=translation, image_size=(size, size)).image


def fit_images(
    images: Path,
    keypoints: Path,
    out_dir: Path,
    model: BodyModel,
    fitter: SMPLify,
    *,
    bbox: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
    regressor=None,
    init: str = "mean",
) -> FitReport:
    """Fit every person in ``images`` (file or folder) and write results under ``out_dir``.

    ``regressor`` (a loaded :class:`~spin_diff.models.hmr.Regressor`, see
    :func:`spin_diff.fitting.initialisation.resolve_init`) starts the fits instead of the mean
    pose; ``init`` is what params.json records as the start."""
    from tqdm import tqdm

    report = FitReport()
    pairs = find_inputs(images, keypoints)
    if not pairs:
        report.failed.append((str(images), f"no images ({', '.join(IMAGE_SUFFIXES)}) found"))
        return report
    people = collect_people(pairs, report, bbox, fitter.config.min_confident_joints)
    crop_size = fitter.config.crop_size
    bar = tqdm(total=len(people), unit="person", disable=not progress, desc="fitting")
    for start in range(0, len(people), batch_size):
        batch = people[start : start + batch_size]
        result, _ = fit_people(model, fitter, batch, crop_size, regressor)
        for i, person in enumerate(batch):
            if not bool(result.success[i]):
                report.failed.append((person.name, result.failure[i] or "fit failed"))
            write_person(out_dir, person, result, i, model, fitter, init)
            if bool(result.success[i]):
                report.fitted.append(person.name)
        bar.update(len(batch))
    bar.close()
    return report
