"""Checking a fit cache for damage, and rescuing the records of a damaged one.

LMDB keeps no checksums; a damaged ``data.mdb`` (a bad disk, a copy cut short, a file system
that lost writes) shows as ``MDB_CORRUPTED``/``MDB_PAGE_NOTFOUND`` errors, which the store
turns into :class:`~spin_diff.cache.errors.StoreCorruptedError`, or as an assertion inside
LMDB's C code that aborts the process (exit status 134). So:

* :func:`verify_store` walks the whole store (header, every key, every record decoded and
  checked, and a write transaction begun and abandoned, as a writer would) **in a child
  process**, so that an abort is reported as damage instead of killing the caller.
* :func:`salvage_store` never asks LMDB to read the damaged file: it reads ``data.mdb`` page
  by page in Python (:mod:`spin_diff.cache.pages`), takes every record from every page that parses, and
  writes them into a new store by update-if-better. Old copies of a record left in freed
  pages are harmless there: a store only ever replaces a record by a strictly better one (or
  by ground truth), so the best copy found is the latest. Records whose bytes were damaged
  inside a page cannot all be told from good ones (LMDB has no checksums); rows with another
  layout version, an unknown source or non-finite parameters are dropped and counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lmdb
import numpy as np

from spin_diff.cache.errors import FitStoreError, StoreCorruptedError, damaged_store_message
from spin_diff.cache.header import CONFIG_PREFIX, DATASET_PREFIX, HEADER_KEY
from spin_diff.cache.pages import read_pages
from spin_diff.cache.records import (
    RECORD_SIZE,
    RECORD_VERSION,
    FitBatch,
    Source,
    check_dataset_name,
    decode_key,
    decode_records,
)
from spin_diff.cache.store import FitStore
from spin_diff.cache.transfer import write_preserving

__all__ = ["VerifyReport", "SalvageReport", "check_store", "verify_store", "read_pages", "salvage_store"]

_KNOWN_SOURCES = {int(s) for s in Source}


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_store`."""

    path: str
    ok: bool
    records: int = 0  # records read and checked
    datasets: dict[str, int] = field(default_factory=dict)
    problem: str | None = None  # what is wrong, None when ok

    def summary(self) -> str:
        if self.ok:
            per = ", ".join(f"{name} {count}" for name, count in self.datasets.items()) or "no records"
            return f"{self.path}: ok, {self.records} records ({per})"
        return f"{self.path}: DAMAGED: {self.problem}"


def check_store(path: str | Path) -> VerifyReport:
    """Walk the store at ``path`` in this process (may abort the process on some damage;
    :func:`verify_store` runs it in a child)."""
    path = Path(path)
    report = VerifyReport(str(path), ok=False)
    try:
        store = FitStore.open(path, readonly=True)
        total = 0
        for names, _, fits in store.scan(chunk=1024):
            bad = _implausible(fits)
            if bad.any():
                raise StoreCorruptedError(
                    f"{int(bad.sum())} record(s) of dataset {names[0]!r} hold non-finite parameters or an "
                    "unknown source"
                )
            report.datasets[names[0]] = report.datasets.get(names[0], 0) + len(names)
            total += len(names)
        store.configs()
        report.records = total
        if (path / "data.mdb").stat().st_size and _folder_writable(path):
            # a writer walks the free list and the tree's right edge; begin one and abandon it
            txn = store._environment().begin(write=True)
            try:
                txn.put(HEADER_KEY, bytes(txn.get(HEADER_KEY)))
            finally:
                txn.abort()
        store.close()
    except (FitStoreError, lmdb.Error) as err:
        report.problem = str(err)
        return report
    report.ok = True
    return report


def _folder_writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path / "data.mdb", os.W_OK)


def _implausible(fits) -> np.ndarray:
    finite = np.isfinite(fits.pose).all(1) & np.isfinite(fits.betas).all(1) & np.isfinite(fits.transl).all(1)
    known = np.isin(fits.source, list(_KNOWN_SOURCES))
    return fits.found & ~(finite & known & ~np.isnan(fits.score))


def verify_store(path: str | Path, timeout: float | None = None) -> VerifyReport:
    """:func:`check_store` in a child process: damage that makes LMDB abort is reported
    (``ok`` False, the signal named) instead of ending the caller."""
    path = Path(path)
    code = "import json, sys; from spin_diff.cache.repair import check_store; " \
           "r = check_store(sys.argv[1]); print(json.dumps(r.__dict__))"  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=timeout
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return VerifyReport(str(path), ok=False, problem=f"the check did not finish in {timeout} s")
    return _report_from_child(path, done)


def _report_from_child(path: Path, done: subprocess.CompletedProcess) -> VerifyReport:
    """Read the child's verdict; a child killed by a signal (LMDB's abort) means damage."""
    if done.returncode == 0 and done.stdout.strip():
        return VerifyReport(**json.loads(done.stdout.strip().splitlines()[-1]))
    if done.returncode < 0 or done.returncode in (134, 135, 139):
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
        tail = done.stderr.strip().splitlines()[-1:] or [""]
        return VerifyReport(
            str(path), ok=False, problem=f"LMDB aborted while reading it ({how}) {tail[0]}".strip()
        )  # fmt: skip
    raise FitStoreError(f"the check of {path} failed to run (exit status {done.returncode}): {done.stderr[-2000:]}")


@dataclass
class SalvageReport:
    """What :func:`salvage_store` recovered."""

    source: str
    destination: str
    found: int = 0  # record copies found in the pages (stale copies included)
    dropped: int = 0  # copies that were not valid records
    written: int = 0  # records in the new store
    datasets: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        per = ", ".join(f"{name} {count}" for name, count in sorted(self.datasets.items())) or "none"
        return (
            f"salvaged {self.written} records from {self.source} into {self.destination} ({per}); "
            f"{self.found} record copies found in its pages (old copies included), {self.dropped} unreadable"
        )


def salvage_store(source: str | Path, destination: str | Path, chunk: int = 4096) -> SalvageReport:
    """Copy every record that still reads from the (damaged) store at ``source`` into a new
    store at ``destination``, keeping the best copy of each example (see the module doc).
    ``source`` is only read."""
    source, destination = Path(source), Path(destination)
    data_file = source / "data.mdb"
    if not data_file.is_file() or data_file.stat().st_size == 0:
        raise StoreCorruptedError(
            f"nothing to salvage in {source}: {'no' if not data_file.is_file() else 'an empty'} data.mdb there"
        )
    if destination.resolve() == source.resolve():
        raise FitStoreError("salvage writes a new store: give a DEST other than the damaged SRC")
    if (destination / "data.mdb").is_file():
        raise FitStoreError(f"{destination} already holds a store; salvage into a new folder")

    header = None
    configs: dict[int, dict] = {}
    identities: dict[str, dict] = {}
    names: list[str] = []
    indices: list[int] = []
    values: list[bytes] = []
    report = SalvageReport(str(source), str(destination))
    for key, value in read_pages(data_file):
        if key == HEADER_KEY:
            header = header or _json_or_none(value)
        elif key.startswith(CONFIG_PREFIX):
            description = _json_or_none(value)
            if description is not None:
                try:
                    configs[int(key[len(CONFIG_PREFIX) :], 16)] = description
                except ValueError:
                    pass
        elif key.startswith(DATASET_PREFIX):
            identity = _json_or_none(value)
            if identity is not None and "fingerprint" in identity:
                identities.setdefault(key[len(DATASET_PREFIX) :].decode(errors="replace"), identity)
        elif key[:1] != b"\x00":
            report.found += 1
            try:
                name, index = decode_key(key)
                check_dataset_name(name)
            except (ValueError, UnicodeDecodeError):
                report.dropped += 1
                continue
            if len(value) != RECORD_SIZE or value[0] != RECORD_VERSION:
                report.dropped += 1
                continue
            names.append(name)
            indices.append(index)
            values.append(value)
    if header is None or "body_model_sha256" not in header:
        raise StoreCorruptedError(
            damaged_store_message(source, "its header record (which body model the fits belong to) is lost")
            + "; salvage cannot tell which body model the records are for"
        )
    store = FitStore.open_or_create(destination, header["body_model_sha256"], header.get("body_model", ""))
    store.claim_datasets(identities)
    for key, description in configs.items():
        store.register_config(key, description)
    for begin in range(0, len(values), chunk):
        rows = slice(begin, begin + chunk)
        fits = decode_records(values[rows], str(source))
        keep = ~_implausible(fits)
        report.dropped += int((~keep).sum())
        if keep.any():
            chunk_names = [n for n, k in zip(names[rows], keep) if k]
            batch = FitBatch.from_stored(chunk_names, np.asarray(indices[rows])[keep], fits.select(keep))
            write_preserving(store, batch)
    for name in store.datasets():
        report.datasets[name] = store.count(name)
    report.written = sum(report.datasets.values())
    store.close()
    return report


def _json_or_none(value: bytes):
    try:
        parsed = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None

