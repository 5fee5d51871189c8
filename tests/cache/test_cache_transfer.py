"""Export/import round trips, SPIN's static fits, merging stores, stats."""

from __future__ import annotations

import numpy as np
import pytest

from spin_diff.cache.builder import score_fits
from spin_diff.cache.records import FitBatch
from spin_diff.cache.stats import cache_stats, format_stats
from spin_diff.cache.store import BodyModelMismatchError, FitStore
from spin_diff.cache.transfer import export_npz, import_npz, import_spin_fits, merge_stores, read_spin_fits
from spin_diff.data.spin_npz import dataset_keypoints, read_spin_npz

FIELDS = (
    "found", "pose", "betas", "transl", "has_transl", "score", "residuals",
    "source", "step", "time", "config_hash",
)  # fmt: skip


def assert_same_records(a, b) -> None:
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def varied_store(path) -> FitStore:
    """Records of every source, with and without cameras and residuals, in two datasets."""
    store = FitStore.open_or_create(path, "body-a", "test body")
    rng = np.random.default_rng(0)
    n = 12
    batch = FitBatch(
        dataset=["lsp"] * 8 + ["mpii"] * 4,
        index=np.r_[np.arange(8) * 3, np.arange(4)],
        pose=rng.normal(size=(n, 72)),
        betas=rng.normal(size=(n, 10)),
        score=np.r_[rng.uniform(1, 200, n - 1), np.inf],
        source=["offline", "in-loop", "static", "ground-truth"] * 3,
        transl=np.where(np.arange(n)[:, None] % 2 == 0, rng.normal(size=(n, 3)), np.nan),  # half: no camera
        residuals=np.where(np.arange(n)[:, None] < 6, rng.uniform(0, 40, (n, 49)), np.nan),
        step=np.arange(n),
        config_hash=np.arange(n, dtype=np.uint64) + 7,
        time=1.7e9 + np.arange(n),
    )
    assert store.update_if_better(batch).written.all()  # the last row is unscored ground truth
    store.register_config(7, {"kind": "fit", "fitting": {"optimizer": "adam", "stages": []}})
    return store


def test_export_then_import_reproduces_every_record(tmp_path):
    source = varied_store(tmp_path / "a")
    out = tmp_path / "fits.npz"
    assert export_npz(source, out) == 12
    report = import_npz(out, tmp_path / "b")
    assert (report.read, report.written, report.rejected) == (12, 12, 0)
    copy = FitStore.open(tmp_path / "b")
    assert copy.header["body_model_sha256"] == "body-a" and copy.header["body_model"] == "test body"
    assert copy.configs() == source.configs()
    for name, indices in (("lsp", np.arange(24)), ("mpii", np.arange(5))):
        assert_same_records(copy.get_many(name, indices), source.get_many(name, indices))
    # importing again changes nothing (ties keep the stored record)
    again = import_npz(out, tmp_path / "b")
    assert again.written == 0 and again.kept == 12
    # one dataset only
    assert export_npz(source, tmp_path / "mpii.npz", dataset="mpii") == 4
    source.close()
    copy.close()


def test_import_refuses_an_export_of_another_body_model(tmp_path, fitcache):
    varied_store(tmp_path / "a").close()
    export_npz(FitStore.open(tmp_path / "a"), tmp_path / "fits.npz")
    other = FitStore.open_or_create(tmp_path / "other", "body-b")
    other.update_if_better(fitcache.fit_batch("lsp", [0], 1.0))
    other.close()
    with pytest.raises(BodyModelMismatchError):
        import_npz(tmp_path / "fits.npz", tmp_path / "other")
    assert FitStore.open(tmp_path / "other").count() == 1


def test_spin_static_fits_import_matches_the_file(tmp_path, tiny_dataset, body_model, fitcache):
    from spin_diff.fitting.smplify import SMPLify

    data = read_spin_npz(tiny_dataset)
    rng = np.random.default_rng(1)
    fits = np.c_[data["pose"] + rng.normal(0, 0.05, (16, 72)), data["shape"]].astype(np.float32)
    fits[5, 10] = np.nan  # a broken row is refused, the others imported
    path = tmp_path / "tiny_fits.npy"
    np.save(path, fits)
    loaded = read_spin_fits(path)
    assert loaded.shape == (16, 82)

    # without the dataset: unscored, fill empty examples only
    store = FitStore.open_or_create(tmp_path / "cache", "body-a")
    store.update_if_better(fitcache.fit_batch("tiny", [0], 3.0))
    report = import_spin_fits(store, loaded, "tiny", 42)
    assert (report.written, report.kept, report.rejected) == (14, 1, 1)
    stored = store.get_many("tiny", np.arange(16))
    rows = np.setdiff1d(np.arange(16), [0, 5])
    np.testing.assert_array_equal(stored.pose[rows], fits[rows, :72])
    np.testing.assert_array_equal(stored.betas[rows], fits[rows, 72:])
    assert (stored.score[rows] == np.inf).all() and set(np.array(stored.source_labels())[rows]) == {"static"}
    assert not stored.found[5] and stored.pose[0, 0] == 3.0
    store.close()

    # with the dataset: scored as SPIN scores a stored fit
    fitter = SMPLify(body_model, fitcache.fast_fitting_config())
    keypoints = dataset_keypoints(data, 224)
    store = FitStore.open_or_create(tmp_path / "scored", "body-a")
    report = import_spin_fits(store, loaded, "tiny", 42, keypoints=keypoints, fitter=fitter)
    assert (report.written, report.rejected) == (15, 1)
    stored = store.get_many("tiny", np.arange(16))
    rows = np.setdiff1d(np.arange(16), [5])
    np.testing.assert_array_equal(stored.pose[rows], fits[rows, :72])
    expected, _, _ = score_fits(fitter, fits[rows, :72], fits[rows, 72:], keypoints[rows])
    np.testing.assert_allclose(stored.score[rows], expected, rtol=1e-5)
    assert stored.has_transl[rows].all() and np.isfinite(stored.score[rows]).all()
    store.close()

    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 80)))
    with pytest.raises(ValueError, match=r"\(N, 82\)"):
        read_spin_fits(bad)


def test_merge_keeps_the_better_record_and_protects_ground_truth(tmp_path, fitcache):
    a = FitStore.open_or_create(tmp_path / "node0", "body-a")
    b = FitStore.open_or_create(tmp_path / "node1", "body-a")
    a.update_if_better(fitcache.fit_batch("d", [0, 1, 2, 3], [5.0, 9.0, 7.0, 1.0]))
    a.update_if_better(fitcache.fit_batch("d", [4], 80.0, source="ground-truth"))
    b.update_if_better(fitcache.fit_batch("d", [0, 1, 2, 4, 5], [6.0, 8.0, 7.0, 0.1, 2.0], value=[10, 11, 12, 13, 14]))
    a.register_config(3, {"kind": "fit"})
    a.close()
    b.close()
    report = merge_stores(tmp_path / "merged", [tmp_path / "node0", tmp_path / "node1"])
    assert report.read == 10 and report.written == 5 + 2  # all of node0, then node1's two better ones
    merged = FitStore.open(tmp_path / "merged")
    fits = merged.get_many("d", np.arange(6))
    assert fits.score.tolist() == pytest.approx([5.0, 8.0, 7.0, 1.0, 80.0, 2.0])
    assert fits.pose[:, 0].tolist() == [5.0, 11.0, 7.0, 1.0, 80.0, 14.0]  # the tie (example 2) kept node0's
    assert fits.source_labels()[4] == "ground-truth"
    assert 3 in merged.configs()
    FitStore.open_or_create(tmp_path / "alien", "body-b").close()
    with pytest.raises(BodyModelMismatchError):
        merge_stores(tmp_path / "merged", [tmp_path / "alien"])


def test_stats_count_sources_histogram_and_coverage(tmp_path):
    store = varied_store(tmp_path / "a")
    stats = cache_stats(store, {"lsp": 30, "coco": 100})
    lsp = stats.datasets["lsp"]
    assert lsp.count == 8 and lsp.size == 30 and lsp.coverage == pytest.approx(8 / 30)
    assert dict(lsp.by_source) == {"offline": 2, "in-loop": 2, "static": 2, "ground-truth": 2}
    assert lsp.histogram.sum() == lsp.scored == 8
    assert stats.datasets["mpii"].unscored == 1
    assert stats.datasets["coco"].count == 0
    text = format_stats(stats)
    assert "dataset lsp: 8 records, coverage 8/30 = 26.7%" in text
    assert "dataset coco: 0 records, coverage 0/100 = 0.0%" in text
    assert "body model: test body" in text and "SMPLify (adam" in text
    store.close()
