"""Offline building of a fit cache: batched SMPLify over a SPIN-format dataset.

:func:`build_fits` fits every example of a dataset (or of this process's shard of it) in
its canonical crop frame and writes each batch through
:meth:`~spin_diff.cache.store.FitStore.update_if_better`, so that

* a run killed at any point keeps every batch committed before, and a rerun skips the
  examples already fitted under the same config hash (``refit=True`` redoes them);
* several processes can build into one store at once: with ``torchrun``, each rank takes
  the examples ``indices[rank::world_size]`` (from ``RANK``/``WORLD_SIZE``; no process
  group is needed) and LMDB serialises their writes. Across machines, build one store per
  node and combine them with :func:`spin_diff.cache.transfer.merge_stores`
  (``spin-diff cache merge``), which keeps the better record of each example.

Examples whose fit fails (too few confident joints, divergence) are not written and are
tried again by the next run; so are examples whose new fit did not beat a stored record
made under another config.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from spin_diff.body.files import body_model_hash
from spin_diff.body.model import pose_to_rotmat
from spin_diff.cache.header import SPIN_SCORE_RULE, dataset_identity
from spin_diff.cache.provenance import describe_fitting
from spin_diff.cache.records import FitBatch, Source, check_dataset_name
from spin_diff.cache.store import FitStore
from spin_diff.constants import NUM_BETAS
from spin_diff.data.crops import load_crops
from spin_diff.data.spin_npz import dataset_fingerprint, dataset_keypoints, smpl_ground_truth
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.fitting.conditioning import check_fitter_regressor
from spin_diff.fitting.initialisation import regressor_start, resolve_init
from spin_diff.geometry.cameras import perspective_projection
from spin_diff.utils.configs import ConfigError
from spin_diff.utils.hashing import config_hash
from spin_diff.utils.seeds import example_seeds

log = logging.getLogger(__name__)

__all__ = [
    "BuildReport",
    "score_fits",
    "fit_config_hash",
    "build_fits",
]

INIT_CHOICES = ("mean", "stored")


@dataclass
class BuildReport:
    """What one :func:`build_fits` call did (for its shard)."""

    dataset: str
    examples: int = 0  # in this shard, after the limit
    skipped: int = 0  # already fitted under this config, or ground truth
    attempted: int = 0  # fits run
    written: int = 0  # records created or improved
    improved: int = 0  # of those, replacing an older record
    kept: int = 0  # fitted, but the stored record was as good or better
    failed: int = 0
    failure_reasons: Counter = field(default_factory=Counter)
    ground_truth: int = 0  # ground-truth records written
    ground_truth_not_finite: int = 0  # rows marked as ground truth whose SMPL is NaN or inf: fitted instead
    score_sum: float = 0.0
    scored: int = 0
    seconds: float = 0.0
    rank: int = 0
    world_size: int = 1
    config_hash: int = 0

    @property
    def fitted(self) -> int:
        """Fits that succeeded (written or kept)."""
        return self.written + self.kept

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.scored if self.scored else float("nan")

    def summary(self) -> str:
        shard = f" (rank {self.rank} of {self.world_size})" if self.world_size > 1 else ""
        rate = self.attempted / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{self.dataset}{shard}: {self.examples} examples; {self.skipped} already fitted under config "
            f"{self.config_hash:016x} or ground truth, {self.attempted} fitted in {self.seconds:.1f} s "
            f"({rate:.1f} fits/s)",
            f"  fitted {self.fitted}: {self.written} written ({self.improved} improved an older record), "
            f"{self.kept} kept the stored record; mean score {self.mean_score:.2f}",
        ]
        if self.ground_truth:
            lines.append(f"  ground truth written: {self.ground_truth}")
        if self.ground_truth_not_finite:
            lines.append(
                f"  ground truth NaN or inf in the dataset: {self.ground_truth_not_finite} rows, not stored as "
                "ground truth and fitted instead (fix those rows of the dataset to store their SMPL)"
            )
        lines.append(f"  failed {self.failed}" + (":" if self.failed else ""))
        for reason, count in self.failure_reasons.most_common():
            lines.append(f"    {count} x {reason}")
        return "\n".join(lines)


def score_fits(fitter, pose, betas, keypoints, transl=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPIN's score of given parameters: ``(score (B,), transl (B, 3), residuals (B, 49))``.

    Without ``transl`` the camera is the least-squares one (as SPIN scores a stored fit).
    Residuals are reprojection distances in crop pixels, NaN where the confidence is 0.
    """
    device, dtype = fitter.device, fitter.dtype
    keypoints = torch.as_tensor(keypoints, dtype=dtype, device=device)
    pose = torch.as_tensor(pose, dtype=dtype, device=device)
    betas = torch.as_tensor(betas, dtype=dtype, device=device)
    if transl is not None:
        transl = torch.as_tensor(transl, dtype=dtype, device=device)
    score, _, transl = fitter.score(pose, betas, keypoints, transl)
    with torch.no_grad():
        joints = fitter.body.joints(pose, betas).joints
        centre = torch.full_like(transl[:, :2], fitter.config.crop_size / 2)
        projected = perspective_projection(joints, transl, fitter.config.focal_length, centre)
        residuals = (projected - keypoints[..., :2]).norm(dim=-1)
    return score.cpu().numpy(), transl.cpu().numpy(), _mask_residuals(residuals.cpu().numpy(), keypoints)


def _mask_residuals(residuals: np.ndarray, keypoints) -> np.ndarray:
    conf = np.asarray(keypoints[..., 2].detach().cpu() if hasattr(keypoints, "detach") else keypoints[..., 2])
    return np.where(conf > 0, residuals, np.nan)


def fit_config_hash(fitter) -> tuple[int, dict]:
    """``(hash, description)`` of fits made by ``fitter`` (its config and body model)."""
    description = describe_fitting(fitter.config, body_model_hash(fitter.body), getattr(fitter, "input_files", None))
    return config_hash(description), description


def _initial_parameters(fitter, init: str, rows: np.ndarray, data: dict, stored):
    """Initial pose (B, 24, 3, 3) or (B, 72), betas (B, num_betas), translation (B, 3) or None."""
    body = fitter.body
    batch = rows.shape[0]
    dtype, device = fitter.dtype, fitter.device
    rotmats = body.mean_pose_rotmat(batch).clone()
    betas = torch.zeros(batch, body.num_betas, dtype=dtype, device=device)
    if init == "mean":
        return rotmats, betas, None
    # init == "stored": the cache's record, else the dataset's own SMPL, else the mean
    def tensor(array):
        return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)

    def shape_tensor(array):  # stored/dataset betas (10) to the model's count
        value = tensor(array)[:, : body.num_betas]
        return torch.nn.functional.pad(value, (0, body.num_betas - value.shape[1]))

    has_smpl = smpl_ground_truth(data, rows)[0]  # the dataset's own SMPL (SPIN's rule without has_smpl)
    if has_smpl.any():
        mask = torch.as_tensor(has_smpl, device=device)
        rotmats[mask] = pose_to_rotmat(tensor(np.asarray(data["pose"])[rows][has_smpl]))
        betas[mask] = shape_tensor(np.asarray(data["shape"])[rows][has_smpl])
    found = stored.found
    if found.any():
        mask = torch.as_tensor(found, device=device)
        rotmats[mask] = pose_to_rotmat(tensor(stored.pose[found]))
        betas[mask] = shape_tensor(stored.betas[found])
    # A stored camera only helps if every row has one; otherwise all rows get SMPLify's estimate.
    transl = None
    if found.all() and stored.has_transl.all():
        transl = torch.as_tensor(stored.transl, dtype=dtype, device=device)
    return rotmats, betas, transl


def check_init(init: str) -> str:
    """Validate ``--init``: 'mean', 'stored', 'regressor' (the bundled keypoint regressor) or a
    regressor checkpoint file."""
    if init in INIT_CHOICES or init == "regressor":
        return init
    if not os.path.exists(init):
        raise MissingInputError(
            f"--init {init!r}: not 'mean', 'stored' or 'regressor', and no checkpoint file there"
        )
    return init


def _regressor_parameters(regressor, rows, keypoints, data, images, fitter):
    """The regressor's prediction for ``rows``: pose (B, 24, 3, 3), betas, translation, features."""
    if regressor.input_kind == "image":
        paths = [images / str(name) for name in np.asarray(data["imgname"])[rows]]
        inputs = load_crops(paths, data["center"][rows], data["scale"][rows], fitter.config.crop_size)
    else:
        inputs = torch.as_tensor(keypoints[rows], dtype=torch.float32)
    start = regressor_start(regressor, inputs, fitter.body.num_betas)
    to = {"dtype": fitter.dtype, "device": fitter.device}
    return start.rotmat.to(**to), start.betas.to(**to), start.transl.to(**to), start.features


def _load_init_regressor(init: str, data: dict, fitter, images):
    """The regressor named by ``--init`` (None for mean/stored); image regressors need every
    row's image under ``images``."""
    if init in INIT_CHOICES:
        return None

    regressor = resolve_init(init, fitter.body, images_available=images is not None, device=fitter.device)
    if regressor.input_kind == "image":
        if "imgname" not in data:
            raise BadInputError(f"--init {init} is an image regressor, but the dataset has no 'imgname' key")
        missing = [str(n) for n in np.asarray(data["imgname"]) if not (images / str(n)).is_file()]
        if missing:
            raise MissingInputError(
                f"--init {init} reads crops, but {len(missing)} image(s) are not under --images {images} "
                f"(first: {missing[:3]}); pass the folder the dataset's imgname paths are relative to"
            )
    return regressor


def build_fits(
    store: FitStore,
    data: dict,
    name: str,
    fitter,
    *,
    init: str = "mean",
    refit: bool = False,
    limit: int | None = None,
    batch_size: int = 64,
    rank: int = 0,
    world_size: int = 1,
    gt_from_dataset: bool = False,
    progress: bool = True,
    images=None,
    data_file=None,
) -> BuildReport:
    """Fit the examples of ``data`` (this rank's shard) and write them into ``store``.

    Args:
        store: a writable :class:`FitStore` (of ``fitter``'s body model).
        data: a SPIN-format dataset (:func:`~spin_diff.data.spin_npz.read_spin_npz`).
        name: the dataset's name in the store's keys.
        fitter: a :class:`~spin_diff.fitting.smplify.SMPLify`.
        init: ``"mean"`` (SPIN's mean pose, zero betas), ``"stored"`` (the cache's record,
            else the dataset's own SMPL where ``has_smpl``, else the mean), ``"regressor"``
            (the bundled keypoint regressor) or a regressor checkpoint path (its prediction,
            camera included, starts the fits).
        refit: fit again examples already fitted under this config.
        limit: only the first ``limit`` examples of the dataset.
        batch_size: examples per fit and per write transaction.
        rank, world_size: this process's shard, ``indices[rank::world_size]``.
        gt_from_dataset: write the dataset's SMPL parameters (``has_smpl`` == 1) as
            ground-truth records (scored, never replaced by fits) and do not fit those.
        progress: show a tqdm bar with fits/s and the running mean score.
        images: folder the dataset's ``imgname`` paths are relative to (image regressors).
        data_file: the file ``data`` was read from, recorded with the dataset's identity (a
            store refuses a dataset of another content under ``name``; see
            :mod:`spin_diff.cache.header`).
    """
    check_dataset_name(name)
    init = check_init(init)
    if batch_size < 1:
        raise BadInputError("batch size must be at least 1")
    if limit is not None and limit < 0:
        raise BadInputError("--limit must be >= 0")
    if fitter.body.num_betas > NUM_BETAS:
        raise ConfigError(
            f"the fit cache stores {NUM_BETAS} shape coefficients, but body.num_betas is "
            f"{fitter.body.num_betas}: build with --set body.num_betas={NUM_BETAS} (or fewer)"
        )
    keypoints = dataset_keypoints(data, fitter.config.crop_size)
    regressor = _load_init_regressor(init, data, fitter, images)
    if regressor is not None:  # a conditional diffusion prior reads its features: the right regressor?

        check_fitter_regressor(fitter, regressor)
    total = keypoints.shape[0]
    indices = np.arange(total if limit is None else min(limit, total), dtype=np.int64)[rank::world_size]
    identity = dataset_identity(dataset_fingerprint(data), data_file or "a dataset given in memory", total)
    store.claim_datasets({name: identity})  # before anything is written
    store.claim_score_rule(dict(SPIN_SCORE_RULE))  # the builder keeps SPIN's best reprojection
    our_hash, description = fit_config_hash(fitter)
    store.register_config(our_hash, description)
    report = BuildReport(
        dataset=name, examples=int(indices.size), rank=rank, world_size=world_size, config_hash=our_hash
    )
    start = time.perf_counter()

    existing = store.get_many(name, indices)
    is_gt = existing.source == int(Source.GROUND_TRUTH)
    done = existing.found & (is_gt | ((existing.config_hash == np.uint64(our_hash)) & (not refit)))

    if gt_from_dataset:
        done |= _write_ground_truth(store, data, name, fitter, indices, keypoints, done, report, batch_size)

    todo = indices[~done]
    report.skipped = int(indices.size - todo.size) - report.ground_truth
    log.info(
        "%s: %d examples in this shard, %d to fit (config %016x)", name, indices.size, todo.size, our_hash
    )
    bar = tqdm(
        total=int(todo.size), unit="fit", disable=not progress, desc=f"fitting {name}", dynamic_ncols=True
    )
    try:
        for begin in range(0, todo.size, batch_size):
            rows = todo[begin : begin + batch_size]
            stored = store.get_many(name, rows) if init == "stored" else None
            features = None  # a conditional diffusion prior's input (the regressor's features)
            if regressor is not None:
                init_pose, init_betas, init_transl, features = _regressor_parameters(
                    regressor, rows, keypoints, data, images, fitter
                )
            else:
                init_pose, init_betas, init_transl = _initial_parameters(fitter, init, rows, data, stored)
            batch_kp = torch.as_tensor(keypoints[rows], dtype=fitter.dtype, device=fitter.device)
            # noise keyed by the example, so a fit is the same at any --batch-size, shard or row
            seeds = example_seeds(name, rows, device=fitter.device)
            result = fitter.fit(batch_kp, init_pose, init_betas, init_transl, sample_seeds=seeds, condition=features)
            ok = result.success.cpu().numpy()
            report.attempted += int(rows.size)
            for reason in result.failure:
                if reason is not None:
                    report.failure_reasons[reason] += 1
            if ok.any():
                residuals = _mask_residuals(result.joint_residuals.detach().cpu().numpy(), batch_kp)
                batch = FitBatch(
                    dataset=name,
                    index=rows[ok],
                    pose=result.pose.detach().cpu().numpy()[ok],
                    betas=result.betas.detach().cpu().numpy()[ok],
                    score=result.score.detach().cpu().numpy()[ok],
                    source=Source.OFFLINE,
                    transl=result.transl.detach().cpu().numpy()[ok],
                    residuals=residuals[ok],
                    config_hash=our_hash,
                )
                outcome = store.update_if_better(batch)
                report.written += int(outcome.written.sum())
                report.improved += int(outcome.improved.sum())
                report.kept += int((~outcome.written & ~outcome.rejected).sum())
                rejected = int(outcome.rejected.sum())
                if rejected:
                    report.failure_reasons["non-finite fit (NaN or inf)"] += rejected
                scores = batch.score[~outcome.rejected]
                report.score_sum += float(np.sum(scores))
                report.scored += int(scores.size)
            report.failed = sum(report.failure_reasons.values())
            bar.set_postfix(mean_score=f"{report.mean_score:.1f}", refresh=False)
            bar.update(int(rows.size))  # the bar's rate is fits/s
    finally:
        bar.close()
    report.seconds = time.perf_counter() - start
    return report


def _write_ground_truth(
    store, data, name, fitter, indices, keypoints, done, report, batch_size
) -> np.ndarray:
    """Write the dataset's own SMPL parameters as ground truth; return the rows now covered."""
    missing = [key for key in ("pose", "shape") if key not in data]
    if missing:
        raise BadInputError(f"--gt-from-dataset: the dataset has no {missing} (SPIN's ground-truth SMPL keys)")
    has_smpl, rule = smpl_ground_truth(data, indices)
    log.info("%s: %d of %d examples have ground-truth SMPL (%s)", name, int(has_smpl.sum()), indices.size, rule)
    flagged = np.asarray(data["has_smpl"])[indices] > 0.5 if "has_smpl" in data else np.ones(indices.size, bool)
    report.ground_truth_not_finite = int((flagged & ~has_smpl & ~done).sum())  # fitted instead, and said so
    covered = has_smpl.copy()
    rows = indices[has_smpl & ~done]
    description = {"kind": "ground-truth", "dataset": name, "body_model_sha256": body_model_hash(fitter.body)}
    gt_hash = config_hash(description)
    store.register_config(gt_hash, description)
    for begin in range(0, rows.size, max(batch_size, 256)):
        chunk = rows[begin : begin + max(batch_size, 256)]
        pose = np.asarray(data["pose"], dtype=np.float32)[chunk]
        betas = np.asarray(data["shape"], dtype=np.float32)[chunk]
        score, transl, residuals = score_fits(fitter, pose, betas, keypoints[chunk])
        outcome = store.update_if_better(
            FitBatch(name, chunk, pose, betas, score, source=Source.GROUND_TRUTH, transl=transl,
                     residuals=residuals, config_hash=gt_hash)
        )  # fmt: skip
        report.ground_truth += int(outcome.written.sum())
    return covered
