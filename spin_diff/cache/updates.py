"""Which rows of a batch a fit cache writes: the best fit wins, ground truth is kept.

The rules of :meth:`FitStore.update_if_better <spin_diff.cache.store.FitStore.update_if_better>`:
a row is written when there is no record yet, or its score is strictly lower than the
stored record's (a tie keeps the stored one). Ground truth, once stored, is kept: a fit is
refused (``protected``) and another ground-truth row of the example is not written (the same
truth scored again differs only by float noise); a ground-truth row replaces any fit. Rows
with a NaN/inf parameter or a NaN score, or a fit with an infinite score, are never written.

The functions return the body of ONE write transaction, so that the comparison reads the
stored record inside the transaction that writes, and concurrent writers cannot interleave.

Replay safety (training): with ``keep_previous``, the first time a record is replaced (or
created) after a checkpoint, the version it replaces is kept under ``PREVIOUS_PREFIX + key``
(an empty value: there was none). :func:`roll_back_after` puts those versions back for the
records stamped with a step at or after a checkpoint's, so a ``--resume`` from that
checkpoint reads the store as it was then; :func:`forget_previous` drops them once a newer
checkpoint covers the writes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np

from spin_diff.cache.errors import StoreFormatError
from spin_diff.cache.records import RECORD_DTYPE, RECORD_SIZE, RECORD_VERSION, SCORE_OFFSET, Source, prefix_items

_GROUND_TRUTH = int(Source.GROUND_TRUTH)
_SCORE = struct.Struct("<f")
_STEP = struct.Struct("<q")
_STEP_OFFSET = RECORD_DTYPE.fields["step"][1]
#: keys of the versions kept for a roll-back (outside the records' key space)
PREVIOUS_PREFIX = b"\x00previous/"


@dataclass
class UpdateResult:
    """What :meth:`FitStore.update_if_better` did with each row of a batch."""

    written: np.ndarray  # (B,) bool: the row is now the stored record
    existed: np.ndarray  # (B,) bool: a record was there before
    previous_score: np.ndarray  # (B,) float32 score of that record, NaN where none
    rejected: np.ndarray  # (B,) bool: non-finite fit, never written
    protected: np.ndarray  # (B,) bool: a ground-truth record was kept over a fit

    @property
    def improved(self) -> np.ndarray:
        """Rows that replaced an existing record."""
        return self.written & self.existed

    @property
    def created(self) -> np.ndarray:
        """Rows that filled an empty slot."""
        return self.written & ~self.existed


def writable_rows(records: np.ndarray, allow_unscored: bool = False) -> np.ndarray:
    """Rows that may be written: finite parameters; a finite score, or +inf (not scored)
    for ground truth (and for ``allow_unscored``). ``records``: (B,) RECORD_DTYPE."""
    ok = np.isfinite(records["pose"]).all(1) & np.isfinite(records["betas"]).all(1)
    ok &= np.isfinite(records["transl"]).all(1)
    score = records["score"]
    unscored_ok = (records["source"] == _GROUND_TRUTH) | allow_unscored
    ok &= np.isfinite(score) | (unscored_ok & (score == np.inf))
    return ok


def write_if_better(keys: list[bytes], records: np.ndarray, rejected: np.ndarray, where: str,
                    keep_previous: bool = False) -> Callable:  # fmt: skip
    """The transaction ``txn -> (written, existed, previous score, protected)``, each (B,),
    that writes the rows of ``records`` (B,) under ``keys`` that beat the stored records
    (module docstring). ``where`` names the store in errors. ``keep_previous``: keep the
    replaced version for :func:`roll_back_after` (the first replacement since the last
    :func:`forget_previous` only)."""
    n = len(keys)
    new_gt = records["source"] == _GROUND_TRUTH
    scores = records["score"].tolist()
    view = memoryview(records.tobytes())
    # Key order walks the B-tree in one direction (fewer page misses); the sort is stable, so
    # repeated examples in a batch still meet in batch order.
    order = sorted(range(n), key=keys.__getitem__)

    def write(txn):
        written = np.zeros(n, dtype=bool)
        existed = np.zeros(n, dtype=bool)
        protected = np.zeros(n, dtype=bool)
        previous = np.full(n, np.nan, dtype=np.float32)
        for i in order:
            if rejected[i]:
                continue
            old = txn.get(keys[i])
            if old is not None:
                if len(old) != RECORD_SIZE or old[0] != RECORD_VERSION:
                    raise StoreFormatError(
                        f"{where}: the stored record {keys[i]!r} is corrupt or of another version; "
                        "the batch was not written"
                    )
                existed[i] = True
                old_score = _SCORE.unpack_from(old, SCORE_OFFSET)[0]
                previous[i] = old_score
                old_gt = old[1] == _GROUND_TRUTH
                if old_gt:
                    protected[i] = not new_gt[i]
                    continue
                if not new_gt[i] and not scores[i] < old_score:
                    continue
            if keep_previous:
                txn.put(PREVIOUS_PREFIX + keys[i], b"" if old is None else bytes(old), overwrite=False)
            txn.put(keys[i], view[i * RECORD_SIZE : (i + 1) * RECORD_SIZE])
            written[i] = True
        return written, existed, previous, protected

    return write


def write_missing(keys: list[bytes], records: np.ndarray, ok: np.ndarray) -> Callable:
    """The transaction ``txn -> written (B,)`` that writes the ``ok`` rows only where no
    record exists; it never replaces one."""
    view = memoryview(records.tobytes())

    def write(txn):
        written = np.zeros(len(keys), dtype=bool)
        for i, key in enumerate(keys):
            if ok[i]:
                written[i] = txn.put(key, view[i * RECORD_SIZE : (i + 1) * RECORD_SIZE], overwrite=False)
        return written

    return write


def roll_back_after(step: int, where: str) -> Callable:
    """The transaction ``txn -> number of records rolled back`` that gives every record
    stamped with a step ``>= step`` its kept previous version back (deleting it where it had
    none), then drops all kept versions: the store as it was after ``step`` training steps."""

    def write(txn):
        rolled = 0
        for key, previous in prefix_items(txn, PREVIOUS_PREFIX):
            current = txn.get(key)
            if current is not None and len(current) != RECORD_SIZE:
                raise StoreFormatError(f"{where}: the stored record {key!r} is corrupt; nothing was rolled back")
            if current is not None and _STEP.unpack_from(current, _STEP_OFFSET)[0] >= step:
                if previous:
                    txn.put(key, previous)
                else:
                    txn.delete(key)
                rolled += 1
            txn.delete(PREVIOUS_PREFIX + key)
        return rolled

    return write


def forget_previous(txn) -> int:
    """Drop every kept previous version (a checkpoint now covers their writes); how many."""
    entries = prefix_items(txn, PREVIOUS_PREFIX)
    for key, _ in entries:
        txn.delete(PREVIOUS_PREFIX + key)
    return len(entries)
