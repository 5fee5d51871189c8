"""Crash safety: kill -9 mid-run, --resume replays the same batches; SIGTERM saves and stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from training_helpers import REPO_ROOT, make_keypoint_dataset, tiny_config, tiny_overrides

from spin_diff.cache.store import FitStore


@pytest.fixture(scope="module")
def dataset(body_model, tmp_path_factory):
    return make_keypoint_dataset(body_model, tmp_path_factory.mktemp("data") / "crash.npz", 16, seed=7)


OVERRIDES = dict(batch=4, iterations=12, epochs=3, checkpoint_every=2, log_indices="true")  # 12 steps


def _command(dataset, run_dir, *extra):
    overrides = tiny_overrides(**OVERRIDES)
    sets = [arg for value in overrides for arg in ("--set", value)]
    return [sys.executable, "-m", "spin_diff.cli.main", "train", "--dataset", str(dataset), "--out", str(run_dir),
            "--threads", "1", "--quiet", *sets, *extra]  # fmt: skip


def _indices(run_dir):
    """step -> the example indices of its batch (the last line written for a step wins)."""
    lines = (run_dir / "indices.csv").read_text().splitlines()
    return {int(line.split(",")[0]): line.split(",", 3)[3] for line in lines}


def _wait_for(predicate, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"the run ended before it could be interrupted: {process.communicate()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the run")


@pytest.mark.slow
def test_kill_9_then_resume_replays_the_same_batches(dataset, tmp_path):
    """Acceptance 3. The reference and the resumption run in this process; the run that is
    killed runs in a subprocess (with two DataLoader workers: the order must not depend on them)."""
    from spin_diff.training.run import train

    reference_dir, crashed_dir = tmp_path / "reference", tmp_path / "crashed"
    train(tiny_config(**OVERRIDES), [(dataset, None)], reference_dir, progress=False)
    reference = _indices(reference_dir)
    assert sorted(reference) == list(range(12))

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(_command(dataset, crashed_dir, "--set", "data.workers=2"), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    indices = crashed_dir / "indices.csv"
    _wait_for(lambda: (crashed_dir / "last.pt").is_file() and indices.is_file()
              and len(indices.read_text().splitlines()) >= 5, process)  # fmt: skip
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoint = torch.load(crashed_dir / "last.pt", weights_only=False)
    killed_at = max(_indices(crashed_dir))
    assert 2 <= checkpoint["step"] <= killed_at < 11
    committed = FitStore(crashed_dir / "fits", readonly=True).get_many("crash", np.arange(16))
    assert committed.found.sum() >= 4 * min(checkpoint["step"], 4)  # the first epoch's fits, as far as it got

    report = train(tiny_config(**OVERRIDES), [(dataset, None)], crashed_dir, resume=True, progress=False)
    assert (report.step, report.stopped_by) == (12, "finished")
    after = _indices(crashed_dir)
    for step in range(checkpoint["step"], 12):
        assert after[step] == reference[step], step
    final = FitStore(crashed_dir / "fits", readonly=True).get_many("crash", np.arange(16))
    kept = committed.found
    assert final.found[kept].all() and np.all(final.score[kept] <= committed.score[kept])


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_stops(dataset, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run_dir = tmp_path / "run"
    process = subprocess.Popen(_command(dataset, run_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    indices = run_dir / "indices.csv"
    _wait_for(lambda: indices.is_file() and len(indices.read_text().splitlines()) >= 2, process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err  # stopped early: a wrapper can tell
    assert "stopped (SIGTERM)" in out
    checkpoint = torch.load(run_dir / "last.pt", weights_only=False)
    assert checkpoint["step"] == max(_indices(run_dir)) + 1  # the step in flight finished and was saved


def test_time_limit_stops_with_a_checkpoint(body_model, dataset, tmp_path):
    from spin_diff.body.files import body_model_hash
    from spin_diff.training.config import TrainConfig
    from spin_diff.training.datasets import DatasetEntry
    from spin_diff.training.run import train
    from spin_diff.utils.configs import load_config

    report = train(tiny_config(**OVERRIDES), [(dataset, None)], tmp_path / "run", time_limit=0.0, progress=False)
    assert (report.step, report.stopped_by) == (1, "time_limit")
    saved = torch.load(report.checkpoint, weights_only=False)
    assert (saved["step"], saved["epoch"], saved["batch_in_epoch"]) == (1, 0, 1)
    assert saved["hashes"]["body_model_sha256"] == body_model_hash(body_model)
    assert saved["hashes"]["gmm_sha256"] is not None and saved["hashes"]["diffusion_prior_sha256"] is None
    assert {"python", "numpy", "torch"} <= set(saved["rng"]) and saved["optimizer"]["state"]
    expected = tiny_config(**OVERRIDES)
    expected.data.datasets = [DatasetEntry(str(dataset))]  # the run's datasets are saved with it
    expected.fitting.prior = "gmm"  # saved as resolved: prior auto without a conditional prior is SPIN's GMM
    assert load_config(TrainConfig, tmp_path / "run" / "config.yaml") == expected
    # the project's own checkpoint works as --pretrained for a new run
    again = train(tiny_config(steps=1, **{k: v for k, v in OVERRIDES.items() if k != "log_indices"}),
                  [(dataset, None)], tmp_path / "second", pretrained=report.checkpoint, progress=False)  # fmt: skip
    assert again.step == 1
