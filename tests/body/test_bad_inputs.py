"""Wrong paths, broken files and malformed tensors fail early with a message that says what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spin_diff.body.files import BodyModelNotFoundError, resolve_body_model
from spin_diff.body.model import load_body_model
from spin_diff.body.smpl_format import SMPLFileError


def assert_explains_how_to_get_smpl(message: str) -> None:
    assert "smpl.is.tue.mpg.de" in message, message
    assert "bundled" in message, message
    assert "--body-model" in message, message


def test_missing_model_path(tmp_path):
    path = tmp_path / "models" / "SMPL_NEUTRAL.pkl"
    with pytest.raises(BodyModelNotFoundError) as info:
        load_body_model(path)
    assert str(path) in str(info.value)
    assert_explains_how_to_get_smpl(str(info.value))
    assert isinstance(info.value, FileNotFoundError)  # callers catching the builtin still work


def test_folder_without_a_model(tmp_path):
    (tmp_path / "smpl").mkdir()
    (tmp_path / "smpl" / "README.txt").write_text("nothing here")
    with pytest.raises(BodyModelNotFoundError) as info:
        load_body_model(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "SMPL_NEUTRAL.pkl" in message
    assert_explains_how_to_get_smpl(message)


def test_folder_with_another_gender_only(random_smpl):
    with pytest.raises(BodyModelNotFoundError) as info:
        resolve_body_model(random_smpl.folder, gender="female")
    assert "female" in str(info.value)
    assert_explains_how_to_get_smpl(str(info.value))


def test_bundled_model_is_neutral_only():
    with pytest.raises(BodyModelNotFoundError, match="neutral"):
        resolve_body_model(None, gender="male")
    with pytest.raises(ValueError, match="gender"):
        resolve_body_model(None, gender="robot")


@pytest.mark.parametrize("layout", ["flat", "smpl_subfolder"])
def test_corrupt_pkl_in_a_model_folder(tmp_path, layout):
    folder = tmp_path / "models"
    model_file = folder / ("SMPL_NEUTRAL.pkl" if layout == "flat" else "smpl/SMPL_NEUTRAL.pkl")
    model_file.parent.mkdir(parents=True)
    model_file.write_bytes(b"\x80\x02}q\x00(X\x0a\x00\x00\x00v_templ")  # cut off mid-pickle
    with pytest.raises(SMPLFileError) as info:
        load_body_model(folder)
    assert str(model_file) in str(info.value)


def test_companion_regressor_of_wrong_width(tmp_path, random_smpl):
    wrong = tmp_path / "J_regressor_extra_other_model.npy"
    np.save(wrong, np.full((9, random_smpl.num_vertices + 1), 1.0 / (random_smpl.num_vertices + 1)))
    with pytest.raises(SMPLFileError) as info:
        load_body_model(random_smpl.folder, j_regressor_extra=wrong)
    message = str(info.value)
    assert str(wrong) in message and f"(9, {random_smpl.num_vertices})" in message


def test_companion_regressor_in_the_data_folder_of_wrong_width(random_smpl):
    """A user drops SMPL's 6890-vertex regressor next to another model: caught at load time."""
    np.save(random_smpl.folder / "J_regressor_h36m.npy", np.zeros((17, 6890)))
    with pytest.raises(SMPLFileError, match="J_regressor_h36m"):
        load_body_model(random_smpl.folder)


def test_explicit_companion_that_does_not_exist(tmp_path, random_smpl):
    missing = tmp_path / "nowhere" / "J_regressor_extra.npy"
    with pytest.raises(BodyModelNotFoundError, match="J_regressor_extra"):
        load_body_model(random_smpl.folder, j_regressor_extra=missing)


def test_model_without_vertex_ids(random_smpl):
    """A model that is not SMPL's 6890-vertex mesh needs vertex_ids.json for the keypoint vertices."""
    (random_smpl.folder / "vertex_ids.json").unlink()
    with pytest.raises(SMPLFileError, match="vertex_ids.json"):
        load_body_model(random_smpl.folder)


# ---------------------------------------------------------------------------------------------
# Tensor inputs.


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def valid_inputs(batch: int = 2):
    return torch.zeros(batch, 72), torch.zeros(batch, 10), torch.zeros(batch, 3)


@pytest.mark.parametrize("method", ["forward", "joints"])
@pytest.mark.parametrize("shape", [(2, 71), (2, 24, 4), (2, 23, 3), (72,), (2, 24, 3, 4), (2, 24, 2, 3)])
def test_wrong_pose_shape(body, method, shape):
    _, betas, transl = valid_inputs()
    with pytest.raises(ValueError) as info:
        getattr(body, method)(torch.zeros(shape), betas, transl)
    message = str(info.value)
    assert "pose" in message and "(B, 72)" in message and str(tuple(shape)) in message


@pytest.mark.parametrize("method", ["forward", "joints"])
@pytest.mark.parametrize("shape", [(3, 10), (2, 11), (10,), (2, 10, 1)])
def test_wrong_betas_shape(body, method, shape):
    pose, _, transl = valid_inputs()
    with pytest.raises(ValueError) as info:
        getattr(body, method)(pose, torch.zeros(shape), transl)
    message = str(info.value)
    assert "betas" in message and "10" in message and str(tuple(shape)) in message


@pytest.mark.parametrize("method", ["forward", "joints"])
@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (3,), (2, 1, 3)])
def test_wrong_transl_shape(body, method, shape):
    pose, betas, _ = valid_inputs()
    with pytest.raises(ValueError) as info:
        getattr(body, method)(pose, betas, torch.zeros(shape))
    message = str(info.value)
    assert "transl" in message and "(2, 3)" in message and str(tuple(shape)) in message


@pytest.mark.parametrize("argument", ["pose", "betas", "transl"])
def test_nan_input_to_forward(body, argument):
    inputs = dict(zip(("pose", "betas", "transl"), valid_inputs()))
    inputs[argument][1, 0] = float("nan")
    with pytest.raises(ValueError) as info:
        body.forward(**inputs)
    assert argument in str(info.value) and "NaN" in str(info.value)


def test_nan_check_on_request_in_fast_path(body):
    pose, betas, transl = valid_inputs()
    pose[0, 5] = float("inf")
    with pytest.raises(ValueError, match="pose contains NaN or inf"):
        body.joints(pose, betas, transl, check_finite=True)


def test_fewer_betas_are_zero_padded(body):
    """betas (B, S) with S < 10 mean the remaining coefficients are zero, in both paths."""
    gen = torch.Generator().manual_seed(0)
    pose = 0.3 * torch.randn(2, 72, generator=gen)
    betas = torch.randn(2, 4, generator=gen)
    padded = torch.cat([betas, torch.zeros(2, 6)], dim=1)
    with torch.no_grad():
        expected = body.forward(pose, padded).joints
        torch.testing.assert_close(body.joints(pose, betas).joints, expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(body.forward(pose, betas).joints, expected, rtol=0, atol=1e-5)


def test_fitting_without_j_regressor_extra_is_a_clear_error(random_smpl):
    """Without J_regressor_extra.npy, 9 of the 49 joints have no regressor: fitting, scoring
    and every joints call refuse, instead of fitting with those joints at the origin."""
    from spin_diff.fitting.config import FittingConfig, StageConfig
    from spin_diff.fitting.smplify import SMPLify

    (random_smpl.folder / "J_regressor_extra.npy").unlink()
    body = load_body_model(random_smpl.model_file)
    reprojection_only = FittingConfig(stages=[StageConfig(name="body", iterations=2, terms={"reprojection": 1.0})])
    with pytest.raises(BodyModelNotFoundError, match="J_regressor_extra.npy") as info:
        SMPLify(body, reprojection_only)
    assert "--set body.j_regressor_extra=PATH" in str(info.value)
    with pytest.raises(BodyModelNotFoundError, match="J_regressor_extra.npy"):
        body.joints(torch.zeros(1, 72), torch.zeros(1, 10))
