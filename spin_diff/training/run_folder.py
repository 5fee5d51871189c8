"""The run folder of ``spin-diff train``: what it holds, when it may be reused, which checkpoints stay.

A run folder (``--out``) holds one run: ``config.yaml``, ``last.pt``, the periodic
checkpoints ``step-NNNNNNNN.pt`` (the newest ``keep_last``), ``best.pt`` (the lowest
validation PA-MPJPE so far), ``log.csv``, ``validation.csv``, ``indices.csv``,
``training.png``, ``tensorboard/`` and, unless ``--cache`` names another, the fit store
``fits/``.

* A folder that holds a run is continued with ``--resume`` or started again with
  ``--overwrite`` (which removes the earlier run's files above but keeps its fit store, the
  fits being data; delete ``fits/`` to start from an empty store); anything else is
  refused before a file is touched. A folder holding only a fit store (e.g. one
  ``spin-diff cache build`` made as ``RUN_DIR/fits``) is a new run's folder.
* Whether the folder can be written is tried before the run reads any data.
* A periodic checkpoint is a hard link of ``last.pt`` (a copy where links are not
  supported): keeping ``keep_last`` of them costs no disk until ``last.pt`` is replaced.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from spin_diff.errors import BadInputError
from spin_diff.utils.outputs import check_writable_folder, prepare_output

log = logging.getLogger(__name__)

__all__ = ["RUN_FILES", "previous_run", "prepare_run_folder", "keep_step_checkpoint", "BEST_CHECKPOINT"]

BEST_CHECKPOINT = "best.pt"
RUN_FILES = ("config.yaml", "last.pt", BEST_CHECKPOINT, "log.csv", "validation.csv", "indices.csv",
             "training.png", "tensorboard")  # fmt: skip
_RUN_PATTERNS = ("step-*.pt", "indices_rank*.csv", "*.pt.partial")


def previous_run(run_dir: Path) -> list[str]:
    """The names of an earlier run's files in ``run_dir`` (empty for a new folder)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    names = [name for name in RUN_FILES if (run_dir / name).exists()]
    for pattern in _RUN_PATTERNS:
        names += sorted(p.name for p in run_dir.glob(pattern))
    return names


def prepare_run_folder(run_dir: Path, *, resume: bool, overwrite: bool) -> Path:
    """Check ``run_dir`` for a run that starts (or resumes) now; clear an earlier run with
    ``overwrite``. Raises :class:`BadInputError` (nothing changed) for a folder it must not use."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise BadInputError("--resume continues the run in --out and --overwrite starts it again: pass only one")
    if run_dir.exists() and not run_dir.is_dir():
        raise BadInputError(f"--out {run_dir} is a file: a run folder must be a folder (it is created if missing)")
    previous = previous_run(run_dir)
    if previous and not resume and not overwrite:
        listed = ", ".join(previous[:3]) + (" ..." if len(previous) > 3 else "")
        raise BadInputError(
            f"--out {run_dir} already holds a run ({listed}): continue it with --resume, start it again with "
            "--overwrite (its fit store is kept), or choose another --out (nothing was changed)"
        )
    check_writable_folder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if overwrite and previous:
        log.warning("--overwrite: removing the earlier run's %s from %s (its fit store is kept)", ", ".join(previous), run_dir)
        prepare_output(run_dir, previous, replace=True, what="a training run")
    return run_dir


def keep_step_checkpoint(last: Path, step: int, keep_last: int) -> Path | None:
    """Keep ``last`` as ``step-NNNNNNNN.pt`` beside it and drop the oldest beyond ``keep_last``
    (0 keeps none). Returns the kept file."""
    if keep_last <= 0:
        return None
    last = Path(last)
    kept = last.with_name(f"step-{int(step):08d}.pt")
    if kept.exists():
        kept.unlink()
    try:
        os.link(last, kept)
    except OSError:  # a file system without hard links
        shutil.copyfile(last, kept)
    for old in sorted(last.parent.glob("step-*.pt"))[:-keep_last]:
        old.unlink()
    return kept
