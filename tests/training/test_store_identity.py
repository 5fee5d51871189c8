"""train --resume with another dataset under the same name (its file's stem) is refused
before the fit store changes: the run's in-loop fits are not mixed with that set's."""

from __future__ import annotations

from training_helpers import make_keypoint_dataset, tiny_overrides

from spin_diff.cli.main import main


def test_resume_with_another_dataset_of_the_same_stem_is_refused(body_model, tmp_path, capsys):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a = make_keypoint_dataset(body_model, tmp_path / "a" / "synth.npz", 8, seed=1)
    b = make_keypoint_dataset(body_model, tmp_path / "b" / "synth.npz", 8, seed=2)
    sets = [arg for value in tiny_overrides(steps=2, batch=4) for arg in ("--set", value)]
    run = ["train", "--threads", "1", "--quiet", "--out", str(tmp_path / "run"), *sets]
    assert main([*run, "--dataset", str(a)]) == 0
    store = tmp_path / "run" / "fits" / "data.mdb"
    before = store.read_bytes()
    capsys.readouterr()
    code = main([*run, "--dataset", str(b), "--resume", "--set", "max_steps=4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert str(a) in err and str(b) in err and "another name" in err
    assert store.read_bytes() == before
    assert main([*run, "--dataset", str(a), "--resume", "--set", "max_steps=4"]) == 0  # its own dataset resumes
