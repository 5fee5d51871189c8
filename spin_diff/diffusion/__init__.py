"""A learned diffusion prior over SMPL poses.

Its two uses in fitting live with fitting: the ``diffusion_pose`` SMPLify term (score
distillation, :mod:`spin_diff.fitting.diffusion_term`) and ScoreHMR's guided refinement
(:mod:`spin_diff.fitting.guidance`).

- :mod:`~spin_diff.diffusion.config`: dataclasses (model, training, fitting settings).
- :mod:`~spin_diff.diffusion.schedule`: cosine schedule, q_sample, x0/eps maps, DDIM moves.
- :mod:`~spin_diff.diffusion.representation`: SMPL pose <-> the prior's 24 x 6D vector.
- :mod:`~spin_diff.diffusion.denoiser`: the time-modulated MLP.
- :mod:`~spin_diff.diffusion.model`: :class:`DiffusionPrior` (DDIM sampling/inversion, files),
  :func:`load_diffusion_prior`.
- :mod:`~spin_diff.diffusion.training`: :func:`train_diffusion_prior`.
- :mod:`~spin_diff.diffusion.samples`: sampled poses rendered as a grid.
- :mod:`~spin_diff.diffusion.conditioning`: a prior conditioned on a regressor's features
  (training pairs, the checkpoint's record of the regressor, the checks fitting makes).

Names are imported lazily, so ``spin_diff.fitting.config`` can use the config classes
without loading torch modules.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DenoiserConfig": "config",
    "DiffusionModelConfig": "config",
    "DiffusionTrainConfig": "config",
    "DiffusionFitConfig": "config",
    "GuidedConfig": "config",
    "DiffusionPrior": "model",
    "DiffusionPriorError": "model",
    "BUNDLED_DIFFUSION_PRIOR": "model",
    "load_diffusion_prior": "model",
    "train_diffusion_prior": "training",
    "read_training_poses": "training",
    "sample_poses": "samples",
    "render_pose_grid": "samples",
    "ConditioningError": "conditioning",
    "check_regressor": "conditioning",
    "feature_training_pairs": "conditioning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"spin_diff.diffusion.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'spin_diff.diffusion' has no attribute {name!r}")
