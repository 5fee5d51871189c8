"""Content hashes: of a file's bytes, and of a JSON-able description (a config)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "config_hash"]


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, cached per (path, size, mtime) in this process."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def config_hash(description: dict[str, Any]) -> int:
    """64-bit hash of a description (canonical JSON: sorted keys, no whitespace). Never 0,
    which marks records of unknown provenance."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"), default=str)
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return value or 1
