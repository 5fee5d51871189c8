"""The one synthetic-people generator: each preset draws what its table row says, people do
not depend on their batch, and the callers (the regressor's training stream, the fitting
problems, the photo problems, the rendered sets) draw through it."""

import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from spin_diff.body.joints import joint_indices
from spin_diff.body.model import load_body_model
from spin_diff.cli.main import main
from spin_diff.constants import NUM_OPENPOSE_JOINTS
from spin_diff.data import keypoint_sets, people
from spin_diff.data.corruption import CorruptionConfig, hidden_by_head
from spin_diff.data.keypoint_sets import make_photo_problems, make_problems
from spin_diff.data.people import (
    PRESETS,
    KeyedDraws,
    PosePool,
    draw_people,
    frame_person,
    preset,
    sample_global_orient,
)
from spin_diff.data.real_poses import load_real_poses
from spin_diff.data.spin_npz import read_spin_npz
from spin_diff.data.synth import SynthConfig, generate_dataset, people_preset
from spin_diff.errors import BadInputError
from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.training import train_keypoints
from spin_diff.training.train_keypoints import (
    KeypointTrainConfig,
    SyntheticKeypoints,
    train_keypoint_regressor,
)

DRAWS = 3000  # enough for ~2% tolerances on rates and spreads, in a few seconds


@pytest.fixture(scope="module")
def body_model():
    return load_body_model()


@pytest.fixture(scope="module")
def flat_pool():
    """Sampler poses with no base tilt, so the drawn tilt is the only one."""
    pool = PosePool.from_sampler(128, seed=5)
    return PosePool(pool.body_pose, np.zeros_like(pool.base_orient), pool.postures)


@pytest.fixture(scope="module", params=["regressor", "fitting", "photo"])
def drawn(request, body_model, flat_pool):
    spec = replace(PRESETS[request.param], pool_draw="with_replacement")  # a few thousand from a small pool
    return spec, draw_people(body_model, spec, DRAWS, seed=7, pool=flat_pool)


def _clipped_normal_std(k: float) -> float:
    """Standard deviation of N(0, 1) clipped to [-k, k]."""
    if not np.isfinite(k):
        return 1.0
    inside = math.erf(k / math.sqrt(2))  # P(|z| < k)
    density = math.exp(-k * k / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(inside - 2 * k * density + k * k * (1 - inside))


def _pitch_roll(orient: np.ndarray, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undo R = R_x(180) R_y(yaw) R_x(pitch) R_z(roll): degrees."""
    flip = axis_angle_to_matrix(torch.tensor([np.pi, 0.0, 0.0], dtype=torch.float64)).numpy()
    turn = axis_angle_to_matrix(torch.as_tensor(np.c_[np.zeros_like(yaw), np.deg2rad(yaw), np.zeros_like(yaw)])).numpy()
    rest = np.swapaxes(turn, 1, 2) @ flip.T @ axis_angle_to_matrix(torch.as_tensor(orient)).numpy()
    pitch = np.arctan2(-rest[:, 1, 2], rest[:, 2, 2])
    roll = np.arctan2(-rest[:, 0, 1], rest[:, 0, 0])
    return np.rad2deg(pitch), np.rad2deg(roll)


def test_orientation_matches_the_table(drawn):
    spec, batch = drawn
    yaw = batch.yaw
    back = np.abs(yaw) > 90.0
    assert back.mean() == pytest.approx(spec.back_view_prob, abs=0.015)
    front = yaw[~back]
    low, high = spec.yaw_range
    assert front.min() >= low - 1e-9 and front.max() <= high + 1e-9
    assert front.std() == pytest.approx((high - low) / np.sqrt(12), rel=0.05)  # uniform
    pitch, roll = _pitch_roll(batch.pose[:, :3].double().numpy(), yaw)
    for tilt in (pitch, roll):
        assert tilt.std() == pytest.approx(_clipped_normal_std(3.0) * spec.tilt_std, rel=0.06, abs=0.01)
        assert np.abs(tilt).max() <= 3 * spec.tilt_std + 1e-3  # float32 poses


def test_shape_matches_the_table(drawn):
    spec, batch = drawn
    betas = batch.betas.double().numpy()
    clip = spec.shape_clip if spec.shape_clip is not None else np.inf
    assert np.abs(betas).max() <= clip + 1e-6
    assert betas.std() == pytest.approx(_clipped_normal_std(clip / spec.shape_std) * spec.shape_std, rel=0.04)
    assert abs(betas.mean()) < 0.02


def test_framing_matches_the_table(drawn):
    spec, batch = drawn
    transl = batch.transl.double().numpy()
    if spec.framing == "crop":
        boxed = batch.boxed
        assert boxed.mean() == pytest.approx(spec.box_share, abs=0.03)
        if (~boxed).any():  # depth framing (none of the presets' people now; a caller may ask for it)
            low, high = spec.depth_range
            depth = transl[~boxed, 2]
            assert depth.min() >= low and depth.max() <= high
            assert depth.std() == pytest.approx((high - low) / np.sqrt(12), rel=0.05)
            assert transl[~boxed, :2].std() == pytest.approx(spec.lateral_std, rel=0.05)
        if boxed.any():  # detector-box crops: the keypoints' box fills crop / 1.2, near the centre
            pixels = batch.clean[boxed][..., :2].double().numpy()
            crop = min(spec.image_size)
            fill = (pixels.max(1) - pixels.min(1)).max(-1) / (crop / 1.2)
            assert fill.min() > 0.97 * spec.box_fill[0] and fill.max() < 1.03 * spec.box_fill[1]
            centre = (pixels.max(1) + pixels.min(1)) / 2 - crop / 2
            assert np.abs(centre).max() < 1.1 * spec.box_offset * crop
            assert np.abs(centre).max() > 0.8 * spec.box_offset * crop
    else:
        pixels = batch.clean[..., :2].double().numpy()
        side = (pixels.max(1) - pixels.min(1)).max(-1) * 1.2 / min(spec.image_size)
        assert side.min() > spec.fill_range[0] - 1e-4 and side.max() < spec.fill_range[1] + 1e-4
        assert batch.inside.float().mean() > 0.99  # placed within the photo
    assert batch.focal_length == pytest.approx(spec.focal_length or np.hypot(*spec.image_size))


def test_corruption_and_blocks_match_the_table(drawn):
    spec, batch = drawn
    detected = batch.keypoints.double().numpy()
    gt_gone = (detected[:, NUM_OPENPOSE_JOINTS:, 2] == 0).all(1)
    openpose_gone = (detected[:, :NUM_OPENPOSE_JOINTS, 2] == 0).all(1)
    assert gt_gone.mean() == pytest.approx(spec.openpose_only_prob, abs=0.025)
    assert openpose_gone.mean() == pytest.approx(spec.gt_only_prob, abs=0.02)
    kept = np.concatenate([np.repeat(~openpose_gone[:, None], NUM_OPENPOSE_JOINTS, 1),
                           np.repeat(~gt_gone[:, None], detected.shape[1] - NUM_OPENPOSE_JOINTS, 1)], 1)
    inside = batch.inside.numpy() & kept
    config = spec.corruption_config()
    if config == CorruptionConfig():
        np.testing.assert_array_equal(detected[kept], batch.clean.double().numpy()[kept])
    else:  # misses (plus the few inside joints an outlier or jitter pushed out)
        assert (detected[..., 2][inside] == 0).mean() == pytest.approx(config.miss_prob, abs=0.01)
        confidence = detected[..., 2][inside & (detected[..., 2] > 0)]
        assert confidence.mean() == pytest.approx(1 - config.confidence_spread / 2, abs=0.02)


def test_face_points_the_head_hides_and_the_small_toes_go_missing_as_the_preset_says(body_model, flat_pool):
    spec = replace(PRESETS["regressor"], corruption="none", openpose_only_prob=1.0, gt_only_prob=0.0,
                   pool_draw="with_replacement", face_hiding_prob=1.0, no_small_toes_prob=0.5)  # fmt: skip
    batch = draw_people(body_model, spec, DRAWS, seed=7, pool=flat_pool)
    missing = batch.keypoints[..., 2].numpy() == 0
    nose, l_ear, r_ear, l_toe, r_toe = joint_indices(["OP Nose", "OP LEar", "OP REar", "OP LSmallToe", "OP RSmallToe"])
    toes = missing[:, l_toe]
    np.testing.assert_array_equal(toes, missing[:, r_toe])  # both small toes or neither
    assert toes.mean() == pytest.approx(spec.no_small_toes_prob, abs=0.025)
    turned = ((batch.yaw + 180) % 360) - 180  # degrees, 0 facing the camera
    away, side_on = np.abs(turned) > 120, (np.abs(turned) > 60) & (np.abs(turned) < 100)
    assert missing[away, nose].mean() > 0.9 and missing[np.abs(turned) < 30, nose].mean() < 0.05
    assert (missing[side_on, l_ear] | missing[side_on, r_ear]).mean() > 0.7  # the body's turn, not the head's
    assert not (missing[:, l_ear] & missing[:, r_ear] & ~missing[:, nose]).any()  # never both ears of a visible face
    # The same people without the two settings: every OpenPose point in the image is detected.
    plain = draw_people(body_model, replace(spec, face_hiding_prob=0.0, no_small_toes_prob=0.0), DRAWS, seed=7,
                        pool=flat_pool)  # fmt: skip
    openpose = slice(0, NUM_OPENPOSE_JOINTS)
    assert (plain.keypoints[:, openpose, 2] > 0).numpy()[plain.inside[:, openpose].numpy()].all()
    torch.testing.assert_close(plain.pose, batch.pose)
    # A share of 0.5: half the people turned away lose the nose, the other half keep it.
    half = draw_people(body_model, replace(spec, face_hiding_prob=0.5), DRAWS, seed=7, pool=flat_pool)
    share = float((half.keypoints[away, nose, 2] == 0).float().mean())
    assert share == pytest.approx(0.5 * missing[away, nose].mean(), abs=0.08)
    for name in ("fitting", "photo", "rendered"):
        assert PRESETS[name].face_hiding_prob == 0 and PRESETS[name].no_small_toes_prob == 0, name


def test_hidden_by_head_known_answers():
    # Points: 0 nose, 1/2 left/right ear, 3/4 left/right eye, 10 px apart across the image.
    points = np.array([[0.0, 0.0], [-10.0, 0.0], [10.0, 0.0], [-4.0, -2.0], [4.0, -2.0]])
    args = ((1, 2), 0, [0, 3, 4], [(1, 2), (3, 4)])
    facing = np.array([0.0, 6.0, 6.0, 1.0, 1.0])  # ears behind the nose, level pairs
    assert not hidden_by_head(points, facing, *args).any()
    away = np.array([6.0, 0.0, 0.0, 5.0, 5.0])  # the nose behind the ears
    np.testing.assert_array_equal(hidden_by_head(points, away, *args), [True, False, False, True, True])
    side = np.array([0.0, 30.0, 2.0, 12.0, 1.0])  # left ear 28 px behind the right (20 px apart)
    np.testing.assert_array_equal(hidden_by_head(points, side, *args), [False, True, False, True, False])
    batched = hidden_by_head(np.stack([points] * 3), np.stack([facing, away, side]), *args)
    np.testing.assert_array_equal(batched[2], hidden_by_head(points, side, *args))


def test_the_table_is_the_docstring_table():
    for name, spec in PRESETS.items():
        row = re.search(rf"^{name} .*$", people.__doc__, re.MULTILINE).group(0)
        cells = row.split()
        assert cells[2] == f"{spec.yaw_range[0]:g}..{spec.yaw_range[1]:g}", name
        assert float(cells[3]) == spec.back_view_prob and float(cells[4]) == spec.tilt_std, name
        assert cells[5].startswith(f"N(0,{spec.shape_std:g})"), name
        if spec.shape_clip is not None:
            assert cells[6] == f"+-{spec.shape_clip:g}", name
        if spec.framing == "crop":
            if spec.box_share > 0:
                box = f"box {spec.box_fill[0]:g}-{spec.box_fill[1]:g}, +-{100 * spec.box_offset:g}%"
                assert box in row, name
            if spec.box_share < 1:
                assert f"depth {spec.depth_range[0]:g}-{spec.depth_range[1]:g} m, {spec.lateral_std:g} m" in row, name
            assert float(cells[-4]) == spec.box_share, name
        if spec.openpose_only_prob or spec.gt_only_prob:
            assert [float(c) for c in cells[-2:]] == [spec.openpose_only_prob, spec.gt_only_prob], name
    assert "fill 0.5-0.9, place 0.6" in re.search(r"^photo .*$", people.__doc__, re.MULTILINE).group(0)


def test_the_regressor_and_the_fitting_problems_are_framed_as_detector_box_crops():
    # One framing everywhere, the one users feed: spin-diff fit's detector-box crops.
    regressor, fitting = PRESETS["regressor"], PRESETS["fitting"]
    for field in ("camera", "image_size", "focal_length", "framing", "box_share", "box_fill", "box_offset"):
        assert getattr(regressor, field) == getattr(fitting, field), field
    assert fitting.box_share == 1.0


def test_a_person_does_not_depend_on_its_batch(body_model):
    pool = PosePool.from_poses(load_real_poses("val")[:40])
    for name in ("regressor", "fitting"):
        many = draw_people(body_model, name, 24, seed=3, pool=pool)
        few = draw_people(body_model, name, 5, seed=3, pool=pool)
        later = draw_people(body_model, name, 6, seed=3, start=10, pool=pool)
        for field in ("pose", "betas", "transl", "keypoints"):
            torch.testing.assert_close(getattr(few, field), getattr(many, field)[:5], atol=1e-4, rtol=0)
            torch.testing.assert_close(getattr(later, field), getattr(many, field)[10:16], atol=1e-4, rtol=0)
        other = draw_people(body_model, name, 5, seed=4, pool=pool)
        assert not torch.allclose(other.pose, few.pose)
    sampler = draw_people(body_model, "fitting", 70, seed=2)  # two sampler chunks
    torch.testing.assert_close(draw_people(body_model, "fitting", 3, seed=2, start=66).pose, sampler.pose[66:69])


def test_keyed_draws_rows_depend_only_on_their_key():
    a = KeyedDraws(1, 2, np.arange(10))
    b = KeyedDraws(1, 2, np.arange(4, 6))
    np.testing.assert_array_equal(a.random((10, 3))[4:6], b.random((2, 3)))
    np.testing.assert_array_equal(a.standard_normal(10)[4:6], b.standard_normal(2))
    u = KeyedDraws(0, 0, np.arange(20000)).random(20000)
    assert u.mean() == pytest.approx(0.5, abs=0.01) and 0 < u.min() and u.max() < 1


def test_make_problems_draws_the_fitting_preset(body_model):
    corruption = CorruptionConfig.preset("detector")
    poses = load_real_poses("val")
    problems = make_problems(body_model, 6, seed=3, corruption=corruption, poses=poses)
    direct = draw_people(body_model, "fitting", 6, seed=3, pool=PosePool.from_poses(poses), corruption=corruption)
    torch.testing.assert_close(problems.pose, direct.pose, atol=0, rtol=0)
    torch.testing.assert_close(problems.keypoints, direct.keypoints, atol=0, rtol=0)
    torch.testing.assert_close(problems.transl, direct.transl, atol=0, rtol=0)


def test_make_problems_inputs_change_only_which_joints_are_detected(body_model):
    corruption, poses = CorruptionConfig.preset("detector"), load_real_poses("val")
    drawn = {kind: make_problems(body_model, 200, seed=3, corruption=corruption, poses=poses, inputs=kind)
             for kind in ("all", "openpose", "detector")}  # fmt: skip
    found = {kind: problems.keypoints[..., 2] > 0 for kind, problems in drawn.items()}
    toes = joint_indices(["OP LSmallToe", "OP RSmallToe"])
    face = joint_indices(["OP Nose", "OP LEye", "OP REye", "OP LEar", "OP REar"])
    assert not found["openpose"][:, NUM_OPENPOSE_JOINTS:].any() and not found["detector"][:, toes].any()
    assert found["openpose"][:, toes].float().mean() > 0.9  # only detector misses lose them
    assert 0.02 < (found["all"][:, face] & ~found["openpose"][:, face]).float().mean() < 0.3  # the head hides some
    rest = [j for j in range(NUM_OPENPOSE_JOINTS) if j not in face]
    for kind in ("openpose", "detector"):
        torch.testing.assert_close(drawn[kind].pose, drawn["all"].pose, atol=0, rtol=0)
        same = found[kind][:, rest]  # every joint still detected is where "all" has it
        torch.testing.assert_close(drawn[kind].keypoints[:, rest][same], drawn["all"].keypoints[:, rest][same])
    torch.testing.assert_close(found["detector"][:, face], found["openpose"][:, face])
    with pytest.raises(BadInputError, match="inputs 'blazepose'"):
        make_problems(body_model, 2, inputs="blazepose")


def test_make_photo_problems_draws_the_photo_preset(body_model):
    corruption = CorruptionConfig.preset("detector")
    problems = make_photo_problems(body_model, 4, seed=1, corruption=corruption)
    direct = draw_people(body_model, "photo", 4, seed=1, corruption=corruption)
    torch.testing.assert_close(problems.keypoints, direct.keypoints, atol=0, rtol=0)
    assert (problems.clean_keypoints[:, NUM_OPENPOSE_JOINTS:, 2] == 0).all()
    # from real poses (the held-out CMU splits), as make_problems takes them
    poses = load_real_poses("val")
    real = make_photo_problems(body_model, 4, seed=1, corruption=corruption, poses=poses)
    direct = draw_people(body_model, "photo", 4, seed=1, pool=PosePool.from_poses(poses), corruption=corruption)
    torch.testing.assert_close(real.pose, direct.pose, atol=0, rtol=0)
    torch.testing.assert_close(real.keypoints, direct.keypoints, atol=0, rtol=0)
    with pytest.raises(BadInputError, match="asked for 5 problems from 3 poses"):
        make_photo_problems(body_model, 5, seed=1, poses=poses[:3])
    # a detector's joints: the same people, the small toes and the face points the head hides gone
    detector = make_photo_problems(body_model, 4, seed=1, corruption=corruption, poses=poses, inputs="detector")
    torch.testing.assert_close(detector.pose, real.pose, atol=0, rtol=0)
    toes = joint_indices(["OP LSmallToe", "OP RSmallToe"])
    assert (detector.keypoints[:, toes, 2] == 0).all() and (real.keypoints[:, toes, 2] > 0).any()
    kept = detector.keypoints[..., 2] > 0
    torch.testing.assert_close(detector.keypoints[kept], real.keypoints[kept], atol=0, rtol=0)
    with pytest.raises(BadInputError, match="inputs 'all'"):
        make_photo_problems(body_model, 2, inputs="all")


def test_the_regressor_training_stream_draws_the_regressor_preset(body_model, monkeypatch):
    stream = SyntheticKeypoints(body_model, seed=9, pool_size=64)
    first, second = stream.sample(4), stream.sample(3)
    direct = draw_people(body_model, "regressor", 7, seed=9, pool=PosePool.from_sampler(64, seed=9))
    # pixels of a few hundred: float32 round-off of batches 4 + 3 against 7 is ~1e-5 (1.5e-5 on an AMD EPYC)
    torch.testing.assert_close(torch.cat([first.keypoints, second.keypoints]), direct.keypoints, atol=1e-4, rtol=0)
    torch.testing.assert_close(first.pose, direct.pose[:4])

    presets = []
    real = train_keypoints.draw_people

    def spy(body, spec, *args, **kwargs):
        presets.append(spec.name)
        return real(body, spec, *args, **kwargs)

    monkeypatch.setattr(train_keypoints, "draw_people", spy)
    train_keypoint_regressor(body_model, KeypointTrainConfig(steps=2, batch_size=4, pool_size=64, log_every=1))
    assert presets == ["regressor", "regressor"]


def test_the_fitting_benchmarks_draw_through_the_generator(body_model, monkeypatch):
    calls = []
    real = keypoint_sets.draw_people
    monkeypatch.setattr(keypoint_sets, "draw_people", lambda *a, **k: calls.append(a[1].name) or real(*a, **k))
    make_problems(body_model, 2, seed=0)
    make_photo_problems(body_model, 2, seed=0)
    assert calls == ["fitting", "photo"]


def test_rendered_sets_draw_their_bodies_through_the_generator(body_model, tmp_path):
    config = SynthConfig(num_images=2, image_size=(48, 64), supersample=1, save_masks=False, seed=3)
    data = read_spin_npz(generate_dataset(config, tmp_path, body_model, progress=False))
    bodies = people.draw_bodies(people_preset(config), 2, 3, body_model.num_betas)
    np.testing.assert_allclose(data["pose"], bodies.pose)
    np.testing.assert_allclose(data["shape"], bodies.betas)


def test_synth_defaults_are_the_rendered_row():
    default, row = people_preset(SynthConfig()), PRESETS["rendered"]
    assert replace(default, corruption=row.corruption) == row
    assert SynthConfig().corruption == CorruptionConfig.preset(row.corruption)


def test_frame_person_hits_size_and_centre():
    rng = np.random.default_rng(0)
    points = rng.normal(scale=[0.3, 0.8, 0.2], size=(500, 3))
    t = frame_person(points, 600.0, np.array([160.0, 120.0]), np.array([100.0, 90.0]), 150.0)
    camera = points + t
    pixels = 600.0 * camera[:, :2] / camera[:, 2:3] + [160.0, 120.0]
    low, high = pixels.min(0), pixels.max(0)
    assert abs((high - low).max() - 150.0) < 1e-5
    np.testing.assert_allclose(0.5 * (low + high), [100.0, 90.0], atol=1e-5)


def test_global_orient_faces_the_camera():
    orient, yaw = sample_global_orient(500, np.random.default_rng(0), (-30.0, 30.0), back_view_prob=0.0, tilt_std=0.0)
    rotation = axis_angle_to_matrix(torch.as_tensor(orient)).numpy()
    forward = rotation[:, :, 2]  # where the body's front (+z) points in the camera frame
    up = rotation[:, :, 1]
    assert np.all(forward[:, 2] < -np.cos(np.deg2rad(30.0)) + 1e-9)  # towards the camera
    np.testing.assert_allclose(up[:, 1], -1.0, atol=1e-12)  # upright: body up is image up
    np.testing.assert_allclose(np.rad2deg(np.arctan2(forward[:, 0], -forward[:, 2])), yaw, atol=1e-9)
    assert np.abs(yaw).max() <= 30.0 and np.abs(yaw).min() < 2.0


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="regressor"):
        preset("nope")


def test_a_negative_seed_gets_one_line_naming_it(body_model, tmp_path, capsys):
    with pytest.raises(BadInputError, match="seed -1"):
        draw_people(body_model, "fitting", 2, seed=-1)
    assert main(["synth", "--out", str(tmp_path / "s"), "--n", "1", "--seed", "-1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "synth.seed must be >= 0" in err
    assert not (tmp_path / "s").exists()
