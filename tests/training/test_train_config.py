"""The shipped training configs load, and SPIN's recipe is what the defaults say it is."""

from __future__ import annotations

import dataclasses

import pytest

from spin_diff.fitting.config import spin_stages
from spin_diff.recipes import recipe_path
from spin_diff.training.config import TrainConfig, effective_fitting_config
from spin_diff.utils.configs import ConfigError, load_config


def test_spin_recipe_matches_the_defaults():
    spin = load_config(TrainConfig, recipe_path("train_spin"))
    default = TrainConfig()
    assert spin.fitting == default.fitting and spin.loss == default.loss and spin.optim == default.optim
    assert dataclasses.replace(spin.data, workers=0) == default.data
    assert spin.fitting.stages == spin_stages(100)
    assert (spin.optim.lr, spin.data.batch_size, spin.fitting.threshold) == (5e-5, 64, 100.0)
    assert (spin.model.input, spin.model.backbone) == ("image", "resnet50")


def test_keypoint_recipe_loads():
    config = load_config(TrainConfig, recipe_path("train_keypoints_cpu"))
    assert config.model.input == "keypoints" and config.device == "cpu"


def test_prior_switch():
    config = TrainConfig()
    assert "diffusion_pose" not in effective_fitting_config(config.fitting).stages[1].terms
    config.fitting.prior = "gmm+diffusion"
    body = effective_fitting_config(config.fitting).stages[1].terms
    assert body["diffusion_pose"] == config.fitting.diffusion_weight and "gmm_pose" in body
    assert "diffusion_pose" not in effective_fitting_config(config.fitting).stages[0].terms
    with pytest.raises(ConfigError, match="fitting.prior"):
        load_config(TrainConfig, None, ["fitting.prior=diffusion"])
