"""The one reader of pose files: which layouts it takes, and what it does with NaN rows."""

from __future__ import annotations

import numpy as np
import pytest

from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.priors.pose_files import read_body_poses, read_smpl_poses


def _poses(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.3, (n, 72))


def test_amass_and_spin_layouts_read_the_same_poses(tmp_path):
    poses = _poses()
    np.savez(tmp_path / "amass.npz", poses=np.concatenate([poses, np.zeros((5, 84))], axis=1))
    np.savez(tmp_path / "spin.npz", pose=np.concatenate([poses, poses]), has_smpl=np.repeat([1, 0], 5))
    np.testing.assert_array_equal(read_smpl_poses(tmp_path / "amass.npz"), poses)
    np.testing.assert_array_equal(read_smpl_poses(tmp_path / "spin.npz"), poses)  # has_smpl == 0 rows left out
    np.testing.assert_array_equal(read_body_poses(tmp_path / "spin.npz"), poses[:, 3:])


def test_nan_rows_are_refused_by_default_and_dropped_when_asked(tmp_path):
    poses = _poses()
    poses[[1, 3], 10] = np.nan
    poses[4, 0] = np.inf
    np.savez(tmp_path / "gaps.npz", pose=poses)
    with pytest.raises(BadInputError, match=r"gaps\.npz: 3 of 5 poses hold NaN or inf"):
        read_smpl_poses(tmp_path / "gaps.npz")
    kept = read_smpl_poses(tmp_path / "gaps.npz", drop_non_finite=True)
    np.testing.assert_array_equal(kept, poses[[0, 2]])


def test_wrong_files_get_one_line_naming_the_file(tmp_path):
    with pytest.raises(MissingInputError, match="none.npz"):
        read_smpl_poses(tmp_path / "none.npz")
    np.savez(tmp_path / "short.npz", pose=np.zeros((3, 70)))
    with pytest.raises(BadInputError, match=r"short\.npz: 'pose' must be \(N, 72\)"):
        read_smpl_poses(tmp_path / "short.npz")
    np.save(tmp_path / "bare.npy", np.zeros((3, 72)))
    with pytest.raises(BadInputError, match="bare array"):
        read_smpl_poses(tmp_path / "bare.npy")
