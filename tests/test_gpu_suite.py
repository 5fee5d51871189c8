"""``benchmarks/gpu_suite.py --device cpu --quick``: the GPU suite runs as is and writes every
section with its figures, so a session that is lent a GPU can run it unchanged."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"\d+(?:\.\d+)?"


def section(text: str, number: int) -> str:
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"section {number} missing:\n{text}"
    return match.group(0)


@pytest.mark.slow
def test_quick_cpu_run_writes_every_section_with_numbers(tmp_path):
    out = tmp_path / "suite.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_suite.py"), "--device", "cpu", "--quick",
               "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert re.search(r"^- device: .+", text, flags=re.M)
    assert re.search(rf"^- torch {NUMBER}.*; CUDA ", text, flags=re.M)
    assert re.search(r"^- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC", text, flags=re.M)
    # on a cpu every attempt applies except CUDA graphs, and none may fail
    assert "failed:" not in text, text

    tests = section(text, 1)
    assert re.search(r"(\d+) passed, 0 failed", tests) and int(re.search(r"(\d+) passed", tests).group(1)) >= 6

    fits = section(text, 2)
    for recipe in ("SPIN", "default"):
        for mode in ("eager", "torch.compile"):
            rows = re.findall(rf"^\| {recipe} \| \d+ \| {re.escape(mode)} \| ({NUMBER}) \| {NUMBER} \| {NUMBER}",
                              fits, flags=re.M)  # fmt: skip
            assert len(rows) == 2 and all(float(r) > 0 for r in rows), (recipe, mode, fits)
        assert re.search(rf"^\| {recipe} \| \d+ \| CUDA graphs \| skipped: ", fits, flags=re.M)

    training = section(text, 3)
    for model in ("resnet50", "keypoints"):
        # data, settle, scoring, forward, fitting, store_io, backward, step
        assert re.search(rf"^\| {model} \| gmm \|(?: \d+ \|){{8}} {NUMBER}x \|$", training, flags=re.M), training
    assert re.search(rf"^\| \d+ \| \d+ \| {NUMBER} \| {NUMBER} \|$", training, flags=re.M)  # the loader's row

    assert re.search(rf"^end to end: {NUMBER} s \(exit 0\)", section(text, 4), flags=re.M)
