"""``spin-diff prior``: sample plausible poses, fit GMM pose priors (SMPLify's gmm_08.pkl format)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from spin_diff.body.model import load_body_model
from spin_diff.cli.prior_diffusion import add_commands as add_diffusion_commands
from spin_diff.data.mocap.importer import ImportConfig, import_mocap, split_pose_set
from spin_diff.data.mocap.retarget import RetargetConfig
from spin_diff.errors import BadInputError
from spin_diff.priors.em import fit_gmm, gmm_log_likelihood
from spin_diff.priors.gmm import write_gmm_file
from spin_diff.priors.pose_files import read_body_poses
from spin_diff.priors.pose_sampler import POSTURES, sample_poses


def add_parser(subparsers) -> None:
    prior = subparsers.add_parser("prior", help="pose sampler and GMM pose priors")
    commands = prior.add_subparsers(dest="prior_command", required=True)

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

    mocap = commands.add_parser(
        "import-mocap",
        help="motion capture (ASF/AMC, BVH, AMASS-style npz) to SMPL poses of the body model, with splits",
    )
    mocap.add_argument("inputs", nargs="+", help="mocap files or folders (searched recursively)")
    mocap.add_argument("--out", type=Path, required=True, help="output .npz (all poses); splits go beside it")
    mocap.add_argument("--split-by", choices=["clip", "subject", "none"], default="clip")
    mocap.add_argument("--val", type=float, default=0.15, help="share of poses held out for validation")
    mocap.add_argument("--test", type=float, default=0.15, help="share of poses held out for testing")
    mocap.add_argument("--val-units", default="", help="clips/subjects forced into validation (comma-separated)")
    mocap.add_argument("--test-units", default="", help="clips/subjects forced into test (comma-separated)")
    mocap.add_argument("--min-motion", type=float, default=0.05,
                       help="metres some joint must move before another frame is kept (near-duplicates dropped)")
    mocap.add_argument("--max-direction-error", type=float, default=10.0,
                       help="drop frames whose retargeted bone directions are off by more (degrees, mean)")
    mocap.add_argument("--iterations", type=int, default=300, help="retargeting Adam iterations")
    mocap.add_argument("--seed", type=int, default=0)
    mocap.add_argument("--threads", type=int, default=1)
    mocap.add_argument("--body-model", help="body model to retarget to (default: the bundled one)")
    mocap.set_defaults(handler=run_import_mocap)


def run_sample_poses(args: argparse.Namespace) -> int:
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
    if args.components < 1:
        raise BadInputError(f"--components must be >= 1, got {args.components}")
    poses = read_body_poses(args.poses, drop_non_finite=True)
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


def run_import_mocap(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    model = load_body_model(args.body_model)
    config = ImportConfig(min_motion_m=args.min_motion, max_direction_error_deg=args.max_direction_error,
                          retarget=RetargetConfig(iterations=args.iterations))  # fmt: skip
    poses = import_mocap(args.inputs, model, config)
    if len(poses) == 0:
        raise ValueError(f"no poses survived the import of {', '.join(args.inputs)} (see the log for each file)")
    written = [poses.save(args.out)]
    if args.split_by != "none":
        listed = lambda text: [u.strip() for u in text.split(",") if u.strip()]  # noqa: E731
        splits = split_pose_set(poses, args.split_by, args.val, args.test, args.seed,
                                listed(args.val_units), listed(args.test_units))  # fmt: skip
        for name, subset in splits.items():
            written.append(subset.save(args.out.with_name(f"{args.out.stem}_{name}.npz")))
        for name, subset in splits.items():
            units = sorted(set((subset.clip if args.split_by == "clip" else subset.subject).tolist()))
            print(f"{name}: {len(subset)} poses from {len(units)} {args.split_by}s: {', '.join(units)}")
    report = args.out.with_suffix(".json")
    report.write_text(json.dumps(poses.files, indent=1))
    print(f"{len(poses)} poses from {len(poses.files)} files; median retargeting error "
          f"{np.median(poses.direction_error_deg):.2f} deg (bone directions), "
          f"{np.median(poses.position_error_mm):.0f} mm (joint positions, other proportions)")
    print("wrote " + ", ".join(str(p) for p in written + [report]))
    return 0
