"""Detector-like keypoint corruption: each failure's exact effect, determinism, identity."""

from dataclasses import replace

import numpy as np
import pytest

from spin_diff.body.joints import KEYPOINT_FLIP_PERM, OPENPOSE_JOINT_NAMES
from spin_diff.data.corruption import CORRUPTION_PRESETS, CorruptionConfig, corrupt_keypoints

OP_PERM = KEYPOINT_FLIP_PERM[:25]
N, J = 400, 25
WIDTH, HEIGHT = 640.0, 480.0


def clean(num: int = N, seed: int = 0):
    """Keypoints in [240, 400]^2, a 200 px box centred at (320, 240), confidence 1 (0 for joint 3)."""
    rng = np.random.default_rng(seed)
    keypoints = np.concatenate([rng.uniform(240, 400, (num, J, 2)), np.ones((num, J, 1))], -1)
    keypoints[:, 3, 2] = 0.0  # one joint invisible everywhere
    center = np.tile([320.0, 240.0], (num, 1))
    size = np.full(num, 200.0)
    return keypoints, center, size


def run(config, keypoints=None, seed=1, **kwargs):
    if keypoints is None:
        keypoints, center, size = clean()
    else:
        _, center, size = clean(len(keypoints))
    return corrupt_keypoints(
        keypoints, center, size, config, np.random.default_rng(seed), OP_PERM, image_size=(WIDTH, HEIGHT), **kwargs
    )


def test_default_config_is_identity_and_does_not_touch_input():
    keypoints, _, _ = clean()
    before = keypoints.copy()
    result = run(CorruptionConfig(border_occlusion=False), keypoints)
    np.testing.assert_array_equal(result.keypoints, keypoints)
    np.testing.assert_array_equal(keypoints, before)
    for mask in (result.swapped, result.outlier, result.missed, result.occluded):
        assert not mask.any()
    np.testing.assert_array_equal(run(CORRUPTION_PRESETS["none"], keypoints).keypoints, keypoints)


def test_same_generator_state_gives_same_corruption():
    config = CorruptionConfig.preset("heavy")
    a, b, c = run(config, seed=5), run(config, seed=5), run(config, seed=6)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert not np.array_equal(a.keypoints, c.keypoints)


def test_confidences_are_scaled_within_the_spread_and_positions_kept():
    keypoints, _, _ = clean()
    result = run(CorruptionConfig(confidence_spread=0.4), keypoints)
    visible = keypoints[..., 2] > 0
    conf = result.keypoints[..., 2]
    assert conf[visible].min() >= 0.6 and conf[visible].max() <= 1.0
    assert conf[visible].std() > 0.1  # drawn per joint, ~U(0.6, 1)
    assert np.all(conf[~visible] == 0)
    np.testing.assert_array_equal(result.keypoints[..., :2], keypoints[..., :2])


def test_jitter_std_is_box_times_floor_at_full_confidence():
    keypoints, _, _ = clean()
    result = run(CorruptionConfig(jitter_std=0.05, jitter_floor=0.2), keypoints)
    visible = keypoints[..., 2] > 0
    error = (result.keypoints[..., :2] - keypoints[..., :2])[visible]
    expected = 0.05 * 200.0 * 0.2  # 2 px
    assert abs(error.std() / expected - 1.0) < 0.03
    assert abs(error.mean()) < 0.05
    np.testing.assert_array_equal(result.keypoints[~visible], keypoints[~visible])
    np.testing.assert_array_equal(result.keypoints[..., 2], keypoints[..., 2])


def test_jitter_grows_as_confidence_falls():
    keypoints, _, _ = clean()
    result = run(CorruptionConfig(confidence_spread=1.0, jitter_std=0.05, jitter_floor=0.1), keypoints)
    visible = keypoints[..., 2] > 0
    conf = result.keypoints[..., 2][visible]
    error = (result.keypoints[..., :2] - keypoints[..., :2])[visible]
    # Each error divided by its predicted scale is standard normal.
    normalised = error / (0.05 * 200.0 * ((1.0 - conf) + 0.1))[:, None]
    assert abs(normalised.std() - 1.0) < 0.03
    low, high = conf < 0.3, conf > 0.7
    assert np.abs(error[low]).mean() > 3 * np.abs(error[high]).mean()


def test_pair_swaps_exchange_left_and_right_exactly():
    keypoints, _, _ = clean()
    result = run(CorruptionConfig(swap_prob=1.0), keypoints)
    np.testing.assert_array_equal(result.keypoints, keypoints[:, list(OP_PERM)])
    midline = [i for i, p in enumerate(OP_PERM) if p == i]
    assert [OPENPOSE_JOINT_NAMES[i] for i in midline] == ["OP Nose", "OP Neck", "OP MidHip"]
    assert not result.swapped[:, midline].any() and result.swapped.sum() == N * (J - 3)


def test_pair_swaps_move_both_joints_of_a_pair_together():
    keypoints, _, _ = clean()
    result = run(CorruptionConfig(swap_prob=0.3), keypoints)
    perm = np.array(OP_PERM)
    np.testing.assert_array_equal(result.swapped, result.swapped[:, perm])
    rate = result.swapped[:, [2, 3, 4]].mean()  # right arm pairs
    assert 0.25 < rate < 0.35
    swapped = result.swapped
    np.testing.assert_array_equal(result.keypoints[swapped], keypoints[:, perm][swapped])
    np.testing.assert_array_equal(result.keypoints[~swapped], keypoints[~swapped])


def test_full_swap_flips_whole_people():
    keypoints, _, _ = clean()
    result = run(CorruptionConfig(full_swap_prob=0.5), keypoints)
    flipped = result.swapped[:, 2]  # right shoulder
    assert 0.4 < flipped.mean() < 0.6
    np.testing.assert_array_equal(result.keypoints[flipped], keypoints[flipped][:, list(OP_PERM)])
    np.testing.assert_array_equal(result.keypoints[~flipped], keypoints[~flipped])


def test_outliers_land_in_the_box_with_moderate_confidence():
    keypoints, _, _ = clean()
    result = run(CorruptionConfig(outlier_prob=1.0, outlier_confidence=(0.2, 0.5)), keypoints)
    visible = keypoints[..., 2] > 0
    np.testing.assert_array_equal(result.outlier, visible)
    moved = result.keypoints[visible]
    assert 220 <= moved[:, 0].min() and moved[:, 0].max() <= 420  # box x range
    assert 140 <= moved[:, 1].min() and moved[:, 1].max() <= 340  # box y range
    assert moved[:, 2].min() >= 0.2 and moved[:, 2].max() <= 0.5
    # Spread over the whole 200 px box, not near the true joints.
    assert np.ptp(moved[:, 0]) > 190
    np.testing.assert_array_equal(result.keypoints[~visible], keypoints[~visible])


def test_misses_zero_the_joint_like_openpose():
    keypoints, _, _ = clean()
    result = run(CorruptionConfig(miss_prob=0.25), keypoints)
    visible = keypoints[..., 2] > 0
    assert 0.22 < result.missed[visible].mean() < 0.28
    assert not result.missed[~visible].any()
    assert np.all(result.keypoints[result.missed] == 0)
    kept = ~result.missed
    np.testing.assert_array_equal(result.keypoints[kept], keypoints[kept])


def test_border_occlusion_drops_joints_outside_the_image():
    keypoints, _, _ = clean(4)
    keypoints[0, 0, :2] = [-0.5, 100]  # left of the image
    keypoints[1, 1, :2] = [WIDTH, 100]  # the first column outside
    keypoints[2, 2, :2] = [100, HEIGHT + 3]
    keypoints[3, 5, :2] = [WIDTH - 0.01, HEIGHT - 0.01]  # inside, barely
    keypoints[3, 3, :2] = [-50, -50]  # invisible and outside: left alone
    result = run(CorruptionConfig(border_occlusion=True), keypoints)
    expected = np.zeros((4, J), dtype=bool)
    expected[0, 0] = expected[1, 1] = expected[2, 2] = True
    np.testing.assert_array_equal(result.occluded, expected)
    assert np.all(result.keypoints[expected] == 0)
    np.testing.assert_array_equal(result.keypoints[~expected], keypoints[~expected])


def test_one_setting_does_not_reshuffle_the_others():
    """The same draws are used whatever the config: adding misses only zeroes joints."""
    base = CorruptionConfig(confidence_spread=0.5, jitter_std=0.03, jitter_floor=0.2)
    a = run(base)
    b = run(replace(base, miss_prob=0.2))
    kept = ~b.missed
    np.testing.assert_array_equal(a.keypoints[kept], b.keypoints[kept])


def test_presets_and_validation():
    detector, heavy = CorruptionConfig.preset("detector"), CorruptionConfig.preset("heavy")
    assert detector.border_occlusion and heavy.miss_prob > detector.miss_prob
    detector.miss_prob = 0.5  # presets are copies
    assert CORRUPTION_PRESETS["detector"].miss_prob != 0.5
    with pytest.raises(ValueError, match="unknown corruption preset 'light'"):
        CorruptionConfig.preset("light")
    with pytest.raises(ValueError, match="corruption.miss_prob must lie in"):
        run(CorruptionConfig(miss_prob=1.5))
    with pytest.raises(ValueError, match="corruption.jitter_std"):
        run(CorruptionConfig(jitter_std=-1.0))
    keypoints, center, size = clean(2)
    with pytest.raises(ValueError, match="image_size"):
        corrupt_keypoints(keypoints, center, size, CorruptionConfig(border_occlusion=True), np.random.default_rng(0), OP_PERM)
    with pytest.raises(ValueError, match="permutation"):
        corrupt_keypoints(keypoints, center, size, CorruptionConfig(), np.random.default_rng(0), list(range(24)))


def test_detector_preset_is_plausible():
    """About 1-3% of the box off, most joints found, confidences like a detector's."""
    keypoints, _, _ = clean()
    result = run(CorruptionConfig.preset("detector"), keypoints)
    found = result.keypoints[..., 2] > 0
    good = found & ~result.swapped & ~result.outlier
    error = np.linalg.norm(result.keypoints[..., :2] - keypoints[..., :2], axis=-1)[good]
    assert 2.0 < np.median(error) < 6.0  # px, box 200
    assert 0.9 < found[keypoints[..., 2] > 0].mean() < 1.0
    assert 0.6 < result.keypoints[..., 2][found].mean() < 0.85
