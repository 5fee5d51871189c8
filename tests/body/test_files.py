"""Finding a body model and SPIN's companion files in the folder layouts users already have."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from spin_diff.body.files import resolve_body_model
from spin_diff.body.model import load_body_model


def test_spin_data_folder_layout(random_smpl):
    """data/smpl/SMPL_NEUTRAL.pkl with SPIN's files in data/ (SPIN's own layout)."""
    files = resolve_body_model(random_smpl.folder)
    assert not files.bundled
    assert files.model == random_smpl.model_file
    assert files.j_regressor_extra == random_smpl.folder / "J_regressor_extra.npy"
    assert files.j_regressor_h36m == random_smpl.folder / "J_regressor_h36m.npy"
    assert files.mean_params == random_smpl.folder / "smpl_mean_params.npz"
    assert files.vertex_ids == random_smpl.folder / "vertex_ids.json"


def test_model_file_given_directly(random_smpl):
    files = resolve_body_model(random_smpl.model_file)
    assert files.model == random_smpl.model_file
    assert files.j_regressor_extra == random_smpl.folder / "J_regressor_extra.npy"


def test_flat_layout(tmp_path, random_smpl):
    """DIR/SMPL_NEUTRAL.pkl with the companions beside it."""
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(random_smpl.model_file, flat / "SMPL_NEUTRAL.pkl")
    for name in ("J_regressor_extra.npy", "J_regressor_h36m.npy", "smpl_mean_params.npz", "vertex_ids.json"):
        shutil.copy(random_smpl.folder / name, flat / name)
    body = load_body_model(flat)
    assert body.files.model == flat / "SMPL_NEUTRAL.pkl"
    assert body.files.j_regressor_extra == flat / "J_regressor_extra.npy"
    assert body.mean_params is not None


def test_companions_two_folders_up(tmp_path, random_smpl):
    """models/smpl/SMPL_NEUTRAL.pkl inside a project whose data/ sits two levels above the file."""
    root = tmp_path / "project"
    model_file = root / "models" / "smpl" / "SMPL_NEUTRAL.pkl"
    model_file.parent.mkdir(parents=True)
    shutil.copy(random_smpl.model_file, model_file)
    shutil.copy(random_smpl.folder / "J_regressor_extra.npy", root / "J_regressor_extra.npy")
    files = resolve_body_model(model_file)
    assert files.j_regressor_extra == root / "J_regressor_extra.npy"
    assert files.mean_params is None


def test_smplify_file_name(tmp_path, random_smpl):
    folder = tmp_path / "smplify"
    folder.mkdir()
    shutil.copy(random_smpl.model_file, folder / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
    assert resolve_body_model(folder).model.name == "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"


def test_explicit_companions_win(tmp_path, random_smpl):
    other = tmp_path / "other_extra.npy"
    regressor = np.roll(random_smpl.j_regressor_extra, 5, axis=1)
    np.save(other, regressor)
    body = load_body_model(random_smpl.folder, j_regressor_extra=other)
    assert body.files.j_regressor_extra == other
    np.testing.assert_allclose(body.extra_regressor.numpy(), regressor, rtol=1e-6)


@pytest.mark.parametrize("name", [None, "bundled", "free", "BUNDLED"])
def test_bundled_aliases(name):
    assert resolve_body_model(name).bundled


def test_missing_mean_params_are_reported_on_use(tmp_path, random_smpl):
    (random_smpl.folder / "smpl_mean_params.npz").unlink()
    body = load_body_model(random_smpl.folder)
    assert body.mean_params is None
    with pytest.raises(FileNotFoundError, match="smpl_mean_params.npz"):
        body.mean_pose_rotmat()


def test_missing_extra_regressor_is_reported_on_use(random_smpl):
    (random_smpl.folder / "J_regressor_extra.npy").unlink()
    body = load_body_model(random_smpl.folder)
    assert "unavailable" in str(body.info()["keypoint joints"])
    with pytest.raises(FileNotFoundError, match="J_regressor_extra.npy"):
        body.joints(torch.zeros(1, 72), torch.zeros(1, 10))
