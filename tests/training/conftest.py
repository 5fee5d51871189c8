"""Fixtures of the training tests."""

from __future__ import annotations

import pytest
