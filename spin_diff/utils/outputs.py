"""The one way an application readies its output folder (``--out``) without harming a user's files.

An application names the entries it writes there (``names``). What was written by an
earlier run under those names is replaced only when allowed: with ``replace=True`` (the
caller's ``--overwrite``), or, for an application that owns its whole folder, when the
folder carries that application's ``marker`` file or holds nothing but its names. Anything
else is refused with a message that says what to pass, and nothing is changed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from spin_diff.errors import BadInputError

__all__ = ["prepare_output"]


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
    out.mkdir(parents=True, exist_ok=True)
    if marker is not None:
        (out / marker).write_text(marker_text)
    return out
