"""SPIN's dataset npz: round trip, validation errors that name the file, key and fix."""

import logging
import zipfile

import numpy as np
import pytest

from spin_diff.data.spin_npz import (
    SPIN_KEYS,
    SpinDataError,
    keypoints_49,
    read_spin_npz,
    write_spin_npz,
)

ALL_SPIN = tuple(SPIN_KEYS)


def spin_data(n: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "imgname": np.array([f"images/{i:06d}.jpg" for i in range(n)]),
        "center": rng.uniform(50, 200, (n, 2)),
        "scale": rng.uniform(0.5, 1.5, n),
        "part": rng.uniform(0, 300, (n, 24, 3)),
        "openpose": rng.uniform(0, 300, (n, 25, 3)),
        "S": rng.normal(size=(n, 24, 4)),
        "pose": rng.normal(size=(n, 72)),
        "shape": rng.normal(size=(n, 10)),
        "has_smpl": np.ones(n),
        "gender": np.array(["m", "f", "m"][:n]),
    }


def test_round_trip_keeps_every_key_value_and_dtype(tmp_path):
    data = spin_data()
    data["my_extra"] = np.arange(7)  # unknown keys are kept, whatever their shape
    data["transl"] = np.zeros((3, 3))  # a documented synthetic key
    path = write_spin_npz(tmp_path / "sub" / "set.npz", data)
    back = read_spin_npz(path, require=ALL_SPIN)
    assert set(back) == set(data)
    for key, value in data.items():
        np.testing.assert_array_equal(back[key], value)
        assert back[key].dtype.kind == value.dtype.kind
    assert back["imgname"].dtype.kind == "U"


def test_files_are_byte_identical_for_equal_data(tmp_path):
    a = write_spin_npz(tmp_path / "a.npz", spin_data())
    b = write_spin_npz(tmp_path / "b.npz", spin_data())
    assert a.read_bytes() == b.read_bytes()


def test_reads_files_written_by_numpy_savez_with_bytes_names(tmp_path):
    data = spin_data()
    data["imgname"] = data["imgname"].astype("S")  # Python 2 era files hold bytes
    np.savez(tmp_path / "old.npz", **data)
    back = read_spin_npz(tmp_path / "old.npz")
    assert back["imgname"][1] == "images/000001.jpg"


def test_missing_required_key_names_file_key_and_fix(tmp_path):
    data = spin_data()
    del data["scale"]
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(SpinDataError) as err:
        read_spin_npz(tmp_path / "bad.npz")
    message = str(err.value)
    assert "bad.npz" in message and "'scale'" in message and "require=" in message


def test_optional_key_only_checked_when_required(tmp_path):
    data = spin_data()
    del data["S"]
    np.savez(tmp_path / "no_s.npz", **data)
    assert "S" not in read_spin_npz(tmp_path / "no_s.npz")
    with pytest.raises(SpinDataError, match="'S'"):
        read_spin_npz(tmp_path / "no_s.npz", require=("imgname", "S"))


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("part", np.zeros((3, 25, 3)), r"'part' has shape \(3, 25, 3\), expected \(N, 24, 3\)"),
        ("center", np.zeros((3, 3)), r"'center' has shape \(3, 3\), expected \(N, 2\)"),
        ("pose", np.zeros((3, 24, 3)), r"'pose' has shape \(3, 24, 3\), expected \(N, 72\)"),
        ("scale", np.float64(1.0), r"'scale' is a scalar"),
        ("center", np.array([["a", "b"]] * 3), r"'center' must be numeric"),
        ("imgname", np.zeros(3), r"'imgname' must hold strings"),
    ],
)
def test_wrong_shapes_and_types_are_named(tmp_path, key, value, expected):
    data = spin_data()
    data[key] = value
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(SpinDataError, match=expected) as err:
        read_spin_npz(tmp_path / "bad.npz")
    assert "bad.npz" in str(err.value)


def test_mismatched_row_counts_list_every_key(tmp_path):
    data = spin_data()
    data["pose"] = data["pose"][:2]
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(SpinDataError, match="different numbers of rows") as err:
        read_spin_npz(tmp_path / "bad.npz")
    assert "pose: 2" in str(err.value) and "center: 3" in str(err.value)


def test_nan_in_required_key_fails_with_rows(tmp_path):
    data = spin_data()
    data["center"][1, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **data)
    with pytest.raises(SpinDataError, match=r"'center' has NaN or inf in 1 row\(s\) \(first: \[1\]\)"):
        read_spin_npz(tmp_path / "nan.npz")


def test_nan_in_optional_key_is_only_logged(tmp_path, caplog):
    data = spin_data()
    data["S"][2, 3, 1] = np.inf
    np.savez(tmp_path / "nan.npz", **data)
    with caplog.at_level(logging.WARNING):
        back = read_spin_npz(tmp_path / "nan.npz")
    assert np.isinf(back["S"][2, 3, 1])
    assert "'S' has NaN or inf" in caplog.text
    with pytest.raises(SpinDataError, match="'S'"):
        read_spin_npz(tmp_path / "nan.npz", require=("imgname", "S"))


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        read_spin_npz(tmp_path / "nowhere.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(SpinDataError, match="text.npz: not a readable .npz"):
        read_spin_npz(tmp_path / "text.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(SpinDataError, match="empty"):
        read_spin_npz(tmp_path / "empty.npz")


def test_object_arrays_need_allow_pickle(tmp_path):
    data = spin_data()
    data["gender"] = np.array(["m", "f", "m"], dtype=object)
    np.savez(tmp_path / "objects.npz", **data)
    with pytest.raises(SpinDataError, match="allow_pickle=True"):
        read_spin_npz(tmp_path / "objects.npz")
    assert read_spin_npz(tmp_path / "objects.npz", allow_pickle=True)["gender"].tolist() == ["m", "f", "m"]


def test_write_validates_before_writing(tmp_path):
    data = spin_data()
    data["openpose"] = np.zeros((3, 24, 3))
    with pytest.raises(SpinDataError, match="'openpose'"):
        write_spin_npz(tmp_path / "out.npz", data)
    assert not (tmp_path / "out.npz").exists()


def test_keypoints_49_stacks_blocks_and_fills_missing_with_zeros():
    data = spin_data()
    both = keypoints_49(data)
    assert both.shape == (3, 49, 3)
    np.testing.assert_array_equal(both[:, :25], data["openpose"])
    np.testing.assert_array_equal(both[:, 25:], data["part"])
    del data["openpose"]
    only_part = keypoints_49(data)
    assert np.all(only_part[:, :25] == 0)
    with pytest.raises(SpinDataError, match="openpose_detected"):
        keypoints_49(data, detected=True)
