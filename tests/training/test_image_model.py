"""A tiny image regressor (ResNet-18 at width 1/8) trains end to end on rendered synthetic
crops, and starts from a checkpoint in SPIN's key layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_helpers import read_log

from spin_diff.models.checkpoints import regressor_to_spin_keys
from spin_diff.models.config import HeadConfig, RegressorConfig
from spin_diff.models.hmr import build_regressor
from spin_diff.training.config import TrainConfig
from spin_diff.training.run import train
from spin_diff.utils.checkpoints import CheckpointError
from spin_diff.utils.configs import load_config

IMAGE_OVERRIDES = [
    "model.input=image", "model.backbone=resnet18", "model.width=0.125", "model.head.hidden=32",
    "data.batch_size=4", "fitting.stages.0.iterations=4", "fitting.stages.1.iterations=4",
    "summary_every=1", "optim.lr=1e-3",
]  # fmt: skip


@pytest.fixture(scope="module")
def rendered(body_model, tmp_path_factory):
    from spin_diff.data.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("rendered")
    config = SynthConfig(num_images=8, seed=2, image_size=(128, 128), supersample=1, save_masks=False)
    npz = generate_dataset(config, out, body_model, progress=False)
    data = dict(np.load(npz))
    data["has_smpl"][:] = 0  # train from 2D evidence and the in-loop fits only
    np.savez(npz, **data)
    return npz, out


def test_image_model_trains_end_to_end(rendered, tmp_path, device):
    npz, images = rendered
    config = load_config(TrainConfig, None, IMAGE_OVERRIDES + ["epochs=3", f"device={device}"])
    report = train(config, [(npz, images)], tmp_path / "run", progress=False)
    assert (report.step, report.stopped_by) == (6, "finished")
    rows = read_log(tmp_path / "run")
    assert all(np.isfinite(r["loss"]) for r in rows) and rows[-1]["nonfinite_rows"] == 0
    assert rows[-1]["improved_fits"] + rows[0]["improved_fits"] > 0  # the fits are in the loop
    assert np.mean([r["loss"] for r in rows[-2:]]) < np.mean([r["loss"] for r in rows[:2]])
    if device.type != "cpu":
        # The first step's loss, from the same weights and batch: the device runs the network
        # under AMP (half-precision matmuls, ~3 significant digits), hence 5%
        cpu_config = load_config(TrainConfig, None, IMAGE_OVERRIDES + ["epochs=1", "device=cpu"])
        train(cpu_config, [(npz, images)], tmp_path / "cpu_run", progress=False)
        np.testing.assert_allclose(rows[0]["loss"], read_log(tmp_path / "cpu_run")[0]["loss"], rtol=5e-2)


def test_spin_checkpoint_layout_with_pretrained(body_model, rendered, tmp_path):
    npz, images = rendered
    spin_like = build_regressor(
        RegressorConfig(input="image", backbone="resnet18", width=0.125, head=HeadConfig(hidden=32)),
        mean_params=body_model.mean_params,
    )
    spin_state = regressor_to_spin_keys(spin_like.state_dict())
    assert "conv1.weight" in spin_state and "decpose.weight" in spin_state and "init_pose" in spin_state
    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": spin_state, "optimizer": {}, "epoch": 3, "batch_idx": 0, "batch_size": 64,
                "dataset_perm": np.arange(4), "total_step_count": 100}, path)  # fmt: skip

    # max_steps 0: the run's checkpoint holds exactly the weights it started from
    config = load_config(TrainConfig, None, IMAGE_OVERRIDES + ["max_steps=0", "model.width=1.0"])
    report = train(config, [(npz, images)], tmp_path / "start", pretrained=path, progress=False)
    assert report.step == 0
    saved = torch.load(report.checkpoint, weights_only=False)
    assert saved["config"]["width"] == 0.125  # the checkpoint defines the network
    for name, value in spin_like.state_dict().items():
        assert torch.equal(saved["model"][name], value), name

    config = load_config(TrainConfig, None, IMAGE_OVERRIDES + ["max_steps=2"])
    report = train(config, [(npz, images)], tmp_path / "tuned", pretrained=path, progress=False)
    assert report.step == 2
    tuned = torch.load(report.checkpoint, weights_only=False)["model"]
    assert not torch.equal(tuned["head.decpose.weight"], spin_like.state_dict()["head.decpose.weight"])

    config = load_config(TrainConfig, None, IMAGE_OVERRIDES + ["max_steps=1", "model.input=keypoints"])
    with pytest.raises(CheckpointError, match="image input"):
        train(config, [(npz, images)], tmp_path / "wrong", pretrained=path, progress=False)
