"""The prior's DDIM round trip, its files and their errors, and batch isolation."""

import dataclasses

import pytest
import torch

from spin_diff.diffusion.config import DenoiserConfig, DiffusionModelConfig
from spin_diff.diffusion.model import DiffusionPrior, DiffusionPriorError, load_diffusion_prior


def test_ddim_inversion_then_ddim_sampling_reconstructs_the_input(bundled_prior, tiny_prior):
    """Acceptance: invert to t = 50 in steps of 2, sample back: error < 1e-3.

    ScoreHMR's one-pass inversion (the noise of the lower level) is only approximately the
    inverse of a sampling step; two fixed-point refinements per step make it exact to 1e-3."""
    generator = torch.Generator().manual_seed(0)
    x = bundled_prior.sample(16, generator=generator)
    for prior in (bundled_prior, tiny_prior):
        with torch.no_grad():
            x_t = prior.ddim_invert(x, 50, 2, iterations=3)
            back = prior.ddim_sample(x_t, 50, 2)
            one_pass = prior.ddim_sample(prior.ddim_invert(x, 50, 2, iterations=1), 50, 2)
        assert (back - x).abs().max() < 1e-3
        assert (back - x).abs().max() < (one_pass - x).abs().max()
        assert (x_t - x).abs().max() > 0.05  # it did go somewhere


def test_save_and_load_keep_the_model(tiny_prior, tmp_path):
    path = tiny_prior.save(tmp_path / "p.pt")
    loaded = load_diffusion_prior(path)
    assert loaded.config == tiny_prior.config
    x = torch.randn(3, 144)
    assert torch.allclose(loaded.predict_noise(x, 10), tiny_prior.predict_noise(x, 10))


def test_missing_or_foreign_checkpoints_fail_clearly(tiny_prior, tmp_path):
    with pytest.raises(FileNotFoundError, match="diffusion prior checkpoint not found.*fitting.diffusion.checkpoint"):
        load_diffusion_prior(tmp_path / "nothing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DiffusionPriorError, match="cannot read"):
        load_diffusion_prior(junk)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(DiffusionPriorError, match="not a spin_diff diffusion prior"):
        load_diffusion_prior(tmp_path / "other.pt")
    # a prior for another pose size (e.g. 23 joints in axis-angle, 69 numbers)
    path = tiny_prior.save(tmp_path / "p.pt")
    payload = torch.load(path, weights_only=True)
    payload["data_dim"] = 69
    payload["state_dict"]["input.weight"] = torch.zeros(64, 69)
    torch.save(payload, tmp_path / "p69.pt")
    with pytest.raises(DiffusionPriorError, match="models 69 numbers per pose.*needs 144"):
        load_diffusion_prior(tmp_path / "p69.pt")


def test_nan_in_a_sample_never_reaches_its_batch_mates(tiny_prior):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 144, generator=generator)
    alone = tiny_prior.predict_noise(x, 30)
    poisoned = x.clone()
    poisoned[2, 5] = float("nan")
    poisoned[3, 0] = float("inf")
    eps, x0 = tiny_prior.denoise(poisoned, 30)
    assert torch.equal(eps[:2], alone[:2])
    assert torch.isfinite(eps).all() and not torch.isfinite(x0[2:]).all(1).any()
    assert torch.isfinite(x0[:2]).all()
    # through a whole DDIM chain too
    back = tiny_prior.ddim_sample(poisoned, 20, 5)
    assert torch.allclose(back[:2], tiny_prior.ddim_sample(x[:2], 20, 5))


def test_conditioned_model_serves_unconditioned_use():
    torch.manual_seed(0)
    config = DiffusionModelConfig(denoiser=DenoiserConfig(width=32, hidden=64, blocks=1, time_dim=16, cond_dim=5))
    prior = DiffusionPrior(config)
    x = torch.randn(3, 144)
    assert torch.equal(prior.predict_noise(x, 7), prior.predict_noise(x, 7, torch.zeros(3, 5)))
    assert prior.predict_noise(x, 7, torch.randn(3, 5)).shape == (3, 144)


def test_betas_can_be_modelled(tmp_path):
    config = dataclasses.replace(DiffusionModelConfig(denoiser=DenoiserConfig(width=32, hidden=64, blocks=1, time_dim=16)), use_betas=True)
    prior = DiffusionPrior(config)
    assert prior.data_dim == 154
    rotmats = torch.eye(3).expand(2, 24, 3, 3)
    with pytest.raises(ValueError, match="models betas"):
        prior.encode(rotmats)
    x, _ = prior.encode(rotmats, torch.ones(2, 10))
    assert x.shape == (2, 154) and torch.allclose(prior.decode(x)[1], torch.ones(2, 10))
    assert load_diffusion_prior(prior.save(tmp_path / "b.pt")).data_dim == 154
