"""Similarity Procrustes, MPJPE and PA-MPJPE."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from spin_diff.geometry import mpjpe, pa_mpjpe, similarity_procrustes

F64 = torch.float64


def _points(batch, n=14, seed=0, dtype=F64):
    return torch.randn(batch, n, 3, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _similarity(batch, seed=1, dtype=F64):
    rotation = torch.tensor(Rotation.random(batch, random_state=seed).as_matrix(), dtype=dtype)
    scale = torch.linspace(0.5, 2.0, batch, dtype=dtype)
    translation = torch.randn(batch, 3, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return scale, rotation, translation


def _apply(points, scale, rotation, translation):
    return scale[:, None, None] * points @ rotation.transpose(-1, -2) + translation[:, None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_recovers_known_similarity_exactly(dtype):
    source = _points(5, dtype=dtype)
    scale, rotation, translation = _similarity(5, dtype=dtype)
    target = _apply(source, scale, rotation, translation)
    aligned, got_scale, got_rotation, got_translation = similarity_procrustes(source, target)
    tol = {torch.float32: 1e-4, torch.float64: 1e-10}[dtype]
    torch.testing.assert_close(got_scale, scale, atol=tol, rtol=tol)
    torch.testing.assert_close(got_rotation, rotation, atol=tol, rtol=tol)
    torch.testing.assert_close(got_translation, translation, atol=tol, rtol=tol)
    torch.testing.assert_close(aligned, target, atol=tol, rtol=tol)
    # The returned transform is the one that produced `aligned`.
    torch.testing.assert_close(_apply(source, got_scale, got_rotation, got_translation), aligned)


def test_reflected_target_gets_a_proper_rotation_that_is_optimal():
    source = _points(4, seed=2)
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=F64))
    target = source @ mirror  # a mirror image: no rotation reproduces it
    _, scale, rotation, _ = similarity_procrustes(source, target)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(4, dtype=F64))
    assert torch.all(scale > 0)
    assert torch.all(pa_mpjpe(source, target) > 1e-3)

    for b in range(4):  # independent reference: scipy's best proper rotation (Kabsch)
        src = (source[b] - source[b].mean(0)).numpy()
        tgt = (target[b] - target[b].mean(0)).numpy()
        reference, _ = Rotation.align_vectors(tgt, src)
        np.testing.assert_allclose(rotation[b].numpy(), reference.as_matrix(), atol=1e-8)


def test_noisy_target_matches_scipy_rotation_and_least_squares_scale():
    source = _points(3, seed=3)
    scale, rotation, translation = _similarity(3, seed=4)
    target = _apply(source, scale, rotation, translation) + 0.05 * _points(3, seed=5)
    aligned, got_scale, got_rotation, got_translation = similarity_procrustes(source, target)
    for b in range(3):
        src = (source[b] - source[b].mean(0)).numpy()
        tgt = (target[b] - target[b].mean(0)).numpy()
        reference, _ = Rotation.align_vectors(tgt, src)
        np.testing.assert_allclose(got_rotation[b].numpy(), reference.as_matrix(), atol=1e-8)
        rotated = src @ reference.as_matrix().T
        best_scale = (rotated * tgt).sum() / (rotated * rotated).sum()
        np.testing.assert_allclose(got_scale[b].item(), best_scale, rtol=1e-8)
    # Optimality: perturbing the solution never lowers the squared error.
    base = ((aligned - target) ** 2).sum()
    worse = ((_apply(source, got_scale * 1.01, got_rotation, got_translation) - target) ** 2).sum()
    assert worse > base


def test_zero_weight_points_do_not_influence_the_fit():
    source = _points(2, seed=6)
    scale, rotation, translation = _similarity(2, seed=7)
    target = _apply(source, scale, rotation, translation)
    target[:, :3] += 10.0  # outliers
    weights = torch.ones(2, 14, dtype=F64)
    weights[:, :3] = 0.0
    _, got_scale, got_rotation, got_translation = similarity_procrustes(source, target, weights)
    torch.testing.assert_close(got_scale, scale)
    torch.testing.assert_close(got_rotation, rotation)
    torch.testing.assert_close(got_translation, translation)


def test_mpjpe_matches_hand_computation():
    pred = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]], dtype=F64)
    gt = torch.tensor([[[0.0, 3.0, 4.0], [1.0, 0.0, 0.0]]], dtype=F64)
    torch.testing.assert_close(mpjpe(pred, gt), torch.tensor([2.5], dtype=F64))


def test_pa_mpjpe_is_zero_for_a_similarity_copy_and_per_sample():
    gt = _points(3, seed=8)
    scale, rotation, translation = _similarity(3, seed=9)
    pred = _apply(gt, scale, rotation, translation)
    assert torch.all(mpjpe(pred, gt) > 0.1)
    torch.testing.assert_close(pa_mpjpe(pred, gt), torch.zeros(3, dtype=F64), atol=1e-10, rtol=0)

    # One bad sample does not change the others' scores.
    noisy = pred.clone()
    noisy[1] += 0.1 * _points(1, seed=10)[0]
    scores = pa_mpjpe(noisy, gt)
    assert scores[1] > 1e-3
    torch.testing.assert_close(scores[[0, 2]], torch.zeros(2, dtype=F64), atol=1e-10, rtol=0)
