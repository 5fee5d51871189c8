"""Configuration of the regressors (plain dataclasses, no torch import).

``RegressorConfig`` is what a checkpoint records and what :func:`spin_diff.models.hmr.build_regressor`
reads. Defaults are SPIN's HMR: ResNet-50, 3 IEF iterations, hidden 1024, dropout 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

InputKind = Literal["image", "keypoints"]


@dataclass
class HeadConfig:
    """SPIN's iterative-error-feedback head."""

    iterations: int = 3
    hidden: int = 1024
    dropout: float = 0.5


@dataclass
class KeypointEncoderConfig:
    """The MLP that stands in for the backbone when the input is 49 keypoints."""

    hidden: int = 1024
    blocks: int = 2  # residual blocks after the input layer
    feature_dim: int = 1024  # features handed to the head (and to the diffusion prior)
    joint_dropout: float = 0.1  # training only: share of joints whose confidence is zeroed


@dataclass
class RegressorConfig:
    """Which regressor: input kind, backbone or keypoint encoder, head."""

    input: InputKind = "image"
    backbone: Literal["resnet18", "resnet34", "resnet50"] = "resnet50"
    width: float = 1.0  # channel multiplier of the backbone (tiny networks for tests)
    # a torchvision-layout ResNet state dict (.pth) the backbone starts from before training
    # (SPIN's hmr(pretrained=True) ImageNet start); None: He initialisation
    backbone_weights: str | None = None
    head: HeadConfig = field(default_factory=HeadConfig)
    keypoints: KeypointEncoderConfig = field(default_factory=KeypointEncoderConfig)
