"""``spin-diff synth``: render a synthetic SPIN-format dataset with exact ground truth."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spin_diff.body.model import load_body_from_config
from spin_diff.cli.common import add_config_arguments, resolve_config
from spin_diff.data.corruption import CORRUPTION_PRESETS, CorruptionConfig
from spin_diff.data.keypoint_sets import make_problems, write_keypoint_dataset
from spin_diff.data.real_poses import load_real_poses
from spin_diff.data.spin_npz import read_spin_npz
from spin_diff.data.synth import SynthConfig, generate_dataset
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.fitting.config import Config
from spin_diff.priors.pose_files import read_smpl_poses
from spin_diff.priors.pose_sampler import POSTURES
from spin_diff.utils.configs import save_config
from spin_diff.utils.outputs import prepare_output


@dataclass
class SynthCommandConfig(Config):
    """The shared config plus a ``synth`` section (``--set synth.num_images=8``)."""

    synth: SynthConfig = field(default_factory=SynthConfig)


def add_parser(subparsers) -> None:
    synth = subparsers.add_parser(
        "synth",
        help="render a synthetic SPIN-format dataset (images, npz, OpenPose JSON)",
        description="Render people with sampled poses, shapes and cameras over procedural "
        "backgrounds; write images/, masks/, keypoints/ (OpenPose JSON) and a SPIN-format npz. "
        "Options below override the synth section of --config / --set.",
    )
    add_config_arguments(synth)
    synth.add_argument("--out", type=Path, required=True, help="output folder")
    synth.add_argument("--n", type=int, help="number of images (default 100)")
    synth.add_argument("--seed", type=int, help="random seed (default 0); same seed, same files")
    synth.add_argument("--name", help="npz file name without .npz (default synth)")
    synth.add_argument("--image-size", help="WIDTHxHEIGHT or one number for a square (default 320)")
    synth.add_argument(
        "--focal",
        choices=("spin", "realistic"),
        help="spin: crop camera exactly SPIN's (default); realistic: fixed focal = image diagonal",
    )
    synth.add_argument(
        "--corrupt",
        choices=sorted(CORRUPTION_PRESETS),
        help="detector-like keypoint corruption preset (default detector); replaces synth.corruption",
    )
    synth.add_argument("--postures", help="comma-separated pose sampler postures (default all)")
    synth.add_argument("--no-masks", action="store_true", help="do not write masks/")
    synth.add_argument("--overwrite", action="store_true",
                       help="replace an earlier synth set in --out (its images/, masks/, keypoints/, npz and config)")  # fmt: skip
    synth.add_argument(
        "--keypoints-only", action="store_true",
        help="no images: 2D keypoints in SPIN's 224 crop (crop camera) and the truth, one npz (what "
        "keypoint regressors train and are evaluated on; benchmarks/train_study.py's data)",
    )  # fmt: skip
    synth.add_argument(
        "--poses",
        help="with --keypoints-only: where the bodies' poses come from: sampler (default), cmu-val, "
        "cmu-test (bundled held-out CMU mocap clips) or an npz with 'pose' (N, 72), y-up world "
        "(e.g. spin-diff prior import-mocap output)",
    )
    synth.add_argument("--hide-truth", action="store_true",
                       help="with --keypoints-only: leave out the 3D truth (2D-only, like SPIN's in-the-wild sets)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(handler=run_synth)


def parse_image_size(text: str) -> tuple[int, int]:
    """``"320"`` -> (320, 320); ``"320x240"`` -> (320, 240) as (width, height)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 16:
        raise BadInputError(f"--image-size must be WIDTHxHEIGHT or one size, each >= 16 pixels, got {text!r}")
    return values[0], values[1]


def _apply_arguments(config: SynthConfig, args: argparse.Namespace) -> SynthConfig:
    if args.n is not None:
        config.num_images = args.n
    if args.seed is not None:
        config.seed = args.seed
    if args.name is not None:
        config.name = args.name
    if args.image_size is not None:
        config.image_size = parse_image_size(args.image_size)
    if args.focal is not None:
        config.focal = args.focal
    if args.corrupt is not None:
        config.corruption = CorruptionConfig.preset(args.corrupt)
    if args.postures is not None:
        config.postures = tuple(p.strip() for p in args.postures.split(",") if p.strip())
    if args.no_masks:
        config.save_masks = False
    return config


def run_synth(args: argparse.Namespace) -> int:
    config = resolve_config(args, cls=SynthCommandConfig)
    synth = _apply_arguments(config.synth, args)
    synth.validate()
    unknown = sorted(set(synth.postures or ()) - set(POSTURES))
    if unknown or (synth.postures is not None and not synth.postures):
        raise BadInputError(f"--postures: unknown {unknown or '(none given)'}; choose from {', '.join(POSTURES)}")
    if not args.keypoints_only and (args.poses is not None or args.hide_truth):
        raise BadInputError("--poses and --hide-truth need --keypoints-only (the renderer draws its own poses)")
    poses = _read_poses(args.poses) if args.keypoints_only else None
    # An earlier set's images beside a new npz would be mistaken for it: its outputs are
    # replaced as a whole (--overwrite) or refused, before anything is drawn.
    outputs = [f"{synth.name}.npz"] + ([] if args.keypoints_only else ["images", "masks", "keypoints", "config.yaml"])
    prepare_output(args.out, outputs, replace=args.overwrite, what="synth sets")
    model = load_body_from_config(config)
    if args.keypoints_only:
        return _keypoints_only(synth, args, model, poses)
    start = time.perf_counter()
    path = generate_dataset(synth, args.out, body_model=model, progress=not args.quiet)
    elapsed = time.perf_counter() - start
    save_config(config, args.out / "config.yaml")

    data = read_spin_npz(path)
    clean = np.concatenate([data["openpose"][..., 2], data["part"][..., 2]], axis=1)
    detected = np.concatenate([data["openpose_detected"][..., 2], data["part_detected"][..., 2]], axis=1)
    width, height = synth.image_size
    print(f"wrote {len(data['imgname'])} images ({width}x{height}) to {args.out} in {elapsed:.1f} s")
    print(f"  annotations: {path}")
    masks = f"; masks: {args.out / 'masks'}" if synth.save_masks else ""
    print(f"  OpenPose JSON: {args.out / 'keypoints'}{masks}")
    print(
        f"  camera: focal={synth.focal}, focal length {data['focal_length'].min():.0f}-"
        f"{data['focal_length'].max():.0f} px, depth {data['transl'][:, 2].min():.1f}-"
        f"{data['transl'][:, 2].max():.1f} m, box side {200 * data['scale'].min():.0f}-"
        f"{200 * data['scale'].max():.0f} px"
    )
    mean_confidence = float(detected[detected > 0].mean()) if np.any(detected > 0) else 0.0
    print(
        f"  keypoints inside the image: {100 * clean.mean():.1f}%; detected: "
        f"{100 * (detected > 0).mean():.1f}% (mean confidence {mean_confidence:.2f})"
    )
    postures, counts = np.unique(data["posture"], return_counts=True)
    print("  postures: " + ", ".join(f"{p} {c}" for p, c in zip(postures, counts)))
    return 0


def _read_poses(source: str | None):
    """(N, 72) poses for ``--poses``: None for the pose sampler."""
    if source in (None, "sampler"):
        return None
    if source in ("cmu-val", "cmu-test"):
        return load_real_poses(source.split("-")[1])
    if not Path(source).is_file():
        raise MissingInputError(f"--poses {source}: not sampler, cmu-val or cmu-test, and no such file")
    return read_smpl_poses(source)


def _keypoints_only(synth: SynthConfig, args: argparse.Namespace, model, poses) -> int:
    """``--keypoints-only``: fitting problems written as one SPIN-format npz, no images."""
    count = synth.num_images
    start = time.perf_counter()
    problems = make_problems(model, count, seed=synth.seed, corruption=synth.corruption, poses=poses)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = write_keypoint_dataset(problems, Path(args.out) / f"{synth.name}.npz", with_ground_truth=not args.hide_truth)
    truth = "without 3D truth" if args.hide_truth else "with pose, shape, S and camera"
    print(f"wrote {count} people's keypoints ({truth}) to {path} in {time.perf_counter() - start:.1f} s; "
          f"poses: {args.poses or 'sampler'}; SPIN's crop camera (focal 5000, 224 px)")  # fmt: skip
    return 0
