"""``spin-diff train``: the SPIN loop with the fit store and the diffusion prior in the loop.

Also runs as ``python -m spin_diff.cli.main train ...`` (what torchrun launches).
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

import torch

from spin_diff.cli.common import add_config_arguments, parse_dataset_argument, resolve_config
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.training.config import TrainConfig
from spin_diff.training.run import train

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a regressor the SPIN way: in-loop SMPLify, LMDB best-fit store, resume, torchrun",
        description="Every step the regressor's predictions start an SMPLify fit; the best fit per example "
        "lives in an LMDB store and supervises the regressor. Resumable to the exact batch (--resume); "
        "multi-GPU / multi-node with torchrun.",
    )
    parser.add_argument("--dataset", action="append", default=[], metavar="[NAME=]PATH",
                        help="SPIN-format dataset .npz, optionally with its name in the fit store (default: SPIN's "
                        "name for SPIN's training files, else the file's stem); repeatable, mixed by data.ratios; "
                        "replaces the config's data.datasets")  # fmt: skip
    parser.add_argument("--images", type=Path, action="append", default=[],
                        help="the image folder of each --dataset, in the same order (image models)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, config, logs, fits/")
    parser.add_argument("--cache", type=Path, help="fit store folder (default RUN_DIR/fits); a local disk per node")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN_DIR/last.pt with RUN_DIR/config.yaml (--config/--set/--dataset "
                        "given again override it)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in a run folder that holds a run (its checkpoints and logs are removed, "
                        "its fit store kept)")  # fmt: skip
    parser.add_argument("--pretrained", type=Path, help="start from these weights: SPIN's model_checkpoint.pt or ours")
    parser.add_argument("--backbone-weights", type=Path,
                        help="start the ResNet backbone from a torchvision state dict (.pth), e.g. ImageNet "
                        "weights (SPIN's hmr(pretrained=True)); same as --set model.backbone_weights=FILE")  # fmt: skip
    parser.add_argument("--time-limit", type=float, help="stop (with a checkpoint) after this many seconds")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(parser)
    parser.set_defaults(handler=run_train, config=None)


def _resume_base(args: argparse.Namespace) -> list[Path]:
    """With --resume, the run's saved config is the base that --config and --set override."""
    saved = args.out / "config.yaml"
    if not args.resume:
        return []
    if not saved.is_file():
        raise MissingInputError(
            f"--resume: {args.out} holds no run to continue (no {saved.name}, no checkpoint); start the run "
            "without --resume, or pass the run folder as --out"
        )
    given = [f"--config {args.config}"] * bool(args.config) + [f"--set {o}" for o in args.overrides]
    given += ["--dataset ..."] * bool(args.dataset)
    log.info("resuming with %s%s", saved, f"; given again: {' '.join(given)}" if given else "")
    return [saved]


def run_train(args: argparse.Namespace) -> int:
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    config = resolve_config(args, TrainConfig, base=_resume_base(args))
    if args.backbone_weights is not None:
        config.model.backbone_weights = str(args.backbone_weights)
    if args.images and len(args.images) != len(args.dataset):
        raise BadInputError(
            f"{len(args.images)} --images for {len(args.dataset)} --dataset: give one image folder per dataset, "
            "in the same order (or none for a keypoint model)"
        )
    datasets = None  # the config's data.datasets (on --resume: the run's)
    if args.dataset:
        images = list(args.images) or [None] * len(args.dataset)
        parsed = [parse_dataset_argument(text) for text in args.dataset]
        datasets = [(path, folder, name) for (name, path), folder in zip(parsed, images)]
    report = train(
        config, datasets, args.out, cache=args.cache, pretrained=args.pretrained,
        resume=args.resume, overwrite=args.overwrite, time_limit=args.time_limit, progress=not args.quiet,
    )  # fmt: skip
    summary = report.last_summary
    loss = f", loss {summary['loss']:.4g}" if summary else ""
    print(
        f"stopped ({report.stopped_by}) at step {report.step}, epoch {report.epoch}{loss}, after {report.seconds:.1f} s; "
        f"checkpoint {report.checkpoint}"
    )
    return SIGNAL_EXIT.get(report.stopped_by, 0)


# Stopped by a signal before its end: the shell's codes (128 + signal), so a wrapper can
# tell an interrupted run (resume it) from a finished one; the checkpoint is written either way.
SIGNAL_EXIT = {"SIGTERM": 128 + signal.SIGTERM, "SIGINT": 128 + signal.SIGINT}
