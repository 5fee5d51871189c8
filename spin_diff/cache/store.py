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

Keys, record layout and the meaning of each field: :mod:`spin_diff.cache.records`; the
header and the config descriptions beside the records: :mod:`spin_diff.cache.header`.

The store is made of three parts, each in its own module:
:mod:`spin_diff.cache.environment` (the LMDB environment of a folder, one per process, and
its transactions: lazy opening, fork safety, map growth, what a failed write leaves),
:mod:`spin_diff.cache.header` (the header record and the config-hash table) and
:mod:`spin_diff.cache.updates` (which rows of a batch are written). :class:`FitStore` puts
them together behind one object that pickles as its path and options.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import lmdb
import numpy as np

from spin_diff.cache.environment import DAMAGE_ERRORS, DEFAULT_MAP_SIZE, StoreEnvironment
from spin_diff.cache.errors import (
    BodyModelMismatchError,
    FitStoreError,
    StoreCorruptedError,
    StoreFormatError,
    StoreWriteError,
)
from spin_diff.cache.header import (
    check_body_model,
    claim_datasets,
    claim_score_rule,
    config_entry,
    new_header,
    parse_header,
    read_configs,
    read_datasets,
    read_header,
    read_score_rule,
    refuse_missing_header,
    write_header,
)
from spin_diff.cache.records import (
    FitBatch,
    StoredFits,
    dataset_prefix,
    decode_key,
    decode_records,
    encode_keys,
)
from spin_diff.cache.updates import (
    UpdateResult,
    forget_previous,
    roll_back_after,
    writable_rows,
    write_if_better,
    write_missing,
)
from spin_diff.errors import BadInputError

__all__ = [
    "DEFAULT_CACHE_DIR",
    "FitStoreError",
    "StoreFormatError",
    "StoreCorruptedError",
    "BodyModelMismatchError",
    "StoreWriteError",
    "FitStore",
]

DEFAULT_CACHE_DIR = Path("fits_cache")


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
        self._lmdb = StoreEnvironment(
            self.path, readonly=readonly, map_size=self.map_size, durable=durable, create=self.create
        )
        self._header: dict | None = None
        self._checked_pid: int | None = None

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
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __enter__(self) -> "FitStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ environment
    def _environment(self, write: bool = False) -> lmdb.Environment:
        """This process's environment, its header checked once per process."""
        env = self._lmdb.open(write)
        if self._checked_pid != os.getpid():
            try:
                self._check_header(env)
            except BaseException:
                self.close()  # not ours to keep open: the caller may inspect the files
                raise
            self._checked_pid = os.getpid()
        return env

    def close(self) -> None:
        """Close this process's environment for the path (reopened by the next call)."""
        self._lmdb.close()

    def sync(self) -> None:
        """Flush committed writes to disk (only needed with ``durable=False``)."""
        self._lmdb.sync()

    def _read_txn(self, env: lmdb.Environment, fn):
        """Run ``fn(txn)`` in one read transaction (one consistent snapshot)."""
        return self._lmdb.read(env, fn)

    def _write_txn(self, fn, env: lmdb.Environment | None = None):
        """Run ``fn(txn)`` in one write transaction; grow the map and redo it when full."""
        return self._lmdb.write(self._environment(write=True) if env is None else env, fn)

    # ------------------------------------------------------------------ header
    def _check_header(self, env: lmdb.Environment) -> None:
        """Read the header (or write it into an empty store we may create) and check it."""
        raw, first = self._read_txn(env, read_header)
        if raw is None:
            refuse_missing_header(self.path, first, self.create)
            header = new_header(self.body_model_hash, self.body_model_label)
            self._header = self._write_txn(lambda txn: write_header(txn, self.path, header), env)
        else:
            self._header = parse_header(self.path, raw)
        check_body_model(self.path, self._header, self.body_model_hash, self.body_model_label)

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
        except DAMAGE_ERRORS as err:
            raise self._lmdb.damaged(err) from err

    def _scan(self, env, datasets, chunk):
        for name in datasets:
            prefix = dataset_prefix(name)
            # Each dataset is read in one transaction held across the yields.
            with self._lmdb.begin_read(env) as txn, txn.cursor() as cursor:
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
        return self._read_txn(self._environment(), read_configs)

    def dataset_identities(self) -> dict[str, dict]:
        """The recorded identity of every dataset, by name (see :mod:`spin_diff.cache.header`)."""
        return self._read_txn(self._environment(), read_datasets)

    def claim_datasets(self, identities: dict[str, dict]) -> None:
        """Record each dataset's identity (:func:`~spin_diff.cache.header.dataset_identity`)
        where the store has none for its name, in one write transaction; raise
        :class:`~spin_diff.cache.errors.DatasetIdentityError`, writing nothing, if a name of
        the store stands for a dataset of other content. Call it before writing its records."""
        if identities:
            self._write_txn(lambda txn: claim_datasets(txn, self.path, identities))

    def score_rule(self) -> dict:
        """The keep rule the store's scores were written under (SPIN's where none is recorded)."""
        return self._read_txn(self._environment(), read_score_rule)

    def claim_score_rule(self, rule: dict) -> None:
        """Record the keep rule (:func:`spin_diff.fitting.keep.rule_description`) this writer
        scores under, or raise :class:`~spin_diff.cache.errors.ScoreRuleMismatchError`, writing
        nothing, if the store's scores are of another. Call it before writing records."""
        self._write_txn(lambda txn: claim_score_rule(txn, self.path, rule))

    def info(self) -> dict:
        """Map size, bytes in use, number of keys (records plus header entries)."""
        env = self._environment()
        try:
            info, stat = env.info(), env.stat()
        except DAMAGE_ERRORS as err:
            raise self._lmdb.damaged(err) from err
        return {
            "map_size": info["map_size"],
            "used_bytes": (info["last_pgno"] + 1) * stat["psize"],
            "entries": stat["entries"],
        }

    # ------------------------------------------------------------------ writing
    def register_config(self, config_hash: int, description: dict) -> None:
        """Record what a config hash stands for (kept if already there)."""
        key, value = config_entry(config_hash, description)
        self._write_txn(lambda txn: txn.put(key, value, overwrite=False))

    def update_if_better(self, batch: FitBatch, keep_previous: bool = False) -> UpdateResult:
        """Write the rows of ``batch`` that beat the stored records, in ONE write transaction
        (the rules: :mod:`spin_diff.cache.updates`; ground truth, once stored, is kept).
        The comparison reads the stored record inside the same transaction, so concurrent
        writers cannot interleave. ``keep_previous``: keep each replaced version until
        :meth:`forget_previous`, for :meth:`roll_back_after` (training runs)."""
        records = batch.to_records()
        rejected = ~writable_rows(records)
        write = write_if_better(batch.keys(), records, rejected, str(self.path), keep_previous)
        written, existed, previous, protected = self._write_txn(write)
        return UpdateResult(written, existed, previous, rejected, protected)

    def insert_missing(self, batch: FitBatch) -> np.ndarray:
        """Write rows only where no record exists (e.g. unscored imports); never replaces.
        Non-finite parameters are refused; the score may be +inf ("not scored"). Returns the
        (B,) mask of rows written."""
        records = batch.to_records()
        ok = writable_rows(records, allow_unscored=True)
        return self._write_txn(write_missing(batch.keys(), records, ok))

    def roll_back_after(self, step: int) -> int:
        """Undo the kept writes of steps ``>= step`` (the store as a checkpoint at ``step``
        saw it); drops every kept version. Returns how many records were rolled back."""
        return self._write_txn(roll_back_after(int(step), str(self.path)))

    def forget_previous(self) -> int:
        """Drop the versions kept for a roll-back (a newer checkpoint covers their writes)."""
        return self._write_txn(forget_previous)

    writable_rows = staticmethod(writable_rows)
