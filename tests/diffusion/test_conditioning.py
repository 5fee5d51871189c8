"""A diffusion prior conditioned on a regressor's features (ScoreHMR's design), end to end:
``spin-diff prior train --features-from``, the checkpoint's record of the regressor, the
features in the diffusion term, guided refinement, the training loop and ``spin-diff eval``.

Everything is tiny: a 12-example synthetic set, an untrained tiny keypoint regressor (its
features are a fixed function of the keypoints, which is all the plumbing needs), a prior
trained for a few steps.
"""

import logging

import numpy as np
import pytest
import torch

from spin_diff.cli.main import main
from spin_diff.diffusion.conditioning import ConditioningError
from spin_diff.fitting.conditioning import check_regressor, feature_training_pairs
from spin_diff.diffusion.model import load_diffusion_prior
from spin_diff.fitting.config import FittingConfig, default_stages

FEATURES = 16  # tiny_keypoint_config's feature size
TINY_PRIOR = [
    "--set", "steps=6", "--set", "batch_size=8", "--set", "warmup_steps=2", "--set", "log_every=3",
    "--set", "checkpoint_every=3", "--set", "model.denoiser.width=32", "--set", "model.denoiser.hidden=64",
    "--set", "model.denoiser.blocks=2", "--set", "model.denoiser.time_dim=16",
]  # fmt: skip


def tiny_regressor(body, feature_dim=FEATURES, seed=0):
    from spin_diff.models.config import HeadConfig, KeypointEncoderConfig, RegressorConfig
    from spin_diff.models.hmr import build_regressor

    config = RegressorConfig(
        input="keypoints", head=HeadConfig(hidden=32),
        keypoints=KeypointEncoderConfig(hidden=32, blocks=1, feature_dim=feature_dim, joint_dropout=0.1),
    )  # fmt: skip
    torch.manual_seed(seed)
    return build_regressor(config, body=body).eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, body_model):
    """A synthetic set, a tiny regressor checkpoint and a conditional prior trained on its features."""
    from spin_diff.models.checkpoints import save_regressor

    root = tmp_path_factory.mktemp("conditioning")
    assert main(["synth", "--out", str(root / "synth"), "--n", "12", "--seed", "5", "--image-size", "96",
                 "--no-masks", "--quiet"]) == 0  # fmt: skip
    checkpoint = save_regressor(tiny_regressor(body_model), root / "regressor.pt", body_model)
    other = save_regressor(tiny_regressor(body_model, seed=1), root / "other_regressor.pt", body_model)
    npz = root / "synth" / "synth.npz"
    assert main(["prior", "train", "--poses", str(npz), "--features-from", str(checkpoint),
                 "--out", str(root / "prior"), "--quiet", *TINY_PRIOR]) == 0  # fmt: skip
    return {"root": root, "npz": npz, "checkpoint": checkpoint, "other": other, "prior": root / "prior" / "prior.pt"}


@pytest.fixture(scope="module")
def prior(setup):
    loaded = load_diffusion_prior(setup["prior"])
    with torch.no_grad():  # a few steps leave the time modulation near zero; make t matter
        for block in loaded.denoiser.blocks:
            block.modulation[1].weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(0))
    return loaded


# ------------------------------------------------------------------ training and the checkpoint
def test_training_pairs_are_the_regressors_forward_features_of_each_examples_keypoints(setup, body_model):
    from spin_diff.data.spin_npz import dataset_keypoints
    from spin_diff.models.checkpoints import load_regressor

    regressor = load_regressor(setup["checkpoint"], body_model)
    poses, features = feature_training_pairs([setup["npz"]], regressor, batch_size=5)  # 3 batches
    data = np.load(setup["npz"])
    np.testing.assert_array_equal(poses, data["pose"])
    with torch.no_grad():  # the full forward, one example at a time
        expected = torch.cat([regressor(torch.as_tensor(kp[None], dtype=torch.float32)).features
                              for kp in dataset_keypoints(dict(data), 224)])  # fmt: skip
    assert features.shape == (12, FEATURES)
    np.testing.assert_allclose(features, expected.numpy(), atol=1e-5)


def test_an_image_regressor_reads_each_examples_crop(setup, body_model):
    from spin_diff.data.crops import load_crops
    from spin_diff.models.config import HeadConfig, RegressorConfig
    from spin_diff.models.hmr import build_regressor

    torch.manual_seed(0)
    config = RegressorConfig(input="image", backbone="resnet18", width=0.125, head=HeadConfig(hidden=32))
    regressor = build_regressor(config, body=body_model).eval()
    folder = setup["npz"].parent
    with pytest.raises(ValueError, match="--images DIR"):
        feature_training_pairs([setup["npz"]], regressor)
    poses, features = feature_training_pairs([setup["npz"]], regressor, images=folder, batch_size=5)
    data = np.load(setup["npz"])
    crops = load_crops([folder / str(n) for n in data["imgname"]], data["center"], data["scale"], 224)
    with torch.no_grad():
        expected = regressor(crops).features
    assert poses.shape == (12, 72) and features.shape == (12, regressor.encoder.feature_dim)
    np.testing.assert_allclose(features, expected.numpy(), atol=1e-4)


def test_pose_files_without_keypoints_are_a_clear_error(setup, tmp_path, capsys):
    poses = tmp_path / "poses.npz"
    np.savez(poses, pose=np.zeros((4, 72)))
    base = ["prior", "train", "--features-from", str(setup["checkpoint"]), "--out", str(tmp_path / "p"), "--quiet"]
    assert main([*base, "--poses", str(poses)]) == 2
    err = capsys.readouterr().err
    assert str(poses) in err and "center" in err
    assert main([*base, "--poses", str(tmp_path / "absent.npz")]) == 2
    assert "absent.npz: no such file" in capsys.readouterr().err


def test_checkpoint_records_the_regressor_and_round_trips(setup, tmp_path):
    from spin_diff.utils.hashing import file_sha256
    import yaml

    prior = load_diffusion_prior(setup["prior"])
    assert prior.config.denoiser.cond_dim == FEATURES
    record = prior.conditioning
    assert record["regressor_sha256"] == file_sha256(setup["checkpoint"])
    assert record["feature_dim"] == FEATURES and record["input"] == "keypoints"
    assert record["regressor"] == str(setup["checkpoint"].resolve())
    assert "conditioned on 16 regressor features" in prior.describe()
    saved = yaml.safe_load((setup["root"] / "prior" / "config.yaml").read_text())
    assert saved["pose_frame"] == "camera" and saved["tilt_degrees"] == 0.0  # each pose in its own view
    assert load_diffusion_prior(setup["root"] / "prior" / "last.pt").conditioning == record
    again = load_diffusion_prior(prior.save(tmp_path / "copy.pt"))
    assert again.conditioning == record
    for key, value in prior.denoiser.state_dict().items():
        assert torch.equal(value, again.denoiser.state_dict()[key]), key


def test_resume_with_another_regressor_is_refused(setup, tmp_path, capsys):
    import shutil

    run = tmp_path / "prior"
    shutil.copytree(setup["root"] / "prior", run)
    args = ["prior", "train", "--poses", str(setup["npz"]), "--out", str(run), "--resume", "--quiet", *TINY_PRIOR,
            "--set", "steps=8"]  # fmt: skip
    assert main([*args, "--features-from", str(setup["other"])]) == 2
    assert "resume with the same --features-from" in capsys.readouterr().err
    assert main([*args, "--features-from", str(setup["checkpoint"])]) == 0


# ------------------------------------------------------------------ fitting with features
def fitting_problem(body_model, n=7, seed=3):
    """``n`` bodies seen by the crop camera, keypoints with noise, starts perturbed from the truth."""
    from spin_diff.body.demo_poses import named_pose
    from spin_diff.geometry.cameras import perspective_projection

    names = ["walk", "arms_up", "apose", "sit", "reach", "tpose"]
    gen = torch.Generator().manual_seed(seed)
    pose = torch.tensor(np.stack([named_pose(names[i % len(names)]) for i in range(n)]), dtype=torch.float32)
    pose[:, :3] = torch.tensor([torch.pi, 0.0, 0.0])
    pose[:, 3:] += 0.1 * torch.randn(n, 69, generator=gen)
    betas = torch.zeros(n, body_model.num_betas)
    transl = torch.tensor([0.0, 0.25, 45.0]).expand(n, 3)
    kp = perspective_projection(body_model.joints(pose, betas).joints, transl, 5000.0, torch.full((n, 2), 112.0))
    keypoints = torch.cat([kp + 2.0 * torch.randn(kp.shape, generator=gen), torch.ones(n, 49, 1)], -1)
    start = pose.clone()
    start[:, 3:] += 0.2 * torch.randn(n, 69, generator=gen)
    features = torch.randn(n, FEATURES, generator=gen)
    return keypoints, start, betas, features


def fitter_for(body_model, prior, method="smplify", flip=False):
    from spin_diff.fitting.config import OrientationFlipConfig
    from spin_diff.fitting.smplify import SMPLify

    trial = OrientationFlipConfig(enabled=flip, shoulder_distance_px=1000.0)  # every sample tries the turn
    config = FittingConfig(stages=default_stages(6), method=method, orientation_flip=trial)
    config.diffusion.guided.loops = 2
    config.diffusion.guided.t_start = 10
    return SMPLify(body_model, config, extra_terms={"diffusion_prior": prior})


@pytest.mark.parametrize("method", ["smplify", "guided"])
def test_fitting_with_features_differs_from_fitting_without(body_model, prior, method, caplog):
    fitter = fitter_for(body_model, prior, method)
    keypoints, start, betas, features = fitting_problem(body_model, n=3)
    with caplog.at_level(logging.INFO, logger="spin_diff.diffusion.conditioning"):
        prior._told_unconditional = False
        plain = fitter.fit(keypoints, start, betas)
        fitter.fit(keypoints, start, betas)
    told = [r for r in caplog.records if "unconditional mode" in r.getMessage()]
    assert len(told) == 1  # said once, not once per fit
    conditioned = fitter.fit(keypoints, start, betas, condition=features)
    assert plain.success.all() and conditioned.success.all()
    assert (conditioned.pose - plain.pose).abs().max() > 1e-4
    # all-zero features are the unconditional mode that conditioning dropout trained
    zeros = fitter.fit(keypoints, start, betas, condition=torch.zeros_like(features))
    torch.testing.assert_close(zeros.pose, plain.pose, atol=1e-6, rtol=0)


def test_a_fit_with_features_does_not_depend_on_its_batch_mates(body_model, prior):
    from spin_diff.utils.seeds import example_seeds

    fitter = fitter_for(body_model, prior, flip=True)  # the flip trial doubles the batch, features included
    keypoints, start, betas, features = fitting_problem(body_model, n=7)
    seeds = example_seeds("conditioning", torch.arange(7))
    batch = fitter.fit(keypoints, start, betas, sample_seeds=seeds, condition=features)
    nan_features = features.clone()
    nan_features[2] = float("nan")  # a bad row runs unconditionally and touches no other row
    with_nan = fitter.fit(keypoints, start, betas, sample_seeds=seeds, condition=nan_features)
    for i in range(7):
        alone = fitter.fit(keypoints[i : i + 1], start[i : i + 1], betas[i : i + 1], sample_seeds=seeds[i : i + 1],
                           condition=features[i : i + 1])  # fmt: skip
        torch.testing.assert_close(alone.pose, batch.pose[i : i + 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(alone.transl, batch.transl[i : i + 1], atol=1e-4, rtol=1e-6)
        if i != 2:
            torch.testing.assert_close(with_nan.pose[i], batch.pose[i], atol=1e-5, rtol=0)
    unconditional = fitter.fit(keypoints[2:3], start[2:3], betas[2:3], sample_seeds=seeds[2:3])
    torch.testing.assert_close(with_nan.pose[2:3], unconditional.pose, atol=1e-5, rtol=0)


def test_a_mismatched_feature_size_is_a_clear_error_naming_both_sizes(body_model, prior, setup):
    fitter = fitter_for(body_model, prior)
    keypoints, start, betas, _ = fitting_problem(body_model, n=2)
    with pytest.raises(ConditioningError, match=r"\(2, 16\).*got \(2, 8\).*8 features where the prior takes 16"):
        fitter.fit(keypoints, start, betas, condition=torch.zeros(2, 8))
    with pytest.raises(ConditioningError, match="conditioned on 16 features, but the regressor .* gives 32"):
        check_regressor(prior, tiny_regressor(body_model, feature_dim=32))
    # the same size from another checkpoint: refused by hash unless only the size is checked
    from spin_diff.models.checkpoints import load_regressor

    other = load_regressor(setup["other"], body_model)
    with pytest.raises(ConditioningError, match="regressor_check=size"):
        check_regressor(prior, other, setup["other"])
    check_regressor(prior, other, setup["other"], check="size")
    check_regressor(prior, load_regressor(setup["checkpoint"], body_model), setup["checkpoint"])


def test_an_unconditional_prior_ignores_features(body_model, tiny_prior):
    fitter = fitter_for(body_model, tiny_prior)
    keypoints, start, betas, features = fitting_problem(body_model, n=2)
    plain = fitter.fit(keypoints, start, betas)
    given = fitter.fit(keypoints, start, betas, condition=features[:, :3])  # any size: ignored
    assert torch.equal(plain.pose, given.pose)


# ------------------------------------------------------------------ the loop and eval pass features
def test_the_training_loop_fits_with_the_networks_features(body_model, prior, setup):
    from spin_diff.utils.seeds import mix64, seed_from_text
    from spin_diff.training.loop import Prediction, fit_from_prediction
    from spin_diff.training.run import _check_conditional_prior
    from spin_diff.geometry.rotations import axis_angle_to_matrix

    fitter = fitter_for(body_model, prior)
    keypoints, start, betas, features = fitting_problem(body_model, n=3)
    rotmat = axis_angle_to_matrix(start.view(-1, 24, 3))
    transl = torch.tensor([0.0, 0.25, 45.0]).expand(3, 3)
    prediction = Prediction(rotmat, torch.zeros(3, 10), torch.ones(3, 3), transl, torch.zeros(3, 49, 3),
                            torch.zeros(3, 49, 2), torch.ones(3, dtype=torch.bool), features)  # fmt: skip
    batch = {"keypoints": keypoints, "index": torch.arange(3), "dataset": torch.zeros(3, dtype=torch.long)}
    in_loop = fit_from_prediction(fitter, prediction, batch, ["synth"])
    seeds = mix64(torch.arange(3) ^ seed_from_text("synth"))
    direct = fitter.fit(keypoints, rotmat, betas, transl, sample_seeds=seeds, condition=features)
    unconditioned = fitter.fit(keypoints, rotmat, betas, transl, sample_seeds=seeds)
    torch.testing.assert_close(in_loop.pose, direct.pose, atol=0, rtol=0)
    assert (in_loop.pose - unconditioned.pose).abs().max() > 1e-4
    # a run's network must be the prior's regressor at its start, and give its feature size
    with pytest.raises(ConditioningError, match="starts from fresh weights"):
        _check_conditional_prior(fitter, tiny_regressor(body_model), None)
    with pytest.raises(ConditioningError, match="gives 32"):
        _check_conditional_prior(fitter, tiny_regressor(body_model, feature_dim=32), None, resumed=True)
    _check_conditional_prior(fitter, tiny_regressor(body_model), setup["checkpoint"])


def record_conditions(monkeypatch) -> list:
    """The features each SMPLify fit receives from now on (the real fit still runs)."""
    from spin_diff.fitting.smplify import SMPLify

    seen = []
    real_fit = SMPLify.fit

    def recording_fit(self, *args, condition=None, **kwargs):
        seen.append(None if condition is None else condition.detach().clone())
        return real_fit(self, *args, condition=condition, **kwargs)

    monkeypatch.setattr(SMPLify, "fit", recording_fit)
    return seen


def expected_features(setup, rows):
    from spin_diff.data.spin_npz import dataset_keypoints
    from spin_diff.models.checkpoints import load_regressor

    regressor = load_regressor(setup["checkpoint"])
    keypoints = dataset_keypoints(dict(np.load(setup["npz"])), 224)[rows]
    with torch.no_grad():
        return regressor(torch.as_tensor(keypoints, dtype=torch.float32)).features


def test_eval_refines_with_the_regressors_features_and_refuses_another_regressor(setup, tmp_path, capsys, monkeypatch):
    import json

    seen = record_conditions(monkeypatch)

    common = ["eval", "--dataset", str(setup["npz"]), "--refine", "term,guided", "--quiet", "--limit", "4",
              "--set", f"fitting.diffusion.checkpoint={setup['prior']}", "--set", "fitting.stages.0.iterations=3",
              "--set", "fitting.stages.1.iterations=3", "--set", "fitting.diffusion.guided.loops=1"]  # fmt: skip
    assert main([*common, "--checkpoint", str(setup["checkpoint"]), "--out", str(tmp_path / "eval")]) == 0
    rows = json.loads((tmp_path / "eval" / "summary.json").read_text())["rows"]
    assert set(rows) == {"none", "term", "guided"} and np.isfinite(rows["term"]["mpjpe"])
    expected = expected_features(setup, slice(0, 4))
    assert len(seen) == 2  # one batch, two rows
    for features in seen:
        torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)
    assert main([*common, "--checkpoint", str(setup["other"]), "--out", str(tmp_path / "other")]) == 2
    assert "was conditioned on the features of" in capsys.readouterr().err


def test_cache_build_from_a_regressor_fits_with_its_features(setup, tmp_path, capsys, monkeypatch):
    seen = record_conditions(monkeypatch)
    common = ["cache", "build", "--dataset", str(setup["npz"]), "--limit", "3", "--quiet",
              "--set", f"fitting.diffusion.checkpoint={setup['prior']}", "--set", "fitting.stages.0.iterations=2",
              "--set", "fitting.stages.1.iterations=2"]  # fmt: skip
    assert main([*common, "--init", str(setup["checkpoint"]), "--cache", str(tmp_path / "fits")]) == 0
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], expected_features(setup, slice(0, 3)), atol=1e-5, rtol=0)
    assert main([*common, "--init", str(setup["other"]), "--cache", str(tmp_path / "other")]) == 2
    assert "was conditioned on the features of" in capsys.readouterr().err


# ------------------------------------------- the loop's features: the trained network or a frozen copy
def record_fits(monkeypatch) -> list:
    """(keypoints, condition) of each SMPLify fit from now on (the real fit still runs)."""
    from spin_diff.fitting.smplify import SMPLify

    seen = []
    real_fit = SMPLify.fit

    def recording_fit(self, keypoints, *args, condition=None, **kwargs):
        seen.append((keypoints.detach().clone(), None if condition is None else condition.detach().clone()))
        return real_fit(self, keypoints, *args, condition=condition, **kwargs)

    monkeypatch.setattr(SMPLify, "fit", recording_fit)
    return seen


def encoder_features(checkpoint, keypoints):
    from spin_diff.models.checkpoints import load_regressor

    with torch.no_grad():
        return load_regressor(checkpoint).eval().encoder(keypoints)


def train_in_loop(setup, out, steps, features, refresh=0, resume=False):
    command = ["train", "--dataset", str(setup["npz"]), "--out", str(out), "--quiet", "--threads", "1",
               *(["--resume"] if resume else ["--pretrained", str(setup["checkpoint"])]),
               "--set", "model.input=keypoints", "--set", "data.batch_size=4", "--set", f"max_steps={steps}",
               "--set", "optim.lr=1e-2", "--set", "epochs=10", "--set", "checkpoint_every=1000",
               "--set", "fitting.prior=gmm+diffusion",
               "--set", f"fitting.diffusion.checkpoint={setup['prior']}", "--set", "fitting.stages.0.iterations=2",
               "--set", "fitting.stages.1.iterations=2", "--set", f"fitting.condition_features={features}",
               "--set", f"fitting.condition_refresh_every={refresh}"]  # fmt: skip
    return main(command)


def test_a_frozen_copy_conditions_the_loops_prior_with_the_starting_networks_features(setup, tmp_path, monkeypatch):
    seen = record_fits(monkeypatch)
    assert train_in_loop(setup, tmp_path / "frozen", 2, "frozen") == 0
    assert train_in_loop(setup, tmp_path / "frozen", 3, "frozen", resume=True) == 0  # the copy survives a resume
    assert len(seen) == 3
    for keypoints, condition in seen:  # every step, the start's eval-mode encoder, not the trained network's
        torch.testing.assert_close(condition, encoder_features(setup["checkpoint"], keypoints), atol=1e-5, rtol=0)
    trained = encoder_features(tmp_path / "frozen" / "last.pt", seen[-1][0])
    assert (trained - seen[-1][1]).abs().max() > 1e-3  # the network did move away from its start

    seen.clear()  # the network's own features (train mode, drifting): the start's only at step 1, up to dropout
    assert train_in_loop(setup, tmp_path / "network", 3, "network") == 0
    keypoints, condition = seen[-1]
    assert (condition - encoder_features(setup["checkpoint"], keypoints)).abs().max() > 1e-3


def test_a_refreshed_copy_is_the_network_of_its_last_refresh_also_after_a_resume(setup, tmp_path, monkeypatch):
    seen = record_fits(monkeypatch)
    assert train_in_loop(setup, tmp_path / "run", 2, "frozen", refresh=2) == 0  # refreshed after step 2
    at_refresh = tmp_path / "at_refresh.pt"
    at_refresh.write_bytes((tmp_path / "run" / "last.pt").read_bytes())
    assert train_in_loop(setup, tmp_path / "run", 4, "frozen", refresh=2, resume=True) == 0
    assert len(seen) == 4
    for keypoints, condition in seen[:2]:
        torch.testing.assert_close(condition, encoder_features(setup["checkpoint"], keypoints), atol=1e-5, rtol=0)
    for keypoints, condition in seen[2:]:  # steps 3 and 4: the network as it was after step 2
        torch.testing.assert_close(condition, encoder_features(at_refresh, keypoints), atol=1e-5, rtol=0)


def test_a_frozen_copy_needs_a_conditional_prior_and_a_resume_needs_the_saved_copy(setup, tmp_path, capsys):
    bad = ["train", "--dataset", str(setup["npz"]), "--out", str(tmp_path / "bad"), "--quiet",
           "--pretrained", str(setup["checkpoint"]), "--set", "model.input=keypoints", "--set", "data.batch_size=4", "--set", "max_steps=1",
           "--set", "fitting.prior=gmm",
           "--set", "fitting.condition_features=frozen"]  # fmt: skip
    assert main(bad) == 2
    assert "is not conditioned on features" in capsys.readouterr().err
    assert main([*bad[:-2], "--set", "fitting.condition_refresh_every=-1"]) == 2
    assert "condition_refresh_every=-1" in capsys.readouterr().err
    assert train_in_loop(setup, tmp_path / "run", 1, "network") == 0
    assert train_in_loop(setup, tmp_path / "run", 2, "frozen", resume=True) == 2
    assert "holds no frozen conditioning network" in capsys.readouterr().err


def test_prior_auto_runs_the_conditioned_loop_with_a_conditional_prior_and_spins_without(setup, tmp_path, monkeypatch):
    import yaml

    seen = record_fits(monkeypatch)
    command = ["train", "--dataset", str(setup["npz"]), "--quiet", "--threads", "1", "--pretrained", str(setup["checkpoint"]),
               "--set", "model.input=keypoints", "--set", "data.batch_size=4", "--set", "max_steps=2",
               "--set", "fitting.stages.0.iterations=2", "--set", "fitting.stages.1.iterations=2",
               "--set", "fitting.prior=auto"]  # fmt: skip
    assert main([*command, "--out", str(tmp_path / "auto"), "--set", f"fitting.diffusion.checkpoint={setup['prior']}"]) == 0
    fitting = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())["fitting"]
    assert (fitting["prior"], fitting["method"], fitting["condition_features"]) == ("gmm+diffusion", "guided", "frozen")
    assert fitting["diffusion"]["guided"]["pre_stages"] == ["camera", "body"]
    assert (fitting["diffusion"]["guided"]["loops"], fitting["diffusion"]["guided"]["step"]) == (3, 5)
    for keypoints, condition in seen:  # the frozen start's features reach the prior
        torch.testing.assert_close(condition, encoder_features(setup["checkpoint"], keypoints), atol=1e-5, rtol=0)

    assert main([*command, "--out", str(tmp_path / "spin")]) == 0  # the bundled, unconditional prior: SPIN's loop
    fitting = yaml.safe_load((tmp_path / "spin" / "config.yaml").read_text())["fitting"]
    assert (fitting["prior"], fitting["method"], fitting["condition_features"]) == ("gmm", "smplify", "network")


def test_the_training_studys_row_l_is_what_prior_auto_runs_with_a_conditional_prior():
    """The study measured the default: row l's settings resolve to the auto prior's choice."""
    import sys

    from spin_diff.recipes import recipe_path
    from spin_diff.training.config import TrainConfig, resolve_auto_prior
    from spin_diff.utils.configs import config_to_dict, load_config

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"))
    from train_study import ROWS

    row = load_config(TrainConfig, recipe_path("train_keypoints_cpu"), ROWS["l"][1]).fitting
    resolve_auto_prior(row, True)
    explicit = load_config(TrainConfig, recipe_path("train_keypoints_cpu"), [
        "fitting.prior=gmm+diffusion", "fitting.condition_features=frozen", "fitting.method=guided",
        "fitting.diffusion.guided.guidance_scale=0.015", "fitting.diffusion.guided.pre_stages=[camera,body]",
        "fitting.diffusion.guided.loops=3", "fitting.diffusion.guided.step=5"]).fitting  # fmt: skip
    assert config_to_dict(row) == config_to_dict(explicit)
