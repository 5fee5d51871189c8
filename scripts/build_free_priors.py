"""Build the bundled free GMM pose prior and the picture of the pose sampler.

Fits an 8-component full-covariance Gaussian mixture with EM to the real CMU training poses
(``spin_diff/data/poses/cmu_train.npz``, see its PROVENANCE.md; built by
``scripts/build_cmu_pose_sets.py``) plus a share of pose-sampler poses where mocap is thin
(sitting, kneeling, crouching; ``--sampler-share``, postures weighted toward everyday ones),
and writes it in SMPLify's ``gmm_08.pkl`` format to
``spin_diff/body/assets/free_body/gmm_08.pkl``, so SMPLify-style fitting runs without
SMPLify's (non-commercial) file. The held-out likelihood is reported on the real validation
split. Also renders ``docs/pose_samples.png`` (the sampler).

    python scripts/build_free_priors.py                # a minute or two on a CPU
    python scripts/build_free_priors.py --sampler-share 1 --samples 50000   # the old sampler-only GMM
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


def training_pose_mix(real: Path | None, sampler_share: float, seed: int, samples: int = 0) -> tuple[np.ndarray, dict]:
    """(N, 72) whole poses: the real training poses (own orientations, y-up world) plus pose-sampler
    poses (upright orientations) making up ``sampler_share`` of the total; ``samples`` sets the
    total when there are no real poses (``sampler_share`` 1)."""
    from spin_diff.priors.pose_sampler import upright_global_orient

    rng = np.random.default_rng(seed)
    real_poses = np.zeros((0, 72))
    if real is not None and sampler_share < 1:
        with np.load(real) as data:
            real_poses = np.asarray(data["pose"], dtype=np.float64)
    extra = int(round(len(real_poses) * sampler_share / (1 - sampler_share))) if sampler_share < 1 else samples
    body, labels = draw_weighted(extra, rng) if extra else (np.zeros((0, 69)), [])
    sampled = np.concatenate([upright_global_orient(body, labels), body], axis=1) if extra else np.zeros((0, 72))
    poses = np.concatenate([real_poses, sampled])[rng.permutation(len(real_poses) + extra)]
    return poses, {"real_poses": len(real_poses), "sampler_poses": extra, "real_file": str(real) if len(real_poses) else None}


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
    parser.add_argument("--real", type=Path, default=REPO / "spin_diff" / "data" / "poses" / "cmu_train.npz",
                        help="real training poses (import-mocap npz)")
    parser.add_argument("--sampler-share", type=float, default=0.2, help="share of pose-sampler poses in the mix")
    parser.add_argument("--samples", type=int, default=50_000, help="sampler poses when --sampler-share is 1")
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

    from spin_diff.data.real_poses import load_real_poses

    rng = np.random.default_rng(args.seed)
    start = time.time()
    whole, mix = training_pose_mix(args.real, args.sampler_share, args.seed, args.samples)
    poses = whole[:, 3:]
    sampled = time.time() - start
    held_out, held_out_labels = draw_weighted(2000, rng)
    real_val = load_real_poses("val")[:, 3:]

    start = time.time()
    params = fit_gmm(poses, components=args.components, iterations=args.iterations, seed=args.seed)
    fitted = time.time() - start
    path = write_gmm_file(args.out, params)

    prior = MaxMixturePrior(params, dtype=torch.float64)
    with torch.no_grad():
        energy = prior(torch.as_tensor(held_out)).numpy()
        zero = float(prior(torch.zeros(1, params.dim, dtype=torch.float64))[0])
    report = {
        **mix,
        "seed": args.seed,
        "sampling_seconds": round(sampled, 1),
        "em_seconds": round(fitted, 1),
        "train_mean_log_likelihood": round(float(gmm_log_likelihood(poses, params).mean()), 3),
        "real_val_mean_log_likelihood": round(float(gmm_log_likelihood(real_val, params).mean()), 3),
        "sampler_held_out_mean_log_likelihood": round(float(gmm_log_likelihood(held_out, params).mean()), 3),
        "component_weights": [round(float(w), 4) for w in params.weights],
        "max_mixture_energy_sampler_held_out_median": round(float(np.median(energy)), 2),
        "max_mixture_energy_real_val_median": round(float(np.median(prior(torch.as_tensor(real_val)).detach().numpy())), 2),
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
