"""Several processes on one store: concurrent writers, readers during writes."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
from fitcache_workers import (
    DATASET,
    GT_KEYS,
    NUM_KEYS,
    batch_of,
    run_reader,
    run_versions_writer,
    run_writer,
    writer_attempts,
)

from spin_diff.cache.records import Source
from spin_diff.cache.store import FitStore

CTX = mp.get_context("spawn")  # children import only numpy and the store


def _join(processes, timeout=120) -> None:
    for process in processes:
        process.join(timeout=timeout)
        assert process.exitcode == 0, f"{process.name} exited with {process.exitcode}"


def test_concurrent_writers_keep_the_best_finite_fit_and_protect_ground_truth(tmp_path):
    path = tmp_path / "cache"
    store = FitStore.open_or_create(path, "body-a", map_size=1 << 20)  # small: it grows under contention
    # ground truth, with a poor score, on a few examples; a middling fit everywhere else
    n_gt = len(GT_KEYS)
    store.update_if_better(batch_of(GT_KEYS, [500.0] * n_gt, [-1.0] * n_gt, source=Source.GROUND_TRUTH))
    others = np.setdiff1d(np.arange(NUM_KEYS), GT_KEYS)
    store.update_if_better(batch_of(others, np.full(others.size, 50.0), np.full(others.size, 50.0)))
    store.close()

    seeds, batches = [11, 12, 13, 14], 25
    queue = CTX.Queue()
    writers = [CTX.Process(target=run_writer, args=(str(path), seed, batches, queue)) for seed in seeds]
    for writer in writers:
        writer.start()
    written = sum(queue.get(timeout=120) for _ in writers)
    _join(writers)

    # what each example should hold: the lowest finite score among the initial record and
    # every attempt with finite parameters; ground truth untouched
    best = np.full(NUM_KEYS, 50.0)
    for seed in seeds:
        for batch in writer_attempts(seed, batches):
            ok = np.isfinite(batch.score) & np.isfinite(batch.pose).all(1)
            np.minimum.at(best, batch.index[ok], batch.score[ok])
    fits = FitStore.open(path).get_many(DATASET, np.arange(NUM_KEYS))
    assert fits.found.all()
    np.testing.assert_array_equal(fits.score[others], best[others].astype(np.float32))
    # every stored record is whole and is the attempt that had that score
    np.testing.assert_array_equal(fits.pose[others, 0], best[others].astype(np.float32))
    assert (fits.pose == fits.pose[:, :1]).all()
    assert np.isfinite(fits.pose).all()
    gt = np.array(GT_KEYS)
    expected = [
        "ground-truth" if i in GT_KEYS else "in-loop" if best[i] < 50 else "offline" for i in range(NUM_KEYS)
    ]
    assert fits.source_labels() == expected
    assert (fits.score[gt] == 500.0).all() and (fits.pose[gt] == -1.0).all()
    assert written >= int((best[others] < 50.0).sum())


def test_readers_in_four_processes_see_only_whole_records_and_whole_batches(tmp_path):
    path = tmp_path / "cache"
    store = FitStore.open_or_create(path, "body-a", map_size=1 << 20)  # the writer grows it mid-read
    keys = np.arange(NUM_KEYS)
    store.update_if_better(batch_of(keys, np.full(NUM_KEYS, 1e6), np.zeros(NUM_KEYS), step=0))
    map_before = store.info()["map_size"]
    store.close()

    versions = 120
    queue = CTX.Queue()
    readers = [CTX.Process(target=run_reader, args=(str(path), versions, 90.0, queue)) for _ in range(4)]
    for reader in readers:
        reader.start()
    writer = CTX.Process(target=run_versions_writer, args=(str(path), versions, 400))
    writer.start()
    results = [queue.get(timeout=120) for _ in readers]
    _join([writer, *readers])

    for result in results:
        assert result["errors"] == [], result
        assert result["last"] == versions  # each reader followed the writer to the end
    # the readers really overlapped the writes: they saw many intermediate versions
    assert sum(r["versions"] for r in results) > 4 * 2
    final = FitStore.open(path)
    assert final.info()["map_size"] > map_before  # the map grew while they read
    assert final.count("filler") == versions * 400


def test_reader_opened_before_growth_adopts_the_grown_map(tmp_path):
    """A reader whose map is smaller than the file another process grew keeps reading."""
    path = tmp_path / "cache"
    store = FitStore.open_or_create(path, "body-a", map_size=1 << 20)
    store.update_if_better(batch_of([0], [1.0], [1.0]))
    store.close()
    reader = FitStore(path, readonly=True)
    assert reader.get_many(DATASET, [0]).found.all()
    process = CTX.Process(target=run_versions_writer, args=(str(path), 5, 3000))
    process.start()
    _join([process])
    assert reader.count("filler") == 15000
    assert reader.get_many("filler", np.arange(15000)).found.all()
    reader.close()
