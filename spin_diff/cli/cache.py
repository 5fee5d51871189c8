"""``spin-diff cache``: build, inspect, export, import, merge, verify and salvage LMDB fit caches."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spin_diff.body.files import body_model_hash, body_model_label
from spin_diff.body.model import load_body_from_config
from spin_diff.cache.builder import build_fits, check_init
from spin_diff.cache.header import dataset_identity
from spin_diff.cache.records import check_dataset_name
from spin_diff.cache.repair import salvage_store, verify_store
from spin_diff.cache.stats import cache_stats, format_stats
from spin_diff.cache.store import FitStore
from spin_diff.cache.transfer import (
    export_npz,
    export_spin_fits,
    import_npz,
    import_spin_fits,
    merge_stores,
    read_spin_fits,
)
from spin_diff.cli.common import (
    add_config_arguments,
    parse_dataset_argument,
    regressor_recipe,
    resolve_config,
    run_command,
)
from spin_diff.data.spin_npz import (
    SpinDataError,
    dataset_fingerprint,
    dataset_keypoints,
    dataset_name,
    read_spin_npz,
)
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.fitting.initialisation import default_init, prior_for_start
from spin_diff.fitting.smplify import SMPLify
from spin_diff.utils.hashing import config_hash, file_sha256
from spin_diff.utils.ranks import shard_from_environment
from spin_diff.utils.outputs import check_output_file, replace_atomically

DEFAULT_CACHE = Path("fits_cache")


def add_parser(subparsers) -> None:
    cache = subparsers.add_parser(
        "cache",
        help="the best-fit dictionary (LMDB fit cache): build, stats, export, import, merge, verify, salvage",
        description="SPIN's best fit per training example, in an LMDB store that many processes "
        "share, that survives crashes, and that records where each fit came from.",
    )
    _add_subcommands(cache.add_subparsers(dest="cache_command", required=True, metavar="COMMAND"))


def _add_subcommands(sub) -> None:
    build = sub.add_parser(
        "build",
        help="fit every example of a SPIN-format dataset into a cache (resumable; torchrun shards it)",
        description="Batched SMPLify over a SPIN-format dataset, written batch by batch (one transaction "
        "each) through update-if-better. A rerun skips examples already fitted under the same config. "
        "Under torchrun each rank fits examples rank::world_size into the same store. Across machines, "
        "build one store per node and combine them with `spin-diff cache merge`.",
    )
    build.add_argument("--dataset", type=Path, required=True, help="SPIN-format dataset .npz")
    build.add_argument(
        "--name", help="dataset name in the cache's keys (default: SPIN's name for SPIN's training files, else "
        "the npz file's stem, as train names it); a cache refuses a dataset of other content under a name it holds",
    )  # fmt: skip
    build.add_argument(
        "--images", type=Path, help="image folder; only used by --init CKPT (the regressor reads crops)"
    )
    build.add_argument(
        "--init",
        help="regressor (the bundled keypoint regressor; the default, except for a body model it "
        "was not trained for, where the mean pose is), mean (SPIN's mean pose), stored "
        "(the cache's record, else the dataset's SMPL where has_smpl, else the mean) or a regressor "
        "checkpoint (its prediction starts the fits; an image regressor needs --images)",
    )  # fmt: skip
    build.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache folder (default fits_cache/)")
    build.add_argument(
        "--refit", action="store_true", help="fit again examples already fitted under this config"
    )
    build.add_argument("--limit", type=int, help="only the first N examples of the dataset")
    build.add_argument(
        "--batch-size", type=int, default=64, help="examples per fit and per write (default 64)"
    )
    build.add_argument(
        "--gt-from-dataset", action="store_true",
        help="store the dataset's SMPL (has_smpl == 1) as ground truth, never replaced by fits, "
        "and do not fit those",
    )  # fmt: skip
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(build)
    build.set_defaults(handler=run_build)

    stats = sub.add_parser("stats", help="counts per dataset and source, score histogram, coverage")
    stats.add_argument(
        "cache", type=Path, nargs="?", default=DEFAULT_CACHE, help="cache folder (default fits_cache/)"
    )
    stats.add_argument(
        "--data", action="append", default=[], metavar="[NAME=]DATA.npz",
        help="a dataset whose coverage to report (name: as train names it unless given); repeatable",
    )  # fmt: skip
    stats.set_defaults(handler=run_stats)

    export = sub.add_parser("export", help="write the records to an .npz (with their provenance)")
    export.add_argument(
        "cache", type=Path, nargs="?", default=DEFAULT_CACHE, help="cache folder (default fits_cache/)"
    )
    export.add_argument("--out", type=Path, required=True, help="output .npz (--format npz) or .npy (--format spin)")
    export.add_argument("--dataset", help="only this dataset (required with --format spin)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    export.add_argument(
        "--format", choices=("npz", "spin"), default="npz",
        help="npz: every record with its provenance (for `cache import`); spin: SPIN's static fits, "
             "one (N, 82) .npy of pose + betas per example, NaN where none (for SPIN's data/static_fits/)",
    )  # fmt: skip
    export.add_argument(
        "--data", type=Path,
        help="with --format spin: the dataset's SPIN npz, whose example count sets N (default: last record + 1)",
    )  # fmt: skip
    export.set_defaults(handler=run_export)

    imp = sub.add_parser("import", help="import an .npz written by `cache export` (better records win)")
    imp.add_argument("fits", type=Path, help="an export .npz")
    imp.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache folder (default fits_cache/)")
    imp.set_defaults(handler=run_import)

    spin = sub.add_parser(
        "import-spin",
        help="import SPIN's static fits (N x 82 .npy) of a dataset, scored against its keypoints",
        description="Rows of SPIN's static fits file are the examples of one dataset, in order. Each fit "
        "is scored against that dataset's keypoints (--data) and written by update-if-better; a file "
        "whose row count differs from the dataset's is refused.",
    )
    spin.add_argument("fits", type=Path, help="SPIN static fits .npy, shape (N, 82)")
    spin.add_argument("--dataset", help="dataset name in the cache's keys (default: SPIN's name for SPIN's "
                      "training files, else the --data file's stem; what train names the dataset)")
    spin.add_argument(
        "--data", type=Path, required=True,
        help="the dataset's SPIN-format .npz: which examples exist, and their keypoints to score the fits",
    )  # fmt: skip
    spin.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache folder (default fits_cache/)")
    add_config_arguments(spin)
    spin.set_defaults(handler=run_import_spin)

    verify = sub.add_parser(
        "verify",
        help="check a cache for damage (every record read and checked, in a child process)",
        description="Reads the header, every key and every record, and begins (and abandons) a write "
        "transaction, in a child process, so that damage which makes LMDB abort is reported instead of "
        "crashing. Exit status 0 when the store is intact, 1 when it is damaged.",
    )
    verify.add_argument(
        "cache", type=Path, nargs="?", default=DEFAULT_CACHE, help="cache folder (default fits_cache/)"
    )
    verify.set_defaults(handler=run_verify)

    salvage = sub.add_parser(
        "salvage",
        help="copy every record that still reads from a damaged cache into a new one",
        description="Reads SRC's data.mdb page by page without LMDB, keeps the best copy of every record "
        "found, and writes them into the new store DEST by update-if-better. SRC is only read.",
    )
    salvage.add_argument("source", type=Path, help="the damaged cache folder (SRC)")
    salvage.add_argument("destination", type=Path, help="a new cache folder (DEST)")
    salvage.set_defaults(handler=run_salvage)

    merge = sub.add_parser(
        "merge",
        help="merge caches into one, keeping the better record per example (per-node stores)",
    )
    merge.add_argument("destination", type=Path, help="cache to merge into (created if missing)")
    merge.add_argument("sources", type=Path, nargs="+", help="caches to merge from")
    merge.set_defaults(handler=run_merge)


# ---------------------------------------------------------------- handlers
def _open_writable_for(model, cache: Path):
    return FitStore.open_or_create(cache, body_model_hash(model), body_model_label(model))


def run_build(args: argparse.Namespace) -> int:
    if not args.dataset.is_file():
        raise MissingInputError(f"--dataset not found: {args.dataset}")
    init = check_init(args.init) if args.init is not None else None
    if args.images is not None:
        if not args.images.is_dir():
            raise MissingInputError(f"--images folder not found: {args.images}")
        logging.getLogger(__name__).info(
            "--images is only used by an image regressor's --init; fitting uses the keypoints"
        )
    if args.batch_size < 1:
        raise BadInputError("--batch-size must be at least 1")
    if args.limit is not None and args.limit < 0:
        raise BadInputError("--limit must be >= 0")
    config = resolve_config(args, base=regressor_recipe(init not in ("mean", "stored")))
    data = read_spin_npz(args.dataset, require=("center", "scale"))
    dataset_keypoints(data, config.fitting.crop_size, args.dataset)  # a dataset without usable keypoints fails here, before any store exists
    name = args.name or dataset_name(args.dataset)
    rank, world_size = shard_from_environment()
    model = load_body_from_config(config)
    if init is None:  # the bundled regressor, or the mean pose for another body model
        init = default_init(model)
        if init == "mean":  # the mean pose takes the library's default fitting, not the regressor recipe
            config = resolve_config(args)
    prior_for_start(config.fitting, init)
    fitter = SMPLify(model, config.fitting)
    store = _open_writable_for(model, args.cache)
    report = build_fits(
        store, data, name, fitter, init=init, refit=args.refit, limit=args.limit,
        batch_size=args.batch_size, rank=rank, world_size=world_size,
        gt_from_dataset=args.gt_from_dataset, progress=not args.quiet and rank == 0, images=args.images,
        data_file=args.dataset.resolve(),
    )  # fmt: skip
    print(report.summary())
    print(f"cache: {args.cache}")
    return 1 if report.failed else 0


def _dataset_size(path: Path) -> int:
    data = read_spin_npz(path, require=())
    for key in ("center", "imgname", "scale"):
        if key in data:
            return int(data[key].shape[0])
    return int(next(iter(data.values())).shape[0])


def run_stats(args: argparse.Namespace) -> int:
    sizes = {}
    for text in args.data:
        name, path = parse_dataset_argument(text)
        if not path.is_file():
            raise MissingInputError(f"--data not found: {path}")
        sizes[name or dataset_name(path)] = _dataset_size(path)
    store = FitStore.open(args.cache, readonly=True)
    print(format_stats(cache_stats(store, sizes)))
    return 0


def run_export(args: argparse.Namespace) -> int:
    check_output_file(args.out, overwrite=args.overwrite, suffixes=(".npy",) if args.format == "spin" else (".npz",))
    store = FitStore.open(args.cache, readonly=True)
    if args.dataset is not None and args.dataset not in store.datasets():
        raise BadInputError(
            f"{args.cache} has no records of dataset {args.dataset!r}; it has {store.datasets()}"
        )
    if args.format == "spin":
        if args.dataset is None:
            raise BadInputError("--format spin writes one dataset's fits: pass --dataset NAME")
        rows = None
        if args.data is not None:
            if not args.data.is_file():
                raise MissingInputError(f"--data not found: {args.data}")
            rows = len(read_spin_npz(args.data)["imgname"])
        with replace_atomically(args.out) as partial:  # a full disk leaves no partial file
            count, filled = export_spin_fits(store, partial, args.dataset, rows)
        print(f"exported {filled} fits of {count} examples of {args.dataset} from {args.cache} to {args.out} "
              f"(SPIN's static fits; {count - filled} rows NaN)")  # fmt: skip
        return 0
    with replace_atomically(args.out) as partial:
        count = export_npz(store, partial, args.dataset)
    print(f"exported {count} records from {args.cache} to {args.out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    report = import_npz(args.fits, args.cache)
    print(f"{args.fits} -> {args.cache}: {report.summary()}")
    return 0


def run_import_spin(args: argparse.Namespace) -> int:
    args.dataset = check_dataset_name(args.dataset or dataset_name(args.data))
    fits = read_spin_fits(args.fits)
    if not args.data.is_file():
        raise MissingInputError(f"--data not found: {args.data}")
    config = resolve_config(args)
    model = load_body_from_config(config)
    description = {
        "kind": "static-import",
        "file": args.fits.name,
        "sha256": file_sha256(args.fits),
        "body_model_sha256": body_model_hash(model),
    }

    data = read_spin_npz(args.data, require=("center", "scale"))
    keypoints = dataset_keypoints(data, config.fitting.crop_size, args.data)
    if keypoints.shape[0] != fits.shape[0]:
        raise SpinDataError(
            f"{args.fits} has {fits.shape[0]} rows but {args.data} has {keypoints.shape[0]} examples; SPIN's "
            "static fits hold one row per example of their dataset, in order: pass the matching dataset"
        )
    fitter = SMPLify(model, config.fitting)
    store = _open_writable_for(model, args.cache)
    store.claim_datasets({args.dataset: dataset_identity(dataset_fingerprint(data), args.data.resolve(), len(fits))})
    hash_value = config_hash(description)
    store.register_config(hash_value, description)
    report = import_spin_fits(store, fits, args.dataset, hash_value, keypoints=keypoints, fitter=fitter)
    print(f"{args.fits} -> {args.cache} dataset {args.dataset}, scored against {args.data}: {report.summary()}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    if not (args.cache / "data.mdb").is_file():
        raise MissingInputError(f"no fit cache at {args.cache} (no data.mdb there)")
    report = verify_store(args.cache)
    print(report.summary())
    if not report.ok:
        print(f"rescue its records with: spin-diff cache salvage {args.cache} NEW_CACHE")
    return 0 if report.ok else 1


def run_salvage(args: argparse.Namespace) -> int:
    print(salvage_store(args.source, args.destination).summary())
    return 0


def run_merge(args: argparse.Namespace) -> int:
    report = merge_stores(args.destination, args.sources)
    print(f"merged {len(args.sources)} cache(s) into {args.destination}: {report.summary()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m spin_diff.cli.cache COMMAND ...``: the same as ``spin-diff cache COMMAND ...``."""
    parser = argparse.ArgumentParser(prog="spin-diff")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run_command(parser, ["cache", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
