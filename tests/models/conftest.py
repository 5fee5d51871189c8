"""Fixtures for the regressor tests: the bundled body model and tiny regressors (the second,
different body model ``other_body_model`` is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from regressor_helpers import tiny_image_config, tiny_keypoint_config


@pytest.fixture(scope="session")
def body_model():
    from spin_diff.body.model import load_body_model

    return load_body_model()


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
