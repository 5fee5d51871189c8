"""Reading collections of SMPL body poses from the npz files users have.

Accepted layouts (axis-angle, SMPL's joint order):

* the pose sampler's output (``spin-diff prior sample-poses``): key ``pose`` (N, 72);
* AMASS-style motion files: key ``poses`` (N, >= 72; SMPL-H/SMPL-X files carry hand joints
  after the first 72 numbers, which are ignored);
* SPIN's dataset files: key ``pose`` (N, 72) with ``has_smpl``; only rows with ``has_smpl == 1``
  hold a pose.

:func:`read_smpl_poses` returns whole poses (N, 72); :func:`read_body_poses` drops the global
orientation (the GMM prior models joints 1..23).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from spin_diff.constants import NUM_POSE
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.priors.pose_sampler import upright_global_orient

__all__ = ["read_body_poses", "read_smpl_poses"]

log = logging.getLogger(__name__)

BODY_POSE_DIM = NUM_POSE - 3  # 69: the pose without the global orientation


def read_body_poses(path: str | Path, *, drop_non_finite: bool = False) -> np.ndarray:
    """Body poses (N, 69) float64 from a pose npz (see :func:`read_smpl_poses`)."""
    return read_smpl_poses(path, drop_non_finite=drop_non_finite)[:, 3:]


def read_smpl_poses(path: str | Path, sampler_orientation: bool = False, *, drop_non_finite: bool = False) -> np.ndarray:
    """Whole SMPL poses (N, 72) float64 from a pose npz: the one reader of pose files.

    A row with NaN or inf is refused (an error naming the file), unless ``drop_non_finite``:
    then such rows are dropped with a warning (for motion-capture collections, where a lost
    marker leaves a few such frames).

    With ``sampler_orientation``, the pose sampler's files (zero orientation, ``posture``
    names) get the upright orientation each posture stands in
    (:func:`spin_diff.priors.pose_sampler.upright_global_orient`).

    Raises:
        MissingInputError: no file at ``path``.
        BadInputError: unreadable file, no pose key, wrong shapes, non-numeric poses, or
            rows with NaN/inf when ``drop_non_finite`` is False.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"pose file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:
        raise BadInputError(f"cannot read {path}: not a readable npz of poses ({type(err).__name__}: {err})") from err
    if not hasattr(data, "files"):
        raise BadInputError(
            f"{path} holds a bare array, not an .npz with a 'pose' or 'poses' key; save it as np.savez(FILE, pose=POSES)"
        )
    with data:
        keys = list(data.files)
        if "poses" in keys:
            poses, source = data["poses"], "poses (AMASS layout)"
            if poses.ndim != 2 or poses.shape[1] < NUM_POSE:
                raise BadInputError(
                    f"{path}: 'poses' must be (N, >= 72) SMPL axis-angle, got shape {poses.shape}"
                )
        elif "pose" in keys:
            poses, source = data["pose"], "pose"
            if poses.ndim != 2 or poses.shape[1] != NUM_POSE:
                raise BadInputError(f"{path}: 'pose' must be (N, 72) SMPL axis-angle, got shape {poses.shape}")
            if "has_smpl" in keys:  # a SPIN dataset file
                has_smpl = np.asarray(data["has_smpl"]).reshape(-1)
                if has_smpl.shape[0] != poses.shape[0]:
                    raise BadInputError(
                        f"{path}: has_smpl has {has_smpl.shape[0]} rows but pose has {poses.shape[0]}"
                    )
                poses, source = poses[has_smpl == 1], "pose rows with has_smpl == 1 (SPIN dataset)"
            elif sampler_orientation and "posture" in keys and not np.any(poses[:, :3]):
                poses = np.array(poses, dtype=np.float64)
                poses[:, :3] = upright_global_orient(poses[:, 3:], [str(p) for p in data["posture"]])
        else:
            raise BadInputError(
                f"{path} has no pose key: no 'pose' array (N, 72; sampler output or SPIN dataset) and no 'poses' "
                f"(N, >= 72; AMASS); found {keys}"
            )
    try:
        poses = np.asarray(poses[:, :NUM_POSE], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BadInputError(f"{path}: {source} is not numeric ({err})") from err
    finite = np.isfinite(poses).all(axis=1)
    if not finite.all() and not drop_non_finite:
        raise BadInputError(
            f"{path}: {int((~finite).sum())} of {len(poses)} poses hold NaN or inf; remove those rows "
            "(or, from Python, read with drop_non_finite=True)"
        )
    if not finite.all():
        log.warning("%s: dropped %d of %d rows with NaN or inf", path, int((~finite).sum()), len(poses))
        poses = poses[finite]
    log.info("%s: %d poses from %s", path, len(poses), source)
    return poses
