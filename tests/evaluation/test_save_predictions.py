"""`spin-diff eval --save-predictions`: SPIN's --result_file, read back against the CSV errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from spin_diff.body.model import pose_to_rotmat
from spin_diff.cli.main import main
from spin_diff.evaluation import run
from spin_diff.evaluation.protocols import GT_PELVIS, J24_TO_J14, load_eval_set, mesh_joints
from spin_diff.geometry.cameras import weak_perspective_to_translation
from spin_diff.models.checkpoints import save_regressor
from spin_diff.models.config import HeadConfig, KeypointEncoderConfig, RegressorConfig
from spin_diff.models.hmr import build_regressor

FAST = ["--set", "fitting.stages.0.iterations=5", "--set", "fitting.stages.1.iterations=5"]
N = 4


@pytest.fixture(scope="module")
def h36m_file(tmp_path_factory, body_model, eval_files):
    """An H36M-style file (ground truth ``S`` only) with 2D keypoints for a keypoint regressor."""
    folder = tmp_path_factory.mktemp("h36m")
    pose, betas = eval_files.sample_bodies(N, seed=5)
    rng = np.random.default_rng(1)
    keypoints = {
        name: np.concatenate([rng.uniform(200, 440, (N, count, 2)), np.ones((N, count, 1))], -1)
        for name, count in (("openpose", 25), ("part", 24))
    }
    return eval_files.write_npz(
        folder / "h36m_valid_protocol1.npz", **eval_files.box_keys(N), **keypoints,
        S=eval_files.s_from_bodies(body_model, pose, betas),
    )  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, body_model):
    torch.manual_seed(0)
    config = RegressorConfig(
        input="keypoints",
        head=HeadConfig(hidden=32),
        keypoints=KeypointEncoderConfig(hidden=32, blocks=1, feature_dim=16),
    )
    return save_regressor(build_regressor(config, body=body_model), tmp_path_factory.mktemp("ckpt") / "kp.pt")


def eval_args(checkpoint, dataset, *extra) -> list[str]:
    return ["eval", "--checkpoint", str(checkpoint), "--dataset", str(dataset), "--quiet", *extra]


def test_saved_joints_reproduce_the_csv_errors(body_model, h36m_file, checkpoint, tmp_path, capsys):
    out, saved = tmp_path / "eval", tmp_path / "preds" / "result.npz"
    args = eval_args(checkpoint, h36m_file, "--refine", "smplify", "--out", str(out), *FAST)
    assert main([*args, "--save-predictions", str(saved)]) == 0
    assert f"predictions: {saved}" in capsys.readouterr().out
    with (out / "per_sample.csv").open() as handle:
        table = list(csv.DictReader(handle))
    S = np.load(h36m_file)["S"]
    truth = S[:, list(J24_TO_J14), :3] - S[:, GT_PELVIS : GT_PELVIS + 1, :3]
    with np.load(saved) as predictions:
        assert predictions["index"].tolist() == [int(r["index"]) for r in table]
        assert predictions["imgname"].tolist() == [r["imgname"] for r in table]
        for prefix, row in (("", "none"), ("smplify_", "smplify")):
            joints = predictions[prefix + "pred_joints"]
            assert joints.shape == (N, 14, 3) and predictions[prefix + "spin_joints"].shape == (N, 49, 3)
            mpjpe = 1000 * np.linalg.norm(joints - truth, axis=-1).mean(-1)
            np.testing.assert_allclose(mpjpe, [float(r[f"{row}_mpjpe"]) for r in table], atol=1e-3)
            # pose and betas are the body the joints come from; camera and transl one camera
            pose, betas = predictions[prefix + "pose"], predictions[prefix + "betas"]
            assert pose.shape == (N, 72) and betas.shape == (N, body_model.num_betas)
            with torch.no_grad():
                rotmat = pose_to_rotmat(torch.as_tensor(pose))
                again, _ = mesh_joints(body_model, rotmat, torch.as_tensor(betas))
            np.testing.assert_allclose(again.numpy(), joints, atol=1e-5)
            camera = torch.as_tensor(predictions[prefix + "camera"])
            assert camera.shape == (N, 3) and bool((camera[:, 0] > 0).all())
            transl = weak_perspective_to_translation(camera.double()).numpy()
            np.testing.assert_allclose(transl, predictions[prefix + "transl"], rtol=1e-4)


def test_an_existing_file_is_kept_unless_overwrite(h36m_file, checkpoint, tmp_path, capsys):
    saved = tmp_path / "result.npz"
    saved.write_bytes(b"keep me")
    assert main(eval_args(checkpoint, h36m_file, "--save-predictions", str(saved))) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "exists; pass --overwrite" in err
    assert saved.read_bytes() == b"keep me"
    assert main(eval_args(checkpoint, h36m_file, "--save-predictions", str(saved), "--overwrite")) == 0
    assert np.load(saved)["pose"].shape == (N, 72)


def test_an_unwritable_place_gets_one_line_and_no_file(h36m_file, checkpoint, tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    inside_a_file = not_a_folder / "sub" / "result.npz"
    assert main(eval_args(checkpoint, h36m_file, "--save-predictions", str(inside_a_file))) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot create its folder" in err
    assert main(eval_args(checkpoint, h36m_file, "--save-predictions", str(tmp_path))) == 2
    assert "is a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    # a new folder is made only once the predictions exist
    late = tmp_path / "new" / "deeper" / "result.npz"
    assert main(eval_args(checkpoint, h36m_file, "--save-predictions", str(late))) == 0
    assert sorted(p.name for p in late.parent.iterdir()) == ["result.npz"]


def test_a_failed_write_leaves_no_partial_file(body_model, h36m_file, monkeypatch, tmp_path):
    result = run.evaluate(load_eval_set(h36m_file), body_model, progress=False, keep_predictions=True)
    assert np.isnan(result.predictions["none"]["camera"]).all()  # the mean pose has no camera

    def disk_full(handle, **arrays):
        handle.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run.np, "savez", disk_full)
    with pytest.raises(run.BadInputError, match="No space left"):
        run.write_predictions(result, tmp_path / "result.npz")
    assert list(tmp_path.iterdir()) == []
