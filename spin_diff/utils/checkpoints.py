"""Checkpoint files: reading a torch file with errors that name it, and the versioned
``format``/``version`` envelope every spin_diff checkpoint (regressor, diffusion prior) carries.

A checkpoint is a dict with ``format`` (what it holds, e.g. ``"spin_diff.regressor"``) and
``version`` (an integer, raised when the layout changes); each reader checks the format it
expects and :func:`check_version` refuses a file of a newer version than this spin_diff reads, and :func:`save_checkpoint`
writes atomically (a crash leaves the previous file).
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from spin_diff.errors import BadInputError, MissingInputError

__all__ = ["CheckpointError", "verify_torch_file", "read_torch_file", "strip_prefix", "save_checkpoint", "write_torch_file", "check_version"]

log = logging.getLogger(__name__)


class CheckpointError(BadInputError):
    """A checkpoint cannot be used; the message names the file, the problem and the fix."""


def verify_torch_file(path: str | Path, error: type[Exception] = None) -> Path:
    """Check every member of a torch (zip) file against its CRC-32, which ``torch.load`` does
    not: a file with bytes overwritten inside would otherwise load, with garbage weights.
    Raises ``error`` (default :class:`CheckpointError`) naming the file and the damaged member.
    Files in torch's legacy (pre-zip) format carry no checksums and pass unchecked."""
    path = Path(path)
    error = error or CheckpointError
    if not zipfile.is_zipfile(path):
        return path
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as err:
        raise error(
            f"{path} is damaged ({path.stat().st_size} bytes: {err}); copy it again from its source"
        ) from None
    if bad is not None:
        raise error(
            f"{path} is damaged: its member {bad} fails its CRC-32 check ({path.stat().st_size} bytes); copy it "
            "again from its source (or, for a run's last.pt, resume from a kept step-*.pt)"
        )
    return path


def read_torch_file(path: str | Path) -> Any:
    """``torch.load`` on CPU, after :func:`verify_torch_file`, with errors that name the file
    (missing, damaged, truncated, not torch)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"checkpoint not found: {path}")
    verify_torch_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # SPIN's checkpoints also hold the optimizer and a numpy permutation, which the
        # weights-only reader refuses; the user named this file, so read it in full.
        if "weights_only" not in str(err) and "Weights only" not in str(err):
            raise CheckpointError(_damaged(path, err)) from err
        log.debug("%s holds more than tensors; loading it with weights_only=False", path)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(_damaged(path, err)) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(_damaged(path, err)) from err


def _damaged(path: Path, err: BaseException) -> str:
    return (
        f"cannot read checkpoint {path} ({path.stat().st_size} bytes): {type(err).__name__}: "
        f"{str(err).splitlines()[0] if str(err) else ''}. The file is truncated or not a torch "
        "checkpoint; copy it again or pass another --checkpoint"
    )


def strip_prefix(state: dict, prefix: str) -> dict:
    """``state`` with ``prefix`` removed from keys that all carry it (DataParallel's ``module.``)."""
    if state and all(isinstance(k, str) and k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def save_checkpoint(checkpoint: dict, path: str | Path) -> Path:
    """Write ``checkpoint`` (a dict with ``format`` and ``version``) to ``path`` atomically:
    parent folders are created, and a crash mid-write leaves the previous file."""
    if "format" not in checkpoint or "version" not in checkpoint:
        raise ValueError("a spin_diff checkpoint needs 'format' and 'version' entries")
    return write_torch_file(checkpoint, path)


def write_torch_file(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically: parent folders are created, a crash mid-write leaves the
    previous file (also for files in other projects' formats, e.g. SPIN's checkpoints)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        torch.save(obj, partial)
        os.replace(partial, path)
    except (OSError, RuntimeError) as err:  # a full disk reaches torch's zip writer as RuntimeError
        partial.unlink(missing_ok=True)
        raise CheckpointError(
            f"cannot write checkpoint {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}; "
            "free disk space or choose another folder (the previous file, if any, is unchanged)"
        ) from err
    return path


def check_version(checkpoint: dict, path: str | Path, newest: int, error: type[Exception] = CheckpointError) -> None:
    """Refuse a checkpoint written by a newer spin_diff (its ``version`` above ``newest``)."""
    version = int(checkpoint.get("version", 0))
    if version > newest:
        raise error(
            f"{path} was written by a newer spin_diff (checkpoint version {version}; this one reads up to "
            f"{newest}); upgrade spin_diff"
        )
