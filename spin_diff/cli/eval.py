"""``spin-diff eval``: SPIN's evaluation protocols for a regressor checkpoint or the mean pose,
with test-time refinement rows."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spin_diff.body.model import load_body_from_config, load_body_model
from spin_diff.cli.common import add_config_arguments, regressor_recipe, resolve_config
from spin_diff.fitting.initialisation import prior_for_start
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.evaluation.protocols import load_eval_set
from spin_diff.evaluation.refine import parse_refinements
from spin_diff.evaluation.run import (
    check_predictions_path,
    evaluate,
    format_table,
    write_predictions,
    write_results,
)
from spin_diff.models.checkpoints import load_regressor
from spin_diff.utils.configs import save_config
from spin_diff.utils.outputs import prepare_output


def add_parser(subparsers) -> None:
    ev = subparsers.add_parser(
        "eval",
        help="MPJPE / PA-MPJPE / PVE of a regressor on SPIN's evaluation files or synthetic sets",
        description="SPIN's protocols: 14 LSP joints (17 on MPI-INF-3DHP) through the body model's H36M "
        "regressor, pelvis-centred; PVE where ground-truth SMPL exists. --refine adds test-time fitting "
        "rows from the dataset's 2D keypoints (regressor, + SMPLify, + SMPLify with the diffusion term, "
        "+ guided refinement) with the share of samples each makes worse / better by more than 1 mm.",
    )
    start = ev.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "--checkpoint", help="regressor checkpoint (SPIN's model_checkpoint.pt or spin-diff's)"
    )
    start.add_argument("--init", choices=["mean"], help="evaluate the mean pose (no regressor)")
    ev.add_argument(
        "--dataset", type=Path, required=True, help="evaluation .npz (SPIN's files or spin-diff synth)"
    )
    ev.add_argument(
        "--protocol", choices=["h36m-p1", "h36m-p2", "3dpw", "mpi-inf-3dhp", "lsp", "smpl"],
        help="default: from the file name (h36m_valid_protocol1, 3dpw_test, ...) or its keys",
    )  # fmt: skip
    ev.add_argument(
        "--images", type=Path, help="folder the dataset's imgname paths are relative to (image regressors)"
    )
    ev.add_argument(
        "--refine", default="none",
        help="comma-separated test-time rows: none, smplify, term, guided (default: none)",
    )  # fmt: skip
    ev.add_argument(
        "--gendered-models",
        help="folder (or SMPL folder) with the male and female models, for 3DPW's ground truth",
    )
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--limit", type=int, help="only the first N samples")
    ev.add_argument("--out", type=Path, help="output folder for per_sample.csv and summary.json")
    ev.add_argument(
        "--save-predictions", type=Path, metavar="FILE",
        help="also write every sample's predictions to FILE (.npz, SPIN's --result_file keys: pose, betas, "
        "camera, pred_joints; plus transl, spin_joints, index, imgname)",
    )  # fmt: skip
    ev.add_argument("--overwrite", action="store_true",
                    help="replace an existing --save-predictions file, and earlier results in --out")  # fmt: skip
    ev.add_argument("--threads", type=int, help="torch CPU threads")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(ev)
    ev.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise BadInputError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if args.limit is not None and args.limit < 1:
        raise BadInputError("--limit must be at least 1")
    if args.images is not None and not args.images.is_dir():
        raise MissingInputError(f"--images folder not found: {args.images}")
    rows = parse_refinements(args.refine)
    if args.save_predictions is not None:
        check_predictions_path(args.save_predictions, args.overwrite)
    if args.out is not None:  # checked before the evaluation runs, not after
        prepare_output(args.out, ["per_sample.csv", "summary.json", "config.yaml"], replace=args.overwrite,
                       what="evaluation results")  # fmt: skip
    config = resolve_config(args, base=regressor_recipe(args.checkpoint is not None))
    prior_for_start(config.fitting, args.checkpoint)
    evalset = load_eval_set(args.dataset, args.protocol)
    body = load_body_from_config(config)
    regressor = None
    if args.checkpoint is not None:
        regressor = load_regressor(args.checkpoint, body, device=config.device)
    gendered = _gendered_models(args.gendered_models, config) if args.gendered_models else None
    result = evaluate(
        evalset, body, regressor=regressor, source=args.checkpoint or "mean", rows=rows,
        fitting=config.fitting, gendered=gendered, images=args.images, batch_size=args.batch_size,
        limit=args.limit, progress=not args.quiet, keep_predictions=args.save_predictions is not None,
    )  # fmt: skip
    print(format_table(result))
    if args.out is not None:
        csv_path, json_path = write_results(result, args.out)
        save_config(config, args.out / "config.yaml")
        print(f"per-sample errors: {csv_path}\nsummary: {json_path}")
    if args.save_predictions is not None:
        print(f"predictions: {write_predictions(result, args.save_predictions)}")
    return 0


def _gendered_models(path: str, config):
    return tuple(
        load_body_model(
            path,
            gender,
            num_betas=config.body.num_betas,
            device=config.device,
            j_regressor_extra=config.body.j_regressor_extra,
            j_regressor_h36m=config.body.j_regressor_h36m,
        )
        for gender in ("male", "female")
    )
