"""Results that do not depend on timing: runs started together, and kill -9 + --resume, end
bit-identical to one uninterrupted serial run (weights, optimiser state, store records, indices.csv)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from training_helpers import REPO_ROOT, make_keypoint_dataset, read_log, tiny_overrides

from spin_diff.cache.store import FitStore
from spin_diff.cache.updates import PREVIOUS_PREFIX
from spin_diff.training.replay import KILL_AT_STEP

# 12 steps of 4 over 8 examples (2 steps an epoch): each step meets examples of the steps just before
# it, and every stored fit supervises (the threshold is above every score)
OVERRIDES = dict(batch=4, iterations=12, epochs=6, checkpoint_every=5, log_indices="true", **{"fitting.threshold": 1e4})
RECORD_FIELDS = ("found", "pose", "betas", "transl", "score", "residuals", "source", "step", "config_hash")


@pytest.fixture(scope="module")
def dataset(body_model, tmp_path_factory):
    return make_keypoint_dataset(body_model, tmp_path_factory.mktemp("data") / "timing.npz", 8, seed=7)


def _start(dataset, run_dir, *extra, env=None, nice=False):
    sets = [arg for value in tiny_overrides(**OVERRIDES) for arg in ("--set", value)]
    command = [sys.executable, "-m", "spin_diff.cli.main", "train", "--dataset", str(dataset), "--out", str(run_dir),
               "--threads", "1", "--quiet", *sets, *extra]  # fmt: skip
    if nice:
        command = ["nice", "-n", "10", *command]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process, expect=0):
    out, err = process.communicate(timeout=300)
    assert process.returncode == expect, err[-2000:]


def _outcome(run_dir):
    """Weights, optimiser state, every store record (but its wall-clock time) and indices.csv."""
    saved = torch.load(run_dir / "last.pt", weights_only=False, map_location="cpu")
    store = FitStore(run_dir / "fits", readonly=True)
    fits = store.get_many("timing", np.arange(8))
    env = store._environment()
    with env.begin() as txn, txn.cursor() as cursor:
        kept = cursor.set_range(PREVIOUS_PREFIX) and bytes(cursor.key()).startswith(PREVIOUS_PREFIX)
    store.close()
    return {
        "model": saved["model"],
        "optimizer": saved["optimizer"]["state"],
        "step": saved["step"],
        "records": {name: getattr(fits, name) for name in RECORD_FIELDS},
        "indices": (run_dir / "indices.csv").read_text(),
        "log_steps": [int(row["step"]) for row in read_log(run_dir)],
        "kept_versions": bool(kept),
    }


def _assert_identical(a, b):
    assert a["step"] == b["step"] == 12
    assert a["indices"] == b["indices"]
    assert a["log_steps"] == b["log_steps"] == list(range(1, 13))  # no replayed step logged twice
    for name in RECORD_FIELDS:
        np.testing.assert_array_equal(a["records"][name], b["records"][name], err_msg=name)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for slot, state in a["optimizer"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"][slot][key]), (slot, key)
    assert not a["kept_versions"] and not b["kept_versions"]  # the final checkpoint dropped them


@pytest.fixture(scope="module")
def serial(dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("serial") / "run"
    _finish(_start(dataset, run_dir))
    outcome = _outcome(run_dir)
    assert outcome["records"]["found"].all()  # every example got a fit: the store was in the loop
    assert len(np.unique(outcome["records"]["step"])) > 2  # fits improved over many steps
    return outcome


@pytest.mark.slow
def test_runs_started_together_match_the_serial_run(dataset, serial, tmp_path):
    """Two runs at once (one niced, one with DataLoader workers that read batches ahead): the
    writer's timing differs between them, their results must not."""
    first = _start(dataset, tmp_path / "a")
    second = _start(dataset, tmp_path / "b", "--set", "data.workers=2", nice=True)
    _finish(first)
    _finish(second)
    _assert_identical(_outcome(tmp_path / "a"), serial)
    _assert_identical(_outcome(tmp_path / "b"), serial)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [5, 8, 9])  # right after a checkpoint, mid-interval, just before the next
def test_kill_9_then_resume_matches_the_uninterrupted_run(dataset, serial, tmp_path, kill_at):
    run_dir = tmp_path / "run"
    _finish(_start(dataset, run_dir, env={KILL_AT_STEP: str(kill_at)}), expect=-signal.SIGKILL)
    killed = torch.load(run_dir / "last.pt", weights_only=False)
    assert killed["step"] == 5  # the checkpoint the resume starts from
    lines = (run_dir / "indices.csv").read_text().splitlines()
    assert len(lines) == kill_at  # the steps after the checkpoint ran, and will be replayed
    _finish(_start(dataset, run_dir, "--resume"))
    _assert_identical(_outcome(run_dir), serial)
