"""Mocap files and folders to an SMPL pose set: read, subsample, retarget, filter, split.

``spin-diff prior import-mocap`` calls :func:`import_mocap` then :func:`split_pose_set`.
A pose set is an npz with ``pose`` (N, 72, axis-angle, y-up world like the body model's rest
frame), ``clip`` and ``subject`` (N,), ``frame`` (N,, the frame index in its clip), and the
retargeting residuals ``direction_error_deg`` and ``position_error_mm`` (N,).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spin_diff.data.mocap.asf_amc import read_amc, read_asf
from spin_diff.data.mocap.bvh import read_bvh
from spin_diff.data.mocap.retarget import (
    CORRESPONDENCES,
    RetargetConfig,
    detect_skeleton_kind,
    retarget,
    source_points,
    source_scale,
)
from spin_diff.data.mocap.skeleton import Motion
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from spin_diff.priors.pose_files import read_smpl_poses

log = logging.getLogger(__name__)

MOCAP_SUFFIXES = (".amc", ".bvh", ".npz")
SPLITS = ("train", "val", "test")


@dataclass
class ImportConfig:
    min_motion_m: float = 0.05  # keep a frame once some joint moved this far from the last kept one
    max_direction_error_deg: float = 10.0  # drop frames retargeted worse than this
    retarget: RetargetConfig = field(default_factory=RetargetConfig)


@dataclass
class PoseSet:
    """Imported poses with where each came from. N poses."""

    pose: np.ndarray  # (N, 72)
    clip: np.ndarray  # (N,) str
    subject: np.ndarray  # (N,) str
    frame: np.ndarray  # (N,) int
    direction_error_deg: np.ndarray  # (N,)
    position_error_mm: np.ndarray  # (N,)
    files: list[dict] = field(default_factory=list)  # per source file: path, sha1, frames read/kept/dropped

    def __len__(self) -> int:
        return int(self.pose.shape[0])

    def subset(self, mask: np.ndarray) -> "PoseSet":
        clips = set(self.clip[mask].tolist())
        return PoseSet(self.pose[mask], self.clip[mask], self.subject[mask], self.frame[mask],
                       self.direction_error_deg[mask], self.position_error_mm[mask],
                       [f for f in self.files if f["clip"] in clips])  # fmt: skip

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, pose=self.pose.astype(np.float32), clip=self.clip.astype(str),
                            subject=self.subject.astype(str), frame=self.frame.astype(np.int32),
                            direction_error_deg=self.direction_error_deg.astype(np.float32),
                            position_error_mm=self.position_error_mm.astype(np.float32))  # fmt: skip
        return path


def collect_files(inputs: list[str | Path]) -> list[Path]:
    """Mocap files named directly or found (recursively) in folders, sorted."""
    files: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in MOCAP_SUFFIXES and p.is_file())
            if not found:
                raise MissingInputError(f"no mocap files ({', '.join(MOCAP_SUFFIXES)}) under {item}")
            files += found
        elif item.is_file():
            if item.suffix.lower() not in MOCAP_SUFFIXES + (".asf",):
                raise BadInputError(f"{item}: not a mocap file (expected {', '.join(MOCAP_SUFFIXES)}, or .asf beside .amc)")
            if item.suffix.lower() != ".asf":
                files.append(item)
        else:
            raise MissingInputError(f"mocap file or folder not found: {item}")
    return list(dict.fromkeys(files))


def _asf_for(amc: Path) -> Path:
    """The skeleton of an AMC: ``<subject>.asf`` for CMU's ``<subject>_<trial>.amc``, else the
    one .asf in its folder."""
    subject = amc.stem.split("_")[0]
    candidate = amc.with_name(f"{subject}.asf")
    if candidate.is_file():
        return candidate
    found = sorted(amc.parent.glob("*.asf"))
    if len(found) == 1:
        return found[0]
    raise MissingInputError(
        f"{amc}: no ASF skeleton for it (looked for {candidate.name}"
        + (f"; {len(found)} .asf files in the folder, cannot choose" if found else "")
        + "); put the subject's .asf beside the .amc"
    )


def subject_of(path: Path) -> str:
    """CMU's clip names are <subject>_<trial>; otherwise the folder names the subject. CMU's
    subject numbers are written with two digits at least, whatever the mirror's padding
    (``005_02`` and ``05_02`` are both subject ``05``)."""
    match = re.match(r"^(\d+)_\d+", path.stem)
    return str(int(match.group(1))).zfill(2) if match else path.parent.name


def keep_distinct_frames(points: np.ndarray, min_motion: float) -> np.ndarray:
    """Indices of frames kept by a greedy pass: a frame is kept when some point moved more than
    ``min_motion`` from the last kept frame (root-relative points (F, C, 3))."""
    relative = points - points[:, :1]
    kept = [0]
    last = relative[0]
    for f in range(1, relative.shape[0]):
        if np.linalg.norm(relative[f] - last, axis=-1).max() > min_motion:
            kept.append(f)
            last = relative[f]
    return np.asarray(kept, dtype=np.int64)


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _read_amass(path: Path) -> np.ndarray:
    """AMASS-style npz (z-up world) -> (F, 72) poses in the y-up world."""
    poses = read_smpl_poses(path, drop_non_finite=True)
    to_y_up = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    orient = to_y_up @ axis_angle_to_matrix(torch.as_tensor(poses[:, :3]))
    poses[:, :3] = matrix_to_axis_angle(orient).numpy()
    return poses


def read_motion(path: Path) -> Motion:
    if path.suffix.lower() == ".bvh":
        return read_bvh(path)
    return read_amc(path, read_asf(_asf_for(path)))


def import_mocap(inputs: list[str | Path], model, config: ImportConfig | None = None, progress: bool = True) -> PoseSet:
    """Read, subsample, retarget and filter every mocap file under ``inputs``."""
    config = config or ImportConfig()
    files = collect_files(inputs)
    parts: list[dict[str, np.ndarray]] = []
    report: list[dict] = []
    for path in tqdm(files, desc="import-mocap", disable=not progress, unit="file"):
        clip, subject = path.stem, subject_of(path)
        entry = {"path": str(path), "clip": clip, "subject": subject, "sha1": _sha1(path)}
        if path.suffix.lower() == ".npz":
            poses = _read_amass(path)
            frames = np.arange(len(poses))
            part = {"pose": poses, "frame": frames, "dir": np.zeros(len(poses)), "pos": np.zeros(len(poses))}
            entry.update(kind="amass_npz", frames=len(poses), distinct=len(poses), kept=len(poses))
        else:
            motion = read_motion(path)
            if path.suffix.lower() == ".amc":
                entry["asf"] = str(_asf_for(path))
                entry["asf_sha1"] = _sha1(_asf_for(path))
            kind = motion.skeleton_kind or detect_skeleton_kind(motion.skeleton.point_names)
            points, _ = source_points(motion, CORRESPONDENCES[kind])
            scale = source_scale(motion, model, kind)  # subsample in the body model's metres
            frames = keep_distinct_frames(points * scale, config.min_motion_m)
            result = retarget(motion.select(frames), model, config.retarget, kind)
            good = result.direction_error_deg <= config.max_direction_error_deg
            part = {"pose": result.pose[good], "frame": frames[good], "dir": result.direction_error_deg[good],
                    "pos": result.position_error_mm[good]}  # fmt: skip
            entry.update(kind=kind, frames=motion.num_frames, distinct=int(frames.size), kept=int(good.sum()),
                         dropped=int((~good).sum()),
                         direction_error_deg_median=round(float(np.median(result.direction_error_deg)), 2),
                         position_error_mm_median=round(float(np.median(result.position_error_mm)), 1))  # fmt: skip
            log.info("%s: %d frames, %d distinct, %d kept (median direction error %.1f deg)", path,
                     motion.num_frames, frames.size, good.sum(), np.median(result.direction_error_deg))  # fmt: skip
        part["clip"] = np.full(len(part["pose"]), clip)
        part["subject"] = np.full(len(part["pose"]), subject)
        parts.append(part)
        report.append(entry)
    cat = lambda key: np.concatenate([p[key] for p in parts])  # noqa: E731
    return PoseSet(cat("pose"), cat("clip"), cat("subject"), cat("frame"), cat("dir"), cat("pos"), report)


def split_pose_set(poses: PoseSet, by: str = "clip", val_share: float = 0.15, test_share: float = 0.15,
                   seed: int = 0, val: list[str] | None = None, test: list[str] | None = None) -> dict[str, PoseSet]:  # fmt: skip
    """Train/val/test by clip or subject: whole units go to one split. Units named in ``val`` /
    ``test`` go there; the rest are shuffled (``seed``) and filled in until each held-out split
    holds about its share of the poses."""
    if by not in ("clip", "subject"):
        raise BadInputError(f"split by 'clip' or 'subject', got {by!r}")
    units = poses.clip if by == "clip" else poses.subject
    names, counts = np.unique(units, return_counts=True)
    assigned = {}
    for split, chosen in (("val", val or []), ("test", test or [])):
        for name in chosen:
            if name not in names:
                raise BadInputError(f"{split} {by} {name!r} is not among the imported ones ({', '.join(names)})")
            assigned[name] = split
    order = np.random.default_rng(seed).permutation(len(names))
    total = counts.sum()
    filled = {s: sum(counts[names == n][0] for n, sp in assigned.items() if sp == s) for s in ("val", "test")}
    for i in order:
        name = names[i]
        if name in assigned:
            continue
        for split, share in (("test", test_share), ("val", val_share)):
            if filled[split] + counts[i] / 2 <= share * total:
                assigned[name], filled[split] = split, filled[split] + counts[i]
                break
        else:
            assigned[name] = "train"
    split_of = np.array([assigned[u] for u in units]) if len(units) else np.array([], dtype=str)
    return {s: poses.subset(split_of == s) for s in SPLITS}
