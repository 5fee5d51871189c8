"""The versions a training writer keeps for a resume: rolled back by step, dropped at a
checkpoint, invisible to the store's readers and tools."""

from __future__ import annotations

import numpy as np

from spin_diff.cache.records import Source
from spin_diff.cache.repair import salvage_store, verify_store
from spin_diff.cache.store import FitStore
from spin_diff.cache.transfer import export_npz, read_export

BODY = "0" * 64


def _write(store, fitcache, index, score, step):
    batch = fitcache.fit_batch("ds", index, score, source=Source.IN_LOOP, step=step)
    return store.update_if_better(batch, keep_previous=True)


def test_roll_back_restores_the_checkpoints_store(tmp_path, fitcache):
    store = FitStore.open_or_create(tmp_path / "fits", BODY)
    _write(store, fitcache, [0, 1], [50.0, 60.0], step=3)
    store.forget_previous()  # a checkpoint at step 4 covers them
    at_checkpoint = store.get_many("ds", np.arange(4))
    _write(store, fitcache, [0, 2], [40.0, 70.0], step=4)  # replaces 0, creates 2
    _write(store, fitcache, [0, 3], [30.0, 80.0], step=5)  # replaces 0 again: its step-4 version stays kept
    _write(store, fitcache, [1], [99.0], step=6)  # worse: not written, nothing kept
    assert store.get_many("ds", np.arange(4)).found.all()

    assert store.roll_back_after(4) == 3
    after = store.get_many("ds", np.arange(4))
    for name in ("found", "pose", "score", "step", "source"):
        np.testing.assert_array_equal(getattr(after, name), getattr(at_checkpoint, name), err_msg=name)
    assert store.roll_back_after(4) == 0  # the kept versions went with the roll-back


def test_roll_back_keeps_what_the_checkpoint_covers(tmp_path, fitcache):
    store = FitStore.open_or_create(tmp_path / "fits", BODY)
    _write(store, fitcache, [0], [50.0], step=2)
    _write(store, fitcache, [0], [40.0], step=5)
    assert store.roll_back_after(6) == 0  # a crash after the checkpoint at 6 was saved, before it forgot
    assert store.get("ds", 0).score[0] == np.float32(40.0)
    _write(store, fitcache, [0], [30.0], step=6)
    assert store.roll_back_after(6) == 1
    assert store.get("ds", 0).score[0] == np.float32(40.0)


def test_kept_versions_are_not_records(tmp_path, fitcache):
    store = FitStore.open_or_create(tmp_path / "fits", BODY)
    _write(store, fitcache, [0, 1], [50.0, 60.0], step=0)
    _write(store, fitcache, [0], [40.0], step=1)
    assert store.count() == 2 and store.datasets() == ["ds"]
    assert sum(len(index) for _, index, _ in store.scan()) == 2
    assert export_npz(store, tmp_path / "out.npz") == 2
    np.testing.assert_array_equal(read_export(tmp_path / "out.npz")["score"], np.float32([40.0, 60.0]))
    store.close()
    report = verify_store(tmp_path / "fits")
    assert report.ok and report.records == 2, report.summary()
    salvaged = salvage_store(tmp_path / "fits", tmp_path / "salvaged")
    assert salvaged.written == 2
    restored = FitStore(tmp_path / "salvaged", readonly=True).get_many("ds", np.arange(2))
    np.testing.assert_array_equal(restored.score, np.float32([40.0, 60.0]))  # the newest, not the kept one
