"""Fixtures of the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def body_model():
    from spin_diff.body.model import load_body_model

    return load_body_model()
