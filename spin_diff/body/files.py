"""Finding body-model files where users keep them, and the bundled free model.

Accepted ``--body-model`` values:
* nothing, ``bundled`` or ``free``: the free model shipped in ``spin_diff/body/assets``;
* a model file: ``SMPL_NEUTRAL.pkl`` (official, chumpy or not), the SMPLify
  ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl``, or an ``.npz`` with the same keys;
* a folder holding one of those directly or in ``smpl/`` (smplx's layout), e.g. SPIN's
  ``data/`` folder.

SPIN's companion files (``J_regressor_extra.npy``, ``J_regressor_h36m.npy``,
``smpl_mean_params.npz``) are looked up next to the model file, then one and two folders up;
each can also be given explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from spin_diff.errors import MissingInputError
from spin_diff.utils.hashing import file_sha256

BUNDLED_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "free_body"
BUNDLED_NAMES = ("bundled", "free", "default")

_MODEL_FILE_NAMES = {
    "neutral": ("SMPL_NEUTRAL", "basicModel_neutral_lbs_10_207_0_v1.0.0", "smpl_neutral"),
    "male": ("SMPL_MALE", "basicmodel_m_lbs_10_207_0_v1.0.0", "smpl_male"),
    "female": ("SMPL_FEMALE", "basicModel_f_lbs_10_207_0_v1.0.0", "smpl_female"),
}

HOW_TO_GET_SMPL = (
    "SMPL is licensed for non-commercial use: register at https://smpl.is.tue.mpg.de, download "
    "the model and pass --body-model PATH (a .pkl/.npz, or a folder with smpl/SMPL_NEUTRAL.pkl). "
    "Or leave --body-model out to use the bundled free model."
)


class BodyModelNotFoundError(MissingInputError):
    """The requested body model (or one of its companion files) does not exist."""


@dataclass(frozen=True)
class BodyModelFiles:
    """Resolved locations of a body model and its companion files (None where absent)."""

    model: Path
    bundled: bool
    j_regressor_extra: Path | None = None
    j_regressor_h36m: Path | None = None
    mean_params: Path | None = None
    vertex_ids: Path | None = None
    provenance: Path | None = None


def _find_model_file(folder: Path, gender: str) -> Path | None:
    for sub in (folder, folder / "smpl"):
        for stem in _MODEL_FILE_NAMES[gender]:
            for ext in (".pkl", ".npz"):
                for candidate in (sub / (stem + ext), sub / (stem.lower() + ext)):
                    if candidate.is_file():
                        return candidate
    return None


def find_beside_model(model_file: Path, name: str) -> Path | None:
    """``name`` next to the model file, or one or two folders up (SPIN's data layout), if any."""
    for folder in (model_file.parent, model_file.parent.parent, model_file.parent.parent.parent):
        if (folder / name).is_file():
            return folder / name
    return None


def _find_companion(model_file: Path, name: str, explicit: str | Path | None) -> Path | None:
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise BodyModelNotFoundError(f"{name} not found at {path}")
        return path
    return find_beside_model(model_file, name)


def resolve_body_model(
    path: str | Path | None = None,
    gender: str = "neutral",
    *,
    j_regressor_extra: str | Path | None = None,
    j_regressor_h36m: str | Path | None = None,
    mean_params: str | Path | None = None,
) -> BodyModelFiles:
    """Locate a body model and its companion files.

    Raises:
        BodyModelNotFoundError: nothing usable at ``path``; the message says how to get SMPL.
        ValueError: unknown gender.
    """
    gender = gender.lower()
    if gender not in _MODEL_FILE_NAMES:
        raise ValueError(f"gender must be one of {sorted(_MODEL_FILE_NAMES)}, got {gender!r}")
    bundled = path is None or str(path).lower() in BUNDLED_NAMES
    if bundled:
        if gender != "neutral":
            raise BodyModelNotFoundError(
                f"the bundled free model is gender-neutral only (asked for {gender!r}); "
                "use gender=neutral or pass an SMPL model with --body-model"
            )
        folder = BUNDLED_MODEL_DIR
        model_file = _find_model_file(folder, gender)
        if model_file is None:
            raise BodyModelNotFoundError(
                f"the bundled model is missing from {folder}: the installation is broken; "
                "reinstall spin_diff (pip install -e .) or rebuild it with "
                "scripts/build_free_body_model.py"
            )
    else:
        target = Path(path).expanduser()
        if target.is_dir():
            model_file = _find_model_file(target, gender)
            if model_file is None:
                raise BodyModelNotFoundError(
                    f"no SMPL {gender} model in {target} (looked for "
                    f"{', '.join(n + '.pkl' for n in _MODEL_FILE_NAMES[gender][:2])} there and in "
                    f"{target / 'smpl'}). {HOW_TO_GET_SMPL}"
                )
        elif target.is_file():
            model_file = target
        else:
            raise BodyModelNotFoundError(f"body model not found at {target}. {HOW_TO_GET_SMPL}")

    root = model_file.parent.parent if model_file.parent.name == "smpl" else model_file.parent
    return BodyModelFiles(
        model=model_file,
        bundled=bundled,
        j_regressor_extra=_find_companion(model_file, "J_regressor_extra.npy", j_regressor_extra),
        j_regressor_h36m=_find_companion(model_file, "J_regressor_h36m.npy", j_regressor_h36m),
        mean_params=_find_companion(model_file, "smpl_mean_params.npz", mean_params),
        vertex_ids=(root / "vertex_ids.json") if (root / "vertex_ids.json").is_file() else None,
        provenance=(root / "PROVENANCE.md") if (root / "PROVENANCE.md").is_file() else None,
    )


def body_model_hash(body_model) -> str:
    """SHA-256 of the model file behind a :class:`~spin_diff.body.model.BodyModel` (or of a
    path to one)."""
    path = body_model if isinstance(body_model, (str, Path, os.PathLike)) else body_model.files.model
    return file_sha256(path)


def body_model_label(body_model) -> str:
    """A short human-readable name of a body model, for the store header and errors."""
    files = body_model.files
    return f"bundled free body model ({files.model.name})" if files.bundled else str(files.model)
