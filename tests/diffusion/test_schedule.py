"""The cosine schedule and the closed-form maps between x0, x_t and the noise."""

import math

import pytest
import torch

from spin_diff.diffusion.schedule import (
    cosine_alpha_bars,
    ddim_move,
    ddim_timesteps,
    predict_eps,
    predict_x0,
    q_sample,
)


def test_alpha_bars_match_the_cosine_formula():
    T, s = 1000, 0.008
    alpha_bars = cosine_alpha_bars(T, s)
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    expected = torch.tensor([f((t + 1) / T) / f(0) for t in range(T)], dtype=torch.float64)
    # identical wherever beta is below the 0.999 clip, i.e. all but the very last steps
    assert torch.allclose(alpha_bars[:990], expected[:990], rtol=1e-10, atol=1e-14)
    assert alpha_bars.shape == (T,) and (alpha_bars[1:] < alpha_bars[:-1]).all()
    assert 0.9999 < alpha_bars[0] < 1.0 and alpha_bars[-1] < 1e-6
    # the level ScoreHMR inverts to (t = 50) keeps most of the signal
    assert 0.99 < alpha_bars[50] < 0.995


def test_noise_and_denoise_maps_invert_each_other():
    gen = torch.Generator().manual_seed(0)
    alpha_bars = cosine_alpha_bars(1000)
    x0, noise = torch.randn(5, 7, generator=gen, dtype=torch.float64), torch.randn(5, 7, generator=gen, dtype=torch.float64)
    t = torch.tensor([0, 10, 100, 500, 999])
    x_t = q_sample(alpha_bars, x0, t, noise)
    assert torch.allclose(predict_x0(alpha_bars, x_t, t, noise), x0, atol=1e-6)
    assert torch.allclose(predict_eps(alpha_bars, x_t, t, x0), noise, atol=1e-9)
    # a DDIM move with the true (x0, eps) pair lands exactly on the forward process
    assert torch.allclose(ddim_move(alpha_bars, x0, noise, 37), q_sample(alpha_bars, x0, 37, noise))
    assert torch.equal(ddim_move(alpha_bars, x0, noise, -1), x0)


def test_ddim_levels():
    assert ddim_timesteps(50, 2) == list(range(50, -1, -2))
    assert ddim_timesteps(999, 20)[-1] == 0 and ddim_timesteps(999, 20)[0] == 999
    with pytest.raises(ValueError, match="step"):
        ddim_timesteps(50, 0)
