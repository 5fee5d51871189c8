"""Errors of the fit cache. All are input errors (and ValueErrors): the CLI reports them as
bad input, naming the store and what to do."""

from __future__ import annotations

from spin_diff.errors import BadInputError

__all__ = [
    "FitStoreError",
    "StoreFormatError",
    "StoreCorruptedError",
    "BodyModelMismatchError",
    "StoreWriteError",
    "DatasetIdentityError",
    "ScoreRuleMismatchError",
    "damaged_store_message",
]


class FitStoreError(BadInputError):
    """A fit cache cannot be used as asked; the message names the store and what to do."""


class StoreFormatError(FitStoreError):
    """The path holds no fit cache of this format: corrupt, foreign or another version."""


class BodyModelMismatchError(FitStoreError):
    """The store holds fits of another body model."""


class StoreWriteError(FitStoreError):
    """A write transaction failed (disk full, I/O error); nothing of it was written."""


class DatasetIdentityError(FitStoreError):
    """A dataset name of the store already belongs to a dataset of other content."""


class ScoreRuleMismatchError(FitStoreError):
    """The store's scores were written under another keep rule than the run's."""


class StoreCorruptedError(StoreFormatError):
    """The store's files are damaged (LMDB reports a corrupt or missing page, or data.mdb is
    truncated). The message names the store and the commands that check and rescue it."""


def damaged_store_message(path, detail) -> str:
    """What to tell a user whose fit cache at ``path`` is damaged (``detail``: what was seen)."""
    return (
        f"the fit cache {path} is damaged ({detail}). It was left as it is. Check it with "
        f"`spin-diff cache verify {path}`, and copy every record that still reads into a new store "
        f"with `spin-diff cache salvage {path} NEW_CACHE`; then use NEW_CACHE (or move {path} away)"
    )
