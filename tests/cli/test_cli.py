"""The spin-diff command line, run in-process through its main()."""

import numpy as np
import pytest

from spin_diff.cli.main import main


def test_body_info_prints_model_facts(capsys):
    assert main(["body", "info"]) == 0
    out = capsys.readouterr().out
    for fact in ("source", "licence", "CC0", "vertices: 13492", "keypoint joints: 49", "shape coefficients: 10"):
        assert fact in out


def test_missing_model_fails_with_how_to(capsys, tmp_path):
    assert main(["body", "info", "--body-model", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "smpl.is.tue.mpg.de" in err and "bundled" in err


def test_unknown_config_key_fails(capsys):
    assert main(["body", "info", "--set", "body.colour=red"]) == 2
    assert "body.colour" in capsys.readouterr().err


def test_export_writes_posed_obj(tmp_path):
    out = tmp_path / "walk.obj"
    assert main(["body", "export", "--pose", "walk", "--betas", "1.0,-0.5", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    vertices = np.array([[float(x) for x in l.split()[1:]] for l in lines if l.startswith("v ")])
    faces = [l for l in lines if l.startswith("f ")]
    assert vertices.shape == (13492, 3) and len(faces) == 26972
    assert 1.4 < vertices[:, 1].max() - vertices[:, 1].min() < 2.1  # a person's height in metres


def test_export_pose_from_file_matches_numbers(tmp_path):
    pose = np.zeros(72)
    pose[3 * 18 + 1] = -1.0
    np.save(tmp_path / "pose.npy", pose)
    a, b = tmp_path / "a.obj", tmp_path / "b.obj"
    assert main(["body", "export", "--pose", str(tmp_path / "pose.npy"), "--out", str(a)]) == 0
    assert main(["body", "export", "--pose", ",".join(map(str, pose)), "--out", str(b)]) == 0
    assert a.read_text() == b.read_text()


@pytest.mark.parametrize(
    "pose, message", [("1,2,3", "72 numbers"), ("nan," * 71 + "nan", "NaN"), ("missing.npy", "not found")]
)
def test_bad_pose_arguments_fail_clearly(capsys, tmp_path, pose, message):
    assert main(["body", "export", "--pose", pose, "--out", str(tmp_path / "x.obj")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.obj").exists()


def test_render_writes_png_with_a_body(tmp_path):
    import cv2

    out = tmp_path / "sit.png"
    assert main(["body", "render", "--pose", "sit", "--size", "128", "--views", "0,90", "--out", str(out)]) == 0
    image = cv2.imread(str(out))
    assert image.shape == (128, 256, 3)
    body = (image < 250).any(axis=2)
    assert 0.05 < body[:, :128].mean() < 0.6 and 0.05 < body[:, 128:].mean() < 0.6


@pytest.mark.parametrize("bug", [KeyError("pose"), ValueError("operands could not be broadcast"), RuntimeError("x")])
def test_a_bug_keeps_its_traceback(monkeypatch, bug):
    """Only input errors (spin_diff.errors.InputError) become one-line messages; a KeyError
    or ValueError from a bug must not be dressed up as bad input."""
    import spin_diff.cli.body as body_cli

    def broken(args):
        raise bug

    monkeypatch.setattr(body_cli, "run_info", broken)
    with pytest.raises(type(bug)):
        main(["body", "info"])


def test_verbose_prints_the_traceback_of_an_input_error(capsys, tmp_path):
    assert main(["-v", "body", "info", "--body-model", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "BodyModelNotFoundError" in err
    assert main(["body", "info", "--body-model", str(tmp_path / "nowhere")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_every_package_error_is_an_input_error():
    from spin_diff.body.files import BodyModelNotFoundError
    from spin_diff.body.smpl_format import SMPLFileError
    from spin_diff.cache.errors import FitStoreError, StoreCorruptedError
    from spin_diff.utils.configs import ConfigError
    from spin_diff.data.openpose import OpenPoseFileError
    from spin_diff.data.spin_npz import SpinDataError
    from spin_diff.diffusion.model import DiffusionPriorError
    from spin_diff.errors import InputError
    from spin_diff.priors.gmm import GMMFileError

    for error in (BodyModelNotFoundError, SMPLFileError, FitStoreError, StoreCorruptedError, ConfigError,
                  OpenPoseFileError, SpinDataError, DiffusionPriorError, GMMFileError):  # fmt: skip
        assert issubclass(error, InputError), error
    assert issubclass(BodyModelNotFoundError, FileNotFoundError) and issubclass(ConfigError, ValueError)
