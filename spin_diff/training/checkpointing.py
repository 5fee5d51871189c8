"""Training checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a regressor checkpoint (:func:`spin_diff.models.checkpoints.save_regressor`:
``spin-diff eval`` and ``--pretrained`` read it as it is) with the training state beside the
weights: optimiser, gradient scaler and schedule, step, epoch and the sampler's position
(the next global batch of the epoch), every RNG state (Python, numpy, torch, CUDA), the
resolved training config, and the hashes of the body model and of the priors the in-loop
fitting used. Files are replaced atomically (a crash leaves the previous checkpoint).

:class:`StopSignal` turns SIGTERM / SIGINT into a request the loop honours after the step in
flight: it writes a checkpoint and exits cleanly (a second SIGINT interrupts at once).
"""

from __future__ import annotations

import logging
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spin_diff.models.checkpoints import save_regressor
from spin_diff.utils.checkpoints import CheckpointError, read_torch_file

log = logging.getLogger(__name__)

__all__ = ["LAST_CHECKPOINT", "rng_state", "restore_rng_state", "save_training_checkpoint",
           "load_training_state", "StopSignal"]  # fmt: skip

LAST_CHECKPOINT = "last.pt"
TRAINING_KEYS = ("optimizer", "scaler", "scheduler", "step", "epoch", "batch_in_epoch", "rng", "train_config")


def rng_state() -> dict[str, Any]:
    """The RNG states of this process."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {  # plain types and tensors only: the file stays readable with weights_only=True
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    saved = state["numpy"]
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state((saved["kind"], keys, saved["position"], saved["has_gauss"], saved["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_checkpoint(path: Path, model, body, *, optimizer, scaler, scheduler, step: int, epoch: int,
                             batch_in_epoch: int, train_config: dict, hashes: dict[str, str | None],
                             best_validation: dict | None = None, condition_network: dict | None = None) -> Path:  # fmt: skip
    """Write the model and the training state to ``path`` (atomically). ``best_validation``:
    the run's best validation so far (``pa_mpjpe``, ``step``), so a resumed run keeps ``best.pt``'s rule;
    ``condition_network``: the state dict of the frozen network whose features condition the prior, if any."""
    extra = {} if condition_network is None else {"condition_network": condition_network}
    return save_regressor(
        model, path, body,
        optimizer=optimizer.state_dict(),
        scaler=scaler.state_dict(),
        scheduler=scheduler.state_dict() if scheduler is not None else None,
        step=int(step), epoch=int(epoch), batch_in_epoch=int(batch_in_epoch),
        rng=rng_state(), train_config=train_config, hashes=hashes,
        best_validation=dict(best_validation or {}), **extra,
    )  # fmt: skip


def load_training_state(path: Path) -> dict[str, Any]:
    """The raw checkpoint dict of a training run, with a clear error if it is not one."""
    raw = read_torch_file(path)
    missing = [key for key in TRAINING_KEYS if key not in raw] if isinstance(raw, dict) else list(TRAINING_KEYS)
    if missing:
        raise CheckpointError(
            f"{path} is not a training checkpoint of spin-diff train (it lacks {missing}); to start from its "
            "weights use --pretrained instead of --resume"
        )
    return raw


class StopSignal:
    """SIGTERM/SIGINT -> ``requested`` (the loop saves and stops after the current step)."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.reason = signal.Signals(signum).name
        log.warning("%s received: saving a checkpoint after this step (Ctrl-C again to abort)", self.reason)

    def __enter__(self) -> "StopSignal":
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: signals stay with the caller
                pass
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
