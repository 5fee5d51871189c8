"""Fit updates of a training step: packed on the device, gathered across ranks, written by a
background thread.

A step's updates are one ``(B, K)`` float64 tensor (:func:`pack_updates`): per row whether
to write it, its source (in-loop fit or ground truth), dataset, example index, score, pose,
betas, camera translation and residuals, all in the example's canonical frame. Ranks
all-gather it (:func:`~spin_diff.training.distributed.gather_rows`); the store writer of each
node hands it to :class:`FitWriter`, whose thread copies it to the host and calls
:meth:`~spin_diff.cache.store.FitStore.update_if_better`, while the next step runs. At most
one write is in flight; :meth:`FitWriter.flush` waits for it (before every checkpoint, so a
checkpoint never gets ahead of the store, and before a step whose batch holds an example the
write may change: :class:`~spin_diff.training.replay.ReadAfterWrite`) and re-raises its error,
if any. Records are stamped with the step that wrote them and the version they replace is
kept until :meth:`FitWriter.checkpointed`, so a resume can roll them back
(:func:`~spin_diff.training.replay.resume_store`).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from spin_diff.cache.records import FitBatch, Source
from spin_diff.cache.store import FitStore
from spin_diff.cache.updates import UpdateResult
from spin_diff.utils.hashing import config_hash as hash_of

log = logging.getLogger(__name__)

__all__ = ["pack_updates", "unpack_updates", "FitWriter"]

_WRITE, _SOURCE, _DATASET, _INDEX, _SCORE = range(5)
_POSE = slice(5, 77)
_BETAS = slice(77, 87)
_TRANSL = slice(87, 90)
_RESIDUALS = slice(90, 139)
WIDTH = 139


def pack_updates(write, source, dataset, index, score, pose, betas, transl, residuals) -> torch.Tensor:
    """One ``(B, 139)`` float64 tensor of a step's updates (rows with ``write`` False are kept
    as placeholders so every rank sends the same shape). Example indices up to 2^53 are exact."""
    columns = [
        write.double()[:, None], source.double()[:, None], dataset.double()[:, None], index.double()[:, None],
        score.double()[:, None], pose.double(), betas.double(), transl.double(), residuals.double(),
    ]  # fmt: skip
    return torch.cat(columns, 1)


def unpack_updates(packed: np.ndarray, names: list[str], step: int, config_hash: int,
                   ground_truth_hashes: list[int] | None = None) -> FitBatch | None:  # fmt: skip
    """The rows to write as a :class:`FitBatch` (None if there are none). Fits carry
    ``config_hash``; ground-truth rows their dataset's entry of ``ground_truth_hashes``."""
    rows = packed[packed[:, _WRITE] > 0.5]
    if rows.shape[0] == 0:
        return None
    dataset = rows[:, _DATASET].astype(np.int64)
    hashes = np.full(rows.shape[0], config_hash, dtype=np.uint64)
    if ground_truth_hashes is not None:
        truth = rows[:, _SOURCE].astype(np.int64) == int(Source.GROUND_TRUTH)
        hashes[truth] = np.asarray(ground_truth_hashes, dtype=np.uint64)[dataset[truth]]
    return FitBatch(
        dataset=[names[d] for d in dataset.tolist()],
        index=rows[:, _INDEX].astype(np.int64),
        pose=rows[:, _POSE],
        betas=rows[:, _BETAS],
        score=rows[:, _SCORE],
        source=rows[:, _SOURCE].astype(np.int64).tolist(),
        transl=rows[:, _TRANSL],
        residuals=rows[:, _RESIDUALS],
        step=step,
        config_hash=hashes,
    )


class FitWriter:
    """Writes packed updates into a store on a background thread, one batch at a time."""

    def __init__(self, store: FitStore, names: list[str], config_hash: int) -> None:
        self.store = store
        self.names = names
        self.config_hash = config_hash
        # ground truth is described as `spin-diff cache build --gt-from-dataset` describes it
        body = store.header["body_model_sha256"]
        descriptions = [{"kind": "ground-truth", "dataset": name, "body_model_sha256": body} for name in names]
        self.ground_truth_hashes = [hash_of(d) for d in descriptions]
        for digest, description in zip(self.ground_truth_hashes, descriptions):
            store.register_config(digest, description)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fit-writer")
        self._pending: Future | None = None
        self.written = 0  # records created or improved
        self.protected = 0  # fits refused because the example has ground truth
        self.rejected = 0  # non-finite rows refused

    def submit(self, packed: torch.Tensor, step: int) -> None:
        """Queue one step's gathered updates (waits for the previous write first)."""
        self.flush()
        host = packed.to("cpu", non_blocking=True)
        event = None
        if packed.device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
        self._pending = self._pool.submit(self._write, host, event, step)

    def _write(self, host: torch.Tensor, event, step: int) -> UpdateResult | None:
        if event is not None:
            event.synchronize()
        batch = unpack_updates(host.numpy(), self.names, step, self.config_hash, self.ground_truth_hashes)
        if batch is None:
            return None
        result = self.store.update_if_better(batch, keep_previous=True)
        self.written += int(result.written.sum())
        self.protected += int(result.protected.sum())
        self.rejected += int(result.rejected.sum())
        return result

    def flush(self) -> None:
        """Wait for the write in flight; re-raise its error."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def checkpointed(self) -> None:
        """A checkpoint now covers every write: drop the versions kept for a roll-back."""
        self.flush()
        self.store.forget_previous()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)
