"""Synthetic fitting problems without images: sampled bodies seen by SPIN's crop camera.

The people come from the one generator, :mod:`spin_diff.data.people` (its ``"fitting"`` and
``"photo"`` presets). Each problem is a ground-truth body (pose incl. orientation, shape, camera translation), its
projected 49 keypoints in the 224 crop, optionally degraded like a detector, and starts for
a fitter: the mean pose, or the truth perturbed the way a regressor's estimate is wrong.
Tests and benchmarks use these; ``spin-diff synth`` renders full images instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spin_diff.body import joints as J
from spin_diff.body.model import BodyModel
from spin_diff.constants import CROP_SIZE, FOCAL_LENGTH, NUM_POSE
from spin_diff.data.corruption import CorruptionConfig
from spin_diff.data.people import PosePool, draw_people, preset
from spin_diff.data.spin_npz import write_spin_npz
from spin_diff.errors import BadInputError
from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle


@dataclass
class KeypointProblems:
    """A batch of fitting problems. Shapes: B problems."""

    pose: torch.Tensor  # (B, 72) ground truth, axis-angle
    betas: torch.Tensor  # (B, 10)
    transl: torch.Tensor  # (B, 3) crop-camera translation
    keypoints: torch.Tensor  # (B, 49, 3) crop pixels + confidence (possibly corrupted)
    clean_keypoints: torch.Tensor  # (B, 49, 3) before corruption
    postures: list[str]
    joints: torch.Tensor | None = None  # (B, 49, 3) true joints in the crop camera's frame (translation applied)
    crop_size: int = int(CROP_SIZE)  # the crop camera: principal point at the crop centre ...
    focal_length: float = FOCAL_LENGTH  # ... this focal length in crop pixels ...
    shift_px: tuple[float, float] = (0.0, 0.0)  # ... and every keypoint moved by this after projection


def _pose_pool(poses: np.ndarray | None, count: int) -> PosePool | None:
    """The pool ``count`` problems draw from without replacement; None: the pose sampler."""
    if poses is None:
        return None
    if count > len(poses):
        raise BadInputError(f"asked for {count} problems from {len(poses)} poses: pass fewer, or more poses")
    return PosePool.from_poses(poses)


# make_problems' ``inputs``: the people preset's detected-joint settings of each.
INPUTS: dict[str, dict] = {
    "all": {},
    "openpose": {"openpose_only_prob": 1.0, "face_hiding_prob": 1.0},
    "detector": {"openpose_only_prob": 1.0, "face_hiding_prob": 1.0, "no_small_toes_prob": 1.0},
}


def make_problems(
    model: BodyModel,
    count: int,
    seed: int = 0,
    corruption=None,
    max_yaw_degrees: float = 45.0,
    shift_px: tuple[float, float] = (0.0, 0.0),
    crop_size: int = CROP_SIZE,
    focal_length: float = FOCAL_LENGTH,
    poses: np.ndarray | None = None,
    inputs: str = "all",
) -> KeypointProblems:
    """``count`` people of the ``"fitting"`` preset of :mod:`spin_diff.data.people`;
    ``corruption`` is a CorruptionConfig (None: clean).

    ``inputs`` says which keypoints are detected (:data:`INPUTS`): ``"all"`` 49 (SPIN's
    datasets: OpenPose's and the annotated ones), ``"openpose"`` the 25 OpenPose ones without
    the face points the head hides (as OpenPose reports a photo), ``"detector"`` those without
    the small toes too (as the bundled detector reports one). Only these masks change with it.

    ``shift_px`` moves the person in the crop (e.g. partly out of it, for border occlusion).
    ``poses`` (N, 72), whole poses in a y-up world (e.g. real mocap, :mod:`spin_diff.data.real_poses`),
    replaces the pose sampler: ``count`` of them are drawn without replacement, and each keeps its
    own tilt (bending, lying) while turned to face the camera within ``max_yaw_degrees``.
    Problem ``i`` of ``seed`` does not depend on ``count``.
    """
    if inputs not in INPUTS:
        raise BadInputError(f"inputs {inputs!r}: choose from {sorted(INPUTS)}")
    spec = preset("fitting", yaw_range=(-max_yaw_degrees, max_yaw_degrees), image_size=(crop_size, crop_size),
                  focal_length=float(focal_length), **INPUTS[inputs])  # fmt: skip
    pool = _pose_pool(poses, count)
    people = draw_people(model, spec, count, seed, pool=pool, corruption=corruption or CorruptionConfig(),
                         shift_px=shift_px)  # fmt: skip
    return KeypointProblems(people.pose, people.betas, people.transl, people.keypoints, people.clean,
                            people.postures, people.joints + people.transl[:, None], crop_size, float(focal_length),
                            tuple(float(v) for v in shift_px))  # fmt: skip


def perturbed_start(
    problems: KeypointProblems, seed: int = 1, pose_sigma: float = 0.15, betas_sigma: float = 0.5,
    orient_sigma: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A regressor-like estimate: truth plus per-joint rotation noise, shape and depth error."""
    gen = torch.Generator().manual_seed(seed)
    pose, betas, transl = problems.pose, problems.betas, problems.transl
    noise = torch.randn(pose.shape, generator=gen, dtype=pose.dtype).to(pose.device)
    scale = torch.full((NUM_POSE,), pose_sigma, dtype=pose.dtype, device=pose.device)
    scale[:3] = orient_sigma
    rotations = axis_angle_to_matrix((noise * scale).view(-1, 24, 3)) @ axis_angle_to_matrix(pose.view(-1, 24, 3))
    start_pose = matrix_to_axis_angle(rotations).reshape(-1, NUM_POSE)
    start_betas = betas + betas_sigma * torch.randn(betas.shape, generator=gen, dtype=betas.dtype).to(betas.device)
    depth_error = 1.0 + 0.1 * torch.randn(transl.shape[0], generator=gen, dtype=transl.dtype).to(transl.device)
    start_transl = transl * torch.stack([torch.ones_like(depth_error), torch.ones_like(depth_error), depth_error], 1)
    return start_pose, start_betas, start_transl


@dataclass
class PhotoProblems:
    """People seen by a photo-like full-image camera, keypoints as OpenPose gives them.

    Only the 25 OpenPose keypoints carry confidence (the 24 GT joints are zero, as in
    ``openpose_to_keypoints49`` of a real JSON). Shapes: B problems.
    """

    pose: torch.Tensor  # (B, 72) ground truth, axis-angle, camera orientation
    betas: torch.Tensor  # (B, 10)
    transl: torch.Tensor  # (B, 3) full-image camera translation, metres
    joints: torch.Tensor  # (B, 49, 3) true joints in the camera frame (translation applied)
    keypoints: torch.Tensor  # (B, 49, 3) image pixels + confidence (corrupted)
    clean_keypoints: torch.Tensor  # (B, 49, 3) before corruption
    focal_length: torch.Tensor  # (B,) pixels; principal point at the image centre
    image_size: tuple[int, int]  # (width, height)
    postures: list[str]


def make_photo_problems(
    model: BodyModel,
    count: int,
    seed: int = 0,
    corruption=None,
    image_size: tuple[int, int] = (1280, 960),
    focal_length: float | None = None,
    box_fraction: tuple[float, float] = (0.5, 0.9),
    placement: float = 0.6,
    yaw_range: tuple[float, float] = (-70.0, 70.0),
    back_view_prob: float = 0.1,
    tilt_std: float = 6.0,
    poses: np.ndarray | None = None,
    inputs: str | None = None,
) -> PhotoProblems:
    """``count`` people of the ``"photo"`` preset of :mod:`spin_diff.data.people`: placed in a
    ``image_size`` photo taken with focal ``focal_length`` (None: the image diagonal, about a
    53-degree field of view, as CLIFF assumes).

    Bodies stand balanced (the pose sampler's lean), turn by ``yaw_range`` (turned away with
    ``back_view_prob``), tilt by ``tilt_std`` degrees; each person's keypoint box spans
    ``box_fraction`` of the image's shorter side, placed off centre by up to ``placement``
    of the free room. ``corruption`` is a CorruptionConfig applied in image pixels (None:
    clean). ``poses`` (N, 72), whole poses in a y-up world (e.g. real mocap), replaces the
    pose sampler as in :func:`make_problems` (``count`` drawn without replacement, each
    keeping its own tilt). ``inputs``: ``"openpose"`` or ``"detector"`` of :data:`INPUTS` (the
    face points the head hides, and the small toes, not detected); None: every OpenPose point.
    """
    if inputs is not None and inputs not in ("openpose", "detector"):
        raise BadInputError(f"inputs {inputs!r}: choose 'openpose' or 'detector' (or None: every OpenPose point)")
    spec = preset("photo", image_size=tuple(image_size), focal_length=focal_length, fill_range=tuple(box_fraction),
                  placement=placement, yaw_range=tuple(yaw_range), back_view_prob=back_view_prob, tilt_std=tilt_std,
                  **({} if inputs is None else INPUTS[inputs]))  # fmt: skip
    pool = _pose_pool(poses, count)
    people = draw_people(model, spec, count, seed, pool=pool, corruption=corruption or CorruptionConfig())
    clean = people.clean.clone()
    clean[:, J.NUM_OPENPOSE_JOINTS :, 2] = 0.0  # a detector gives only the OpenPose block
    return PhotoProblems(
        pose=people.pose, betas=people.betas, transl=people.transl, joints=people.joints + people.transl[:, None],
        keypoints=people.keypoints, clean_keypoints=clean,
        focal_length=torch.full((count,), people.focal_length, dtype=people.pose.dtype, device=people.pose.device),
        image_size=people.image_size, postures=list(people.postures),
    )  # fmt: skip


def write_keypoint_dataset(problems: KeypointProblems, path, with_ground_truth: bool = True):
    """Write ``problems`` as a SPIN-format npz without images, the crop being the whole frame.

    The box is the crop itself (centre ``crop_size / 2``, scale ``crop_size / 200``), so
    :func:`spin_diff.cache.builder.dataset_keypoints` gives back the problems' keypoints.
    ``openpose``/``part`` hold the clean projections, ``openpose_detected``/``part_detected``
    the (possibly corrupted) keypoints training and fitting read, as ``spin-diff synth`` does.
    ``with_ground_truth=False`` leaves out the 3D truth (``pose``, ``shape``, ``S``,
    ``has_smpl``, ``transl``): a 2D-only set like SPIN's in-the-wild data. Returns the written path.
    """
    if any(problems.shift_px) or (problems.crop_size, problems.focal_length) != (CROP_SIZE, FOCAL_LENGTH):
        raise BadInputError(
            f"problems seen by a {problems.crop_size} px crop, focal {problems.focal_length}, shifted by "
            f"{problems.shift_px} px: a SPIN npz implies SPIN's crop camera (224 px, focal 5000, no shift), "
            "so their truth would not project onto their keypoints; write problems made with it"
        )
    crop_size, focal_length = CROP_SIZE, FOCAL_LENGTH
    count = problems.pose.shape[0]
    clean = problems.clean_keypoints.detach().cpu().double().numpy()
    detected = problems.keypoints.detach().cpu().double().numpy()
    data = {
        "imgname": np.array([f"{i:06d}.png" for i in range(count)]),
        "center": np.full((count, 2), crop_size / 2.0),
        "scale": np.full(count, crop_size / 200.0),
        "openpose": clean[:, : J.NUM_OPENPOSE_JOINTS],
        "part": clean[:, J.NUM_OPENPOSE_JOINTS :],
        "openpose_detected": detected[:, : J.NUM_OPENPOSE_JOINTS],
        "part_detected": detected[:, J.NUM_OPENPOSE_JOINTS :],
        "posture": np.array(problems.postures),
    }
    if with_ground_truth:
        pose = problems.pose.detach().cpu().double()
        betas = problems.betas.detach().cpu().double()
        transl = problems.transl.detach().cpu().double().numpy()
        data.update(pose=pose.numpy(), shape=betas.numpy(), has_smpl=np.ones(count), transl=transl,
                    focal_length=np.full(count, focal_length))  # fmt: skip
        if problems.joints is not None:  # SPIN's S: the 24 GT joints in 3D and a confidence
            gt = problems.joints[:, J.NUM_OPENPOSE_JOINTS :].detach().cpu().double().numpy()
            data["S"] = np.concatenate([gt, np.ones((count, gt.shape[1], 1))], -1)
    return write_spin_npz(path, data)
