"""Which body model a command loads (the ``body:`` section of every recipe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from spin_diff.constants import NUM_BETAS

__all__ = ["BodyConfig"]


@dataclass
class BodyConfig:
    """Which body model to load. ``model_path`` None means the bundled free model."""

    model_path: str | None = None
    gender: Literal["neutral", "male", "female"] = "neutral"
    num_betas: int = NUM_BETAS
    j_regressor_extra: str | None = None
    j_regressor_h36m: str | None = None
    mean_params: str | None = None
