"""The best-fit dictionary ("fit cache"): SPIN's best fit per training example, in LMDB.

* :mod:`spin_diff.cache.records`: keys, the binary record layout, :class:`FitBatch` (to
  write) and :class:`StoredFits` (read back), :class:`Source`.
* :mod:`spin_diff.cache.store`: :class:`FitStore`, the LMDB store (``update_if_better``,
  ``get_many``), over :mod:`~spin_diff.cache.environment` (per-process lazy opening, map
  growth), :mod:`~spin_diff.cache.header` (header and config table) and
  :mod:`~spin_diff.cache.updates` (which rows are written).
* :mod:`spin_diff.cache.provenance`: the description of a fitting config that its hash is taken of.
* :mod:`spin_diff.cache.builder`: ``spin-diff cache build`` (batched SMPLify, resumable,
  sharded under torchrun).
* :mod:`spin_diff.cache.transfer`: npz export/import, SPIN's static fits, merging stores.
* :mod:`spin_diff.cache.stats`: counts, score histograms, coverage.
* :mod:`spin_diff.cache.errors`: the errors (all ``ValueError``, reported as bad input).

Importing this package loads numpy and lmdb only (``builder``, which needs torch, is imported
by name), so DataLoader workers that only read stay light.
"""

from spin_diff.cache.records import FitBatch, Source, StoredFits, decode_key, encode_key
from spin_diff.cache.store import (
    DEFAULT_CACHE_DIR,
    BodyModelMismatchError,
    FitStore,
    FitStoreError,
    StoreFormatError,
    StoreWriteError,
)
from spin_diff.cache.updates import UpdateResult

__all__ = [
    "FitBatch",
    "Source",
    "StoredFits",
    "encode_key",
    "decode_key",
    "DEFAULT_CACHE_DIR",
    "FitStore",
    "FitStoreError",
    "StoreFormatError",
    "BodyModelMismatchError",
    "StoreWriteError",
    "UpdateResult",
]
