"""What makes a run's results independent of timing: the fit store's read-after-write order,
and a ``--resume`` that reads the store as the checkpoint saw it.

**Read-after-write.** The fit writer (:class:`~spin_diff.training.fit_updates.FitWriter`)
commits step t's updates on a thread while step t+1 runs, and the DataLoader reads a batch's
stored fits whenever it prepares it (with workers, several batches ahead). Whether a batch saw
an example's newest fit used to depend on that timing. :class:`ReadAfterWrite` fixes the order:
step t always reads the store as of the end of step t-1. It remembers which examples the last
steps may have written; when batch t holds one of them, it waits for the write in flight and
re-reads those rows; other batches go on while the write runs.

**Replay.** The training writer keeps the version each record had at the last checkpoint
(:meth:`~spin_diff.cache.store.FitStore.update_if_better` with ``keep_previous``; records are
stamped with the step that wrote them). :func:`resume_store` rolls the records written at or
after the checkpoint's step back, so the replayed steps meet the store they met the first
time, and :func:`truncate_run_logs` drops the replayed steps' lines of ``indices.csv``,
``log.csv`` and ``validation.csv``. No committed fit of a checkpointed step is lost; the
rolled-back ones are written again, bit for bit, by the replay.

:func:`kill_point` is a test hook: with ``SPIN_DIFF_KILL_AT_STEP=k`` in the environment the
run SIGKILLs itself once its step counter reaches k (after that step's checkpoint, if due).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import signal
from collections import deque
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = ["ReadAfterWrite", "resume_store", "truncate_run_logs", "kill_point", "KILL_AT_STEP"]

KILL_AT_STEP = "SPIN_DIFF_KILL_AT_STEP"
_INDEX_BITS = 40  # example indices are < 10**10 < 2**40


def _example_keys(batch: dict) -> np.ndarray:
    """(B,) int64 keys of a host batch's examples (dataset code, index)."""
    return (batch["dataset"].numpy().astype(np.int64) << _INDEX_BITS) | batch["index"].numpy().astype(np.int64)


class ReadAfterWrite:
    """Step t's batch sees exactly the store as of the end of step t-1 (module docstring).

    ``lookahead``: how many steps before its own a batch may have been read (the DataLoader's
    ``workers * prefetch_factor`` batches in flight, 0 without workers); the examples of the
    last ``lookahead + 2`` steps are checked. ``waits`` counts the steps that had to wait."""

    def __init__(self, data, writer, lookahead: int) -> None:
        self.data = data
        self.writer = writer
        self.recent: deque[np.ndarray] = deque(maxlen=int(lookahead) + 2)
        self.waits = 0

    def settle(self, batch: dict) -> dict:
        """The host ``batch`` with its stored fits as of the previous step (re-read where a
        write it may have missed touched them)."""
        keys = _example_keys(batch)
        if self.writer is not None and self.data.store is not None and self.recent:
            stale = np.isin(keys, np.concatenate(self.recent))
            if stale.any():
                self.writer.flush()  # every write of the steps before this one is committed
                self.waits += 1
                rows = torch.from_numpy(np.flatnonzero(stale))
                fresh = self.data.stored_fields(batch["dataset"][rows], batch["index"][rows], batch["flip"][rows],
                                                batch["rotation"][rows])  # fmt: skip
                batch = dict(batch)
                for name, value in fresh.items():
                    column = batch[name].clone()
                    column[rows] = value
                    batch[name] = column
        self.recent.append(keys)
        return batch


def resume_store(store, step: int) -> int:
    """Roll the training writer's store back to the checkpoint at ``step`` (module docstring)."""
    rolled = store.roll_back_after(step)
    if rolled:
        log.info("%s: %d fits written after the checkpoint (step %d) rolled back; the resumed steps write them again",
                 store.path, rolled, step)  # fmt: skip
    return rolled


def _keep_lines(path: Path, keep) -> None:
    """Rewrite ``path`` (atomically) with the lines ``keep(number, line)`` accepts."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for i, line in enumerate(lines) if keep(i, line)]
    if len(kept) == len(lines):
        return
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(kept))
    os.replace(partial, path)


def _csv_step(line: str) -> int | None:
    try:
        return int(float(next(csv.reader(io.StringIO(line)))[0]))
    except (StopIteration, ValueError, IndexError):
        return None


def truncate_run_logs(run_dir: Path, step: int, indices: str = "indices.csv", logs: bool = True) -> None:
    """Drop what the steps after the checkpoint at ``step`` wrote: the ``indices`` file's lines
    of steps ``>= step`` (0-based; each torchrun rank has its own), and with ``logs`` (the main
    process) ``log.csv`` / ``validation.csv`` rows of step counts ``> step``; a torn last line goes too."""
    run_dir = Path(run_dir)
    _keep_lines(run_dir / indices, lambda i, line: line.endswith("\n") and (_csv_step(line) or 0) < step)
    if logs:
        for name in ("log.csv", "validation.csv"):
            _keep_lines(run_dir / name, lambda i, line: i == 0 or (line.endswith("\n") and (_csv_step(line) or 0) <= step))


def kill_point(step: int) -> None:
    """The test hook of the module docstring (nothing unless ``SPIN_DIFF_KILL_AT_STEP`` is set)."""
    target = os.environ.get(KILL_AT_STEP)
    if target is not None and target.strip().isdigit() and int(target) == step:
        os.kill(os.getpid(), signal.SIGKILL)
