"""Held-out real poses bundled with the package: CMU motion capture retargeted to the body model.

``spin_diff/data/poses/cmu_{val,test}.npz`` (written by ``scripts/build_cmu_pose_sets.py``,
sources in ``spin_diff/data/poses/PROVENANCE.md``) hold whole SMPL poses (N, 72, axis-angle,
y-up world) of clips that the bundled priors were *not* trained on: ``val`` for choosing
weights and defaults, ``test`` for reporting only. Their subjects' other clips are in the
training split; ``val_subjects`` and ``test_subjects`` hold whole subjects none of whose clips
were trained on (a person's motion style unseen), for the same two uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.priors.pose_files import read_smpl_poses

POSES_DIR = Path(__file__).resolve().parent / "poses"
REAL_SPLITS = ("val", "test", "val_subjects", "test_subjects")


def real_pose_path(split: str) -> Path:
    if split not in REAL_SPLITS:
        raise BadInputError(f"unknown real-pose split {split!r}; bundled: {', '.join(REAL_SPLITS)} (train is not shipped)")
    return POSES_DIR / f"cmu_{split}.npz"


def load_real_poses(split: str) -> np.ndarray:
    """(N, 72) float64 poses of the bundled CMU ``split``."""
    path = real_pose_path(split)
    if not path.is_file():
        raise MissingInputError(
            f"bundled real poses missing: {path}; rebuild them with scripts/build_cmu_pose_sets.py "
            "(needs the CMU mocap files listed in spin_diff/data/poses/PROVENANCE.md)"
        )
    return read_smpl_poses(path)
