"""``spin-diff demo``: the whole mission on the built-in defaults, nothing downloaded
(:mod:`spin_diff.apps.demo` does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spin_diff.apps import demo as demo_app
from spin_diff.cli.common import add_config_arguments, resolve_config
from spin_diff.errors import BadInputError
from spin_diff.training.config import TrainConfig


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the whole mission in a few minutes on a CPU: synthesise, fit cache, SPIN loop, eval, fit photos",
        description="Synthesise people -> the keypoint-regressor start -> the fit cache built offline from it -> "
        "SPIN's loop for a short run -> spin-diff eval with refinement rows on held-out people -> fit photos from "
        "the trained regressor; prints a summary and writes pictures. All data is synthetic.",
    )
    add_config_arguments(demo)
    demo.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    demo.add_argument("--quick", action="store_true", help="the smallest run that shows every step (tests, CI)")
    demo.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise BadInputError("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    args.config = demo_app.demo_config_path(args.config)
    config = resolve_config(args, TrainConfig)
    demo_app.run_demo(args.out, config, size="quick" if args.quick else "full", progress=not args.quiet)
    # every step ran; photo fits the quality check did not accept are printed and flagged in
    # their params.json, as spin-diff fit does, and are part of what the demo shows
    return 0
