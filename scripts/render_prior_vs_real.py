"""Render poses sampled from the diffusion prior beside real held-out poses (docs/ picture).

Left: ``--n`` DDIM samples of the prior (bundled by default); right: ``--n`` poses drawn at
random from the real CMU test split (clips no prior was trained on), each turned to face the
camera. Every pose is shown from the front and the side on the bundled body, mean shape.

    python scripts/render_prior_vs_real.py [--prior PATH] [--n 8] [--split test|test_subjects] [--out docs/prior_vs_real.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def camera_facing(poses: np.ndarray):
    """(N, 72) y-up world poses -> (N, 24, 3, 3) camera-frame rotations, facing the camera."""
    import torch

    from spin_diff.geometry.rotations import facing_yaw, yaw_matrix
    from spin_diff.diffusion.representation import upright_orientation
    from spin_diff.geometry.rotations import axis_angle_to_matrix

    rotmats = axis_angle_to_matrix(torch.as_tensor(poses, dtype=torch.float32).view(-1, 24, 3))
    camera = upright_orientation(len(poses), rotmats) @ rotmats[:, 0]
    rotmats[:, 0] = yaw_matrix(-facing_yaw(camera)) @ camera
    return rotmats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", help="diffusion prior checkpoint (default: the bundled one)")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=180)
    parser.add_argument("--split", default="test", help="the real held-out split: test (clips) or test_subjects")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "prior_vs_real.png")
    args = parser.parse_args(argv)
    import cv2
    import torch

    from spin_diff.body.model import load_body_model
    from spin_diff.data.real_poses import load_real_poses
    from spin_diff.diffusion.model import BUNDLED_DIFFUSION_PRIOR, load_diffusion_prior
    from spin_diff.diffusion.samples import render_pose_grid, sample_poses
    from spin_diff.render import save_png

    torch.set_num_threads(1)
    model = load_body_model()
    prior = load_diffusion_prior(args.prior or BUNDLED_DIFFUSION_PRIOR)
    sampled = sample_poses(prior, args.n, seed=args.seed)
    real = load_real_poses(args.split)
    chosen = np.random.default_rng(args.seed).choice(len(real), args.n, replace=False)
    panels = []
    what = {"test": "CMU test clips", "test_subjects": "CMU held-out subject"}.get(args.split, args.split)
    for title, rotmats in (("diffusion prior samples", sampled), (f"real held-out poses ({what})", camera_facing(real[chosen]))):
        grid = render_pose_grid(rotmats, model, columns=2, size=args.size)
        banner = np.full((36, grid.shape[1], 3), 255, dtype=np.uint8)
        cv2.putText(banner, title, (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (60, 60, 60), 1, cv2.LINE_AA)
        panels.append(np.concatenate([banner, grid], axis=0))
    height = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255) for p in panels]
    gap = np.full((height, 24, 3), 255, dtype=np.uint8)
    print(f"wrote {save_png(args.out, np.concatenate([panels[0], gap, panels[1]], axis=1))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
