"""Periodic validation of a training run: ``spin-diff eval``'s protocols on a held-out npz.

The held-out file is read by :func:`spin_diff.evaluation.protocols.load_eval_set` (its
protocol from its name or keys: H36M, 3DPW, MPI-INF-3DHP, SMPL ground truth, LSP) and the
regressor, switched to eval mode for the call, is evaluated by
:func:`spin_diff.evaluation.run.evaluate` exactly as ``spin-diff eval`` would evaluate the
run's checkpoint (no test-time fitting).
"""

from __future__ import annotations

import math
from pathlib import Path

from spin_diff.evaluation.protocols import load_eval_set
from spin_diff.evaluation.run import evaluate

__all__ = ["validate"]


def validate(model, body, npz: Path, config, images: str | None = None, batch_size: int = 64) -> dict[str, float]:
    """The evaluation's mean errors (mm; ``kp2d_px`` in crop pixels) and the sample count."""
    evalset = load_eval_set(npz)
    was_training = model.training
    model.eval()
    try:
        result = evaluate(evalset, body, regressor=model, source="training", fitting=config.fitting,
                          images=images, batch_size=batch_size, progress=False)  # fmt: skip
    finally:
        model.train(was_training)
    row = result.summary()["rows"]["none"]
    metrics = {name: float(value) for name, value in row.items() if isinstance(value, float) and not math.isnan(value)}
    metrics["examples"] = float(evalset.size)
    return metrics
