"""The LMDB fit store in one process: keys, records, update-if-better, growth, fork."""

from __future__ import annotations

import multiprocessing as mp
import pickle

import numpy as np
import pytest
from fitcache_workers import read_scores

from spin_diff.cache.records import RECORD_SIZE, FitBatch, Source, decode_key, encode_key, encode_keys
from spin_diff.cache.store import FitStore, FitStoreError


@pytest.fixture
def store(tmp_path):
    store = FitStore.open_or_create(tmp_path / "cache", "body-a", "test body")
    yield store
    store.close()


def test_keys_sort_by_dataset_then_index_and_scan_by_dataset(store, fitcache):
    assert encode_key("lsp", 12) == b"lsp/0000000012"
    assert decode_key(b"lsp/0000000012") == ("lsp", 12)
    keys = encode_keys(["b", "a", "a-x", "a"], np.array([1, 10, 0, 9]))
    assert sorted(keys) == [b"a-x/0000000000", b"a/0000000009", b"a/0000000010", b"b/0000000001"]
    for name in ("a", "a-x", "a.b", "a0", "ab", "b"):
        store.update_if_better(fitcache.fit_batch(name, [0, 2, 1], 5.0))
    assert store.datasets() == ["a", "a-x", "a.b", "a0", "ab", "b"]
    assert store.count("a") == 3 and store.count() == 18
    chunks = list(store.scan("a", chunk=2))
    assert [len(c[1]) for c in chunks] == [2, 1]
    assert np.concatenate([c[1] for c in chunks]).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="cannot key a fit cache"):
        encode_key("has/slash", 0)
    with pytest.raises(ValueError, match="out of range"):
        encode_key("lsp", -1)


def test_records_read_back_exactly(store):
    rng = np.random.default_rng(0)
    n = 6
    batch = FitBatch(
        dataset="h36m",
        index=np.arange(n) * 7,
        pose=rng.normal(size=(n, 72)),
        betas=rng.normal(size=(n, 8)),  # shorter betas are zero-padded
        score=rng.uniform(1, 50, n),
        source=["in-loop", "offline", "static", "ground-truth", Source.IN_LOOP, 1],
        transl=rng.normal(size=(n, 3)),
        residuals=rng.uniform(0, 30, (n, 49)),
        step=np.arange(n) + 100,
        config_hash=0xDEADBEEF12345678,
        time=1.7e9,
    )
    assert store.update_if_better(batch).written.all()
    fits = store.get_many("h36m", np.array([0, 7, 3, 35]))
    assert fits.found.tolist() == [True, True, False, True]
    np.testing.assert_array_equal(fits.pose[[0, 1, 3]], batch.pose[[0, 1, 5]].astype(np.float32))
    np.testing.assert_array_equal(fits.betas[0, :8], batch.betas[0].astype(np.float32))
    assert (fits.betas[:, 8:] == 0).all()
    np.testing.assert_array_equal(fits.transl[1], batch.transl[1].astype(np.float32))
    np.testing.assert_allclose(fits.residuals[0], batch.residuals[0], rtol=1e-3)  # float16
    assert fits.source_labels() == ["in-loop", "offline", "missing", "offline"]
    assert fits.step[[0, 1, 3]].tolist() == [100, 101, 105]
    assert fits.time[0] == 1.7e9 and fits.config_hash[0] == 0xDEADBEEF12345678
    assert fits.score[2] == np.inf and not fits.has_transl[2] and fits.has_transl[0]
    # torch tensors are accepted as they are
    import torch
    batch = FitBatch("t", torch.arange(2), torch.zeros(2, 72), torch.zeros(2, 10), torch.ones(2))
    store.update_if_better(batch)
    assert store.get_many("t", [0, 1]).found.all()


def test_update_if_better_replaces_only_strictly_better_finite_fits(store, fitcache):
    assert store.update_if_better(fitcache.fit_batch("d", [0, 1, 2, 3], 10.0)).written.all()
    result = store.update_if_better(fitcache.fit_batch("d", [0, 1, 2, 3], [9.0, 10.0, 11.0, 9.99], value=[1, 2, 3, 4]))
    assert result.written.tolist() == [True, False, False, True]
    assert result.improved.tolist() == [True, False, False, True]
    assert result.previous_score.tolist() == [10.0, 10.0, 10.0, 10.0]
    fits = store.get_many("d", [0, 1, 2, 3])
    np.testing.assert_allclose(fits.score, [9.0, 10.0, 10.0, 9.99], rtol=1e-6)
    assert fits.pose[:, 0].tolist() == [1.0, 10.0, 10.0, 4.0]  # ties and worse fits kept the old record

    nan_score = fitcache.fit_batch("d", [0, 4], [np.nan, np.nan], value=7.0)
    inf_score = fitcache.fit_batch("d", [0, 5], [np.inf, np.inf], value=7.0)
    nan_pose = fitcache.fit_batch("d", [0, 6], 0.5)
    nan_pose.pose[:, 3] = np.nan
    inf_betas = fitcache.fit_batch("d", [0, 7], 0.5)
    inf_betas.betas[:, 0] = np.inf
    for bad in (nan_score, inf_score, nan_pose, inf_betas):
        result = store.update_if_better(bad)
        assert result.rejected.all() and not result.written.any()
    fits = store.get_many("d", [0, 4, 5, 6, 7])
    assert fits.found.tolist() == [True, False, False, False, False]
    assert fits.score[0] == np.float32(9.0)


def test_ground_truth_is_never_replaced_by_a_fit(store, fitcache):
    gt = fitcache.fit_batch("d", [0, 1], [50.0, np.inf], source="ground-truth", value=3.0)  # GT may be unscored
    assert store.update_if_better(gt).written.all()
    result = store.update_if_better(fitcache.fit_batch("d", [0, 1], 0.0, source="in-loop"))
    assert result.protected.all() and not result.written.any()
    assert store.get_many("d", [0, 1]).source_labels() == ["ground-truth", "ground-truth"]
    # ground truth replaces a fit, however good the fit's score
    store.update_if_better(fitcache.fit_batch("d", [2], 0.0))
    assert store.update_if_better(fitcache.fit_batch("d", [2], 99.0, source="ground-truth")).written.all()
    assert store.get_many("d", [2]).source_labels() == ["ground-truth"]


def test_repeated_examples_in_one_batch_meet_in_order(store, fitcache):
    batch = fitcache.fit_batch(["d", "e", "d", "d"], [5, 5, 5, 5], [3.0, 1.0, 2.0, 2.0], value=[1, 2, 3, 4])
    result = store.update_if_better(batch)
    assert result.written.tolist() == [True, True, True, False]
    assert store.get_many(["d", "e"], [5, 5]).pose[:, 0].tolist() == [3.0, 2.0]


def test_insert_missing_only_fills_empty_slots(store, fitcache):
    store.update_if_better(fitcache.fit_batch("d", [0], 5.0))
    written = store.insert_missing(fitcache.fit_batch("d", [0, 1], np.inf, source="static", value=8.0))
    assert written.tolist() == [False, True]
    fits = store.get_many("d", [0, 1])
    assert fits.pose[:, 0].tolist() == [5.0, 8.0] and fits.score[1] == np.inf
    # any scored fit beats an unscored one
    assert store.update_if_better(fitcache.fit_batch("d", [1], 1e6)).written.all()


def test_store_grows_its_map_on_its_own(tmp_path, fitcache):
    store = FitStore.open_or_create(tmp_path / "small", "body-a", map_size=1 << 20)
    start = store.info()["map_size"]
    for begin in range(0, 12000, 3000):
        store.update_if_better(fitcache.fit_batch("d", np.arange(begin, begin + 3000), 1.0))
    assert store.info()["map_size"] > start
    assert store.count("d") == 12000 and store.get_many("d", np.arange(12000)).found.all()
    assert store.info()["used_bytes"] > 12000 * RECORD_SIZE
    store.close()


def test_readers_cannot_write_and_headers_say_what_they_hold(store, tmp_path, fitcache):
    store.update_if_better(fitcache.fit_batch("d", [0], 1.0))
    reader = FitStore.open(store.path, readonly=True)
    assert reader.header["body_model_sha256"] == "body-a" and reader.header["body_model"] == "test body"
    with pytest.raises(FitStoreError, match="read-only"):
        reader.update_if_better(fitcache.fit_batch("d", [1], 1.0))
    assert reader.get_many("d", [0]).found.all()
    with pytest.raises(FileNotFoundError, match="no fit cache"):
        FitStore.open(tmp_path / "nowhere")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_store_reopens_in_each_process(store, method, fitcache):
    """The environment is never shared across fork: children (forked after the parent used
    the store, or spawned with the pickled store) open their own and read; the parent
    goes on reading and writing afterwards."""
    store.update_if_better(fitcache.fit_batch("d", np.arange(4), [1.0, 2.0, 3.0, 4.0]))
    assert store.get_many("d", [0]).found.all()  # the parent has it open
    clone = pickle.loads(pickle.dumps(store))
    assert clone.path == store.path and clone.get_many("d", [1]).score[0] == 2.0
    ctx = mp.get_context(method)
    queue = ctx.Queue()
    children = [ctx.Process(target=read_scores, args=(store, "d", 4, queue)) for _ in range(2)]
    for child in children:
        child.start()
    results = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert results == [[1.0, 2.0, 3.0, 4.0]] * 2
    assert store.update_if_better(fitcache.fit_batch("d", [0], 0.5)).written.all()
    assert store.get_many("d", [0]).score[0] == 0.5
