"""Stateless, per-sample Gaussian noise: a pure function of (seed, stream, element index).

A fit must not change with its batch-mates, so the noise a sample sees cannot come from a
generator shared by the batch (whose draws depend on the batch's shape and the sample's
row). Here each number is a hash of the sample's 64-bit seed, a stream number (which step of
which stage) and the element's index: the same sample gets the same noise alone, at any row
of any batch, on any device, and a doubled batch (the orientation-flip trial) simply repeats
its seeds. Everything is int64 tensor arithmetic on the device (no host sync, no Python loop
over samples).

The hash is SplitMix64's finaliser (Steele, Lea and Flood 2014), written with int64 tensors:
multiplication wraps modulo 2^64 as for unsigned integers, and logical right shifts are
arithmetic shifts with the sign bits masked off. Uniforms take the top 53 bits; normals come
from the Box-Muller transform, in float64, then cast.
"""

from __future__ import annotations

import hashlib
import math

import torch

__all__ = ["mix64", "mix64_int", "keyed_normal", "seed_from_text", "example_seeds"]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _signed(value: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64 of every int64 element (bits read as unsigned): a bijection of 64-bit words
    whose outputs look independent for consecutive inputs."""
    z = x + _signed(_GOLDEN)
    z = (z ^ _shift_right(z, 30)) * _signed(_M1)
    z = (z ^ _shift_right(z, 27)) * _signed(_M2)
    return z ^ _shift_right(z, 31)


def mix64_int(value: int) -> int:
    """:func:`mix64` of one Python integer, as the int64 with the same bits (reference and
    host-side keys)."""
    z = (value + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return _signed(z ^ (z >> 31))


def keyed_normal(seeds: torch.Tensor, stream: int, dim: int, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise ``(B, dim)`` whose row b depends only on ``seeds[b]``, ``stream``
    and the column: never on B or on the other rows.

    Args:
        seeds: (B,) int64, one key per sample (see :func:`example_seeds`).
        stream: which draw (e.g. stage and step); different streams give independent noise.
        dim: numbers per sample.
    """
    if seeds.dtype != torch.int64 or seeds.ndim != 1:
        raise ValueError(f"seeds must be a (B,) int64 tensor, got {seeds.dtype} {tuple(seeds.shape)}")
    half = (dim + 1) // 2
    key = mix64(seeds ^ mix64_int(stream))  # (B,)
    counters = torch.arange(1, 2 * half + 1, device=seeds.device, dtype=torch.int64) * _signed(_GOLDEN)
    bits = mix64(key[:, None] + counters)  # (B, 2 * half)
    uniform = (_shift_right(bits, 11).to(torch.float64) + 0.5) * 2.0**-53  # in (0, 1)
    u1, u2 = uniform[:, :half], uniform[:, half:]
    radius = torch.sqrt(-2.0 * torch.log(u1))
    angle = 2.0 * math.pi * u2
    normal = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :dim]
    return normal.to(dtype)


def seed_from_text(text: str) -> int:
    """A stable 63-bit seed for a name (sha256; the same in every process and Python run)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def example_seeds(name: str, indices, device=None) -> torch.Tensor:
    """Per-example seeds ``(B,)`` int64 from a dataset (or image) name and example indices:
    the same example gets the same seed whatever batch or shard it is fitted in."""
    index = torch.as_tensor(indices, dtype=torch.int64, device=device).reshape(-1)
    return mix64(index ^ seed_from_text(name))
