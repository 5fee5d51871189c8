"""``spin-diff export-checkpoint``: a regressor checkpoint in SPIN's layout, or back in ours."""

from __future__ import annotations

import argparse
from pathlib import Path

from spin_diff.body.model import load_body_from_config
from spin_diff.cli.common import add_config_arguments, resolve_config
from spin_diff.models.checkpoints import EXPORT_FORMATS, export_checkpoint


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-checkpoint",
        help="convert a regressor checkpoint: ours -> SPIN's HMR layout (--format spin) or SPIN's -> ours",
        description="--format spin writes {'model': HMR state dict} that SPIN's models/hmr.py loads with "
        "strict=True (image regressors only); --format spin_diff reads SPIN's model_checkpoint.pt and "
        "writes our checkpoint (config, input kind, body-model hash of --body-model).",
    )
    parser.add_argument("checkpoint", type=Path, help="SPIN's model_checkpoint.pt or a spin_diff checkpoint")
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="the layout to write")
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_config_arguments(parser)
    parser.set_defaults(handler=run_export_checkpoint)


def run_export_checkpoint(args: argparse.Namespace) -> int:
    body = None
    if args.format == "spin_diff":  # our checkpoints record the body model the regressor is for
        body = load_body_from_config(resolve_config(args))
    out = export_checkpoint(args.checkpoint, args.out, args.format, body, overwrite=args.overwrite)
    print(f"wrote {out} ({args.format} layout)")
    return 0
