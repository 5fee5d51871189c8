"""``spin-diff prior train`` and ``spin-diff prior sample``: the diffusion pose prior.

``cli/prior.py`` owns the ``prior`` command group; it calls :func:`add_commands` with its
subparsers to add these two.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from spin_diff.body.model import load_body_model
from spin_diff.diffusion.config import DiffusionTrainConfig
from spin_diff.diffusion.model import load_diffusion_prior
from spin_diff.diffusion.samples import render_pose_grid, sample_poses
from spin_diff.diffusion.training import read_training_poses, train_diffusion_prior
from spin_diff.errors import BadInputError
from spin_diff.fitting.conditioning import conditioning_record, feature_training_pairs
from spin_diff.geometry.rotations import matrix_to_axis_angle
from spin_diff.models.checkpoints import load_regressor
from spin_diff.render import save_png
from spin_diff.utils.configs import load_config


def add_commands(prior_subparsers) -> None:
    """Add ``train`` and ``sample`` to the ``prior`` command group."""
    train = prior_subparsers.add_parser(
        "train",
        help="train a diffusion pose prior from pose files",
        description="Train a diffusion pose prior. Writes config.yaml, loss_log.csv, last.pt (resumable) "
        "and prior.pt (EMA weights; use it with --set fitting.diffusion.checkpoint=DIR/prior.pt).",
    )
    train.add_argument(
        "--poses", type=Path, action="append", required=True,
        help="npz with 'pose' (N, 72; sample-poses output or a SPIN dataset with has_smpl) or 'poses' "
        "(N, >= 72; AMASS); repeatable",
    )  # fmt: skip
    train.add_argument("--out", type=Path, required=True, help="run folder")
    train.add_argument("--config", type=Path, help="YAML training config (keys of DiffusionTrainConfig)")
    train.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a training config value, e.g. --set steps=20000 --set model.orientation=camera",
    )  # fmt: skip
    train.add_argument(
        "--features-from", type=Path, metavar="CKPT",
        help="train a conditional prior (ScoreHMR): each --poses file must be a SPIN-format npz (pose + keypoints, "
        "as 'spin-diff synth' writes) and every pose is paired with the features this regressor checkpoint "
        "computes from that example's keypoints (or crops, with --images); the prior records the regressor",
    )  # fmt: skip
    train.add_argument("--images", type=Path, help="with --features-from an image regressor: the crops' image folder")
    train.add_argument("--body-model", help="body model the regressor was trained for (default: the bundled free model)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=run_train)

    sample = prior_subparsers.add_parser("sample", help="draw poses from a diffusion prior and render them as a grid")
    sample.add_argument("--n", type=int, default=16, help="number of poses")
    sample.add_argument("--out", type=Path, required=True, help="output folder: samples.png, samples.npz")
    sample.add_argument("--checkpoint", type=Path, help="prior checkpoint (default: the bundled prior)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--ddim-step", type=int, default=20, help="DDIM stride from t = T-1 (default 20: 50 steps)")
    sample.add_argument("--columns", type=int, default=4, help="poses per row (each shown front and side)")
    sample.add_argument("--size", type=int, default=200, help="tile side in pixels")
    sample.add_argument("--body-model", help="body model to show the poses on (default: the bundled free model)")
    sample.set_defaults(handler=run_sample)


def run_train(args: argparse.Namespace) -> int:
    config = load_config(DiffusionTrainConfig, args.config, args.overrides)
    if config.steps < 1 or config.batch_size < 1:
        raise BadInputError("steps and batch_size must be positive")
    cond = conditioning = None
    if args.features_from is not None:
        poses, cond, conditioning = _feature_pairs(args, config)
    else:
        poses = np.concatenate([read_training_poses(path) for path in args.poses])
    if len(poses) < 2:
        raise BadInputError(f"{', '.join(map(str, args.poses))}: {len(poses)} usable poses; need at least 2")
    path = train_diffusion_prior(
        poses, config, args.out, resume=args.resume, cond=cond, conditioning=conditioning, progress=not args.quiet
    )  # fmt: skip
    what = f" with the features of {args.features_from} ({cond.shape[1]} per pose)" if cond is not None else ""
    print(f"trained on {len(poses)} poses{what} for {config.steps} steps; prior: {path}")
    print(f"use it with: spin-diff fit ... --set fitting.diffusion.checkpoint={path}")
    return 0


def _feature_pairs(args: argparse.Namespace, config):
    """(poses, features, record) for ``--features-from``; sets the config for paired data."""
    if args.images is not None and not args.images.is_dir():
        raise BadInputError(f"--images folder not found: {args.images}")
    regressor = load_regressor(args.features_from, load_body_model(args.body_model))
    record = conditioning_record(regressor, args.features_from)
    cond_dim = config.model.denoiser.cond_dim
    if cond_dim not in (0, record["feature_dim"]):
        raise BadInputError(
            f"--set model.denoiser.cond_dim={cond_dim}, but {args.features_from} gives {record['feature_dim']} "
            "features; leave cond_dim unset (it is taken from the regressor)"
        )
    config.model.denoiser.cond_dim = record["feature_dim"]
    # each pose comes with the features of its own view: no random camera turns the pose away from them
    if config.pose_frame != "camera" or config.tilt_degrees:
        logging.getLogger(__name__).info("--features-from: poses are used in their camera frame, untilted")
    config.pose_frame, config.tilt_degrees = "camera", 0.0
    poses, features = feature_training_pairs(args.poses, regressor, args.images, batch_size=config.batch_size)
    return poses, features, record


def run_sample(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise BadInputError(f"--n must be a positive number of poses, got {args.n}")
    if args.ddim_step < 1 or args.columns < 1 or args.size < 32:
        raise BadInputError("--ddim-step and --columns must be >= 1 and --size >= 32")
    prior = load_diffusion_prior(args.checkpoint)
    rotmats = sample_poses(prior, args.n, seed=args.seed, step=args.ddim_step)
    args.out.mkdir(parents=True, exist_ok=True)
    pose = matrix_to_axis_angle(rotmats).reshape(args.n, 72).numpy()
    np.savez(args.out / "samples.npz", pose=pose)
    picture = save_png(
        args.out / "samples.png", render_pose_grid(rotmats, load_body_model(args.body_model), args.columns, args.size)
    )
    print(f"wrote {picture} and {args.out / 'samples.npz'} ({args.n} poses from {prior.source})")
    return 0
