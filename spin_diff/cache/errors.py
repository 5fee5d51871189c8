"""Errors of the fit cache. All are ValueErrors, so the CLI reports them as bad input."""

from __future__ import annotations

__all__ = ["FitStoreError", "StoreFormatError", "BodyModelMismatchError", "StoreWriteError"]


class FitStoreError(ValueError):
    """A fit cache cannot be used as asked; the message names the store and what to do."""


class StoreFormatError(FitStoreError):
    """The path holds no fit cache of this format: corrupt, foreign or another version."""


class BodyModelMismatchError(FitStoreError):
    """The store holds fits of another body model."""


class StoreWriteError(FitStoreError):
    """A write transaction failed (disk full, I/O error); nothing of it was written."""
