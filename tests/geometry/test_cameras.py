"""Camera convention: projection, weak perspective, crop/full cameras, crop maps, translation."""

import math

import numpy as np
import pytest
import torch

from spin_diff.constants import CROP_SIZE, FOCAL_LENGTH
from spin_diff.geometry import axis_angle_to_matrix, crop_keypoints_to_image, crop_to_full_translation, estimate_translation, full_to_crop_translation, image_keypoints_to_crop, perspective_projection, translation_to_weak_perspective, weak_perspective_to_translation

F64 = torch.float64


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _body_points(batch, n=24, seed=0, depth_extent=0.3):
    """Joint-like points around the origin: 1.7 m tall, +-depth_extent deep."""
    points = torch.rand(batch, n, 3, generator=_generator(seed), dtype=F64) * 2 - 1
    return points * torch.tensor([0.4, 0.85, depth_extent], dtype=F64)


def test_constants():
    assert FOCAL_LENGTH == 5000.0
    assert CROP_SIZE == 224


def test_projection_matches_hand_computation():
    points = torch.tensor([[[0.1, -0.2, 0.5], [0.0, 0.0, 0.0]]], dtype=F64)
    translation = torch.tensor([[0.0, 0.0, 10.0]], dtype=F64)
    got = perspective_projection(points, translation)
    # u = 5000 * 0.1 / 10.5 + 112, v = 5000 * -0.2 / 10.5 + 112; origin -> crop centre.
    expected = torch.tensor([[[112 + 500 / 10.5, 112 - 1000 / 10.5], [112.0, 112.0]]], dtype=F64)
    torch.testing.assert_close(got, expected)


def test_projection_with_rotation_focal_pair_and_centre_matches_intrinsics_matrix():
    batch = 3
    points = _body_points(batch, n=5, seed=1)
    rotation = axis_angle_to_matrix(torch.randn(batch, 3, generator=_generator(2), dtype=F64))
    translation = torch.tensor([[0.1, 0.2, 8.0], [-0.3, 0.0, 20.0], [0.0, -0.1, 50.0]], dtype=F64)
    focal = torch.tensor([[1000.0, 1100.0], [5000.0, 5000.0], [300.0, 250.0]], dtype=F64)
    centre = torch.tensor([[320.0, 240.0], [112.0, 112.0], [10.0, 20.0]], dtype=F64)
    got = perspective_projection(points, translation, focal, centre, rotation)

    for b in range(batch):  # independent per-sample reference with K [R | t]
        k = np.array([[focal[b, 0], 0, centre[b, 0]], [0, focal[b, 1], centre[b, 1]], [0, 0, 1]])
        cam = rotation[b].numpy() @ points[b].numpy().T + translation[b].numpy()[:, None]
        homogeneous = k @ cam
        np.testing.assert_allclose(got[b].numpy(), (homogeneous[:2] / homogeneous[2:]).T)


def test_focal_length_forms_agree():
    points = _body_points(2, n=4)
    translation = torch.tensor([[0.0, 0.0, 30.0], [0.1, 0.1, 40.0]], dtype=F64)
    as_float = perspective_projection(points, translation, 4000.0)
    per_sample = torch.tensor([4000.0, 4000.0], dtype=F64)
    as_vector = perspective_projection(points, translation, per_sample)
    as_pairs = perspective_projection(points, translation, torch.full((2, 2), 4000.0, dtype=F64))
    torch.testing.assert_close(as_vector, as_float)
    torch.testing.assert_close(as_pairs, as_float)


def test_smpl_facing_camera_convention():
    # A 180-degree rotation about x turns SMPL's y-up body upright in the y-down camera:
    # the head (positive SMPL y) must project above the feet (smaller v).
    rotation = axis_angle_to_matrix(torch.tensor([[math.pi, 0.0, 0.0]], dtype=F64))
    head_and_feet = torch.tensor([[[0.0, 0.8, 0.0], [0.0, -0.8, 0.0]]], dtype=F64)
    upright = head_and_feet @ rotation.transpose(-1, -2)
    pixels = perspective_projection(upright, torch.tensor([[0.0, 0.0, 40.0]], dtype=F64))
    assert pixels[0, 0, 1] < pixels[0, 1, 1]


def test_weak_perspective_to_translation_values_and_round_trip():
    cam = torch.tensor([[0.9, 0.1, -0.2], [1.3, 0.0, 0.05]], dtype=F64)
    translation = weak_perspective_to_translation(cam)
    expected_tz = 2 * 5000.0 / (224 * cam[:, 0] + 1e-9)
    expected = torch.stack([cam[:, 1], cam[:, 2], expected_tz], dim=-1)
    torch.testing.assert_close(translation, expected)
    back = translation_to_weak_perspective(translation)
    torch.testing.assert_close(back, cam, atol=1e-12, rtol=0)
    # Other focal length / crop size, and leading dimensions.
    cam_nd = cam.expand(4, 2, 3)
    t_nd = weak_perspective_to_translation(cam_nd, focal_length=1000.0, crop_size=256)
    assert t_nd.shape == (4, 2, 3)
    torch.testing.assert_close(
        translation_to_weak_perspective(t_nd, focal_length=1000.0, crop_size=256), cam_nd
    )


def test_weak_perspective_scale_is_the_projected_size_in_normalised_crop_units():
    # The weak-perspective meaning of [s, tx, ty]: a point x at the root's depth lands at
    # s * (x + tx) in normalised crop coordinates (-1..1 across the crop).
    cam = torch.tensor([[0.8, 0.1, -0.15]], dtype=F64)
    points = torch.tensor([[[0.0, 0.0, 0.0], [0.3, -0.5, 0.0]]], dtype=F64)
    pixels = perspective_projection(points, weak_perspective_to_translation(cam))
    normalised = (pixels - CROP_SIZE / 2) / (CROP_SIZE / 2)
    expected = cam[:, None, :1] * (points[..., :2] + cam[:, None, 1:])
    torch.testing.assert_close(normalised, expected, atol=1e-9, rtol=0)


def _random_boxes(batch, seed=3):
    g = _generator(seed)
    image_size = torch.tensor(
        [[1920.0, 1080.0], [640.0, 480.0], [1000.0, 1500.0], [300.0, 300.0]], dtype=F64
    )[:batch]
    box_size = (0.3 + 0.6 * torch.rand(batch, generator=g, dtype=F64)) * image_size.min(-1).values
    box_center = image_size * (0.2 + 0.6 * torch.rand(batch, 2, generator=g, dtype=F64))
    cam = torch.stack(
        [
            0.6 + 0.6 * torch.rand(batch, generator=g, dtype=F64),
            0.2 * torch.randn(batch, generator=g, dtype=F64),
            0.2 * torch.randn(batch, generator=g, dtype=F64),
        ],
        dim=-1,
    )
    return cam, box_center, box_size, image_size


def test_crop_full_translation_round_trip():
    cam, box_center, box_size, image_size = _random_boxes(4)
    focal = torch.tensor([5000.0, 1000.0, 2000.0, 500.0], dtype=F64)
    full = crop_to_full_translation(cam, box_center, box_size, image_size, focal)
    back = full_to_crop_translation(full, box_center, box_size, image_size, focal)
    torch.testing.assert_close(back, cam, atol=1e-12, rtol=0)
    again = crop_to_full_translation(back, box_center, box_size, image_size, focal)
    torch.testing.assert_close(again, full, atol=1e-9, rtol=1e-12)


def test_crop_and_full_cameras_agree_at_the_root_depth():
    # For points at the body's root depth (z = 0 in the body frame) the full-image camera
    # reproduces the crop projection mapped to full-image pixels exactly, for any box and
    # any full-image focal length.
    batch = 4
    cam, box_center, box_size, image_size = _random_boxes(batch)
    points = _body_points(batch, seed=4, depth_extent=0.0)
    crop_pixels = perspective_projection(points, weak_perspective_to_translation(cam))
    via_crop = crop_keypoints_to_image(crop_pixels, box_center, box_size / 200.0)

    full_focal = torch.tensor([5000.0, 1000.0, 2000.0, 500.0], dtype=F64)
    full_translation = crop_to_full_translation(cam, box_center, box_size, image_size, full_focal)
    direct = perspective_projection(points, full_translation, full_focal, image_size / 2)
    torch.testing.assert_close(direct, via_crop, atol=1e-7, rtol=0)


def test_crop_and_full_cameras_agree_for_a_centred_unscaled_crop():
    # A 224 px box at the image centre, same focal length: the crop is a window of the
    # full image and the two cameras agree for a 3D body, not just at the root depth.
    batch = 2
    image_size = torch.tensor([[640.0, 480.0], [1024.0, 1024.0]], dtype=F64)
    box_center = image_size / 2
    box_size = torch.full((batch,), float(CROP_SIZE), dtype=F64)
    cam = torch.tensor([[0.9, 0.05, 0.1], [1.1, -0.1, 0.0]], dtype=F64)
    points = _body_points(batch, seed=5)

    crop_pixels = perspective_projection(points, weak_perspective_to_translation(cam))
    via_crop = crop_keypoints_to_image(crop_pixels, box_center, box_size / 200.0)
    full_translation = crop_to_full_translation(cam, box_center, box_size, image_size)
    direct = perspective_projection(points, full_translation, FOCAL_LENGTH, image_size / 2)
    torch.testing.assert_close(direct, via_crop, atol=1e-7, rtol=0)


def test_crop_and_full_cameras_off_centre_differ_by_the_documented_parallax():
    # Off-centre, shifting the body (full camera) is not the same as shifting the image
    # (crop): with full focal = crop focal * box / crop, the gap is exactly
    # -(box_center - image_centre) * z / (z + tz) pixels.
    batch = 4
    cam, box_center, box_size, image_size = _random_boxes(batch, seed=6)
    points = _body_points(batch, seed=7, depth_extent=0.3)
    full_focal = FOCAL_LENGTH * box_size / CROP_SIZE

    crop_pixels = perspective_projection(points, weak_perspective_to_translation(cam))
    via_crop = crop_keypoints_to_image(crop_pixels, box_center, box_size / 200.0)
    full_translation = crop_to_full_translation(cam, box_center, box_size, image_size, full_focal)
    direct = perspective_projection(points, full_translation, full_focal, image_size / 2)

    z = points[..., 2:3]
    tz = full_translation[:, None, 2:3]
    offset = (box_center - image_size / 2)[:, None, :]
    torch.testing.assert_close(direct - via_crop, -offset * z / (z + tz), atol=1e-7, rtol=0)


def _spin_crop_matrix(center, scale, res, rot):
    """Independent homogeneous-matrix construction of SPIN's crop transform (continuous)."""
    h = 200.0 * scale
    t = np.array(
        [
            [res / h, 0, res * (-center[0] / h + 0.5)],
            [0, res / h, res * (-center[1] / h + 0.5)],
            [0, 0, 1],
        ]
    )
    if rot:
        a = -np.deg2rad(rot)
        rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        to_centre = np.array([[1, 0, -res / 2], [0, 1, -res / 2], [0, 0, 1]])
        back = np.array([[1, 0, res / 2], [0, 1, res / 2], [0, 0, 1]])
        t = back @ rotation @ to_centre @ t
    return t


@pytest.mark.parametrize("rotation_deg", [None, 0.0, 30.0, -47.5])
def test_keypoint_crop_maps_match_spin_transform_and_round_trip(rotation_deg):
    batch, n = 3, 7
    g = _generator(8)
    center = torch.tensor([[400.0, 300.0], [120.0, 900.0], [50.0, 60.0]], dtype=F64)
    scale = torch.tensor([1.5, 4.2, 0.6], dtype=F64)
    keypoints = center[:, None] + 150 * torch.randn(batch, n, 2, generator=g, dtype=F64)

    crop = image_keypoints_to_crop(keypoints, center, scale, rotation_deg=rotation_deg)
    for b in range(batch):
        t = _spin_crop_matrix(center[b].numpy(), scale[b].item(), CROP_SIZE, rotation_deg or 0.0)
        homogeneous = np.concatenate([keypoints[b].numpy(), np.ones((n, 1))], axis=1)
        np.testing.assert_allclose(crop[b].numpy(), (homogeneous @ t.T)[:, :2], atol=1e-9)

    back = crop_keypoints_to_image(crop, center, scale, rotation_deg=rotation_deg)
    torch.testing.assert_close(back, keypoints, atol=1e-9, rtol=0)


def test_keypoint_crop_map_landmarks_and_per_sample_rotation():
    center = torch.tensor([[400.0, 300.0], [400.0, 300.0]], dtype=F64)
    scale = torch.tensor([2.0, 2.0], dtype=F64)  # 400 px box
    # Box centre -> crop centre; top-left box corner -> crop origin; a point right of the
    # centre goes above the centre after a +90 degree (counter-clockwise) rotation.
    points = torch.tensor([[[400.0, 300.0], [200.0, 100.0], [500.0, 300.0]]] * 2, dtype=F64)
    angles = torch.tensor([0.0, 90.0], dtype=F64)
    crop = image_keypoints_to_crop(points, center, scale, rotation_deg=angles)
    expected = torch.tensor([[112.0, 112.0], [0.0, 0.0], [168.0, 112.0]], dtype=F64)
    torch.testing.assert_close(crop[0], expected)
    torch.testing.assert_close(crop[1, 0], torch.tensor([112.0, 112.0], dtype=F64))
    torch.testing.assert_close(crop[1, 2], torch.tensor([112.0, 56.0], dtype=F64))


def _project_batch(seed=9, batch=4):
    joints3d = _body_points(batch, seed=seed)
    translation = torch.tensor(
        [[0.1, -0.2, 45.0], [-0.3, 0.25, 12.0], [0.0, 0.0, 60.0], [0.05, 0.3, 25.0]], dtype=F64
    )[:batch]
    joints2d = perspective_projection(joints3d, translation)
    return joints3d, joints2d, translation


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_estimate_translation_recovers_known_translation(dtype):
    joints3d, joints2d, translation = _project_batch()
    weights = torch.rand(joints3d.shape[:2], generator=_generator(10), dtype=F64) + 0.1
    got = estimate_translation(joints3d.to(dtype), joints2d.to(dtype), weights.to(dtype))
    assert got.dtype == dtype
    atol = {torch.float32: 2e-3, torch.float64: 1e-8}[dtype]
    torch.testing.assert_close(got.double(), translation, atol=atol, rtol=0)


def test_estimate_translation_with_other_intrinsics():
    joints3d = _body_points(2, seed=11)
    translation = torch.tensor([[0.2, 0.1, 6.0], [-0.1, 0.0, 3.0]], dtype=F64)
    focal = torch.tensor([[1200.0, 1100.0], [800.0, 800.0]], dtype=F64)
    centre = torch.tensor([[640.0, 360.0], [300.0, 200.0]], dtype=F64)
    joints2d = perspective_projection(joints3d, translation, focal, centre)
    got = estimate_translation(joints3d, joints2d, torch.ones(2, 24, dtype=F64), focal, centre)
    torch.testing.assert_close(got, translation, atol=1e-8, rtol=0)


def test_estimate_translation_ignores_zero_weight_joints_even_if_nan():
    joints3d, joints2d, translation = _project_batch()
    weights = torch.ones(joints3d.shape[:2], dtype=F64)
    joints2d = joints2d.clone()
    joints2d[:, :5] += 300.0  # gross outliers...
    joints2d[:, 5] = float("nan")  # ...and missing detections
    weights[:, :6] = 0.0
    got = estimate_translation(joints3d, joints2d, weights)
    torch.testing.assert_close(got, translation, atol=1e-8, rtol=0)


def test_estimate_translation_underdetermined_samples_fall_back_without_touching_others():
    joints3d, joints2d, translation = _project_batch()
    weights = torch.ones(joints3d.shape[:2], dtype=F64)
    weights[1] = 0.0  # no confident joint
    weights[2, 1:] = 0.0  # a single confident joint cannot fix three unknowns
    got = estimate_translation(joints3d, joints2d, weights, default_depth=33.0)
    assert torch.isfinite(got).all()
    fallback = torch.tensor([0.0, 0.0, 33.0], dtype=F64)
    torch.testing.assert_close(got[1], fallback)
    torch.testing.assert_close(got[2], fallback)
    torch.testing.assert_close(got[[0, 3]], translation[[0, 3]], atol=1e-8, rtol=0)
    alone = estimate_translation(joints3d[[0, 3]], joints2d[[0, 3]], weights[[0, 3]])
    torch.testing.assert_close(got[[0, 3]], alone)

    # The default fallback depth is SPIN's mean camera (s = 0.9) at the focal length.
    default = estimate_translation(joints3d, joints2d, torch.zeros_like(weights))
    torch.testing.assert_close(default[:, 2], torch.full((4,), 2 * 5000 / (224 * 0.9), dtype=F64))


def test_estimate_translation_depth_prior_pulls_depth_towards_default():
    joints3d, joints2d, translation = _project_batch()
    weights = torch.ones(joints3d.shape[:2], dtype=F64)
    noisy = joints2d + 3.0 * torch.randn(joints2d.shape, generator=_generator(12), dtype=F64)
    free = estimate_translation(joints3d, noisy, weights)
    weak = estimate_translation(
        joints3d, noisy, weights, depth_prior_weight=1e-3, default_depth=30.0
    )
    strong = estimate_translation(
        joints3d, noisy, weights, depth_prior_weight=1e6, default_depth=30.0
    )
    assert torch.all((weak[:, 2] - 30.0).abs() <= (free[:, 2] - 30.0).abs())
    torch.testing.assert_close(strong[:, 2], torch.full((4,), 30.0, dtype=F64), atol=1e-2, rtol=0)


def test_estimate_translation_is_differentiable():
    joints3d, joints2d, _ = _project_batch(batch=2)
    joints3d = joints3d.requires_grad_(True)
    estimate_translation(joints3d, joints2d, torch.ones(2, 24, dtype=F64)).sum().backward()
    assert torch.isfinite(joints3d.grad).all()
