"""Tiny regressor configurations shared by the model, evaluation and fitting tests."""

from __future__ import annotations

from spin_diff.models.config import HeadConfig, KeypointEncoderConfig, RegressorConfig


def tiny_image_config(backbone: str = "resnet18", width: float = 0.125) -> RegressorConfig:
    return RegressorConfig(input="image", backbone=backbone, width=width, head=HeadConfig(hidden=32))


def tiny_keypoint_config() -> RegressorConfig:
    return RegressorConfig(
        input="keypoints",
        head=HeadConfig(hidden=32),
        keypoints=KeypointEncoderConfig(hidden=32, blocks=1, feature_dim=16, joint_dropout=0.1),
    )
