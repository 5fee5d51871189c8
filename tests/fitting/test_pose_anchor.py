"""The pose anchor term (distance to the fit's start) and fits on real held-out poses."""

import numpy as np
import pytest
import torch

from spin_diff.body.model import load_body_model
from spin_diff.data.keypoint_sets import make_problems, perturbed_start
from spin_diff.fitting.config import FittingConfig, spin_stages
from spin_diff.fitting.smplify import SMPLify
from spin_diff.fitting.terms import FitState, TermContext, build_term


def _state(body_pose, init_body_pose):
    batch = body_pose.shape[0]
    zeros = torch.zeros(batch, 3, dtype=body_pose.dtype)
    return FitState(global_orient=zeros, body_pose=body_pose, betas=torch.zeros(batch, 10, dtype=body_pose.dtype),
                    transl=zeros, joints=None, projected=None, keypoints=None, confidence=None,
                    raw_confidence=None, init_transl=zeros, init_body_pose=init_body_pose)  # fmt: skip


def test_pose_anchor_value_matches_closed_form():
    """2 ||theta - theta_start||^2; for small turns of every joint it agrees with the rotation
    distance sum_j ||R_j - R_start,j||_F^2 = 4 (1 - cos angle) per joint."""
    from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    gen = torch.Generator().manual_seed(0)
    start = 0.5 * torch.randn(4, 69, generator=gen, dtype=torch.float64)
    term = build_term("pose_anchor", TermContext())
    assert torch.allclose(term(_state(start.clone(), start)), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    moved = start + torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64).repeat(23)
    assert torch.allclose(term(_state(moved, start)), torch.full((4,), 2 * 23 * 0.14, dtype=torch.float64))
    angles = torch.tensor([0.01, 0.02, 0.05, 0.1], dtype=torch.float64)
    axis = torch.nn.functional.normalize(torch.randn(4, 23, 3, generator=gen, dtype=torch.float64), dim=-1)
    turned = axis_angle_to_matrix(start.view(4, 23, 3)) @ axis_angle_to_matrix(angles[:, None, None] * axis)
    rotation_distance = 23 * 4 * (1 - torch.cos(angles))
    anchored = term(_state(matrix_to_axis_angle(turned).reshape(4, 69), start))
    # axis-angle differences exceed the turn angles by a few per cent for starts of ~0.9 rad
    assert torch.allclose(anchored, rotation_distance, rtol=0.1)


@pytest.fixture(scope="module")
def model():
    return load_body_model()


def test_pose_anchor_holds_a_fit_at_its_start(model):
    """With a dominant anchor the body pose stays at the start; without it, it moves."""
    from spin_diff.data.real_poses import load_real_poses

    problems = make_problems(model, 4, seed=3, poses=load_real_poses("val"))
    pose0, betas0, transl0 = perturbed_start(problems, seed=4, pose_sigma=0.1)
    moved = {}
    for weight in (0.0, 1e7):
        stages = spin_stages(20)
        stages[1].terms["pose_anchor"] = weight
        result = SMPLify(model, FittingConfig(stages=stages)).fit(problems.keypoints, pose0, betas0, transl0)
        moved[weight] = float((result.pose[:, 3:] - pose0[:, 3:]).abs().max())
    assert moved[1e7] < 0.01 and moved[0.0] > 5 * moved[1e7], moved  # Adam moves by ~lr per step at most


def test_real_pose_problems_face_the_camera_and_keep_the_poses(model):
    from spin_diff.data.real_poses import load_real_poses
    from spin_diff.geometry.rotations import facing_yaw
    from spin_diff.geometry.rotations import axis_angle_to_matrix

    real = load_real_poses("test")
    problems = make_problems(model, 16, seed=0, poses=real, max_yaw_degrees=45.0)
    orient = axis_angle_to_matrix(problems.pose[:, :3].double())
    assert torch.rad2deg(facing_yaw(orient)).abs().max() <= 45.0 + 1e-3
    body = problems.pose[:, 3:].double().numpy()
    # every problem's body pose is one of the real poses, unchanged
    distances = np.abs(body[:, None, :] - real[None, :, 3:]).max(-1).min(1)
    assert distances.max() < 1e-5
    with pytest.raises(ValueError, match="asked for"):
        make_problems(model, len(real) + 1, poses=real)


def test_pose_anchor_ignores_starts_that_carry_no_information(model):
    """From the mean (or rest) pose the anchor is off: the fit equals the fit without it."""
    from spin_diff.data.real_poses import load_real_poses
    from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    problems = make_problems(model, 3, seed=5, poses=load_real_poses("val"))
    mean_pose = matrix_to_axis_angle(model.mean_pose_rotmat(3)).reshape(3, 72)
    rest_pose = torch.zeros(3, 72)
    perturbed, _, _ = perturbed_start(problems, seed=6)
    fitter = SMPLify(model, FittingConfig(stages=spin_stages(5)))
    starts = torch.cat([mean_pose[:1], rest_pose[:1], perturbed[:1]])
    assert fitter.informative_start(axis_angle_to_matrix(starts.view(3, 24, 3))).tolist() == [False, False, True]
    results = []
    for weight in (0.0, 1e6):
        stages = spin_stages(10)
        stages[1].terms["pose_anchor"] = weight
        results.append(SMPLify(model, FittingConfig(stages=stages)).fit(problems.keypoints, mean_pose,
                                                                        torch.zeros(3, 10)).pose)  # fmt: skip
    assert torch.equal(results[0], results[1])


def test_default_objective_from_the_mean_pose_explains_the_keypoints(model):
    """The default (GMM, diffusion term, anchor off for the mean start) still fits the 2D
    keypoints of known bodies to a few pixels on SPIN's 224 crop."""
    from spin_diff.data.real_poses import load_real_poses
    from spin_diff.geometry.rotations import matrix_to_axis_angle

    problems = make_problems(model, 4, seed=8, poses=load_real_poses("val"))
    config = FittingConfig()
    config.stages[0].iterations, config.stages[1].iterations = 100, 300
    mean_pose = matrix_to_axis_angle(model.mean_pose_rotmat(4)).reshape(4, 72)
    result = SMPLify(model, config).fit(problems.keypoints, mean_pose, torch.zeros(4, 10))
    assert result.success.all()
    assert result.joint_residuals.mean() < 5.0


def test_depth_anchor_sees_only_relative_depth(model):
    """Zero at the start, and under moves of the whole body or of joints across the image;
    positive when a joint's depth relative to the body changes; off where the start is
    uninformative (anchor_mask 0)."""
    gen = torch.Generator().manual_seed(5)
    start = torch.randn(3, 49, 3, generator=gen)
    term = build_term("depth_anchor", TermContext())

    def value(joints, mask=None):
        state = _state(torch.zeros(3, 69), torch.zeros(3, 69))
        state.joints, state.init_joints, state.anchor_mask = joints, start, mask
        return term(state)

    shifted = start + torch.tensor([0.3, -0.2, 2.0])  # the whole body moved, deeper too
    across = start.clone()
    across[:, :, :2] += torch.randn(3, 49, 2, generator=gen)  # every joint moved across the image
    assert torch.allclose(value(start), torch.zeros(3), atol=1e-10)
    assert torch.allclose(value(shifted), torch.zeros(3), atol=1e-9)
    assert torch.allclose(value(across), torch.zeros(3), atol=1e-10)
    deeper = start.clone()
    deeper[:, 30, 2] += 0.1  # one of the 24 ground-truth joints (rows 25-48) 10 cm deeper
    # relative to the mean depth of the 24: 0.1 * (23/24) for it and 0.1 / 24 for each other
    expected = (0.1 * 23 / 24) ** 2 + 23 * (0.1 / 24) ** 2
    assert torch.allclose(value(deeper), torch.full((3,), expected), rtol=1e-5)
    assert torch.equal(value(deeper, torch.tensor([1.0, 0.0, 1.0]))[1], torch.tensor(0.0))
    moved_openpose = start.clone()
    moved_openpose[:, 3, 2] += 0.5  # an OpenPose joint: not anchored
    assert torch.allclose(value(moved_openpose), torch.zeros(3), atol=1e-10)


def test_orientation_anchor_measures_the_turn_from_the_start():
    """||R - R_start||_F^2 = 4 (1 - cos angle) for a turn by angle; zero where masked."""
    import math

    start = torch.tensor([[0.3, -1.0, 0.2], [math.pi, 0.0, 0.0]])
    term = build_term("orientation_anchor", TermContext())
    state = _state(torch.zeros(2, 69), torch.zeros(2, 69))
    state.init_global_orient = start
    state.global_orient = start.clone()
    assert torch.allclose(term(state), torch.zeros(2), atol=1e-6)
    from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    turn = axis_angle_to_matrix(torch.tensor([0.0, 0.5, 0.0]))
    state.global_orient = matrix_to_axis_angle(turn @ axis_angle_to_matrix(start))
    assert torch.allclose(term(state), torch.full((2,), 4 * (1 - math.cos(0.5))), atol=1e-5)
    state.anchor_mask = torch.tensor([0.0, 1.0])
    assert term(state)[0] == 0 and term(state)[1] > 0
