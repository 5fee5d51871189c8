"""The closed-form Jacobian of the 49 joints equals autograd's, extra (vertex-regressed) joints
and pose blend shapes included."""

from __future__ import annotations

import pytest
import torch

from spin_diff.body.model import load_body_model
from spin_diff.geometry.rotations import axis_angle_to_matrix

BATCH = 3


def _autograd_jacobians(body, axis_angle, betas):
    joints = lambda a, b: body.fast(axis_angle_to_matrix(a.view(BATCH, -1, 3)), b).joints  # noqa: E731
    pose = torch.autograd.functional.jacobian(lambda a: joints(a, betas), axis_angle.reshape(BATCH, -1))
    shape = torch.autograd.functional.jacobian(lambda b: joints(axis_angle.reshape(BATCH, -1), b), betas)
    rows = torch.arange(BATCH)
    return pose[rows, :, :, rows], shape[rows, :, :, rows]


@pytest.mark.parametrize("which", ["bundled", "random"])
def test_closed_form_jacobian_equals_autograd(which, request):
    if which == "bundled":
        body = load_body_model(dtype=torch.float64)
    else:
        body = load_body_model(request.getfixturevalue("random_smpl").folder, dtype=torch.float64)
        assert body.fast.has_pose_blend
    gen = torch.Generator().manual_seed(0)
    axis_angle = 0.6 * torch.randn(BATCH, 24, 3, generator=gen, dtype=torch.float64)
    axis_angle[0, 5] = 0.0  # a joint at exactly zero rotation (the small-angle series)
    betas = torch.randn(BATCH, body.num_betas, generator=gen, dtype=torch.float64)
    out = body.fast.joints_with_jacobian(axis_angle, betas)
    pose, shape = _autograd_jacobians(body, axis_angle, betas)
    torch.testing.assert_close(out.joints, body.fast(axis_angle_to_matrix(axis_angle), betas).joints)
    torch.testing.assert_close(out.pose, pose, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(out.betas, shape, atol=1e-10, rtol=1e-8)
