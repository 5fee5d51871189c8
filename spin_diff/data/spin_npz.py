"""SPIN's dataset files: one ``.npz`` per dataset split, one row per person crop.

Keys SPIN's datasets use (``N`` rows; see :data:`SPIN_KEYS`):

============  ============  ==========================================================
key           shape         meaning
============  ============  ==========================================================
imgname       (N,) str      image path, relative to the dataset's image root
center        (N, 2)        centre of the person's square box, full-image pixels
scale         (N,)          box side / 200 (SPIN's convention)
part          (N, 24, 3)    the 24 GT joints (second block of the 49-joint layout):
                            pixels and visibility
openpose      (N, 25, 3)    OpenPose BODY_25 joints: pixels and confidence
S             (N, 24, 4)    the 24 GT joints in 3D, metres, and a confidence
pose          (N, 72)       SMPL axis-angle, global orientation first
shape         (N, 10)       SMPL shape coefficients
has_smpl      (N,)          1 where ``pose``/``shape`` are ground truth, else 0
gender        (N,) str      'm' / 'f' (optional)
============  ============  ==========================================================

Synthetic sets written by :mod:`spin_diff.data.synth` add the keys of :data:`SYNTH_KEYS`
(ground-truth camera and the detector-like keypoints; see there). Any other key is kept
as it is: readers ignore what they do not know, and a round trip preserves it.

Files are written with a fixed zip timestamp, so equal data give byte-identical files.

Names and ground truth follow SPIN: a dataset's name (what the fit store keys its examples
by, and what SPIN's static fits ``<name>_fits.npy`` are named after) is SPIN's own name for
SPIN's training files (:data:`SPIN_TRAIN_FILES`, e.g. ``lsp_dataset_original_train.npz`` is
``lsp-orig``) and the file's stem otherwise (:func:`dataset_name`). A file with ``pose`` and
``shape`` but no ``has_smpl`` has ground-truth SMPL in every row, as SPIN reads it
(:func:`smpl_ground_truth`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch

from spin_diff.constants import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS
from spin_diff.errors import BadInputError
from spin_diff.geometry.cameras import image_keypoints_to_crop

log = logging.getLogger(__name__)

__all__ = [
    "KeySpec",
    "SPIN_KEYS",
    "SYNTH_KEYS",
    "DEFAULT_REQUIRED",
    "SpinDataError",
    "read_spin_npz",
    "write_spin_npz",
    "validate_spin_data",
    "keypoints_49",
    "SPIN_TRAIN_FILES",
    "dataset_name",
    "smpl_ground_truth",
    "dataset_fingerprint",
]


@dataclass(frozen=True)
class KeySpec:
    """Shape of one key after the row axis, and what kind of values it holds."""

    tail: tuple[int, ...]
    kind: str  # "float" (any real number type), "str"
    description: str


SPIN_KEYS: dict[str, KeySpec] = {
    "imgname": KeySpec((), "str", "image path relative to the image root"),
    "center": KeySpec((2,), "float", "box centre in full-image pixels"),
    "scale": KeySpec((), "float", "box side in pixels / 200"),
    "part": KeySpec((24, 3), "float", "24 GT joints: pixels and visibility"),
    "openpose": KeySpec((25, 3), "float", "OpenPose BODY_25 joints: pixels and confidence"),
    "S": KeySpec((24, 4), "float", "24 GT joints in 3D (metres) and confidence"),
    "pose": KeySpec((72,), "float", "SMPL axis-angle pose, global orientation first"),
    "shape": KeySpec((10,), "float", "SMPL shape coefficients"),
    "has_smpl": KeySpec((), "float", "1 where pose/shape are ground truth"),
    "gender": KeySpec((), "str", "'m' or 'f'"),
}

#: Keys added by synthetic sets (:func:`spin_diff.data.synth.generate_dataset`).
#: ``part``/``openpose`` hold the CLEAN projections there; the ``*_detected`` keys hold
#: the same joints after detector-like corruption (equal to the clean ones when the set
#: was made without corruption). The camera is the full-image pinhole camera of
#: :mod:`spin_diff.geometry.cameras` with no rotation: ``u = f X / Z + c_x`` with
#: ``X = S[..., :3]`` (already in the camera frame).
SYNTH_KEYS: dict[str, KeySpec] = {
    "openpose_detected": KeySpec((25, 3), "float", "OpenPose joints after detector-like corruption"),
    "part_detected": KeySpec((24, 3), "float", "GT-block joints after detector-like corruption"),
    "transl": KeySpec((3,), "float", "camera-frame translation of the body (metres)"),
    "focal_length": KeySpec((), "float", "full-image focal length in pixels"),
    "camera_center": KeySpec((2,), "float", "principal point in full-image pixels"),
    "image_size": KeySpec((2,), "float", "image (width, height) in pixels"),
    "bbox": KeySpec((4,), "float", "projected mesh bounding box x0, y0, x1, y1 (pixels)"),
    "posture": KeySpec((), "str", "name of the sampled posture"),
}

DEFAULT_REQUIRED = ("imgname", "center", "scale")

_ALL_SPECS = {**SPIN_KEYS, **SYNTH_KEYS}


class SpinDataError(BadInputError):
    """A SPIN dataset file is missing keys or holds values of the wrong shape; names the file."""


def _shape_text(tail: tuple[int, ...]) -> str:
    return "(" + ", ".join(["N", *map(str, tail)]) + ")"


def validate_spin_data(
    data: Mapping[str, np.ndarray],
    require: Iterable[str] = DEFAULT_REQUIRED,
    source: str = "dataset",
) -> int:
    """Check keys, shapes, row counts and finiteness; return the number of rows ``N``.

    Known keys (:data:`SPIN_KEYS`, :data:`SYNTH_KEYS`) must have their documented shape
    whenever present; keys in ``require`` must be present and, if numeric, free of NaN/inf.
    NaN in a known key that is not required is only logged. Unknown keys are not checked.

    Raises:
        SpinDataError: naming ``source``, the key, what is wrong and how to fix it.
    """
    require = tuple(require)
    unknown_required = [k for k in require if k not in _ALL_SPECS and k not in data]
    missing = [k for k in require if k not in data]
    if missing:
        hint = (
            f" ({', '.join(unknown_required)} is not a SPIN key: see spin_diff.data.spin_npz.SPIN_KEYS)"
            if unknown_required
            else ""
        )
        raise SpinDataError(
            f"{source}: missing required key(s) {missing}{hint}; present: {sorted(data)}. "
            "Add them when writing the file, or read it with a smaller require=(...)"
        )
    lengths: dict[str, int] = {}
    for key, value in data.items():
        spec = _ALL_SPECS.get(key)
        if spec is None:
            continue
        value = np.asarray(value)
        if value.ndim == 0:
            raise SpinDataError(
                f"{source}: key {key!r} is a scalar; expected one value per row, "
                f"shape {_shape_text(spec.tail)}"
            )
        if tuple(value.shape[1:]) != spec.tail:
            raise SpinDataError(
                f"{source}: key {key!r} has shape {value.shape}, expected {_shape_text(spec.tail)} "
                f"({spec.description}); reshape it when writing the file"
            )
        if spec.kind == "str":
            if value.dtype.kind not in "US" and not (
                value.dtype == object and all(isinstance(v, (str, bytes)) for v in value.reshape(-1))
            ):
                raise SpinDataError(f"{source}: key {key!r} must hold strings, got dtype {value.dtype}")
        elif value.dtype.kind not in "fiub":
            raise SpinDataError(f"{source}: key {key!r} must be numeric, got dtype {value.dtype}")
        elif not np.all(np.isfinite(value)):
            bad_rows = np.flatnonzero(~np.isfinite(value.reshape(value.shape[0], -1)).all(1))
            message = (
                f"{source}: key {key!r} has NaN or inf in {bad_rows.size} row(s) "
                f"(first: {bad_rows[:5].tolist()})"
            )
            if key in require:
                raise SpinDataError(message + "; fix or drop those rows")
            log.warning("%s", message)
        lengths[key] = value.shape[0]
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"{k}: {n}" for k, n in sorted(lengths.items()))
        raise SpinDataError(
            f"{source}: keys have different numbers of rows ({listing}); every key needs one row "
            "per sample"
        )
    return next(iter(lengths.values())) if lengths else 0


def _normalise(data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """String keys as str arrays; everything else as numpy arrays, dtypes untouched."""
    out = {}
    for key, value in data.items():
        value = np.asarray(value)
        spec = _ALL_SPECS.get(key)
        if spec is not None and spec.kind == "str" and value.dtype.kind in "SO":
            value = np.array(
                [v.decode() if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
            ).reshape(value.shape)
        out[key] = value
    return out


def read_spin_npz(
    path: str | Path,
    require: Iterable[str] = DEFAULT_REQUIRED,
    allow_pickle: bool = False,
) -> dict[str, np.ndarray]:
    """Read and validate a SPIN-format dataset file.

    Args:
        path: the ``.npz`` file.
        require: keys that must be present (and finite, when numeric).
        allow_pickle: let numpy unpickle object arrays; only for files you trust.

    Returns:
        ``{key: array}`` with every key of the file (unknown ones included); string keys
        (``imgname``, ``gender``, ...) as numpy ``str`` arrays.

    Raises:
        FileNotFoundError: no file at ``path``.
        SpinDataError: unreadable file, missing keys, wrong shapes, mismatched row counts,
            or NaN/inf in a required key. The message names the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SPIN dataset file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise SpinDataError(f"{path}: not a readable .npz file (not a zip archive); write it with np.savez")
    try:
        with np.load(path, allow_pickle=allow_pickle) as archive:
            data = {key: archive[key] for key in archive.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise SpinDataError(
                f"{path}: holds Python objects (object arrays); pass allow_pickle=True only if "
                "you trust the file, or re-save its string keys as numpy str arrays"
            ) from err
        raise SpinDataError(f"{path}: not a readable .npz file ({err})") from err
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise SpinDataError(f"{path}: not a readable .npz file ({err})") from err
    if not data:
        raise SpinDataError(f"{path}: the archive is empty; expected SPIN's keys {list(SPIN_KEYS)}")
    data = _normalise(data)
    validate_spin_data(data, require, source=str(path))
    return data


def write_spin_npz(
    path: str | Path,
    data: Mapping[str, np.ndarray],
    require: Iterable[str] = DEFAULT_REQUIRED,
) -> Path:
    """Validate ``data`` and write it as an uncompressed ``.npz`` (like ``np.savez``).

    The archive's timestamps are fixed, so equal data give byte-identical files. Parent
    folders are created. Returns the path written.
    """
    path = Path(path)
    data = _normalise(data)
    validate_spin_data(data, require, source=f"data for {path}")
    for key, value in data.items():
        if value.dtype == object:
            raise SpinDataError(
                f"data for {path}: key {key!r} is an object array; convert it to a numeric or str array"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in data.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    return path


def keypoints_49(data: Mapping[str, np.ndarray], detected: bool = False) -> np.ndarray:
    """The 49-joint keypoints ``(N, 49, 3)``: OpenPose block then GT block.

    Args:
        data: a dataset as returned by :func:`read_spin_npz`.
        detected: use ``openpose_detected``/``part_detected`` (synthetic sets) instead of
            ``openpose``/``part``.

    A block the dataset lacks is filled with zeros (zero confidence), as SPIN does.
    """
    suffix = "_detected" if detected else ""
    blocks = []
    rows = None
    for key, joints in (("openpose" + suffix, NUM_OPENPOSE_JOINTS), ("part" + suffix, NUM_GT_JOINTS)):
        if key in data:
            blocks.append(np.asarray(data[key], dtype=np.float64))
            rows = blocks[-1].shape[0]
        else:
            blocks.append(None)
    if rows is None:
        which = "openpose_detected/part_detected" if detected else "openpose/part"
        raise SpinDataError(f"dataset has no 2D keypoints ({which}); present: {sorted(data)}")
    sizes = (NUM_OPENPOSE_JOINTS, NUM_GT_JOINTS)
    return np.concatenate(
        [b if b is not None else np.zeros((rows, n, 3)) for b, n in zip(blocks, sizes)], axis=1
    )


def dataset_keypoints(data: dict, crop_size: int, source: str | Path = "dataset") -> np.ndarray:
    """The 49 keypoints of every example in its canonical crop: ``(N, 49, 3)`` crop pixels
    and confidence. Uses the detector-like keypoints of synthetic sets when present (what a
    real pipeline fits), otherwise ``openpose``/``part``. ``source`` names the file in errors."""
    for key in ("center", "scale"):
        if key not in data:
            raise SpinDataError(f"{source} has no {key!r} (SPIN's person box); present: {sorted(data)}")
    scale = np.asarray(data["scale"], dtype=np.float64).reshape(-1)
    if scale.size == 0:
        raise SpinDataError(f"{source} has no examples (0 rows): nothing to fit; pass a dataset with people in it")
    bad = np.flatnonzero(~(scale > 0) | ~np.isfinite(scale))
    if bad.size:
        raise SpinDataError(
            f"{source}: 'scale' (SPIN's box side / 200) is 0, negative or not finite in {bad.size} row(s) "
            f"(first {bad[:5].tolist()}); give every person a box"
        )
    detected = "openpose_detected" in data or "part_detected" in data
    keypoints = keypoints_49(data, detected=detected)
    pixels = image_keypoints_to_crop(
        torch.as_tensor(keypoints[..., :2]),
        torch.as_tensor(np.asarray(data["center"], dtype=np.float64)),
        torch.as_tensor(np.asarray(data["scale"], dtype=np.float64)),
        crop_size=crop_size,
    ).numpy()
    return np.concatenate([pixels, keypoints[..., 2:3]], axis=-1)


# SPIN's training files and the names its config.py gives them (its static fits are
# ``static_fits/<name>_fits.npy``).
SPIN_TRAIN_FILES = {
    "h36m_single_train_openpose.npz": "h36m",
    "lsp_dataset_original_train.npz": "lsp-orig",
    "mpii_train.npz": "mpii",
    "coco_2014_train.npz": "coco",
    "hr-lspet_train.npz": "lspet",
    "mpi_inf_3dhp_train.npz": "mpi-inf-3dhp",
}


def dataset_name(path: str | Path) -> str:
    """The default name of a dataset file: SPIN's name for SPIN's training files, else the stem."""
    path = Path(path)
    return SPIN_TRAIN_FILES.get(path.name, path.stem)


def smpl_ground_truth(data: Mapping[str, np.ndarray], rows: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Which rows (all, or ``rows``) hold ground-truth SMPL, and by which rule (for the log).

    ``has_smpl`` where the file has it; without it, every row (SPIN's rule: a file with
    ``pose`` and ``shape`` is ground truth throughout); none without ``pose``/``shape``. Rows
    whose pose or shape are not finite are never ground truth.
    """
    if "pose" not in data or "shape" not in data:
        count = len(rows) if rows is not None else len(next(iter(data.values()))) if data else 0
        return np.zeros(count, dtype=bool), "no 'pose'/'shape' keys: no ground-truth SMPL"
    take = (lambda a: np.asarray(a)) if rows is None else (lambda a: np.asarray(a)[rows])  # noqa: E731
    pose = take(data["pose"]).astype(np.float64)
    shape = take(data["shape"]).astype(np.float64)
    finite = np.isfinite(pose.reshape(len(pose), -1)).all(1) & np.isfinite(shape.reshape(len(shape), -1)).all(1)
    if "has_smpl" in data:
        return (take(data["has_smpl"]).reshape(-1) > 0.5) & finite, "ground truth where has_smpl is 1"
    return finite, "no 'has_smpl' key: every row with finite 'pose' and 'shape' is ground truth (SPIN's rule)"


FINGERPRINT_KEYS = ("imgname", "part", "openpose", "part_detected", "openpose_detected")


def dataset_fingerprint(data: Mapping[str, np.ndarray]) -> str:
    """What identifies a dataset's content: a hash of its row count, image names and 2D
    keypoints (whichever of :data:`FINGERPRINT_KEYS` it has), ``"blake2b:"`` + 32 hex digits.

    Two files with the same examples give the same fingerprint whatever else they hold or
    however they were saved; hashing is about 1 GB/s, cheap beside reading the file.
    """
    hasher = hashlib.blake2b(digest_size=16)
    rows = {len(data[key]) for key in data if np.ndim(data[key])}
    hasher.update(b"rows %d" % max(rows, default=0))
    for key in FINGERPRINT_KEYS:
        if key in data:
            value = np.asarray(data[key])
            if value.dtype.kind in "US":
                payload = "\0".join(map(str, value.tolist())).encode("utf-8", "surrogatepass")
            else:
                payload = np.ascontiguousarray(value, dtype=np.float64).tobytes()
            hasher.update(key.encode() + b"%d:" % len(payload) + payload)
    return "blake2b:" + hasher.hexdigest()
