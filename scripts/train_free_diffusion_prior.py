"""Train the bundled diffusion pose prior and render its sample grid.

Trains on the same pose mix as the bundled GMM (``build_free_priors.training_pose_mix``: the
real CMU training split, ``spin_diff/data/poses/cmu_train.npz``, with its own orientations, plus
a share of pose-sampler poses where mocap is thin), with random camera yaw and tilt, a small
denoiser on CPU, and writes its EMA weights to
``spin_diff/body/assets/free_body/diffusion_prior.pt``, so fitting with the diffusion term
works out of the box. The model is smaller than ScoreHMR's (see BUNDLED_DENOISER) so that it
trains in minutes on one CPU core and costs the fit little per iteration.

    python scripts/train_free_diffusion_prior.py                       # the bundled prior
    python scripts/train_free_diffusion_prior.py --steps 2000 --out /tmp/p.pt --run-dir /tmp/run --no-picture
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from spin_diff.diffusion.config import DenoiserConfig, DiffusionModelConfig, DiffusionTrainConfig  # noqa: E402
from spin_diff.diffusion.model import BUNDLED_DIFFUSION_PRIOR  # noqa: E402

# Residual width 256, 3 blocks of 512: ~1.1M parameters (ScoreHMR's default is DenoiserConfig()).
BUNDLED_DENOISER = DenoiserConfig(width=256, hidden=512, blocks=3, time_dim=128)


def training_poses(real: Path, sampler_share: float, samples: int, seed: int) -> tuple[np.ndarray, dict]:
    """(N, 72) poses in the y-up world: the GMM's mix of real training poses and sampler poses."""
    from build_free_priors import training_pose_mix

    return training_pose_mix(real, sampler_share, seed, samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=REPO / "spin_diff" / "data" / "poses" / "cmu_train.npz",
                        help="real training poses (import-mocap npz)")
    parser.add_argument("--sampler-share", type=float, default=0.2, help="share of pose-sampler poses in the mix")
    parser.add_argument("--samples", type=int, default=150_000, help="sampler poses when --sampler-share is 1")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--orientation", default="canonical", choices=["camera", "canonical", "none"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run-dir", type=Path, default=REPO / "outputs" / "diffusion_prior_run")
    parser.add_argument("--out", type=Path, default=BUNDLED_DIFFUSION_PRIOR)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--picture", type=Path, default=REPO / "docs" / "diffusion_samples.png")
    parser.add_argument("--no-picture", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import torch

    from spin_diff.diffusion.training import train_diffusion_prior

    torch.set_num_threads(args.threads)
    tic = time.time()
    poses, mix = training_poses(args.real, args.sampler_share, args.samples, args.seed)
    sampled = time.time() - tic
    config = DiffusionTrainConfig(
        model=DiffusionModelConfig(orientation=args.orientation, denoiser=BUNDLED_DENOISER),
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, lr_min=args.lr / 20, warmup_steps=500,
        ema_decay=0.999, seed=args.seed, checkpoint_every=2000, log_every=250, threads=args.threads,
    )  # fmt: skip
    tic = time.time()
    prior_path = train_diffusion_prior(poses, config, args.run_dir, resume=args.resume, progress=not args.quiet)
    trained = time.time() - tic
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if prior_path.resolve() != args.out.resolve():
        shutil.copyfile(prior_path, args.out)
    log_lines = (args.run_dir / "loss_log.csv").read_text().strip().splitlines()
    report = {
        **mix,
        "steps": args.steps,
        "orientation": args.orientation,
        "denoiser": vars(BUNDLED_DENOISER),
        "sampling_seconds": round(sampled, 1),
        "training_seconds": round(trained, 1),
        "threads": args.threads,
        "last_log_line (step,train,val_ema,val_ema_small_t,lr,s)": log_lines[-1],
        "file": str(args.out),
        "file_bytes": args.out.stat().st_size,
    }
    print(json.dumps(report, indent=1))
    if not args.no_picture:
        from spin_diff.body.model import load_body_model
        from spin_diff.diffusion.model import load_diffusion_prior
        from spin_diff.diffusion.samples import render_pose_grid, sample_poses
        from spin_diff.render import save_png

        prior = load_diffusion_prior(args.out)
        rotmats = sample_poses(prior, 16, seed=args.seed)
        print(f"wrote {save_png(args.picture, render_pose_grid(rotmats, load_body_model(), columns=4, size=200))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
