"""The LMDB environment of a fit cache: one per folder and process, its transactions, growth.

Processes and fork
------------------
An LMDB environment must not be used across ``fork()``, and py-lmdb refuses to open one
environment twice in a process. So a :class:`StoreEnvironment` opens its environment lazily,
in the process that uses it, and shares it with every other one on the same path in that
process. Before the process forks (a DataLoader starting its workers), open environments are
closed; each side reopens on its next call. A :class:`StoreEnvironment` pickles as its path
and options, so it can be handed to spawned workers too.

Growth and failure
------------------
The map (LMDB's maximum file size) starts at ``map_size`` and doubles whenever a write
transaction runs out of room; the transaction is then redone. A process whose map another
process grew adopts the new size. A write that fails (disk full, I/O error) raises
:class:`StoreWriteError`; nothing of that transaction is written and everything committed
before is untouched. Damaged files raise :class:`StoreCorruptedError`.

Damage
------
LMDB aborts the process on some damaged pages and faults on a file cut short, where no
Python code can answer. So the first time a :class:`StoreEnvironment` opens its store, it
checks every page LMDB could touch (:func:`spin_diff.cache.pages.check_tree`) inside a read
transaction, whose snapshot no writer can reuse meanwhile, before LMDB reads any page. The
check is made once per object (a copy pickled to a worker keeps it): pages written later
were written by LMDB itself.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import lmdb

from spin_diff.cache.errors import (
    FitStoreError,
    StoreCorruptedError,
    StoreFormatError,
    StoreWriteError,
    damaged_store_message,
)
from spin_diff.cache.pages import DamagedPagesError, check_tree
from spin_diff.errors import MissingInputError

log = logging.getLogger(__name__)

DEFAULT_MAP_SIZE = 256 << 20
MAX_MAP_SIZE = 1 << 42
MAX_READERS = 1024

# What LMDB raises for damaged files: a page of the wrong type or out of range, or a
# transaction that a damaged page made fail.
DAMAGE_ERRORS = (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.BadTxnError, lmdb.InvalidError, lmdb.BadValsizeError)
# A data.mdb that has been empty this long is a truncated store, not one being created.
_EMPTY_FILE_GRACE_S = 5.0


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


class StoreEnvironment:
    """The LMDB environment of the store folder ``path`` in this process, opened on first use.

    Args as :class:`~spin_diff.cache.store.FitStore`: ``readonly`` refuses writes, ``create``
    lets a writer make the folder, ``durable`` flushes every commit, ``map_size`` is the
    initial map of a new environment.
    """

    def __init__(self, path: Path, *, readonly: bool, map_size: int, durable: bool, create: bool) -> None:
        self.path = path
        self.readonly = readonly
        self.map_size = map_size
        self.durable = durable
        self.create = create
        self._resolved: str | None = None
        self._pages_checked = False

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_resolved"] = self.key()  # the path, whatever the receiver's working folder
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def key(self) -> str:
        """The resolved path: the key of this process's shared environment."""
        if self._resolved is None:
            self._resolved = str(self.path.resolve())
        return self._resolved

    def open(self, write: bool = False) -> lmdb.Environment:
        """This process's environment for the path, opened if needed (``write``: refused for a
        read-only store)."""
        if write and self.readonly:
            raise FitStoreError(
                f"FitStore({str(self.path)!r}, read-only) was opened read-only; open it with readonly=False to write"
            )
        _forget_inherited_environments()
        key = self.key()
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
        if not self._pages_checked:
            self._check_pages(entry.env)
        return entry.env

    def _check_pages(self, env: lmdb.Environment) -> None:
        """StoreCorruptedError unless every page of the current snapshot is sound (module doc)."""
        if (self.path / "data.mdb").stat().st_size:
            try:
                with self.begin_read(env) as txn:  # pins the snapshot checked
                    check_tree(self.path / "data.mdb", txn.id())
            except (DamagedPagesError, OSError) as err:
                self.close()
                raise StoreCorruptedError(damaged_store_message(self.path, str(err))) from err
        self._pages_checked = True

    def close(self) -> None:
        """Close this process's environment for the path (reopened by the next call)."""
        entry = _ENVS.pop(self.key(), None)
        if entry is not None:
            entry.close()

    def sync(self) -> None:
        """Flush committed writes to disk (only needed with ``durable=False``)."""
        entry = _ENVS.get(self.key())
        if entry is not None and entry.writable:
            entry.env.sync(True)

    def begin_read(self, env: lmdb.Environment) -> lmdb.Transaction:
        """A read transaction, adopting first a map that another process grew."""
        for _ in range(10):
            try:
                return env.begin(buffers=True)
            except lmdb.MapResizedError:
                env.set_mapsize(0)
        raise FitStoreError(f"{self.path}: the map keeps being resized under this reader")

    def damaged(self, err: Exception) -> StoreCorruptedError:
        """The error for damaged files, naming the store and how to rescue it."""
        return StoreCorruptedError(damaged_store_message(self.path, f"{type(err).__name__}: {err}"))

    def read(self, env: lmdb.Environment, fn):
        """Run ``fn(txn)`` in one read transaction (one consistent snapshot)."""
        try:
            with self.begin_read(env) as txn:
                return fn(txn)
        except DAMAGE_ERRORS as err:
            raise self.damaged(err) from err

    def write(self, env: lmdb.Environment, fn):
        """Run ``fn(txn)`` in one write transaction; grow the map and redo it when full."""
        while True:
            try:
                with env.begin(write=True) as txn:
                    result = fn(txn)
                if self.durable:
                    entry = _ENVS.get(self.key())
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
            except DAMAGE_ERRORS as err:
                self.close()
                raise self.damaged(err) from err
            except (lmdb.Error, OSError) as err:
                self.close()  # the environment may be unusable after a failed commit
                raise StoreWriteError(
                    f"could not write to the fit cache {self.path} ({type(err).__name__}: {err}). Nothing of "
                    "this batch was written and every batch committed before is intact; free disk space "
                    "(or fix the I/O error) and run again"
                ) from err
