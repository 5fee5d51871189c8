"""``spin-diff detect``: 2D keypoints of everyone in images (BlazePose), written as OpenPose JSON;
``--setup`` fetches the detector's model files once (from PyPI's mediapipe wheel)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spin_diff.apps.detect_photos import detect_images
from spin_diff.detect import BlazePose, fetch_models
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.utils.threads import set_threads


def add_parser(subparsers) -> None:
    detect = subparsers.add_parser("detect", help="2D keypoints of people in images (offline BlazePose)")
    detect.add_argument("images", type=Path, nargs="?", help="an image or a folder of images")
    detect.add_argument("--out", type=Path, help="output folder for <stem>_keypoints.json")
    detect.add_argument(
        "--setup", action="store_true",
        help="fetch the model files (mediapipe 0.10.21's wheel from PyPI, model files only) and exit",
    )  # fmt: skip
    detect.add_argument("--wheel", type=Path, help="with --setup: a downloaded mediapipe-0.10.21 wheel instead of PyPI")
    detect.add_argument("--overwrite", action="store_true", help="replace existing keypoint files in --out")
    detect.add_argument("--threads", type=int, default=0, help="CPU threads (default 0: the idle cores)")
    detect.set_defaults(handler=run_detect)


def run_detect(args: argparse.Namespace) -> int:
    if args.setup:
        print(f"detector model files in {fetch_models(wheel=args.wheel)}")
        return 0
    if args.images is None or args.out is None:
        raise BadInputError("spin-diff detect needs IMAGES and --out (or --setup to fetch the model files)")
    if not args.images.exists():
        raise MissingInputError(f"images not found: {args.images}")
    threads = set_threads(args.threads)
    report = detect_images(args.images, args.out, BlazePose(threads=threads), overwrite=args.overwrite)
    for note in report.notes:
        print(note)
    for name, reason in report.failed:
        print(f"FAILED {name}: {reason}")
    print(f"{len(report.fitted)} people found, {len(report.failed)} images failed; keypoints in {args.out}")
    return 0 if report.ok else 1
