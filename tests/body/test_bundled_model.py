"""The bundled free body model behaves like SMPL where SPIN's code relies on it.

SMPL's conventions the rest of the project assumes: y up, the body faces +z, its left side at
+x, arms along +-x in the zero pose; elbows and knees bend the way SMPLify's angle prior allows;
mirroring a pose mirrors the body; SPIN's joint tables and mean parameters read as published.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import smplx
import torch
from scipy.spatial import cKDTree

from spin_diff.body import joints as J
from spin_diff.body.files import BUNDLED_MODEL_DIR, resolve_body_model
from spin_diff.body.model import load_body_model, pose_to_rotmat

# SPIN's tables (nkolot/SPIN, constants.py), written out from the paper's code release.
SPIN_J24_FLIP_PERM = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22]
SPIN_J49_FLIP_PERM = [0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19, 20, 21] + [
    25 + i for i in SPIN_J24_FLIP_PERM
]
SPIN_SMPL_JOINTS_FLIP_PERM = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
SPIN_JOINT_MAP = {
    "OP Nose": 24, "OP Neck": 12, "OP RShoulder": 17, "OP RElbow": 19, "OP RWrist": 21,
    "OP LShoulder": 16, "OP LElbow": 18, "OP LWrist": 20, "OP MidHip": 0, "OP RHip": 2,
    "OP RKnee": 5, "OP RAnkle": 8, "OP LHip": 1, "OP LKnee": 4, "OP LAnkle": 7, "OP REye": 25,
    "OP LEye": 26, "OP REar": 27, "OP LEar": 28, "OP LBigToe": 29, "OP LSmallToe": 30,
    "OP LHeel": 31, "OP RBigToe": 32, "OP RSmallToe": 33, "OP RHeel": 34, "Right Ankle": 8,
    "Right Knee": 5, "Right Hip": 45, "Left Hip": 46, "Left Knee": 4, "Left Ankle": 7,
    "Right Wrist": 21, "Right Elbow": 19, "Right Shoulder": 17, "Left Shoulder": 16,
    "Left Elbow": 18, "Left Wrist": 20, "Neck (LSP)": 47, "Top of Head (LSP)": 48,
    "Pelvis (MPII)": 49, "Thorax (MPII)": 50, "Spine (H36M)": 51, "Jaw (H36M)": 52,
    "Head (H36M)": 53, "Nose": 24, "Left Eye": 26, "Right Eye": 25, "Left Ear": 28, "Right Ear": 27,
}  # fmt: skip
SPIN_JOINT_NAMES = [
    "OP Nose", "OP Neck", "OP RShoulder", "OP RElbow", "OP RWrist", "OP LShoulder", "OP LElbow",
    "OP LWrist", "OP MidHip", "OP RHip", "OP RKnee", "OP RAnkle", "OP LHip", "OP LKnee",
    "OP LAnkle", "OP REye", "OP LEye", "OP REar", "OP LEar", "OP LBigToe", "OP LSmallToe",
    "OP LHeel", "OP RBigToe", "OP RSmallToe", "OP RHeel", "Right Ankle", "Right Knee",
    "Right Hip", "Left Hip", "Left Knee", "Left Ankle", "Right Wrist", "Right Elbow",
    "Right Shoulder", "Left Shoulder", "Left Elbow", "Left Wrist", "Neck (LSP)",
    "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)",
    "Head (H36M)", "Nose", "Left Eye", "Right Eye", "Left Ear", "Right Ear",
]  # fmt: skip
SPIN_H36M_TO_J17 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9]

# SMPLify's angle prior (docs/conventions.md#smplifys-stages-and-prior-weights): indices into the 69 body-pose numbers and their signs;
# the prior is exp(sign * theta)^2, so it is small for sign * theta < 0.
ANGLE_PRIOR_INDICES = [52, 55, 9, 12]  # left elbow y, right elbow y, left knee x, right knee x
ANGLE_PRIOR_SIGNS = [1.0, -1.0, -1.0, -1.0]


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def skeleton_joint(name: str) -> int:
    return J.SMPL_JOINT_NAMES.index(name)


def keypoint(name: str) -> int:
    return J.JOINT_NAMES.index(name)


def zero_inputs(batch: int = 1):
    return torch.zeros(batch, 72), torch.zeros(batch, 10)


def test_resolves_to_the_bundled_files():
    files = resolve_body_model(None)
    assert files.bundled
    assert files.model == BUNDLED_MODEL_DIR / "smpl" / "SMPL_NEUTRAL.pkl"
    for companion in (files.j_regressor_extra, files.j_regressor_h36m, files.mean_params, files.vertex_ids):
        assert companion is not None and companion.is_file()


def test_plain_smplx_loads_bundled_pkl(body):
    """Anyone's SMPL code (smplx with model_path only) reads the bundled pkl and gets our mesh."""
    with contextlib.redirect_stdout(io.StringIO()):
        plain = smplx.SMPL(model_path=str(BUNDLED_MODEL_DIR / "smpl"), vertex_ids=body.vertex_ids)
    np.testing.assert_array_equal(plain.faces, body.faces)
    gen = torch.Generator().manual_seed(0)
    pose, betas = 0.5 * torch.randn(4, 72, generator=gen), torch.randn(4, 10, generator=gen)
    transl = torch.randn(4, 3, generator=gen)
    with torch.no_grad():
        expected = plain(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:], transl=transl)
        out = body.forward(pose, betas, transl)
    assert out.vertices.shape == (4, body.num_vertices, 3)
    torch.testing.assert_close(out.vertices, expected.vertices, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.skeleton, expected.joints[:, :24], rtol=0, atol=1e-5)
    assert out.joints.shape == (4, 49, 3)
    assert out.h36m_joints.shape == (4, 17, 3)


def test_the_body_model_takes_smplx_keywords(body):
    """``body(global_orient=, body_pose=, betas=, transl=)`` as smplx is called, axis-angle or
    matrices, equals the one-vector call; betas left out is the mean shape, as in smplx."""
    gen = torch.Generator().manual_seed(1)
    pose, betas, transl = 0.5 * torch.randn(3, 72, generator=gen), torch.randn(3, 10, generator=gen), torch.randn(3, 3, generator=gen)
    with torch.no_grad():
        expected = body(pose, betas, transl)
        named = body(global_orient=pose[:, :3], body_pose=pose[:, 3:], betas=betas, transl=transl)
        rotmats = pose_to_rotmat(pose)
        as_matrices = body(global_orient=rotmats[:, :1], body_pose=rotmats[:, 1:], betas=betas, transl=transl)
        joints = body.joints(global_orient=pose[:, :3], body_pose=pose[:, 3:], betas=betas)
        mean_shape = body(global_orient=pose[:, :3], body_pose=pose[:, 3:])
    torch.testing.assert_close(named.vertices, expected.vertices, rtol=0, atol=1e-6)
    torch.testing.assert_close(as_matrices.vertices, expected.vertices, rtol=0, atol=1e-5)
    torch.testing.assert_close(joints.joints, body.joints(pose, betas).joints, rtol=0, atol=1e-6)
    torch.testing.assert_close(mean_shape.vertices, body(pose, torch.zeros(3, 10)).vertices, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="not both"):
        body(pose, betas, global_orient=pose[:, :3], body_pose=pose[:, 3:])
    with pytest.raises(ValueError, match="a pose is needed"):
        body(global_orient=pose[:, :3])


def test_info_names_the_bundled_model(body):
    info = body.info()
    assert "bundled" in info["source"]
    assert info["keypoint joints"] == 49
    assert info["vertices"] == body.num_vertices


def test_regressor_rows_are_weighted_averages():
    """Each regressed joint is (close to) a weighted average of vertices, so translating the mesh
    by t moves it by t; a row summing to 1 - e moves its joint by (1 - e) t instead."""
    for name in ("J_regressor_extra.npy", "J_regressor_h36m.npy"):
        regressor = np.load(BUNDLED_MODEL_DIR / name)
        assert regressor.min() >= 0, name
        # Measured: 0.99965 to 1.00015 (extra), 0.99827 (both H36M knees) to 1.00007: under
        # 2 mm of drift for a body 1 m from the origin.
        np.testing.assert_allclose(regressor.sum(1), 1.0, atol=2.5e-3, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Axis conventions in the zero pose.


def test_t_pose(body):
    with torch.no_grad():
        skeleton = body.joints(*zero_inputs()).skeleton[0]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder = skeleton[skeleton_joint(f"{side}_shoulder")]
        elbow = skeleton[skeleton_joint(f"{side}_elbow")]
        wrist = skeleton[skeleton_joint(f"{side}_wrist")]
        arm = wrist - shoulder
        # Wrist at shoulder height, arm stretched out along +-x.
        assert abs(arm[1]) < 0.05, f"{side} wrist {arm[1]:.3f} m above the shoulder"
        assert sign * arm[0] > 0.9 * arm.norm(), f"{side} arm not along {'+' if sign > 0 else '-'}x: {arm}"
        assert sign * (elbow[0] - shoulder[0]) > 0.1
    # y is up: head above pelvis above ankles.
    assert skeleton[skeleton_joint("head"), 1] > skeleton[skeleton_joint("pelvis"), 1]
    assert skeleton[skeleton_joint("pelvis"), 1] > skeleton[skeleton_joint("left_ankle"), 1] + 0.5


def test_left_side_is_at_plus_x(body):
    with torch.no_grad():
        out = body.joints(*zero_inputs())
    skeleton, keypoints = out.skeleton[0], out.joints[0]
    for name in ("left_shoulder", "left_hip", "left_knee", "left_ankle", "left_wrist"):
        assert skeleton[skeleton_joint(name), 0] > 0.05, name
        assert skeleton[skeleton_joint(name.replace("left", "right")), 0] < -0.05, name
    for name in ("Left Shoulder", "Left Hip", "OP LHip", "Left Eye", "OP LEar", "OP LBigToe"):
        assert keypoints[keypoint(name), 0] > 0.01, name
        assert keypoints[J.KEYPOINT_FLIP_PERM[keypoint(name)], 0] < -0.01, name


def test_body_faces_plus_z(body):
    with torch.no_grad():
        keypoints = body.joints(*zero_inputs()).joints[0]
    for toe, heel in (("OP LBigToe", "OP LHeel"), ("OP RBigToe", "OP RHeel")):
        assert keypoints[keypoint(toe), 2] > keypoints[keypoint(heel), 2] + 0.1
    assert keypoints[keypoint("Nose"), 2] > keypoints[keypoint("Head (H36M)"), 2]


@pytest.mark.parametrize(
    "prior_term, moving_joint, direction",
    [(0, "left_wrist", +1), (1, "right_wrist", +1), (2, "left_ankle", -1), (3, "right_ankle", -1)],
)
def test_angle_prior_allows_natural_bending(body, prior_term, moving_joint, direction):
    """Bending with a small angle-prior value moves the forearm forward (+z) and the shin back (-z)."""
    from spin_diff.priors.angle import angle_prior

    index, sign = ANGLE_PRIOR_INDICES[prior_term], ANGLE_PRIOR_SIGNS[prior_term]
    theta = -sign * 1.0
    pose, betas = zero_inputs()
    pose[0, 3 + index] = theta
    hyperextended = pose.clone()
    hyperextended[0, 3 + index] = -theta
    # the package's prior lowers its value for this bend and raises it steeply the other way
    rest_value = angle_prior(zero_inputs()[0][:, 3:])
    assert angle_prior(pose[:, 3:]) < rest_value - 0.8
    assert angle_prior(hyperextended[:, 3:]) > rest_value + 5.0
    with torch.no_grad():
        rest = body.joints(*zero_inputs()).skeleton[0, skeleton_joint(moving_joint)]
        bent = body.joints(pose, betas).skeleton[0, skeleton_joint(moving_joint)]
    # Forearm ~0.23 m, shin ~0.43 m: sin(1 rad) of that is 0.2 m or more.
    assert direction * (bent[2] - rest[2]) > 0.15, f"{moving_joint} moved {bent - rest}"


# ---------------------------------------------------------------------------------------------
# Left-right flips.


def test_flip_tables_match_spin():
    assert list(J.KEYPOINT_FLIP_PERM) == SPIN_J49_FLIP_PERM
    assert list(J.SMPL_JOINT_FLIP_PERM) == SPIN_SMPL_JOINTS_FLIP_PERM
    assert list(J.POSE_FLIP_PERM) == [3 * i + c for i in SPIN_SMPL_JOINTS_FLIP_PERM for c in range(3)]
    assert list(J.JOINT_NAMES) == SPIN_JOINT_NAMES
    assert list(J.JOINT_MAP) == [SPIN_JOINT_MAP[name] for name in SPIN_JOINT_NAMES]
    assert list(J.H36M_TO_J14) == SPIN_H36M_TO_J17[:14]


@pytest.mark.parametrize("perm", [J.KEYPOINT_FLIP_PERM, J.SMPL_JOINT_FLIP_PERM, J.POSE_FLIP_PERM])
def test_flip_permutations_are_involutions(perm):
    perm = np.asarray(perm)
    assert sorted(perm) == list(range(len(perm)))
    np.testing.assert_array_equal(perm[perm], np.arange(len(perm)))


def test_flip_pose_twice_is_identity():
    pose = torch.randn(5, 72, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(J.flip_pose(J.flip_pose(pose)), pose, rtol=0, atol=0)
    keypoints = torch.randn(5, 49, 3, dtype=torch.float64)
    torch.testing.assert_close(J.flip_keypoints(J.flip_keypoints(keypoints)), keypoints, rtol=0, atol=0)
    pixels = torch.rand(5, 49, 3, dtype=torch.float64) * 224
    flipped = J.flip_keypoints(pixels, image_width=224)
    torch.testing.assert_close(J.flip_keypoints(flipped, image_width=224), pixels, rtol=0, atol=1e-12)
    torch.testing.assert_close(flipped[..., 2], pixels[:, list(J.KEYPOINT_FLIP_PERM), 2], rtol=0, atol=0)


def test_flip_pose_matches_spin_rule():
    """SPIN: permute joints, then negate the y and z axis-angle components."""
    pose = torch.randn(3, 72, generator=torch.Generator().manual_seed(1))
    expected = pose.view(3, 24, 3)[:, SPIN_SMPL_JOINTS_FLIP_PERM] * torch.tensor([1.0, -1.0, -1.0])
    torch.testing.assert_close(J.flip_pose(pose), expected.reshape(3, 72), rtol=0, atol=0)


@pytest.fixture(scope="module")
def template_asymmetry(body) -> tuple[float, np.ndarray]:
    """Largest distance from a mirrored template vertex to its nearest vertex, and that map."""
    template = body.smpl.v_template.double().numpy()
    distance, mirror_index = cKDTree(template).query(template * [-1.0, 1.0, 1.0])
    return float(distance.max()), mirror_index


def test_template_is_nearly_symmetric(template_asymmetry):
    asymmetry, mirror_index = template_asymmetry
    assert asymmetry < 1e-3  # sub-millimetre; measured 4.6e-5 m for the bundled model
    assert np.array_equal(mirror_index[mirror_index], np.arange(len(mirror_index)))


def test_flipped_pose_gives_mirrored_body(body, template_asymmetry):
    """Mirroring the joints of a posed body (x -> -x, swap sides) = posing with the flipped pose,
    up to a few times the model's own left-right asymmetry."""
    asymmetry, mirror_index = template_asymmetry
    tolerance = 5 * asymmetry  # 2.3e-4 m for the bundled model (asymmetry 4.6e-5 m)
    gen = torch.Generator().manual_seed(2)
    pose = 0.5 * torch.randn(16, 72, generator=gen)
    betas = torch.zeros(16, 10)
    with torch.no_grad():
        out = body.forward(pose, betas)
        flipped = body.forward(J.flip_pose(pose), betas)
        fast_flipped = body.joints(J.flip_pose(pose), betas)
    mirrored = J.flip_keypoints(out.joints)
    error = (mirrored - flipped.joints).norm(dim=-1).max().item()
    assert error < tolerance, f"joints: {error:.2e} m > {tolerance:.2e} m"
    error = (mirrored - fast_flipped.joints).norm(dim=-1).max().item()
    assert error < tolerance, f"fast joints: {error:.2e} m > {tolerance:.2e} m"

    mirrored_skeleton = out.skeleton[:, list(J.SMPL_JOINT_FLIP_PERM)] * torch.tensor([-1.0, 1.0, 1.0])
    error = (mirrored_skeleton - flipped.skeleton).norm(dim=-1).max().item()
    assert error < tolerance, f"skeleton: {error:.2e} m > {tolerance:.2e} m"

    mirrored_vertices = out.vertices[:, mirror_index] * torch.tensor([-1.0, 1.0, 1.0])
    error = (mirrored_vertices - flipped.vertices).norm(dim=-1).max().item()
    assert error < tolerance, f"vertices: {error:.2e} m > {tolerance:.2e} m"


# ---------------------------------------------------------------------------------------------
# SPIN's mean parameters.


def gram_schmidt_spin_6d(rot6d: np.ndarray) -> np.ndarray:
    """SPIN's decoding, written independently: (3, 2) row-major columns, then Gram-Schmidt."""
    columns = rot6d.reshape(-1, 3, 2)
    a1, a2 = columns[..., 0], columns[..., 1]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 /= np.linalg.norm(b2, axis=-1, keepdims=True)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-1)


def test_mean_params(body):
    params = body.mean_params
    assert params is not None
    assert params["pose"].shape == (144,) and params["shape"].shape == (10,) and params["cam"].shape == (3,)
    with np.load(BUNDLED_MODEL_DIR / "smpl_mean_params.npz") as data:
        raw_pose = data["pose"].astype(np.float64)
    expected = gram_schmidt_spin_6d(raw_pose)  # (24, 3, 3)
    rotations = body.mean_pose_rotmat(batch_size=2)
    assert rotations.shape == (2, 24, 3, 3)
    np.testing.assert_allclose(rotations[0].double().numpy(), expected, atol=1e-6)
    # Proper rotations.
    eye = np.broadcast_to(np.eye(3), expected.shape)
    np.testing.assert_allclose(np.swapaxes(expected, -1, -2) @ expected, eye, atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(expected), 1.0, atol=1e-6)
    # The camera looks along +z with y down: the mean body is turned 180 degrees about x.
    np.testing.assert_allclose(expected[0], np.diag([1.0, -1.0, -1.0]), atol=1e-6)
    # The mean pose is a usable pose for the model.
    with torch.no_grad():
        out = body.joints(rotations[:1], params["shape"][None])
    assert torch.isfinite(out.joints).all()
