"""Keypoint-only SPIN datasets written from fitting problems (the training study's data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spin_diff.data.corruption import CorruptionConfig
from spin_diff.data.keypoint_sets import make_problems, write_keypoint_dataset
from spin_diff.data.real_poses import load_real_poses
from spin_diff.data.spin_npz import dataset_keypoints, read_spin_npz
from spin_diff.evaluation.protocols import load_eval_set
from spin_diff.geometry.cameras import perspective_projection


@pytest.fixture(scope="module")
def body_model():
    from spin_diff.body.model import load_body_model

    return load_body_model()


@pytest.fixture(scope="module")
def problems(body_model):
    return make_problems(body_model, 6, seed=3, corruption=CorruptionConfig.preset("detector"),
                         poses=load_real_poses("test"))  # fmt: skip


def test_keypoints_read_back_as_written(problems, tmp_path):
    path = write_keypoint_dataset(problems, tmp_path / "set.npz")
    data = read_spin_npz(path)
    # training and fitting read the corrupted keypoints in the crop: exactly the problems' ones
    np.testing.assert_allclose(dataset_keypoints(data, 224), problems.keypoints.double().numpy(), atol=1e-9)
    np.testing.assert_allclose(data["pose"], problems.pose.double().numpy(), atol=1e-12)
    assert not np.allclose(data["openpose"], data["openpose_detected"])  # clean and detected differ
    assert load_eval_set(path).protocol == "smpl"


def test_ground_truth_joints_project_to_the_clean_keypoints(problems, body_model, tmp_path):
    data = read_spin_npz(write_keypoint_dataset(problems, tmp_path / "set.npz"))
    joints = torch.as_tensor(data["S"][..., :3])  # camera frame, translation applied
    center = torch.full((joints.shape[0], 2), 112.0, dtype=joints.dtype)
    pixels = perspective_projection(joints, torch.zeros(joints.shape[0], 3, dtype=joints.dtype), 5000.0, center)
    np.testing.assert_allclose(pixels.numpy(), data["part"][..., :2], atol=1e-3)
    # and S is the body model's joints of the stored pose and shape, moved by the stored translation
    with torch.no_grad():
        model_joints = body_model.joints(torch.as_tensor(data["pose"], dtype=torch.float32),
                                         torch.as_tensor(data["shape"], dtype=torch.float32)).joints[:, 25:]  # fmt: skip
    np.testing.assert_allclose(model_joints.double().numpy() + data["transl"][:, None], data["S"][..., :3], atol=1e-4)


def test_two_d_only_copy_hides_the_truth(problems, tmp_path):
    data = read_spin_npz(write_keypoint_dataset(problems, tmp_path / "2d.npz", with_ground_truth=False))
    assert not {"pose", "shape", "S", "has_smpl", "transl"} & set(data)
    np.testing.assert_allclose(dataset_keypoints(data, 224), problems.keypoints.double().numpy(), atol=1e-9)


def test_synth_keypoints_only_from_held_out_mocap(tmp_path, capsys):
    from spin_diff.cli.main import main

    out = tmp_path / "kp"
    assert main(["synth", "--out", str(out), "--keypoints-only", "--poses", "cmu-test", "--n", "5", "--seed", "2",
                 "--name", "test"]) == 0  # fmt: skip
    data = read_spin_npz(out / "test.npz")
    assert data["pose"].shape == (5, 72) and data["part_detected"].shape == (5, 24, 3)
    # the bodies are held-out CMU poses (the body pose part is kept; orientation is turned to the camera)
    held_out = load_real_poses("test")[:, 3:]
    assert all(np.abs(held_out - row).max(1).min() < 1e-9 for row in data["pose"][:, 3:])
    assert load_eval_set(out / "test.npz").protocol == "smpl"
    assert main(["synth", "--out", str(out), "--keypoints-only", "--hide-truth", "--n", "3", "--name", "hidden"]) == 0
    assert "pose" not in read_spin_npz(out / "hidden.npz")


@pytest.mark.parametrize("arguments, message", [
    (["--poses", "cmu-test"], "need --keypoints-only"),
    (["--keypoints-only", "--poses", "nowhere.npz"], "no such file"),
    (["--keypoints-only", "--poses", "BAD"], "no 'pose' array"),
    (["--keypoints-only", "--poses", "NPY"], "a bare array"),
    (["--keypoints-only", "--poses", "TEXT"], "not a readable npz"),
    (["--keypoints-only", "--poses", "cmu-test", "--n", "100000"], "problems from"),
])  # fmt: skip
def test_synth_keypoints_only_bad_input_is_one_line(tmp_path, capsys, arguments, message):
    from spin_diff.cli.main import main

    bad = tmp_path / "bad.npz"
    np.savez(bad, betas=np.zeros((3, 10)))  # AMASS-style "poses" files are read: one pose reader for all
    np.save(tmp_path / "poses.npy", np.zeros((3, 72)))
    (tmp_path / "poses.txt").write_text("not an archive")
    files = {"BAD": str(bad), "NPY": str(tmp_path / "poses.npy"), "TEXT": str(tmp_path / "poses.txt")}
    arguments = [files.get(a, a) for a in arguments]
    assert main(["synth", "--out", str(tmp_path / "out"), *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_problems_a_spin_npz_cannot_describe_are_refused(body_model, tmp_path):
    from spin_diff.errors import BadInputError

    shifted = make_problems(body_model, 2, seed=1, shift_px=(0.0, 70.0))
    with pytest.raises(BadInputError, match="shifted"):
        write_keypoint_dataset(shifted, tmp_path / "s.npz")
    other_camera = make_problems(body_model, 2, seed=1, focal_length=1000.0)
    with pytest.raises(BadInputError, match="SPIN's crop camera"):
        write_keypoint_dataset(other_camera, tmp_path / "f.npz")
    assert not (tmp_path / "s.npz").exists() and not (tmp_path / "f.npz").exists()
