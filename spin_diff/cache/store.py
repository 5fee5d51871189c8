"""The best-fit dictionary: one LMDB environment per cache, one record per training example.

SPIN keeps its best fits in a numpy array that one process owns and saves on a timed exit.
Here they live in LMDB, which gives what a training run needs:

* **Many processes.** Any number of readers (DataLoader workers, ``cache stats``) and
  writers (ranks of a ``torchrun`` build, the training loop) on one machine share a store.
  LMDB serialises write transactions; readers never block and never see a half-written
  record or a half-written batch (each read is one snapshot). LMDB's locks do not work
  across machines (network file systems): give each node its own store and combine them
  with :func:`spin_diff.cache.transfer.merge_stores`.
* **Crash safety.** A batch is committed in one transaction: after a crash of the process
  (SIGKILL, out of memory) the store holds every batch committed before it, whole, and
  nothing of the batch in flight. With ``durable=True`` (the default) that holds for an OS
  crash or a power loss too.
* **Provenance.** Each record says where it came from (:class:`~spin_diff.cache.records.Source`),
  when (training step, time) and what produced it (config hash; see
  :mod:`spin_diff.cache.provenance`).

Keys, record layout and the meaning of each field: :mod:`spin_diff.cache.records`. Besides
the records, a store holds a header (``b"\\x00header"``: format name and version, body-model
hash, creation time) and the description of every config hash (``b"\\x00config/<hex>"``).

Processes and fork
------------------
An LMDB environment must not be used across ``fork()``, and py-lmdb refuses to open one
environment twice in a process. So a :class:`FitStore` opens its environment lazily, in the
process that uses it, and shares it with every other :class:`FitStore` on the same path in
that process. Before the process forks (a DataLoader starting its workers), open
environments are closed; each side reopens on its next call. A :class:`FitStore` pickles as
its path and options, so it can be handed to spawned workers too.

Growth and failure
------------------
The map (LMDB's maximum file size) starts at ``map_size`` and doubles whenever a write
transaction runs out of room; the transaction is then redone. A process whose map another
process grew adopts the new size. A write that fails (disk full, I/O error) raises
:class:`StoreWriteError`; nothing of that batch is written and everything committed before
is untouched.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import lmdb
import numpy as np

from spin_diff.cache.errors import (
    BodyModelMismatchError,
    FitStoreError,
    StoreCorruptedError,
    StoreFormatError,
    StoreWriteError,
    damaged_store_message,
)
from spin_diff.cache.records import (
    RECORD_SIZE,
    RECORD_VERSION,
    SCORE_OFFSET,
    FitBatch,
    Source,
    StoredFits,
    dataset_prefix,
    decode_key,
    decode_records,
    encode_keys,
)
from spin_diff.errors import BadInputError, MissingInputError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CACHE_DIR",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FitStoreError",
    "StoreFormatError",
    "StoreCorruptedError",
    "BodyModelMismatchError",
    "StoreWriteError",
    "UpdateResult",
    "FitStore",
]

DEFAULT_CACHE_DIR = Path("fits_cache")
FORMAT_NAME = "spin_diff.fit_cache"
FORMAT_VERSION = 1
HEADER_KEY = b"\x00header"
CONFIG_PREFIX = b"\x00config/"
DEFAULT_MAP_SIZE = 256 << 20
MAX_MAP_SIZE = 1 << 42
MAX_READERS = 1024

_GROUND_TRUTH = int(Source.GROUND_TRUTH)
# What LMDB raises for damaged files: a page of the wrong type or out of range, or a
# transaction that a damaged page made fail.
_DAMAGE = (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.BadTxnError, lmdb.InvalidError, lmdb.BadValsizeError)
# A data.mdb that has been empty this long is a truncated store, not one being created.
_EMPTY_FILE_GRACE_S = 5.0
_SCORE = struct.Struct("<f")


@dataclass
class UpdateResult:
    """What :meth:`FitStore.update_if_better` did with each row of a batch."""

    written: np.ndarray  # (B,) bool: the row is now the stored record
    existed: np.ndarray  # (B,) bool: a record was there before
    previous_score: np.ndarray  # (B,) float32 score of that record, NaN where none
    rejected: np.ndarray  # (B,) bool: non-finite fit, never written
    protected: np.ndarray  # (B,) bool: a ground-truth record was kept over a fit

    @property
    def improved(self) -> np.ndarray:
        """Rows that replaced an existing record."""
        return self.written & self.existed

    @property
    def created(self) -> np.ndarray:
        """Rows that filled an empty slot."""
        return self.written & ~self.existed


# ---------------------------------------------------------------- per-process environments
_ENVS: dict[str, "_OpenEnvironment"] = {}  # by resolved path
_ENVS_PID = os.getpid()


@dataclass
class _OpenEnvironment:
    env: lmdb.Environment
    writable: bool
    synced: bool  # every commit is flushed to disk (durable)

    def close(self) -> None:
        try:
            if self.writable and not self.synced:
                self.env.sync(True)
            self.env.close()
        except lmdb.Error:  # pragma: no cover - closing is best effort
            pass


def _close_all_environments() -> None:
    """Close every environment this process opened (before a fork; see module docstring)."""
    for entry in list(_ENVS.values()):
        entry.close()
    _ENVS.clear()


def _forget_inherited_environments() -> None:
    """In a child that inherited open environments without the fork hook running (it always
    runs for os.fork), close them there so this process can open its own."""
    global _ENVS_PID
    if _ENVS_PID != os.getpid():
        _close_all_environments()
        _ENVS_PID = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_close_all_environments)


def _initial_map_size(path: Path, requested: int) -> int:
    data = path / "data.mdb"
    used = data.stat().st_size if data.is_file() else 0
    return int(max(requested, 2 * used, 1 << 20))


def _open_environment(
    path: Path, writable: bool, map_size: int, durable: bool, create: bool
) -> lmdb.Environment:
    if path.exists() and not path.is_dir():
        raise StoreFormatError(f"{path} is a file, not a fit cache (a folder holding data.mdb)")
    data = path / "data.mdb"
    if data.is_file() and data.stat().st_size == 0 and time.time() - data.stat().st_mtime > _EMPTY_FILE_GRACE_S:
        raise StoreCorruptedError(damaged_store_message(path, "its data.mdb is empty: 0 bytes"))
    if not create and not data.is_file():
        raise MissingInputError(
            f"no fit cache at {path} (no data.mdb there): build one with `spin-diff cache build "
            f"--cache {path}` or import fits with `spin-diff cache import-spin`"
        )
    try:
        if writable:
            path.mkdir(parents=True, exist_ok=True)
        return lmdb.open(
            str(path),
            map_size=_initial_map_size(path, map_size),
            subdir=True,
            readonly=not writable,
            sync=durable,
            metasync=durable,
            lock=True,
            max_readers=MAX_READERS,
            max_dbs=0,
            readahead=False,  # random access by example index
        )
    except lmdb.Error as err:
        if data.is_file():
            raise StoreCorruptedError(
                damaged_store_message(path, f"corrupt or not LMDB: {type(err).__name__}: {err}")
            ) from err
        raise StoreFormatError(
            f"cannot open {path} as an LMDB fit cache ({type(err).__name__}: {err}); its files are "
            "corrupt or not LMDB. Nothing was changed: move the folder away or choose another cache"
        ) from err
    except OSError as err:
        raise FitStoreError(f"cannot open the fit cache {path}: {err}") from err


class FitStore:
    """An LMDB best-fit dictionary. Cheap to construct; the environment opens on first use.

    Args:
        path: the store's folder (created by writers if missing).
        readonly: readers open the environment read-only; they can never write.
        body_model_hash: if given, opening a store of another body model raises
            :class:`BodyModelMismatchError`; creating a store records it.
        body_model_label: human-readable name of the body model, for the header and errors.
        map_size: initial map size in bytes for a new environment (it grows on its own).
        create: let a writer turn a missing or empty folder into a new store.
        durable: flush every commit to disk (fsync), so committed fits survive an OS crash or
            power loss too. With False, commits survive any crash of the process (SIGKILL,
            out of memory) but an OS crash may lose the last seconds of them; writes are then
            several times faster on slow disks. The data is flushed on :meth:`close`.
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_CACHE_DIR,
        *,
        readonly: bool = False,
        body_model_hash: str | None = None,
        body_model_label: str = "",
        map_size: int = DEFAULT_MAP_SIZE,
        create: bool = False,
        durable: bool = True,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.body_model_hash = body_model_hash
        self.body_model_label = body_model_label
        self.map_size = int(map_size)
        self.create = create and not readonly
        self.durable = durable
        if self.create and body_model_hash is None:
            raise BadInputError("creating a fit cache needs body_model_hash (see spin_diff.cache.provenance)")
        self._header: dict | None = None
        self._checked_pid: int | None = None
        self._resolved: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(
        cls,
        path: str | Path = DEFAULT_CACHE_DIR,
        *,
        readonly: bool = True,
        body_model_hash: str | None = None,
    ) -> "FitStore":
        """Open an existing store and check its header now (clear errors up front)."""
        store = cls(path, readonly=readonly, body_model_hash=body_model_hash)
        store.header  # noqa: B018 - opens and validates
        return store

    @classmethod
    def open_or_create(
        cls,
        path: str | Path,
        body_model_hash: str,
        body_model_label: str = "",
        map_size: int = DEFAULT_MAP_SIZE,
        durable: bool = True,
    ) -> "FitStore":
        """Open a store for writing, creating it if the folder is missing or empty."""
        store = cls(
            path, body_model_hash=body_model_hash, body_model_label=body_model_label,
            map_size=map_size, create=True, durable=durable,
        )  # fmt: skip
        store.header  # noqa: B018
        return store

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "read-write"
        return f"FitStore({str(self.path)!r}, {mode})"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_checked_pid"] = None  # the receiving process opens and checks its own
        state["_resolved"] = self._key()  # the path, whatever the receiver's working folder
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __enter__(self) -> "FitStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ environment
    def _environment(self, write: bool = False) -> lmdb.Environment:
        if write and self.readonly:
            raise FitStoreError(f"{self} was opened read-only; open it with readonly=False to write")
        _forget_inherited_environments()
        key = self._key()
        entry = _ENVS.get(key)
        # One environment per path and process, shared by readers and writers: it is opened
        # writable whenever the folder is, so that a writer never has to close (and so break)
        # an environment a reader in this process is still using. Read-only stores never
        # write through it (``write`` is refused above).
        writable = not self.readonly or (self.path.is_dir() and os.access(self.path, os.W_OK))
        if entry is not None and not self.readonly and not entry.writable:
            raise FitStoreError(
                f"{self.path} is open read-only in this process (its folder was not writable when a "
                "reader opened it); close the readers (FitStore.close) before writing"
            )
        if entry is None:
            env = _open_environment(self.path, writable, self.map_size, self.durable, self.create)
            _ENVS[key] = entry = _OpenEnvironment(env, writable, synced=self.durable)
        env = entry.env
        if self._checked_pid != os.getpid():
            try:
                self._check_header(env)
            except BaseException:
                self.close()  # not ours to keep open: the caller may inspect the files
                raise
            self._checked_pid = os.getpid()
        return env

    def _key(self) -> str:
        if self._resolved is None:
            self._resolved = str(self.path.resolve())
        return self._resolved

    def close(self) -> None:
        """Close this process's environment for the path (reopened by the next call)."""
        entry = _ENVS.pop(self._key(), None)
        if entry is not None:
            entry.close()

    def sync(self) -> None:
        """Flush committed writes to disk (only needed with ``durable=False``)."""
        entry = _ENVS.get(self._key())
        if entry is not None and entry.writable:
            entry.env.sync(True)

    def _begin_read(self, env: lmdb.Environment) -> lmdb.Transaction:
        """A read transaction, adopting first a map that another process grew."""
        for _ in range(10):
            try:
                return env.begin(buffers=True)
            except lmdb.MapResizedError:
                env.set_mapsize(0)
        raise FitStoreError(f"{self.path}: the map keeps being resized under this reader")

    def _damaged(self, err: Exception) -> StoreCorruptedError:
        return StoreCorruptedError(damaged_store_message(self.path, f"{type(err).__name__}: {err}"))

    def _read_txn(self, env: lmdb.Environment, fn):
        """Run ``fn(txn)`` in one read transaction (one consistent snapshot)."""
        try:
            with self._begin_read(env) as txn:
                return fn(txn)
        except _DAMAGE as err:
            raise self._damaged(err) from err

    def _write_txn(self, fn, env: lmdb.Environment | None = None):
        """Run ``fn(txn)`` in one write transaction; grow the map and redo it when full."""
        if env is None:
            env = self._environment(write=True)
        while True:
            try:
                with env.begin(write=True) as txn:
                    result = fn(txn)
                if self.durable:
                    entry = _ENVS.get(self._key())
                    if entry is not None and not entry.synced:  # another store opened it non-durable
                        env.sync(True)
                return result
            except lmdb.MapResizedError:
                env.set_mapsize(0)
            except lmdb.MapFullError:
                size = env.info()["map_size"]
                if size >= MAX_MAP_SIZE:
                    raise StoreWriteError(
                        f"{self.path}: the store reached its maximum size ({size} bytes)"
                    ) from None
                log.info(
                    "fit cache %s: map full at %d MiB, growing to %d MiB", self.path, size >> 20, size >> 19
                )
                env.set_mapsize(2 * size)
            except FitStoreError:
                raise
            except _DAMAGE as err:
                self.close()
                raise self._damaged(err) from err
            except (lmdb.Error, OSError) as err:
                self.close()  # the environment may be unusable after a failed commit
                raise StoreWriteError(
                    f"could not write to the fit cache {self.path} ({type(err).__name__}: {err}). Nothing of "
                    "this batch was written and every batch committed before is intact; free disk space "
                    "(or fix the I/O error) and run again"
                ) from err

    # ------------------------------------------------------------------ header
    def _check_header(self, env: lmdb.Environment) -> None:
        def read(txn):
            raw = txn.get(HEADER_KEY)
            first = None
            if raw is None:
                with txn.cursor() as cursor:
                    first = bytes(cursor.key()) if cursor.first() else None
            return (bytes(raw) if raw is not None else None), first

        raw, first = self._read_txn(env, read)
        if raw is None:
            if first is not None:
                raise StoreFormatError(
                    f"{self.path} is an LMDB environment but not a spin_diff fit cache (no header record; "
                    f"its first key is {first[:40]!r}). It was left untouched: choose another cache folder"
                )
            if not self.create:
                raise StoreFormatError(
                    f"{self.path} is an empty LMDB environment, not a fit cache yet: build one with "
                    "`spin-diff cache build` (or open it for writing with create=True)"
                )
            self._header = self._write_header(env)
        else:
            self._header = self._parse_header(raw)
        self._check_body_model()

    def _parse_header(self, raw: bytes) -> dict:
        try:
            header = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise StoreFormatError(f"{self.path}: the header record is corrupt ({err})") from err
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            raise StoreFormatError(
                f"{self.path}: the header does not describe a spin_diff fit cache: {header!r:.200}"
            )
        if header.get("version") != FORMAT_VERSION:
            raise StoreFormatError(
                f"{self.path} is a fit cache of format version {header.get('version')}; this spin_diff reads "
                f"version {FORMAT_VERSION}. Use the spin_diff version that wrote it, or export it there "
                "(`spin-diff cache export`) and import the npz here"
            )
        return header

    def _write_header(self, env: lmdb.Environment) -> dict:
        header = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "record_version": RECORD_VERSION,
            "record_size": RECORD_SIZE,
            "body_model_sha256": self.body_model_hash,
            "body_model": self.body_model_label,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

        def write(txn):
            existing = txn.get(HEADER_KEY)
            if existing is not None:  # another process created it meanwhile
                return self._parse_header(bytes(existing))
            with txn.cursor() as cursor:
                if cursor.first():
                    raise StoreFormatError(f"{self.path} holds records but no header; it was left untouched")
            txn.put(HEADER_KEY, json.dumps(header, sort_keys=True).encode())
            return header

        return self._write_txn(write, env)

    def _check_body_model(self) -> None:
        stored = self._header.get("body_model_sha256")
        if self.body_model_hash is not None and stored != self.body_model_hash:
            theirs = self._header.get("body_model") or "unnamed"
            ours = self.body_model_label or "this run's body model"
            raise BodyModelMismatchError(
                f"{self.path} holds fits of another body model: {theirs} (sha256 {str(stored)[:12]}...), "
                f"not {ours} (sha256 {self.body_model_hash[:12]}...). Fits do not transfer between "
                "body models: use another --cache, or the body model the cache was built with"
            )

    @property
    def header(self) -> dict:
        """The header record: format, version, body-model hash and label, creation time."""
        self._environment()
        return dict(self._header)

    # ------------------------------------------------------------------ reading
    def get_many(self, dataset: str | Sequence[str], indices) -> StoredFits:
        """The records of a batch of examples, read in ONE transaction (a consistent snapshot).

        Args:
            dataset: one dataset name, or one per row.
            indices: (B,) example indices.

        Returns:
            :class:`StoredFits` with ``found`` (B,) and the fields as arrays.
        """
        keys = encode_keys(dataset, np.asarray(indices).astype(np.int64, copy=False))
        env = self._environment()

        def read(txn):
            get = txn.get
            return decode_records([get(k) for k in keys], where=str(self.path))

        return self._read_txn(env, read)

    def get(self, dataset: str, index: int) -> StoredFits:
        """One example's record (a :class:`StoredFits` of one row)."""
        return self.get_many(dataset, np.array([index]))

    def datasets(self) -> list[str]:
        """Names of the datasets with at least one record, sorted."""
        env = self._environment()

        def read(txn):
            names = []
            with txn.cursor() as cursor:
                found = cursor.set_range(b"\x01")
                while found:
                    name, _ = decode_key(bytes(cursor.key()))
                    names.append(name)
                    # every allowed name character after '/' sorts at or above '0'
                    found = cursor.set_range(name.encode() + b"0")
            return names

        return sorted(self._read_txn(env, read))

    def count(self, dataset: str | None = None) -> int:
        """Number of records (of one dataset, or in all)."""
        if dataset is None:
            return sum(self.count(name) for name in self.datasets())
        prefix = dataset_prefix(dataset)
        env = self._environment()

        def read(txn):
            total = 0
            with txn.cursor() as cursor:
                if cursor.set_range(prefix):
                    for key in cursor.iternext(keys=True, values=False):
                        if not bytes(key).startswith(prefix):
                            break
                        total += 1
            return total

        return self._read_txn(env, read)

    def scan(
        self, dataset: str | None = None, chunk: int = 4096
    ) -> Iterator[tuple[list[str], np.ndarray, StoredFits]]:
        """Every record, in key order, as chunks ``(dataset names, indices (n,), fits)``.

        Each dataset is read in one snapshot; writers go on meanwhile.
        """
        datasets = [dataset] if dataset is not None else self.datasets()
        env = self._environment()
        try:
            yield from self._scan(env, datasets, chunk)
        except _DAMAGE as err:
            raise self._damaged(err) from err

    def _scan(self, env, datasets, chunk):
        for name in datasets:
            prefix = dataset_prefix(name)
            # Each dataset is read in one transaction held across the yields.
            with self._begin_read(env) as txn, txn.cursor() as cursor:
                indices: list[int] = []
                values: list[bytes] = []
                found = cursor.set_range(prefix)
                while found:
                    key = bytes(cursor.key())
                    if not key.startswith(prefix):
                        break
                    indices.append(int(key[len(prefix) :]))
                    values.append(bytes(cursor.value()))
                    if len(values) == chunk:
                        yield self._chunk(name, indices, values)
                        indices, values = [], []
                    found = cursor.next()
                if values:
                    yield self._chunk(name, indices, values)

    def _chunk(self, name: str, indices: list[int], values: list[bytes]):
        fits = decode_records(values, str(self.path))
        return [name] * len(indices), np.array(indices, dtype=np.int64), fits

    def configs(self) -> dict[int, dict]:
        """Every registered config description, by hash."""
        env = self._environment()

        def read(txn):
            out = {}
            with txn.cursor() as cursor:
                found = cursor.set_range(CONFIG_PREFIX)
                while found:
                    key = bytes(cursor.key())
                    if not key.startswith(CONFIG_PREFIX):
                        break
                    out[int(key[len(CONFIG_PREFIX) :], 16)] = json.loads(bytes(cursor.value()))
                    found = cursor.next()
            return out

        return self._read_txn(env, read)

    def info(self) -> dict:
        """Map size, bytes in use, number of keys (records plus header entries)."""
        env = self._environment()
        try:
            info, stat = env.info(), env.stat()
        except _DAMAGE as err:
            raise self._damaged(err) from err
        return {
            "map_size": info["map_size"],
            "used_bytes": (info["last_pgno"] + 1) * stat["psize"],
            "entries": stat["entries"],
        }

    # ------------------------------------------------------------------ writing
    def register_config(self, config_hash: int, description: dict) -> None:
        """Record what a config hash stands for (kept if already there)."""
        key = CONFIG_PREFIX + b"%016x" % int(config_hash)
        value = json.dumps(description, sort_keys=True).encode()
        self._write_txn(lambda txn: txn.put(key, value, overwrite=False))

    def update_if_better(self, batch: FitBatch) -> UpdateResult:
        """Write the rows of ``batch`` that beat the stored records, in ONE write transaction.

        A row is written when there is no record yet, or its score is strictly lower than the
        stored record's (a tie keeps the stored one). Ground truth, once stored, is kept: a fit is
        refused (``protected``) and another ground-truth row of the example is not written (the
        same truth scored again differs only by float noise); a ground-truth row replaces any fit. Rows with a NaN/inf parameter or a NaN score,
        or a fit with an infinite score, are never written. The comparison reads the stored
        record inside the same transaction, so concurrent writers cannot interleave.
        """
        records = batch.to_records()
        keys = batch.keys()
        n = len(keys)
        rejected = ~self.writable_rows(records)
        new_gt = records["source"] == _GROUND_TRUTH
        scores = records["score"].tolist()
        view = memoryview(records.tobytes())

        # Key order walks the B-tree in one direction (fewer page misses); the sort is stable, so
        # repeated examples in a batch still meet in batch order.
        order = sorted(range(n), key=keys.__getitem__)

        def write(txn):
            written = np.zeros(n, dtype=bool)
            existed = np.zeros(n, dtype=bool)
            protected = np.zeros(n, dtype=bool)
            previous = np.full(n, np.nan, dtype=np.float32)
            for i in order:
                if rejected[i]:
                    continue
                old = txn.get(keys[i])
                if old is not None:
                    if len(old) != RECORD_SIZE or old[0] != RECORD_VERSION:
                        raise StoreFormatError(
                            f"{self.path}: the stored record {keys[i]!r} is corrupt or of another version; "
                            "the batch was not written"
                        )
                    existed[i] = True
                    old_score = _SCORE.unpack_from(old, SCORE_OFFSET)[0]
                    previous[i] = old_score
                    old_gt = old[1] == _GROUND_TRUTH
                    if old_gt:
                        protected[i] = not new_gt[i]
                        continue
                    if not new_gt[i] and not scores[i] < old_score:
                        continue
                txn.put(keys[i], view[i * RECORD_SIZE : (i + 1) * RECORD_SIZE])
                written[i] = True
            return written, existed, previous, protected

        written, existed, previous, protected = self._write_txn(write)
        return UpdateResult(written, existed, previous, rejected, protected)

    def insert_missing(self, batch: FitBatch) -> np.ndarray:
        """Write rows only where no record exists (e.g. unscored imports); never replaces.
        Non-finite parameters are refused; the score may be +inf ("not scored"). Returns the
        (B,) mask of rows written."""
        records = batch.to_records()
        keys = batch.keys()
        ok = self.writable_rows(records, allow_unscored=True)
        view = memoryview(records.tobytes())

        def write(txn):
            written = np.zeros(len(keys), dtype=bool)
            for i, key in enumerate(keys):
                if ok[i]:
                    written[i] = txn.put(key, view[i * RECORD_SIZE : (i + 1) * RECORD_SIZE], overwrite=False)
            return written

        return self._write_txn(write)

    @staticmethod
    def writable_rows(records: np.ndarray, allow_unscored: bool = False) -> np.ndarray:
        """Rows that may be written: finite parameters; a finite score, or +inf (not scored)
        for ground truth (and for ``allow_unscored``)."""
        ok = np.isfinite(records["pose"]).all(1) & np.isfinite(records["betas"]).all(1)
        ok &= np.isfinite(records["transl"]).all(1)
        score = records["score"]
        unscored_ok = (records["source"] == _GROUND_TRUTH) | allow_unscored
        ok &= np.isfinite(score) | (unscored_ok & (score == np.inf))
        return ok
