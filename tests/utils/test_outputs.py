"""The one way an application readies its output folder: nothing of the user's is harmed."""

import pytest

from spin_diff.errors import BadInputError
from spin_diff.utils.outputs import prepare_output


def test_earlier_results_are_replaced_only_with_replace(tmp_path):
    out = tmp_path / "out"
    prepare_output(out, ["a"])
    (out / "a").mkdir()
    (out / "a" / "fit.json").write_text("{}")
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BadInputError, match="--overwrite"):
        prepare_output(out, ["a", "b"])
    assert (out / "a" / "fit.json").exists()
    prepare_output(out, ["a", "b"], replace=True)
    assert not (out / "a").exists() and (out / "keep.txt").read_text() == "mine"


def test_a_marked_folder_is_the_applications_and_a_foreign_one_is_refused(tmp_path):
    out = prepare_output(tmp_path / "demo", ["run"], marker=".mine", marker_text="ours\n")
    (out / "run").mkdir()
    (out / "notes.txt").write_text("kept")
    prepare_output(out, ["run"], marker=".mine")  # the marker says an earlier run wrote it
    assert not (out / "run").exists() and (out / "notes.txt").exists()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(BadInputError, match="not empty"):
        prepare_output(foreign, ["run"], marker=".mine")
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]


def test_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(BadInputError, match="is a file"):
        prepare_output(tmp_path / "out", ["a"], replace=True)
