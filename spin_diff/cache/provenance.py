"""Where a fit came from: hashes of the body model and of the fitting configuration.

* The **body-model hash** is the SHA-256 of the model file's bytes. A store holds fits of one
  body model (its header records the hash): a pose means nothing on another model.
* The **config hash** of a record is the first 8 bytes of the SHA-256 of a canonical JSON
  description of what produced it: for fits, the fitting configuration, the body-model hash
  and the SHA-256 of every file that shapes a fit (J_regressor_extra, the GMM, the diffusion
  prior); for imports and ground truth, a short description. The store keeps each
  description under its hash (:meth:`FitStore.register_config`), so ``spin-diff cache stats``
  can say what made every record.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "file_sha256",
    "body_model_hash",
    "body_model_label",
    "describe_fitting",
    "config_hash",
]

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


def body_model_hash(body_model) -> str:
    """SHA-256 of the model file behind a :class:`~spin_diff.body.model.BodyModel` (or of a
    path to one)."""
    path = body_model if isinstance(body_model, (str, Path, os.PathLike)) else body_model.files.model
    return file_sha256(path)


def body_model_label(body_model) -> str:
    """A short human-readable name of a body model, for the store header and errors."""
    files = body_model.files
    return f"bundled free body model ({files.model.name})" if files.bundled else str(files.model)


def describe_fitting(fitting_config, body_hash: str, input_files: dict | None = None) -> dict[str, Any]:
    """The description hashed for fits made with ``fitting_config`` on a body model.

    ``input_files`` (name -> path, e.g. ``SMPLify.input_files``: the model, J_regressor_extra,
    the GMM and the diffusion prior) enter by content: a retrained prior or another GMM gives
    another hash, so ``cache build`` fits again instead of skipping. A name whose value is not
    a path (a prior given in memory) enters as that text."""
    from spin_diff.config import config_to_dict

    fitting = config_to_dict(fitting_config)
    # a check made before fitting (which regressor may feed a conditional prior), not a fit setting
    fitting.get("diffusion", {}).pop("regressor_check", None)
    if input_files:
        # the files enter by content below; where they lie does not change a fit
        fitting["gmm_path"] = None
        fitting.get("diffusion", {})["checkpoint"] = None
    description = {"kind": "fit", "fitting": fitting, "body_model_sha256": body_hash}
    if input_files:
        description["files_sha256"] = {
            name: file_sha256(path) if isinstance(path, (Path, os.PathLike)) else (None if path is None else str(path))
            for name, path in sorted(input_files.items())
        }
    return description


def config_hash(description: dict[str, Any]) -> int:
    """64-bit hash of a description (canonical JSON: sorted keys, no whitespace). Never 0,
    which marks records of unknown provenance."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"), default=str)
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return value or 1
