"""Training: SPIN's loop with the LMDB fit store and (optionally) the diffusion prior in it.

- :mod:`spin_diff.training.frames`: canonical frame <-> augmented view (flip, rotation).
- :mod:`spin_diff.training.datasets`: training batches: SPIN's augmented crops and keypoints, stored fits.
- :mod:`spin_diff.training.sampler`: the training order (mixing ratios, augmentation draws, ranks, resume).
- :mod:`spin_diff.training.loop`: one step, SPIN's sequence, readable top to bottom.
- :mod:`spin_diff.training.supervision`: which fit supervises which example.
- :mod:`spin_diff.training.losses`: SPIN's losses (this loop's and the keypoint trainer's).
- :mod:`spin_diff.training.train_keypoints`: the supervised keypoint-regressor trainer on synthetic people.
- :mod:`spin_diff.training.fit_updates`: the step's fit updates, packed, gathered, written.
- :mod:`spin_diff.training.run`: :func:`train` (set-up, epochs, checkpoints, resume, stop).
- :mod:`spin_diff.training.checkpointing`, :mod:`~spin_diff.training.distributed`,
  :mod:`~spin_diff.training.logs`, :mod:`~spin_diff.training.validation`, :mod:`~spin_diff.training.config`.
"""
