"""Fixtures for the body-model tests: random SMPL-format model folders written like the official files.

The official ``SMPL_NEUTRAL.pkl`` was pickled by Python 2 with chumpy and an old scipy:
``shapedirs`` is a ``chumpy.ch.Ch`` object and ``J_regressor`` a ``scipy.sparse.csc.csc_matrix``
object, and numpy arrays refer to ``numpy.core.multiarray``. chumpy is not installed here (and
must not be), so the fixture pickles through stand-in classes registered under those module
paths only while dumping; they are gone from ``sys.modules`` before anything loads the file.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from spin_diff.body.joints import VERTEX_JOINT_NAMES
from spin_diff.constants import NUM_SMPL_JOINTS

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

NUM_BETAS = 10
NUM_POSE_BASIS = 9 * (NUM_SMPL_JOINTS - 1)  # 207


@dataclass
class RandomSMPL:
    """A random SMPL-format model on disk and the arrays it was written from."""

    folder: Path  # holds smpl/SMPL_NEUTRAL.pkl and the companion files, SPIN's data/ layout
    model_file: Path
    arrays: dict[str, np.ndarray]  # official keys, official dtypes (dense J_regressor)
    j_regressor_extra: np.ndarray  # (9, V)
    j_regressor_h36m: np.ndarray  # (17, V)
    mean_params: dict[str, np.ndarray]
    vertex_ids: dict[str, int]
    plain_model_file: Path  # the same arrays pickled as plain numpy, for smplx's own loader
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return self.arrays["v_template"].shape[0]


def _sparse_rows(rng: np.random.Generator, rows: int, cols: int, nonzeros: int) -> np.ndarray:
    """Non-negative (rows, cols) matrix with ``nonzeros`` entries per row, each row summing to 1."""
    matrix = np.zeros((rows, cols))
    for row in range(rows):
        picks = rng.choice(cols, size=nonzeros, replace=False)
        values = rng.uniform(0.1, 1.0, size=nonzeros)
        matrix[row, picks] = values / values.sum()
    return matrix


def random_smpl_arrays(seed: int = 0, num_vertices: int = 300) -> dict[str, np.ndarray]:
    """Random arrays under SMPL's official keys, shapes and dtypes (float64, uint32 faces)."""
    rng = np.random.default_rng(seed)
    v_template = rng.normal(scale=[0.25, 0.5, 0.1], size=(num_vertices, 3))
    shapedirs = rng.normal(scale=0.01, size=(num_vertices, 3, NUM_BETAS))
    # Small but far from zero, so pose blend shapes change the result by millimetres to centimetres.
    posedirs = rng.normal(scale=2e-3, size=(num_vertices, 3, NUM_POSE_BASIS))
    j_regressor = _sparse_rows(rng, NUM_SMPL_JOINTS, num_vertices, nonzeros=8)
    logits = rng.normal(scale=3.0, size=(num_vertices, NUM_SMPL_JOINTS))
    weights = np.exp(logits - logits.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    kintree_table = np.array(
        [[4294967295] + list(SMPL_PARENTS[1:]), list(range(NUM_SMPL_JOINTS))], dtype=np.int64
    )
    faces = rng.integers(0, num_vertices, size=(2 * num_vertices, 3)).astype(np.uint32)
    return {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": j_regressor,
        "weights": weights,
        "kintree_table": kintree_table,
        "f": faces,
        # Extra keys the official file also carries.
        "J": j_regressor @ v_template,
        "bs_type": "lrotmin",
        "bs_style": "lbs",
    }


# ---------------------------------------------------------------------------------------------
# Pickling through fake chumpy / old-scipy classes.


class _FakeCh:
    """Pickles like a chumpy.ch.Ch: a class from chumpy, state dict with the value under 'x'."""


class _FakeCscMatrix:
    """Pickles like an old scipy.sparse.csc.csc_matrix: its state is the CSC arrays."""


@contextlib.contextmanager
def _fake_legacy_modules():
    """Register fake ``chumpy``, ``chumpy.ch`` and ``scipy.sparse.csc`` modules for pickle.dump."""
    names = ("chumpy", "chumpy.ch", "scipy.sparse.csc")
    saved = {name: sys.modules[name] for name in names if name in sys.modules}
    chumpy = types.ModuleType("chumpy")
    chumpy_ch = types.ModuleType("chumpy.ch")
    csc = types.ModuleType("scipy.sparse.csc")
    ch_class = type("Ch", (_FakeCh,), {"__module__": "chumpy.ch", "__qualname__": "Ch"})
    csc_class = type(
        "csc_matrix", (_FakeCscMatrix,), {"__module__": "scipy.sparse.csc", "__qualname__": "csc_matrix"}
    )
    chumpy_ch.Ch = ch_class
    chumpy.ch = chumpy_ch
    chumpy.Ch = ch_class
    csc.csc_matrix = csc_class
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": chumpy_ch, "scipy.sparse.csc": csc})
    try:
        yield ch_class, csc_class
    finally:
        for name in names:
            if name in saved:
                sys.modules[name] = saved[name]
            else:
                sys.modules.pop(name, None)


def _fake_ch(ch_class: type, value: np.ndarray) -> object:
    obj = ch_class.__new__(ch_class)
    obj.__dict__.update(
        {
            "x": value,
            "_dirty_vars": set(),
            "_itr": None,
            "_parents": {},
            "_cache": {"r": None, "drs": {}},
            "_depends_on_deps": {},
        }
    )
    return obj


def _fake_csc(csc_class: type, dense: np.ndarray) -> object:
    nonzero_cols = [np.flatnonzero(dense[:, c]) for c in range(dense.shape[1])]
    obj = csc_class.__new__(csc_class)
    obj.__dict__.update(
        {
            "data": np.concatenate([dense[rows, c] for c, rows in enumerate(nonzero_cols)]),
            "indices": np.concatenate(nonzero_cols).astype(np.int32),
            "indptr": np.concatenate([[0], np.cumsum([len(r) for r in nonzero_cols])]).astype(np.int32),
            "_shape": dense.shape,
            "maxprint": 50,
        }
    )
    return obj


def dump_official_pkl(path: Path, arrays: dict[str, object]) -> None:
    """Write ``arrays`` the way the official SMPL pkl looks: protocol 2, chumpy shapedirs,
    old-scipy CSC J_regressor, numpy arrays referring to ``numpy.core``."""
    with _fake_legacy_modules() as (ch_class, csc_class):
        content = dict(arrays)
        if isinstance(content.get("shapedirs"), np.ndarray):
            content["shapedirs"] = _fake_ch(ch_class, content["shapedirs"])
        if isinstance(content.get("J_regressor"), np.ndarray) and content["J_regressor"].ndim == 2:
            content["J_regressor"] = _fake_csc(csc_class, content["J_regressor"])
        raw = pickle.dumps(content, protocol=2)
    # Python 2 era numpy pickled its arrays from numpy.core (numpy 2 writes numpy._core); the
    # GLOBAL opcode of protocol 2 is newline-terminated text, so the swap is byte-safe.
    raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)


def build_random_smpl(folder: Path, seed: int = 0, num_vertices: int = 300) -> RandomSMPL:
    """A SPIN-style data folder with a random SMPL model in ``smpl/`` and its companion files."""
    rng = np.random.default_rng(seed + 1000)
    arrays = random_smpl_arrays(seed, num_vertices)
    model_file = folder / "smpl" / "SMPL_NEUTRAL.pkl"
    dump_official_pkl(model_file, arrays)

    j_regressor_extra = _sparse_rows(rng, 9, num_vertices, nonzeros=6)
    j_regressor_h36m = _sparse_rows(rng, 17, num_vertices, nonzeros=6)
    np.save(folder / "J_regressor_extra.npy", j_regressor_extra)
    np.save(folder / "J_regressor_h36m.npy", j_regressor_h36m)

    mean_pose = np.tile(np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), NUM_SMPL_JOINTS)
    mean_pose[:6] = [1.0, 0.0, 0.0, -1.0, 0.0, 0.0]  # 180 degrees about x, as SPIN's file
    mean_params = {
        "pose": (mean_pose + rng.normal(scale=0.05, size=mean_pose.shape)).astype(np.float32),
        "shape": rng.normal(scale=0.1, size=NUM_BETAS).astype(np.float32),
        "cam": np.array([0.9, 0.0, 0.0], dtype=np.float32),
    }
    np.savez(folder / "smpl_mean_params.npz", **mean_params)

    picks = rng.choice(num_vertices, size=len(VERTEX_JOINT_NAMES), replace=False)
    vertex_ids = {name: int(v) for name, v in zip(VERTEX_JOINT_NAMES, picks)}
    (folder / "vertex_ids.json").write_text(json.dumps(vertex_ids))

    # The same model as plain numpy, outside the data folder: what smplx's own loader reads.
    plain_model_file = folder.parent / (folder.name + "_plain") / "SMPL_NEUTRAL.pkl"
    plain_model_file.parent.mkdir(parents=True, exist_ok=True)
    with open(plain_model_file, "wb") as handle:
        pickle.dump(arrays, handle, protocol=2)

    return RandomSMPL(
        folder=folder,
        model_file=model_file,
        arrays=arrays,
        j_regressor_extra=j_regressor_extra,
        j_regressor_h36m=j_regressor_h36m,
        mean_params=mean_params,
        vertex_ids=vertex_ids,
        plain_model_file=plain_model_file,
    )


@pytest.fixture
def random_smpl(tmp_path: Path) -> RandomSMPL:
    """A random SMPL-format model (official pkl with chumpy-shaped objects) in SPIN's layout."""
    return build_random_smpl(tmp_path / "data", seed=0)


@pytest.fixture
def random_smpl_npz(tmp_path: Path) -> RandomSMPL:
    """The random model saved as ``smpl/SMPL_NEUTRAL.npz`` with plain arrays (no pkl)."""
    model = build_random_smpl(tmp_path / "data_npz", seed=0)
    model.model_file.unlink()
    npz_file = model.model_file.with_suffix(".npz")
    np.savez(npz_file, **{k: v for k, v in model.arrays.items() if isinstance(v, np.ndarray)})
    model.model_file = npz_file
    return model


@pytest.fixture
def official_pkl_writer():
    """``dump_official_pkl(path, arrays)``: write a dict like the official, chumpy-era pkl."""
    return dump_official_pkl


@pytest.fixture
def single_thread():
    """One torch thread for tests that run many tiny ops (gradcheck): on a busy machine, thread
    hand-offs for tensors of a few hundred numbers cost more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
