"""BlazePose's 33 landmarks in the 49-joint layout: midpoints, missing joints, hidden points."""

import numpy as np
import pytest

from spin_diff.body import joints as J
from spin_diff.detect.layout import BLAZEPOSE_LANDMARK_NAMES, blazepose_to_keypoints49, hidden_face_points

B = {name: i for i, name in enumerate(BLAZEPOSE_LANDMARK_NAMES)}
OP = {name: i for i, name in enumerate(J.JOINT_NAMES)}


@pytest.fixture
def detection():
    """Landmark i at (10 i, 5 i + 1), visibility 0.5 + i / 100."""
    index = np.arange(33, dtype=np.float64)
    return np.stack([10 * index, 5 * index + 1], -1), 0.5 + index / 100


def test_each_body25_joint_comes_from_its_landmark(detection):
    landmarks, visibility = detection
    keypoints = blazepose_to_keypoints49(landmarks, visibility)
    assert keypoints.shape == (49, 3)
    for op, bp in [("OP Nose", "nose"), ("OP RShoulder", "right_shoulder"), ("OP LWrist", "left_wrist"),
                   ("OP RKnee", "right_knee"), ("OP LAnkle", "left_ankle"), ("OP REar", "right_ear"),
                   ("OP LHeel", "left_heel"), ("OP RBigToe", "right_foot_index")]:  # fmt: skip
        assert keypoints[OP[op], :2] == pytest.approx(landmarks[B[bp]]), op
        assert keypoints[OP[op], 2] == pytest.approx(visibility[B[bp]]), op


def test_neck_and_mid_hip_are_midpoints_as_confident_as_their_weaker_end(detection):
    landmarks, visibility = detection
    keypoints = blazepose_to_keypoints49(landmarks, visibility)
    for op, (a, b) in [("OP Neck", ("left_shoulder", "right_shoulder")), ("OP MidHip", ("left_hip", "right_hip"))]:
        assert keypoints[OP[op], :2] == pytest.approx((landmarks[B[a]] + landmarks[B[b]]) / 2)
        assert keypoints[OP[op], 2] == pytest.approx(min(visibility[B[a]], visibility[B[b]]))


def test_joints_blazepose_lacks_are_missing_never_guessed(detection):
    landmarks, visibility = detection
    keypoints = blazepose_to_keypoints49(landmarks, visibility)
    for name in ("OP LSmallToe", "OP RSmallToe", *J.GT_JOINT_NAMES):
        assert keypoints[OP[name]].tolist() == [0.0, 0.0, 0.0], name


def test_landmarks_outside_the_image_are_missing(detection):
    landmarks, visibility = detection
    keypoints = blazepose_to_keypoints49(landmarks, visibility, image_size=(200, 1000))
    assert keypoints[OP["OP LShoulder"], 2] > 0  # x = 110
    assert keypoints[OP["OP LAnkle"]].tolist() == [0.0, 0.0, 0.0]  # x = 270
    assert keypoints[OP["OP Neck"], 2] > 0  # shoulders at x = 110, 120
    assert keypoints[OP["OP MidHip"]].tolist() == [0.0, 0.0, 0.0]  # one hip outside


def test_batches_map_like_single_people(detection):
    landmarks, visibility = detection
    batch = blazepose_to_keypoints49(np.stack([landmarks, landmarks + 3]), np.stack([visibility, visibility]))
    assert batch.shape == (2, 49, 3)
    assert batch[1] == pytest.approx(blazepose_to_keypoints49(landmarks + 3, visibility))


def _face(nose_depth, left_ear_depth, right_ear_depth, ear_gap=40.0):
    landmarks = np.zeros((33, 2))
    landmarks[B["left_ear"]] = (ear_gap / 2, 0)
    landmarks[B["right_ear"]] = (-ear_gap / 2, 0)
    landmarks[B["left_eye"]] = (8, 0)
    landmarks[B["right_eye"]] = (-8, 0)
    depth = np.zeros(33)
    depth[B["nose"]], depth[B["left_ear"]], depth[B["right_ear"]] = nose_depth, left_ear_depth, right_ear_depth
    return landmarks, depth


def test_a_face_seen_from_the_front_hides_nothing():
    assert not hidden_face_points(*_face(-40, 10, 10)).any()


def test_a_head_seen_from_behind_hides_nose_eyes_and_mouth_not_ears():
    hidden = hidden_face_points(*_face(40, -5, -5))
    for name in ("nose", "left_eye", "right_eye", "mouth_left"):
        assert hidden[B[name]], name
    assert not hidden[B["left_ear"]] and not hidden[B["right_ear"]]


def test_a_head_turned_side_on_hides_the_far_ear():
    hidden = hidden_face_points(*_face(-30, -20, 50, ear_gap=10))
    assert hidden[B["right_ear"]] and not hidden[B["left_ear"]]
    keypoints = blazepose_to_keypoints49(*_face(-30, -20, 50, ear_gap=10)[:1], np.ones(33), depth=_face(-30, -20, 50, ear_gap=10)[1])
    assert keypoints[OP["OP REar"]].tolist() == [0.0, 0.0, 0.0] and keypoints[OP["OP LEar"], 2] == 1.0
