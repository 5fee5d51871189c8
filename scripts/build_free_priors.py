"""Build the bundled free GMM pose prior and the picture of the pose sampler.

Draws poses from :mod:`spin_diff.priors.pose_sampler` (all postures, weighted toward everyday
ones), fits an 8-component full-covariance Gaussian mixture with EM and writes it in SMPLify's
``gmm_08.pkl`` format to ``spin_diff/body/assets/free_body/gmm_08.pkl``, so SMPLify-style
fitting runs without SMPLify's (non-commercial) file. Also renders ``docs/pose_samples.png``.

    python scripts/build_free_priors.py                # ~50,000 poses, a few minutes on a CPU
    python scripts/build_free_priors.py --samples 5000 --out /tmp/gmm_08.pkl --no-picture
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from spin_diff.priors.em import fit_gmm, gmm_log_likelihood
from spin_diff.priors.gmm import BUNDLED_GMM, MaxMixturePrior, write_gmm_file
from spin_diff.priors.pose_sampler import POSTURES, sample_poses

REPO = Path(__file__).resolve().parents[1]

# Everyday postures dominate image datasets; the rest keep the prior from ruling them out.
POSTURE_WEIGHTS = {
    "standing": 4.0,
    "walking": 3.0,
    "sitting": 2.5,
    "running": 1.0,
    "reaching": 1.0,
    "arms_raised": 1.0,
    "bending": 1.0,
    "crouching": 1.0,
    "kneeling": 0.8,
}


def draw_weighted(num: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``num`` poses with postures in proportion to POSTURE_WEIGHTS."""
    names = list(POSTURES)
    weights = np.array([POSTURE_WEIGHTS.get(n, 1.0) for n in names])
    counts = rng.multinomial(num, weights / weights.sum())
    poses, labels = [], []
    for name, count in zip(names, counts):
        if count:
            drawn, drawn_labels = sample_poses(int(count), rng, [name])
            poses.append(drawn)
            labels += drawn_labels
    order = rng.permutation(num)
    return np.concatenate(poses)[order], [labels[i] for i in order]


def render_picture(path: Path, seed: int, per_posture: int = 2, columns: int = 6, size: int = 400) -> Path:
    """A grid of sampled poses on the bundled body, 3/4 front view, feet on the ground."""
    import cv2
    import torch

    from spin_diff.body.model import load_body_model
    from spin_diff.priors.pose_sampler import upright_global_orient
    from spin_diff.render import orbit_rotation, render_mesh, save_png
    from spin_diff.render.views import image_grid

    rng = np.random.default_rng(seed)
    poses, labels = [], []
    for name in POSTURES:
        drawn, drawn_labels = sample_poses(per_posture, rng, [name])
        poses.append(drawn)
        labels += drawn_labels
    poses = np.concatenate(poses)
    orient = upright_global_orient(poses, labels)
    model = load_body_model()
    with torch.no_grad():
        full = torch.as_tensor(np.concatenate([orient, poses], axis=1), dtype=torch.float32)
        vertices = model(full, torch.zeros(len(poses), model.num_betas)).vertices.numpy()
    rotation = orbit_rotation(40.0)
    height, width = size, int(size * 0.75)
    span = 2.3  # metres shown top to bottom: every body at the same scale
    depth = 5000.0 * span / height
    tiles = []
    for verts, label in zip(vertices, labels):
        camera = verts @ rotation.T  # y points down
        # Centre horizontally; stand the lowest point on a common ground line.
        centre_x = (camera[:, 0].min() + camera[:, 0].max()) / 2
        shift = np.array([-centre_x, 0.42 * span - camera[:, 1].max(), 0.0])
        translation = shift + np.array([0.0, 0.0, depth - camera[:, 2].mean()])
        image = render_mesh(
            verts, model.faces, rotation=rotation, translation=translation, image_size=(height, width)
        )
        tile = image.image.copy()
        caption = label.replace("_", " ")
        cv2.putText(tile, caption, (8, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (90, 90, 90), 1, cv2.LINE_AA)
        tiles.append(tile)
    # Crop each row of the grid to its tallest body, so that standing rows waste no space.
    rows = []
    for start in range(0, len(tiles), columns):
        row = image_grid(tiles[start : start + columns], columns)
        covered = np.flatnonzero((row[: height - 30] < 250).any(axis=(1, 2)))
        top = max(0, int(covered.min()) - 12) if covered.size else 0
        rows.append(row[top:])
    return save_png(path, np.concatenate(rows, axis=0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--components", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=BUNDLED_GMM)
    parser.add_argument("--picture", type=Path, default=REPO / "docs" / "pose_samples.png")
    parser.add_argument("--no-picture", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    start = time.time()
    poses, labels = draw_weighted(args.samples, rng)
    sampled = time.time() - start
    held_out, held_out_labels = draw_weighted(max(1000, args.samples // 10), rng)

    start = time.time()
    params = fit_gmm(poses, components=args.components, iterations=args.iterations, seed=args.seed)
    fitted = time.time() - start
    path = write_gmm_file(args.out, params)

    prior = MaxMixturePrior(params, dtype=torch.float64)
    with torch.no_grad():
        energy = prior(torch.as_tensor(held_out)).numpy()
        zero = float(prior(torch.zeros(1, params.dim, dtype=torch.float64))[0])
    report = {
        "samples": args.samples,
        "seed": args.seed,
        "posture_counts": {n: labels.count(n) for n in POSTURES},
        "sampling_seconds": round(sampled, 1),
        "em_seconds": round(fitted, 1),
        "train_mean_log_likelihood": round(float(gmm_log_likelihood(poses, params).mean()), 3),
        "held_out_mean_log_likelihood": round(float(gmm_log_likelihood(held_out, params).mean()), 3),
        "component_weights": [round(float(w), 4) for w in params.weights],
        "max_mixture_energy_held_out_median": round(float(np.median(energy)), 2),
        "max_mixture_energy_held_out_by_posture": {
            n: round(float(np.median(energy[[l == n for l in held_out_labels]])), 2) for n in POSTURES
        },
        "max_mixture_energy_zero_pose": round(zero, 2),
        "file": str(path),
        "file_bytes": path.stat().st_size,
    }
    print(json.dumps(report, indent=1))
    if not args.no_picture:
        print(f"wrote {render_picture(args.picture, args.seed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
