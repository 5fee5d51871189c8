"""Fixtures for the regressor tests: the bundled body model and tiny regressors (the second,
different body model ``other_body_model`` is in tests/conftest.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from spin_diff.models.config import HeadConfig, KeypointEncoderConfig, RegressorConfig


def tiny_image_config(backbone: str = "resnet18", width: float = 0.125) -> RegressorConfig:
    return RegressorConfig(input="image", backbone=backbone, width=width, head=HeadConfig(hidden=32))


def tiny_keypoint_config() -> RegressorConfig:
    return RegressorConfig(
        input="keypoints",
        head=HeadConfig(hidden=32),
        keypoints=KeypointEncoderConfig(hidden=32, blocks=1, feature_dim=16, joint_dropout=0.1),
    )


@pytest.fixture
def tiny_image_regressor(body_model):
    import torch

    from spin_diff.models.hmr import build_regressor

    torch.manual_seed(0)
    return build_regressor(tiny_image_config(), body=body_model).eval()


@pytest.fixture
def tiny_keypoint_regressor(body_model):
    import torch

    from spin_diff.models.hmr import build_regressor

    torch.manual_seed(0)
    return build_regressor(tiny_keypoint_config(), body=body_model).eval()


@pytest.fixture(scope="session")
def regressor_configs():
    """Tiny regressor configurations: ``tiny_image_config(backbone, width)``, ``tiny_keypoint_config()``."""
    return SimpleNamespace(tiny_image_config=tiny_image_config, tiny_keypoint_config=tiny_keypoint_config)
