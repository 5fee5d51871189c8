"""Bad input to spin-diff train: clear errors, or logged counts, never a traceback or poison."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_helpers import make_keypoint_dataset, read_log, tiny_config, tiny_overrides

from spin_diff.cache.store import FitStore
from spin_diff.cli.main import main
from spin_diff.data.spin_npz import write_spin_npz


@pytest.fixture(scope="module")
def dataset(body_model, tmp_path_factory):
    return make_keypoint_dataset(body_model, tmp_path_factory.mktemp("data") / "bad.npz", 16, seed=5)


def _run(args, capsys):
    code = main(["train", "--threads", "1", "--quiet", *args])
    return code, capsys.readouterr().err


def _sets(**extra):
    return [arg for value in tiny_overrides(steps=1, **extra) for arg in ("--set", value)]


def test_image_model_without_images(dataset, tmp_path, capsys):
    code, err = _run(["--dataset", str(dataset), "--out", str(tmp_path / "r"), *_sets(), "--set", "model.input=image"], capsys)
    assert code == 2 and "--images" in err and "keypoint model" in err


def test_dataset_missing_keys(tmp_path, capsys):
    write_spin_npz(tmp_path / "nobox.npz", {"openpose": np.zeros((4, 25, 3)), "imgname": np.array(["a"] * 4)}, require=())
    code, err = _run(["--dataset", str(tmp_path / "nobox.npz"), "--out", str(tmp_path / "r"), *_sets()], capsys)
    assert code == 2 and "nobox.npz" in err and "center" in err


def test_store_of_another_body_model(dataset, tmp_path, capsys):
    FitStore.open_or_create(tmp_path / "other", "0" * 64, "someone else's SMPL").close()
    code, err = _run(["--dataset", str(dataset), "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "other"), *_sets()],
                     capsys)  # fmt: skip
    assert code == 2 and "another body model" in err and "someone else's SMPL" in err


def test_resume_without_checkpoint_and_mismatched_images(dataset, tmp_path, capsys):
    code, err = _run(["--dataset", str(dataset), "--out", str(tmp_path / "none"), "--resume", *_sets()], capsys)
    assert code == 2 and "no checkpoint" in err
    code, err = _run(["--dataset", str(dataset), "--images", "a", "--images", "b", "--out", str(tmp_path / "r"), *_sets()],
                     capsys)  # fmt: skip
    assert code == 2 and "one image folder per dataset" in err


def test_non_finite_predictions_are_skipped_and_counted(dataset, tmp_path, monkeypatch):
    """Row 0 of every prediction is NaN: it is counted, never fitted into the store, and the
    other rows train normally (finite loss, finite weights)."""
    from spin_diff.cache.records import Source
    from spin_diff.models.hmr import Regressor

    original = Regressor.forward

    def broken(self, inputs, iterations=None):
        out = original(self, inputs, iterations)
        out.rotmat = out.rotmat.clone()
        out.rotmat[0] = float("nan")
        return out

    monkeypatch.setattr(Regressor, "forward", broken)
    run_dir = tmp_path / "run"
    from spin_diff.training.run import train

    report = train(tiny_config(epochs=1, log_indices="true"), [(dataset, None)], run_dir, progress=False)
    rows = read_log(run_dir)
    assert [r["nonfinite_rows"] for r in rows] == [1.0, 1.0]
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert all(torch.isfinite(v).all() for v in report.model.state_dict().values() if v.is_floating_point())
    first_rows = [int(line.split(",", 3)[3].split()[0].split(":")[1]) for line in (run_dir / "indices.csv").read_text().splitlines()]
    fits = FitStore(run_dir / "fits", readonly=True).get_many("bad", np.arange(16))
    assert not fits.found[first_rows].any()
    others = np.setdiff1d(np.arange(16), first_rows)
    assert (fits.source[others] == int(Source.IN_LOOP)).sum() >= 12  # the rest were fitted and stored


def test_resume_refuses_a_damaged_checkpoint_and_changes_nothing(dataset, tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "utils"))
    from test_checkpoint_damage import damaged_copy

    run = tmp_path / "run"
    code, err = _run(["--dataset", str(dataset), "--out", str(run), *_sets()], capsys)
    assert code == 0, err
    damaged, member = damaged_copy(run / "last.pt", tmp_path / "damaged.pt")
    damaged.replace(run / "last.pt")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, err = _run(["--out", str(run), "--resume", "--set", "max_steps=2"], capsys)
    assert code == 2 and "last.pt" in err and member in err and "CRC-32" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
