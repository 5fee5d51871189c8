"""`spin-diff fit`: every way inputs and outputs could be mixed up gets a clear answer."""

import json
import shutil

import numpy as np
import pytest
import torch

from spin_diff.apps.fit_photos import find_inputs, parse_bbox
from spin_diff.cli.main import main
from spin_diff.fitting.images import crop_problem
from spin_diff.utils.jsonio import json_safe

# A cheap run: the in-loop recipe with few iterations, success not judged (these tests are
# about inputs and outputs, not accuracy).
CHEAP = ["--recipe", "from_regressor", "--quiet", "--set", "fitting.stages.0.iterations=5",
         "--set", "fitting.stages.1.iterations=5", "--set", "fitting.quality.enabled=false"]  # fmt: skip


def strict_json(path):
    """Parse JSON the way strict parsers do: NaN / Infinity are errors."""

    def refuse(name):
        raise ValueError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_inputs")
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--n",
                "2",
                "--image-size",
                "192x192",
                "--corrupt",
                "none",
                "--quiet",
            ]
        )
        == 0
    )
    return out


@pytest.fixture
def one(synth_set, tmp_path):
    """A folder with one image and a folder with its keypoints."""
    images, keypoints = tmp_path / "images", tmp_path / "keypoints"
    images.mkdir()
    keypoints.mkdir()
    shutil.copy(synth_set / "images" / "000000.jpg", images / "a.jpg")
    shutil.copy(synth_set / "keypoints" / "000000_keypoints.json", keypoints / "a_keypoints.json")
    return images, keypoints


def run(images, keypoints, out, *extra):
    return main(["fit", str(images), "--keypoints", str(keypoints), "--out", str(out), *CHEAP, *extra])


# ------------------------------------------------------------------ pairing


def test_one_json_for_a_folder_of_images_is_an_error_unless_one_image(one, synth_set, tmp_path, capsys):
    images, keypoints = one
    json_file = keypoints / "a_keypoints.json"
    assert run(images, json_file, tmp_path / "o1") == 0  # one image: fine
    shutil.copy(synth_set / "images" / "000001.jpg", images / "b.jpg")
    assert run(images, json_file, tmp_path / "o2") == 2
    err = capsys.readouterr().err
    assert "is one JSON file but" in err and "holds 2 images" in err and "Traceback" not in err
    assert not (tmp_path / "o2").exists()  # nothing written


def test_same_stem_images_get_distinct_output_folders(one, tmp_path):
    images, keypoints = one
    import cv2

    cv2.imwrite(str(images / "a.png"), cv2.imread(str(images / "a.jpg")))
    pairs, _ = find_inputs(images, keypoints)
    assert sorted(p.name for p in pairs) == ["a.jpg", "a.png"]
    out = tmp_path / "out"
    assert run(images, keypoints, out) == 0
    assert (out / "a.jpg" / "person_00" / "params.json").is_file()
    assert (out / "a.png" / "person_00" / "params.json").is_file()


def test_json_without_image_is_reported(one, tmp_path, capsys):
    images, keypoints = one
    shutil.copy(keypoints / "a_keypoints.json", keypoints / "ghost_keypoints.json")
    (keypoints / "a_bbox.json").write_text(
        json.dumps({"bbox": [0, 0, 192, 192]})
    )  # SPIN's box file: a's box, not keypoints
    code = run(images, keypoints, tmp_path / "out")
    printed = capsys.readouterr().out
    assert code == 1
    assert f"FAILED {keypoints / 'ghost_keypoints.json'}: keypoint JSON with no image" in printed
    assert "a_bbox.json: keypoint JSON" not in printed and "FAILED a" not in printed
    assert (tmp_path / "out" / "a" / "person_00" / "params.json").is_file()  # the paired one is fitted


def test_spin_openpose_naming_is_found(one, tmp_path):
    images, keypoints = one
    (keypoints / "a_keypoints.json").rename(keypoints / "a_openpose.json")
    pairs, orphans = find_inputs(images, keypoints)
    assert pairs[0].keypoints == keypoints / "a_openpose.json" and orphans == []
    assert run(images, keypoints, tmp_path / "out") == 0


def test_image_without_json_is_reported(one, tmp_path, capsys):
    images, keypoints = one
    (keypoints / "a_keypoints.json").unlink()
    assert run(images, keypoints, tmp_path / "out") == 1
    assert "no OpenPose JSON found" in capsys.readouterr().out


# ------------------------------------------------------------------ boxes


def test_bbox_accepts_spin_json_and_says_which_form_it_read(one, tmp_path, capsys):
    images, keypoints = one
    box_file = tmp_path / "a_bbox.json"
    box_file.write_text(json.dumps({"bbox": [20, 10, 120, 160]}))  # x, y, w, h
    box = parse_bbox(str(box_file))
    assert box.center.tolist() == [80.0, 90.0] and box.size == 160.0 and "SPIN bbox JSON" in box.source
    assert run(images, keypoints, tmp_path / "o1", "--bbox", str(box_file)) == 0
    printed = capsys.readouterr().out
    assert "--bbox: read SPIN bbox JSON [x, y, w, h]" in printed
    params = strict_json(tmp_path / "o1" / "a" / "person_00" / "params.json")
    assert params["box_center"] == [80.0, 90.0] and params["box_size"] == 160.0
    assert run(images, keypoints, tmp_path / "o2", "--bbox", "20,10,140,170") == 0
    assert "--bbox: read x1,y1,x2,y2" in capsys.readouterr().out
    params = strict_json(tmp_path / "o2" / "a" / "person_00" / "params.json")
    assert params["box_center"] == [80.0, 90.0] and params["box_size"] == 160.0


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "expected SPIN's bbox JSON"), ('{"box": [1, 2, 3, 4]}', "expected SPIN's bbox JSON"),
     ('{"bbox": [1, 2, 0, 4]}', "is not a box")],
)  # fmt: skip
def test_bad_bbox_json_is_one_line_error(one, tmp_path, capsys, content, message):
    images, keypoints = one
    box_file = tmp_path / "box.json"
    box_file.write_text(content)
    assert run(images, keypoints, tmp_path / "out", "--bbox", str(box_file)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_spin_bbox_json_beside_each_image_boxes_it_in_a_folder(one, synth_set, tmp_path, capsys):
    images, keypoints = one
    shutil.copy(synth_set / "images" / "000001.jpg", images / "b.jpg")
    shutil.copy(synth_set / "keypoints" / "000001_keypoints.json", keypoints / "b_keypoints.json")
    (images / "a_bbox.json").write_text(json.dumps({"bbox": [10, 20, 150, 160]}))  # x, y, w, h
    pairs, orphans = find_inputs(images, keypoints)
    assert [p.bbox for p in pairs] == [images / "a_bbox.json", None] and orphans == []
    out = tmp_path / "out"
    assert run(images, keypoints, out) == 0
    assert f"person box from {images / 'a_bbox.json'}" in capsys.readouterr().out
    a = strict_json(out / "a" / "person_00" / "params.json")
    assert a["box_center"] == [85.0, 100.0] and a["box_size"] == 160.0 and "a_bbox.json" in a["box_source"]
    assert strict_json(out / "b" / "person_00" / "params.json")["box_source"] == "keypoints"
    # a broken box file fails its image alone, in one line
    (images / "a_bbox.json").write_text('{"bbox": [1, 2, 0, 4]}')
    assert run(images, keypoints, tmp_path / "out2") == 1
    printed = capsys.readouterr().out
    assert f"FAILED {images / 'a.jpg'}: bbox file {images / 'a_bbox.json'}" in printed
    assert "is not a box" in printed
    assert (tmp_path / "out2" / "b" / "person_00" / "params.json").is_file()


def test_bbox_with_several_images_is_an_error(one, synth_set, tmp_path, capsys):
    images, keypoints = one
    shutil.copy(synth_set / "images" / "000001.jpg", images / "b.jpg")
    assert run(images, keypoints, tmp_path / "out", "--bbox", "0,0,100,100") == 2
    assert "one person's box in one image" in capsys.readouterr().err


def test_degenerate_crops_are_refused(one, tmp_path, capsys):
    images, keypoints = one
    # a box of two pixels
    assert run(images, keypoints, tmp_path / "o1", "--bbox", "10,10,12,12") == 1
    assert "degenerate" in capsys.readouterr().out
    # a box outside the image
    assert run(images, keypoints, tmp_path / "o2", "--bbox", "500,500,700,700") == 1
    assert "lies outside the 192x192 image" in capsys.readouterr().out
    # keypoints of another (larger) image: outside this one
    data = json.loads((keypoints / "a_keypoints.json").read_text())
    values = np.array(data["people"][0]["pose_keypoints_2d"]).reshape(25, 3)
    values[:, :2] *= 2
    data["people"][0]["pose_keypoints_2d"] = values.ravel().tolist()
    (keypoints / "a_keypoints.json").write_text(json.dumps(data))
    assert run(images, keypoints, tmp_path / "o3") == 1
    printed = capsys.readouterr().out
    assert "confident keypoints lie outside the 192x192 image" in printed
    assert not (tmp_path / "o3" / "a" / "person_00").exists()
    summary = strict_json(tmp_path / "o3" / "summary.json")
    assert summary["items"][0]["success"] is False and "refused" in summary["items"][0]["failure"]


def test_crop_problem_accepts_a_normal_person():
    keypoints = np.zeros((49, 3))
    keypoints[:25] = [50.0, 60.0, 0.9]
    box = parse_bbox("20,20,120,120")
    assert crop_problem(keypoints, box, (200, 200), 0.1) is None


# ------------------------------------------------------------------ people and outputs


def test_one_nan_person_fails_alone(one, tmp_path, capsys):
    images, keypoints = one
    path = keypoints / "a_keypoints.json"
    data = json.loads(path.read_text())
    good = data["people"][0]["pose_keypoints_2d"]
    bad = list(good)
    bad[3] = float("nan")
    data["people"] = [{"pose_keypoints_2d": bad}, {"pose_keypoints_2d": good}]
    path.write_text(json.dumps(data))  # Python writes NaN, as some tools do
    out = tmp_path / "out"
    assert run(images, keypoints, out) == 1
    printed = capsys.readouterr().out
    assert "FAILED a/person_00: " in printed and "person 0 has NaN or inf keypoints" in printed
    params = strict_json(out / "a" / "person_01" / "params.json")
    assert np.isfinite(params["pose"]).all()
    assert not (out / "a" / "person_00").exists()
    strict_json(out / "summary.json")


def test_rerun_refuses_without_overwrite_and_replaces_everything_with_it(one, tmp_path, capsys):
    images, keypoints = one
    out = tmp_path / "out"
    assert run(images, keypoints, out) == 0
    stale = out / "a" / "person_07"
    stale.mkdir()
    (stale / "params.json").write_text("{}")
    assert run(images, keypoints, out) == 2
    err = capsys.readouterr().err
    assert "already holds results" in err and "--overwrite" in err
    assert stale.is_dir()  # refused: nothing touched
    assert run(images, keypoints, out, "--overwrite") == 0
    assert not stale.exists()
    assert (out / "a" / "person_00" / "params.json").is_file()


def test_out_being_a_file_is_a_clear_error(one, tmp_path, capsys):
    images, keypoints = one
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    assert run(images, keypoints, target) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_params_hold_the_49_joints_in_both_camera_frames(one, tmp_path):
    """joints3d_full projected by the full-image camera land where the crop fit put them."""
    from spin_diff.body.model import load_body_model

    images, keypoints = one
    out = tmp_path / "out"
    assert run(images, keypoints, out, "--camera", "full") == 0
    params = strict_json(out / "a" / "person_00" / "params.json")
    joints = np.array(params["joints3d_full"])
    assert joints.shape == (49, 3) and len(params["joint_names"]) == 49
    assert "failure" in params and params["camera"] == "full"
    # independent: the body model's joints plus the translation
    model = load_body_model()
    with torch.no_grad():
        body = model(torch.tensor([params["pose"]]), torch.tensor([params["betas"]])).joints[0].numpy()
    np.testing.assert_allclose(joints, body + np.array(params["transl_full"]), atol=1e-4)
    np.testing.assert_allclose(
        np.array(params["joints3d_crop"]), body + np.array(params["transl_crop"]), atol=1e-4
    )
    # projected by the photo's camera, the joints sit at the crop residuals (scaled to the image)
    focal, (width, height) = params["focal_length_full"], params["image_size"]
    pixels = focal * joints[:, :2] / joints[:, 2:] + np.array([width / 2, height / 2])
    kp = np.array(
        json.loads((keypoints / "a_keypoints.json").read_text())["people"][0]["pose_keypoints_2d"]
    ).reshape(25, 3)
    residuals = strict_json(out / "a" / "person_00" / "residuals.json")
    crop_residual = np.array([residuals[name]["residual_px_crop"] for name in params["joint_names"][:25]])
    image_residual = np.linalg.norm(pixels[:25] - kp[:, :2], axis=1)
    np.testing.assert_allclose(image_residual, crop_residual * params["box_size"] / 224, rtol=1e-3, atol=1e-2)


def test_focal_sets_the_photo_camera(one, tmp_path, capsys):
    images, keypoints = one
    assert run(images, keypoints, tmp_path / "o1", "--camera", "full", "--focal", "1000") == 0
    params = strict_json(tmp_path / "o1" / "a" / "person_00" / "params.json")
    assert params["camera"] == "full" and params["focal_length_full"] == 1000.0
    assert run(images, keypoints, tmp_path / "o2", "--camera", "full") == 0
    params = strict_json(tmp_path / "o2" / "a" / "person_00" / "params.json")
    assert params["focal_length_full"] == pytest.approx((192**2 + 192**2) ** 0.5)  # the image diagonal
    assert run(images, keypoints, tmp_path / "o3", "--focal", "-5") == 2
    assert "--focal must be a positive" in capsys.readouterr().err


def test_mesh_frames(one, tmp_path):
    images, keypoints = one

    def mesh_mean(frame):
        out = tmp_path / frame
        assert run(images, keypoints, out, "--mesh-frame", frame) == 0
        lines = (out / "a" / "person_00" / "mesh.obj").read_text().splitlines()
        vertices = np.array(
            [[float(v) for v in line.split()[1:4]] for line in lines if line.startswith("v ")]
        )
        return vertices.mean(0), strict_json(out / "a" / "person_00" / "params.json")

    body, _ = mesh_mean("body")
    full, params = mesh_mean("full")
    crop, _ = mesh_mean("crop")
    np.testing.assert_allclose(full - body, params["transl_full"], atol=1e-4)
    np.testing.assert_allclose(crop - body, params["transl_crop"], atol=1e-4)


def test_overlay_of_a_huge_image_is_written_at_a_sensible_size(one, tmp_path):
    import cv2

    from spin_diff.apps.fit_photos import OVERLAY_MAX_SIDE

    images, keypoints = one
    image = cv2.imread(str(images / "a.jpg"))
    factor = 20  # 3840 x 3840
    cv2.imwrite(
        str(images / "a.jpg"), cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    )
    data = json.loads((keypoints / "a_keypoints.json").read_text())
    values = np.array(data["people"][0]["pose_keypoints_2d"]).reshape(25, 3)
    values[:, :2] *= factor
    data["people"][0]["pose_keypoints_2d"] = values.ravel().tolist()
    (keypoints / "a_keypoints.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    assert run(images, keypoints, out) == 0
    overlay = cv2.imread(str(out / "a" / "person_00" / "overlay.png"))
    assert max(overlay.shape[:2]) == OVERLAY_MAX_SIDE


def test_no_nan_or_infinity_in_json():
    value = {
        "a": float("nan"),
        "b": [1.0, float("inf")],
        "c": np.array([np.nan, 2.0]),
        "d": torch.tensor(-np.inf),
    }
    assert json_safe(value) == {"a": None, "b": [1.0, None], "c": [None, 2.0], "d": None}
    json.dumps(json_safe(value), allow_nan=False)


def test_failed_fit_is_written_flagged_with_its_reason(one, tmp_path, capsys):
    """Judged fits: one that does not follow its keypoints is success false, still written."""
    images, keypoints = one
    out = tmp_path / "out"
    code = run(
        images,
        keypoints,
        out,
        "--set",
        "fitting.quality.enabled=true",
        "--set",
        "fitting.quality.max_residual_px=0.01",
    )
    assert code == 1
    assert "the body does not follow the keypoints" in capsys.readouterr().out
    params = strict_json(out / "a" / "person_00" / "params.json")
    assert params["success"] is False and "max_residual_px" in params["failure"]
    assert (out / "a" / "person_00" / "overlay.png").is_file()


# ------------------------------------------------------------------ run settings


def test_device_errors_are_one_line(one, tmp_path, capsys):
    images, keypoints = one
    if not torch.cuda.is_available():
        assert run(images, keypoints, tmp_path / "o1", "--device", "cuda") == 2
        err = capsys.readouterr().err
        assert "CUDA is not available" in err and err.count("\n") == 1
    assert run(images, keypoints, tmp_path / "o2", "--device", "tpu9") == 2
    err = capsys.readouterr().err
    assert "not a torch device" in err and err.count("\n") == 1


def test_threads_default_and_flag(one, tmp_path, capsys):
    from spin_diff.utils.threads import default_threads, set_threads

    images, keypoints = one
    before = torch.get_num_threads()
    try:
        assert run(images, keypoints, tmp_path / "o1", "--threads", "1") == 0
        assert "1 thread(s)" in capsys.readouterr().out
        assert set_threads(0) == default_threads() >= 1
        assert run(images, keypoints, tmp_path / "o2", "--threads", "-1") == 2
        assert "--threads must be >= 0" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def _worker_threads(_):
    from spin_diff.utils.threads import default_threads

    return default_threads()


def test_default_threads_is_one_in_a_dataloader_worker():
    values = list(torch.utils.data.DataLoader(_ThreadsDataset(), batch_size=None, num_workers=1))
    assert values == [1]


class _ThreadsDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, index):
        return _worker_threads(index)


def test_unknown_recipe_is_an_error(one, tmp_path, capsys):
    images, keypoints = one
    code = main(
        ["fit", str(images), "--keypoints", str(keypoints), "--out", str(tmp_path / "o"), "--recipe", "fast"]
    )
    assert code == 2
    assert "choose auto, cold_start, photo, from_regressor" in capsys.readouterr().err
