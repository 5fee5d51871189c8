"""``spin-diff prior`` subcommands, run in-process through a parser built from the module."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pytest

from spin_diff.cli import prior as prior_cli
from spin_diff.priors.gmm import read_gmm_file


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="spin-diff")
    prior_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_sample_poses_writes_pose_and_posture(tmp_path, capsys):
    out = tmp_path / "poses.npz"
    assert run(["prior", "sample-poses", "--n", "30", "--seed", "3", "--postures", "walking,sitting", "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as data:
        pose, posture = data["pose"], data["posture"]
    assert pose.shape == (30, 72) and np.all(pose[:, :3] == 0)
    assert set(posture.tolist()) == {"walking", "sitting"}
    assert "30 poses" in capsys.readouterr().out
    again = tmp_path / "again.npz"
    run(["prior", "sample-poses", "--n", "30", "--seed", "3", "--postures", "walking,sitting", "--out", str(again)])
    np.testing.assert_array_equal(np.load(again)["pose"], pose)


def test_sample_poses_rejects_unknown_posture(tmp_path):
    with pytest.raises(ValueError, match="unknown.*flying"):
        run(["prior", "sample-poses", "--n", "3", "--postures", "walking,flying", "--out", str(tmp_path / "p.npz")])


def _poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.3, size=(2, 72))
    return centres[rng.integers(0, 2, n)] + rng.normal(scale=0.05, size=(n, 72))


def test_fit_gmm_from_sampler_output(tmp_path, capsys):
    poses = tmp_path / "poses.npz"
    run(["prior", "sample-poses", "--n", "60", "--out", str(poses)])
    out = tmp_path / "gmm.pkl"
    assert run(["prior", "fit-gmm", "--poses", str(poses), "--components", "2", "--iterations", "5", "--out", str(out)]) == 0
    params = read_gmm_file(out)
    assert params.means.shape == (2, 69) and params.covars.shape == (2, 69, 69)
    assert "component weights" in capsys.readouterr().out


def test_fit_gmm_from_amass_and_spin_layouts(tmp_path):
    amass = tmp_path / "amass.npz"
    poses = _poses(40)
    np.savez(amass, poses=np.concatenate([poses, np.zeros((40, 84))], axis=1), trans=np.zeros((40, 3)), gender="neutral")
    spin = tmp_path / "spin.npz"
    has_smpl = np.r_[np.ones(40), np.zeros(20)]
    np.savez(spin, pose=np.concatenate([poses, np.full((20, 72), 9.0)]), has_smpl=has_smpl, imgname=np.array(["a.jpg"] * 60))
    a, b = tmp_path / "a.pkl", tmp_path / "b.pkl"
    run(["prior", "fit-gmm", "--poses", str(amass), "--components", "2", "--iterations", "10", "--out", str(a)])
    run(["prior", "fit-gmm", "--poses", str(spin), "--components", "2", "--iterations", "10", "--out", str(b)])
    # Same 40 rows either way; the has_smpl == 0 rows (all 9.0) were left out.
    np.testing.assert_allclose(read_gmm_file(a).means, read_gmm_file(b).means, atol=1e-8)
    assert np.abs(read_gmm_file(b).means).max() < 3


def test_fit_gmm_drops_nan_rows_with_a_warning(tmp_path, caplog):
    poses = _poses(50)
    poses[[3, 7]] = np.nan
    path = tmp_path / "poses.npz"
    np.savez(path, pose=poses)
    with caplog.at_level(logging.WARNING):
        assert run(["prior", "fit-gmm", "--poses", str(path), "--components", "2", "--iterations", "3", "--out", str(tmp_path / "g.pkl")]) == 0
    assert "dropped 2 of 50 rows" in caplog.text


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        ({"betas": np.zeros((30, 10))}, "no pose key.*betas"),
        ({"pose": np.zeros((30, 69))}, r"'pose' must be \(N, 72\)"),
        ({"poses": np.zeros((30, 66))}, r"'poses' must be \(N, >= 72\)"),
        ({"pose": _poses(15)}, "15 usable poses.*at least 20"),
        ({"pose": np.full((30, 72), np.nan)}, "0 usable poses"),
    ],
)
def test_fit_gmm_bad_inputs(tmp_path, content, message):
    path = tmp_path / "poses.npz"
    if content is not None:
        np.savez(path, **content)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run(["prior", "fit-gmm", "--poses", str(path), "--components", "2", "--out", str(tmp_path / "g.pkl")])
    assert not (tmp_path / "g.pkl").exists()


def test_fit_gmm_unreadable_file(tmp_path):
    path = tmp_path / "poses.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot read"):
        run(["prior", "fit-gmm", "--poses", str(path), "--out", str(tmp_path / "g.pkl")])
