"""The noise-predicting MLP (ScoreHMR's design, written afresh).

``x (B, D)`` -> linear to the residual width -> blocks -> linear back to D. Each block is
modulated by the timestep: ``h <- (1 + scale) * h + shift`` with (scale, shift) from the time
embedding, then ``h <- h + MLP(LayerNorm([h, cond]))``, the conditioning vector (image
features) concatenated to the block's input when the model has one. Every operation is per
row, so a sample never affects its batch-mates (no batch statistics anywhere).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spin_diff.diffusion.config import DenoiserConfig


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style embedding of timesteps: (B,) -> (B, dim), [sin, cos] halves."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1))
    angles = t.float()[:, None] * frequencies[None]
    embedding = torch.cat([angles.sin(), angles.cos()], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class ModulatedBlock(nn.Module):
    """Residual MLP block with time scale/shift modulation and optional concatenated condition."""

    def __init__(self, width: int, hidden: int, time_dim: int, cond_dim: int = 0) -> None:
        super().__init__()
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * width))
        self.mlp = nn.Sequential(
            nn.LayerNorm(width + cond_dim),
            nn.Linear(width + cond_dim, hidden),
            nn.GELU(),
            nn.LayerNorm(hidden),
            nn.Linear(hidden, width),
        )
        # start as (almost) the identity: no modulation, no residual update
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, h: torch.Tensor, time_embedding: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        scale, shift = self.modulation(time_embedding).chunk(2, dim=-1)
        h = h * (1 + scale) + shift
        inputs = h if cond is None else torch.cat([h, cond], dim=-1)
        return h + self.mlp(inputs)


class Denoiser(nn.Module):
    """eps_theta(x_t, t, cond): (B, D), (B,) long, (B, C) or None -> (B, D)."""

    def __init__(self, data_dim: int, config: DenoiserConfig) -> None:
        super().__init__()
        self.data_dim = data_dim
        self.config = config
        self.time_mlp = nn.Sequential(
            nn.Linear(config.time_dim, config.time_dim), nn.GELU(), nn.Linear(config.time_dim, config.time_dim)
        )
        self.input = nn.Linear(data_dim, config.width)
        self.blocks = nn.ModuleList(
            ModulatedBlock(config.width, config.hidden, config.time_dim, config.cond_dim) for _ in range(config.blocks)
        )
        self.output = nn.Sequential(nn.LayerNorm(config.width), nn.Linear(config.width, data_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.config.cond_dim and cond is None:
            cond = x.new_zeros(x.shape[0], self.config.cond_dim)  # the unconditional model
        elif not self.config.cond_dim:
            cond = None
        embedding = self.time_mlp(sinusoidal_embedding(t, self.config.time_dim).to(x.dtype))
        h = self.input(x)
        for block in self.blocks:
            h = block(h, embedding, cond)
        return self.output(h)
