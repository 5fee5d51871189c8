"""Where a fit came from: the description of a fitting configuration that a record's config
hash is taken of (the hashes themselves: :mod:`spin_diff.utils.hashing`,
:func:`spin_diff.body.files.body_model_hash`).

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

import os
from pathlib import Path
from typing import Any

from spin_diff.utils.configs import config_to_dict
from spin_diff.utils.hashing import file_sha256

__all__ = ["describe_fitting"]


def describe_fitting(fitting_config, body_hash: str, input_files: dict | None = None) -> dict[str, Any]:
    """The description hashed for fits made with ``fitting_config`` on a body model.

    ``input_files`` (name -> path, e.g. ``SMPLify.input_files``: the model, J_regressor_extra,
    the GMM and the diffusion prior) enter by content: a retrained prior or another GMM gives
    another hash, so ``cache build`` fits again instead of skipping. A name whose value is not
    a path (a prior given in memory) enters as that text."""
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


