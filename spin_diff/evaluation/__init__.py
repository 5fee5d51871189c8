"""Evaluation: 3D joint errors as the field reports them.

* :mod:`spin_diff.evaluation.metrics`: MPJPE / PA-MPJPE between two sets of SMPL parameters.
* :mod:`spin_diff.evaluation.protocols`: SPIN's protocols and evaluation files.
* :mod:`spin_diff.evaluation.refine`: the test-time refinement rows (SMPLify, + diffusion term, guided).
* :mod:`spin_diff.evaluation.run`: ``spin-diff eval``'s loop, CSV/JSON output and table.
"""
