"""`spin-diff fit` without --keypoints: everyone detected, fitted, written; bad inputs handled."""

import json

import cv2
import numpy as np
import pytest

from spin_diff.cli.main import main


@pytest.fixture(scope="module")
def two_people(blazepose, render_people, tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    image, _ = render_people(["walk", "apose"], size=(512, 320))
    cv2.imwrite(str(folder / "pair.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


def test_every_person_is_detected_fitted_and_their_keypoints_written(two_people, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["fit", str(two_people / "pair.png"), "--out", str(out), "--quiet", "--threads", "1",
                 "--set", "fitting.stages.0.iterations=20", "--set", "fitting.stages.1.iterations=20"])  # fmt: skip
    assert code == 0, capsys.readouterr().out
    assert sorted(p.name for p in (out / "pair").iterdir()) == ["person_00", "person_01"]
    written = json.loads((out / "keypoints" / "pair_keypoints.json").read_text())
    assert len(written["people"]) == 2 and len(written["people"][0]["pose_keypoints_2d"]) == 75
    params = json.loads((out / "pair" / "person_00" / "params.json").read_text())
    assert params["keypoints"] == "detected (BlazePose)" and params["flags"] == []
    left, right = (json.loads((out / "pair" / f"person_0{i}" / "params.json").read_text()) for i in (0, 1))
    assert left["box_center"][0] < 256 < right["box_center"][0]
    # the written file is what --keypoints takes back; --bbox picks the right-hand person
    again = tmp_path / "again"
    code = main(["fit", str(two_people / "pair.png"), "--keypoints", str(out / "keypoints"), "--out", str(again),
                 "--no-optimise", "--bbox", "300,0,512,320", "--quiet", "--threads", "1"])  # fmt: skip
    assert code in (0, 1), capsys.readouterr().out  # 1: the regressor's body alone may be judged off its keypoints
    assert [p.name for p in (again / "pair").iterdir()] == ["person_01"]


def test_no_optimise_gives_the_regressor_bodies_without_a_fit(two_people, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["fit", str(two_people), "--out", str(out), "--no-optimise", "--quiet", "--threads", "1"]) in (0, 1)
    printed = capsys.readouterr().out
    assert "regressed (no fit)" in printed and (out / "pair" / "person_01" / "params.json").is_file()
    params = json.loads((out / "pair" / "person_00" / "params.json").read_text())
    assert params["optimised"] is False
    fitted = tmp_path / "fitted"
    main(["fit", str(two_people), "--out", str(fitted), "--quiet", "--threads", "1"])
    fit = json.loads((fitted / "pair" / "person_00" / "params.json").read_text())
    assert fit["optimised"] is True and fit["residual_px"] < params["residual_px"]  # the fit did what it skipped


def test_an_image_without_people_is_an_empty_result_not_a_failure(blazepose, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "wall.png"), np.full((240, 320, 3), 128, np.uint8))
    out = tmp_path / "out"
    assert main(["fit", str(folder), "--out", str(out), "--no-optimise", "--quiet", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "wall: no person found" in printed and "0 failed" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["items"] == [{"item": "wall", "people": 0, "note": "no person found"}]
    assert json.loads((out / "keypoints" / "wall_keypoints.json").read_text())["people"] == []


def test_a_file_that_is_not_an_image_fails_alone(two_people, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "notes.jpg").write_text("not a picture")
    (folder / "pair.png").write_bytes((two_people / "pair.png").read_bytes())
    out = tmp_path / "out"
    assert main(["fit", str(folder), "--out", str(out), "--no-optimise", "--quiet", "--threads", "1"]) == 1
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "notes.jpg: image missing or unreadable (not an image cv2 can read" in printed
    assert (out / "pair" / "person_01" / "params.json").is_file()


def test_missing_detector_files_are_one_line_naming_the_setup_step(two_people, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPIN_DIFF_DETECTOR_DIR", str(tmp_path / "nothing"))
    assert main(["fit", str(two_people), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "spin-diff detect --setup" in capsys.readouterr().err


def test_detect_writes_keypoints_that_fit_reads_back(two_people, tmp_path, capsys):
    keypoints = tmp_path / "keypoints"
    assert main(["detect", str(two_people), "--out", str(keypoints), "--threads", "1"]) == 0
    assert "2 people found" in capsys.readouterr().out
    assert [p.name for p in keypoints.iterdir()] == ["pair_keypoints.json"]
    out = tmp_path / "out"
    code = main(["fit", str(two_people), "--keypoints", str(keypoints), "--out", str(out), "--no-optimise",
                 "--quiet", "--threads", "1"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code in (0, 1) and "keypoint JSON with no image" not in printed
    assert sorted(p.name for p in (out / "pair").iterdir()) == ["person_00", "person_01"]
