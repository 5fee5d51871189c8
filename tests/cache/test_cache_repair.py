"""A damaged store: detected and named by every command, checked by `cache verify`, its
records rescued by `cache salvage`; an empty data.mdb gets the same answer everywhere; a
reader and a writer share one store in one process.

Anything that reads a damaged LMDB file may abort inside LMDB's C code, so those reads run
in child processes (the CLI, or verify's own child)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spin_diff.cache.repair import read_pages, salvage_store, verify_store
from spin_diff.cache.store import FitStore, StoreCorruptedError

N = 1500  # records: about 200 leaf pages
REPO_ROOT = Path(__file__).resolve().parents[2]


def spin_diff(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "spin_diff.cli.main", *map(str, args)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def intact(tmp_path, fitcache):
    """A real store: N records, half of them later improved (so freed pages hold old copies)."""
    path = tmp_path / "intact"
    store = FitStore.open_or_create(path, "body-a", "test body")
    index = np.arange(N)
    store.update_if_better(fitcache.fit_batch("lsp", index, 10.0 + index / N))
    store.update_if_better(fitcache.fit_batch("lsp", index[::2], 1.0 + index[::2] / N))
    store.update_if_better(fitcache.fit_batch("coco", np.arange(40), 3.0))
    store.register_config(7, {"kind": "test"})
    store.close()
    return path


def damage(src, dest, pages, seed=0):
    """Copy the store and overwrite 100 bytes after the header of each page in ``pages``."""
    shutil.copytree(src, dest)
    rng = np.random.default_rng(seed)
    with open(dest / "data.mdb", "r+b") as handle:
        for page in pages:
            handle.seek(page * 4096 + 16)
            handle.write(rng.integers(0, 256, 100, dtype=np.uint8).tobytes())
    return dest


@pytest.mark.slow
def test_a_damaged_store_is_named_by_every_command_and_verify_says_so(tmp_path, intact):
    pages = (intact / "data.mdb").stat().st_size // 4096
    damaged = damage(intact, tmp_path / "damaged", range(3, pages, 9))
    assert verify_store(intact).ok
    report = verify_store(damaged)
    assert not report.ok and report.problem
    result = spin_diff("cache", "verify", damaged)
    assert result.returncode == 1 and "DAMAGED" in result.stdout and "cache salvage" in result.stdout
    for command in (["cache", "stats", damaged], ["cache", "export", damaged, "--out", tmp_path / "x.npz"]):
        result = spin_diff(*command)
        assert result.returncode == 2, (command, result.returncode, result.stderr[-500:])
        assert "Traceback" not in result.stderr
        assert f"the fit cache {damaged} is damaged" in result.stderr
        assert f"spin-diff cache salvage {damaged}" in result.stderr


@pytest.mark.slow
def test_salvage_copies_every_record_that_still_reads(tmp_path, intact):
    pages = (intact / "data.mdb").stat().st_size // 4096
    damaged = damage(intact, tmp_path / "damaged", range(5, pages, 23), seed=1)
    before = (damaged / "data.mdb").read_bytes()
    result = spin_diff("cache", "salvage", damaged, tmp_path / "rescued")
    assert result.returncode == 0, result.stderr[-1000:]
    assert (damaged / "data.mdb").read_bytes() == before  # the source is only read
    assert verify_store(tmp_path / "rescued").ok
    original, rescued = FitStore.open(intact), FitStore.open(tmp_path / "rescued")
    assert rescued.header["body_model_sha256"] == "body-a"
    for dataset, size in (("lsp", N), ("coco", 40)):
        got = rescued.get_many(dataset, np.arange(size))
        want = original.get_many(dataset, np.arange(size))
        # most records survive; each is the latest version, or, where that one's page was
        # damaged, an earlier one (a worse score) still lying in a freed page, never anything else
        assert got.found.mean() >= 0.85, (dataset, got.found.mean())
        latest = got.found & (got.score == want.score)
        assert latest.sum() >= 0.8 * size
        for field in ("pose", "betas", "transl", "time", "config_hash"):
            np.testing.assert_array_equal(getattr(got, field)[latest], getattr(want, field)[latest])
        earlier = got.found & ~latest
        if dataset == "lsp":
            first_version = 10.0 + np.arange(N) / N
            np.testing.assert_allclose(got.score[earlier], first_version[earlier], rtol=1e-6)
            assert (got.score[earlier] > want.score[earlier]).all()
    # an undamaged store is salvaged whole
    whole = salvage_store(intact, tmp_path / "whole")
    assert whole.written == N + 40 and FitStore.open(tmp_path / "whole").configs() == {7: {"kind": "test"}}
    # the page reader sees every current record of the intact file (and old copies)
    keys = {key for key, _ in read_pages(intact / "data.mdb")}
    assert len([k for k in keys if k.startswith(b"lsp/")]) == N


@pytest.mark.slow
def test_an_empty_data_file_gets_one_answer_from_every_command(tmp_path, body_model, fitcache):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "data.mdb").write_bytes(b"")
    old = time.time() - 60
    os.utime(cache / "data.mdb", (old, old))
    dataset = fitcache.make_spin_dataset(body_model, tmp_path / "d.npz", 2)
    config = fitcache.write_fast_config(tmp_path / "fast.yaml")
    commands = [
        ["cache", "stats", cache],
        ["cache", "export", cache, "--out", tmp_path / "x.npz"],
        ["cache", "build", "--dataset", dataset, "--cache", cache, "--config", config, "--quiet"],
        ["cache", "merge", tmp_path / "other", cache],
    ]
    for command in commands:
        result = spin_diff(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr[-800:])
        assert "data.mdb is empty: 0 bytes" in result.stderr and "Traceback" not in result.stderr
    result = spin_diff("cache", "verify", cache)
    assert result.returncode == 1 and "data.mdb is empty: 0 bytes" in result.stdout
    assert (cache / "data.mdb").stat().st_size == 0  # nothing silently started a new store there
    with pytest.raises(StoreCorruptedError, match="nothing to salvage"):
        salvage_store(cache, tmp_path / "rescued")


def test_a_writer_does_not_close_the_store_under_a_reader_in_the_same_process(tmp_path, fitcache):
    path = tmp_path / "cache"
    first_writer = FitStore.open_or_create(path, "body-a")
    first_writer.update_if_better(fitcache.fit_batch("d", np.arange(50), 5.0))
    first_writer.close()
    reader = FitStore.open(path, readonly=True)  # the reader opens the environment first
    chunks = reader.scan(chunk=10)
    first = next(chunks)
    writer = FitStore.open_or_create(path, "body-a")
    writer.update_if_better(fitcache.fit_batch("d", np.arange(50, 60), 4.0))
    rest = list(chunks)  # the reader's snapshot goes on
    assert len(first[1]) + sum(len(c[1]) for c in rest) == 50
    assert reader.count("d") == 60
    writer.close()


@pytest.mark.slow
def test_a_check_that_aborts_is_reported_as_damage(tmp_path):
    """LMDB's C assertions abort the process (SIGABRT, exit status 134 from a shell): verify
    runs the check in a child and reports that as damage, naming the signal."""
    from spin_diff.cache.repair import _report_from_child

    child = subprocess.run([sys.executable, "-c", "import os; os.abort()"], capture_output=True, text=True)
    report = _report_from_child(tmp_path, child)
    assert not report.ok and "LMDB aborted while reading it (signal 6)" in report.problem
    assert "DAMAGED" in report.summary()
