"""Moving fits in and out of a store: npz export/import, SPIN's static fits, merging stores.

Every transfer writes through the store's update-if-better rule, so importing or merging
into a store that already has fits keeps the better record of each example and never
replaces ground truth. Records keep their provenance (source, step, time, config hash).
Unscored records (score +inf, e.g. SPIN fits imported without their dataset) only fill
empty slots.

Export format (``np.savez``, one row per record):

==============  ============  ===================================================
key             shape         meaning
==============  ============  ===================================================
dataset         (N,) str      dataset name
index           (N,) int64    example index within the dataset
pose            (N, 72) f4    axis-angle, canonical frame
betas           (N, 10) f4    shape
transl          (N, 3) f4     crop camera (zeros where ``has_transl`` is False)
has_transl      (N,) bool
score           (N,) f4       SPIN's fit score, +inf where not scored
residuals       (N, 49) f4    per-joint reprojection distance (px), NaN where unknown
source          (N,) str      static / offline / in-loop / ground-truth
step            (N,) int64    training step, -1 outside training
time            (N,) f8       when written (seconds since the epoch)
config_hash     (N,) uint64   what made it; see ``configs``
header          () str        the store's header (JSON)
configs         () str        {hash hex: description} (JSON)
datasets        () str        {name: identity} (JSON; absent in older exports)
==============  ============  ===================================================

Dataset identities travel with the records: an import or merge into a store whose name for a
dataset stands for other content is refused before anything is written (see
:mod:`spin_diff.cache.header`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from spin_diff.cache.builder import score_fits
from spin_diff.cache.errors import DatasetIdentityError, ScoreRuleMismatchError
from spin_diff.cache.header import SPIN_SCORE_RULE
from spin_diff.cache.records import NUM_POSE, FitBatch, Source, StoredFits, check_dataset_name
from spin_diff.cache.store import BodyModelMismatchError, FitStore, StoreFormatError
from spin_diff.constants import NUM_BETAS
from spin_diff.errors import BadInputError, MissingInputError

log = logging.getLogger(__name__)

__all__ = [
    "TransferReport",
    "export_npz",
    "read_export",
    "import_npz",
    "merge_stores",
    "read_spin_fits",
    "import_spin_fits",
    "export_spin_fits",
    "write_preserving",
]

EXPORT_KEYS = (
    "dataset", "index", "pose", "betas", "transl", "has_transl", "score", "residuals",
    "source", "step", "time", "config_hash", "header", "configs",
)  # fmt: skip


@dataclass
class TransferReport:
    """Rows read and what became of them."""

    read: int = 0
    written: int = 0  # created or improved
    kept: int = 0  # the store's record was as good or better (or ground truth)
    rejected: int = 0  # non-finite, never written

    def add(self, other: "TransferReport") -> None:
        self.read += other.read
        self.written += other.written
        self.kept += other.kept
        self.rejected += other.rejected

    def summary(self) -> str:
        return (
            f"{self.read} records read: {self.written} written, {self.kept} kept the stored record, "
            f"{self.rejected} rejected (non-finite)"
        )


def write_preserving(store: FitStore, batch: FitBatch) -> TransferReport:
    """Write a batch with its provenance: scored rows by update-if-better, unscored
    (+inf, not ground truth) rows only into empty slots."""
    records = batch.to_records()
    unscored = (records["score"] == np.inf) & (records["source"] != int(Source.GROUND_TRUTH))
    report = TransferReport(read=len(batch))
    if (~unscored).any():
        outcome = store.update_if_better(_rows(batch, ~unscored))
        report.written += int(outcome.written.sum())
        report.rejected += int(outcome.rejected.sum())
        report.kept += int((~outcome.written & ~outcome.rejected).sum())
    if unscored.any():
        subset = _rows(batch, unscored)
        written = store.insert_missing(subset)
        bad = ~FitStore.writable_rows(subset.to_records(), allow_unscored=True)
        report.written += int(written.sum())
        report.rejected += int(bad.sum())
        report.kept += int((~written & ~bad).sum())
    return report


def _rows(batch: FitBatch, mask: np.ndarray) -> FitBatch:
    def pick(value):
        if value is None or isinstance(value, (str, int, float, Source, np.integer, np.floating)):
            return value
        array = np.asarray(value)
        return array[mask] if array.ndim >= 1 else value

    def pick_list(value, single_types):
        return value if isinstance(value, single_types) else [v for v, m in zip(value, mask) if m]

    dataset = pick_list(batch.dataset, str)
    source = pick_list(batch.source, (str, int, Source))
    return FitBatch(
        dataset=dataset, index=pick(batch.index), pose=pick(batch.pose), betas=pick(batch.betas),
        score=pick(batch.score), source=source, transl=pick(batch.transl), residuals=pick(batch.residuals),
        step=pick(batch.step), config_hash=pick(batch.config_hash), time=pick(batch.time),
    )  # fmt: skip


# ---------------------------------------------------------------- npz export / import
def export_npz(store: FitStore, out: str | Path, dataset: str | None = None) -> int:
    """Write every record (of one dataset, or all) to ``out`` (.npz); returns the count."""
    chunks: list[tuple[list[str], np.ndarray, StoredFits]] = list(store.scan(dataset))
    names = [name for chunk in chunks for name in chunk[0]]
    fits = [chunk[2] for chunk in chunks]

    def cat(field: str, empty_shape: tuple, dtype) -> np.ndarray:
        if not fits:
            return np.zeros(empty_shape, dtype=dtype)
        return np.concatenate([getattr(f, field) for f in fits]).astype(dtype, copy=False)

    sources = [label for f in fits for label in f.source_labels()]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "dataset": np.array(names, dtype=str),
        "index": np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.int64),
        "pose": cat("pose", (0, NUM_POSE), np.float32),
        "betas": cat("betas", (0, NUM_BETAS), np.float32),
        "transl": cat("transl", (0, 3), np.float32),
        "has_transl": cat("has_transl", (0,), bool),
        "score": cat("score", (0,), np.float32),
        "residuals": cat("residuals", (0, 49), np.float32),
        "source": np.array(sources, dtype=str),
        "step": cat("step", (0,), np.int64),
        "time": cat("time", (0,), np.float64),
        "config_hash": cat("config_hash", (0,), np.uint64),
        "header": np.array(json.dumps(store.header, sort_keys=True)),
        "configs": np.array(json.dumps({f"{k:016x}": v for k, v in store.configs().items()}, sort_keys=True)),
        "datasets": np.array(json.dumps(store.dataset_identities(), sort_keys=True)),
        "score_rule": np.array(json.dumps(store.score_rule(), sort_keys=True)),
    }
    with out.open("wb") as handle:
        np.savez(handle, **arrays)
    return int(arrays["index"].size)


def read_export(path: str | Path) -> dict[str, np.ndarray]:
    """Read and check a file written by :func:`export_npz`."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"fits file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise BadInputError(
            f"{path}: not an .npz archive; `spin-diff cache import` reads files written by `cache export`"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    except Exception as err:
        raise BadInputError(f"{path}: not a readable .npz file ({err})") from err
    missing = [key for key in EXPORT_KEYS if key not in data]
    if missing:
        raise BadInputError(
            f"{path}: not a fit-cache export (missing keys {missing}); write one with "
            "`spin-diff cache export`. For SPIN's N x 82 static fits use `spin-diff cache import-spin`"
        )
    return data


def import_npz(path: str | Path, cache: str | Path, chunk: int = 8192) -> TransferReport:
    """Import an export into the store at ``cache`` (created with the export's body model if
    missing). Records keep their provenance; the better record of each example wins."""
    data = read_export(path)
    header = json.loads(str(data["header"]))
    store = FitStore.open_or_create(cache, header["body_model_sha256"], header.get("body_model", ""))
    if "datasets" in data:
        store.claim_datasets(json.loads(str(data["datasets"])))  # before any record is written
    # an export made before rules were recorded holds SPIN's scores
    store.claim_score_rule(json.loads(str(data["score_rule"])) if "score_rule" in data else dict(SPIN_SCORE_RULE))
    for key, description in json.loads(str(data["configs"])).items():
        store.register_config(int(key, 16), description)
    report = TransferReport()
    n = data["index"].shape[0]
    for begin in range(0, n, chunk):
        rows = slice(begin, begin + chunk)
        batch = FitBatch(
            dataset=data["dataset"][rows].tolist(),
            index=data["index"][rows],
            pose=data["pose"][rows],
            betas=data["betas"][rows],
            score=data["score"][rows],
            source=data["source"][rows].tolist(),
            transl=np.where(data["has_transl"][rows, None], data["transl"][rows], np.nan),
            residuals=data["residuals"][rows],
            step=data["step"][rows],
            config_hash=data["config_hash"][rows],
            time=data["time"][rows],
        )
        report.add(write_preserving(store, batch))
    return report


# ---------------------------------------------------------------- merging stores
def merge_stores(destination: str | Path, sources: Iterable[str | Path]) -> TransferReport:
    """Merge fit caches into ``destination`` (created if missing), keeping the better record
    of each example: how per-node stores of a multi-machine build are combined.

    Every source is opened and checked before anything is written. A new destination is
    built in a sibling folder and renamed into place when the merge is complete, so a merge
    that fails leaves no half-made store behind; an existing one only gains better records,
    one committed batch at a time."""
    destination = Path(destination)
    opened = [(Path(path), FitStore.open(path, readonly=True)) for path in sources]
    if not opened:
        raise BadInputError("cache merge needs at least one source store")
    for path, _ in opened:
        if path.resolve() == destination.resolve():
            raise StoreFormatError(f"cannot merge {path} into itself")
    first = opened[0][1].header
    for path, source in opened:
        if source.header["body_model_sha256"] != first["body_model_sha256"]:
            raise BodyModelMismatchError(
                f"{path} holds fits of another body model ({source.header.get('body_model')}) than "
                f"{opened[0][0]} ({first.get('body_model')}); stores of different body models cannot merge"
            )
    rules = [(path, source.score_rule()) for path, source in opened]
    for path, rule in rules[1:]:
        if rule != rules[0][1]:
            raise ScoreRuleMismatchError(
                f"{path} holds fits scored under keep rule {rule}, {rules[0][0]} under {rules[0][1]}; scores of two "
                "rules cannot be compared, so they cannot merge. Nothing was written"
            )
    identities: dict[str, dict] = {}
    for path, source in opened:
        for name, identity in source.dataset_identities().items():
            known = identities.setdefault(name, identity)
            if known.get("fingerprint") != identity.get("fingerprint"):
                raise DatasetIdentityError(
                    f"{path} and another source hold records of two different datasets named {name!r} "
                    f"({known.get('file')} and {identity.get('file')}); merging would mix their fits. Nothing "
                    "was written: merge them into separate caches"
                )
    new = not (destination / "data.mdb").is_file()
    if new and destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise StoreFormatError(
            f"{destination} exists but is not a fit cache (no data.mdb in it); merge into a new folder or an existing cache"
        )
    target = destination.with_name(f".{destination.name}.merging-{os.getpid()}") if new else destination
    store = FitStore.open_or_create(target, first["body_model_sha256"], first.get("body_model", ""))
    report = TransferReport()
    try:
        if store.header["body_model_sha256"] != first["body_model_sha256"]:
            raise BodyModelMismatchError(
                f"{opened[0][0]} holds fits of another body model ({first.get('body_model')}) than "
                f"{destination} ({store.header.get('body_model')}); stores of different body models cannot merge"
            )
        store.claim_datasets(identities)  # before any record is written
        store.claim_score_rule(rules[0][1])
        for path, source in opened:
            for key, description in source.configs().items():
                store.register_config(key, description)
            for names, indices, fits in source.scan():
                report.add(write_preserving(store, FitBatch.from_stored(names, indices, fits)))
        store.close()
        if new:
            os.replace(target, destination)  # an empty destination folder is replaced too
    except BaseException:
        store.close()
        if new:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return report


# ---------------------------------------------------------------- SPIN's static fits
def read_spin_fits(path: str | Path) -> np.ndarray:
    """SPIN's static fits file: ``(N, 82)`` = 72 axis-angle pose + 10 betas per example."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"SPIN fits file not found: {path}")
    try:
        fits = np.load(path, allow_pickle=False)
    except Exception as err:
        raise BadInputError(f"{path}: not a readable .npy file ({err})") from err
    if isinstance(fits, np.lib.npyio.NpzFile):
        keys = list(fits.keys())
        fits.close()
        raise BadInputError(
            f"{path} is an .npz archive (arrays {keys}); SPIN's static fits are one .npy array of shape "
            "(N, 82), e.g. data/static_fits/<dataset>_fits.npy. To import a `cache export` .npz, use "
            "`spin-diff cache import`"
        )
    if fits.ndim != 2 or fits.shape[1] != NUM_POSE + NUM_BETAS:
        raise BadInputError(
            f"{path} has shape {fits.shape}; SPIN's static fits are (N, 82): 72 pose + 10 betas per example"
        )
    return np.asarray(fits, dtype=np.float64)


def import_spin_fits(
    store: FitStore,
    fits: np.ndarray,
    dataset: str,
    config_hash: int,
    *,
    keypoints: np.ndarray | None = None,
    fitter=None,
    chunk: int = 1024,
) -> TransferReport:
    """Import SPIN's ``(N, 82)`` static fits of ``dataset`` (row i = example i).

    With ``keypoints`` (the dataset's ``(N, 49, 3)`` crop keypoints) and a ``fitter``, each
    fit is scored as SPIN scores a stored fit and written by update-if-better. Without them
    the fits are unscored (+inf) and only fill examples that have no record yet.
    """
    check_dataset_name(dataset)
    store.claim_score_rule(dict(SPIN_SCORE_RULE))  # scored as SPIN scores a stored fit (or unscored)
    n = fits.shape[0]
    if keypoints is not None and keypoints.shape[0] != n:
        raise BadInputError(
            f"the fits file has {n} rows but the dataset has {keypoints.shape[0]} examples; "
            "SPIN's static fits hold one row per dataset example, in order"
        )
    report = TransferReport()
    for begin in range(0, n, chunk):
        rows = np.arange(begin, min(begin + chunk, n))
        pose, betas = fits[rows, :NUM_POSE], fits[rows, NUM_POSE:]
        transl = residuals = None
        score = np.full(rows.size, np.inf)
        if keypoints is not None:
            finite = np.isfinite(fits[rows]).all(1)
            score, transl, residuals = score_fits(
                fitter, np.nan_to_num(pose), np.nan_to_num(betas), keypoints[rows]
            )
            score = np.where(finite, score, np.nan)  # non-finite fits stay refused
        batch = FitBatch(dataset, rows, pose, betas, score, source=Source.STATIC, transl=transl,
                         residuals=residuals, config_hash=config_hash)  # fmt: skip
        report.add(write_preserving(store, batch))
    return report


def export_spin_fits(store: FitStore, out: str | Path, dataset: str, rows: int | None = None) -> tuple[int, int]:
    """Write ``dataset``'s records as SPIN's static fits: one ``(N, 82)`` float32 ``.npy``,
    row i = example i = 72 axis-angle pose + 10 betas (the canonical frame, as SPIN's).

    ``rows`` is the dataset's example count (default: the highest stored index + 1); an
    example without a record is a row of NaN, which ``import-spin`` refuses rather than
    imports. Written atomically. Returns (rows written, rows with a fit).
    """
    check_dataset_name(dataset)
    chunks = list(store.scan(dataset))
    index = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.int64)
    count = int(index.max()) + 1 if rows is None and index.size else int(rows or 0)
    if index.size and int(index.max()) >= count:
        raise BadInputError(
            f"dataset {dataset!r} has a record of example {int(index.max())} but --data gives {count} examples: "
            "pass the dataset the store was built from"
        )
    fits = np.full((count, NUM_POSE + NUM_BETAS), np.nan, dtype=np.float32)
    for _, rows_of_chunk, stored in chunks:
        fits[rows_of_chunk, :NUM_POSE] = stored.pose
        fits[rows_of_chunk, NUM_POSE:] = stored.betas[:, :NUM_BETAS]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("wb") as handle:  # a file object: np.save would append .npy to a path
        np.save(handle, fits)
    os.replace(partial, out)
    return count, int(index.size)

