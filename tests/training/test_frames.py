"""Canonical frame <-> augmented views (SPIN's rotation then flip), through the store too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spin_diff.body.joints import flip_keypoints
from spin_diff.cache.records import FitBatch
from spin_diff.cache.store import FitStore
from spin_diff.geometry.cameras import image_keypoints_to_crop, perspective_projection
from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.training.frames import root_joint, to_canonical, to_view

CROP = 224.0


@pytest.fixture(scope="module")
def model64():
    from spin_diff.body.model import load_body_model

    return load_body_model(dtype=torch.float64)


def people(batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(batch, 72, generator=gen, dtype=torch.float64)
    pose[:, 0] += np.pi  # facing the camera
    betas = torch.randn(batch, 10, generator=gen, dtype=torch.float64)
    offset = 0.1 * torch.randn(batch, 2, generator=gen, dtype=torch.float64)
    transl = torch.cat([offset, torch.full((batch, 1), 48.0, dtype=torch.float64)], 1)
    return pose, betas, transl


def keypoints(model, pose, betas, transl):
    """Crop pixels of the 49 joints (SPIN's crop camera)."""
    return perspective_projection(model.joints(pose, betas).joints, transl, 5000.0)


def view_of_keypoints(kp, flip, rotation_deg):
    """What SPIN's augmentation does to crop keypoints: rotate about the crop centre, then mirror."""
    centre = torch.full((kp.shape[0], 2), CROP / 2, dtype=kp.dtype)
    scale = torch.full((kp.shape[0],), CROP / 200, dtype=kp.dtype)
    rotated = image_keypoints_to_crop(kp, centre, scale, CROP, rotation_deg)
    mirrored = flip_keypoints(rotated, image_width=CROP)
    return torch.where(torch.as_tensor(flip)[:, None, None], mirrored, rotated)


def same_rotations(pose_a, pose_b) -> bool:
    a = axis_angle_to_matrix(torch.as_tensor(pose_a).reshape(-1, 24, 3))
    b = axis_angle_to_matrix(torch.as_tensor(pose_b).reshape(-1, 24, 3))
    return torch.allclose(a, b, atol=1e-9)


def test_to_view_then_to_canonical_is_the_identity(model64):
    pose, betas, transl = people(8)
    flip = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0], dtype=torch.bool)
    rotation = torch.tensor([0.0, 0.0, 30.0, -45.0, 60.0, -170.0, 12.5, 90.0])
    root = root_joint(model64, betas)
    view_pose, view_transl = to_view(pose, flip, rotation, transl=transl, root=root)
    back_pose, back_transl = to_canonical(view_pose, flip, rotation, transl=view_transl, root=root)
    assert same_rotations(back_pose, pose)
    torch.testing.assert_close(back_pose[:, 3:], pose[:, 3:], rtol=0, atol=1e-12)
    torch.testing.assert_close(back_transl, transl, rtol=0, atol=1e-12)
    # no rotation: the stored axis-angle comes back bit for bit, flipped or not
    assert torch.equal(to_canonical(to_view(pose, flip, 0.0), flip, 0.0), pose)
    # numpy in, numpy out
    out = to_canonical(to_view(pose.numpy(), True, 20.0), True, 20.0)
    assert isinstance(out, np.ndarray) and same_rotations(out, pose)
    # the root joint is the rest pelvis of that shape
    zero = torch.zeros(8, 72, dtype=torch.float64)
    torch.testing.assert_close(root, model64.joints(zero, betas).skeleton[:, 0])


def test_views_follow_spins_augmentation_of_the_keypoints(model64):
    """The body posed in a view projects where SPIN's rotate-then-flip puts the keypoints."""
    pose, betas, transl = people(6, seed=1)
    flip = torch.tensor([0, 1, 1, 0, 1, 0], dtype=torch.bool)
    rotation = torch.tensor([0.0, 0.0, 30.0, -40.0, -60.0, 25.0])
    root = root_joint(model64, betas)
    view_pose, view_transl = to_view(pose, flip, rotation, transl=transl, root=root)
    projected = keypoints(model64, view_pose, betas, view_transl)
    expected = view_of_keypoints(keypoints(model64, pose, betas, transl), flip, rotation)
    error = (projected - expected).norm(dim=-1)
    assert error.max() < 0.05  # pixels; the free model's mesh is symmetric to ~0.1 mm


def test_fit_stored_from_one_view_reads_back_in_another(model64, tmp_path):
    """A fit made on view A is stored canonical; read in view B it matches B's keypoints."""
    pose, betas, transl = people(4, seed=2)
    root = root_joint(model64, betas)
    flip_a, rot_a = torch.tensor([1, 0, 1, 0], dtype=torch.bool), torch.tensor([30.0, -20.0, 0.0, 45.0])
    flip_b, rot_b = torch.tensor([0, 1, 1, 0], dtype=torch.bool), torch.tensor([-45.0, 10.0, 60.0, 0.0])

    # the "fit" on view A is the body as seen in view A
    fit_pose, fit_transl = to_view(pose, flip_a, rot_a, transl=transl, root=root)
    stored_pose, stored_transl = to_canonical(fit_pose, flip_a, rot_a, transl=fit_transl, root=root)
    store = FitStore.open_or_create(tmp_path / "cache", "body")
    batch = FitBatch("d", np.arange(4), stored_pose.numpy(), betas.numpy(), np.ones(4))
    batch.transl = stored_transl.numpy()
    store.update_if_better(batch)
    fits = store.get_many("d", np.arange(4))
    store.close()

    read_pose, read_transl = to_view(
        torch.as_tensor(fits.pose, dtype=torch.float64), flip_b, rot_b,
        transl=torch.as_tensor(fits.transl, dtype=torch.float64), root=root,
    )  # fmt: skip
    betas32 = torch.as_tensor(fits.betas, dtype=torch.float64)
    projected = keypoints(model64, read_pose, betas32, read_transl)
    expected = view_of_keypoints(keypoints(model64, pose, betas, transl), flip_b, rot_b)
    assert (projected - expected).norm(dim=-1).max() < 0.5  # float32 storage at 48 m depth
    # and the 3D joints (centred on the mid-hip) are those of the body turned into view B
    direct = model64.joints(to_view(pose, flip_b, rot_b), betas).joints
    read = model64.joints(read_pose, betas32).joints
    torch.testing.assert_close(read - read[:, 8:9], direct - direct[:, 8:9], rtol=0, atol=2e-4)
