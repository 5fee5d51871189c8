"""The SPIN loop on a tiny 2D-only set: the store fills, scores only fall, supervision grows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_helpers import make_keypoint_dataset, read_log, tiny_config

from spin_diff.cache.records import FitBatch, Source
from spin_diff.cache.store import FitStore
from spin_diff.training.run import train


@pytest.fixture(scope="module")
def two_d_only(body_model, tmp_path_factory):
    return make_keypoint_dataset(body_model, tmp_path_factory.mktemp("data") / "twod.npz", 16, seed=3, has_smpl=0.0)


def _store_snapshot(path, num):
    fits = FitStore(path, readonly=True).get_many("twod", np.arange(num))
    return fits


def test_store_fills_scores_fall_supervision_rises(body_model, two_d_only, tmp_path):
    from spin_diff.body.files import body_model_hash, body_model_label

    run_dir = tmp_path / "run"
    # Two ground-truth records, deliberately poor (high score): fits must never replace them.
    store = FitStore.open_or_create(run_dir / "fits", body_model_hash(body_model), body_model_label(body_model))
    gt_rows = np.array([1, 6])
    store.update_if_better(FitBatch("twod", gt_rows, np.zeros((2, 72)), np.zeros((2, 10)), np.full(2, 5000.0),
                                    source=Source.GROUND_TRUTH))  # fmt: skip
    store.close()

    snapshots = []
    for epochs in (1, 2, 4, 6):  # 2 steps per epoch; each call resumes the last
        config = tiny_config(iterations=8, **{"epochs": epochs, "fitting.threshold": 60.0})
        report = train(config, [(two_d_only, None)], run_dir, resume=epochs > 1, progress=False)
        assert report.step == 2 * epochs
        snapshots.append(_store_snapshot(run_dir / "fits", 16))

    first, last = snapshots[0], snapshots[-1]
    in_loop = first.source == int(Source.IN_LOOP)
    assert first.found.all()  # one epoch visits every example once
    assert in_loop.sum() == 14 and not in_loop[gt_rows].any()
    for before, after in zip(snapshots, snapshots[1:]):
        fitted = before.source == int(Source.IN_LOOP)
        assert np.all(after.score[fitted] <= before.score[fitted])
    assert (last.score[in_loop] < first.score[in_loop]).any()
    # ground truth untouched
    assert np.all(last.source[gt_rows] == int(Source.GROUND_TRUTH))
    assert np.all(last.score[gt_rows] == 5000.0) and np.all(last.pose[gt_rows] == 0)
    assert np.all(last.step[in_loop] >= 0)

    rows = read_log(run_dir)
    assert [r["step"] for r in rows] == list(range(1, 13))
    early, late = rows[:2], rows[-2:]
    assert np.mean([r["supervised_share"] for r in late]) > np.mean([r["supervised_share"] for r in early])
    assert np.mean([r["loss"] for r in late]) < np.mean([r["loss"] for r in early])


def test_periodic_validation_writes_evaluation_rows(body_model, two_d_only, tmp_path):
    held_out = make_keypoint_dataset(body_model, tmp_path / "held_out.npz", 8, seed=9, has_smpl=1.0, with_3d=True)
    config = tiny_config(epochs=2, **{"validate_every": 2, "validation_data": str(held_out)})
    train(config, [(two_d_only, None)], tmp_path / "run", progress=False)
    import csv

    with (tmp_path / "run" / "validation.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(float(r["pa_mpjpe"]) > 0 and float(r["examples"]) == 8 for r in rows)


def test_static_fits_supervise_without_in_loop_fitting(body_model, two_d_only, tmp_path):
    """fitting.in_loop false: SPIN's static fits (here the true bodies) supervise every view
    (they score near 0 under any augmentation); nothing is written."""
    from spin_diff.body.files import body_model_hash
    from training_helpers import people

    pose, betas, _ = people(body_model, 16, seed=3)
    store = FitStore.open_or_create(tmp_path / "run" / "fits", body_model_hash(body_model))
    store.update_if_better(FitBatch("twod", np.arange(16), pose, betas, np.full(16, 1.0), source=Source.STATIC))
    store.close()
    config = tiny_config(epochs=2, **{"fitting.in_loop": "false"})
    train(config, [(two_d_only, None)], tmp_path / "run", progress=False)
    rows = read_log(tmp_path / "run")
    assert all(r["supervised_share"] == 1.0 and r["mean_fit_score"] < 1.0 for r in rows)
    assert all(r["improved_fits"] == 0 for r in rows)
    after = FitStore(tmp_path / "run" / "fits", readonly=True).get_many("twod", np.arange(16))
    assert np.all(after.source == int(Source.STATIC)) and np.all(after.score == 1.0)


def test_tensorboard_is_used_when_installed(two_d_only, tmp_path, monkeypatch):
    """With the optional tensorboard package importable, every summary goes there too (a
    stand-in module here: the package is not a requirement)."""
    import sys
    import types

    written, pictures = [], []

    class SummaryWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            written.append((tag, step))

        def add_image(self, tag, image, step, dataformats):
            assert dataformats == "HWC" and image.dtype == np.uint8 and image.ndim == 3
            written.append((tag, step))
            pictures.append(image)

        def close(self):
            written.append(("closed", -1))

    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = SummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    train(tiny_config(steps=2), [(two_d_only, None)], tmp_path / "run", progress=False)
    assert ("train/loss", 1) in written and ("train/supervised_share", 2) in written
    assert ("examples", 1) in written and ("examples", 2) in written  # the fixed examples, every summary
    # 4 examples x (prediction over the crop, stored fit over the crop, side view), 224 px tiles
    assert pictures[0].shape == (4 * (224 + 2), 3 * (224 + 2), 3)
    assert written[-1] == ("closed", -1)


def test_ground_truth_from_the_dataset_is_stored_once_with_its_provenance(body_model, tmp_path):
    from spin_diff.body.files import body_model_hash
    from spin_diff.utils.hashing import config_hash

    data = make_keypoint_dataset(body_model, tmp_path / "gt.npz", 16, seed=4, has_smpl=1.0)
    train(tiny_config(epochs=2), [(data, None)], tmp_path / "run", progress=False)
    store = FitStore(tmp_path / "run" / "fits", readonly=True)
    fits = store.get_many("gt", np.arange(16))
    assert np.all(fits.source == int(Source.GROUND_TRUTH))
    assert fits.step.max() <= 1  # written in the first epoch (steps 0, 1), never again
    # described as `spin-diff cache build --gt-from-dataset` describes ground truth
    description = {"kind": "ground-truth", "dataset": "gt", "body_model_sha256": body_model_hash(body_model)}
    assert np.all(fits.config_hash == np.uint64(config_hash(description)))
    assert store.configs()[config_hash(description)] == description
    assert np.all(fits.score < 1.0)  # the true bodies, scored in the canonical crop


@pytest.mark.parametrize(
    "settings",
    [{"fitting.prior": "gmm+diffusion"},
     {"fitting.method": "guided", "fitting.diffusion.guided.t_start": 8, "fitting.diffusion.guided.loops": 1}],
    ids=["diffusion-term", "guided"],
)  # fmt: skip
def test_diffusion_prior_in_the_loop(two_d_only, tmp_path, settings):
    report = train(tiny_config(steps=2, **settings), [(two_d_only, None)], tmp_path / "run", progress=False)
    assert report.step == 2
    fits = FitStore(tmp_path / "run" / "fits", readonly=True).get_many("twod", np.arange(16))
    assert (fits.source == int(Source.IN_LOOP)).sum() >= 12  # both steps' fits were stored
    hashes = torch.load(report.checkpoint, weights_only=False)["hashes"]
    assert hashes["diffusion_prior_sha256"] is not None  # the prior the fits used is recorded


def test_spins_loop_runs_with_the_lm_solver(two_d_only, tmp_path):
    """SPIN's in-loop recipe with ``optimizer: lm`` (the documented --set lines): every
    example's fit is stored, finite, and most score under SPIN's threshold."""
    config = tiny_config(iterations=5, **{"epochs": 1, "fitting.optimizer": "lm"})
    train(config, [(two_d_only, None)], tmp_path / "run", progress=False)
    fits = FitStore(tmp_path / "run" / "fits", readonly=True).get_many("twod", np.arange(16))
    assert (fits.source == int(Source.IN_LOOP)).all() and np.isfinite(fits.score).all()
    assert (fits.score < config.fitting.threshold).mean() > 0.5, fits.score
