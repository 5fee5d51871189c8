"""The one JSON writer: strict parsers read what it writes."""

import json
import math

import numpy as np
import torch

from spin_diff.utils.jsonio import json_safe, write_json


def test_non_finite_numbers_become_null_and_arrays_lists(tmp_path):
    value = {"nan": float("nan"), "inf": np.float32(np.inf), "array": np.array([1.0, np.nan]), "tensor": torch.ones(2),
             "nested": [(1, np.int64(2))], "ok": 0.5}  # fmt: skip
    path = write_json(tmp_path / "summary.json", value)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"nan": None, "inf": None, "array": [1.0, None], "tensor": [1.0, 1.0],
                                "nested": [[1, 2]], "ok": 0.5}  # fmt: skip


def test_finite_values_are_kept_exactly():
    assert json_safe({"x": math.pi, "n": 3, "s": "text", "none": None}) == {"x": math.pi, "n": 3, "s": "text", "none": None}
