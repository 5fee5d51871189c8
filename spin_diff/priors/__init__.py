"""Pose and shape priors for SMPLify-style fitting, and the plausible-pose sampler they are built from.

- :mod:`spin_diff.priors.gmm`: SMPLify's ``gmm_08.pkl`` format and the max-mixture GMM prior.
- :mod:`spin_diff.priors.em`: fitting such mixtures by EM.
- :mod:`spin_diff.priors.angle`: SMPLify's elbow/knee prior and the shape prior.
- :mod:`spin_diff.priors.pose_sampler`: plausible body poses by posture, built on
  :mod:`~spin_diff.priors.joint_angles` (swing-twist angles, limits),
  :mod:`~spin_diff.priors.skeleton` (posed skeleton, self-intersections, posture measures) and
  :mod:`~spin_diff.priors.postures` (keyframes, gait, one generator per posture).
- :mod:`spin_diff.priors.pose_files`: reading pose collections (sampler output, AMASS, SPIN).
"""

from spin_diff.priors.angle import angle_prior, shape_prior
from spin_diff.priors.em import fit_gmm, gmm_log_likelihood
from spin_diff.priors.gmm import (
    BUNDLED_GMM,
    GMMFileError,
    GMMParams,
    MaxMixturePrior,
    load_gmm_prior,
    read_gmm_file,
    write_gmm_file,
)

__all__ = [
    "BUNDLED_GMM",
    "GMMFileError",
    "GMMParams",
    "MaxMixturePrior",
    "angle_prior",
    "fit_gmm",
    "gmm_log_likelihood",
    "load_gmm_prior",
    "read_gmm_file",
    "shape_prior",
    "write_gmm_file",
]
