"""spin-diff export-checkpoint: our regressor in SPIN's HMR layout (strict-loadable by a module
written as SPIN's models/hmr.py, same outputs) and back, and the refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from spin_diff.cli.main import main
from spin_diff.models.backbones import build_backbone
from spin_diff.models.checkpoints import load_regressor, save_regressor
from spin_diff.models.config import RegressorConfig
from spin_diff.models.hmr import build_regressor


def spin_rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """SPIN's utils/geometry.py rot6d_to_rotmat: (B, 144) -> (B * 24, 3, 3)."""
    x = x.view(-1, 3, 2)
    a1, a2 = x[:, :, 0], x[:, :, 1]
    b1 = F.normalize(a1)
    b2 = F.normalize(a2 - torch.einsum("bi,bi->b", b1, a2).unsqueeze(-1) * b1)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack((b1, b2, b3), dim=-1)


class SpinHMR(nn.Module):
    """SPIN's models/hmr.py HMR: its attribute names (hence state-dict keys) and forward."""

    def __init__(self):
        super().__init__()
        trunk = build_backbone("resnet50")  # torchvision's Bottleneck stages, as SPIN builds them
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4
        self.avgpool = nn.AvgPool2d(7, stride=1)
        self.fc1 = nn.Linear(2048 + 24 * 6 + 13, 1024)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(1024, 24 * 6)
        self.decshape = nn.Linear(1024, 10)
        self.deccam = nn.Linear(1024, 3)
        self.register_buffer("init_pose", torch.zeros(1, 144))
        self.register_buffer("init_shape", torch.zeros(1, 10))
        self.register_buffer("init_cam", torch.zeros(1, 3))

    def forward(self, x, n_iter=3):
        batch = x.shape[0]
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        xf = self.avgpool(self.layer4(self.layer3(self.layer2(self.layer1(x))))).view(batch, -1)
        pose, shape, cam = self.init_pose.expand(batch, -1), self.init_shape.expand(batch, -1), self.init_cam.expand(batch, -1)
        for _ in range(n_iter):
            xc = self.drop2(self.fc2(self.drop1(self.fc1(torch.cat([xf, pose, shape, cam], 1)))))
            pose, shape, cam = self.decpose(xc) + pose, self.decshape(xc) + shape, self.deccam(xc) + cam
        return spin_rot6d_to_rotmat(pose).view(batch, 24, 3, 3), shape, cam


@pytest.fixture(scope="module")
def ours(tmp_path_factory, body_model):
    """A ResNet-50 regressor (SPIN's sizes) with every weight random, saved as our checkpoint."""
    torch.manual_seed(3)
    model = build_regressor(RegressorConfig(), body=body_model)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not name.startswith("head.init_"):
                tensor.copy_(0.02 * torch.randn_like(tensor) + (1.0 if "running_var" in name else 0.0))
    path = save_regressor(model, tmp_path_factory.mktemp("ours") / "regressor.pt", body_model)
    return model.eval(), path


def test_exported_checkpoint_loads_strictly_into_spins_hmr_with_the_same_outputs(ours, tmp_path, state_layouts):
    model, path = ours
    assert main(["export-checkpoint", str(path), "--format", "spin", "--out", str(tmp_path / "spin.pt")]) == 0
    exported = torch.load(tmp_path / "spin.pt", weights_only=True)["model"]
    hmr = SpinHMR().eval()
    layout = {k: tuple(v.shape) for k, v in hmr.state_dict().items()}
    assert layout == state_layouts.spin_hmr_layout()  # the test module is SPIN's layout
    hmr.load_state_dict(exported, strict=True)
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        rotmat, betas, cam = hmr(images)
        out = model(images)
    torch.testing.assert_close(rotmat, out.rotmat, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(betas, out.betas, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cam, out.cam, atol=1e-5, rtol=1e-4)


def test_round_trip_gives_identical_tensors_and_records_the_body_model(ours, tmp_path, body_model):
    model, path = ours
    assert main(["export-checkpoint", str(path), "--format", "spin", "--out", str(tmp_path / "spin.pt")]) == 0
    back = tmp_path / "back.pt"
    assert main(["export-checkpoint", str(tmp_path / "spin.pt"), "--format", "spin_diff", "--out", str(back)]) == 0
    raw = torch.load(back, weights_only=False)
    assert raw["format"] == "spin_diff.regressor" and raw["input"] == "image" and raw["body_model_sha256"]
    assert raw["config"]["backbone"] == "resnet50"
    original = model.state_dict()
    assert set(raw["model"]) == set(original)
    for key, value in original.items():
        assert torch.equal(raw["model"][key], value), key
    assert load_regressor(back, body_model).checkpoint_info["kind"] == "spin_diff"


def test_existing_out_is_refused_without_overwrite(ours, tmp_path, capsys):
    _, path = ours
    out = tmp_path / "spin.pt"
    out.write_text("keep me")
    assert main(["export-checkpoint", str(path), "--format", "spin", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "keep me"
    assert main(["export-checkpoint", str(path), "--format", "spin", "--out", str(out), "--overwrite"]) == 0
    assert "fc1.weight" in torch.load(out, weights_only=True)["model"]
    assert not list(tmp_path.glob("*.partial"))


def test_keypoint_regressor_is_refused_in_one_line(tmp_path, body_model, regressor_configs, capsys):
    model = build_regressor(regressor_configs.tiny_keypoint_config(), body=body_model)
    path = save_regressor(model, tmp_path / "keypoints.pt", body_model)
    assert main(["export-checkpoint", str(path), "--format", "spin", "--out", str(tmp_path / "spin.pt")]) == 2
    err = capsys.readouterr().err
    assert "keypoints input" in err and "only image (ResNet) regressors" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "spin.pt").exists()


def test_a_network_spins_hmr_cannot_build_is_exported_with_a_warning(tmp_path, tiny_image_regressor, body_model, caplog):
    path = save_regressor(tiny_image_regressor, tmp_path / "tiny.pt", body_model)
    with caplog.at_level("WARNING"):
        assert main(["export-checkpoint", str(path), "--format", "spin", "--out", str(tmp_path / "spin.pt")]) == 0
    assert "resnet18" in caplog.text and "ResNet-50" in caplog.text
    exported = torch.load(tmp_path / "spin.pt", weights_only=True)["model"]
    assert torch.equal(exported["layer1.0.conv1.weight"], tiny_image_regressor.encoder.layer1[0].conv1.weight)
