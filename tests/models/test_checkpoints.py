"""Reading SPIN's and our regressor checkpoints, and the errors for everything else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spin_diff.models.backbones import build_backbone, load_backbone_state_dict
from spin_diff.models.checkpoints import load_regressor, peek_checkpoint, save_regressor
from spin_diff.models.hmr import build_regressor
from spin_diff.utils.checkpoints import CheckpointError


def spin_checkpoint(body_model, layouts, seed: int = 0) -> dict:
    """A dict shaped like SPIN's utils/saver.py output; the mean parameters are the body model's."""
    state = layouts.random_state(layouts.spin_hmr_layout(), seed)
    for key, name in (("pose", "init_pose"), ("shape", "init_shape"), ("cam", "init_cam")):
        state[name] = body_model.mean_params[key][None].clone()
    return {
        "model": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 5e-5, "params": list(range(4))}]},
        "epoch": 3,
        "batch_idx": 120,
        "batch_size": 64,
        "dataset_perm": np.random.default_rng(0).permutation(1000),  # not a tensor: weights_only refuses it
        "total_step_count": 5000,
    }


@pytest.fixture(scope="module")
def spin_file(tmp_path_factory, body_model, state_layouts):
    path = tmp_path_factory.mktemp("spin") / "model_checkpoint.pt"
    checkpoint = spin_checkpoint(body_model, state_layouts)
    torch.save(checkpoint, path)
    return path, checkpoint["model"]


def test_spin_checkpoint_loads_with_every_key_and_runs(spin_file, body_model):
    path, state = spin_file
    assert peek_checkpoint(path)["kind"] == "spin"
    model = load_regressor(path, body_model)
    assert model.config.backbone == "resnet50" and model.config.width == 1.0 and model.input_kind == "image"
    ours = model.state_dict()
    assert len(ours) == len(state)
    for key, value in state.items():  # every SPIN tensor landed, unchanged, in its module
        target = ours[
            (
                "encoder."
                if key.split(".")[0] in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")
                else "head."
            )
            + key
        ]
        assert torch.equal(target, value.to(target.dtype)), key
    out = model(torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    assert out.rotmat.shape == (2, 24, 3, 3) and out.keypoints_2d.shape == (2, 49, 2)
    assert out.features.shape == (2, 2048) and torch.isfinite(out.keypoints_2d).all()


def test_bare_and_dataparallel_spin_state_dicts_load(tmp_path, spin_file, body_model):
    _, state = spin_file
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "dp.pt")
    model = load_regressor(tmp_path / "dp.pt", body_model)
    assert torch.equal(model.head.fc2.weight, state["fc2.weight"])


def test_old_spin_checkpoint_without_batch_counters_loads(tmp_path, spin_file, body_model):
    _, state = spin_file
    torch.save(
        {"model": {k: v for k, v in state.items() if "num_batches_tracked" not in k}}, tmp_path / "old.pt"
    )
    load_regressor(tmp_path / "old.pt", body_model)


@pytest.mark.parametrize(
    "name, bottleneck, blocks", [("resnet50", True, (3, 4, 6, 3)), ("resnet18", False, (2, 2, 2, 2))]
)
def test_torchvision_state_dict_loads_into_the_backbone(tmp_path, name, bottleneck, blocks, state_layouts):
    state = state_layouts.random_state(state_layouts.resnet_layout(bottleneck, blocks, classifier=True), seed=1)
    torch.save(state, tmp_path / f"{name}.pth")
    backbone = build_backbone(name)
    load_backbone_state_dict(backbone, tmp_path / f"{name}.pth")
    loaded = backbone.state_dict()
    assert set(loaded) == set(state) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(loaded[k], state[k].to(loaded[k].dtype)) for k in loaded)


def test_torchvision_state_dict_of_another_depth_is_refused_with_its_keys(state_layouts):
    state = state_layouts.random_state(state_layouts.resnet_layout(False, (2, 2, 2, 2)))
    with pytest.raises(CheckpointError) as err:
        load_backbone_state_dict(build_backbone("resnet50"), state)
    assert "layer1.0.conv3.weight" in str(err.value) and "shape mismatches" in str(err.value)


def test_wrong_spin_file_names_the_offending_keys(tmp_path, spin_file, body_model):
    _, state = spin_file
    broken = dict(state)
    del broken["decshape.weight"]
    broken["fc1.weight"] = torch.zeros(1024, 2048 + 144 + 10)  # no camera in the feedback
    broken["smpl.betas"] = torch.zeros(1, 10)
    torch.save({"model": broken}, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError) as err:
        load_regressor(tmp_path / "broken.pt", body_model)
    message = str(err.value)
    assert "broken.pt" in message
    assert "missing keys: decshape.weight" in message
    assert "unexpected keys: smpl.betas" in message
    assert "fc1.weight: file (1024, 2202) vs model (1024, 2205)" in message


def test_unrelated_file_is_refused_with_its_keys(tmp_path, body_model):
    torch.save({"weight": torch.zeros(3), "bias": torch.zeros(3)}, tmp_path / "linear.pt")
    with pytest.raises(CheckpointError, match=r"neither a spin_diff .* nor SPIN's .*its keys: bias, weight"):
        load_regressor(tmp_path / "linear.pt", body_model)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_regressor(tmp_path / "list.pt", body_model)


@pytest.mark.parametrize("kind", ["image", "keypoints"])
def test_our_checkpoint_round_trip_records_config_kind_and_body(tmp_path, body_model, kind, regressor_configs):
    from spin_diff.body.files import body_model_hash

    torch.manual_seed(0)
    config = regressor_configs.tiny_image_config() if kind == "image" else regressor_configs.tiny_keypoint_config()
    model = build_regressor(config, body=body_model).eval()
    with torch.no_grad():
        model.head.decpose.weight.normal_(0, 0.1)
    path = save_regressor(model, tmp_path / "ckpt.pt", step=7)
    raw = torch.load(path, weights_only=True)
    assert (
        raw["input"] == kind and raw["step"] == 7 and raw["body_model_sha256"] == body_model_hash(body_model)
    )
    loaded = load_regressor(path, body_model, expect_input=kind)
    assert loaded.config == config and not loaded.training
    inputs = (
        torch.randn(2, 3, 64, 64)
        if kind == "image"
        else torch.cat([100 * torch.rand(2, 49, 2), torch.ones(2, 49, 1)], -1)
    )
    assert torch.equal(model(inputs).rotmat, loaded(inputs).rotmat)
    assert not (tmp_path / "ckpt.pt.partial").exists()


# --- bad input (acceptance item 6) ---------------------------------------------------------


def test_checkpoint_of_another_body_model_is_refused(tmp_path, body_model, other_body_model, regressor_configs):
    model = build_regressor(regressor_configs.tiny_keypoint_config(), body=body_model)
    path = save_regressor(model, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match=r"trained for another body model .*--body-model"):
        load_regressor(path, other_body_model)


def test_spin_checkpoint_with_other_mean_parameters_is_refused(spin_file, other_body_model):
    path, _ = spin_file
    with pytest.raises(CheckpointError, match=r"another body model: its mean parameters \(shape\) differ"):
        load_regressor(path, other_body_model)


def test_wrong_input_kind_is_refused(tmp_path, body_model, regressor_configs):
    image = save_regressor(build_regressor(regressor_configs.tiny_image_config(), body=body_model), tmp_path / "image.pt")
    keypoint = save_regressor(build_regressor(regressor_configs.tiny_keypoint_config(), body=body_model), tmp_path / "kp.pt")
    with pytest.raises(CheckpointError, match=r"image input, it needs image crops \(pass --images DIR\)"):
        load_regressor(image, body_model, expect_input="keypoints")
    with pytest.raises(CheckpointError, match="keypoints input"):
        load_regressor(keypoint, body_model, expect_input="image")


@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_truncated_file_is_refused(tmp_path, body_model, keep, regressor_configs):
    path = save_regressor(build_regressor(regressor_configs.tiny_keypoint_config(), body=body_model), tmp_path / "ckpt.pt")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"ckpt.pt .*truncated or not a torch checkpoint"):
        load_regressor(path, body_model)


def test_missing_and_non_torch_files(tmp_path, body_model):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_regressor(tmp_path / "nothing.pt", body_model)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="truncated or not a torch checkpoint"):
        load_regressor(tmp_path / "text.pt", body_model)
