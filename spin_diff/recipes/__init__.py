"""The recipes shipped with the package: YAML configs a command can name instead of a path.

They are package data, so a regular (non-editable) ``pip install`` carries them and every
command finds them without a source checkout:

| recipe | what it is |
| --- | --- |
| ``default`` | the defaults of ``Config`` written out (body model, device, seed) |
| ``fit_cold_start`` | ``spin-diff fit`` from the mean pose: staged, decaying priors, photo camera |
| ``fit_photo`` | ``spin-diff fit`` from a regressor's prediction: the cold start's stages from it (extends ``fit_cold_start``) |
| ``fit_from_regressor`` | ``cache build`` / ``eval --refine`` from a regressor's prediction (SPIN's crop camera); ``spin-diff fit --recipe from_regressor`` |
| ``train_spin`` | SPIN's training recipe (ResNet-50 image model, SPIN's weights and schedule) |
| ``train_keypoints_cpu`` | a small keypoint-input run that trains in minutes on a CPU (the demo's) |

``--config NAME`` (or ``NAME.yaml``) finds a shipped recipe when no file of that name exists;
``spin-diff fit --recipe NAME`` takes the fitting ones without their ``fit_`` prefix. A recipe
may start with ``extends: other.yaml`` (read first, then the file over it).
"""

from __future__ import annotations

from pathlib import Path

from spin_diff.errors import MissingInputError

RECIPE_DIR = Path(__file__).resolve().parent


def recipe_names() -> list[str]:
    """The names of the shipped recipes, sorted."""
    return sorted(path.stem for path in RECIPE_DIR.glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """The file of the shipped recipe ``name`` (with or without ``.yaml``)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    path = RECIPE_DIR / f"{stem}.yaml"
    if not path.is_file():
        raise MissingInputError(
            f"recipe {name!r} is not shipped with spin_diff (shipped: {', '.join(recipe_names())}); "
            "pass the path of a YAML file instead"
        )
    return path


def find_config(text: str | Path) -> Path:
    """A ``--config`` value: an existing file as given, else a shipped recipe of that name.

    A path that exists always wins, so a user's ``train_spin.yaml`` in the working folder is
    read rather than the shipped one of the same name.
    """
    path = Path(text)
    if path.is_file():
        return path
    if path.parent == Path(".") and (RECIPE_DIR / f"{path.stem}.yaml").is_file() and path.suffix in ("", ".yaml"):
        return RECIPE_DIR / f"{path.stem}.yaml"
    raise MissingInputError(
        f"config file not found: {text} (nor a shipped recipe of that name: {', '.join(recipe_names())})"
    )
