"""Process bodies for the multi-process fit-cache tests (imported by spawned children, so
this module loads numpy and the store only, never torch)."""

from __future__ import annotations

import time

import numpy as np

from spin_diff.cache.records import FitBatch, Source
from spin_diff.cache.store import FitStore

DATASET = "shared"
NUM_KEYS = 64
GT_KEYS = (3, 17, 40)


def batch_of(index, score, value, source=Source.IN_LOOP, step=-1) -> FitBatch:
    """Rows whose every parameter equals ``value`` (so a torn record would show)."""
    index = np.asarray(index, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    return FitBatch(
        dataset=DATASET,
        index=index,
        pose=np.repeat(value[:, None], 72, 1),
        betas=np.repeat(value[:, None], 10, 1),
        score=np.asarray(score, dtype=np.float64),
        source=source,
        transl=np.repeat(value[:, None], 3, 1),
        residuals=np.repeat(np.abs(value[:, None]), 49, 1),
        step=np.asarray(step, dtype=np.int64),
    )


def writer_attempts(seed: int, batches: int, batch_size: int = 24) -> list[FitBatch]:
    """The batches one concurrent writer tries: random examples and scores (the payload is
    the score, so a stored record says which attempt made it), some NaN scores, some NaN
    poses with a winning score, and attempts on ground-truth examples with a winning score."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        index = rng.choice(NUM_KEYS, batch_size, replace=False)
        score = np.round(rng.uniform(1.0, 100.0, batch_size), 3)
        value = score.copy()
        nan_score = rng.random(batch_size) < 0.1
        score[nan_score] = np.nan
        batch = batch_of(index, score, value)
        bad_pose = rng.random(batch_size) < 0.1
        batch.score = np.where(bad_pose, 0.001, batch.score)  # would win if it were written
        batch.pose[bad_pose, 5] = np.nan
        gt = np.isin(index, GT_KEYS)
        batch.score = np.where(gt, 0.0001, batch.score)  # beats everything, but GT is protected
        out.append(batch)
    return out


def run_writer(path: str, seed: int, batches: int, queue) -> None:
    store = FitStore(path)
    written = 0
    for batch in writer_attempts(seed, batches):
        written += int(store.update_if_better(batch).written.sum())
    queue.put(written)


def run_versions_writer(path: str, versions: int, filler_per_version: int) -> None:
    """Write version v to every example of DATASET (all fields = v, score falling so each
    version replaces the last), plus new records of a filler dataset so the map must grow."""
    store = FitStore(path)
    keys = np.arange(NUM_KEYS)
    for v in range(1, versions + 1):
        version = batch_of(keys, np.full(NUM_KEYS, 1e6 - v), np.full(NUM_KEYS, float(v)), step=v)
        store.update_if_better(version)
        filler = FitBatch(
            dataset="filler",
            index=np.arange((v - 1) * filler_per_version, v * filler_per_version),
            pose=np.zeros((filler_per_version, 72)),
            betas=np.zeros((filler_per_version, 10)),
            score=np.ones(filler_per_version),
            source=Source.OFFLINE,
        )
        store.update_if_better(filler)
        time.sleep(0.002)


def run_reader(path: str, final_version: int, timeout: float, queue) -> None:
    """Read every example of DATASET in one get_many until the final version shows; report
    reads, versions seen and any inconsistency (torn record, mixed batch, going back)."""
    store = FitStore(path, readonly=True)
    keys = np.arange(NUM_KEYS)
    errors: list[str] = []
    seen: set[int] = set()
    reads = 0
    last = -1
    deadline = time.time() + timeout
    while time.time() < deadline:
        fits = store.get_many(DATASET, keys)
        reads += 1
        if not fits.found.all():
            errors.append(f"missing records: {np.flatnonzero(~fits.found)[:5]}")
            break
        v = fits.step
        whole = (
            np.all(fits.pose == v[:, None].astype(np.float32), 1)
            & np.all(fits.betas == v[:, None].astype(np.float32), 1)
            & np.all(fits.transl == v[:, None].astype(np.float32), 1)
            & np.all(fits.residuals == v[:, None].astype(np.float32), 1)
            & (fits.score == np.float32(1e6 - v))
        )
        if not whole.all():
            errors.append(f"torn record at rows {np.flatnonzero(~whole)[:5]}")
            break
        if np.unique(v).size != 1:
            errors.append(f"one read saw several batches: versions {np.unique(v)[:5]}")
            break
        if v[0] < last:
            errors.append(f"went back from version {last} to {v[0]}")
            break
        last = int(v[0])
        seen.add(last)
        if last == final_version:
            break
    queue.put({"reads": reads, "versions": len(seen), "last": last, "errors": errors})


def read_scores(store: FitStore, dataset: str, count: int, queue) -> None:
    """Read examples 0..count-1 with a store handed over by the parent (forked or pickled)."""
    queue.put(store.get_many(dataset, np.arange(count)).score.tolist())
