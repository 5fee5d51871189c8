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
- :mod:`~spin_diff.diffusion.conditioning`: how a conditioned prior takes its condition
  (the regressor-feature side, training pairs and checks, is :mod:`spin_diff.fitting.conditioning`).
"""
