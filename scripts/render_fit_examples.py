"""Make docs/fit_overlay.png: synthetic people fitted by `spin-diff fit`'s pipeline.

Renders a few synthetic images with the bundled model (detector-like keypoint corruption),
fits them with the default fitting configuration from the mean pose, and tiles, per person,
the input image, the fitted mesh over it and the fitted mesh from the side.

    python scripts/render_fit_examples.py [--n 6] [--seed 3] [--out docs/fit_overlay.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.apps.fit_photos import fit_images  # noqa: E402
from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data.synth import SynthConfig, generate_dataset  # noqa: E402
from spin_diff.fitting.config import Config
from spin_diff.fitting.smplify import SMPLify  # noqa: E402
from spin_diff.render import save_png  # noqa: E402
from spin_diff.render.views import image_grid  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/fit_overlay.png"))
    args = parser.parse_args()
    model = load_body_model()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, fit_dir = Path(tmp) / "synth", Path(tmp) / "fits"
        generate_dataset(SynthConfig(num_images=args.n, seed=args.seed, back_view_prob=0.0), data_dir, model, progress=False)
        report = fit_images(data_dir / "images", data_dir / "keypoints", fit_dir, model,
                            SMPLify(model, Config().fitting), progress=False)  # fmt: skip
        print(f"fitted {len(report.fitted)}, failed {len(report.failed)}")
        tiles = []
        for image_path in sorted((data_dir / "images").iterdir()):
            folder = fit_dir / image_path.stem / "person_00"
            image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
            overlay = cv2.cvtColor(cv2.imread(str(folder / "overlay.png")), cv2.COLOR_BGR2RGB)
            side = cv2.resize(cv2.cvtColor(cv2.imread(str(folder / "side.png")), cv2.COLOR_BGR2RGB), image.shape[1::-1])
            tiles.append(np.concatenate([image, overlay, side], axis=1))
    print(f"wrote {save_png(args.out, image_grid(tiles, columns=2, pad=8))}")


if __name__ == "__main__":
    main()
