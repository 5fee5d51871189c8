"""Arguments and error handling shared by the ``spin-diff`` subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

import numpy as np
import torch

from spin_diff.cache.records import check_dataset_name
from spin_diff.errors import BadInputError, InputError, MissingInputError
from spin_diff.fitting.config import Config
from spin_diff.recipes import find_config, recipe_path
from spin_diff.utils.configs import load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --set, --body-model, --device."""
    parser.add_argument(
        "--config", help="YAML config file, or the name of a recipe shipped with spin_diff (spin_diff/recipes/)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set body.num_betas=10 (repeatable)",
    )
    parser.add_argument(
        "--body-model",
        help="SMPL .pkl/.npz or a folder with smpl/SMPL_NEUTRAL.pkl; default: the bundled free model",
    )
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda")


def regressor_recipe(from_regressor: bool) -> list[Path]:
    """The ``base`` of :func:`resolve_config` for a command whose fits start from a regressor's
    prediction (``cache build``, ``eval --refine``): the shipped ``fit_from_regressor`` recipe,
    as ``spin-diff fit`` uses; nothing (the library's defaults) for the mean pose."""
    return [recipe_path("fit_from_regressor")] if from_regressor else []


def resolve_config(args: argparse.Namespace, cls=Config, base: list[Path] = ()):
    """The config of a command: defaults, then the ``base`` files (e.g. a fitting recipe),
    then --config, then --set, then shortcuts."""
    config = load_config(cls, list(base) + ([find_config(args.config)] if args.config else []), args.overrides)
    if getattr(args, "body_model", None):
        config.body.model_path = args.body_model
    if getattr(args, "device", None):
        config.device = args.device
    check_device(config.device)
    return config


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` and run the chosen handler; returns the exit status
    (0 ok, 1 failed items, 2 bad input)."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Only expected input errors become a one-line message; anything else is a bug and keeps
    # its traceback. With -v the traceback of an input error is printed too.
    # The machine's answers to a command are not bugs either: a file system error (a path under
    # a file, no permission, a full disk), memory, Ctrl-C, a closed pipe (`| head`).
    try:
        return int(args.handler(args) or 0)
    except InputError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"spin-diff: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spin-diff: interrupted (what was written before stays consistent; rerun to continue)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away: stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file (captured)
            pass
        return 141
    except OSError as err:
        if args.verbose:
            traceback.print_exc()
        where = f" {err.filename}" if err.filename else ""
        print(f"spin-diff: error: cannot use{where}: {err.strerror or err}; check the path (a file where a folder "
              "is expected?), its permissions and the free disk space", file=sys.stderr)  # fmt: skip
        return 2
    except MemoryError as err:
        print(f"spin-diff: error: out of memory ({err}); use smaller inputs or sizes", file=sys.stderr)
        return 2


def parse_dataset_argument(text: str) -> tuple[str | None, Path]:
    """``[NAME=]PATH`` (``train --dataset``, ``cache stats --data``) -> (name or None, path).
    A ``=`` makes a name only when what precedes it could be one (no path separator)."""
    name, sep, path = text.partition("=")
    if sep and name and "/" not in name and os.sep not in name:
        return check_dataset_name(name), Path(path)
    return None, Path(text)


def check_device(name: str) -> None:
    """Raise BadInputError (one line) for a device torch does not know or this machine lacks."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise BadInputError(f"--device {name!r} is not a torch device: use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError(
                f"--device {name}: CUDA is not available here (torch {torch.__version__} sees no GPU); "
                "use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BadInputError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type not in ("cpu", "mps"):
        raise BadInputError(f"--device {name}: spin_diff runs on cpu or cuda, not {device.type}")


def parse_vector(text: str | None, size: int, name: str, exact: bool = True) -> np.ndarray:
    """A parameter vector from a file (.npy, .npz key ``name``, .json list) or 'a,b,c' text.

    Returns shape (size,), zero-padded when ``exact`` is False (betas may be shorter).
    """
    if text is None or text == "":
        return np.zeros(size)
    path = Path(text)
    if path.suffix in (".npy", ".npz", ".json"):
        if not path.is_file():
            raise MissingInputError(f"--{name} file not found: {path}")
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if name not in data.files:
                    raise BadInputError(f"{path} has no key {name!r} (keys: {data.files})")
                values = data[name]
        else:
            values = np.asarray(json.loads(path.read_text()), dtype=np.float64)
    else:
        try:
            values = np.array([float(v) for v in text.replace(" ", "").split(",") if v], dtype=np.float64)
        except ValueError as err:
            raise BadInputError(f"--{name} must be a file or comma-separated numbers: {err}") from err
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if (exact and values.size != size) or values.size > size:
        want = f"{size}" if exact else f"at most {size}"
        raise BadInputError(f"--{name} needs {want} numbers, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise BadInputError(f"--{name} contains NaN or inf")
    return np.pad(values, (0, size - values.size))
