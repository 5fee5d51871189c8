"""`spin-diff eval` end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from spin_diff.cli.main import main
from spin_diff.geometry.rotations import matrix_to_axis_angle, rot6d_to_matrix
from spin_diff.models.checkpoints import save_regressor
from spin_diff.models.config import HeadConfig, KeypointEncoderConfig, RegressorConfig
from spin_diff.models.hmr import build_regressor

FAST = ["--set", "fitting.stages.0.iterations=10", "--set", "fitting.stages.1.iterations=10"]
KEYPOINT_CONFIG = RegressorConfig(
    input="keypoints",
    head=HeadConfig(hidden=32),
    keypoints=KeypointEncoderConfig(hidden=32, blocks=1, feature_dim=16),
)
IMAGE_CONFIG = RegressorConfig(input="image", backbone="resnet18", width=0.125, head=HeadConfig(hidden=32))


def mean_predictor(body_model, path, config=KEYPOINT_CONFIG):
    """A checkpoint whose heads are zero: it predicts the body model's mean parameters for every input."""
    torch.manual_seed(0)
    model = build_regressor(config, body=body_model)
    with torch.no_grad():
        for layer in (model.head.decpose, model.head.decshape, model.head.deccam):
            layer.weight.zero_()
            layer.bias.zero_()
    return save_regressor(model, path)


def evaluate_checkpoint(checkpoint, dataset, out) -> dict:
    """Run `spin-diff eval --checkpoint`; return its JSON summary."""
    assert (
        main(
            ["eval", "--checkpoint", str(checkpoint), "--dataset", str(dataset), "--out", str(out), "--quiet"]
        )
        == 0
    )
    return json.loads((out / "summary.json").read_text())


def random_keypoints(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    openpose = np.concatenate([rng.uniform(200, 440, (n, 25, 2)), np.ones((n, 25, 1))], -1)
    part = np.concatenate([rng.uniform(200, 440, (n, 24, 2)), np.ones((n, 24, 1))], -1)
    return openpose, part


def test_a_checkpoint_that_predicts_the_ground_truth_scores_zero(body_model, tmp_path, capsys, eval_files):
    """Ground truth = the mean parameters; the zero-head checkpoint predicts exactly them."""
    n = 5
    mean = body_model.mean_params
    mean_pose = matrix_to_axis_angle(rot6d_to_matrix(mean["pose"].view(24, 6))).reshape(72).numpy()
    openpose, part = random_keypoints(n)
    dataset = eval_files.write_npz(
        tmp_path / "synthetic.npz", **eval_files.box_keys(n), openpose=openpose, part=part,
        pose=np.tile(mean_pose, (n, 1)), shape=np.tile(mean["shape"].numpy(), (n, 1)), has_smpl=np.ones(n),
    )  # fmt: skip
    checkpoint = mean_predictor(body_model, tmp_path / "oracle.pt")
    summary = evaluate_checkpoint(checkpoint, dataset, tmp_path / "eval")
    assert summary["protocol"] == "smpl" and summary["samples"] == n
    for metric in ("mpjpe", "pa_mpjpe", "pve"):
        assert abs(summary["rows"]["none"][metric]) < 1e-3, metric  # mm
    assert "regressor" in capsys.readouterr().out


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert (
        main(["synth", "--out", str(out), "--n", "5", "--seed", "3", "--image-size", "160", "--quiet"]) == 0
    )
    return out


def test_mean_pose_errors_match_an_independent_computation(body_model, synth_set, tmp_path, device):
    """Errors of --init mean on a synthetic set, recomputed with numpy and scipy from smplx's meshes
    (on the cpu, in float64: the reference of ``--device cuda`` too)."""
    from scipy.spatial.transform import Rotation

    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--init",
                "mean",
                "--dataset",
                str(synth_set / "synth.npz"),
                "--out",
                str(out),
                "--quiet",
                "--device",
                str(device),
            ]
        )
        == 0
    )
    data = np.load(synth_set / "synth.npz")
    regressor = body_model.h36m_regressor.double().numpy()
    j14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]

    def joints_and_vertices(rotmat, betas):
        with torch.no_grad():
            v = body_model.smpl(
                betas=betas, global_orient=rotmat[:, :1], body_pose=rotmat[:, 1:], pose2rot=False
            )
        v = v.vertices.double().numpy()
        h36m = np.einsum("jv,bvc->bjc", regressor, v)
        return h36m[:, j14] - h36m[:, :1], v - h36m[:, :1]

    from spin_diff.body.model import pose_to_rotmat

    gt_j, gt_v = joints_and_vertices(
        pose_to_rotmat(torch.tensor(data["pose"], dtype=torch.float32)),
        torch.tensor(data["shape"], dtype=torch.float32),
    )
    pr_j, pr_v = joints_and_vertices(body_model.mean_pose_rotmat(5), torch.zeros(5, 10))
    expected_mpjpe = 1000 * np.linalg.norm(pr_j - gt_j, axis=-1).mean(-1)
    expected_pve = 1000 * np.linalg.norm(pr_v - gt_v, axis=-1).mean(-1)
    expected_pa = []
    for p, g in zip(pr_j, gt_j):
        p0, g0 = p - p.mean(0), g - g.mean(0)
        rotated = Rotation.align_vectors(g0, p0)[0].apply(p0)
        scale = (rotated * g0).sum() / (rotated**2).sum()
        expected_pa.append(1000 * np.linalg.norm(scale * rotated - g0, axis=1).mean())
    with (out / "per_sample.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    got = {k: np.array([float(r[f"none_{k}"]) for r in rows]) for k in ("mpjpe", "pa_mpjpe", "pve")}
    assert np.abs(got["mpjpe"] - expected_mpjpe).max() < 0.01  # float32 body forward vs float64 here
    assert np.abs(got["pa_mpjpe"] - np.array(expected_pa)).max() < 0.01
    assert np.abs(got["pve"] - expected_pve).max() < 0.01
    assert [r["imgname"] for r in rows] == list(data["imgname"])


def test_refinement_rows_write_csv_json_and_table(body_model, synth_set, tmp_path, capsys):
    checkpoint = save_regressor(build_regressor(KEYPOINT_CONFIG, body=body_model), tmp_path / "kp.pt")
    out = tmp_path / "eval"
    code = main(["eval", "--checkpoint", str(checkpoint), "--dataset", str(synth_set / "synth.npz"),
                 "--refine", "guided,smplify,term", "--batch-size", "2", "--out", str(out), "--quiet", *FAST,
                 "--set", "fitting.diffusion.guided.loops=1"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["rows"]) == ["none", "smplify", "term", "guided"]
    for row in ("smplify", "term", "guided"):
        entry = summary["rows"][row]
        assert 0 <= entry["worse_share"] <= 1 and 0 <= entry["better_share"] <= 1
        assert entry["worse_share"] + entry["better_share"] <= 1
        assert np.isfinite(entry["pa_mpjpe"])
    with (out / "per_sample.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and "term_pa_mpjpe" in rows[0] and "guided_failed" in rows[0]
    # The shares are those of the per-sample columns.
    delta = np.array([float(r["smplify_pa_mpjpe"]) - float(r["none_pa_mpjpe"]) for r in rows])
    assert summary["rows"]["smplify"]["worse_share"] == pytest.approx((delta > 1).mean())
    assert "+ SMPLify (GMM + diffusion term)" in printed and "+ guided refinement" in printed
    assert (out / "config.yaml").is_file()
    # from a regressor, eval fits with spin-diff fit's from_regressor recipe (its anchors)
    import yaml

    saved = yaml.safe_load((out / "config.yaml").read_text())["fitting"]
    assert "depth_anchor" in saved["stages"][1]["terms"] and saved["method"] == "guided"


def test_batch_size_does_not_change_the_errors(body_model, synth_set, tmp_path):
    checkpoint = save_regressor(build_regressor(KEYPOINT_CONFIG, body=body_model), tmp_path / "kp.pt")
    columns = []
    for batch in ("1", "5"):
        out = tmp_path / f"b{batch}"
        args = ["--refine", "smplify", "--batch-size", batch, "--out", str(out), "--quiet", *FAST]
        dataset = str(synth_set / "synth.npz")
        assert main(["eval", "--checkpoint", str(checkpoint), "--dataset", dataset, *args]) == 0
        with (out / "per_sample.csv").open() as handle:
            columns.append([float(r["smplify_pa_mpjpe"]) for r in csv.DictReader(handle)])
    assert np.allclose(columns[0], columns[1], atol=1e-2)


def test_h36m_file_with_an_oracle_image_checkpoint(body_model, synth_set, tmp_path, eval_files):
    """An H36M-style file (S only) whose bodies are the mean body: the zero-head image
    checkpoint reads the crops and scores 0 mm on protocol 2."""
    n = 5
    mean = body_model.mean_params
    mean_pose = matrix_to_axis_angle(rot6d_to_matrix(mean["pose"].view(24, 6))).reshape(1, 72).numpy()
    S = eval_files.s_from_bodies(body_model, np.tile(mean_pose, (n, 1)), np.tile(mean["shape"].numpy(), (n, 1)))
    data = np.load(synth_set / "synth.npz")
    dataset = eval_files.write_npz(
        tmp_path / "h36m_valid_protocol2.npz",
        imgname=data["imgname"],
        center=data["center"],
        scale=data["scale"],
        S=S,
    )
    checkpoint = mean_predictor(body_model, tmp_path / "image.pt", IMAGE_CONFIG)
    out = tmp_path / "eval"
    args = ["eval", "--checkpoint", str(checkpoint), "--dataset", str(dataset), "--images", str(synth_set)]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "h36m-p2" and "pve" not in summary["rows"]["none"]
    assert summary["rows"]["none"]["mpjpe"] < 1e-3 and summary["rows"]["none"]["pa_mpjpe"] < 1e-3


def test_lsp_reports_2d_error_of_the_regressor(body_model, tmp_path, eval_files):
    n = 3
    _, part = random_keypoints(n, seed=2)
    names = {"maskname": np.array(["m.png"] * n), "partname": np.array(["p.png"] * n)}
    dataset = eval_files.write_npz(tmp_path / "lsp_dataset_test.npz", **eval_files.box_keys(n), **names, part=part)
    checkpoint = save_regressor(build_regressor(KEYPOINT_CONFIG, body=body_model), tmp_path / "kp.pt")
    summary = evaluate_checkpoint(checkpoint, dataset, tmp_path / "eval")
    assert summary["protocol"] == "lsp" and np.isfinite(summary["rows"]["none"]["kp2d_px"])
    assert any("segmentation metrics are not implemented" in note for note in summary["notes"])


# --- bad input (acceptance item 6) ---------------------------------------------------------


def test_image_checkpoint_without_images_is_refused(body_model, synth_set, tmp_path, capsys):
    checkpoint = save_regressor(build_regressor(IMAGE_CONFIG, body=body_model), tmp_path / "image.pt")
    code = main(
        ["eval", "--checkpoint", str(checkpoint), "--dataset", str(synth_set / "synth.npz"), "--quiet"]
    )
    assert code == 2
    assert "image regressor: it reads the person crops, so pass --images DIR" in capsys.readouterr().err
    code = main(["eval", "--checkpoint", str(checkpoint), "--dataset", str(synth_set / "synth.npz"),
                 "--images", str(tmp_path), "--quiet"])  # fmt: skip
    assert code == 2
    assert "5 image(s) of synth.npz are not under --images" in capsys.readouterr().err


def test_keypoint_checkpoint_or_refinement_on_a_file_without_keypoints(body_model, tmp_path, capsys, eval_files):
    pose, betas = eval_files.sample_bodies(2, seed=1)
    dataset = eval_files.write_npz(
        tmp_path / "h36m_valid_protocol1.npz", **eval_files.box_keys(2), S=eval_files.s_from_bodies(body_model, pose, betas)
    )
    checkpoint = save_regressor(build_regressor(KEYPOINT_CONFIG, body=body_model), tmp_path / "kp.pt")
    assert main(["eval", "--checkpoint", str(checkpoint), "--dataset", str(dataset), "--quiet"]) == 2
    assert "a keypoint regressor needs 2D keypoints" in capsys.readouterr().err
    assert main(["eval", "--init", "mean", "--dataset", str(dataset), "--refine", "smplify", "--quiet"]) == 2
    assert "--refine smplify needs 2D keypoints" in capsys.readouterr().err


def test_checkpoint_of_another_body_model_and_bad_options(
    body_model, other_body_folder, synth_set, tmp_path, capsys
):
    checkpoint = save_regressor(build_regressor(KEYPOINT_CONFIG, body=body_model), tmp_path / "kp.pt")
    dataset = str(synth_set / "synth.npz")
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(checkpoint),
                "--dataset",
                dataset,
                "--body-model",
                str(other_body_folder),
            ]
        )
        == 2
    )
    assert "trained for another body model" in capsys.readouterr().err
    assert main(["eval", "--init", "mean", "--dataset", dataset, "--refine", "smplify,magic"]) == 2
    assert "unknown row(s) ['magic']" in capsys.readouterr().err
    (tmp_path / "cut.pt").write_bytes(checkpoint.read_bytes()[:200])
    assert main(["eval", "--checkpoint", str(tmp_path / "cut.pt"), "--dataset", dataset]) == 2
    assert "truncated" in capsys.readouterr().err
