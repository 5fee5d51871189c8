"""BlazePose's two stages on one image, in numpy: people found, then 33 landmarks each.

Order of operations (:meth:`BlazePose.detect`):

1. A huge image is downscaled (area filter) so its longer side is at most ``max_side``;
   every result is scaled back, so it is always in the original image's pixels.
2. Person detector (``pose_detection.tflite``, 224 x 224 input, RGB in [-1, 1]): the image is
   letterboxed (aspect kept, zero padding centred). The network scores 2254 SSD anchors
   (:func:`ssd_anchors`) and regresses, per anchor, a box (around the face) and four
   keypoints as offsets from the anchor centre in input pixels (:func:`decode_detections`). Anchors scoring above
   ``min_score`` are merged by weighted non-maximum suppression (:func:`weighted_nms`).
3. Each detection's keypoint 0 (hip centre) and 1 (a point on the circle around the whole
   body) give a rotated square region (:func:`detection_roi`): centred on the hips, side
   2.5 x their distance, turned so that the body points up in the crop.
4. Landmark model (``pose_landmark_full.tflite``, 256 x 256 input, RGB in [0, 1]) on that
   crop: 39 points (33 landmarks, 2 auxiliary, 4 unused) with x, y in crop pixels, depth,
   and visibility and presence logits; a 64 x 64 heatmap per point sharpens the positions
   (:func:`refine_with_heatmap`); a pose flag in [0, 1] says whether a body is in the crop.
5. Landmarks go back to image pixels through the crop's affine map; people whose pose flag
   is below ``min_presence``, or with fewer than ``min_body_landmarks`` limb landmarks seen,
   are dropped, and so is a second find of a person already found (:meth:`BlazePose._seen`).
6. The people found are blacked out and the detector looks again (step 2), until a look
   finds nobody new: the detector is made for one prominent person. Then it looks the same
   way through overlapping windows of half the image (:func:`look_windows`), for people
   too small in the whole view.

Coordinates: continuous pixel coordinates (the image spans ``[0, W] x [0, H]``, pixel centres at
``i + 0.5``) inside this module; :class:`PoseDetection` holds OpenPose's convention (pixel
centres at integers), as every keypoint array of the project does.

The network runs through ``ai_edge_litert`` (``pip install spin_diff[detect]``), imported by
:func:`spin_diff.detect.models.load_interpreters` only when a detector is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from spin_diff.detect.models import load_interpreters

__all__ = [
    "BlazePose",
    "PoseDetection",
    "box_iou",
    "decode_detections",
    "detection_roi",
    "look_windows",
    "refine_with_heatmap",
    "roi_to_image_affine",
    "ssd_anchors",
    "weighted_nms",
]

DETECTOR_SIZE = 224  # the person detector's square input
LANDMARK_SIZE = 256  # the landmark model's square input
NUM_LANDMARKS = 33  # BlazePose's body landmarks (the first 33 of the 39 the network outputs)
NUM_MODEL_POINTS = 39
# shoulders, elbows, wrists, hips, knees, ankles (left, right) in BlazePose's order
BODY_LANDMARKS = (11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
ROI_SCALE = 1.25  # the detection's body circle enlarged by this much (MediaPipe's setting)
HEATMAP_KERNEL = 7  # window of the heatmap refinement, in heatmap cells
HEATMAP_MIN_CONFIDENCE = 0.5  # a heatmap peak below this leaves the regressed position alone

# SSD anchor layout of the person detector: one anchor grid per stride, two anchors per cell
# per layer (the layer's scale and the scale interpolated with the next); layers sharing a
# stride share a grid. Fixed anchor size: only the centres matter.
ANCHOR_STRIDES = (8, 16, 32, 32, 32)
ANCHOR_OFFSET = 0.5
ANCHORS_PER_LAYER = 2


@dataclass
class PoseDetection:
    """One person found in an image, in the original image's pixels (OpenPose's convention:
    pixel centres at integers).

    Attributes:
        landmarks: (33, 2) BlazePose landmarks, x and y.
        depth: (33,) each landmark's depth relative to the hips, in the same pixels (larger:
            farther from the camera); the network's estimate, coarse.
        visibility: (33,) probability that each landmark is visible (not occluded).
        presence: (33,) probability that each landmark is inside the image.
        box: (4,) the person's box, x1, y1, x2, y2: around its landmarks present in the
            image (presence > 0.5; all of them if none is), clipped to the image.
        face_box: (4,) the person detector's box, x1, y1, x2, y2, at the face (BlazePose's
            detector places it there, of one size per view: it does not measure the person).
        score: the person detector's score in [0, 1].
        pose_score: the landmark model's pose flag in [0, 1].
        roi: (4,) the landmark crop: centre x, y, side (pixels), angle (radians).
    """

    landmarks: np.ndarray
    depth: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    box: np.ndarray
    face_box: np.ndarray
    score: float
    pose_score: float
    roi: np.ndarray


def ssd_anchors(input_size: int = DETECTOR_SIZE, strides=ANCHOR_STRIDES) -> np.ndarray:
    """(A, 2) anchor centres, normalised to the input: grids of consecutive equal strides
    merged, cells in row-major order, anchors of a cell consecutive (SSD's layout).
    2254 for the pose detector."""
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer < len(strides) and strides[layer] == stride:
            same += 1
            layer += 1
        cells = math.ceil(input_size / stride)
        grid = (np.arange(cells) + ANCHOR_OFFSET) / cells
        y, x = np.meshgrid(grid, grid, indexing="ij")
        cell_centres = np.stack([x.ravel(), y.ravel()], axis=-1)
        centres.append(np.repeat(cell_centres, same * ANCHORS_PER_LAYER, axis=0))
    return np.concatenate(centres).astype(np.float32)


def look_windows(width: int, height: int, zoom_levels: int = 1) -> np.ndarray:
    """(K, 3) square windows x0, y0, side the detector looks through, in order: the whole
    image (letterboxed), then, per zoom level z = 1 .. ``zoom_levels``, squares of
    1 / 2^z of its longer side every half side, covering it (people too small for the
    whole view; by then everyone found is blacked out, so a window's edge rarely cuts one)."""
    longer = float(max(width, height))
    windows = [((width - longer) / 2, (height - longer) / 2, longer)]
    for level in range(1, zoom_levels + 1):
        side = longer / 2**level
        for y in _starts(height, side):
            for x in _starts(width, side):
                windows.append((x, y, side))
    return np.array(windows, dtype=np.float64)


def _starts(length: float, side: float) -> np.ndarray:
    """Starts of windows of ``side`` every half side covering ``[0, length]`` (one centred
    window when it is shorter)."""
    if length <= side:
        return np.array([(length - side) / 2])
    return np.linspace(0.0, length - side, math.ceil((length - side) / (side / 2)) + 1)


def _black_out(image: np.ndarray, landmarks: np.ndarray, padding: float = 0.1) -> None:
    """Zero, in place, the box around landmarks (33, 2) (continuous pixels), padded by
    ``padding`` of its size on every side."""
    low, high = landmarks.min(0), landmarks.max(0)
    margin = (high - low) * padding
    x0, y0 = np.floor(np.maximum(low - margin, 0)).astype(int)
    x1, y1 = np.ceil(high + margin).astype(int)
    image[y0:max(y0, y1), x0:max(x0, x1)] = 0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50.0, 50.0)))


def decode_detections(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size: int = DETECTOR_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector's raw outputs as boxes, keypoints and scores, normalised to its input.

    Args:
        raw_boxes: (A, 12) per anchor: box centre x, y, width, height, then four keypoints
            x, y, all in input pixels relative to the anchor centre.
        raw_scores: (A,) or (A, 1) logits.
        anchors: (A, 2) anchor centres (:func:`ssd_anchors`).

    Returns:
        boxes (A, 4) x1, y1, x2, y2; keypoints (A, 4, 2); scores (A,) in [0, 1].
    """
    raw = raw_boxes.reshape(len(anchors), -1) / float(input_size)
    centre = raw[:, 0:2] + anchors
    half = raw[:, 2:4] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=-1)
    keypoints = raw[:, 4:].reshape(len(anchors), -1, 2) + anchors[:, None, :]
    return boxes, keypoints, _sigmoid(raw_scores.reshape(-1))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) intersection over union of one box (4,) with boxes (N, 4), all x1, y1, x2, y2."""
    low = np.maximum(box[:2], boxes[:, :2])
    high = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(high - low, 0.0, None).prod(-1)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted non-maximum suppression (BlazeFace's): the best remaining detection and every
    other overlapping it by more than ``iou_threshold`` become one detection with the best
    one's score and the score-weighted mean of their boxes and keypoints.

    Args: boxes (N, 4), keypoints (N, K, 2), scores (N,). Returns the merged detections,
    best first: boxes (M, 4), keypoints (M, K, 2), scores (M,).
    """
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), dtype=bool)
    kept_boxes, kept_keypoints, kept_scores = [], [], []
    while remaining.any():  # one pass per person found: a handful
        best = int(np.argmax(remaining))  # the highest score left (sorted)
        group = remaining & (box_iou(boxes[best], boxes) > iou_threshold)
        group[best] = True
        weights = scores[group] / scores[group].sum()
        kept_boxes.append((boxes[group] * weights[:, None]).sum(0))
        kept_keypoints.append((keypoints[group] * weights[:, None, None]).sum(0))
        kept_scores.append(scores[best])
        remaining &= ~group
    count = len(kept_scores)
    return (
        np.array(kept_boxes, np.float32).reshape(count, 4),
        np.array(kept_keypoints, np.float32).reshape((count,) + keypoints.shape[1:]),
        np.array(kept_scores, np.float32),
    )


def detection_roi(hip_centre: np.ndarray, body_point: np.ndarray, scale: float = ROI_SCALE) -> np.ndarray:
    """(N, 4) rotated square crops, centre x, y, side, angle, from the detector's hip centre
    and body-circle point (N, 2) in pixels: side ``2 * scale * |body_point - hip_centre|``,
    turned so that the hips-to-body-point direction points up in the crop (angle in radians,
    clockwise on screen as the image's y axis points down)."""
    delta = body_point - hip_centre
    side = 2.0 * scale * np.linalg.norm(delta, axis=-1)
    angle = np.pi / 2 - np.arctan2(-delta[:, 1], delta[:, 0])
    angle = (angle + np.pi) % (2 * np.pi) - np.pi
    return np.concatenate([hip_centre, side[:, None], angle[:, None]], axis=-1)


def roi_to_image_affine(roi: np.ndarray, crop_size: int = LANDMARK_SIZE) -> np.ndarray:
    """(N, 2, 3) affine maps from crop pixels (continuous, ``[0, crop_size]``) to image pixels
    for rotated square crops (N, 4) centre x, y, side, angle."""
    cos, sin = np.cos(roi[:, 3]), np.sin(roi[:, 3])
    zoom = roi[:, 2] / crop_size
    linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2) * zoom[:, None, None]
    offset = roi[:, :2] - linear @ np.full(2, crop_size / 2.0)
    return np.concatenate([linear, offset[:, :, None]], axis=-1)


def _apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, P, 2) points through (N, 2, 3) affine maps."""
    return points @ affine[:, :, :2].transpose(0, 2, 1) + affine[:, None, :, 2]


def _warp(image: np.ndarray, to_source: np.ndarray, size: int, border: int) -> np.ndarray:
    """Sample ``image`` on a ``size``-square grid through the affine map ``to_source`` from
    output to source pixels (continuous coordinates; cv2 wants pixel indices)."""
    index_map = to_source.copy()
    index_map[:, 2] += to_source[:, :2] @ np.full(2, 0.5) - 0.5
    return cv2.warpAffine(
        image, index_map, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border
    )


def _landmark_box(landmarks: np.ndarray, presence: np.ndarray, image_size) -> np.ndarray:
    """x1, y1, x2, y2 around the landmarks (33, 2) present (all if none is), clipped to the image."""
    present = presence > 0.5
    points = landmarks[present] if present.any() else landmarks
    high = np.array(image_size, np.float64) - 1.0
    low_corner = np.clip(points.min(0), 0.0, high)
    high_corner = np.clip(points.max(0), 0.0, high)
    return np.concatenate([low_corner, high_corner])


def refine_with_heatmap(
    points: np.ndarray,
    heatmaps: np.ndarray,
    kernel: int = HEATMAP_KERNEL,
    min_confidence: float = HEATMAP_MIN_CONFIDENCE,
) -> np.ndarray:
    """Replace regressed positions by the heatmap's local centre of mass where it is confident.

    Args:
        points: (N, P, 2) positions normalised to the crop ([0, 1]).
        heatmaps: (N, h, w, P) logits.

    Returns:
        (N, P, 2): for each point whose cell lies in the heatmap, the sigmoid-weighted mean
        cell position (cell index / grid size) of the ``kernel``-square window around it, if
        the window's highest value reaches ``min_confidence``; the input position otherwise.
    """
    count, height, width, num = heatmaps.shape
    col = np.floor(points[..., 0] * width).astype(np.int64)
    row = np.floor(points[..., 1] * height).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    half = (kernel - 1) // 2
    steps = np.arange(-half, half + 1)
    rows = row[..., None, None] + steps[:, None]  # (N, P, k, 1)
    cols = col[..., None, None] + steps[None, :]  # (N, P, 1, k)
    valid = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)  # (N, P, k, k)
    r = np.clip(rows, 0, height - 1)
    c = np.clip(cols, 0, width - 1)
    person = np.arange(count)[:, None, None, None]
    channel = np.arange(num)[None, :, None, None]
    weights = _sigmoid(heatmaps[person, r, c, channel]) * valid  # (N, P, k, k)
    total = weights.sum((-1, -2))
    peak = weights.max((-1, -2))
    safe = np.maximum(total, 1e-12)
    mean_col = (weights * cols).sum((-1, -2)) / safe
    mean_row = (weights * rows).sum((-1, -2)) / safe
    refined = np.stack([mean_col / width, mean_row / height], axis=-1)
    use = inside & (peak >= min_confidence) & (total > 0)
    return np.where(use[..., None], refined, points)


class BlazePose:
    """BlazePose person detector and full landmark model on the CPU (``ai_edge_litert``).

    Args:
        model_dir: folder with ``pose_detection.tflite`` and ``pose_landmark_full.tflite``;
            None: :func:`spin_diff.detect.models.model_folder` (``spin-diff detect --setup``
            puts them there).
        threads: CPU threads of each network.
        min_score: lowest detector score kept (MediaPipe's 0.5).
        min_presence: lowest pose flag of the landmark model kept (MediaPipe's 0.5).
        max_side: images with a longer side are downscaled to it for detection.
        max_people: the most people looked for in one image.
        zoom_levels: how many times the detector looks again through windows half as large
            (:func:`look_windows`); 0: the whole image only.
        min_body_landmarks: fewest of the 12 limb landmarks (shoulders to ankles) seen
            (visibility > 0.5) for a person to count: fewer is a body part or a shadow.
    """

    def __init__(
        self,
        model_dir=None,
        *,
        threads: int = 1,
        min_score: float = 0.5,
        min_presence: float = 0.5,
        max_side: int = 1280,
        max_people: int = 20,
        zoom_levels: int = 1,
        min_body_landmarks: int = 6,
        nms_iou: float = 0.3,
        duplicate_iou: float = 0.5,
    ) -> None:
        self.detector, self.landmarker = load_interpreters(model_dir, threads)
        self.anchors = ssd_anchors()
        self.min_score, self.min_presence, self.max_side = min_score, min_presence, max_side
        self.nms_iou, self.duplicate_iou, self.max_people = nms_iou, duplicate_iou, max_people
        self.min_body_landmarks, self.zoom_levels = min_body_landmarks, zoom_levels

    def detect(self, image: np.ndarray) -> list[PoseDetection]:
        """Every person in ``image`` ((H, W, 3) uint8 RGB), left to right.

        The detector looks at the whole image; the people it finds (confident pose flag,
        enough limb landmarks seen, not a second find of one already kept) are blacked out of
        its view (their landmark box, padded) and it looks again, until a look adds nobody:
        BlazePose's detector is made for one person, and finds the others once the most
        prominent is hidden. Then it does the same through each window of
        :func:`look_windows`. The landmark model always sees the unmasked image."""
        height, width = image.shape[:2]
        factor = min(1.0, self.max_side / max(height, width))
        scale = np.ones(2)
        if factor < 1.0:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale = np.array([size[0] / width, size[1] / height])
        view = image.copy()
        found: list[dict] = []
        for window in look_windows(image.shape[1], image.shape[0], self.zoom_levels):
            while len(found) < self.max_people and self._look(image, view, window, found):
                pass
        people = [self._in_original_pixels(person, scale, (width, height)) for person in found]
        return sorted(people, key=lambda p: float(p.box[0] + p.box[2]))

    def _look(self, image: np.ndarray, view: np.ndarray, window: np.ndarray, found: list[dict]) -> int:
        """One look through ``window`` at ``view`` (the image with the people found blacked
        out): the new people are appended to ``found`` and blacked out. Returns how many."""
        boxes, keypoints, scores = self._find_people(view, window)
        if len(scores) == 0:
            return 0
        roi = detection_roi(keypoints[:, 0], keypoints[:, 1])
        points, pose_scores = self._landmarks(image, roi)
        added = 0
        for i in np.argsort(-scores, kind="stable"):
            visible = int((points[i, BODY_LANDMARKS, 2] > 0.5).sum())
            if pose_scores[i] < self.min_presence or visible < self.min_body_landmarks:
                continue
            if self._seen(points[i, :NUM_LANDMARKS], found) or len(found) >= self.max_people:
                continue
            found.append({"face_box": boxes[i], "score": float(scores[i]), "roi": roi[i],
                          "points": points[i, :NUM_LANDMARKS], "pose_score": float(pose_scores[i])})  # fmt: skip
            _black_out(view, points[i, :NUM_LANDMARKS, :2])
            added += 1
        return added

    @staticmethod
    def _in_original_pixels(person: dict, scale: np.ndarray, image_size) -> PoseDetection:
        """A person found in the (downscaled) image, in the original image's pixels (OpenPose's
        convention); ``scale`` (2,) is the downscaled size over the original."""
        points, roi = person["points"], person["roi"]
        landmarks = points[:, :2] / scale - 0.5
        return PoseDetection(
            landmarks=landmarks,
            depth=points[:, 4] / scale.mean(),
            visibility=points[:, 2],
            presence=points[:, 3],
            box=_landmark_box(landmarks, points[:, 3], image_size),
            face_box=person["face_box"] / np.tile(scale, 2) - 0.5,
            score=person["score"],
            pose_score=person["pose_score"],
            roi=np.array([*(roi[:2] / scale - 0.5), roi[2] / scale.mean(), roi[3]]),
        )

    def _seen(self, points: np.ndarray, found: list) -> bool:
        """Whether the landmarks (33, 5) are a second find of a person in ``found``: their
        box overlaps one of theirs by more than ``duplicate_iou``, or lies mostly (80%) inside
        it (a part of the body found again)."""
        if not found:
            return False
        box = np.concatenate([points[:, :2].min(0), points[:, :2].max(0)])
        others = np.stack([np.concatenate([f["points"][:, :2].min(0), f["points"][:, :2].max(0)]) for f in found])
        low, high = np.maximum(box[:2], others[:, :2]), np.minimum(box[2:], others[:, 2:])
        inside = np.clip(high - low, 0, None).prod(-1) / max(float(np.prod(box[2:] - box[:2])), 1e-9)
        return bool(box_iou(box, others).max() > self.duplicate_iou or inside.max() > 0.8)

    def _find_people(self, image: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detector boxes (M, 4), keypoints (M, 4, 2) in image pixels and scores (M,), best
        first, seen through the square ``window`` (x0, y0, side) letterboxed to its input."""
        (x0, y0, side), zoom = window, DETECTOR_SIZE / window[2]
        to_source = np.array([[1 / zoom, 0, x0], [0, 1 / zoom, y0]])
        letterboxed = _warp(image, to_source, DETECTOR_SIZE, cv2.BORDER_CONSTANT)
        tensor = letterboxed.astype(np.float32)[None] / 127.5 - 1.0
        raw_boxes, raw_scores = self._run(self.detector, tensor, ("Identity", "Identity_1"))
        boxes, keypoints, scores = decode_detections(raw_boxes[0], raw_scores[0], self.anchors)
        confident = scores >= self.min_score
        boxes, keypoints, scores = weighted_nms(
            boxes[confident], keypoints[confident], scores[confident], self.nms_iou
        )
        to_pixels = lambda xy: xy * side + np.array([x0, y0])
        boxes = np.concatenate([to_pixels(boxes[:, :2]), to_pixels(boxes[:, 2:])], axis=-1)
        return boxes, to_pixels(keypoints), scores

    def _landmarks(self, image: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 39, 5) points in image pixels with visibility, presence and depth (image pixels),
        and (N,) pose flags,
        for crops ``roi`` (N, 4); the landmark model runs on all crops as one batch."""
        to_image = roi_to_image_affine(roi)
        crops = np.stack([_warp(image, m, LANDMARK_SIZE, cv2.BORDER_REPLICATE) for m in to_image])
        tensor = crops.astype(np.float32) / 255.0
        raw, flag, heatmap = self._run(self.landmarker, tensor, ("Identity", "Identity_1", "Identity_3"))
        raw = raw.reshape(len(roi), NUM_MODEL_POINTS, 5)
        normalised = refine_with_heatmap(raw[..., :2] / LANDMARK_SIZE, heatmap)
        xy = _apply_affine(to_image, normalised * LANDMARK_SIZE)
        depth = raw[..., 2:3] * (roi[:, 2] / LANDMARK_SIZE)[:, None, None]
        points = np.concatenate([xy, _sigmoid(raw[..., 3:5]), depth], axis=-1)
        return points, flag.reshape(-1)

    @staticmethod
    def _run(interpreter, batch: np.ndarray, outputs: tuple[str, ...]) -> list[np.ndarray]:
        """Run a network on a batch (N, S, S, 3), resizing its input's batch size as needed."""
        inputs = interpreter.get_input_details()[0]
        if int(inputs["shape"][0]) != len(batch):
            interpreter.resize_tensor_input(inputs["index"], list(batch.shape))
            interpreter.allocate_tensors()
        interpreter.set_tensor(inputs["index"], np.ascontiguousarray(batch, dtype=np.float32))
        interpreter.invoke()
        by_name = {d["name"]: d["index"] for d in interpreter.get_output_details()}
        return [interpreter.get_tensor(by_name[name]) for name in outputs]
