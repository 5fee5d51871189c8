"""Checking a fit cache for damage, and rescuing the records of a damaged one.

LMDB keeps no checksums; a damaged ``data.mdb`` (a bad disk, a copy cut short, a file system
that lost writes) shows as ``MDB_CORRUPTED``/``MDB_PAGE_NOTFOUND`` errors, which the store
turns into :class:`~spin_diff.cache.errors.StoreCorruptedError`, or as an assertion inside
LMDB's C code that aborts the process (exit status 134). So:

* :func:`verify_store` walks the whole store (header, every key, every record decoded and
  checked, and a write transaction begun and abandoned, as a writer would) **in a child
  process**, so that an abort is reported as damage instead of killing the caller.
* :func:`salvage_store` never asks LMDB to read the damaged file: it reads ``data.mdb`` page
  by page in Python (LMDB's documented page layout: a 16-byte header, an array of node
  offsets, nodes of key and value), takes every record from every page that parses, and
  writes them into a new store by update-if-better. Old copies of a record left in freed
  pages are harmless there: a store only ever replaces a record by a strictly better one (or
  by ground truth), so the best copy found is the latest. Records whose bytes were damaged
  inside a page cannot all be told from good ones (LMDB has no checksums); rows with another
  layout version, an unknown source or non-finite parameters are dropped and counted.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import lmdb
import numpy as np

from spin_diff.cache.errors import FitStoreError, StoreCorruptedError, damaged_store_message
from spin_diff.cache.header import CONFIG_PREFIX, HEADER_KEY
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

_PAGE_HEADER = 16
_NODE_HEADER = 8
_P_LEAF, _P_OVERFLOW, _P_META = 0x02, 0x04, 0x08
_F_BIGDATA = 0x01
_META_MAGIC = 0xBEEFC0DE
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


# ---------------------------------------------------------------- reading pages directly
def _page_size(raw: bytes) -> int:
    """LMDB's page size from a meta page (stored in the free DB's pad field), else 4096."""
    for page in (0, 4096):
        if len(raw) >= page + 64:
            flags = struct.unpack_from("<H", raw, page + 10)[0]
            magic = struct.unpack_from("<I", raw, page + _PAGE_HEADER)[0]
            if flags & _P_META and magic == _META_MAGIC:
                size = struct.unpack_from("<I", raw, page + _PAGE_HEADER + 24)[0]
                if 512 <= size <= 65536 and size & (size - 1) == 0:
                    return size
    return 4096


def read_pages(data_file: str | Path) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) found in the leaf pages of an LMDB ``data.mdb``, current or stale,
    skipping pages and nodes that do not parse. Never calls LMDB."""
    with open(data_file, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as raw:  # no copy of a large store
            yield from _leaf_nodes(raw)


def _leaf_nodes(raw) -> Iterator[tuple[bytes, bytes]]:
    psize = _page_size(raw)
    pages = len(raw) // psize
    for number in range(2, pages):  # pages 0 and 1 are the meta pages
        base = number * psize
        pgno, _, flags, lower, upper = struct.unpack_from("<QHHHH", raw, base)
        if pgno != number or flags & ~0x7F or not flags & _P_LEAF or flags & (_P_OVERFLOW | _P_META):
            continue
        if not _PAGE_HEADER <= lower <= upper <= psize:
            continue
        for slot in range((lower - _PAGE_HEADER) // 2):
            offset = struct.unpack_from("<H", raw, base + _PAGE_HEADER + 2 * slot)[0]
            if not upper <= offset <= psize - _NODE_HEADER:
                continue
            lo, hi, node_flags, ksize = struct.unpack_from("<HHHH", raw, base + offset)
            size = lo | (hi << 16)
            start = base + offset + _NODE_HEADER
            key = raw[start : start + ksize]
            if node_flags & _F_BIGDATA:
                if start + ksize + 8 > base + psize:
                    continue
                first = struct.unpack_from("<Q", raw, start + ksize)[0]
                begin = first * psize + _PAGE_HEADER
                if first >= pages or begin + size > len(raw):
                    continue
                value = raw[begin : begin + size]
            else:
                if start + ksize + size > base + psize:
                    continue
                value = raw[start + ksize : start + ksize + size]
            yield key, value


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

