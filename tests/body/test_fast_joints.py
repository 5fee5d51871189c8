"""The joints-only fast path against smplx's own full forward (values and gradients).

The reference is built here from smplx directly, not through BodyModel: smplx.SMPL loads the
model file itself, runs with axis-angle input, and SPIN's 49 joints are its 45 joints plus
``J_regressor_extra @ vertices``, reordered by the joint map.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import smplx
import torch

from spin_diff.body.files import BUNDLED_MODEL_DIR
from spin_diff.body.joints import JOINT_MAP
from spin_diff.body.model import load_body_model

BATCH = 16
TOLERANCE_M = 1e-5  # float32, metres


class SmplxReference:
    """SPIN's 49 joints the way SPIN computes them: smplx forward, extra regressor, joint map."""

    def __init__(self, model_file, vertex_ids, j_regressor_extra, dtype=torch.float32):
        with contextlib.redirect_stdout(io.StringIO()):
            self.smpl = smplx.SMPL(model_path=str(model_file), vertex_ids=vertex_ids, num_betas=10, dtype=dtype)
        self.extra = torch.as_tensor(np.asarray(j_regressor_extra), dtype=dtype)
        self.joint_map = torch.as_tensor(JOINT_MAP)

    def __call__(self, pose, betas, transl):
        out = self.smpl(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:], transl=transl)
        extra = torch.einsum("kv,bvc->bkc", self.extra, out.vertices)
        return torch.cat([out.joints, extra], dim=1)[:, self.joint_map]


def bundled_reference():
    vertex_ids = json.loads((BUNDLED_MODEL_DIR / "vertex_ids.json").read_text())
    return SmplxReference(
        BUNDLED_MODEL_DIR / "smpl" / "SMPL_NEUTRAL.pkl",
        vertex_ids,
        np.load(BUNDLED_MODEL_DIR / "J_regressor_extra.npy"),
    )


@pytest.fixture(params=["bundled", "random"])
def model_pair(request):
    """(BodyModel, independent smplx reference) for the bundled model and a random SMPL model."""
    if request.param == "bundled":
        return load_body_model(), bundled_reference()
    random_smpl = request.getfixturevalue("random_smpl")
    reference = SmplxReference(random_smpl.plain_model_file, random_smpl.vertex_ids, random_smpl.j_regressor_extra)
    body = load_body_model(random_smpl.folder)
    assert body.fast.has_pose_blend  # the random model exercises pose blend shapes
    return body, reference


def random_inputs(batch, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    pose = 0.5 * torch.randn(batch, 72, generator=gen, dtype=dtype)
    betas = torch.randn(batch, 10, generator=gen, dtype=dtype)
    transl = torch.randn(batch, 3, generator=gen, dtype=dtype)
    return pose, betas, transl


def test_fast_joints_match_smplx_forward(model_pair):
    body, reference = model_pair
    pose, betas, transl = random_inputs(BATCH, seed=0)
    with torch.no_grad():
        expected = reference(pose, betas, transl)
        fast = body.joints(pose, betas, transl)
    assert fast.joints.shape == (BATCH, 49, 3)
    assert fast.vertices is None
    error = (fast.joints - expected).abs().max().item()
    assert error <= TOLERANCE_M, f"fast joints differ from smplx by {error:.2e} m"
    # The pose actually moves the joints (so agreement is not trivial).
    with torch.no_grad():
        rest = reference(torch.zeros_like(pose), betas, transl)
    assert (expected - rest).abs().max() > 0.05


def test_fast_skeleton_matches_smplx(model_pair):
    body, reference = model_pair
    pose, betas, transl = random_inputs(4, seed=1)
    with torch.no_grad():
        out = reference.smpl(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:], transl=transl)
        fast = body.joints(pose, betas, transl)
    torch.testing.assert_close(fast.skeleton, out.joints[:, :24], rtol=0, atol=TOLERANCE_M)


def test_pose_formats_agree(model_pair):
    """(B, 72), (B, 24, 3) and (B, 24, 3, 3) poses give the same joints."""
    from spin_diff.geometry import axis_angle_to_matrix

    body, _ = model_pair
    pose, betas, transl = random_inputs(3, seed=2)
    with torch.no_grad():
        flat = body.joints(pose, betas, transl).joints
        per_joint = body.joints(pose.view(3, 24, 3), betas, transl).joints
        rotmat = body.joints(axis_angle_to_matrix(pose.view(3, 24, 3)), betas, transl).joints
    torch.testing.assert_close(per_joint, flat, rtol=0, atol=0)
    torch.testing.assert_close(rotmat, flat, rtol=0, atol=0)


def test_translation_is_applied_like_smplx(model_pair):
    """transl moves the skeleton rigidly; regressed joints move by (row sum of the regressor) * transl,
    as in SPIN, where the extra regressor is applied to the translated mesh."""
    body, reference = model_pair
    pose, betas, transl = random_inputs(3, seed=7)
    with torch.no_grad():
        moved = body.joints(pose, betas, transl)
        still = body.joints(pose, betas)
        expected_shift = reference(pose, betas, transl) - reference(pose, betas, torch.zeros_like(transl))
    torch.testing.assert_close(moved.skeleton - still.skeleton, transl[:, None].expand(-1, 24, -1), rtol=0, atol=TOLERANCE_M)
    torch.testing.assert_close(moved.joints - still.joints, expected_shift, rtol=0, atol=TOLERANCE_M)


def test_fast_gradients_match_smplx(model_pair):
    body, reference = model_pair
    pose, betas, transl = random_inputs(BATCH, seed=3)
    weights = torch.randn(BATCH, 49, 3, generator=torch.Generator().manual_seed(4))

    def gradients(fn):
        inputs = [t.clone().requires_grad_(True) for t in (pose, betas, transl)]
        (weights * fn(*inputs)).sum().backward()
        return [t.grad for t in inputs]

    expected = gradients(reference)
    fast = gradients(lambda p, b, t: body.joints(p, b, t).joints)
    for name, got, want in zip(("pose", "betas", "transl"), fast, expected):
        scale = want.abs().max().item()
        error = (got - want).abs().max().item()
        assert error <= 1e-4 * scale + 1e-6, f"d/d{name}: max error {error:.2e}, gradient scale {scale:.2e}"


@pytest.mark.parametrize("which", ["bundled", "random"])
def test_fast_path_gradcheck_float64(request, which, single_thread):
    """Analytic gradients of the fast path equal finite differences (float64)."""
    path = None if which == "bundled" else request.getfixturevalue("random_smpl").folder
    body = load_body_model(path, dtype=torch.float64)
    assert body.fast.joint_template.dtype == torch.float64
    pose, betas, transl = random_inputs(2, seed=5, dtype=torch.float64)
    inputs = tuple(t.requires_grad_(True) for t in (pose, betas, transl))
    assert torch.autograd.gradcheck(
        lambda p, b, t: body.joints(p, b, t).joints, inputs, eps=1e-6, atol=1e-6, rtol=1e-5
    )


def test_float64_model_agrees_with_float32(model_pair):
    """Loading in float64 changes round-off only: a check that the dtype reaches every buffer."""
    body32, _ = model_pair
    body64 = load_body_model(body32.files.model.parent.parent if not body32.files.bundled else None, dtype=torch.float64)
    pose, betas, transl = random_inputs(4, seed=6, dtype=torch.float64)
    with torch.no_grad():
        j64 = body64.joints(pose, betas, transl).joints
        j32 = body32.joints(pose.float(), betas.float(), transl.float()).joints
        full64 = body64.forward(pose, betas, transl).joints
    assert j64.dtype == torch.float64
    torch.testing.assert_close(j32.double(), j64, rtol=0, atol=TOLERANCE_M)
    # Not 1e-12: smplx rounds the model arrays through float32 (smplx.utils.to_np) even for a
    # float64 model, while the fast path keeps them in float64.
    torch.testing.assert_close(full64, j64, rtol=0, atol=1e-6)
