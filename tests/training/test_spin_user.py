"""A SPIN user's files and runs: dataset names, SPIN's ground-truth rule, safe run folders, pictures."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
from training_helpers import make_keypoint_dataset, people, read_log, tiny_overrides

from spin_diff.cache.store import FitStore
from spin_diff.cli.main import main
from spin_diff.data.spin_npz import read_spin_npz, write_spin_npz


def _sets(**extra):
    return [arg for value in tiny_overrides(**extra) for arg in ("--set", value)]


def _train(args, capsys):
    code = main(["train", "--threads", "1", "--quiet", *args])
    return code, capsys.readouterr().err


def _without(path, keys, out):
    """A copy of the npz at ``path`` without ``keys``, written to ``out``."""
    data = read_spin_npz(path, require=())
    return write_spin_npz(out, {k: v for k, v in data.items() if k not in keys}, require=())


@pytest.fixture(scope="module")
def spin_data(body_model, tmp_path_factory):
    """SPIN's data/ folder in miniature: an LSP-like set with no SMPL (named as SPIN names its
    file) and its static fits ``static_fits/lsp-orig_fits.npy``; an MPII-like set with
    ``pose``/``shape`` but no ``has_smpl`` key."""
    root = tmp_path_factory.mktemp("spin_data")
    (root / "dataset_extras").mkdir()
    (root / "static_fits").mkdir()
    made = make_keypoint_dataset(body_model, root / "made.npz", 16, seed=11)
    lsp = _without(made, ("pose", "shape", "has_smpl"), root / "dataset_extras" / "lsp_dataset_original_train.npz")
    pose, betas, _ = people(body_model, 16, 11)  # the truth of made.npz, a little off: SPIN-like static fits
    rng = np.random.default_rng(0)
    fits = np.concatenate([pose + rng.normal(0, 0.02, pose.shape), betas], 1).astype(np.float32)
    np.save(root / "static_fits" / "lsp-orig_fits.npy", fits)
    mpii = _without(make_keypoint_dataset(body_model, root / "m.npz", 16, seed=12), ("has_smpl",),
                    root / "dataset_extras" / "mpii_train.npz")  # fmt: skip
    return {"root": root, "lsp": lsp, "mpii": mpii, "fits": root / "static_fits" / "lsp-orig_fits.npy"}


def test_static_fits_under_spins_names_supervise_training(spin_data, tmp_path, capsys, caplog):
    """import-spin names the fits after the --data file as train names it (lsp-orig), so the
    in-loop-off run is supervised by them; the start-up line names the dataset and its records."""
    cache = tmp_path / "run" / "fits"
    assert main(["cache", "import-spin", str(spin_data["fits"]), "--data", str(spin_data["lsp"]), "--cache", str(cache)]) == 0
    assert "dataset lsp-orig" in capsys.readouterr().out
    store = FitStore(cache, readonly=True)
    assert store.datasets() == ["lsp-orig"] and store.count("lsp-orig") == 16
    store.close()
    caplog.set_level(logging.INFO)
    code, err = _train(["--dataset", str(spin_data["lsp"]), "--out", str(tmp_path / "run"),
                        *_sets(steps=2, **{"fitting.in_loop": "false"})], capsys)  # fmt: skip
    assert code == 0, err
    rows = read_log(tmp_path / "run")
    assert all(r["supervised_share"] > 0 and r["loss_pose"] > 0 for r in rows)  # the static fits supervise
    coverage = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dataset lsp-orig (")]
    assert coverage and "16 records (16 static)" in coverage[0] and "0 ground-truth SMPL" in coverage[0]


def test_a_dataset_named_otherwise_is_warned_about_and_can_be_named(spin_data, tmp_path, capsys, caplog):
    cache = tmp_path / "run" / "fits"
    assert main(["cache", "import-spin", str(spin_data["fits"]), "--data", str(spin_data["lsp"]), "--cache", str(cache)]) == 0
    renamed = tmp_path / "lsp_copy.npz"
    shutil.copy(spin_data["lsp"], renamed)
    caplog.set_level(logging.INFO)
    code, err = _train(["--dataset", str(renamed), "--out", str(tmp_path / "run"),
                        *_sets(steps=1, **{"fitting.in_loop": "false"})], capsys)  # fmt: skip
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("lsp_copy has no records" in w and f"--dataset lsp-orig={renamed}" in w for w in warnings)
    assert read_log(tmp_path / "run")[0]["supervised_share"] == 0
    caplog.clear()
    code, err = _train(["--dataset", f"lsp-orig={renamed}", "--out", str(tmp_path / "named"), "--cache", str(cache),
                        *_sets(steps=1, **{"fitting.in_loop": "false"})], capsys)  # fmt: skip
    assert code == 0, err
    assert read_log(tmp_path / "named")[0]["supervised_share"] > 0
    assert not [r for r in caplog.records if r.levelno == logging.WARNING and "has no records" in r.getMessage()]


def test_rows_without_has_smpl_are_ground_truth_as_spin_reads_them(spin_data, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    code, err = _train(["--dataset", str(spin_data["mpii"]), "--out", str(tmp_path / "run"),
                        *_sets(steps=2, **{"fitting.in_loop": "false"})], capsys)  # fmt: skip
    assert code == 0, err
    rows = read_log(tmp_path / "run")
    assert all(r["supervised_share"] == 1.0 and r["loss_pose"] > 0 for r in rows)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("dataset mpii ("))
    assert "16 ground-truth SMPL" in line and "no 'has_smpl' key" in line and "SPIN's rule" in line


def test_cache_build_gt_from_dataset_follows_the_rule(spin_data, tmp_path):
    cache = tmp_path / "fits"
    assert main(["cache", "build", "--dataset", str(spin_data["mpii"]), "--cache", str(cache), "--gt-from-dataset",
                 "--quiet", "--set", "fitting.stages.0.iterations=2", "--set", "fitting.stages.1.iterations=2"]) == 0  # fmt: skip
    fits = FitStore(cache, readonly=True).get_many("mpii", np.arange(16))
    assert fits.found.all() and (fits.source == 3).all()  # every row stored as ground truth
    truth = read_spin_npz(spin_data["mpii"], require=())
    np.testing.assert_allclose(fits.pose, truth["pose"], atol=1e-6)


def test_ground_truth_rows_with_nan_are_not_ground_truth(body_model, tmp_path):
    from spin_diff.data.spin_npz import smpl_ground_truth

    data = read_spin_npz(make_keypoint_dataset(body_model, tmp_path / "d.npz", 4, seed=1), require=())
    data.pop("has_smpl")
    data["pose"][2, 5] = np.nan
    mask, rule = smpl_ground_truth(data)
    assert mask.tolist() == [True, True, False, True] and "SPIN's rule" in rule
    data["has_smpl"] = np.array([1, 0, 1, 1])
    assert smpl_ground_truth(data)[0].tolist() == [True, False, False, True]
    assert smpl_ground_truth(data, np.array([3, 1]))[0].tolist() == [True, False]


# ------------------------------------------------------------------------------ run folders
@pytest.fixture(scope="module")
def small(body_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    return {
        "train": make_keypoint_dataset(body_model, folder / "small.npz", 16, seed=21),
        "val": make_keypoint_dataset(body_model, folder / "held_out.npz", 8, seed=22, has_smpl=1.0),
    }


def test_bad_validation_data_is_refused_before_step_1(small, tmp_path, capsys):
    run = tmp_path / "run"
    code, err = _train(["--dataset", str(small["train"]), "--out", str(run),
                        *_sets(steps=2, validate_every=1, validation_data=tmp_path / "nope.npz")], capsys)  # fmt: skip
    assert code == 2 and "nope.npz" in err and err.count("\n") == 1
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file at all")
    code, err = _train(["--dataset", str(small["train"]), "--out", str(run),
                        *_sets(steps=2, validate_every=1, validation_data=tmp_path / "garbage.npz")], capsys)  # fmt: skip
    assert code == 2 and "garbage.npz" in err and err.count("\n") == 1
    code, err = _train(["--dataset", str(small["train"]), "--out", str(run), *_sets(steps=2, validate_every=1)], capsys)
    assert code == 2 and "validation_data" in err
    assert not run.exists() or not any(run.iterdir())  # nothing was trained or written


def test_a_used_run_folder_is_refused_without_resume_or_overwrite(small, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(["--dataset", str(small["train"]), "--out", str(run), *_sets(steps=1)], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, err = _train(["--dataset", str(small["train"]), "--out", str(run), *_sets(steps=1)], capsys)
    assert code == 2 and "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing changed
    records = FitStore(run / "fits", readonly=True).count()
    code, err = _train(["--dataset", str(small["train"]), "--out", str(run), "--overwrite", *_sets(steps=2)], capsys)
    assert code == 0, err
    assert len(read_log(run)) == 2  # a fresh log, not appended to
    assert FitStore(run / "fits", readonly=True).count() >= records  # the fit store is kept
    code, err = _train(["--dataset", str(small["train"]), "--out", str(run), "--overwrite", "--resume", *_sets()], capsys)
    assert code == 2 and "only one" in err


def test_out_that_is_a_file_or_cannot_be_made(small, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    for out in (blocker, blocker / "run"):
        code, err = _train(["--dataset", str(small["train"]), "--out", str(out), *_sets(steps=1)], capsys)
        assert code == 2 and str(blocker) in err and err.count("\n") == 1
    assert blocker.read_text() == "mine"
    code, err = _train(["--out", str(tmp_path / "r"), *_sets(steps=1)], capsys)
    assert code == 2 and "--dataset" in err
    code, err = _train(["--dataset", str(small["train"]), "--out", str(tmp_path / "r"), "--time-limit", "-5",
                        *_sets(steps=1)], capsys)  # fmt: skip
    assert code == 2 and "--time-limit" in err


def test_resume_with_only_out_continues_with_the_saved_config(small, tmp_path, capsys, caplog):
    run = tmp_path / "run"
    code, err = _train(["--dataset", f"mine={small['train']}", "--out", str(run), "--time-limit", "0",
                        *_sets(batch=4, epochs=2)], capsys)  # fmt: skip
    assert code == 0, err
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 1
    caplog.set_level(logging.INFO)
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "at step 8, epoch 2" in out  # 16 examples / batch 4 = 4 steps, 2 epochs: the saved config's
    assert any("resuming with" in r.getMessage() and "config.yaml" in r.getMessage() for r in caplog.records)
    assert FitStore(run / "fits", readonly=True).datasets() == ["mine"]  # the saved name
    caplog.clear()
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--threads", "1", "--set", "epochs=3"]) == 0
    assert "at step 12, epoch 3" in capsys.readouterr().out  # a flag given again overrides the saved value
    assert any("given again: --set epochs=3" in r.getMessage() for r in caplog.records)


def test_periodic_best_checkpoints_and_the_training_picture(small, tmp_path, capsys):
    import csv

    import cv2

    run = tmp_path / "run"
    code, err = _train(["--dataset", str(small["train"]), "--out", str(run),
                        *_sets(batch=4, epochs=2, checkpoint_every=1, keep_last=2, validate_every=2,
                               validation_data=small["val"])], capsys)  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in run.glob("step-*.pt")) == ["step-00000007.pt", "step-00000008.pt"]
    assert torch.load(run / "step-00000007.pt", weights_only=False)["step"] == 7
    with (run / "validation.csv").open() as handle:
        validation = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    best = min(validation, key=lambda row: row["pa_mpjpe"])
    saved = torch.load(run / "best.pt", weights_only=False)
    assert saved["step"] == best["step"] and saved["best_validation"]["pa_mpjpe"] == pytest.approx(best["pa_mpjpe"])
    picture = cv2.imread(str(run / "training.png"))
    assert picture is not None and picture.shape[0] > 400 and picture.std() > 10


def test_tensorboard_event_files_hold_the_example_pictures(small, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="the optional tensorboard package is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    code, err = _train(["--dataset", str(small["train"]), "--out", str(run), *_sets(steps=2)], capsys)
    assert code == 0, err
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert "examples" in events.Tags()["images"] and "train/loss" in events.Tags()["scalars"]
    assert [e.step for e in events.Images("examples")] == [1, 2]


def test_a_full_disk_at_a_checkpoint_leaves_no_partial_file(small, tmp_path, capsys, monkeypatch):
    import errno

    import spin_diff.utils.checkpoints as checkpoints

    def full_disk(obj, path):
        with open(path, "wb") as handle:
            handle.write(b"\0" * 4096)  # what got written before the disk filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    run = tmp_path / "run"
    code, err = _train(["--dataset", str(small["train"]), "--out", str(run), *_sets(steps=1)], capsys)
    assert code == 2 and "No space left on device" in err and "last.pt" in err and err.count("\n") == 1
    assert not list(run.glob("*.partial")) and not (run / "last.pt").exists()
