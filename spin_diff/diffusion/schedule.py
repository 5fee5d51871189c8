"""The noise schedule and the closed-form maps of a DDPM/DDIM with epsilon prediction.

Timesteps are integers ``t`` in ``[0, T)``; ``alpha_bar[t]`` is the signal share at ``t``:
``x_t = sqrt(alpha_bar[t]) x_0 + sqrt(1 - alpha_bar[t]) eps``. Every function here is a pure
tensor function; ``t`` may be a Python int (the whole batch at one level) or a ``(B,)`` long
tensor.
"""

from __future__ import annotations

import math

import torch


def cosine_alpha_bars(timesteps: int, offset: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule, float64, shape ``(T,)``.

    ``f(u) = cos(((u + s) / (1 + s)) * pi / 2)^2``; step ``t`` (0-based) has
    ``alpha_bar[t] = f((t + 1) / T) / f(0)``, computed through the betas
    ``beta_t = 1 - alpha_bar[t] / alpha_bar[t - 1]`` clipped to ``max_beta`` (which only
    touches the last few steps, where ``f`` reaches 0).
    """
    u = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((u + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(0.0, max_beta)
    return torch.cumprod(1 - betas, dim=0)


def _gather(values: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped to broadcast against ``like`` (B, D)."""
    if isinstance(t, int):
        return values[t]
    return values[t].reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(alpha_bars: torch.Tensor, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
    """Noise clean data to level t: ``sqrt(ab) x0 + sqrt(1 - ab) noise``.  (B, D) -> (B, D)."""
    ab = _gather(alpha_bars, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def predict_x0(alpha_bars: torch.Tensor, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    """The one-step denoised estimate (Tweedie): ``(x_t - sqrt(1 - ab) eps) / sqrt(ab)``."""
    ab = _gather(alpha_bars, t, x_t)
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def predict_eps(alpha_bars: torch.Tensor, x_t: torch.Tensor, t, x0: torch.Tensor) -> torch.Tensor:
    """The noise that takes ``x0`` to ``x_t`` at level t."""
    ab = _gather(alpha_bars, t, x_t)
    return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()


def ddim_move(alpha_bars: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t_next) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) to level ``t_next`` from a (x0, eps) pair; ``t_next = -1``
    is the clean end (alpha_bar = 1). The same map serves sampling (t_next < t) and
    inversion (t_next > t)."""
    if isinstance(t_next, int) and t_next < 0:
        return x0
    ab = _gather(alpha_bars, t_next, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def ddim_timesteps(t_start: int, step: int) -> list[int]:
    """The levels a DDIM chain visits from ``t_start`` down to 0: ``[t_start, ..., step, 0]``
    minus duplicates; e.g. (50, 2) -> [50, 48, ..., 2, 0]."""
    if step < 1:
        raise ValueError(f"DDIM step must be >= 1, got {step}")
    if t_start < 0:
        raise ValueError(f"t_start must be >= 0, got {t_start}")
    levels = list(range(t_start, -1, -step))
    if levels[-1] != 0:
        levels.append(0)
    return levels
