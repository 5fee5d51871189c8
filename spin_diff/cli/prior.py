"""``spin-diff prior``: sample plausible poses, fit GMM pose priors (SMPLify's gmm_08.pkl format)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from spin_diff.errors import BadInputError


def add_parser(subparsers) -> None:
    prior = subparsers.add_parser("prior", help="pose sampler and GMM pose priors")
    commands = prior.add_subparsers(dest="prior_command", required=True)
    from spin_diff.cli.prior_diffusion import add_commands as add_diffusion_commands

    add_diffusion_commands(commands)

    sample = commands.add_parser("sample-poses", help="draw plausible SMPL body poses to an .npz")
    sample.add_argument("--n", type=int, required=True, help="number of poses")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--postures", help="comma-separated postures to draw from (default: all)")
    sample.add_argument("--out", type=Path, required=True, help="output .npz: pose (N, 72), posture (N,)")
    sample.set_defaults(handler=run_sample_poses)

    fit = commands.add_parser("fit-gmm", help="fit a Gaussian-mixture pose prior (gmm_08.pkl format)")
    fit.add_argument(
        "--poses",
        type=Path,
        required=True,
        help="npz with 'pose' (N, 72; sample-poses output or a SPIN dataset with has_smpl) "
        "or 'poses' (N, >= 72; AMASS)",
    )
    fit.add_argument("--components", type=int, default=8)
    fit.add_argument("--iterations", type=int, default=200, help="most EM iterations")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", type=Path, required=True, help="output .pkl")
    fit.set_defaults(handler=run_fit_gmm)


def run_sample_poses(args: argparse.Namespace) -> int:
    from spin_diff.priors.pose_sampler import POSTURES, sample_poses

    if args.n < 1:
        raise BadInputError(f"--n must be a positive number of poses, got {args.n}")
    postures = None
    if args.postures:
        postures = [p.strip() for p in args.postures.split(",") if p.strip()]
        unknown = [p for p in postures if p not in POSTURES]
        if unknown:
            raise BadInputError(f"--postures: unknown {unknown}; choose from {', '.join(POSTURES)}")
    body, names = sample_poses(args.n, np.random.default_rng(args.seed), postures)
    pose = np.concatenate([np.zeros((args.n, 3)), body], axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, pose=pose, posture=np.array(names))
    counts = ", ".join(f"{p} {names.count(p)}" for p in dict.fromkeys(names))
    print(f"wrote {args.out} ({args.n} poses: {counts})")
    return 0


def run_fit_gmm(args: argparse.Namespace) -> int:
    from spin_diff.priors.em import fit_gmm, gmm_log_likelihood
    from spin_diff.priors.gmm import write_gmm_file
    from spin_diff.priors.pose_files import read_body_poses

    if args.components < 1:
        raise BadInputError(f"--components must be >= 1, got {args.components}")
    poses = read_body_poses(args.poses)
    needed = 10 * args.components
    if len(poses) < needed:
        raise BadInputError(
            f"{args.poses}: {len(poses)} usable poses, but {args.components} components need at least "
            f"{needed}; give more poses or fewer --components"
        )
    params = fit_gmm(poses, components=args.components, iterations=args.iterations, seed=args.seed)
    path = write_gmm_file(args.out, params)
    log_likelihood = float(gmm_log_likelihood(poses, params).mean())
    weights = ", ".join(f"{w:.3f}" for w in params.weights)
    print(f"wrote {path} ({len(poses)} poses, {args.components} components)")
    print(f"mean log-likelihood {log_likelihood:.2f}; component weights {weights}")
    return 0
