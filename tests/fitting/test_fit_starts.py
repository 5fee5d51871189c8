"""What SMPLify.fit makes of its inputs: the form of the start, the starting camera, the
number of shape coefficients, and stage lists that would run nothing."""

import pytest
import torch

from spin_diff.body.model import load_body_model
from spin_diff.constants import NUM_KEYPOINTS
from spin_diff.fitting.config import FittingConfig, StageConfig, default_stages, spin_stages
from spin_diff.fitting.smplify import SMPLify
from spin_diff.geometry.rotations import axis_angle_to_matrix, canonical_axis_angle, matrix_to_axis_angle
from spin_diff.utils.configs import ConfigError


@pytest.fixture(scope="module")
def model():
    return load_body_model()


def test_a_start_as_axis_angle_or_as_matrices_gives_the_same_fit(model, turned_problems):
    """SPIN's mean pose has a global orientation of exactly pi, where float round-off picks
    the sign of the axis; both input forms must start (and so end) the same fit."""
    n = 96
    _, betas, keypoints = turned_problems(model, n, seed=5)
    rotmats = model.mean_pose_rotmat(n).clone()
    axis_angle = matrix_to_axis_angle(rotmats).reshape(n, 72)
    # the two forms really disagree on the orientation's sign for the mean pose
    assert (axis_angle_to_matrix(axis_angle.view(n, 24, 3)) - rotmats).abs().max() < 1e-5
    fitter = SMPLify(model, FittingConfig(stages=default_stages(15)))
    from_matrices = fitter.fit(keypoints, rotmats, betas)
    from_axis_angle = fitter.fit(keypoints, axis_angle, betas)
    with torch.no_grad():
        a = model.joints(from_matrices.pose, from_matrices.betas).joints
        b = model.joints(from_axis_angle.pose, from_axis_angle.betas).joints
    worst_mm = float((a - b).norm(dim=-1).max()) * 1000
    assert worst_mm < 0.5, f"fits from the two forms differ by up to {worst_mm:.1f} mm"


def test_canonical_axis_angle_keeps_the_rotation_and_fixes_the_half_turn_sign():
    gen = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(500, 3, generator=gen, dtype=torch.float64), dim=-1)
    angle = torch.pi - torch.rand(500, 1, generator=gen, dtype=torch.float64) * 5e-4
    vectors = torch.cat([axis * angle, -axis * angle, torch.randn(500, 3, generator=gen, dtype=torch.float64)])
    canonical = canonical_axis_angle(vectors)
    torch.testing.assert_close(axis_angle_to_matrix(canonical), axis_angle_to_matrix(vectors), rtol=0, atol=1e-12)
    # +pi n and -pi n (and their round-off variants) meet in one vector
    torch.testing.assert_close(canonical[:500], canonical[500:1000], rtol=0, atol=1e-3)
    torch.testing.assert_close(canonical[1000:][vectors[1000:].norm(dim=-1) < 3.0], vectors[1000:][vectors[1000:].norm(dim=-1) < 3.0])


def test_the_start_and_the_score_use_one_camera_from_the_gt_joints(model, turned_problems):
    """A start without a camera gets the same weighted least-squares camera over the 24 GT
    joints as SMPLify.score gives a stored fit: OpenPose outliers do not move it."""
    n = 4
    _, betas, keypoints = turned_problems(model, n, seed=2)
    keypoints = keypoints.clone()
    keypoints[:, :25, :2] += 60.0  # detector outliers on every OpenPose joint
    rotmats = model.mean_pose_rotmat(n)
    frozen = FittingConfig(stages=[StageConfig(name="still", iterations=1, optimize=["transl"], terms={"camera_depth": 1.0}, lr=0.0)])
    fitter = SMPLify(model, frozen)
    start = fitter.fit(keypoints, rotmats, betas)
    _, _, score_camera = fitter.score(rotmats, betas, keypoints)
    torch.testing.assert_close(start.transl, score_camera, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("num_betas", [4, 10])
def test_fits_with_another_number_of_shape_coefficients(num_betas, turned_problems):
    model = load_body_model(num_betas=num_betas)
    start, _, keypoints = turned_problems(model, 3, seed=1)
    fitter = SMPLify(model, FittingConfig(stages=spin_stages(5)))
    result = fitter.fit(keypoints, start, torch.zeros(3, num_betas))
    assert result.success.all() and result.betas.shape == (3, num_betas)
    # fewer coefficients than the model's are padded with zeros, more are refused
    assert fitter.fit(keypoints, start, torch.zeros(3, 2)).betas.shape == (3, num_betas)
    with pytest.raises(ValueError, match="num_betas"):
        fitter.fit(keypoints, start, torch.zeros(3, num_betas + 1))


@pytest.mark.parametrize(
    "stages",
    [[], [StageConfig(name="a", iterations=0, terms={"reprojection": 1.0}), StageConfig(name="b", iterations=0)]],
    ids=["empty", "zero-iterations"],
)
def test_a_stage_list_that_runs_nothing_is_refused(model, stages):
    with pytest.raises(ConfigError, match="no iterations"):
        SMPLify(model, FittingConfig(stages=stages))


def test_keypoints_of_another_layout_are_refused(model):
    fitter = SMPLify(model, FittingConfig(stages=spin_stages(1)))
    with pytest.raises(ValueError, match=str(NUM_KEYPOINTS)):
        fitter.fit(torch.zeros(2, 25, 3), model.mean_pose_rotmat(2), torch.zeros(2, 10))
