"""``spin-diff demo --quick``: every step of the mission runs and leaves what it claims."""

import json

import cv2
import numpy as np
import pytest

from spin_diff.cli.main import main


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--quick", "--quiet", "--out", str(out)])
    return code, out, printed.getvalue()


@pytest.mark.slow
def test_quick_demo_writes_every_step(quick_demo):
    code, out, printed = quick_demo
    assert code == 0
    for name in ("body_poses.png", "tpose.obj", "config.yaml", "summary.json", "training.png", "fits.png",
                 "data/train/train.npz", "data/heldout/heldout.npz", "data/photos/photos.npz",
                 "run/last.pt", "run/log.csv", "run/validation.csv",
                 "eval/per_sample.csv", "eval/summary.json", "eval/table.txt"):  # fmt: skip
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    photos = sorted(p.parent.parent.name for p in (out / "fits").glob("*/person_00/overlay.png"))
    assert len(photos) == summary["photos"]["fitted"] == 2
    assert all((out / "fits" / name / "person_00" / "side.png").is_file() for name in photos)
    # honest about the data and about where the start came from
    assert "synthetic" in printed and "not accuracy on real people" in printed
    assert summary["start"] == "bundled" and "2. start: the bundled keypoint regressor (" in printed


@pytest.mark.slow
def test_training_copy_hides_the_ground_truth(quick_demo):
    from spin_diff.data.spin_npz import read_spin_npz

    _, out, _ = quick_demo
    hidden = read_spin_npz(out / "data" / "train_2d_only" / "train.npz")
    full = read_spin_npz(out / "data" / "train" / "train.npz")
    assert not {"pose", "shape", "has_smpl", "S"} & set(hidden)
    np.testing.assert_array_equal(hidden["openpose_detected"], full["openpose_detected"])


@pytest.mark.slow
def test_store_filled_and_its_scores_never_rise(quick_demo):
    from spin_diff.body.files import body_model_hash, body_model_label
    from spin_diff.body.model import load_body_model
    from spin_diff.cache.store import FitStore

    _, out, _ = quick_demo
    summary = json.loads((out / "summary.json").read_text())
    before, after = np.array(summary["store_before"], float), np.array(summary["store_after"], float)
    body = load_body_model()
    with FitStore(out / "run" / "fits", readonly=True, body_model_hash=body_model_hash(body),
                  body_model_label=body_model_label(body)) as store:  # fmt: skip
        stored = store.get_many("train", np.arange(24))
        assert store.count("train") == 24
    assert stored.found.all() and np.isfinite(before).all()
    np.testing.assert_allclose(after, stored.score, rtol=1e-6)
    assert (after <= before).all()  # update_if_better: a record only ever improves
    assert (after < before).any()  # ... and the loop's fits did improve some
    t = summary["training"]
    assert t["store_worse"] == 0 and t["store_improved"] == int((after < before).sum())
    assert t["store_mean_after"] <= t["store_mean_before"]
    assert t["store_supervised_after"] >= t["store_supervised_before"]
    threshold = 100.0  # the shipped recipe train_keypoints_cpu
    assert t["store_supervised_after"] == pytest.approx((stored.score < threshold).mean())


@pytest.mark.slow
def test_eval_table_has_the_refinement_rows(quick_demo):
    from spin_diff.evaluation.run import ROW_LABELS

    _, out, printed = quick_demo
    rows = json.loads((out / "eval" / "summary.json").read_text())["rows"]
    assert list(rows) == ["none", "smplify", "term", "guided"]
    for label in ROW_LABELS.values():
        assert label in printed
    assert all(np.isfinite(rows[r]["pa_mpjpe"]) for r in rows)
    header = (out / "eval" / "per_sample.csv").read_text().splitlines()[0]
    assert "guided_pa_mpjpe" in header


@pytest.mark.slow
def test_training_plot_shows_four_panels_with_data(quick_demo):
    from spin_diff.render.plots import PALETTE

    _, out, _ = quick_demo
    image = cv2.cvtColor(cv2.imread(str(out / "training.png")), cv2.COLOR_BGR2RGB)
    assert image.shape[0] > 500 and image.shape[1] > 800
    h, w = image.shape[0] // 2, image.shape[1] // 2
    for panel in (image[:h, :w], image[:h, w:], image[h:, :w], image[h:, w:]):
        for color in PALETTE[:2]:  # every panel draws at least two series
            assert (np.abs(panel.astype(int) - color).sum(-1) < 30).sum() > 50
    validation = json.loads((out / "summary.json").read_text())["validation"]
    assert validation[0]["step"] == 0 and validation[-1]["step"] == 6


def test_a_bundled_regressor_replaces_the_training(tmp_path):
    """With the bundled regressor in place, the demo starts from it and trains none."""
    from spin_diff.apps.demo import DEMO_CONFIG, DEMO_SIZES, start_regressor
    from spin_diff.body.model import load_body_model
    from spin_diff.fitting.initialisation import BUNDLED_KEYPOINT_REGRESSOR
    from spin_diff.training.config import TrainConfig
    from spin_diff.utils.configs import load_config

    config = load_config(TrainConfig, DEMO_CONFIG)
    path, label, _, history = start_regressor(load_body_model(), config, DEMO_SIZES["quick"], tmp_path / "x", False)
    assert (path, label, history) == (BUNDLED_KEYPOINT_REGRESSOR, "bundled", [])
    assert not (tmp_path / "x").exists()


def test_missing_recipe_names_the_fix(monkeypatch, tmp_path, capsys):
    import spin_diff.apps.demo as demo

    monkeypatch.setattr(demo, "DEMO_CONFIG", tmp_path / "recipes" / "train_keypoints_cpu.yaml")
    assert main(["demo", "--quick", "--out", str(tmp_path / "out")]) == 2
    assert "pass --config" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_rerun_replaces_only_an_earlier_demo(tmp_path):
    from spin_diff.apps.demo import prepare_demo_output
    from spin_diff.errors import BadInputError

    earlier = tmp_path / "demo"
    prepare_demo_output(earlier)
    (earlier / "run").mkdir()
    (earlier / "run" / "log.csv").write_text("step,loss\n1,9\n")
    (earlier / "notes.txt").write_text("mine")
    prepare_demo_output(earlier)
    assert not (earlier / "run").exists() and (earlier / "notes.txt").read_text() == "mine"

    older = tmp_path / "older"  # what the demo of earlier versions wrote, no marker
    (older / "synth").mkdir(parents=True)
    (older / "body_poses.png").write_bytes(b"png")
    prepare_demo_output(older)
    assert [p.name for p in older.iterdir()] == [".spin_diff_demo"]

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(BadInputError, match="not empty"):
        prepare_demo_output(foreign)
    assert (foreign / "holiday.jpg").read_bytes() == b"x"


def test_demo_trains_a_start_where_the_bundled_regressor_is_missing(tmp_path, monkeypatch):
    from spin_diff.apps.demo import DEMO_CONFIG, DEMO_SIZES, start_regressor
    from spin_diff.body.model import load_body_model
    from spin_diff.fitting import initialisation
    from spin_diff.training.config import TrainConfig
    from spin_diff.utils.configs import load_config

    monkeypatch.setattr(initialisation, "BUNDLED_KEYPOINT_REGRESSOR", tmp_path / "gone.pt")
    config = load_config(TrainConfig, DEMO_CONFIG)
    path, label, _, history = start_regressor(load_body_model(), config, DEMO_SIZES["quick"], tmp_path, False)
    assert label == "trained here" and path == tmp_path / "start" / "keypoint_regressor.pt" and path.is_file()
    assert len(history) >= 1 and (tmp_path / "start" / "history.csv").is_file()
