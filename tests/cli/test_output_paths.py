"""Expected mistakes with outputs and values: one line, a non-zero exit, no partial output, never a traceback.

Each case here printed a traceback before (unwritable or existing --out, bad values, a full
disk, Ctrl-C, a closed pipe). "Unwritable" is a path under a file (the tests run as any user;
permissions would not stop root), which the same check answers as a folder without write
permission or on a full disk.
"""

from __future__ import annotations

import errno

import numpy as np
import pytest

from spin_diff.cli.main import main
from spin_diff.data.spin_npz import read_spin_npz, write_spin_npz


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def _one_line(code, err, *words):
    assert code != 0, err
    assert err.count("\n") == 1 and err.startswith("spin-diff: error:") and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--n", "2", "--image-size", "128x128", "--corrupt", "none", "--quiet"]) == 0
    return out


@pytest.fixture()
def blocker(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("mine")
    return path


def test_unwritable_or_file_outputs_are_refused_before_any_work(synth_set, blocker, tmp_path, capsys):
    data = str(synth_set / "synth.npz")
    cases = [
        ["synth", "--out", str(blocker / "sub"), "--n", "2", "--quiet"],
        ["synth", "--out", str(blocker), "--n", "2", "--quiet"],
        ["eval", "--init", "mean", "--dataset", data, "--out", str(blocker / "sub"), "--quiet"],
        ["eval", "--init", "mean", "--dataset", data, "--out", str(blocker), "--quiet"],
        ["fit", str(synth_set / "images"), "--keypoints", str(synth_set / "keypoints"), "--out", str(blocker / "sub"),
         "--init", "mean", "--quiet"],
        ["demo", "--out", str(blocker / "sub"), "--quiet"],
        ["body", "export", "--out", str(blocker / "x.obj")],
        ["body", "export", "--out", str(tmp_path)],
        ["body", "render", "--out", str(blocker / "x.png")],
    ]
    for argv in cases:
        code, err = _run(argv, capsys)
        _one_line(code, err, str(blocker) if str(blocker) in " ".join(argv) else "--out")
    assert blocker.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_existing_outputs_need_overwrite(synth_set, tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["synth", "--out", str(out), "--n", "3", "--image-size", "96x96", "--quiet"]) == 0
    before = sorted(p.name for p in (out / "images").iterdir())
    code, err = _run(["synth", "--out", str(out), "--n", "1", "--image-size", "96x96", "--quiet"], capsys)
    _one_line(code, err, "--overwrite")
    assert sorted(p.name for p in (out / "images").iterdir()) == before  # nothing changed
    # with --overwrite the earlier set goes as a whole: no old image beside the new npz
    assert main(["synth", "--out", str(out), "--n", "1", "--image-size", "96x96", "--quiet", "--overwrite"]) == 0
    assert len(list((out / "images").iterdir())) == 1 and len(read_spin_npz(out / "synth.npz")["imgname"]) == 1

    obj = tmp_path / "body.obj"
    assert main(["body", "export", "--out", str(obj)]) == 0
    code, err = _run(["body", "export", "--out", str(obj)], capsys)
    _one_line(code, err, "exists", "--overwrite")
    assert main(["body", "export", "--out", str(obj), "--overwrite", "--pose", "walk"]) == 0
    results = tmp_path / "eval"
    common = ["eval", "--init", "mean", "--dataset", str(synth_set / "synth.npz"), "--out", str(results), "--quiet"]
    assert main(common) == 0
    code, err = _run(common, capsys)
    _one_line(code, err, "--overwrite")
    assert main([*common, "--overwrite"]) == 0


def test_bad_values_get_one_line(tmp_path, capsys):
    cases = [
        (["synth", "--out", str(tmp_path / "s"), "--n", "2", "--postures", "flying"], "flying"),
        (["body", "render", "--size", "0", "--out", str(tmp_path / "r.png")], "--size 0"),
        (["body", "render", "--size", "100000", "--out", str(tmp_path / "r.png")], "--size 100000"),
        (["body", "export", "--out", str(tmp_path / "x.png")], ".obj"),
        (["body", "export", "--pose", ",".join(["1e30"] * 72), "--out", str(tmp_path / "p.obj")], "rad"),
    ]
    random_file = tmp_path / "random.npy"
    np.save(random_file, np.random.default_rng(0).normal(0, 50, 72))
    cases.append((["body", "export", "--pose", str(random_file), "--out", str(tmp_path / "q.obj")], "rad"))
    for argv, word in cases:
        code, err = _run(argv, capsys)
        _one_line(code, err, word)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random.npy"]


@pytest.fixture(scope="module")
def store(synth_set, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache") / "fits"
    assert main(["cache", "build", "--dataset", str(synth_set / "synth.npz"), "--cache", str(cache), "--quiet",
                 "--init", "mean", "--set", "fitting.stages.0.iterations=2",
                 "--set", "fitting.stages.1.iterations=2"]) in (0, 1)  # fmt: skip
    return cache


def test_cache_export_refuses_existing_files_and_leaves_nothing_on_a_full_disk(store, tmp_path, capsys, monkeypatch):
    out = tmp_path / "fits.npz"
    assert main(["cache", "export", str(store), "--out", str(out)]) == 0
    first = out.read_bytes()
    code, err = _run(["cache", "export", str(store), "--out", str(out)], capsys)
    _one_line(code, err, "exists")
    code, err = _run(["cache", "export", str(store), "--out", str(tmp_path)], capsys)
    _one_line(code, err, ".npz")

    import spin_diff.cli.cache as cache_cli

    def full_disk(store, path, dataset=None):
        with open(path, "wb") as handle:
            handle.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cache_cli, "export_npz", full_disk)
    code, err = _run(["cache", "export", str(store), "--out", str(tmp_path / "new.npz")], capsys)
    _one_line(code, err, "No space left on device")
    code, err = _run(["cache", "export", str(store), "--out", str(out), "--overwrite"], capsys)
    _one_line(code, err, "No space left on device")
    assert out.read_bytes() == first  # the previous file stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fits.npz"]  # no partial file, no temporary


def test_ctrl_c_and_a_closed_pipe_end_quietly(store, synth_set, tmp_path, capsys, monkeypatch):
    import spin_diff.cli.cache as cache_cli
    from spin_diff.cache.store import FitStore

    records = FitStore(store, readonly=True).count()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_cli, "build_fits", interrupted)
    code, err = _run(["cache", "build", "--dataset", str(synth_set / "synth.npz"), "--cache", str(store), "--quiet",
                      "--init", "mean"], capsys)  # fmt: skip
    assert code == 130 and err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err
    assert FitStore(store, readonly=True).count() == records

    def closed_pipe(args):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(cache_cli, "run_stats", closed_pipe)
    parser_code = main(["cache", "stats", str(store)])
    assert parser_code == 141 and "Traceback" not in capsys.readouterr().err


def test_zero_rows_and_bad_confidences_are_named(synth_set, tmp_path, capsys):
    data = read_spin_npz(synth_set / "synth.npz")
    empty = write_spin_npz(tmp_path / "empty.npz", {k: v[:0] for k, v in data.items()})
    code, err = _run(["cache", "build", "--dataset", str(empty), "--cache", str(tmp_path / "c"), "--quiet"], capsys)
    _one_line(code, err, "empty.npz", "no examples")
    assert not (tmp_path / "c").exists()


def test_eval_on_ground_truth_with_nan_pose_names_the_rows(synth_set, tmp_path, capsys):
    data = read_spin_npz(synth_set / "synth.npz")
    data["pose"] = data["pose"].copy()
    data["pose"][1, 7] = np.nan
    bad = write_spin_npz(tmp_path / "nan_truth.npz", data)
    code, err = _run(["eval", "--init", "mean", "--dataset", str(bad), "--quiet"], capsys)
    _one_line(code, err, "nan_truth.npz", "'pose'", "[1]")


def test_a_zero_scale_is_named_as_such(synth_set, tmp_path, capsys):
    data = read_spin_npz(synth_set / "synth.npz")
    data["scale"] = data["scale"].copy()
    data["scale"][0] = 0.0
    bad = write_spin_npz(tmp_path / "zero_scale.npz", data)
    code, err = _run(["cache", "build", "--dataset", str(bad), "--cache", str(tmp_path / "c"), "--quiet"], capsys)
    _one_line(code, err, "zero_scale.npz", "'scale'", "[0]")
    assert "non-finite" not in err and not (tmp_path / "c").exists()


def test_a_file_with_nobody_names_no_python_argument(tmp_path):
    import json

    from spin_diff.data.openpose import OpenPoseFileError, read_openpose_json

    path = tmp_path / "nobody_keypoints.json"
    path.write_text(json.dumps({"version": 1.3, "people": []}))
    with pytest.raises(OpenPoseFileError, match="no people detected") as caught:
        read_openpose_json(path)
    assert "allow_empty" not in str(caught.value)
