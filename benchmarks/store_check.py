"""The cost of checking a fit cache's pages before LMDB reads it, on a large store.

Every command checks the pages of a store once when it first opens it
(:func:`spin_diff.cache.pages.check_tree`, see :mod:`spin_diff.cache.environment`), so that a
damaged or truncated ``data.mdb`` is answered with a message instead of LMDB aborting the
process. This measures, on a store of ``--records`` records (default 100,000, half of them
improved once, so freed pages exist):

* the check alone (median of ``--repeats``);
* opening the store with it (``FitStore.open``: check and header) and, for scale, what a
  command then does: reading every record (``scan``, as ``cache stats`` and ``export`` do)
  and one batch of 1024 random reads (``get_many``, as a training step does).

    python benchmarks/store_check.py [--records 100000] [--repeats 5] [--dir /tmp/x]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cache_io import machine  # noqa: E402  (the script's folder is on sys.path)

from spin_diff.cache.pages import check_tree  # noqa: E402
from spin_diff.cache.records import FitBatch, Source  # noqa: E402
from spin_diff.cache.store import FitStore  # noqa: E402


def fill(path: Path, records: int) -> None:
    store = FitStore.open_or_create(path, "bench-body", "benchmark", durable=False)
    rng = np.random.default_rng(0)
    for improve, rows in ((False, np.arange(records)), (True, np.arange(0, records, 2))):
        for begin in range(0, rows.size, 65536):
            index = rows[begin : begin + 65536]
            n = index.size
            score = rng.uniform(1, 5, n) if improve else rng.uniform(10, 20, n)
            store.update_if_better(FitBatch(
                "bench", index, rng.normal(size=(n, 72)), rng.normal(size=(n, 10)), score,
                source=Source.OFFLINE, transl=rng.normal(size=(n, 3)), residuals=rng.uniform(0, 9, (n, 49)),
            ))  # fmt: skip
    store.close()


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where to build the store (default: a temp folder)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        path = root / "store"
        fill(path, args.records)
        data = path / "data.mdb"
        meta = check_tree(data)
        print(f"machine: {machine()}")
        print(f"store: {args.records} records, {data.stat().st_size / 2**20:.1f} MiB, "
              f"{meta.main.leaf_pages} leaf + {meta.main.branch_pages} branch pages, depth {meta.main.depth}")  # fmt: skip
        check = timed(lambda: check_tree(data), args.repeats)

        def open_store():
            FitStore.open(path, readonly=True).close()

        def scan():
            store = FitStore.open(path, readonly=True)
            sum(len(chunk[0]) for chunk in store.scan())
            store.close()

        store = FitStore.open(path, readonly=True)
        rng = np.random.default_rng(1)
        batches = [rng.integers(0, args.records, 1024) for _ in range(args.repeats)]
        read = timed(lambda: store.get_many("bench", batches[rng.integers(len(batches))]), args.repeats)
        store.close()
        opening, scanning = timed(open_store, args.repeats), timed(scan, args.repeats)
        print(f"check_tree: {1000 * check:.0f} ms ({meta.main.leaf_pages / check:,.0f} leaf pages/s)")
        print(f"FitStore.open (check + header): {1000 * opening:.0f} ms")
        print(f"open + scan of every record (what cache stats/export read): {1000 * scanning:.0f} ms")
        print(f"one get_many of 1024 random records (a training step's read): {1000 * read:.1f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
