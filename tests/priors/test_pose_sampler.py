"""The plausible-pose sampler: limits, no contortions, postures that look like their names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spin_diff.body.joints import SMPL_JOINT_NAMES, flip_pose
from spin_diff.priors import pose_sampler as ps
from spin_diff.priors.joint_angles import (
    JOINT_LIMITS,
    local_angles_to_pose,
    pose_to_local_angles,
    within_limits,
)
from spin_diff.priors.pose_sampler import POSTURES, sample_poses
from spin_diff.priors.skeleton import self_intersections

REQUIRED = ("standing", "walking", "running", "sitting", "crouching", "reaching", "arms_raised", "bending")
J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


@pytest.fixture(scope="module")
def batch():
    poses, names = sample_poses(1000, np.random.default_rng(0))
    return poses, names


@pytest.fixture(scope="module")
def skeleton(batch):
    """Posed skeleton joints (N, 24, 3) from the bundled body model's own forward pass."""
    from spin_diff.body.model import load_body_model

    model = load_body_model(dtype=torch.float64)
    poses, _ = batch
    full = torch.as_tensor(np.concatenate([np.zeros((len(poses), 3)), poses], axis=1))
    with torch.no_grad():
        return model.joints(full, torch.zeros(len(poses), 10, dtype=torch.float64)).skeleton.numpy()


def test_api_shapes_and_posture_names(batch):
    poses, names = batch
    assert set(REQUIRED) <= set(POSTURES)
    assert poses.shape == (1000, 69) and poses.dtype == np.float64 and np.all(np.isfinite(poses))
    assert isinstance(names, list) and len(names) == 1000 and set(names) == set(POSTURES)


def test_deterministic_given_the_seed():
    a, names_a = sample_poses(50, np.random.default_rng(7), ["walking", "sitting"])
    b, names_b = sample_poses(50, np.random.default_rng(7), ["walking", "sitting"])
    c, _ = sample_poses(50, np.random.default_rng(8), ["walking", "sitting"])
    np.testing.assert_array_equal(a, b)
    assert names_a == names_b and set(names_a) == {"walking", "sitting"}
    assert not np.allclose(a, c)


def test_all_samples_within_joint_limits(batch):
    poses, _ = batch
    angles = pose_to_local_angles(poses)
    low, high = JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1]
    assert np.all(angles >= low - 1e-6) and np.all(angles <= high + 1e-6)
    # Hinges bend one way: knees back (x >= 0), left elbow y <= 0, right elbow y >= 0.
    assert angles[:, J["left_knee"] - 1, 0].min() >= -1e-6 and angles[:, J["right_knee"] - 1, 0].min() >= -1e-6
    assert angles[:, J["left_elbow"] - 1, 1].max() <= 0.05 + 1e-6
    assert angles[:, J["right_elbow"] - 1, 1].min() >= -0.05 - 1e-6
    # The spine and neck move a little, not a lot.
    for joint in ("spine1", "spine2", "spine3"):
        assert np.abs(angles[:, J[joint] - 1]).max() <= 0.7 + 1e-6


def test_local_angles_round_trip():
    rng = np.random.default_rng(1)
    low, high = JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1]
    angles = rng.uniform(low, high, size=(200, 23, 3))
    back = pose_to_local_angles(local_angles_to_pose(angles))
    np.testing.assert_allclose(back, angles, atol=1e-9)


def _segment_distance(points, a, b):
    ab = b - a
    t = np.clip(((points - a) * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[..., None] * ab), axis=-1)


def test_no_contortions_by_capsules_and_by_an_independent_check(batch, skeleton):
    poses, _ = batch
    assert not self_intersections(poses).any()
    # Independent: wrists stay out of the trunk's core, knees apart.
    for wrist in ("left_wrist", "right_wrist"):
        distance = _segment_distance(skeleton[:, J[wrist]], skeleton[:, J["pelvis"]], skeleton[:, J["neck"]])
        assert distance.min() > 0.07, wrist
    assert np.linalg.norm(skeleton[:, J["left_knee"]] - skeleton[:, J["right_knee"]], axis=1).min() > 0.12


def test_capsule_check_catches_contortions():
    contorted = np.zeros((3, 69))
    # Left forearm folded back through the chest: shoulder swung forward-in, elbow bent hard.
    contorted[0, 3 * (J["left_shoulder"] - 1) : 3 * J["left_shoulder"]] = (0.0, -2.3, -0.5)
    contorted[0, 3 * (J["left_elbow"] - 1) + 1] = -2.6
    # Knees through each other: both thighs swung inwards across the midline.
    contorted[1, 3 * (J["left_hip"] - 1) + 2] = -0.9
    contorted[1, 3 * (J["right_hip"] - 1) + 2] = 0.9
    assert self_intersections(contorted).tolist() == [True, True, False]


def _angle(a, b):
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _pairs(skeleton, name):
    return skeleton[:, [J["left_" + name], J["right_" + name]]]


def test_each_posture_has_its_defining_property(batch, skeleton):
    _, names = batch
    names = np.array(names)
    sk = skeleton
    thigh = _pairs(sk, "knee") - _pairs(sk, "hip")
    shin = _pairs(sk, "ankle") - _pairs(sk, "knee")
    hip_flexion = _angle(thigh, np.array([0.0, -1.0, 0.0]))  # thigh from straight down
    knee_bend = _angle(thigh, shin)
    elbow_bend = _angle(_pairs(sk, "elbow") - _pairs(sk, "shoulder"), _pairs(sk, "wrist") - _pairs(sk, "elbow"))
    ankle_z = _pairs(sk, "ankle")[..., 2] - sk[:, None, J["pelvis"], 2]
    wrist_over_head = _pairs(sk, "wrist")[..., 1] - sk[:, None, J["head"], 1]
    reach = np.linalg.norm(_pairs(sk, "wrist") - _pairs(sk, "shoulder"), axis=-1)
    ahead = _pairs(sk, "wrist")[..., 2] - _pairs(sk, "shoulder")[..., 2]
    trunk = _angle(sk[:, J["neck"]] - sk[:, J["pelvis"]], _pairs(sk, "hip").mean(1) - _pairs(sk, "ankle").mean(1))
    opposite = ankle_z[:, 0] * ankle_z[:, 1] < 0

    def check(posture, ok):
        rows = names == posture
        assert rows.sum() > 50, posture
        assert ok[rows].all(), f"{posture}: {np.flatnonzero(~ok[rows])[:5]}"

    check("standing", (knee_bend.max(1) < 50) & (sk[:, J["pelvis"], 1] - _pairs(sk, "ankle")[..., 1].max(1) > 0.7))
    check("walking", opposite)
    check("running", opposite & (elbow_bend.min(1) > 60))
    check("sitting", (hip_flexion.min(1) > 60) & (knee_bend.min(1) > 40))
    check("crouching", (hip_flexion.min(1) > 75) & (knee_bend.min(1) > 90))
    check("kneeling", ((knee_bend > 70) & (shin[..., 2] < -0.8 * np.linalg.norm(shin, axis=-1))).any(1))
    check("reaching", ((reach > 0.4) & (ahead > 0.2)).any(1))
    check("arms_raised", wrist_over_head.min(1) > 0)
    check("bending", trunk > 40)
    # Walking and running swing the arms: elbows are straighter when walking.
    assert np.median(elbow_bend[names == "walking"]) < np.median(elbow_bend[names == "running"])


def test_mirrored_samples_are_valid_and_keep_their_posture(batch):
    poses, names = batch
    full = torch.as_tensor(np.concatenate([np.zeros((len(poses), 3)), poses], axis=1))
    flipped = flip_pose(full)[:, 3:].numpy()
    assert within_limits(flipped).all()
    assert not self_intersections(flipped).any()
    assert ps.posture_checks(flipped, names).all()
    # Mirroring left and right swaps which side reaches, kneels, leads.
    assert not np.allclose(flipped, poses)


def test_upright_orientation_stands_bodies_on_their_feet(batch):
    poses, names = batch
    orient = ps.upright_global_orient(poses, names)
    assert orient.shape == (len(poses), 3) and np.all(orient[:, 1:] == 0)
    assert np.all(np.abs(orient[:, 0]) < 1.6)


def test_unknown_postures_are_refused():
    with pytest.raises(ValueError, match="unknown postures.*dancing.*choose from"):
        sample_poses(3, np.random.default_rng(0), ["walking", "dancing"])
    poses, names = sample_poses(2, np.random.default_rng(0), "sitting")  # a single name is fine
    assert names == ["sitting", "sitting"]
    assert sample_poses(0, np.random.default_rng(0))[0].shape == (0, 69)
