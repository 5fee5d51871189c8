"""The offline keypoint detector (BlazePose) against published 2D keypoints on real photos.

For every photo folder under PHOTOS (``<name>/<stem>.<jpg|png|jpeg>`` beside
``<stem>_keypoints.json`` in OpenPose BODY_25 layout: OpenPose's own output, or hand labels
converted to it), it detects everyone, pairs detected people with the published ones
(Hungarian matching on the mean distance of the limb joints both mark confident), and prints
per person the mean distance on those limb joints (shoulders, elbows, wrists, hips, knees,
ankles) in pixels of SPIN's 224 crop (the person's box: the published confident keypoints'
extent, padded by 20%), beside the 8 px target, plus the detector's time per image (CPU, one
thread). A published person with fewer than ``--min-joints`` confident limb joints is not
scored; one the detector misses is listed as missed.

    .venv/bin/python benchmarks/detector_accuracy.py /work/photos

Photos are never committed; the raw output is ``results_detector_accuracy_cpu.txt``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from spin_diff.body import joints as J
from spin_diff.constants import CROP_SIZE
from spin_diff.detect import BlazePose
from spin_diff.detect.people import detect_people
from spin_diff.fitting.images import BOX_PADDING

LIMBS = J.joint_indices(
    [f"OP {side}{part}" for side in "RL" for part in ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")]
)
TARGET_PX = 8.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def photo_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    """(folder name, image, keypoint JSON) of every photo under ``root``."""
    pairs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            keypoints = folder / f"{image.stem}_keypoints.json"
            if keypoints.is_file():
                pairs.append((folder.name, image, keypoints))
    return pairs


def read_published(path: Path) -> np.ndarray:
    """(P, 25, 3) BODY_25 keypoints of a published file (``pose_keypoints_2d``, or OpenPose
    1.0's ``pose_keypoints``); confidences clipped to [0, 1] (OpenPose 1.0 writes up to 1.006)."""
    people = json.loads(path.read_text())["people"]
    rows = [np.asarray(p.get("pose_keypoints_2d", p.get("pose_keypoints")), np.float64).reshape(25, 3) for p in people]
    out = np.stack(rows) if rows else np.zeros((0, 25, 3))
    out[..., 2] = out[..., 2].clip(0.0, 1.0)
    return out


def crop_scale(published: np.ndarray, threshold: float) -> float:
    """224 / side of SPIN's box around a person's confident keypoints (25, 3)."""
    points = published[published[:, 2] > threshold, :2]
    return CROP_SIZE / (float((points.max(0) - points.min(0)).max()) * BOX_PADDING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path, help="folder of photo folders (see the module docstring)")
    parser.add_argument("--published-threshold", type=float, default=0.1, help="confident published joint")
    parser.add_argument("--detected-threshold", type=float, default=0.5, help="confident detected joint")
    parser.add_argument("--min-joints", type=int, default=4, help="fewest common limb joints to score a person")
    parser.add_argument("--repeats", type=int, default=3, help="timed detections per image (the fastest kept)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    detector = BlazePose(threads=1)
    print(
        f"detector: BlazePose (pose_detection + pose_landmark_full), 1 thread; limb joints: "
        f"published c > {args.published_threshold}, detected c > {args.detected_threshold}; target <= {TARGET_PX} px"
    )
    print(f"{'photo':34s} {'size':>10s} {'ms':>6s} {'pub':>3s} {'det':>3s} person  joints  mean_px_224  max_px_224  target")
    all_errors, per_person, times, missed_total, scored_total = [], [], [], 0, 0
    for name, image_path, keypoint_path in photo_pairs(args.photos):
        image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
        published = read_published(keypoint_path)
        elapsed = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            found = detect_people(detector, image)
            elapsed.append(time.perf_counter() - start)
        times.append(min(elapsed))
        detected = found.keypoints[:, :25]
        # cost: mean crop-pixel distance on common confident limb joints (inf: too few in common)
        cost = np.full((len(published), len(detected)), np.inf)
        for p, person in enumerate(published):
            if (person[LIMBS, 2] > args.published_threshold).sum() < args.min_joints:
                continue
            scale = crop_scale(person, args.published_threshold)
            for d, guess in enumerate(detected):
                both = (person[LIMBS, 2] > args.published_threshold) & (guess[LIMBS, 2] > args.detected_threshold)
                if both.sum() >= args.min_joints:
                    distance = np.linalg.norm(person[LIMBS, :2] - guess[LIMBS, :2], axis=-1)[both] * scale
                    cost[p, d] = distance.mean()
        finite = np.where(np.isfinite(cost), cost, 1e6)
        rows, cols = linear_sum_assignment(finite) if cost.size else ([], [])
        matched = {int(r): int(c) for r, c in zip(rows, cols) if np.isfinite(cost[r, c]) and cost[r, c] < 100}
        size = f"{image.shape[1]}x{image.shape[0]}"
        label = f"{name}/{image_path.name}"[:34]
        for p, person in enumerate(published):
            scorable = (person[LIMBS, 2] > args.published_threshold).sum() >= args.min_joints
            if not scorable:
                continue
            scored_total += 1
            if p not in matched:
                missed_total += 1
                print(f"{label:34s} {size:>10s} {times[-1]*1000:6.0f} {len(published):3d} {len(detected):3d} {p:6d}  missed")
                continue
            guess = detected[matched[p]]
            both = (person[LIMBS, 2] > args.published_threshold) & (guess[LIMBS, 2] > args.detected_threshold)
            scale = crop_scale(person, args.published_threshold)
            distance = np.linalg.norm(person[LIMBS, :2] - guess[LIMBS, :2], axis=-1)[both] * scale
            all_errors.extend(distance.tolist())
            per_person.append(distance.mean())
            verdict = "ok" if distance.mean() <= TARGET_PX else "OVER"
            print(
                f"{label:34s} {size:>10s} {times[-1]*1000:6.0f} {len(published):3d} {len(detected):3d} {p:6d}"
                f"  {int(both.sum()):6d}  {distance.mean():11.2f}  {distance.max():10.2f}  {verdict}"
            )
    per_person = np.array(per_person)
    print(
        f"people scored {scored_total}, matched {len(per_person)}, missed {missed_total}; "
        f"per-person mean px (224 crop): median {np.median(per_person):.2f}, mean {per_person.mean():.2f}; "
        f"<= {TARGET_PX} px: {(per_person <= TARGET_PX).sum()} of {len(per_person)}; all joints mean "
        f"{np.mean(all_errors):.2f}"
    )
    print(f"detector time per image (1 thread, fastest of {args.repeats}): median {np.median(times)*1000:.0f} ms, "
          f"max {np.max(times)*1000:.0f} ms over {len(times)} images")


if __name__ == "__main__":
    main()
