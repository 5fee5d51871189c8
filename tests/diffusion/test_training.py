"""Training: outputs, resume, pose files; and the prior's CLI commands."""

import argparse
import csv

import numpy as np
import pytest
import yaml

from spin_diff.diffusion.config import DenoiserConfig, DiffusionModelConfig, DiffusionTrainConfig
from spin_diff.diffusion.model import load_diffusion_prior
from spin_diff.diffusion.training import read_training_poses, train_diffusion_prior


def sampler_poses(n=400, seed=0):
    from spin_diff.priors.pose_sampler import sample_poses

    body, _ = sample_poses(n, np.random.default_rng(seed))
    return np.concatenate([np.zeros((n, 3)), body], 1)


def tiny_train_config(steps, **model):
    return DiffusionTrainConfig(
        model=DiffusionModelConfig(denoiser=DenoiserConfig(width=32, hidden=64, blocks=1, time_dim=16), **model),
        steps=steps, batch_size=64, lr=2e-3, warmup_steps=5, checkpoint_every=10, log_every=5,
    )  # fmt: skip


def test_training_writes_config_log_checkpoints_and_resumes(tmp_path):
    poses = sampler_poses()
    path = train_diffusion_prior(poses, tiny_train_config(20), tmp_path, progress=False)
    assert path == tmp_path / "prior.pt"
    for name in ("config.yaml", "loss_log.csv", "last.pt"):
        assert (tmp_path / name).is_file(), name
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["steps"] == 20 and saved["model"]["denoiser"]["width"] == 32
    rows = list(csv.DictReader((tmp_path / "loss_log.csv").open()))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    prior = load_diffusion_prior(path)
    assert prior.config.orientation == "canonical"
    # resume: more steps, appended log, the stored weights carried on
    path = train_diffusion_prior(poses, tiny_train_config(30), tmp_path, resume=True, progress=False)
    rows = list(csv.DictReader((tmp_path / "loss_log.csv").open()))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20, 25, 30]
    with pytest.raises(ValueError, match="another model config"):
        train_diffusion_prior(poses, tiny_train_config(40, orientation="camera"), tmp_path, resume=True, progress=False)


def test_conditioning_vectors_are_checked(tmp_path):
    config = tiny_train_config(2)
    with pytest.raises(ValueError, match="cond"):
        train_diffusion_prior(sampler_poses(50), config, tmp_path, cond=np.zeros((50, 4)), progress=False)
    config.model.denoiser.cond_dim = 4
    train_diffusion_prior(sampler_poses(50), config, tmp_path, cond=np.random.rand(50, 4), progress=False)
    assert load_diffusion_prior(tmp_path / "prior.pt").config.denoiser.cond_dim == 4


def test_pose_files_in_every_layout(tmp_path):
    poses = sampler_poses(20)
    np.savez(tmp_path / "sampler.npz", pose=poses, posture=np.array(["standing"] * 20))
    read = read_training_poses(tmp_path / "sampler.npz")
    assert read.shape == (20, 72) and np.abs(read[:, :3]).sum() > 0  # upright orientation filled in
    np.savez(tmp_path / "amass.npz", poses=np.concatenate([poses, np.zeros((20, 84))], 1))
    assert read_training_poses(tmp_path / "amass.npz").shape == (20, 72)
    has_smpl = np.array([1, 0] * 10)
    bad = poses.copy()
    bad[0, 5] = np.nan
    np.savez(tmp_path / "spin.npz", pose=bad, has_smpl=has_smpl)
    assert read_training_poses(tmp_path / "spin.npz").shape == (9, 72)  # 10 with SMPL, one NaN row
    np.savez(tmp_path / "wrong.npz", pose=np.zeros((3, 69)))
    with pytest.raises(ValueError, match=r"must be \(N, 72\)"):
        read_training_poses(tmp_path / "wrong.npz")
    np.savez(tmp_path / "nokey.npz", other=np.zeros(3))
    with pytest.raises(ValueError, match="no pose key"):
        read_training_poses(tmp_path / "nokey.npz")


def run_cli(argv):
    from spin_diff.cli.prior_diffusion import add_commands

    parser = argparse.ArgumentParser(prog="spin-diff prior")
    add_commands(parser.add_subparsers(dest="prior_command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_train_then_sample(tmp_path, capsys):
    np.savez(tmp_path / "poses.npz", pose=sampler_poses(100), posture=np.array(["standing"] * 100))
    run = tmp_path / "run"
    assert run_cli([
        "train", "--poses", str(tmp_path / "poses.npz"), "--out", str(run), "--quiet",
        "--set", "steps=4", "--set", "batch_size=16", "--set", "model.denoiser.width=16",
        "--set", "model.denoiser.hidden=32", "--set", "model.denoiser.blocks=1", "--set", "model.denoiser.time_dim=8",
    ]) == 0  # fmt: skip
    assert "fitting.diffusion.checkpoint" in capsys.readouterr().out
    out = tmp_path / "samples"
    assert run_cli(["sample", "--n", "2", "--out", str(out), "--checkpoint", str(run / "prior.pt"), "--size", "64"]) == 0
    assert (out / "samples.png").is_file()
    with np.load(out / "samples.npz") as data:
        assert data["pose"].shape == (2, 72) and np.isfinite(data["pose"]).all()
    with pytest.raises(FileNotFoundError, match="not found"):
        run_cli(["sample", "--n", "2", "--out", str(out), "--checkpoint", str(tmp_path / "none.pt")])
