"""Bad input: corrupt or foreign LMDB, other versions and body models, bad datasets, full disks.
Each error names the problem, and nothing already stored is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import lmdb
import numpy as np
import pytest

from spin_diff.cache.header import HEADER_KEY
from spin_diff.cache.records import encode_key
from spin_diff.cache.store import BodyModelMismatchError, FitStore, StoreFormatError


def folder_bytes(path) -> dict:
    return {name: (path / name).read_bytes() for name in sorted(os.listdir(path)) if name != "lock.mdb"}


def test_corrupt_lmdb_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "cache"
    path.mkdir()
    (path / "data.mdb").write_bytes(b"this is not an LMDB file" * 500)
    before = folder_bytes(path)
    for opener in (lambda: FitStore.open(path), lambda: FitStore.open_or_create(path, "body-a")):
        with pytest.raises(StoreFormatError, match="corrupt or not LMDB"):
            opener()
    assert folder_bytes(path) == before


def test_truncated_store_is_refused(tmp_path, fitcache):
    path = tmp_path / "cache"
    store = FitStore.open_or_create(path, "body-a")
    store.update_if_better(fitcache.fit_batch("d", np.arange(100), 1.0))
    store.close()
    data = path / "data.mdb"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(StoreFormatError):
        FitStore.open(path)


def test_foreign_lmdb_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "other_program"
    env = lmdb.open(str(path), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"user:1", b"someone else's data")
    env.close()
    before = folder_bytes(path)
    with pytest.raises(StoreFormatError, match="not a spin_diff fit cache.*user:1"):
        FitStore.open(path)
    with pytest.raises(StoreFormatError, match="not a spin_diff fit cache"):
        FitStore.open_or_create(path, "body-a")
    assert folder_bytes(path) == before


def test_store_of_another_version_or_body_model_says_so(tmp_path, fitcache):
    path = tmp_path / "cache"
    store = FitStore.open_or_create(path, "body-a", "SMPL_NEUTRAL.pkl from SPIN's data")
    store.update_if_better(fitcache.fit_batch("d", [0, 1], 1.0))
    store.close()
    with pytest.raises(BodyModelMismatchError, match="another body model: SMPL_NEUTRAL.pkl from SPIN's data"):
        FitStore.open_or_create(path, "body-b", "bundled free body model")
    # a newer format version
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        header = json.loads(txn.get(HEADER_KEY))
        header["version"] = 99
        txn.put(HEADER_KEY, json.dumps(header).encode())
    env.close()
    with pytest.raises(StoreFormatError, match="format version 99"):
        FitStore.open(path)
    with pytest.raises(StoreFormatError, match="format version 99"):
        FitStore.open_or_create(path, "body-a")
    env = lmdb.open(str(path))
    with env.begin() as txn:
        assert txn.get(encode_key("d", 1)) is not None  # nothing lost
    env.close()


def test_record_of_another_layout_is_an_error_not_a_guess(tmp_path, fitcache):
    path = tmp_path / "cache"
    store = FitStore.open_or_create(path, "body-a")
    store.update_if_better(fitcache.fit_batch("d", [0, 1], 5.0))
    store.close()
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        value = bytearray(txn.get(encode_key("d", 1)))
        value[0] = 2  # a future record layout
        txn.put(encode_key("d", 1), bytes(value))
    env.close()
    store = FitStore.open(path, readonly=False)
    with pytest.raises(StoreFormatError, match="layout version"):
        store.get_many("d", [0, 1])
    with pytest.raises(StoreFormatError, match="corrupt or of another version"):
        store.update_if_better(fitcache.fit_batch("d", [0, 1], 1.0))
    assert store.get_many("d", [0]).score[0] == 5.0  # the batch was not written, not even row 0
    store.close()


@pytest.mark.slow
def test_full_disk_is_an_error_that_loses_nothing_committed(tmp_path, fitcache):
    """A writer whose file may not grow past 1 MiB (as on a full disk) gets StoreWriteError;
    every batch it committed before is intact and the store opens."""
    path = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import resource, signal
        import numpy as np
        from spin_diff.cache.records import FitBatch
        from spin_diff.cache.store import FitStore, StoreWriteError
        store = FitStore.open_or_create({str(path)!r}, "body-a", map_size=64 << 20)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        committed = 0
        try:
            for batch in range(100):
                index = np.arange(batch * 200, (batch + 1) * 200)
                store.update_if_better(FitBatch("d", index, np.zeros((200, 72)), np.zeros((200, 10)),
                                                np.full(200, float(batch))))
                committed = batch + 1
        except StoreWriteError as err:
            print("COMMITTED", committed)
            print("ERROR", err)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=fitcache.REPO_ROOT, env={**os.environ, "PYTHONPATH": str(fitcache.REPO_ROOT)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "COMMITTED" in result.stdout, result.stdout + result.stderr
    committed = int(result.stdout.split("COMMITTED")[1].split()[0])
    assert 0 < committed < 100
    assert "Nothing of this batch was written and every batch committed before is intact" in result.stdout
    store = FitStore.open(path)
    fits = store.get_many("d", np.arange(100 * 200))
    assert fits.found.sum() == committed * 200 and fits.found[: committed * 200].all()
    np.testing.assert_array_equal(fits.score[: committed * 200 : 200], np.arange(committed, dtype=np.float32))
    store.close()


def test_a_file_where_a_store_should_be(tmp_path):
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(StoreFormatError, match="is a file"):
        FitStore.open_or_create(tmp_path / "cache", "body-a")
