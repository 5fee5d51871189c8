"""A tiny image regressor (ResNet-18 at width 1/8) trains end to end on rendered synthetic
crops, and starts from a checkpoint in SPIN's key layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_helpers import read_log

from spin_diff.cli.main import main
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


def _train_cli(npz, images, out, *args, overrides=()):
    sets = [arg for value in [*IMAGE_OVERRIDES, "max_steps=0", *overrides] for arg in ("--set", value)]
    return main(["train", "--threads", "1", "--quiet", "--dataset", str(npz), "--images", str(images),
                 "--out", str(out), *sets, *args])  # fmt: skip


def test_torchvision_resnet50_weights_start_the_backbone(rendered, tmp_path, state_layouts, capsys):
    """SPIN's hmr(pretrained=True): ImageNet weights in torchvision's layout (with its fc
    classifier) start the backbone; the run's step-0 checkpoint holds exactly the file's tensors."""
    npz, images = rendered
    weights = state_layouts.random_state(state_layouts.resnet_layout(True, (3, 4, 6, 3), classifier=True), seed=4)
    torch.save(weights, tmp_path / "resnet50.pth")
    resnet50 = ["model.backbone=resnet50", "model.width=1.0"]
    code = _train_cli(npz, images, tmp_path / "run", "--backbone-weights", str(tmp_path / "resnet50.pth"),
                      overrides=resnet50)  # fmt: skip
    assert code == 0, capsys.readouterr().err
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    backbone = {k[len("encoder."):]: v for k, v in saved["model"].items() if k.startswith("encoder.")}
    assert set(backbone) == set(weights) - {"fc.weight", "fc.bias"}
    for key, value in backbone.items():
        assert torch.equal(value, weights[key].to(value.dtype)), key

    # A run's last.pt (optimizer, RNG ... beside the weights) exports to SPIN's layout as it is
    exported = tmp_path / "spin.pt"
    assert main(["export-checkpoint", str(tmp_path / "run" / "last.pt"), "--format", "spin", "--out", str(exported)]) == 0
    assert torch.equal(torch.load(exported, weights_only=True)["model"]["conv1.weight"], weights["conv1.weight"])

    # --resume keeps the run's own weights: the file is not read again (here it is gone)
    (tmp_path / "resnet50.pth").rename(tmp_path / "moved.pth")
    code = _train_cli(npz, images, tmp_path / "run", "--resume", "--backbone-weights", str(tmp_path / "resnet50.pth"),
                      overrides=[*resnet50, "max_steps=1"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] == 1
    (tmp_path / "moved.pth").rename(tmp_path / "resnet50.pth")

    # The same file as --pretrained is named for what it is, not as missing conv1.weight
    code = _train_cli(npz, images, tmp_path / "as_pretrained", "--pretrained", str(tmp_path / "resnet50.pth"),
                      overrides=resnet50)  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "ResNet backbone state dict" in err and "--backbone-weights" in err and "conv1.weight" not in err


def test_wrong_backbone_weights_are_refused_in_one_line(rendered, tmp_path, state_layouts, body_model, capsys):
    npz, images = rendered
    resnet18 = state_layouts.random_state(state_layouts.resnet_layout(False, (2, 2, 2, 2), width=8))
    torch.save(resnet18, tmp_path / "resnet18.pth")
    code = _train_cli(npz, images, tmp_path / "depth", "--backbone-weights", str(tmp_path / "resnet18.pth"),
                      overrides=["model.backbone=resnet50"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "resnet18.pth" in err and "layer1.0.conv3.weight" in err and "model.backbone=resnet50" in err

    regressor = build_regressor(
        RegressorConfig(input="image", backbone="resnet18", width=0.125, head=HeadConfig(hidden=32)),
        mean_params=body_model.mean_params,
    )
    torch.save({"model": regressor_to_spin_keys(regressor.state_dict())}, tmp_path / "model_checkpoint.pt")
    code = _train_cli(npz, images, tmp_path / "spin", "--backbone-weights", str(tmp_path / "model_checkpoint.pt"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "regressor checkpoint" in err and "--pretrained" in err

    code = _train_cli(npz, images, tmp_path / "both", "--backbone-weights", str(tmp_path / "resnet18.pth"),
                      "--pretrained", str(tmp_path / "model_checkpoint.pt"))  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--pretrained" in err and "pass one of them" in err
    code = _train_cli(npz, images, tmp_path / "keypoints", "--backbone-weights", str(tmp_path / "resnet18.pth"),
                      overrides=["model.input=keypoints"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "model.input" in err and "'keypoints'" in err

    code = _train_cli(npz, images, tmp_path / "missing", "--backbone-weights", str(tmp_path / "none.pth"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no file" in err and "none.pth" in err
