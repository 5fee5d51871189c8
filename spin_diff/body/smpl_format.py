"""Reading and writing SMPL model files as users have them.

The official SMPL pkl was written with Python 2, chumpy and an old scipy. chumpy does not
import on numpy >= 1.24, so :func:`read_smpl_file` unpickles with stand-ins for the chumpy
and old-scipy classes and reads their numpy payload. It also reads the npz form (same keys).

:func:`write_smpl_pkl` writes a pkl that ``smplx.SMPL`` (and any SMPL loader using
``pickle.load(f, encoding='latin1')``) reads on numpy 1.x and 2.x alike: arrays are pickled
as calls to ``numpy.ndarray`` on raw bytes instead of numpy's version-specific internals.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from spin_diff.errors import BadInputError
from spin_diff.utils.portable_pickle import Zeros, dump_portable

log = logging.getLogger(__name__)

SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


class SMPLFileError(BadInputError):
    """A body-model file is missing, unreadable or has the wrong content."""


class _StubObject:
    """Stands in for a chumpy or legacy scipy object; keeps the pickled state."""

    _stub_module = ""
    _stub_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._stub_args = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_stub_state"] = state


def _stub_class(module: str, name: str) -> type:
    return type(name, (_StubObject,), {"_stub_module": module, "_stub_name": name})


class _SMPLUnpickler(pickle.Unpickler):
    """Unpickler that never imports chumpy and tolerates old scipy/numpy module paths."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return _stub_class(module, name)
        if module.startswith("scipy.sparse") and name.endswith("_matrix"):
            return _stub_class(module, name)
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core") :]
        return super().find_class(module, name)


def _to_array(value: Any, key: str, path: Path) -> np.ndarray:
    """The numpy content of an unpickled value (ndarray, chumpy stub, sparse stub)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, _StubObject):
        state = value.__dict__
        if value._stub_name.endswith("_matrix"):
            return _sparse_stub_to_dense(value, key, path)
        if "x" in state:  # chumpy.Ch keeps its value in .x
            return np.asarray(state["x"])
        raise SMPLFileError(
            f"{path}: key {key!r} is a chumpy expression ({value._stub_module}.{value._stub_name}) "
            "without a stored value; re-export the model with numpy arrays (e.g. smplx's "
            "tools/clean_ch.py on a machine with chumpy)"
        )
    if hasattr(value, "toarray"):  # a real scipy sparse matrix
        return value.toarray()
    try:
        return np.asarray(value)
    except Exception as err:  # pragma: no cover - exotic payloads
        raise SMPLFileError(f"{path}: key {key!r} cannot be read as an array ({err})") from err


def _sparse_stub_to_dense(value: _StubObject, key: str, path: Path) -> np.ndarray:
    state = value.__dict__
    shape = state.get("_shape", state.get("shape"))
    try:
        data, indices, indptr = (np.asarray(state[k]) for k in ("data", "indices", "indptr"))
    except KeyError as err:
        raise SMPLFileError(f"{path}: sparse matrix {key!r} lacks {err}") from err

    fmt = value._stub_name.split("_")[0]
    cls = {"csc": scipy.sparse.csc_matrix, "csr": scipy.sparse.csr_matrix}.get(fmt)
    if cls is None:
        raise SMPLFileError(f"{path}: unsupported sparse format {value._stub_name} for {key!r}")
    return cls((data, indices, indptr), shape=tuple(shape)).toarray()


def read_smpl_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read an SMPL model file (official pkl, with or without chumpy objects, or npz).

    Returns the model arrays under their official keys (see ``SMPL_KEYS``), as numpy arrays;
    other keys of the file are kept when they convert to arrays.
    Raises:
        SMPLFileError: the file is missing, unreadable, or lacks a key or has a wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise SMPLFileError(f"SMPL model file not found: {path}")
    raw: dict[str, Any]
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                raw = {k: data[k] for k in data.files}
        else:
            with open(path, "rb") as handle:
                raw = _SMPLUnpickler(handle, encoding="latin1").load()
    except SMPLFileError:
        raise
    except Exception as err:
        raise SMPLFileError(
            f"cannot read SMPL model file {path}: {type(err).__name__}: {err}. "
            "Is it an SMPL .pkl/.npz (e.g. SMPL_NEUTRAL.pkl from smpl.is.tue.mpg.de)?"
        ) from err
    if not isinstance(raw, dict):
        raise SMPLFileError(f"{path} does not hold an SMPL model (a dict), found {type(raw).__name__}")
    missing = [k for k in SMPL_KEYS if k not in raw]
    if missing:
        raise SMPLFileError(f"{path} is missing SMPL keys {missing}; is it an SMPL model file?")

    arrays: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        if key in SMPL_KEYS:
            arrays[key] = _to_array(value, key, path)
        else:
            try:
                arrays[key] = _to_array(value, key, path)
            except SMPLFileError:
                log.debug("%s: skipping non-array key %s", path, key)
    _check_shapes(arrays, path)
    return arrays


def _check_shapes(arrays: dict[str, np.ndarray], path: Path) -> None:
    v_template = arrays["v_template"]
    if v_template.ndim != 2 or v_template.shape[1] != 3:
        raise SMPLFileError(f"{path}: v_template must be (V, 3), got {v_template.shape}")
    num_v = v_template.shape[0]
    kintree = arrays["kintree_table"]
    if kintree.ndim != 2 or kintree.shape[0] != 2:
        raise SMPLFileError(f"{path}: kintree_table must be (2, J), got {kintree.shape}")
    num_j = kintree.shape[1]
    expected = {
        "shapedirs": (num_v, 3, None),
        "posedirs": (num_v, 3, (num_j - 1) * 9),
        "J_regressor": (num_j, num_v),
        "weights": (num_v, num_j),
        "f": (None, 3),
    }
    for key, shape in expected.items():
        got = arrays[key].shape
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
            want = tuple("*" if s is None else s for s in shape)
            raise SMPLFileError(f"{path}: {key} must have shape {want}, got {got}")
    if arrays["f"].size and (arrays["f"].max() >= num_v or arrays["f"].min() < 0):
        raise SMPLFileError(f"{path}: face indices out of range for {num_v} vertices")
    for key in ("v_template", "shapedirs", "J_regressor", "weights"):
        if not np.all(np.isfinite(arrays[key])):
            raise SMPLFileError(f"{path}: {key} contains NaN or inf")


def write_smpl_pkl(
    path: str | Path,
    *,
    v_template: np.ndarray,
    shapedirs: np.ndarray,
    J_regressor: np.ndarray,
    weights: np.ndarray,
    faces: np.ndarray,
    kintree_table: np.ndarray,
    posedirs: np.ndarray | None = None,
    zero_posedirs: bool = False,
    dtype: str = "<f4",
    extra: dict[str, Any] | None = None,
) -> None:
    """Write an SMPL-format pkl with the official keys, loadable by ``smplx.SMPL``.

    With ``zero_posedirs`` the pose-corrective basis is written as ``numpy.zeros``.
    """
    num_v, num_j = v_template.shape[0], kintree_table.shape[1]
    if posedirs is None and not zero_posedirs:
        raise ValueError("give posedirs or set zero_posedirs=True")
    content: dict[str, Any] = {
        "v_template": v_template.astype(dtype),
        "shapedirs": shapedirs.astype(dtype),
        "posedirs": Zeros((num_v, 3, (num_j - 1) * 9), dtype)
        if zero_posedirs
        else posedirs.astype(dtype),
        "J_regressor": J_regressor.astype(dtype),
        "weights": weights.astype(dtype),
        "f": faces.astype("<u4"),
        "kintree_table": kintree_table.astype("<i8"),
        "bs_type": "lrotmin",
        "bs_style": "lbs",
        **(extra or {}),
    }
    dump_portable(content, path)
