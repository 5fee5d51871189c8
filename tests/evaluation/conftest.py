"""Fixtures for the evaluation tests: the bundled body model and SPIN-format files built here."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spin_diff.body.model import pose_to_rotmat
from spin_diff.evaluation.protocols import GT_PELVIS, J24_TO_J17, mesh_joints


def sample_bodies(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poses (num, 72) from the pose sampler, facing the camera, and betas (num, 10)."""
    from spin_diff.data.people import sample_global_orient
    from spin_diff.priors.pose_sampler import sample_poses

    rng = np.random.default_rng(seed)
    body_pose, _ = sample_poses(num, rng)
    orient, _ = sample_global_orient(num, rng)
    return np.concatenate([orient, body_pose], 1), np.clip(rng.standard_normal((num, 10)), -2, 2)


def s_from_bodies(body, pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """SPIN's ``S`` (N, 24, 4): the 17 evaluation joints of the meshes placed in the 24-joint
    layout (pelvis-centred, as SPIN's H36M files), confidence 1 there, other joints 0."""
    with torch.no_grad():
        joints, _ = mesh_joints(
            body,
            pose_to_rotmat(torch.tensor(pose, dtype=torch.float32)),
            torch.tensor(betas, dtype=torch.float32),
            17,
        )
    S = np.zeros((pose.shape[0], 24, 4))
    S[:, list(J24_TO_J17), :3] = joints.numpy()
    S[:, list(J24_TO_J17), 3] = 1.0
    assert np.allclose(S[:, GT_PELVIS, :3], 0, atol=1e-6)
    return S


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def box_keys(num: int) -> dict:
    return {
        "imgname": np.array([f"images/{i:06d}.jpg" for i in range(num)]),
        "center": np.tile([[320.0, 240.0]], (num, 1)),
        "scale": np.full(num, 1.6),
    }


@pytest.fixture(scope="session")
def eval_files():
    """SPIN's evaluation files, written here with their exact keys, from bodies of the bundled
    model so that their ground truth is known: ``sample_bodies``, ``s_from_bodies``,
    ``write_npz``, ``box_keys``."""
    return SimpleNamespace(sample_bodies=sample_bodies, s_from_bodies=s_from_bodies, write_npz=write_npz, box_keys=box_keys)
