"""Reading SMPL model files as users have them (official chumpy-era pkl, npz) and writing portable ones."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import pickle
import sys

import numpy as np
import pytest
import smplx
import torch
from smplx.utils import Struct

from spin_diff.body.model import load_body_model
from spin_diff.body.smpl_format import SMPL_KEYS, SMPLFileError, read_smpl_file, write_smpl_pkl


def quiet_smpl(**kwargs) -> smplx.SMPL:
    """smplx.SMPL without its print about 10 shape coefficients."""
    with contextlib.redirect_stdout(io.StringIO()):
        return smplx.SMPL(**kwargs)


def random_inputs(batch: int, seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    pose = 0.5 * torch.randn(batch, 72, generator=gen, dtype=dtype)
    betas = torch.randn(batch, 10, generator=gen, dtype=dtype)
    transl = 0.3 * torch.randn(batch, 3, generator=gen, dtype=dtype)
    return pose, betas, transl


def smplx_vertices(model: smplx.SMPL, pose, betas, transl) -> torch.Tensor:
    out = model(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:], transl=transl)
    return out.vertices


def test_official_pkl_loads_without_chumpy(random_smpl):
    """The chumpy-era pkl (Ch shapedirs, old-scipy CSC J_regressor) reads back exactly, chumpy absent."""
    assert "chumpy" not in sys.modules
    assert importlib.util.find_spec("chumpy") is None
    raw = random_smpl.model_file.read_bytes()
    assert b"chumpy.ch\nCh\n" in raw and b"scipy.sparse.csc\ncsc_matrix\n" in raw
    assert raw[:2] == b"\x80\x02"  # pickle protocol 2, as Python 2 wrote it

    arrays = read_smpl_file(random_smpl.model_file)

    assert "chumpy" not in sys.modules
    for key in SMPL_KEYS:
        expected = random_smpl.arrays[key]
        assert isinstance(arrays[key], np.ndarray), key
        assert arrays[key].shape == expected.shape, key
        np.testing.assert_array_equal(arrays[key], expected, err_msg=key)
    assert arrays["f"].dtype == np.uint32
    assert arrays["kintree_table"][0, 0] == 4294967295
    np.testing.assert_array_equal(arrays["J"], random_smpl.arrays["J"])


def test_npz_form_equals_pkl(random_smpl, random_smpl_npz):
    from_pkl = read_smpl_file(random_smpl.model_file)
    from_npz = read_smpl_file(random_smpl_npz.model_file)
    for key in SMPL_KEYS:
        np.testing.assert_array_equal(from_npz[key], from_pkl[key], err_msg=key)


def test_smplx_runs_on_what_was_read(random_smpl):
    """smplx.SMPL built from the arrays read (data_struct) matches smplx on the plain arrays."""
    arrays = read_smpl_file(random_smpl.model_file)
    ours = quiet_smpl(
        model_path=str(random_smpl.model_file), data_struct=Struct(**arrays), vertex_ids=random_smpl.vertex_ids
    )
    reference = quiet_smpl(model_path=str(random_smpl.plain_model_file), vertex_ids=random_smpl.vertex_ids)
    pose, betas, transl = random_inputs(4)
    with torch.no_grad():
        # Same arrays, but the regressor may arrive sparse or dense, so float32 sums can be
        # ordered differently: equal to a few ulps of a metre-scale coordinate.
        np.testing.assert_allclose(
            smplx_vertices(ours, pose, betas, transl).numpy(),
            smplx_vertices(reference, pose, betas, transl).numpy(),
            rtol=0, atol=1e-6,
        )


@pytest.mark.parametrize("which", ["pkl", "npz"])
def test_load_body_model_on_random_model(random_smpl, random_smpl_npz, which):
    """load_body_model(folder) on a SPIN-style data folder gives smplx's mesh for the same arrays."""
    model = random_smpl if which == "pkl" else random_smpl_npz
    body = load_body_model(model.folder)
    assert body.files.model == model.model_file
    assert body.num_vertices == model.num_vertices
    np.testing.assert_array_equal(body.faces, model.arrays["f"].astype(np.int64))
    assert body.vertex_ids == model.vertex_ids
    assert body.info()["pose blend shapes"] == "yes"

    reference = quiet_smpl(model_path=str(model.plain_model_file), vertex_ids=model.vertex_ids)
    pose, betas, transl = random_inputs(4, seed=1)
    with torch.no_grad():
        out = body.forward(pose, betas, transl)
        expected = smplx_vertices(reference, pose, betas, transl)
    torch.testing.assert_close(out.vertices, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        out.h36m_joints,
        torch.einsum("kv,bvc->bkc", torch.as_tensor(model.j_regressor_h36m, dtype=torch.float32), expected),
        rtol=0,
        atol=1e-5,
    )


def _official_content(arrays):
    return {
        "v_template": arrays["v_template"],
        "shapedirs": arrays["shapedirs"],
        "J_regressor": arrays["J_regressor"],
        "weights": arrays["weights"],
        "faces": arrays["f"],
        "kintree_table": arrays["kintree_table"],
    }


@pytest.mark.parametrize("zero_posedirs", [False, True])
def test_write_smpl_pkl_round_trip(tmp_path, random_smpl, zero_posedirs):
    arrays = random_smpl.arrays
    path = tmp_path / "written" / "SMPL_NEUTRAL.pkl"
    if zero_posedirs:
        write_smpl_pkl(path, **_official_content(arrays), zero_posedirs=True)
        expected_posedirs = np.zeros_like(arrays["posedirs"])
    else:
        write_smpl_pkl(path, **_official_content(arrays), posedirs=arrays["posedirs"])
        expected_posedirs = arrays["posedirs"]
    expected = {**arrays, "posedirs": expected_posedirs}

    # Our reader: the float32 values of what was written.
    back = read_smpl_file(path)
    for key in SMPL_KEYS:
        np.testing.assert_array_equal(back[key], expected[key].astype(back[key].dtype), err_msg=key)
        if np.issubdtype(expected[key].dtype, np.floating):
            assert back[key].dtype == np.float32

    # A plain pickle.load, as every SMPL loader does, gives numpy arrays and no foreign classes.
    with open(path, "rb") as handle:
        plain = pickle.load(handle, encoding="latin1")
    assert isinstance(plain, dict)
    for key in SMPL_KEYS:
        assert type(plain[key]) is np.ndarray, key
        np.testing.assert_array_equal(plain[key], expected[key].astype(plain[key].dtype), err_msg=key)

    # smplx's own loader (model_path only) reads it and agrees with smplx on the source arrays.
    written = quiet_smpl(model_path=str(path.parent), vertex_ids=random_smpl.vertex_ids)
    reference = quiet_smpl(model_path=str(random_smpl.plain_model_file), vertex_ids=random_smpl.vertex_ids)
    if zero_posedirs:
        reference.posedirs.zero_()
    pose, betas, transl = random_inputs(3, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(
            smplx_vertices(written, pose, betas, transl),
            smplx_vertices(reference, pose, betas, transl),
            rtol=0,
            atol=1e-5,
        )


def test_zero_posedirs_are_written_compactly(tmp_path, random_smpl):
    path_full = tmp_path / "full.pkl"
    path_zero = tmp_path / "zero.pkl"
    content = _official_content(random_smpl.arrays)
    write_smpl_pkl(path_full, **content, posedirs=random_smpl.arrays["posedirs"])
    write_smpl_pkl(path_zero, **content, zero_posedirs=True)
    posedirs_bytes = random_smpl.arrays["posedirs"].astype(np.float32).nbytes
    assert path_full.stat().st_size - path_zero.stat().st_size > 0.99 * posedirs_bytes


def test_write_requires_posedirs_or_zero_flag(tmp_path, random_smpl):
    with pytest.raises(ValueError, match="posedirs"):
        write_smpl_pkl(tmp_path / "x.pkl", **_official_content(random_smpl.arrays))


# ---------------------------------------------------------------------------------------------
# Errors: each names the file and the problem.


def _assert_error(path, *fragments):
    with pytest.raises(SMPLFileError) as info:
        read_smpl_file(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_random_bytes_are_reported(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    # Starts like a protocol-2 pickle, then noise (no GLOBAL opcode, so nothing gets imported).
    noise = np.random.default_rng(0).integers(0, 256, size=4096, dtype=np.uint8).tobytes()
    path.write_bytes(b"\x80\x02" + noise.replace(b"c", b"\x00").replace(b"\x93", b"\x00"))
    _assert_error(path, "cannot read SMPL model file")


def test_truncated_pkl_is_reported(tmp_path, random_smpl):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    raw = random_smpl.model_file.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    _assert_error(path, "cannot read SMPL model file")


def test_truncated_npz_is_reported(tmp_path, random_smpl_npz):
    path = tmp_path / "SMPL_NEUTRAL.npz"
    raw = random_smpl_npz.model_file.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    _assert_error(path, "cannot read SMPL model file")


def test_missing_file_is_reported(tmp_path):
    _assert_error(tmp_path / "nothing.pkl", "not found")


def test_pkl_that_is_not_a_dict(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    _assert_error(path, "list")


def test_missing_key(tmp_path, random_smpl, official_pkl_writer):
    path = tmp_path / "no_weights.pkl"
    official_pkl_writer(path, {k: v for k, v in random_smpl.arrays.items() if k != "weights"})
    _assert_error(path, "weights")


@pytest.mark.parametrize(
    "key, change, fragment",
    [
        ("weights", lambda a: a[:, :23], "weights"),
        ("posedirs", lambda a: a[..., :200], "posedirs"),
        ("shapedirs", lambda a: a[:, 0], "shapedirs"),
        ("J_regressor", lambda a: a[:, :-1], "J_regressor"),
        ("v_template", lambda a: a[:, :2], "v_template"),
        ("f", lambda a: a[:, :2], "f"),
        ("kintree_table", lambda a: a[:1], "kintree_table"),
    ],
)
def test_wrong_shapes(tmp_path, random_smpl, official_pkl_writer, key, change, fragment):
    path = tmp_path / f"bad_{key}.pkl"
    official_pkl_writer(path, {**random_smpl.arrays, key: change(random_smpl.arrays[key])})
    message = _assert_error(path, fragment)
    assert "shape" in message


def test_face_index_out_of_range(tmp_path, random_smpl, official_pkl_writer):
    faces = random_smpl.arrays["f"].copy()
    faces[3, 1] = random_smpl.num_vertices
    path = tmp_path / "bad_faces.pkl"
    official_pkl_writer(path, {**random_smpl.arrays, "f": faces})
    _assert_error(path, "face indices out of range")


@pytest.mark.parametrize("key", ["v_template", "shapedirs", "weights"])
def test_nan_is_reported(tmp_path, random_smpl, official_pkl_writer, key):
    value = random_smpl.arrays[key].copy()
    value.flat[7] = np.nan
    path = tmp_path / f"nan_{key}.pkl"
    official_pkl_writer(path, {**random_smpl.arrays, key: value})
    _assert_error(path, key, "NaN")
