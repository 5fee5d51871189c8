"""The one JSON writer of spin_diff: files that strict parsers accept.

Python's ``json`` writes NaN and Infinity as bare words that JSON does not have; every summary
spin_diff writes goes through :func:`write_json`, which writes them as ``null`` and turns numpy
and torch numbers and arrays into plain numbers and lists.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["json_safe", "write_json"]


def json_safe(value: Any) -> Any:
    """``value`` with numpy/torch numbers and arrays as plain lists, non-finite floats as None."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, value: Any, indent: int | None = 1) -> Path:
    """Write ``value`` as JSON (no NaN or Infinity: they become null) to ``path``."""
    path = Path(path)
    path.write_text(json.dumps(json_safe(value), indent=indent, allow_nan=False))
    return path
