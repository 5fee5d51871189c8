"""The one way an application readies its output folder (``--out``) without harming a user's files.

An application names the entries it writes there (``names``). What was written by an
earlier run under those names is replaced only when allowed: with ``replace=True`` (the
caller's ``--overwrite``), or, for an application that owns its whole folder, when the
folder carries that application's ``marker`` file or holds nothing but its names. Anything
else is refused with a message that says what to pass, and nothing is changed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from spin_diff.errors import BadInputError

__all__ = ["prepare_output", "check_writable_folder", "check_output_file", "replace_atomically"]


def prepare_output(
    out: str | Path,
    names: Iterable[str],
    *,
    replace: bool = False,
    marker: str | None = None,
    marker_text: str = "",
    what: str = "results",
) -> Path:
    """Make the folder ``out`` ready for the entries ``names``; returns it.

    Args:
        out: the output folder; created if missing. A file there is refused.
        names: the files and folders this run writes under ``out``; those present are removed.
        replace: the user allowed replacing earlier results (``--overwrite``). Without it, and
            without ``marker``, earlier results under ``names`` are refused.
        marker: for an application that owns its whole folder (the demo): the file that marks
            a folder it wrote. A non-empty folder is then accepted when it holds the marker or
            only ``names``, refused otherwise (it may be the user's); ``marker`` is (re)written
            with ``marker_text``.
        what: how the message names what goes in the folder ("the demo's outputs").
    """
    out = Path(out)
    names = list(names)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file: pass a folder for {what} (it is created if missing)")
    existing = [out / name for name in names if (out / name).exists()]
    if marker is not None:
        if out.is_dir() and any(out.iterdir()):
            ours = (out / marker).is_file() or all(p.name in names for p in out.iterdir())
            if not ours:
                raise BadInputError(
                    f"--out {out} is not empty and holds no earlier {what}: pass a new or empty folder "
                    "(nothing there was changed)"
                )
    elif existing and not replace:
        listed = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise BadInputError(
            f"--out {out} already holds results for {len(existing)} of these inputs ({listed}); "
            "pass --overwrite to replace them, or choose another --out"
        )
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    check_writable_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    if marker is not None:
        (out / marker).write_text(marker_text)
    return out


def check_writable_folder(out: str | Path, flag: str = "--out") -> Path:
    """Try writing a file in ``out`` or, if it does not exist yet, in its nearest existing
    folder (nothing is created): a path under a file, an unwritable folder or a full disk
    becomes one :class:`BadInputError` before any work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"{flag} {out} is a file: pass a folder (it is created if missing)")
    probe = out.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise BadInputError(f"{flag} {out} cannot be written: {probe} is a file, not a folder; choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".write-test-"):
            pass
    except OSError as err:
        raise BadInputError(f"{flag} {out} cannot be written ({err.strerror or err}): choose a folder you can write to") from None
    return out


def check_output_file(path: str | Path, *, overwrite: bool = False, suffixes: tuple[str, ...] = (),
                      flag: str = "--out") -> Path:  # fmt: skip
    """Check an output file's path before any work: its suffix (one of ``suffixes``, if
    given), not a folder, not an existing file unless ``overwrite``, a writable folder."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise BadInputError(f"{flag} {path}: this writes {' or '.join(suffixes)} files; name the output so")
    if path.is_dir():
        raise BadInputError(f"{flag} {path} is a folder: pass a file name")
    if path.exists() and not overwrite:
        raise BadInputError(f"{flag} {path} exists: pass --overwrite to replace it, or choose another name")
    check_writable_folder(path.parent if str(path.parent) else Path("."), flag=f"{flag} {path}: its folder")
    return path


@contextlib.contextmanager
def replace_atomically(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success it replaces ``path``, on any
    error it is removed (a full disk never leaves a partial file, the previous file stays)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.",
                                    suffix=path.suffix)  # fmt: skip
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
