"""OpenPose JSON files: round trip, the 49-joint layout, per-file errors."""

import json

import numpy as np
import pytest

from spin_diff.body.joints import JOINT_NAMES
from spin_diff.data.openpose import (
    OpenPoseFileError,
    keypoints49_to_openpose,
    load_openpose_keypoints,
    openpose_to_keypoints49,
    read_openpose_json,
    select_person,
    write_openpose_json,
)


def people(num: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.concatenate([rng.uniform(0, 640, (num, 25, 2)), rng.uniform(0.05, 1, (num, 25, 1))], -1)
    return out


def test_round_trip_several_people(tmp_path):
    detections = people(3)
    path = write_openpose_json(tmp_path / "a" / "img_keypoints.json", detections)
    content = json.loads(path.read_text())
    assert content["version"] == 1.3 and len(content["people"]) == 3
    assert len(content["people"][0]["pose_keypoints_2d"]) == 75
    np.testing.assert_array_equal(read_openpose_json(path), detections)


def test_undetected_joints_are_written_as_zeros(tmp_path):
    detections = people(1)
    detections[0, 4, 2] = 0.0
    back = read_openpose_json(write_openpose_json(tmp_path / "k.json", detections))
    np.testing.assert_array_equal(back[0, 4], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(back[0, 5:], detections[0, 5:])
    kept = read_openpose_json(write_openpose_json(tmp_path / "k2.json", detections, zero_undetected=False))
    np.testing.assert_array_equal(kept, detections)


def test_49_layout_conversion():
    detections = people(2)
    full = openpose_to_keypoints49(detections)
    assert full.shape == (2, 49, 3)
    np.testing.assert_array_equal(full[:, :25], detections)
    assert np.all(full[:, 25:] == 0)
    np.testing.assert_array_equal(keypoints49_to_openpose(full), detections)
    assert JOINT_NAMES[4] == "OP RWrist"  # BODY_25 order is the first block's order


def test_write_accepts_49_layout_and_single_person(tmp_path):
    single = openpose_to_keypoints49(people(1)[0])
    single[30] = [1.0, 2.0, 1.0]  # GT block is not written
    back = read_openpose_json(write_openpose_json(tmp_path / "k.json", single))
    np.testing.assert_array_equal(back[0], single[:25])
    with pytest.raises(ValueError, match=r"\(25, 3\) or \(49, 3\)"):
        write_openpose_json(tmp_path / "bad.json", np.zeros((24, 3)))


def test_load_picks_one_person_in_49_layout(tmp_path):
    detections = people(3)
    detections[1, :, 2] = 1.0  # most confident
    path = write_openpose_json(tmp_path / "k.json", detections)
    chosen = load_openpose_keypoints(path)
    assert chosen.shape == (49, 3)
    np.testing.assert_array_equal(chosen[:25], detections[1])
    np.testing.assert_array_equal(load_openpose_keypoints(path, how=2)[:25], detections[2])


def test_select_person_rules():
    detections = np.zeros((2, 25, 3))
    detections[0, :3] = [[0, 0, 1], [10, 10, 1], [5, 5, 1]]  # small, confident
    detections[1, :2] = [[100, 100, 0.6], [300, 400, 0.6]]  # large, less confident
    assert select_person(detections, "confidence") == 0
    assert select_person(detections, "largest") == 1
    assert select_person(detections, box=np.array([90, 90, 310, 410])) == 1
    with pytest.raises(ValueError, match="out of range"):
        select_person(detections, 5)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object with a 'people' list"),
        ('{"version": 1.3}', "expected an object with a 'people' list"),
        ('{"people": [{"face_keypoints_2d": []}]}', "person 0 has no 'pose_keypoints_2d'"),
        ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', "person 0 has 3 numbers in pose_keypoints_2d, expected 75"),
        ('{"people": [{"pose_keypoints_2d": ' + str([0] * 54) + "}]}", "COCO-18"),
        ('{"people": [{"pose_keypoints_2d": ' + str(["a"] * 75).replace("'", '"') + "}]}", "non-numeric"),
        ('{"people": [{"pose_keypoints_2d": [NaN' + ", 0" * 74 + "]}]}", "NaN or inf"),
        ('{"version": 1.3, "people": []}', "no people detected"),
    ],
)
def test_malformed_files_name_the_file_and_problem(tmp_path, text, expected):
    path = tmp_path / "frame_keypoints.json"
    path.write_text(text)
    with pytest.raises(OpenPoseFileError, match=expected) as err:
        read_openpose_json(path)
    assert "frame_keypoints.json" in str(err.value)


def test_empty_file_allowed_on_request(tmp_path):
    path = tmp_path / "empty_keypoints.json"
    path.write_text('{"version": 1.3, "people": []}')
    assert read_openpose_json(path, allow_empty=True).shape == (0, 25, 3)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere_keypoints.json"):
        read_openpose_json(tmp_path / "nowhere_keypoints.json")


def test_confidences_a_little_over_one_are_read_as_one(tmp_path):
    """OpenPose's heatmap peaks can exceed 1 slightly (HMR's example JSON has 1.0059): read as 1;
    far over 1 is still refused as a column mix-up."""
    detections = people(1)
    values = detections.reshape(-1).tolist()
    values[2], values[5] = 1.0059, 0.4
    path = tmp_path / "over_keypoints.json"
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": values}]}))
    read = read_openpose_json(path)
    assert read[0, 0, 2] == 1.0 and read[0, 1, 2] == pytest.approx(0.4)
    np.testing.assert_allclose(read[0, :, :2], detections[0, :, :2])
    values[2] = 1.2
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": values}]}))
    with pytest.raises(OpenPoseFileError, match=r"confidences from [0-9.]+ to 1.2; OpenPose's lie in \[0, 1\]"):
        read_openpose_json(path)
