"""SPIN's evaluation protocols: metrics against independent implementations, and SPIN's
evaluation files read as they are."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from spin_diff.body.model import pose_to_rotmat
from spin_diff.evaluation.protocols import (
    GroundTruthBodies,
    load_eval_set,
    mesh_joints,
    pose_errors,
)


def scipy_pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Similarity Procrustes with scipy's Kabsch solver (proper rotations only), then the scale
    that minimises the squared error, per sample."""
    p, g = pred - pred.mean(0), gt - gt.mean(0)
    rotation, _ = Rotation.align_vectors(g, p)  # argmin_R |g - R p|
    rotated = rotation.apply(p)
    scale = (rotated * g).sum() / (rotated * rotated).sum()
    return float(np.linalg.norm(scale * rotated - g, axis=1).mean())


def test_mpjpe_and_pa_mpjpe_agree_with_scipy_on_random_data():
    rng = np.random.default_rng(0)
    pred = rng.normal(0, 0.3, (64, 14, 3))
    gt = rng.normal(0, 0.3, (64, 14, 3))
    ours = pose_errors(torch.tensor(pred), torch.tensor(gt))
    expected_mpjpe = 1000 * np.linalg.norm(pred - gt, axis=-1).mean(-1)
    expected_pa = 1000 * np.array([scipy_pa_mpjpe(p, g) for p, g in zip(pred, gt)])
    assert np.abs(ours["mpjpe"].numpy() - expected_mpjpe).max() < 1e-4
    assert np.abs(ours["pa_mpjpe"].numpy() - expected_pa).max() < 1e-4


def test_pa_mpjpe_agrees_with_scipys_orthogonal_procrustes_plus_scale():
    """Targets that are rotated, scaled, shifted, noisy copies: the best orthogonal map is a
    rotation, so scipy.linalg.orthogonal_procrustes gives the same alignment."""
    rng = np.random.default_rng(1)
    pred = rng.normal(0, 0.3, (32, 14, 3))
    rotations = Rotation.random(32, random_state=2).as_matrix()
    gt = 1.3 * np.einsum("bij,bnj->bni", rotations, pred) + rng.normal(0, 1, (32, 1, 3))
    gt += rng.normal(0, 0.02, gt.shape)
    expected = []
    for p, g in zip(pred, gt):
        p0, g0 = p - p.mean(0), g - g.mean(0)
        r, singular_sum = orthogonal_procrustes(p0, g0)  # argmin |p0 R - g0|
        assert np.linalg.det(r) > 0
        scale = singular_sum / (p0**2).sum()
        expected.append(1000 * np.linalg.norm(scale * p0 @ r - g0, axis=1).mean())
    ours = pose_errors(torch.tensor(pred), torch.tensor(gt))["pa_mpjpe"].numpy()
    assert np.abs(ours - np.array(expected)).max() < 1e-4


def test_reflected_prediction_is_not_aligned_away():
    rng = np.random.default_rng(3)
    gt = rng.normal(0, 0.3, (1, 14, 3))
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert pose_errors(torch.tensor(mirrored), torch.tensor(gt))["pa_mpjpe"].item() > 10


def test_mesh_joints_match_smplx_vertices_through_the_h36m_regressor(body_model, eval_files):
    """Independent path: smplx's vertices (float64 numpy), the regressor matrix, SPIN's indices."""
    pose, betas = eval_files.sample_bodies(3, seed=4)
    rot = pose_to_rotmat(torch.tensor(pose, dtype=torch.float32))
    joints, vertices = mesh_joints(body_model, rot, torch.tensor(betas, dtype=torch.float32))
    with torch.no_grad():
        raw = (
            body_model.smpl(
                betas=torch.tensor(betas, dtype=torch.float32),
                global_orient=rot[:, :1],
                body_pose=rot[:, 1:],
                pose2rot=False,
            )
            .vertices.double()
            .numpy()
        )
    regressed = np.einsum("jv,bvc->bjc", body_model.h36m_regressor.double().numpy(), raw)
    h36m_to_j14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]  # SPIN's constants
    expected = regressed[:, h36m_to_j14] - regressed[:, :1]
    assert np.abs(joints.double().numpy() - expected).max() < 1e-5
    assert np.abs(vertices.double().numpy() - (raw - regressed[:, :1])).max() < 1e-5


@pytest.fixture(scope="module")
def bodies(body_model, eval_files):
    pose, betas = eval_files.sample_bodies(6, seed=7)
    return pose, betas, eval_files.s_from_bodies(body_model, pose, betas)


def test_spin_evaluation_files_are_read_unchanged(tmp_path, bodies, eval_files):
    pose, betas, S = bodies
    n = pose.shape[0]
    rng = np.random.default_rng(0)
    part = np.concatenate([rng.uniform(0, 400, (n, 24, 2)), np.ones((n, 24, 1))], -1)
    files = {
        "h36m_valid_protocol1.npz": ("h36m-p1", dict(**eval_files.box_keys(n), S=S)),
        "h36m_valid_protocol2.npz": ("h36m-p2", dict(**eval_files.box_keys(n), S=S)),
        "3dpw_test.npz": (
            "3dpw",
            dict(**eval_files.box_keys(n), pose=pose, shape=betas, gender=np.array(["m", "f"] * (n // 2))),
        ),
        "mpi_inf_3dhp_test.npz": ("mpi-inf-3dhp", dict(**eval_files.box_keys(n), S=S, part=part)),
        "lsp_dataset_test.npz": (
            "lsp",
            dict(
                **eval_files.box_keys(n), maskname=np.array(["m.png"] * n), partname=np.array(["p.png"] * n), part=part
            ),
        ),
    }
    for name, (protocol, arrays) in files.items():
        evalset = load_eval_set(eval_files.write_npz(tmp_path / name, **arrays))
        assert evalset.protocol == protocol, name
        assert sorted(evalset.data) == sorted(arrays)
        for key, value in arrays.items():
            assert np.array_equal(evalset.data[key], value), (name, key)
    assert load_eval_set(tmp_path / "mpi_inf_3dhp_test.npz").joint_count == 17


def test_ground_truth_from_S_and_from_SMPL_agree(body_model, bodies, eval_files):
    """The same bodies as S (H36M-style file) and as SMPL parameters give the same joints."""
    from spin_diff.evaluation.protocols import EvalSet

    pose, betas, S = bodies
    rows = np.arange(pose.shape[0])
    from_s = GroundTruthBodies(EvalSet(None, "h36m-p1", dict(**eval_files.box_keys(6), S=S)), body_model).batch(
        rows, "cpu"
    )[0]
    smpl_set = EvalSet(None, "smpl", dict(**eval_files.box_keys(6), pose=pose, shape=betas))
    from_smpl, vertices = GroundTruthBodies(smpl_set, body_model).batch(rows, "cpu")
    assert torch.allclose(from_s, from_smpl, atol=1e-6) and vertices is not None


def test_3dpw_uses_the_gendered_models(body_model, other_body_model, bodies, eval_files):
    from spin_diff.evaluation.protocols import EvalSet

    pose, betas, _ = bodies
    gender = np.array(["m", "f", "f", "m", "m", "f"])
    evalset = EvalSet(None, "3dpw", dict(**eval_files.box_keys(6), pose=pose, shape=betas, gender=gender))
    joints, _ = GroundTruthBodies(evalset, body_model, male=body_model, female=other_body_model).batch(
        np.arange(6), "cpu"
    )
    rot = pose_to_rotmat(torch.tensor(pose, dtype=torch.float32))
    male, _ = mesh_joints(body_model, rot, torch.tensor(betas, dtype=torch.float32))
    female, _ = mesh_joints(other_body_model, rot, torch.tensor(betas, dtype=torch.float32))
    is_f = torch.tensor(gender == "f")
    assert torch.allclose(joints[is_f], female[is_f]) and torch.allclose(joints[~is_f], male[~is_f])
    assert not torch.allclose(male, female, atol=1e-3)
    neutral_only = EvalSet(None, "3dpw", dict(**eval_files.box_keys(6), pose=pose, shape=betas, gender=gender))
    GroundTruthBodies(neutral_only, body_model)
    assert any("NEUTRAL" in note for note in neutral_only.notes)


def test_files_missing_what_their_protocol_needs_are_refused(tmp_path, eval_files):
    from spin_diff.data.spin_npz import SpinDataError

    with pytest.raises(SpinDataError, match=r"h36m-p1 protocol needs key\(s\) \['S'\]"):
        load_eval_set(eval_files.write_npz(tmp_path / "h36m_valid_protocol1.npz", **eval_files.box_keys(2)))
    with pytest.raises(ValueError, match="cannot tell its evaluation protocol"):
        load_eval_set(eval_files.write_npz(tmp_path / "mystery.npz", **eval_files.box_keys(2)))
    with pytest.raises(SpinDataError, match="has_smpl = 0"):
        load_eval_set(
            eval_files.write_npz(
                tmp_path / "x.npz",
                **eval_files.box_keys(2),
                pose=np.zeros((2, 72)),
                shape=np.zeros((2, 10)),
                has_smpl=np.array([1.0, 0.0]),
            )
        )
