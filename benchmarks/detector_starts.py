"""Why fits from detected and from OpenPose keypoints disagree: the bundled regressor's starts.

For every photo folder given (as ``benchmarks/detector_fit.py`` takes them), ``spin-diff fit
--no-optimise`` (the regressor's bodies, no fit) runs three times: on the keypoints BlazePose
detects, on OpenPose's published ones, and on OpenPose's with the joints the detector leaves
missing for that person removed (confidence 0; e.g. the small toes, which BlazePose has
not). Printed for the first published person of each photo (paired with the nearest detected box): PA-MPJPE between
the starts (mm, 14 LSP joints) for detected vs published, published-with-joints-removed vs
published (what removing those joints alone does), and detected vs published-with-joints-removed
(what is left: where the two detectors place the joints both give), and the joints removed.

    .venv/bin/python benchmarks/detector_starts.py /work/photos spin_im1010 prohmr_pexels_4793258 ...

Photos are never committed; the raw output is appended to ``results_detector_fit_cpu.txt``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_fit import LSP14, fit  # noqa: E402

from spin_diff.apps.fit_photos import IMAGE_SUFFIXES  # noqa: E402
from spin_diff.body.joints import OPENPOSE_JOINT_NAMES  # noqa: E402
from spin_diff.geometry.alignment import pa_mpjpe  # noqa: E402


def distance(a: dict, b: dict) -> float:
    """PA-MPJPE (mm) between two params.json's 14 LSP joints."""
    joints = [torch.tensor(p["joints3d_crop"])[LSP14][None] for p in (a, b)]
    return float(pa_mpjpe(*joints)[0]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("names", nargs="+", help="photo folders under PHOTOS")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("the bundled regressor's starts (spin-diff fit --no-optimise), PA-MPJPE between them, mm")
    print(f"{'photo':32s} {'det-pub':>8s} {'removed-pub':>12s} {'det-removed':>12s}  joints removed")
    no_fit = ["--no-optimise"]
    for name in args.names:
        folder = args.photos / name
        image = next(p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES)
        published_json = folder / f"{image.stem}_keypoints.json"
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            detected = fit(image, tmp / "detected", None, no_fit)
            published = next(iter(fit(image, tmp / "published", published_json, no_fit).values()))
            centre = np.array(published["box_center"])
            key, det = min(detected.items(), key=lambda kv: np.linalg.norm(np.array(kv[1]["box_center"]) - centre))
            written = json.loads((tmp / "detected" / "keypoints" / f"{image.stem}_keypoints.json").read_text())
            det_points = np.array(written["people"][int(key.split("person_")[-1])]["pose_keypoints_2d"]).reshape(25, 3)
            content = json.loads(published_json.read_text())
            pub_points = np.array(content["people"][0]["pose_keypoints_2d"], dtype=float).reshape(25, 3)
            lacking = (det_points[:, 2] <= 0) & (pub_points[:, 2] > 0)
            pub_points[lacking] = 0.0
            content["people"] = [{"pose_keypoints_2d": pub_points.reshape(-1).tolist()}]
            removed_dir = tmp / "removed_json"
            removed_dir.mkdir()
            removed_json = removed_dir / published_json.name
            removed_json.write_text(json.dumps(content))
            removed = next(iter(fit(image, tmp / "removed", removed_json, no_fit).values()))
        names = ", ".join(OPENPOSE_JOINT_NAMES[i] for i in np.flatnonzero(lacking)) or "none"
        print(f"{name:32s} {distance(det, published):8.1f} {distance(removed, published):12.1f} "
              f"{distance(det, removed):12.1f}  {names}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
