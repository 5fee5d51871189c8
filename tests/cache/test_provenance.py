"""The config hash of a fit covers every file that shapes it: the model, J_regressor_extra,
the GMM and the diffusion prior, by content (a copy hashes the same, a changed file not)."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import torch

from spin_diff.body.files import BUNDLED_MODEL_DIR
from spin_diff.body.model import load_body_model
from spin_diff.cache.builder import fit_config_hash
from spin_diff.diffusion.model import load_diffusion_prior
from spin_diff.fitting.config import FittingConfig
from spin_diff.fitting.smplify import SMPLify
from spin_diff.priors.gmm import GMMParams, read_gmm_file, write_gmm_file


def hash_of(model, **changes) -> int:
    config = FittingConfig()
    config.diffusion = dataclasses.replace(config.diffusion, checkpoint=changes.pop("checkpoint", None))
    config = dataclasses.replace(config, **changes)
    return fit_config_hash(SMPLify(model, config))[0]


def test_every_file_that_shapes_a_fit_changes_its_hash(tmp_path, body_model):
    base = hash_of(body_model)
    assert hash_of(body_model) == base

    # the GMM: an identical copy elsewhere hashes the same, another mixture does not
    gmm = BUNDLED_MODEL_DIR / "gmm_08.pkl"
    shutil.copy(gmm, tmp_path / "same_gmm.pkl")
    assert hash_of(body_model, gmm_path=str(tmp_path / "same_gmm.pkl")) == base
    params = read_gmm_file(gmm)
    write_gmm_file(tmp_path / "other_gmm.pkl", GMMParams(params.means + 0.01, params.covars, params.weights))
    assert hash_of(body_model, gmm_path=str(tmp_path / "other_gmm.pkl")) != base

    # the diffusion prior: a retrained (here: nudged) one changes the hash
    prior = load_diffusion_prior()
    with torch.no_grad():
        next(prior.parameters()).add_(1e-3)
    prior.save(tmp_path / "retrained.pt")
    assert hash_of(body_model, checkpoint=str(tmp_path / "retrained.pt")) != base

    # J_regressor_extra: another regressor beside the same model changes the hash
    extra = np.load(BUNDLED_MODEL_DIR / "J_regressor_extra.npy")
    np.save(tmp_path / "J_regressor_extra.npy", np.roll(extra, 1, axis=1))
    other_regressor = load_body_model(j_regressor_extra=tmp_path / "J_regressor_extra.npy")
    assert hash_of(other_regressor) != base
