"""Training data: SPIN's npz datasets (with their image folders), cropped and augmented.

:class:`SpinDataset` is one npz file (SPIN's keys, docs/conventions.md#spins-data-files) and, for image models, the
folder its ``imgname`` paths are relative to. :class:`TrainingData` mixes several and turns
a :class:`~spin_diff.training.sampler.BatchRequest` (which examples, which augmentation) into a
batch of tensors in one call, ``__getitems__``, inside a DataLoader worker:

* the crop: SPIN's square box (``center``, ``scale`` = side / 200) times the scale factor,
  rotated by the rotation and mirrored when flipped, resized to ``crop_size``; one
  ``cv2.warpAffine`` per image, with the flip folded into the same affine map, so the
  keypoints and the pixels go through exactly the same map;
* keypoints (49, crop pixels), 3D joints, ground-truth pose and the stored fits of the fit
  store all transformed to the same view (:mod:`spin_diff.training.frames`: rotate, then
  mirror); colour: SPIN's per-channel factor, then ImageNet normalisation;
* keypoint-input models never read an image: the same geometric augmentation is applied to
  the keypoints alone.

The fit store is opened lazily, read-only, in each worker (:class:`~spin_diff.cache.store.FitStore`
pickles as its path), and each batch's stored fits are read in one LMDB transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

from spin_diff.body.joints import KEYPOINT_FLIP_PERM
from spin_diff.cache.records import check_dataset_name
from spin_diff.cache.store import FitStore
from spin_diff.constants import CROP_SIZE, NUM_GT_JOINTS, NUM_KEYPOINTS, NUM_OPENPOSE_JOINTS, NUM_POSE
from spin_diff.data.crops import IMAGENET_MEAN, IMAGENET_STD, read_image_rgb
from spin_diff.data.spin_npz import (
    SpinDataError,
    dataset_fingerprint,
    dataset_name,
    keypoints_49,
    read_spin_npz,
    smpl_ground_truth,
)
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.geometry.cameras import image_keypoints_to_crop
from spin_diff.training.frames import to_view, view_rotation
from spin_diff.training.sampler import AugmentationConfig, BatchRequest

log = logging.getLogger(__name__)

__all__ = [
    "DataConfig",
    "DatasetEntry",
    "SpinDataset",
    "TrainingData",
    "crop_affine",
    "collate_identity",
]

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
_STD = np.array(IMAGENET_STD, dtype=np.float32)
# The 24 GT joints of SPIN's layout mirror among themselves.
_GT_FLIP_PERM = np.array(KEYPOINT_FLIP_PERM[NUM_OPENPOSE_JOINTS:]) - NUM_OPENPOSE_JOINTS


@dataclass
class DatasetEntry:
    """One training dataset of a run (an entry of ``data.datasets``; ``--dataset NAME=PATH``)."""

    path: str = ""  # the SPIN-format npz
    name: str | None = None  # its name in the fit store's keys; None: dataset_name(path)
    images: str | None = None  # the folder its imgname paths are relative to (image models)


@dataclass
class DataConfig:
    """What the training loop reads and how (the ``data`` section of a training config)."""

    datasets: list[DatasetEntry] = field(default_factory=list)  # --dataset replaces them
    batch_size: int = 64
    workers: int = 0  # DataLoader worker processes; 0 reads in the training process
    prefetch_factor: int = 2
    ratios: list[float] | None = None  # one per --dataset (SPIN: [0.3, 0.6, 0.1]); None: concatenate
    epoch_length: int | None = None  # None: the largest dataset with ratios, else all examples
    keypoints: Literal["auto", "clean", "detected"] = "auto"  # auto: *_detected keys when present
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)


def crop_affine(center, scale, crop_size: int, rotation=0.0, flip=False) -> np.ndarray:
    """The ``(B, 2, 3)`` affine maps from full-image pixels to crop pixels.

    The same map as :func:`~spin_diff.geometry.cameras.image_keypoints_to_crop` (box of side
    ``200 * scale`` about ``center``, rotated counter-clockwise by ``rotation`` degrees),
    followed, where ``flip``, by the mirror ``u -> crop_size - u`` (the reflection of the
    crop camera about its principal point, as :mod:`spin_diff.training.frames` mirrors fits).
    """
    center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    batch = center.shape[0]
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (batch,))
    angle = np.deg2rad(np.broadcast_to(np.asarray(rotation, dtype=np.float64), (batch,)))
    flip = np.broadcast_to(np.asarray(flip, dtype=bool), (batch,))
    k = crop_size / (200.0 * scale)
    cos, sin = np.cos(angle) * k, np.sin(angle) * k
    linear = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], 1)  # (B, 2, 2)
    offset = 0.5 * crop_size - np.einsum("bij,bj->bi", linear, center)
    affine = np.concatenate([linear, offset[..., None]], -1)
    mirror = np.where(flip, -1.0, 1.0)
    affine[:, 0] *= mirror[:, None]
    affine[:, 0, 2] += np.where(flip, crop_size, 0.0)
    return affine


def collate_identity(batch):
    """A DataLoader ``collate_fn`` for datasets whose ``__getitems__`` already returns a batch."""
    return batch


class SpinDataset:
    """One SPIN-format npz (and, for image models, its image folder).

    Args:
        path: the npz file.
        images: the folder ``imgname`` is relative to; needed only for image models.
        name: the dataset's name in the fit store's keys; default SPIN's name for SPIN's
            training files, else the file's stem (:func:`~spin_diff.data.spin_npz.dataset_name`).
        keypoints: ``auto`` uses the detector-like ``*_detected`` keypoints of synthetic sets
            when present (what a real pipeline sees), ``clean``/``detected`` choose.
        need_images: check now that every image exists (image models).
    """

    def __init__(
        self,
        path: str | Path,
        images: str | Path | None = None,
        name: str | None = None,
        keypoints: str = "auto",
        need_images: bool = False,
    ) -> None:
        self.path = Path(path)
        self.name = check_dataset_name(name or dataset_name(self.path))
        require = ("center", "scale") + (("imgname",) if need_images else ())
        data = read_spin_npz(self.path, require=require)
        self.fingerprint = dataset_fingerprint(data)  # its identity in the fit store (cache.header)
        detected = {"auto": "openpose_detected" in data or "part_detected" in data,
                    "clean": False, "detected": True}[keypoints]  # fmt: skip
        try:
            self.keypoints = keypoints_49(data, detected=detected).astype(np.float32)
        except SpinDataError as err:
            raise SpinDataError(f"{self.path}: {err}") from None
        if not np.isfinite(self.keypoints).all():
            bad = np.flatnonzero(~np.isfinite(self.keypoints).reshape(len(self.keypoints), -1).all(1))
            raise SpinDataError(
                f"{self.path}: keypoints have NaN or inf in {bad.size} row(s) (first {bad[:5].tolist()}); "
                "set their confidence to 0 and their coordinates to 0 instead"
            )
        self.center = np.asarray(data["center"], dtype=np.float64)
        self.scale = np.asarray(data["scale"], dtype=np.float64)
        if np.any(self.scale <= 0):
            raise SpinDataError(f"{self.path}: 'scale' must be positive (box side / 200)")
        n = len(self.center)
        if n == 0:
            raise SpinDataError(f"{self.path} has no examples (0 rows); pass a dataset with people in it")
        self.has_smpl, self.ground_truth_rule = smpl_ground_truth(data)
        self.pose = np.zeros((n, NUM_POSE), dtype=np.float32)
        self.betas = np.zeros((n, 10), dtype=np.float32)
        if "has_smpl" in data and "pose" in data and "shape" in data:
            if np.count_nonzero(np.asarray(data["has_smpl"]) > 0.5) != np.count_nonzero(self.has_smpl):
                raise SpinDataError(f"{self.path}: 'pose'/'shape' hold NaN or inf where has_smpl is 1")
        if self.has_smpl.any():
            self.pose = np.where(self.has_smpl[:, None], np.nan_to_num(data["pose"]), 0.0).astype(np.float32)
            self.betas = np.where(self.has_smpl[:, None], np.nan_to_num(data["shape"]), 0.0).astype(np.float32)
        self.has_joints3d = "S" in data
        self.joints3d = (
            np.nan_to_num(np.asarray(data["S"], dtype=np.float32)) if self.has_joints3d
            else np.zeros((n, NUM_GT_JOINTS, 4), dtype=np.float32)
        )  # fmt: skip
        self.imgname = np.asarray(data["imgname"]) if "imgname" in data else None
        self.images = Path(images) if images is not None else None
        if need_images:
            self._check_images()

    def __len__(self) -> int:
        return int(self.center.shape[0])

    def _check_images(self) -> None:
        if self.images is None:
            raise SpinDataError(
                f"{self.path}: an image model needs the dataset's image folder: pass --images DIR "
                "(the folder imgname is relative to), one per --dataset, or train a keypoint model "
                "(--set model.input=keypoints)"
            )
        if not self.images.is_dir():
            raise MissingInputError(f"image folder not found: {self.images} (for {self.path})")
        missing = [name for name in self.imgname if not (self.images / str(name)).is_file()]
        if missing:
            raise MissingInputError(
                f"{len(missing)} of {len(self.imgname)} images of {self.path} are not under {self.images} "
                f"(first: {self.images / str(missing[0])}); pass the folder imgname is relative to"
            )

    def read_crops(self, rows: np.ndarray, affine: np.ndarray, colour: np.ndarray, crop_size: int) -> np.ndarray:
        """``(B, 3, S, S)`` float32 crops, colour-scaled, ImageNet-normalised."""
        out = np.empty((len(rows), 3, crop_size, crop_size), dtype=np.float32)
        for i, row in enumerate(rows.tolist()):  # image decoding is per file by nature
            image = read_image_rgb(self.images / str(self.imgname[row]))
            crop = cv2.warpAffine(
                image, affine[i], (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT, borderValue=0,
            )  # fmt: skip
            rgb = np.clip(crop.astype(np.float32) * colour[i].astype(np.float32), 0.0, 255.0) / 255.0
            out[i] = ((rgb - _MEAN) / _STD).transpose(2, 0, 1)
        return out


class TrainingData:
    """The datasets of a run, as batches: ``data.__getitems__(request) -> dict of tensors``.

    Keys of a batch (B rows, one :class:`BatchRequest`):

    * ``dataset`` (B,) int, ``index`` (B,) int, ``flip`` (B,) bool, ``rotation`` (B,),
      ``scale`` (B,): which example and which view;
    * ``keypoints`` (B, 49, 3): crop pixels of the view and confidence;
      ``canonical_keypoints`` (B, 49, 3): the same in the un-augmented crop (the store's frame);
    * ``epoch``, ``batch``: the request's epoch and global batch number (scalars);
    * ``images`` (B, 3, S, S): only when ``use_images``;
    * ``has_smpl`` (B,) bool, ``pose`` (B, 72) and ``betas`` (B, 10): ground truth in the view;
    * ``has_joints3d`` (B,) bool, ``joints3d`` (B, 24, 4): 3D GT joints in the view;
    * ``stored_found`` (B,) bool, ``stored_pose`` (B, 72) in the view, ``stored_betas`` (B, 10),
      ``stored_source`` (B,): the fit store's records (when a store is given).
    """

    def __init__(
        self,
        datasets: list[SpinDataset],
        crop_size: int = CROP_SIZE,
        use_images: bool = False,
        store: FitStore | None = None,
    ) -> None:
        if not datasets:
            raise BadInputError("training needs at least one --dataset")
        names = [d.name for d in datasets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise BadInputError(
                f"two datasets share the name {duplicates[0]!r}: fits are keyed by it, so give one "
                "another name (--dataset NAME=PATH, or a name in data.datasets)"
            )
        if use_images:
            for dataset in datasets:
                if dataset.images is None or dataset.imgname is None:
                    dataset._check_images()
        self.datasets = datasets
        self.names = names
        self.crop_size = crop_size
        self.use_images = use_images
        self.store = store

    @property
    def sizes(self) -> list[int]:
        return [len(d) for d in self.datasets]

    def __getitems__(self, request: BatchRequest) -> dict[str, torch.Tensor]:
        batch = len(request)
        keypoints = np.zeros((batch, NUM_KEYPOINTS, 3), dtype=np.float32)
        joints3d = np.zeros((batch, NUM_GT_JOINTS, 4), dtype=np.float32)
        pose = np.zeros((batch, NUM_POSE), dtype=np.float32)
        betas = np.zeros((batch, 10), dtype=np.float32)
        has_smpl = np.zeros(batch, dtype=bool)
        has_joints3d = np.zeros(batch, dtype=bool)
        center = np.zeros((batch, 2))
        scale = np.zeros(batch)
        images = (
            np.zeros((batch, 3, self.crop_size, self.crop_size), dtype=np.float32) if self.use_images else None
        )
        for d, dataset in enumerate(self.datasets):  # gather per dataset (a handful), vectorised within
            rows = np.flatnonzero(request.dataset == d)
            if rows.size == 0:
                continue
            idx = request.index[rows]
            keypoints[rows] = dataset.keypoints[idx]
            joints3d[rows] = dataset.joints3d[idx]
            has_joints3d[rows] = dataset.has_joints3d
            pose[rows] = dataset.pose[idx]
            betas[rows] = dataset.betas[idx]
            has_smpl[rows] = dataset.has_smpl[idx]
            center[rows] = dataset.center[idx]
            scale[rows] = dataset.scale[idx]
        box_scale = scale * request.scale
        if images is not None:
            affine = crop_affine(center, box_scale, self.crop_size, request.rotation, request.flip)
            for d, dataset in enumerate(self.datasets):
                rows = np.flatnonzero(request.dataset == d)
                if rows.size:
                    images[rows] = dataset.read_crops(request.index[rows], affine[rows], request.colour[rows], self.crop_size)

        flip = torch.as_tensor(request.flip, dtype=torch.bool)
        rotation = torch.as_tensor(request.rotation, dtype=torch.float64)
        out = {
            "dataset": torch.as_tensor(request.dataset, dtype=torch.long),
            "index": torch.as_tensor(request.index, dtype=torch.long),
            "flip": flip,
            "rotation": rotation.float(),
            "scale": torch.as_tensor(request.scale, dtype=torch.float32),
            "keypoints": view_keypoints(keypoints, center, box_scale, request.rotation, request.flip, self.crop_size),
            "canonical_keypoints": view_keypoints(keypoints, center, scale, np.zeros(batch), np.zeros(batch, bool), self.crop_size),
            "epoch": torch.tensor(request.epoch),
            "batch": torch.tensor(request.batch),
            "has_smpl": torch.as_tensor(has_smpl),
            "pose": to_view(torch.as_tensor(pose, dtype=torch.float64), flip, rotation).float(),
            "betas": torch.as_tensor(betas),
            "has_joints3d": torch.as_tensor(has_joints3d),
            "joints3d": view_joints3d(torch.as_tensor(joints3d), flip, rotation),
        }
        if images is not None:
            out["images"] = torch.from_numpy(images)
        if self.store is not None:
            out.update(self.stored_fields(out["dataset"], out["index"], flip, out["rotation"]))
        return out

    def stored_fields(self, dataset: torch.Tensor, index: torch.Tensor, flip: torch.Tensor,
                      rotation: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
        """The ``stored_*`` entries of a batch (host tensors, one LMDB transaction): the store's
        records mapped to the view of ``flip`` and ``rotation`` (the batch's float32 degrees,
        so that re-reading a batch's rows gives the same bits)."""
        names = [self.names[d] for d in dataset.tolist()]
        stored = self.store.get_many(names, index.numpy())
        stored_pose = torch.as_tensor(stored.pose, dtype=torch.float64)
        return {
            "stored_found": torch.as_tensor(stored.found),
            "stored_pose": to_view(stored_pose, flip, rotation.double()).float(),
            "stored_betas": torch.as_tensor(stored.betas),
            "stored_source": torch.as_tensor(stored.source.astype(np.int64)),
        }


def view_keypoints(keypoints, center, box_scale, rotation, flip, crop_size: int) -> torch.Tensor:
    """Full-image keypoints ``(B, 49, 3)`` -> crop pixels of the view (same map as the crop)."""
    pixels = image_keypoints_to_crop(
        torch.as_tensor(keypoints[..., :2], dtype=torch.float64), torch.as_tensor(center),
        torch.as_tensor(box_scale), crop_size=crop_size, rotation_deg=torch.as_tensor(rotation),
    )  # fmt: skip
    flip_t = torch.as_tensor(np.asarray(flip))
    mirrored = pixels[:, list(KEYPOINT_FLIP_PERM)]
    mirrored = torch.stack([crop_size - mirrored[..., 0], mirrored[..., 1]], -1)
    conf = torch.as_tensor(keypoints[..., 2:3], dtype=torch.float64)
    conf = torch.where(flip_t[:, None, None], conf[:, list(KEYPOINT_FLIP_PERM)], conf)
    pixels = torch.where(flip_t[:, None, None], mirrored, pixels)
    return torch.cat([pixels, conf], -1).float()


def view_joints3d(joints3d: torch.Tensor, flip: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """3D GT joints ``(B, 24, 4)`` (camera frame, with confidence) -> the view: turned with the
    crop (about the camera's z axis), then mirrored (x negated, sides swapped)."""
    rot = view_rotation(rotation, joints3d.shape[0], joints3d.double()).to(joints3d.dtype)
    points = torch.einsum("bij,bkj->bki", rot, joints3d[..., :3])
    out = torch.cat([points, joints3d[..., 3:]], -1)
    mirrored = out[:, list(_GT_FLIP_PERM)] * out.new_tensor([-1.0, 1.0, 1.0, 1.0])
    return torch.where(flip[:, None, None], mirrored, out)
