"""Fixtures for the evaluation tests: the bundled body model and SPIN-format files built here."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def body_model():
    from spin_diff.body.model import load_body_model

    return load_body_model()
