"""Synthetic datasets end to end on tiny sets: SPIN format, exact cameras, images, determinism."""

import argparse
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from spin_diff.body.model import load_body_model
from spin_diff.constants import CROP_SIZE, FOCAL_LENGTH
from spin_diff.data.corruption import CorruptionConfig
from spin_diff.data.openpose import read_openpose_json
from spin_diff.data.spin_npz import SPIN_KEYS, SYNTH_KEYS, keypoints_49, read_spin_npz
from spin_diff.data.synth import SynthConfig, generate_dataset, image_rng, procedural_background
from spin_diff.geometry.cameras import (
    full_to_crop_translation,
    image_keypoints_to_crop,
    perspective_projection,
    weak_perspective_to_translation,
)
from spin_diff.render import render_mesh

TINY = SynthConfig(num_images=4, seed=7, image_size=(128, 128))
SPIN_REQUIRED = tuple(k for k in SPIN_KEYS if k != "gender")


@pytest.fixture(scope="module")
def body_model():
    return load_body_model()


@pytest.fixture(scope="module")
def tiny_set(body_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    path = generate_dataset(TINY, out, body_model=body_model, progress=False)
    return out, read_spin_npz(path, require=SPIN_REQUIRED + tuple(SYNTH_KEYS))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_keys_and_shapes(tiny_set):
    out, data = tiny_set
    n = TINY.num_images
    expected = {
        "imgname": (n,), "center": (n, 2), "scale": (n,), "part": (n, 24, 3), "openpose": (n, 25, 3),
        "S": (n, 24, 4), "pose": (n, 72), "shape": (n, 10), "has_smpl": (n,),
        "openpose_detected": (n, 25, 3), "part_detected": (n, 24, 3), "transl": (n, 3),
        "focal_length": (n,), "camera_center": (n, 2), "image_size": (n, 2), "bbox": (n, 4), "posture": (n,),
    }  # fmt: skip
    assert {k: v.shape for k, v in data.items()} == expected
    assert data["imgname"].tolist() == [f"images/{i:06d}.jpg" for i in range(n)]
    assert np.all(data["has_smpl"] == 1) and np.all(data["S"][..., 3] == 1)
    for i, name in enumerate(data["imgname"]):
        image = cv2.imread(str(out / name))
        assert image.shape == (128, 128, 3)
        assert (out / "masks" / f"{i:06d}.png").is_file()
        assert (out / "keypoints" / f"{i:06d}_keypoints.json").is_file()
    assert (out / "synth_config.yaml").is_file()


def test_gt_parameters_reproduce_the_3d_joints(tiny_set, body_model):
    _, data = tiny_set
    with torch.no_grad():
        joints = body_model(
            torch.as_tensor(data["pose"], dtype=torch.float32), torch.as_tensor(data["shape"], dtype=torch.float32)
        ).joints.double().numpy()
    np.testing.assert_allclose(joints[:, 25:] + data["transl"][:, None], data["S"][..., :3], atol=1e-5)


def test_reprojecting_S_gives_the_clean_keypoints(tiny_set):
    _, data = tiny_set
    S = torch.as_tensor(data["S"][..., :3])
    pixels = perspective_projection(
        S,
        torch.zeros(len(S), 3, dtype=torch.float64),
        torch.as_tensor(data["focal_length"]),
        torch.as_tensor(data["camera_center"]),
    ).numpy()
    assert np.abs(pixels - data["part"][..., :2]).max() < 0.5
    assert np.abs(pixels - data["part"][..., :2]).max() < 1e-6  # in fact exact
    width, height = TINY.image_size
    inside = (pixels[..., 0] >= 0) & (pixels[..., 0] < width) & (pixels[..., 1] >= 0) & (pixels[..., 1] < height)
    np.testing.assert_array_equal(data["part"][..., 2], inside.astype(float))
    # OpenPose joints: the projected first block of the 49 joints, also exact.
    assert np.all(data["openpose"][..., 2] == 1)  # people lie inside the default boxes


def test_openpose_block_matches_projected_model_joints(tiny_set, body_model):
    _, data = tiny_set
    with torch.no_grad():
        joints = body_model.joints(
            torch.as_tensor(data["pose"], dtype=torch.float32), torch.as_tensor(data["shape"], dtype=torch.float32)
        ).joints.double()
    pixels = perspective_projection(
        joints, torch.as_tensor(data["transl"]), torch.as_tensor(data["focal_length"]), torch.as_tensor(data["camera_center"])
    ).numpy()
    assert np.abs(pixels[:, :25] - data["openpose"][..., :2]).max() < 0.05


def test_crop_camera_is_exactly_spins(tiny_set, body_model):
    """Crop with center/scale; SPIN's crop camera (focal 5000, 224) with the GT translation
    projects the GT joints exactly onto the cropped keypoints."""
    _, data = tiny_set
    center, scale = torch.as_tensor(data["center"]), torch.as_tensor(data["scale"])
    np.testing.assert_array_equal(data["center"], data["camera_center"])  # box centred on the principal point
    np.testing.assert_allclose(data["focal_length"], FOCAL_LENGTH * 200 * data["scale"] / CROP_SIZE, rtol=1e-12)
    # The crop translation from the full-image camera (HMR 2.0 convention) is the GT one.
    weak = full_to_crop_translation(
        torch.as_tensor(data["transl"]), center, 200 * scale, torch.as_tensor(data["image_size"]),
        torch.as_tensor(data["focal_length"]),
    )  # fmt: skip
    crop_translation = weak_perspective_to_translation(weak)
    np.testing.assert_allclose(crop_translation.numpy(), data["transl"], rtol=1e-9)

    # GT block: from S, exact to round-off.
    body_joints = torch.as_tensor(data["S"][..., :3] - data["transl"][:, None])
    projected = perspective_projection(body_joints, crop_translation, FOCAL_LENGTH)
    cropped = image_keypoints_to_crop(torch.as_tensor(data["part"][..., :2]), center, scale)
    assert (cropped - projected).abs().max() < 1e-6
    # OpenPose block: from the body model's joints (float32 forward: ~1e-3 px).
    with torch.no_grad():
        joints = body_model.joints(
            torch.as_tensor(data["pose"], dtype=torch.float32), torch.as_tensor(data["shape"], dtype=torch.float32)
        ).joints.double()
    projected = perspective_projection(joints[:, :25], crop_translation, FOCAL_LENGTH)
    cropped = image_keypoints_to_crop(torch.as_tensor(data["openpose"][..., :2]), center, scale)
    assert (cropped - projected).abs().max() < 0.05

    # The person fills the crop the way SPIN's boxes do (larger side 224 / 1.2), centred.
    bbox = torch.as_tensor(data["bbox"]).view(-1, 2, 2)
    bbox_crop = image_keypoints_to_crop(bbox, center, scale)
    sides = (bbox_crop[:, 1] - bbox_crop[:, 0]).max(-1).values
    np.testing.assert_allclose(sides.numpy(), CROP_SIZE / TINY.box_padding, atol=1e-4)
    np.testing.assert_allclose(bbox_crop.mean(1).numpy(), CROP_SIZE / 2, atol=1e-4)


def _silhouette(data, body_model, index: int) -> np.ndarray:
    with torch.no_grad():
        vertices = body_model(
            torch.as_tensor(data["pose"][index : index + 1], dtype=torch.float32),
            torch.as_tensor(data["shape"][index : index + 1], dtype=torch.float32),
        ).vertices[0].double().numpy()
    width, height = (int(v) for v in data["image_size"][index])
    return render_mesh(
        vertices, body_model.faces, translation=data["transl"][index], focal_length=data["focal_length"][index],
        camera_center=data["camera_center"][index], image_size=(height, width),
    ).mask  # fmt: skip


def test_rendered_person_matches_the_recorded_camera(tiny_set, body_model):
    out, data = tiny_set
    for i in range(TINY.num_images):
        mask = _silhouette(data, body_model, i)
        saved = cv2.imread(str(out / "masks" / f"{i:06d}.png"), cv2.IMREAD_GRAYSCALE) > 127
        # The anti-aliased mask and a native render may disagree only along the outline (on a
        # thin person in this 128 px image that alone costs a few IoU points).
        outline = mask & ~(cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
        assert (mask ^ saved).sum() < 0.3 * outline.sum(), i
        assert (mask & saved).sum() / (mask | saved).sum() > 0.9, i
        # The GT joints that lie inside the body project onto its silhouette.
        grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        for key in ("part", "openpose"):
            u, v = np.floor(data[key][i, :, :2]).astype(int).T
            assert grown[v, u].mean() >= 0.9, (i, key)
        # The image shows the person over the procedural background of that image.
        image = cv2.cvtColor(cv2.imread(str(out / data["imgname"][i])), cv2.COLOR_BGR2RGB).astype(float)
        background = procedural_background(image_rng(TINY.seed, i), 128, 128).astype(float)
        difference = np.abs(image - background).max(-1)
        edge = cv2.dilate(saved.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert np.median(difference[~edge]) < 10  # background: JPEG and sensor noise only
        assert np.mean(difference[saved] > 25) > 0.6  # the person stands out


def test_detected_keypoints_and_json(tiny_set):
    out, data = tiny_set
    clean, detected = keypoints_49(data), keypoints_49(data, detected=True)
    assert detected.shape == clean.shape == (4, 49, 3)
    assert not np.array_equal(detected, clean)  # the default corruption is on
    found = detected[..., 2] > 0
    assert 0.8 < found.mean() < 1.0
    assert np.median(np.linalg.norm(detected[..., :2] - clean[..., :2], axis=-1)[found]) < 0.05 * 200 * data["scale"].max()
    for i in range(TINY.num_images):
        from_json = read_openpose_json(out / "keypoints" / f"{i:06d}_keypoints.json")
        assert from_json.shape == (1, 25, 3)
        np.testing.assert_allclose(from_json[0], data["openpose_detected"][i], rtol=0, atol=1e-9)
    content = json.loads((out / "keypoints" / "000000_keypoints.json").read_text())
    assert content["version"] == 1.3


def test_same_seed_same_files_other_seed_other_files(tiny_set, body_model, tmp_path):
    out, _ = tiny_set
    generate_dataset(TINY, tmp_path / "again", body_model=body_model, progress=False)
    assert _files(tmp_path / "again") == _files(out)
    generate_dataset(replace(TINY, seed=8), tmp_path / "other", body_model=body_model, progress=False)
    other, same = _files(tmp_path / "other"), _files(out)
    assert other.keys() == same.keys()
    assert all(other[k] != same[k] for k in other if k.startswith("images/"))
    a, b = read_spin_npz(out / "synth.npz"), read_spin_npz(tmp_path / "other" / "synth.npz")
    assert not np.allclose(a["pose"], b["pose"]) and not np.allclose(a["shape"], b["shape"])


def test_no_corruption_keeps_detected_equal_to_clean(body_model, tmp_path):
    config = replace(TINY, num_images=2, corruption=CorruptionConfig(), save_masks=False, supersample=1)
    data = read_spin_npz(generate_dataset(config, tmp_path, body_model=body_model, progress=False))
    np.testing.assert_array_equal(data["openpose_detected"], data["openpose"])
    np.testing.assert_array_equal(data["part_detected"], data["part"])
    assert not (tmp_path / "masks").exists()


def test_realistic_focal_places_people_off_centre(body_model, tmp_path):
    config = replace(
        TINY, num_images=3, image_size=(160, 120), focal="realistic", box_fraction=(0.5, 0.7), placement=1.0,
        supersample=1, save_masks=False,
    )  # fmt: skip
    data = read_spin_npz(generate_dataset(config, tmp_path, body_model=body_model, progress=False))
    np.testing.assert_allclose(data["focal_length"], np.hypot(160, 120))
    np.testing.assert_array_equal(data["camera_center"], np.tile([80.0, 60.0], (3, 1)))
    assert np.abs(data["center"] - data["camera_center"]).max() > 5
    S = torch.as_tensor(data["S"][..., :3])
    pixels = perspective_projection(
        S, torch.zeros(3, 3, dtype=torch.float64), torch.as_tensor(data["focal_length"]), torch.as_tensor(data["camera_center"])
    ).numpy()
    assert np.abs(pixels - data["part"][..., :2]).max() < 1e-6
    # The box is the padded square around the projected mesh.
    bbox = data["bbox"]
    np.testing.assert_allclose(data["center"], 0.5 * (bbox[:, :2] + bbox[:, 2:]))
    np.testing.assert_allclose(200 * data["scale"], 1.2 * (bbox[:, 2:] - bbox[:, :2]).max(1))
    assert np.all(data["transl"][:, 2] < 10)  # a normal camera distance, metres


def test_backgrounds_are_varied_and_deterministic():
    images = [procedural_background(image_rng(0, i), 64, 48) for i in range(12)]
    assert all(im.shape == (48, 64, 3) and im.dtype == np.uint8 for im in images)
    np.testing.assert_array_equal(images[3], procedural_background(image_rng(0, 3), 64, 48))
    means = np.array([im.reshape(-1, 3).mean(0) for im in images])
    assert means.std(0).min() > 15  # different colours
    assert np.mean([im.reshape(-1, 3).std(0).mean() > 5 for im in images]) > 0.8  # not flat


def test_config_validation_names_the_setting(tmp_path):
    for change, name in (
        ({"num_images": 0}, "synth.num_images"),
        ({"image_size": (8, 8)}, "synth.image_size"),
        ({"box_padding": 0.9}, "synth.box_padding"),
        ({"focal": "fisheye"}, "synth.focal"),
        ({"corruption": CorruptionConfig(miss_prob=2.0)}, "corruption.miss_prob"),
    ):
        with pytest.raises(ValueError, match=name):
            generate_dataset(replace(TINY, **change), tmp_path, progress=False)


def test_cli_writes_a_dataset_and_prints_a_summary(tmp_path, capsys):
    from spin_diff.cli import synth as synth_cli

    parser = argparse.ArgumentParser()
    synth_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["synth", "--out", str(tmp_path), "--n", "2", "--seed", "3", "--image-size", "96x80", "--corrupt", "heavy",
         "--postures", "standing,walking", "--quiet", "--set", "synth.supersample=1"]
    )  # fmt: skip
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "wrote 2 images (96x80)" in out and "postures:" in out
    data = read_spin_npz(tmp_path / "synth.npz")
    assert np.all(data["image_size"] == [96, 80]) and set(data["posture"]) <= {"standing", "walking"}
    assert (tmp_path / "config.yaml").is_file()
    assert "supersample: 1" in (tmp_path / "config.yaml").read_text()
    with pytest.raises(ValueError, match="--image-size"):
        synth_cli.parse_image_size("big")
