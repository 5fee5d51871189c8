"""BlazePose's pipeline parts (anchors, decoding, NMS, crops, heatmaps) and, with the
``detect`` extra and the model files, the detector end to end on renders of our body model."""

import numpy as np
import pytest

from spin_diff.detect import blazepose as B


def test_anchor_layout_matches_the_detector_output():
    anchors = B.ssd_anchors()
    assert anchors.shape == (2254, 2)  # 28*28*2 + 14*14*2 + 7*7*6
    assert anchors[0] == pytest.approx([0.5 / 28, 0.5 / 28])
    assert anchors[1] == pytest.approx(anchors[0])  # two anchors per cell
    assert anchors[2] == pytest.approx([1.5 / 28, 0.5 / 28])
    assert anchors[-1] == pytest.approx([6.5 / 7, 6.5 / 7])
    assert (anchors > 0).all() and (anchors < 1).all()


def test_decoding_offsets_boxes_and_keypoints_from_their_anchor():
    anchors = np.array([[0.25, 0.5], [0.75, 0.75]], np.float32)
    raw = np.zeros((2, 12), np.float32)
    raw[0, :4] = [22.4, -22.4, 44.8, 22.4]  # +0.1, -0.1, width 0.2, height 0.1
    raw[0, 4:6] = [11.2, 0.0]
    boxes, keypoints, scores = B.decode_detections(raw, np.array([0.0, 100.0]), anchors)
    assert boxes[0] == pytest.approx([0.25, 0.35, 0.45, 0.45])
    assert keypoints[0, 0] == pytest.approx([0.3, 0.5])
    assert keypoints[1, 3] == pytest.approx([0.75, 0.75])
    assert scores == pytest.approx([0.5, 1.0])


def test_weighted_nms_merges_overlaps_and_keeps_separate_people():
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [5, 5, 6, 6]], np.float32)
    keypoints = boxes[:, None, :2].repeat(4, 1)
    scores = np.array([0.9, 0.3, 0.6], np.float32)
    merged, points, kept = B.weighted_nms(boxes, keypoints, scores, 0.3)
    assert kept == pytest.approx([0.9, 0.6])
    assert merged[0] == pytest.approx([0.025, 0, 1.025, 1])  # (0.9 * 0 + 0.3 * 0.1) / 1.2
    assert points[1, 0] == pytest.approx([5, 5])
    empty = B.weighted_nms(np.zeros((0, 4)), np.zeros((0, 4, 2)), np.zeros(0))
    assert [len(x) for x in empty] == [0, 0, 0]


def test_roi_is_upright_for_an_upright_body_and_maps_the_crop_onto_it():
    hips = np.array([[100.0, 200.0]])
    roi = B.detection_roi(hips, np.array([[100.0, 120.0]]))  # body point straight above
    assert roi[0] == pytest.approx([100, 200, 200, 0])  # side 2 * 1.25 * 80
    affine = B.roi_to_image_affine(roi)
    corners = B._apply_affine(affine, np.array([[[0, 0], [256, 256], [128, 128]]], np.float64))
    assert corners[0] == pytest.approx(np.array([[0, 100], [200, 300], [100, 200]]))
    # a body lying to the right: the crop is turned a quarter turn
    lying = B.detection_roi(hips, np.array([[180.0, 200.0]]))
    assert abs(lying[0, 3]) == pytest.approx(np.pi / 2)
    top = B._apply_affine(B.roi_to_image_affine(lying), np.array([[[128.0, 0.0]]]))[0, 0]
    assert top == pytest.approx([200, 200])  # the crop's top is the body point's side


def test_heatmap_refinement_moves_confident_points_to_the_peak_only():
    heatmaps = np.full((1, 64, 64, 2), -10.0, np.float32)
    heatmaps[0, 20, 30, 0] = 10.0  # a sharp peak at column 30, row 20
    points = np.array([[[31.5 / 64, 21.5 / 64], [0.5, 0.5]]])
    refined = B.refine_with_heatmap(points, heatmaps)
    assert refined[0, 0] == pytest.approx([30 / 64, 20 / 64], abs=1e-3)
    assert refined[0, 1] == pytest.approx([0.5, 0.5])  # no confident heatmap: unchanged


def test_detector_finds_each_rendered_person_at_its_joints(blazepose, render_people):
    from spin_diff.body import joints as J
    from spin_diff.detect.people import detect_people

    image, truth = render_people(["walk", "apose"], size=(512, 320))
    found = detect_people(blazepose, image)
    assert len(found) == 2
    limbs = J.joint_indices([f"OP {s}{p}" for s in "RL" for p in ("Shoulder", "Elbow", "Wrist", "Knee", "Ankle")])
    for person in range(2):  # left to right, as rendered
        keypoints = found.keypoints[person]
        assert (keypoints[limbs, 2] > 0.5).all()
        error = np.linalg.norm(keypoints[limbs, :2] - truth[person, limbs], axis=-1)
        height = np.ptp(truth[person, :25, 1])
        assert error.mean() < 0.05 * height, error  # a few pixels on a ~250 px body
        box = found.boxes[person]
        assert box[0] <= truth[person, limbs, 0].min() + 5 and box[2] >= truth[person, limbs, 0].max() - 5
    assert found.flags == [[], []]


def test_huge_image_is_detected_in_its_own_pixels(blazepose, render_people):
    import cv2

    from spin_diff.detect.people import detect_people

    image, _ = render_people(["walk"], size=(384, 288))
    big = cv2.resize(image, (384 * 8, 288 * 8), interpolation=cv2.INTER_LINEAR)
    small, large = detect_people(blazepose, image), detect_people(blazepose, big)
    assert len(small) == len(large) == 1
    scaled = (small.keypoints[0, :25, :2] + 0.5) * 8 - 0.5
    confident = small.keypoints[0, :25, 2] > 0.5
    assert np.abs(large.keypoints[0, :25, :2] - scaled)[confident].mean() < 0.02 * 288 * 8


def test_nobody_in_a_plain_picture_and_cut_off_people_are_flagged(blazepose, render_people):
    from spin_diff.detect.people import detect_people

    assert len(detect_people(blazepose, np.full((240, 320, 3), 128, np.uint8))) == 0
    image, _ = render_people(["walk"], size=(384, 288))
    cut = np.ascontiguousarray(image[:200])  # the legs below the knees cut off
    found = detect_people(blazepose, cut)
    assert len(found) == 1 and any(flag.startswith("cut off") for flag in found.flags[0])
