"""ResNet backbones in plain torch, with torchvision's module and state-dict names.

torchvision cannot be installed beside the CPU torch used here, and SPIN's checkpoints (and
ImageNet weights) are keyed by torchvision's names, so the ResNets are written out again with
exactly those names: ``conv1``, ``bn1``, ``layer1`` .. ``layer4``; blocks with ``conv1`` ..
``conv3`` / ``bn1`` .. ``bn3`` and ``downsample.0`` / ``downsample.1``; the stride of a
Bottleneck on its 3x3 ``conv2`` (torchvision >= 0.3, "ResNet v1.5", as SPIN).

A ``width`` multiplier scales every channel count (64 -> round(64 * width)), so that tests and
CPU runs use the same code on tiny networks. The classifier ``fc`` is not built: a torchvision
state dict's ``fc.*`` entries are ignored when loading (:func:`load_backbone_state_dict`).
No weights are downloaded: pretrained weights are a file the user gives.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from spin_diff.errors import BadInputError
from spin_diff.utils.checkpoints import CheckpointError, read_torch_file, strip_prefix

__all__ = [
    "RESNET_LAYERS",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "build_backbone",
    "load_backbone_state_dict",
]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 convolutions with a skip connection (ResNet-50)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_LAYERS: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """A ResNet trunk: image ``(B, 3, H, W)`` -> globally average-pooled features ``(B, C)``.

    ``C`` is 2048 for ResNet-50 and 512 for ResNet-18/34 at ``width=1``. Global average
    pooling equals SPIN's ``AvgPool2d(7)`` on 224 px crops and also accepts other sizes.
    """

    def __init__(self, block: type[nn.Module], layers: tuple[int, ...], width: float = 1.0):
        super().__init__()
        if width <= 0:
            raise BadInputError(f"backbone width must be positive, got {width}")
        channels = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.inplanes = channels[0]
        self.conv1 = nn.Conv2d(3, channels[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, channels[0], layers[0])
        self.layer2 = self._make_layer(block, channels[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, channels[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, channels[3], layers[3], stride=2)
        self.feature_dim = channels[3] * block.expansion
        self._init_weights()

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        modules = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        modules += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*modules)

    def _init_weights(self) -> None:
        # He initialisation over the fan-out, BN as identity: the initialisation SPIN's HMR uses.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images ``(B, 3, H, W)`` (ImageNet-normalised) -> features ``(B, feature_dim)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


def build_backbone(name: str = "resnet50", width: float = 1.0) -> ResNet:
    """A ResNet by name (``resnet18``, ``resnet34``, ``resnet50``) and width multiplier."""
    key = name.lower().replace("-", "")
    if key not in RESNET_LAYERS:
        raise BadInputError(f"unknown backbone {name!r}; choose one of {sorted(RESNET_LAYERS)}")
    block, layers = RESNET_LAYERS[key]
    return ResNet(block, layers, width=width)


def load_backbone_state_dict(backbone: ResNet, source: str | Path | dict, *, strict: bool = True) -> None:
    """Load torchvision-layout ResNet weights (a state dict or a ``.pth`` file) into ``backbone``.

    The classifier (``fc.*``) is ignored. A ``module.`` prefix (DataParallel) is stripped.
    With ``strict``, any other missing or unexpected key, or a shape mismatch, raises a
    ``ValueError`` that lists them.
    """
    name = str(source) if not isinstance(source, dict) else "the given state dict"
    state = read_torch_file(source) if not isinstance(source, dict) else source
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{name} holds a {type(state).__name__}, not a state dict: save the weights with "
            "torch.save(resnet.state_dict(), FILE)"
        )
    if isinstance(state.get("model"), dict) or "fc1.weight" in state or "format" in state:
        raise CheckpointError(
            f"{name} is a regressor checkpoint (SPIN's model_checkpoint.pt or ours), not a ResNet "
            "backbone state dict: start from it with spin-diff train --pretrained FILE"
        )
    state = {k: v for k, v in strip_prefix(state, "module.").items() if not k.startswith("fc.")}
    problems = _state_dict_problems(backbone, state)
    if strict and any(problems.values()):
        raise CheckpointError(_describe_problems(name, "ResNet backbone", problems))
    own = backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    backbone.load_state_dict(_fill_batch_counters(backbone, usable), strict=False)


def _fill_batch_counters(module: nn.Module, state: dict) -> dict:
    """Add BatchNorm ``num_batches_tracked`` entries that old checkpoints (torch < 0.4.1) lack."""
    state = dict(state)
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    return state


def _state_dict_problems(module: nn.Module, state: dict) -> dict[str, list[str]]:
    """Missing keys, unexpected keys and shape mismatches of ``state`` against ``module``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in state
        if k in own and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    return {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches": mismatched}


def _describe_problems(name: str, what: str, problems: dict[str, list[str]], limit: int = 12) -> str:
    parts = []
    for label, items in problems.items():
        if items:
            shown = ", ".join(items[:limit]) + (
                f", ... ({len(items) - limit} more)" if len(items) > limit else ""
            )
            parts.append(f"{len(items)} {label}: {shown}")
    return f"{name} does not fit the {what}: " + "; ".join(parts)
