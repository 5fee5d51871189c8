"""Fixtures for the fit-cache tests: small stores and tiny SPIN-format datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
from fitcache_helpers import make_spin_dataset


@pytest.fixture(scope="session")
def body_model():
    from spin_diff.body.model import load_body_model

    return load_body_model()


@pytest.fixture(scope="session")
def tiny_dataset(body_model, tmp_path_factory) -> Path:
    """16 examples, every one with ground-truth SMPL."""
    return make_spin_dataset(body_model, tmp_path_factory.mktemp("data") / "tiny.npz", 16, seed=0)
