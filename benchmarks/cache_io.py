"""Fit-cache I/O: batched random reads and update-if-better writes on a store of 1M records.

Targets: reads never the bottleneck of a training step, >= 50,000 records/s from
one process; writes >= 20,000 records/s. Measured here:

* fill: the store is filled with ``--records`` offline fits through ``update_if_better``
  (batches of 65,536; a fresh store, so every row is a new record);
* reads: ``get_many`` of random example indices in batches (``--read-batches``), from 1
  process and from ``--readers`` processes at once (aggregate records/s);
* writes: ``update_if_better`` with batches of ``--write-batches`` random examples whose new
  score beats the stored one for half of them (records processed per second), with the
  store durable (fsync per commit, the default) and not (``durable=False``: safe against
  process crashes, not against OS crashes). Durable commits are bound by the disk's fsync.

    python benchmarks/cache_io.py [--records 1000000] [--seconds 5] [--dir /tmp/x] [--keep]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.cache.records import FitBatch, Source
from spin_diff.cache.store import FitStore  # noqa: E402

DATASET = "bench"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import lmdb

    engine = ".".join(map(str, lmdb.version()))
    return (
        f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"py-lmdb {lmdb.__version__} (LMDB {engine})"
    )


def random_batch(rng: np.random.Generator, indices: np.ndarray, score: np.ndarray) -> FitBatch:
    n = indices.size
    return FitBatch(
        dataset=DATASET,
        index=indices,
        pose=rng.standard_normal((n, 72), dtype=np.float32) * 0.3,
        betas=rng.standard_normal((n, 10), dtype=np.float32),
        score=score,
        source=Source.OFFLINE,
        transl=rng.standard_normal((n, 3), dtype=np.float32),
        residuals=rng.random((n, 49), dtype=np.float32) * 20,
        config_hash=1,
    )


def fill(store: FitStore, records: int, chunk: int = 65536) -> float:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for begin in range(0, records, chunk):
        indices = np.arange(begin, min(begin + chunk, records))
        scores = rng.uniform(50, 500, indices.size).astype(np.float32)
        store.update_if_better(random_batch(rng, indices, scores))
    return time.perf_counter() - start


def read_worker(
    path: str, records: int, batch: int, seconds: float, seed: int, start_at: float, queue
) -> None:
    store = FitStore(path, readonly=True)
    rng = np.random.default_rng(seed)
    store.get_many(DATASET, rng.integers(0, records, batch))  # open outside the timing
    while time.time() < start_at:
        time.sleep(0.001)
    count, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        fits = store.get_many(DATASET, rng.integers(0, records, batch))
        count += batch
        assert fits.found.all()
    queue.put((count, time.perf_counter() - begin))


def reads(path: str, records: int, batch: int, seconds: float, processes: int) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 2.0 + 0.5 * processes  # let every process start and open first
    workers = [
        ctx.Process(target=read_worker, args=(path, records, batch, seconds, seed, start_at, queue))
        for seed in range(processes)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    return sum(count / elapsed for count, elapsed in results)


def writes(store: FitStore, records: int, batch: int, seconds: float) -> tuple[float, float]:
    """Timed update_if_better calls only (each batch is made beforehand). Each new score is
    the stored one times U(0.8, 1.2), so about half of the rows replace their record."""
    rng = np.random.default_rng(1)
    processed = written = 0
    elapsed = 0.0
    while elapsed < seconds:
        indices = rng.choice(records, batch, replace=False)
        current = store.get_many(DATASET, indices).score
        fits = random_batch(rng, indices, (current * rng.uniform(0.8, 1.2, batch)).astype(np.float32))
        begin = time.perf_counter()
        outcome = store.update_if_better(fits)
        elapsed += time.perf_counter() - begin
        processed += batch
        written += int(outcome.written.sum())
    return processed / elapsed, written / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--read-batches", default="64,1024", help="get_many batch sizes")
    parser.add_argument("--write-batches", default="1024,8192", help="update_if_better batch sizes")
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each timed phase")
    parser.add_argument("--dir", type=Path, help="where to build the store (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the store afterwards")
    args = parser.parse_args()

    root = args.dir or Path(tempfile.mkdtemp(prefix="cache_io_"))
    path = root / "store"
    print(f"machine: {machine()}")
    print(f"store: {path}")
    try:
        store = FitStore.open_or_create(path, body_model_hash="benchmark", body_model_label="benchmark")
        if store.count(DATASET) != args.records:
            elapsed = fill(store, args.records)
            rate = args.records / elapsed
            print(f"fill: {args.records:,} records in {elapsed:.1f} s ({rate:,.0f} records/s)")
        info = store.info()
        used, mapped = info["used_bytes"] / 2**20, info["map_size"] / 2**20
        print(f"store size: {used:,.0f} MiB used, map {mapped:,.0f} MiB")
        store.close()  # the readers open their own environments
        for batch in (int(b) for b in args.read_batches.split(",")):
            for processes in (1, args.readers):
                rate = reads(str(path), args.records, batch, args.seconds, processes)
                print(f"reads: get_many batch {batch:>5}, {processes} process(es): {rate:>12,.0f} records/s")
        for durable in (True, False):
            store = FitStore(path, durable=durable)
            for batch in (int(b) for b in args.write_batches.split(",")):
                processed, written = writes(store, args.records, batch, args.seconds)
                print(
                    f"writes: update_if_better batch {batch:>5} at {args.records:,} records, "
                    f"{'durable' if durable else 'durable=False'}: {processed:>9,.0f} records/s "
                    f"({written:,.0f}/s replaced)"
                )
            store.close()
    finally:
        if not args.keep:
            FitStore(path).close()
            shutil.rmtree(root if args.dir is None else path, ignore_errors=True)


if __name__ == "__main__":
    main()
