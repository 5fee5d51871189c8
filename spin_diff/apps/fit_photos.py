"""``spin-diff fit`` on files: pair photos with OpenPose JSON (or detect their people), fit every
person, write results.

The fitting itself is :mod:`spin_diff.fitting.images` (people in memory -> fits); this module
reads the inputs and writes the outputs.

Pairing (:func:`find_inputs`): an image ``x.jpg`` takes ``x_keypoints.json`` (OpenPose),
``x_openpose.json`` (SPIN's examples) or ``x.json`` from a keypoint folder; one JSON file
serves exactly one image; images sharing a stem (``x.jpg``, ``x.png``) get output folders
named by their whole file name; JSON files no image claims are reported. SPIN's
``x_bbox.json`` (``{"bbox": [x, y, w, h]}``) next to the image, or in the keypoint folder, is
that image's person box, as ``--bbox`` is for one image (which it overrides).

Without a keypoint file (``keypoints`` None) every image goes to the detector
(:mod:`spin_diff.detect`), whose people are written as ``--out/keypoints/<name>_keypoints.json``
(OpenPose's format, so a rerun with ``--keypoints --out/keypoints`` reads them back) and
then treated as OpenPose's; an image with nobody in it is a note, not a failure, and each
person carries the detector's flags (small, cut off) into ``params.json`` and ``summary.json``.

For every image, each person in its OpenPose BODY_25 JSON is cropped (SPIN's square box
around the confident keypoints, or ``--bbox``), refused when the crop is degenerate, fitted
in batches from a given start (the mean pose by default), judged
(``spin_diff.fitting.quality``) and written: parameters with the 49 joints (npz and json;
crop and full-image cameras), the mesh (.obj), an overlay on the image, a side view and
per-joint residuals. ``summary.json`` lists every item with its outcome. JSON never holds
NaN or Infinity (they become null).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from spin_diff.body import joints as J
from spin_diff.body.measures import torso_lean
from spin_diff.body.mesh_io import write_obj
from spin_diff.body.model import BodyModel
from spin_diff.constants import FOCAL_LENGTH
from spin_diff.data.openpose import (
    OpenPoseFileError,
    keypoints49_to_openpose,
    openpose_to_keypoints49,
    read_openpose_people,
    select_person,
    write_openpose_json,
)
from spin_diff.detect.people import detect_people
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.fitting.images import Box, ImageFit, Person, crop_problem, fit_people, keypoint_box
from spin_diff.fitting.quality import assess_fits, confident_residual
from spin_diff.fitting.smplify import SMPLify, gmm_prior_for
from spin_diff.geometry.cameras import (
    full_to_crop_translation,
    translation_to_weak_perspective,
    weak_perspective_to_translation,
)
from spin_diff.render import look_at_translation, render_mesh, save_png
from spin_diff.utils.jsonio import write_json
from spin_diff.utils.outputs import prepare_output

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
KEYPOINT_SUFFIXES = ("_keypoints.json", "_openpose.json", ".json")  # searched in this order
BBOX_SUFFIX = "_bbox.json"  # SPIN's person box beside an image (examples/im1010_bbox.json)
KEYPOINT_FOLDER = "keypoints"  # detected keypoints go to --out/keypoints/<stem>_keypoints.json
OVERLAY_MAX_SIDE = 1600  # overlays of larger images are written downscaled to this side


@dataclass
class ImageInput:
    """One image, its keypoint file (None: not found), its output folder name and SPIN's
    ``<stem>_bbox.json`` beside it (None: none)."""

    image: Path
    keypoints: Path | None
    name: str
    bbox: Path | None = None


@dataclass
class FitReport:
    """What happened to every item: fitted people, failures with reasons, notes."""

    fitted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


# ----------------------------------------------------------------------------------------
# Inputs


def find_inputs(images: Path, keypoints: Path | None) -> tuple[list[ImageInput], list[Path]]:
    """Pair images with their OpenPose JSON (``keypoints`` None: none, the people are to be
    detected). Returns (pairs, JSON files no image claims).

    Raises:
        BadInputError: one JSON file given for a folder of several images.
    """
    if images.is_dir():
        image_paths = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        image_paths = [images]
    if keypoints is not None and keypoints.is_file() and len(image_paths) > 1:
        raise BadInputError(
            f"--keypoints {keypoints} is one JSON file but {images} holds {len(image_paths)} images: "
            "pass a folder with <image stem>_keypoints.json per image, or one image"
        )
    stems = [p.stem for p in image_paths]
    pairs, claimed = [], set()
    for image in image_paths:
        name = image.stem if stems.count(image.stem) == 1 else image.name
        found = None
        if keypoints is not None and keypoints.is_dir():
            candidates = [keypoints / f"{image.stem}{suffix}" for suffix in KEYPOINT_SUFFIXES]
            found = next((c for c in candidates if c.is_file()), None)
        elif keypoints is not None and keypoints.is_file():
            found = keypoints
        if found is not None:
            claimed.add(found.resolve())
        pairs.append(ImageInput(image, found, name, _bbox_file(image, keypoints)))
    orphans = []
    if keypoints is not None and keypoints.is_dir() and images.is_dir():
        for path in sorted(keypoints.glob("*.json")):
            if path.resolve() not in claimed and not path.name.endswith("_bbox.json"):
                orphans.append(path)
    return pairs, orphans


def _bbox_file(image: Path, keypoints: Path | None) -> Path | None:
    """SPIN's ``<stem>_bbox.json`` for ``image``: beside it, else in the keypoint folder."""
    folders = [image.parent] + ([keypoints] if keypoints is not None and keypoints.is_dir() else [])
    candidates = [folder / f"{image.stem}{BBOX_SUFFIX}" for folder in folders]
    return next((path for path in candidates if path.is_file()), None)


def read_bbox_json(path: Path, what: str = "--bbox") -> Box:
    """SPIN's bbox JSON ``{"bbox": [x, y, w, h]}`` (top-left corner, width, height) as a square
    box on its longer side, unpadded, as SPIN's demo does. ``what`` names the input in errors."""
    try:
        content = json.loads(path.read_text())
        x, y, w, h = (float(v) for v in content["bbox"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise BadInputError(
            f'{what} {path}: expected SPIN\'s bbox JSON {{"bbox": [x, y, width, height]}} ({err!r})'
        ) from err
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise BadInputError(
            f"{what} {path}: [x, y, w, h] = {[x, y, w, h]} is not a box (need finite, w, h > 0)"
        )
    return Box(np.array([x + w / 2, y + h / 2]), max(w, h), f"SPIN bbox JSON [x, y, w, h] ({path})")


def parse_bbox(text: str) -> Box:
    """``--bbox``: ``x1,y1,x2,y2`` in pixels, or SPIN's bbox JSON file (``{"bbox": [x, y, w, h]}``,
    top-left corner, width, height). The box is made square on its longer side, unpadded, as
    SPIN's demo does."""
    path = Path(text)
    if path.suffix.lower() == ".json" or path.is_file():
        if not path.is_file():
            raise MissingInputError(f"--bbox file not found: {path}")
        return read_bbox_json(path)
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError as err:
        raise BadInputError(
            f"--bbox must be x1,y1,x2,y2 in pixels or SPIN's bbox JSON file, got {text!r}"
        ) from err
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise BadInputError(f"--bbox {text!r} is empty (need finite x2 > x1 and y2 > y1)")
    return Box(np.array([(x1 + x2) / 2, (y1 + y2) / 2]), max(x2 - x1, y2 - y1), "x1,y1,x2,y2")


def collect_people(
    pairs: list[ImageInput],
    report: FitReport,
    bbox: Box | None,
    min_joints: int,
    threshold: float = 0.1,
    detector=None,
    keypoint_dir: Path | None = None,
) -> list[Person]:
    """Read every image's keypoints, or detect them; record a failure per bad item (image,
    file or person).

    ``bbox`` (``--bbox``) boxes every image; otherwise an image's ``<stem>_bbox.json``, if any.
    An image without a keypoint file is given to ``detector`` (a
    :class:`~spin_diff.detect.BlazePose`; None: such an image fails), and what it finds is
    written to ``keypoint_dir/<name>_keypoints.json`` (OpenPose's format, to edit and pass back
    with ``--keypoints``). An image where nobody is found is a note, not a failure."""
    people: list[Person] = []
    given = bbox
    for pair in pairs:
        bbox, via = given, "--bbox"
        if given is None and pair.bbox is not None:
            try:
                bbox, via = read_bbox_json(pair.bbox, "bbox file"), pair.bbox.name
            except BadInputError as err:
                report.failed.append((str(pair.image), str(err)))
                continue
            report.notes.append(f"{pair.name}: person box from {pair.bbox}")
        image = cv2.imread(str(pair.image)) if pair.image.is_file() else None
        if image is None:
            why = "not found" if not pair.image.exists() else "not an image cv2 can read, or damaged"
            report.failed.append((str(pair.image), f"image missing or unreadable ({why})"))
            continue
        flags: list[list[str]] = []
        if pair.keypoints is None and detector is not None:
            found = detect_people(detector, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            written = write_openpose_json(keypoint_dir / f"{pair.name}_keypoints.json", found.keypoints)
            detections, unusable, flags = keypoints49_to_openpose(found.keypoints), {}, found.flags
            if len(found) == 0:
                report.notes.append(f"{pair.name}: no person found by the detector (nothing to fit)")
                report.summary.append({"item": pair.name, "people": 0, "note": "no person found"})
                continue
            report.notes.append(f"{pair.name}: {len(found)} people detected, keypoints in {written}")
        elif pair.keypoints is None:
            missing = (
                "no OpenPose JSON found for it (<stem>_keypoints.json, <stem>_openpose.json or <stem>.json)"
            )
            report.failed.append((str(pair.image), missing))
            continue
        else:
            try:
                detections, unusable = read_openpose_people(pair.keypoints)
            except OpenPoseFileError as err:
                report.failed.append((str(pair.image), str(err)))
                continue
            if len(detections) == 0:
                report.failed.append((str(pair.image), f"no people in {pair.keypoints}"))
                continue
        height, width = image.shape[:2]
        chosen = range(len(detections))
        if bbox is not None and len(detections) > 1:
            x0, y0 = bbox.center - bbox.size / 2
            x1, y1 = bbox.center + bbox.size / 2
            best = select_person(np.nan_to_num(detections), box=np.array([x0, y0, x1, y1]))
            chosen = [best]
            report.notes.append(
                f"{pair.name}: {via} selects person {best} of {len(detections)} "
                "(most confident joints in the box)"
            )
        for index in chosen:
            keypoints = openpose_to_keypoints49(detections[index])
            person_name = f"{pair.name}/person_{index:02d}"
            if index in unusable:  # refused alone: the image's other people are still fitted
                report.failed.append((person_name, unusable[index]))
                continue
            person_flags = flags[index] if flags else []
            for flag in person_flags:
                report.notes.append(f"{person_name}: {flag}")
            confident = int((keypoints[:, 2] > threshold).sum())
            if confident < min_joints:
                report.failed.append(
                    (person_name, f"too few confident joints ({confident}, need {min_joints})")
                )
                continue
            box = bbox if bbox is not None else Box(*keypoint_box(keypoints, threshold), "keypoints")
            problem = crop_problem(keypoints, box, (width, height), threshold)
            if problem is not None:
                report.failed.append((person_name, f"refused: {problem}"))
                continue
            people.append(
                Person(
                    person_name, keypoints, box.center, box.size, (width, height), box.source, pair.image,
                    flags=person_flags,
                )
            )  # fmt: skip
    return people


# ----------------------------------------------------------------------------------------
# Outputs


def write_person(
    out_dir: Path,
    person: Person,
    fit: ImageFit,
    i: int,
    model: BodyModel,
    fitter: SMPLify,
    quality,
    *,
    mesh_frame: str = "fit",
    extra: dict | None = None,
) -> Path:
    """Write one person's parameters, joints, mesh, pictures and residuals."""
    cfg = fitter.config
    result = fit.result
    folder = out_dir / person.name
    folder.mkdir(parents=True, exist_ok=True)
    pose, betas = result.pose[i : i + 1], result.betas[i : i + 1]
    with torch.no_grad():
        vertices = model(pose, betas, check_finite=False).vertices[0].cpu().numpy()
    image_size = torch.tensor(person.image_size, dtype=torch.float32)[None]
    center = torch.tensor(person.center, dtype=torch.float32)[None]
    box = torch.tensor([person.box_size], dtype=torch.float32)
    transl_full = fit.transl_full[i : i + 1]
    if fit.camera == "crop":
        transl_crop = result.transl[i : i + 1].cpu().float()
        cam_crop = translation_to_weak_perspective(transl_crop, cfg.focal_length, cfg.crop_size)
    else:  # the crop camera closest to the photo's: same box size and place of the root
        cam_crop = full_to_crop_translation(transl_full, center, box, image_size, fit.focal_full[i : i + 1])
        transl_crop = weak_perspective_to_translation(cam_crop, cfg.focal_length, cfg.crop_size)
    lean = {k: float(v[0]) for k, v in torso_lean(fit.joints_full[i : i + 1]).items()}
    success, failure = bool(quality.success[i]), quality.failure[i]
    if mesh_frame == "fit":
        mesh_frame = fit.camera
    offset = {"crop": transl_crop[0].numpy(), "full": transl_full[0].numpy(), "body": np.zeros(3, np.float32)}[mesh_frame]
    params = {
        # smplx's names: smplx.SMPL(global_orient=, body_pose=, betas=, transl=) gives mesh.obj
        "global_orient": pose[0, :3].cpu().numpy(),
        "body_pose": pose[0, 3:].cpu().numpy(),
        "transl": np.asarray(offset, np.float32),
        "transl_frame": mesh_frame,
        "pose": pose[0].cpu().numpy(),
        "betas": betas[0].cpu().numpy(),
        "camera": fit.camera,
        "transl_crop": transl_crop[0].numpy(),
        "cam_crop": cam_crop[0].numpy(),
        "focal_length_crop": np.float32(cfg.focal_length),
        "crop_size": np.int32(cfg.crop_size),
        "box_center": person.center.astype(np.float32),
        "box_size": np.float32(person.box_size),
        "box_source": person.box_source,
        "transl_full": transl_full[0].numpy(),
        "focal_length_full": np.float32(fit.focal_full[i]),
        "image_size": np.array(person.image_size, np.int32),
        "joints3d_full": fit.joints_full[i].numpy(),
        "joints3d_crop": (fit.joints_full[i] - transl_full[0] + transl_crop[0]).numpy(),
        "score": np.float32(result.score[i].cpu()),
        "residual_px": np.float32(quality.residual_px[i].cpu()),
        "initial_residual_px": np.float32(extra["initial_residual_px"]) if extra else np.float32("nan"),
        "pose_prior": np.float32(quality.pose_prior[i].cpu()),
        "torso_lean_deg": np.float32(lean["total"]),
        "success": np.bool_(success),
        "failure": failure or "",
    }
    np.savez(folder / "params.npz", **params)
    as_json = dict(params)
    as_json["failure"] = failure
    as_json["joint_names"] = list(J.JOINT_NAMES)
    as_json["torso_lean_deg"] = lean
    as_json["start_hypothesis"] = result.hypothesis[i] if result.hypothesis else "given"
    as_json.update(extra or {})
    as_json["notes"] = {
        "global_orient": "smplx naming: with body_pose, betas and transl, smplx.SMPL gives mesh.obj's vertices",
        "transl": "translation of mesh.obj's frame (transl_frame: crop, full or body)",
        "pose": "global_orient and body_pose as one 72-vector (SPIN's layout)",
        "transl_crop": "crop camera (focal_length_crop, principal point at the crop centre)",
        "transl_full": "full-image camera (focal_length_full, principal point at the image centre)",
        "joints3d_full": "the 49 SPIN joints (joint_names) in the full-image camera frame, metres",
        "joints3d_crop": "the same joints in the crop camera frame",
        "residual_px": "mean distance in 224-crop pixels between confident keypoints and fitted joints",
        "torso_lean_deg": "hips-to-shoulders angle to the camera's upright; depth > 0: leaning away",
        "initial_torso_lean_deg": "the same for the start (the regressor's prediction or the mean pose)",
        "initial_residual_px": "residual_px of the start, with its least-squares crop camera",
        "camera": "the camera the fit was made in (crop: SPIN's; full: the photo's)",
        "start_hypothesis": "the start the kept fit came from: given (init), or a fitting.start_hypotheses name",
    }
    write_json(folder / "params.json", as_json)
    write_obj(folder / "mesh.obj", vertices + offset, model.faces)

    image = cv2.cvtColor(cv2.imread(str(person.image_path)), cv2.COLOR_BGR2RGB)
    save_png(folder / "overlay.png", render_overlay(image, vertices, model.faces, person, fit, i))
    save_png(folder / "side.png", _side_view(vertices, model.faces, size=512))
    residuals = {
        name: {"residual_px_crop": r, "confidence": c}
        for name, r, c in zip(
            J.JOINT_NAMES, result.joint_residuals[i].cpu().tolist(), person.keypoints_image[:, 2].tolist()
        )
    }
    write_json(folder / "residuals.json", residuals)
    return folder


def render_overlay(
    image: np.ndarray, vertices: np.ndarray, faces, person: Person, fit: ImageFit, i: int
) -> np.ndarray:
    """The fitted mesh over the image, in the camera the fit used, the image downscaled so
    that its longer side is at most OVERLAY_MAX_SIDE."""
    height, width = image.shape[:2]
    factor = min(1.0, OVERLAY_MAX_SIDE / max(height, width))
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if fit.camera == "full":
        focal, center = float(fit.focal_full[i]), (width / 2.0, height / 2.0)
        translation = fit.transl_full[i].numpy()
    else:  # the crop camera is exact in the box: principal point at the box centre
        focal, center = float(fit.focal_full[i]), tuple(person.center)
        translation = fit.result.transl[i].cpu().numpy()
    return render_mesh(
        vertices, faces, translation=translation, focal_length=focal * factor,
        camera_center=(center[0] * factor, center[1] * factor), image=image, alpha=0.8,
    ).image  # fmt: skip


def _side_view(vertices: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """The fitted mesh (camera orientation) turned 90 degrees about the image's vertical axis."""
    angle = np.pi / 2
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    translation = look_at_translation(vertices, rotation, FOCAL_LENGTH, (size, size), fill=0.85)
    return render_mesh(
        vertices, faces, rotation=rotation, translation=translation, image_size=(size, size)
    ).image


def _quality_gmm(model: BodyModel, cfg):
    """The GMM pose prior for judging fits when the recipe itself does not use one."""
    try:
        return gmm_prior_for(cfg, model)
    except FileNotFoundError:
        log.warning("no gmm_08.pkl beside the body model: fits are not checked against the pose prior")
        return None


def fit_images(
    images: Path,
    keypoints: Path | None,
    out_dir: Path,
    model: BodyModel,
    fitter: SMPLify,
    *,
    bbox: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
    overwrite: bool = False,
    mesh_frame: str = "fit",
    init_pose: torch.Tensor | None = None,
    init_betas: torch.Tensor | None = None,
    regressor=None,
    detector=None,
    run_info: dict | None = None,
) -> FitReport:
    """Fit every person in ``images`` (file or folder) and write results under ``out_dir``.

    ``keypoints``: OpenPose JSON (a file, or a folder of ``<stem>_keypoints.json``); None:
    ``detector`` (a :class:`~spin_diff.detect.BlazePose`) finds everyone in each image, its
    keypoints written to ``out_dir/keypoints/<stem>_keypoints.json``.
    ``init_pose`` (24, 3, 3) rotation matrices and ``init_betas`` (S,) start every person;
    None: the mean pose and zero betas; ``regressor`` (a loaded
    :class:`~spin_diff.models.hmr.Regressor`, see
    :func:`spin_diff.fitting.initialisation.resolve_init`) starts them from its prediction
    instead. ``run_info`` (e.g. the recipe) is recorded in every
    params.json. Raises BadInputError for inputs that cannot be paired or an unusable --out.
    """
    report = FitReport()
    box = parse_bbox(bbox) if bbox else None
    if keypoints is None and detector is None:
        raise BadInputError("no keypoints: pass --keypoints (OpenPose JSON) or a detector")
    pairs, orphans = find_inputs(images, keypoints)
    if box is not None and len(pairs) > 1:
        raise BadInputError(f"--bbox is one person's box in one image, but {images} holds {len(pairs)} images")
    if box is not None:
        report.notes.append(
            f"--bbox: read {box.source}: centre {box.center.round(1).tolist()}, side {box.size:.1f} px"
        )
    if not pairs:
        report.failed.append((str(images), f"no images ({', '.join(IMAGE_SUFFIXES)}) found"))
        return report
    for path in orphans:
        report.failed.append((str(path), "keypoint JSON with no image of the same stem"))
    detected = [f"{KEYPOINT_FOLDER}/{p.name}_keypoints.json" for p in pairs if p.keypoints is None]
    prepare_output(out_dir, [p.name for p in pairs] + (detected if detector is not None else []), replace=overwrite)
    cfg = fitter.config
    people = collect_people(
        pairs, report, box, cfg.min_confident_joints, cfg.confidence_threshold,
        detector=detector, keypoint_dir=out_dir / KEYPOINT_FOLDER,
    )  # fmt: skip
    for name, reason in report.failed:
        report.summary.append({"item": name, "success": False, "failure": reason})
    gmm = fitter.context.gmm if fitter.context.gmm is not None else _quality_gmm(model, cfg)
    bar = tqdm(total=len(people), unit="person", disable=not progress, desc="fitting")
    for start in range(0, len(people), batch_size):
        batch = people[start : start + batch_size]
        count = len(batch)
        pose0 = None if init_pose is None else init_pose.expand(count, *init_pose.shape[-3:])
        betas0 = None if init_betas is None else init_betas.reshape(1, -1).expand(count, -1)
        fit = fit_people(model, fitter, batch, init_pose=pose0, init_betas=betas0, regressor=regressor)
        result = fit.result
        confidence = fitter.body_stage_confidence(fit.crop_keypoints[..., 2])
        quality = assess_fits(
            result.joint_residuals, confidence, result.pose[:, 3:], result.success, result.failure,
            cfg.quality, gmm,
        )  # fmt: skip
        before, _ = confident_residual(fit.initial_residuals, confidence, cfg.quality.confident)
        for i, person in enumerate(batch):
            extra = {"initial_residual_px": float(before[i]), "flags": person.flags, **(run_info or {})}
            if fit.initial_lean is not None:
                extra["initial_torso_lean_deg"] = {k: float(v[i]) for k, v in fit.initial_lean.items()}
            folder = write_person(
                out_dir, person, fit, i, model, fitter, quality, mesh_frame=mesh_frame, extra=extra
            )
            entry = {
                "item": person.name, "success": bool(quality.success[i]), "failure": quality.failure[i],
                "residual_px": float(quality.residual_px[i]), "initial_residual_px": float(before[i]),
                "folder": str(folder.relative_to(out_dir)), "flags": person.flags,
            }  # fmt: skip
            report.summary.append(entry)
            if bool(quality.success[i]):
                report.fitted.append(person.name)
            else:
                report.failed.append((person.name, quality.failure[i] or "fit failed"))
        bar.update(count)
    bar.close()
    write_json(out_dir / "summary.json", {"items": report.summary, "notes": report.notes, **(run_info or {})})
    return report
