"""SPIN's HMR head and the regressors built on it."""

from __future__ import annotations

import pytest
import torch

from spin_diff.geometry.rotations import axis_angle_to_matrix, rot6d_to_matrix
from spin_diff.models.backbones import build_backbone
from spin_diff.models.hmr import IEFHead, KeypointEncoder, build_regressor, drop_joints


def _crops(batch: int, seed: int = 0, size: int = 64) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _keypoints(batch: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = 40 + 144 * torch.rand(batch, 49, 2, generator=gen)
    conf = (torch.rand(batch, 49, 1, generator=gen) > 0.2).float()
    return torch.cat([xy, conf], dim=-1)


def _zero_heads(model) -> None:
    with torch.no_grad():
        for layer in (model.head.decpose, model.head.decshape, model.head.deccam):
            layer.weight.zero_()
            layer.bias.zero_()


@pytest.mark.parametrize("kind", ["image", "keypoints"])
def test_zero_heads_return_the_mean_parameters_exactly(body_model, kind, regressor_configs):
    config = regressor_configs.tiny_image_config() if kind == "image" else regressor_configs.tiny_keypoint_config()
    model = build_regressor(config, body=body_model).eval()
    _zero_heads(model)
    inputs = _crops(3) if kind == "image" else _keypoints(3)
    out = model(inputs)
    mean = body_model.mean_params
    assert torch.equal(out.pose_6d, mean["pose"].expand(3, -1))
    assert torch.equal(out.betas, mean["shape"].expand(3, -1))
    assert torch.equal(out.cam, mean["cam"].expand(3, -1))
    assert torch.equal(out.rotmat, rot6d_to_matrix(mean["pose"].view(24, 6)).expand(3, -1, -1, -1))
    assert torch.allclose(out.rotmat, body_model.mean_pose_rotmat(3))


@pytest.mark.parametrize("iterations", [1, 3, 5])
def test_ief_runs_the_configured_number_of_iterations(body_model, iterations, regressor_configs):
    config = regressor_configs.tiny_keypoint_config()
    config.head.iterations = iterations
    model = build_regressor(config, body=body_model).eval()
    calls = []
    model.head.fc1.register_forward_hook(lambda *_: calls.append(1))
    model(_keypoints(2))
    assert len(calls) == iterations
    calls.clear()
    model(_keypoints(2), iterations=2)  # an explicit count overrides the config
    assert len(calls) == 2


def test_each_iteration_adds_a_residual_to_the_previous_estimate(body_model, regressor_configs):
    """Running k iterations from the estimate after j equals running j + k from the mean."""
    torch.manual_seed(1)
    model = build_regressor(regressor_configs.tiny_keypoint_config(), body=body_model).eval()
    features = model.encoder(_keypoints(4))
    after_two = model.head(features, iterations=2)
    after_three = model.head(features, iterations=3)
    continued = model.head(features, iterations=1, init=after_two)
    for a, b in zip(after_three, continued):
        assert torch.allclose(a, b, atol=1e-6)


def test_6d_decoding_gives_proper_rotations_and_matching_axis_angle(body_model, regressor_configs):
    torch.manual_seed(2)
    model = build_regressor(regressor_configs.tiny_keypoint_config(), body=body_model).eval()
    with torch.no_grad():  # large residuals: far from the mean, far from orthonormal 6D
        model.head.decpose.weight.normal_(0, 0.5)
    out = model(_keypoints(5))
    rot = out.rotmat.double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(rot)
    assert (out.pose_6d - body_model.mean_params["pose"]).abs().max() > 0.5
    assert torch.allclose(rot.transpose(-1, -2) @ rot, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(5, 24, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(axis_angle_to_matrix(out.pose.view(5, 24, 3)), out.rotmat, atol=1e-4)


@pytest.mark.parametrize("kind", ["image", "keypoints"])
def test_batch_of_one_and_batch_of_n_agree_per_sample(body_model, kind, regressor_configs):
    torch.manual_seed(3)
    config = regressor_configs.tiny_image_config() if kind == "image" else regressor_configs.tiny_keypoint_config()
    model = build_regressor(config, body=body_model)
    if kind == "image":  # non-trivial BatchNorm statistics, as after training
        model.train()
        with torch.no_grad():
            model(_crops(8, seed=9))
    model.eval()
    inputs = _crops(5) if kind == "image" else _keypoints(5)
    whole = model(inputs)
    for i in range(5):
        single = model(inputs[i : i + 1])
        for name in ("rotmat", "betas", "cam", "transl", "features", "keypoints_2d"):
            assert torch.allclose(getattr(single, name)[0], getattr(whole, name)[i], atol=1e-5, rtol=1e-5), (
                name
            )


def test_camera_and_projected_keypoints_match_an_independent_computation(body_model, regressor_configs):
    """transl = [tx, ty, 2 f / (224 s)]; keypoints = f X / Z + 112 of smplx's full forward."""
    torch.manual_seed(4)
    model = build_regressor(regressor_configs.tiny_keypoint_config(), body=body_model).eval()
    out = model(_keypoints(3))
    s, tx, ty = out.cam.double().unbind(-1)
    expected_t = torch.stack([tx, ty, 2 * 5000.0 / (224 * s)], dim=-1)
    assert torch.allclose(out.transl.double(), expected_t, rtol=1e-6)
    full = body_model(out.rotmat, out.betas).joints.double() + expected_t[:, None]
    pixels = 5000.0 * full[..., :2] / full[..., 2:] + 112.0
    assert torch.allclose(out.keypoints_2d.double(), pixels, atol=1e-2)


@pytest.mark.parametrize(
    "name, parameters",
    # torchvision's resnet18/34/50 parameter counts minus the 1000-way classifier (fc)
    [
        ("resnet18", 11_689_512 - 513_000),
        ("resnet34", 21_797_672 - 513_000),
        ("resnet50", 25_557_032 - 2_049_000),
    ],
)
def test_backbones_have_torchvisions_size_and_feature_width(name, parameters):
    backbone = build_backbone(name)
    assert sum(p.numel() for p in backbone.parameters()) == parameters
    assert backbone.feature_dim == (2048 if name == "resnet50" else 512)


def test_width_multiplier_makes_a_small_network_with_the_same_names():
    full, tiny = build_backbone("resnet50").state_dict(), build_backbone("resnet50", width=0.125).state_dict()
    assert list(full) == list(tiny)
    assert tiny["layer4.2.conv3.weight"].shape[0] == 256
    assert build_backbone("resnet50", width=0.125)(_crops(2)).shape == (2, 256)


def test_bottleneck_stride_sits_on_conv2_as_in_torchvision():
    layer2 = build_backbone("resnet50", width=0.125).layer2[0]
    assert layer2.conv1.stride == (1, 1) and layer2.conv2.stride == (2, 2)
    assert layer2.downsample[0].stride == (2, 2)


def test_missing_joints_are_ignored_whatever_their_coordinates():
    torch.manual_seed(5)
    encoder = KeypointEncoder(hidden=32, blocks=1, feature_dim=8).eval()
    keypoints = _keypoints(2)
    keypoints[:, :5, 2] = 0
    moved = keypoints.clone()
    moved[:, :5, :2] = float("nan")
    assert torch.equal(encoder(keypoints), encoder(moved))
    keypoints[:, 10, 0] += 30  # a confident joint does matter
    assert not torch.allclose(encoder(keypoints), encoder(moved))


def test_joint_dropout_only_in_training():
    torch.manual_seed(6)
    encoder = KeypointEncoder(hidden=32, blocks=1, feature_dim=8, joint_dropout=0.5)
    keypoints = _keypoints(4)
    encoder.eval()
    assert torch.equal(encoder(keypoints), encoder(keypoints))
    encoder.train()
    assert not torch.equal(encoder(keypoints), encoder(keypoints))
    dropped = drop_joints(torch.ones(1000, 49, 3), 0.3, torch.Generator().manual_seed(0))
    assert 0.27 < 1 - dropped[..., 2].mean() < 0.33
    assert torch.equal(dropped[..., :2], torch.ones(1000, 49, 2))


def test_keypoint_encoder_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(B, 49, 3\)"):
        KeypointEncoder(hidden=8, blocks=1, feature_dim=4)(torch.zeros(2, 25, 3))


def test_regressor_needs_mean_parameters(regressor_configs):
    with pytest.raises(FileNotFoundError, match="smpl_mean_params.npz"):
        build_regressor(regressor_configs.tiny_keypoint_config())
    with pytest.raises(ValueError, match="144"):
        IEFHead(8, {"pose": torch.zeros(10), "shape": torch.zeros(10), "cam": torch.zeros(3)})
