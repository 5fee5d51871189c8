"""Several people in one photo: real photos pasted side by side, detected and fitted at once.

The photos named (``PHOTOS/<name>/<stem>.<ext>`` beside ``<stem>_keypoints.json``) are each
cropped to their first published person's box (padded) and scaled to one height, pasted in
rows of ``--columns`` on one white canvas, and the canvas goes through ``spin-diff fit`` with its defaults and no
keypoint file. Printed per pasted person: whether a person was detected and fitted in its
tile, the detected limb joints' mean distance to the published ones moved onto the canvas
(224-crop pixels), and the fit's residual and verdict.

    .venv/bin/python benchmarks/detector_multi.py /work/photos spin_im1010 xmc_pose1_656b3107 ...

Photos are never committed; the raw output is ``results_detector_multi_cpu.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from spin_diff.body import joints as J
from spin_diff.cli.main import main as spin_diff
from spin_diff.constants import CROP_SIZE
from spin_diff.fitting.images import BOX_PADDING

LIMBS = J.joint_indices(
    [f"OP {side}{part}" for side in "RL" for part in ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")]
)


def paste(photos: Path, names: list[str], height: int, columns: int):
    """The canvas (BGR, ``columns`` tiles a row), each tile's x0, x1, y0, y1, and each
    person's published keypoints (25, 3) on it."""
    tiles, keypoints = [], []
    for name in names:
        folder = photos / name
        image_path = next(p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        image = cv2.imread(str(image_path))
        person = json.loads((folder / f"{image_path.stem}_keypoints.json").read_text())["people"][0]
        points = np.asarray(person.get("pose_keypoints_2d", person.get("pose_keypoints")), np.float64).reshape(25, 3)
        seen = points[points[:, 2] > 0.1, :2]
        low, high = seen.min(0), seen.max(0)
        centre, side = (low + high) / 2, float((high - low).max()) * 1.4
        x0, y0 = np.maximum(centre - side / 2, 0).astype(int)
        x1, y1 = np.minimum(centre + side / 2, [image.shape[1], image.shape[0]]).astype(int)
        crop = image[y0:y1, x0:x1]
        zoom = height / crop.shape[0]
        tiles.append(cv2.resize(crop, (max(1, round(crop.shape[1] * zoom)), height), interpolation=cv2.INTER_AREA))
        moved = points.copy()
        moved[:, :2] = (points[:, :2] - [x0, y0] + 0.5) * zoom - 0.5
        keypoints.append(moved)
    rows = [list(range(i, min(i + columns, len(tiles)))) for i in range(0, len(tiles), columns)]
    width = max(sum(tiles[i].shape[1] for i in row) for row in rows)
    canvas = np.full((height * len(rows), width, 3), 255, np.uint8)
    ranges = []
    for r, row in enumerate(rows):
        offset = 0
        for i in row:
            canvas[r * height : (r + 1) * height, offset : offset + tiles[i].shape[1]] = tiles[i]
            ranges.append((offset, offset + tiles[i].shape[1], r * height, (r + 1) * height))
            keypoints[i][:, 0] += offset
            keypoints[i][:, 1] += r * height
            offset += tiles[i].shape[1]
    return canvas, ranges, keypoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("names", nargs="+")
    parser.add_argument("--height", type=int, default=480, help="tile height in pixels")
    parser.add_argument("--columns", type=int, default=3, help="tiles a row")
    parser.add_argument("--keep", type=Path, help="also write the canvas and the fit's outputs here (look at them)")
    args = parser.parse_args()
    canvas, ranges, published = paste(args.photos, args.names, args.height, args.columns)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "canvas.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])
        out = root / "fit"
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            spin_diff(["fit", str(root / "canvas.jpg"), "--out", str(out), "--threads", "1", "--quiet", "--overwrite"])
        detected = json.loads((out / "keypoints" / "canvas_keypoints.json").read_text())["people"]
        detected = [np.asarray(p["pose_keypoints_2d"]).reshape(25, 3) for p in detected]
        fits = {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("canvas/person_*/params.json"))}
    print(f"canvas {canvas.shape[1]}x{canvas.shape[0]}, {len(args.names)} people pasted, {len(detected)} detected, {len(fits)} fitted")
    print(f"{'tile':32s} {'found':>5s} {'kp_px_224':>9s} {'fit_res':>7s}  fit_ok")
    for name, (x0, x1, y0, y1), truth in zip(args.names, ranges, published):
        centres = [np.median(d[d[:, 2] > 0, :2], axis=0) for d in detected]
        inside = [i for i, c in enumerate(centres) if x0 <= c[0] < x1 and y0 <= c[1] < y1]
        if not inside:
            print(f"{name:32s} {'no':>5s}")
            continue
        i = inside[0]
        both = (truth[LIMBS, 2] > 0.1) & (detected[i][LIMBS, 2] > 0.5)
        seen = truth[truth[:, 2] > 0.1, :2]
        scale = CROP_SIZE / (float((seen.max(0) - seen.min(0)).max()) * BOX_PADDING)
        error = float(np.linalg.norm(truth[LIMBS, :2] - detected[i][LIMBS, :2], axis=-1)[both].mean() * scale)
        fit = fits.get(f"person_{i:02d}")
        residual = f"{fit['residual_px']:7.2f}" if fit else "      -"
        print(f"{name:32s} {len(inside):5d} {error:9.2f} {residual}  {fit['success'] if fit else 'not fitted'}")
    print(printed.getvalue().strip().splitlines()[-1])


if __name__ == "__main__":
    main()
