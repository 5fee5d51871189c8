"""``spin-diff fit``: fit SMPL to the people in images from their OpenPose keypoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from spin_diff.cli.common import add_config_arguments, load_body_from_config, resolve_config


def add_parser(subparsers) -> None:
    fit = subparsers.add_parser("fit", help="fit SMPL to people in images (OpenPose BODY_25 JSON)")
    fit.add_argument("images", type=Path, help="an image or a folder of images")
    fit.add_argument(
        "--keypoints", type=Path, required=True,
        help="OpenPose JSON file, or a folder with <image stem>_keypoints.json per image",
    )  # fmt: skip
    fit.add_argument("--out", type=Path, required=True, help="output folder")
    fit.add_argument("--bbox", help="x1,y1,x2,y2 person box in pixels (default: from the keypoints)")
    fit.add_argument(
        "--init", default="mean",
        help="where fits start: mean (SPIN's mean pose, default), regressor (the bundled keypoint "
        "regressor) or a regressor checkpoint (SPIN's model_checkpoint.pt or spin-diff's; an image "
        "regressor reads the crops, a keypoint regressor the keypoints)",
    )  # fmt: skip
    fit.add_argument("--checkpoint", help="the same as --init CKPT")
    fit.add_argument("--batch-size", type=int, default=32)
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(fit)
    fit.set_defaults(handler=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    from spin_diff.config import save_config
    from spin_diff.fitting.images import fit_images
    from spin_diff.fitting.initialisation import resolve_init
    from spin_diff.fitting.smplify import SMPLify

    init = args.checkpoint if args.checkpoint is not None else args.init
    if not args.images.exists():
        raise FileNotFoundError(f"images not found: {args.images}")
    if not args.keypoints.exists():
        raise FileNotFoundError(f"--keypoints not found: {args.keypoints}")
    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    config = resolve_config(args)
    model = load_body_from_config(config)
    regressor = resolve_init(init, model, images_available=True, device=config.device)
    fitter = SMPLify(model, config.fitting)
    args.out.mkdir(parents=True, exist_ok=True)
    save_config(config, args.out / "config.yaml")
    report = fit_images(
        args.images, args.keypoints, args.out, model, fitter,
        bbox=args.bbox, batch_size=args.batch_size, progress=not args.quiet, regressor=regressor, init=init,
    )  # fmt: skip
    for name, reason in report.failed:
        print(f"FAILED {name}: {reason}")
    print(f"fitted {len(report.fitted)} people, {len(report.failed)} failed; results in {args.out}")
    return 0 if report.ok else 1
