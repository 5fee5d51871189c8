"""Make docs/fit_photo_pexels_regressor.jpg: a photo's fits side by side, as `spin-diff fit` wrote them.

Each argument is a person folder of `spin-diff fit` (``OUT/<image>/person_00``); its
``overlay.png`` and ``side.png`` are scaled to one height (the side view to a square) and
tiled left to right, folder after folder. The README's first picture is the lunge's default
fit (bundled regressor) followed by its ``--init mean`` cold start:

    spin-diff fit LUNGE.jpg --keypoints LUNGE_keypoints.json --out /tmp/fit_default --threads 1
    spin-diff fit LUNGE.jpg --keypoints LUNGE_keypoints.json --out /tmp/fit_mean --init mean --threads 1
    python scripts/compose_photo_figure.py /tmp/fit_default/pexels-anete-lusina-4793258/person_00 \\
        /tmp/fit_mean/pexels-anete-lusina-4793258/person_00 --out docs/fit_photo_pexels_regressor.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="spin-diff fit person folders (overlay.png, side.png)")
    parser.add_argument("--height", type=int, default=315, help="height of every tile, pixels")
    parser.add_argument("--out", type=Path, default=Path("docs/fit_photo_pexels_regressor.jpg"))
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    args = parser.parse_args()
    tiles = []
    for folder in args.folders:
        overlay = cv2.imread(str(folder / "overlay.png"))
        side = cv2.imread(str(folder / "side.png"))
        if overlay is None or side is None:
            parser.error(f"{folder}: no overlay.png / side.png (a spin-diff fit person folder?)")
        width = round(overlay.shape[1] * args.height / overlay.shape[0])
        tiles.append(cv2.resize(overlay, (width, args.height), interpolation=cv2.INTER_AREA))
        tiles.append(cv2.resize(side, (args.height, args.height), interpolation=cv2.INTER_AREA))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.concatenate(tiles, axis=1), [cv2.IMWRITE_JPEG_QUALITY, args.quality])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
