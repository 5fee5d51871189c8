"""HMR regressors: SPIN's iterative-error-feedback head on an image backbone or a keypoint encoder.

- :class:`IEFHead` is SPIN's head: features and the current estimate (SPIN 6D pose 144, betas
  10, weak-perspective camera 3) -> ``fc1`` -> ``drop1`` -> ``fc2`` -> ``drop2`` -> residual
  updates from ``decpose`` / ``decshape`` / ``deccam``, repeated ``iterations`` times from the
  body model's mean parameters (buffers ``init_pose`` / ``init_shape`` / ``init_cam``, so they
  travel with a checkpoint). As in SPIN there is no non-linearity between ``fc1`` and ``fc2``.
- :class:`KeypointEncoder` turns SPIN's 49 keypoints (crop pixels + confidence) into a feature
  vector; it never sees pixels, so a model trained on synthetic keypoints applies to real
  detections.
- :class:`Regressor` joins an encoder (a ResNet or the keypoint encoder) to the head and, given
  a body model, also returns the 49 keypoints projected into the crop.

Module names follow SPIN (``fc1``, ``decpose``, ``init_pose`` ...) so that
:mod:`spin_diff.models.checkpoints` maps SPIN's checkpoints onto these modules key by key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spin_diff.constants import CROP_SIZE, NUM_BETAS, NUM_CAMERA, NUM_KEYPOINTS, NUM_POSE_6D, NUM_SMPL_JOINTS
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.geometry.cameras import perspective_projection, weak_perspective_to_translation
from spin_diff.geometry.rotations import matrix_to_axis_angle, rot6d_to_matrix
from spin_diff.models.backbones import build_backbone
from spin_diff.models.config import RegressorConfig

__all__ = [
    "IEFHead",
    "KeypointEncoder",
    "Regressor",
    "RegressorOutput",
    "build_regressor",
    "drop_joints",
    "normalise_keypoints",
]


@dataclass
class RegressorOutput:
    """What a regressor predicts. B batch, F feature size."""

    rotmat: torch.Tensor  # (B, 24, 3, 3) rotation matrices, global orientation first
    pose: torch.Tensor  # (B, 72) axis-angle
    pose_6d: torch.Tensor  # (B, 144) the SPIN 6D layout, as the head regressed it
    betas: torch.Tensor  # (B, 10)
    cam: torch.Tensor  # (B, 3) weak-perspective [s, tx, ty] of the crop
    transl: torch.Tensor  # (B, 3) camera translation (focal 5000 px, 224 px crop)
    features: torch.Tensor  # (B, F) encoder features (the diffusion prior's conditioning)
    keypoints_2d: torch.Tensor | None = None  # (B, 49, 2) projected into the crop, pixels
    joints: torch.Tensor | None = None  # (B, 49, 3) body-frame keypoints, metres


class IEFHead(nn.Module):
    """SPIN's iterative error feedback regressor of SMPL pose (6D), betas and camera.

    Args:
        feature_dim: size of the encoder features.
        mean_params: ``{"pose": (144,), "shape": (10,), "cam": (3,)}`` (the body model's
            ``smpl_mean_params.npz``): the starting estimate.
        iterations: IEF iterations (SPIN: 3).
        hidden: width of ``fc1`` / ``fc2`` (SPIN: 1024).
        dropout: dropout after ``fc1`` and ``fc2`` (SPIN: 0.5).
    """

    def __init__(
        self,
        feature_dim: int,
        mean_params: dict[str, torch.Tensor],
        iterations: int = 3,
        hidden: int = 1024,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if iterations < 1:
            raise BadInputError(f"the IEF head needs at least 1 iteration, got {iterations}")
        self.iterations = iterations
        self.fc1 = nn.Linear(feature_dim + NUM_POSE_6D + NUM_BETAS + NUM_CAMERA, hidden)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout(dropout)
        self.decpose = nn.Linear(hidden, NUM_POSE_6D)
        self.decshape = nn.Linear(hidden, NUM_BETAS)
        self.deccam = nn.Linear(hidden, NUM_CAMERA)
        # Small residual heads: the first estimate stays close to the mean (SPIN's choice).
        for head in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(head.weight, gain=0.01)
        for key, name, size in (
            ("pose", "init_pose", NUM_POSE_6D),
            ("shape", "init_shape", NUM_BETAS),
            ("cam", "init_cam", NUM_CAMERA),
        ):
            value = torch.as_tensor(mean_params[key], dtype=torch.float32).reshape(-1)
            if value.numel() != size:
                raise BadInputError(f"mean parameter {key!r} must have {size} numbers, got {value.numel()}")
            self.register_buffer(name, value[None].clone())  # (1, size), as in SPIN's checkpoints

    def forward(
        self,
        features: torch.Tensor,
        iterations: int | None = None,
        init: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """features ``(B, F)`` -> ``(pose_6d (B, 144), betas (B, 10), cam (B, 3))``.

        ``init`` replaces the mean parameters as the starting estimate (each ``(B, n)``).
        """
        batch = features.shape[0]
        if init is None:
            pose = self.init_pose.expand(batch, -1)
            betas = self.init_shape.expand(batch, -1)
            cam = self.init_cam.expand(batch, -1)
        else:
            pose, betas, cam = init
        for _ in range(self.iterations if iterations is None else iterations):
            hidden = torch.cat([features, pose, betas, cam], dim=1)
            hidden = self.drop2(self.fc2(self.drop1(self.fc1(hidden))))
            pose = self.decpose(hidden) + pose
            betas = self.decshape(hidden) + betas
            cam = self.deccam(hidden) + cam
        return pose, betas, cam


def normalise_keypoints(keypoints: torch.Tensor, crop_size: float = CROP_SIZE) -> torch.Tensor:
    """Crop pixels to the encoder's input: ``(B, 49, 3)`` -> ``(B, 49, 3)`` with x, y in
    [-1, 1] across the crop and the confidence; joints of zero confidence (missing) become
    all zeros, whatever their coordinates (NaN included)."""
    confidence = keypoints[..., 2:3].clamp(min=0)
    xy = keypoints[..., :2] / (crop_size / 2) - 1
    xy = torch.where(confidence > 0, xy, torch.zeros_like(xy))
    return torch.cat([xy, confidence], dim=-1)


def drop_joints(
    keypoints: torch.Tensor, probability: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Joint dropout: each joint of ``(B, 49, 3)`` loses its confidence with ``probability``
    (the encoder then sees it as missing, like a joint the detector did not find)."""
    if probability <= 0:
        return keypoints
    keep = torch.rand(keypoints.shape[:-1], generator=generator, device=keypoints.device) >= probability
    return torch.cat([keypoints[..., :2], keypoints[..., 2:3] * keep[..., None].to(keypoints.dtype)], dim=-1)


class KeypointEncoder(nn.Module):
    """MLP encoder of SPIN's 49 keypoints (crop pixels + confidence) -> ``(B, feature_dim)``.

    Input layer, then ``blocks`` residual blocks (LayerNorm -> Linear -> ReLU -> Linear), then
    a projection to ``feature_dim``. In training mode, ``joint_dropout`` removes random joints.
    Every operation is per sample, so a sample's features do not depend on its batch-mates.
    """

    def __init__(
        self,
        num_keypoints: int = NUM_KEYPOINTS,
        hidden: int = 1024,
        blocks: int = 2,
        feature_dim: int = 1024,
        joint_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not 0 <= joint_dropout < 1:
            raise BadInputError(f"joint_dropout must be in [0, 1), got {joint_dropout}")
        self.num_keypoints = num_keypoints
        self.joint_dropout = joint_dropout
        self.feature_dim = feature_dim
        self.input = nn.Linear(num_keypoints * 3, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden)
            )
            for _ in range(blocks)
        )
        self.output = nn.Sequential(nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, feature_dim))

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        """keypoints ``(B, 49, 3)`` crop pixels + confidence -> features ``(B, feature_dim)``."""
        if keypoints.ndim != 3 or keypoints.shape[1:] != (self.num_keypoints, 3):
            raise BadInputError(
                f"keypoints must be (B, {self.num_keypoints}, 3) crop pixels and confidence, "
                f"got {tuple(keypoints.shape)}"
            )
        if self.training and self.joint_dropout > 0:
            keypoints = drop_joints(keypoints, self.joint_dropout)
        hidden = self.input(normalise_keypoints(keypoints).flatten(1))
        for block in self.blocks:
            hidden = hidden + block(hidden)
        return self.output(hidden)


class Regressor(nn.Module):
    """An encoder (ResNet on crops, or the keypoint MLP) feeding SPIN's IEF head.

    Args:
        encoder: maps the input to ``(B, F)`` features; has ``feature_dim``.
        head: an :class:`IEFHead` over ``F`` features.
        input_kind: ``"image"`` (ImageNet-normalised ``(B, 3, 224, 224)`` crops) or
            ``"keypoints"`` (``(B, 49, 3)`` crop pixels + confidence).
        body: optional :class:`~spin_diff.body.model.BodyModel`; with it the output also holds
            the 49 keypoints (joints-only fast path) and their projection into the crop. Only
            its joints module is used, on the body model's device (it is not moved with the
            regressor, nor saved with its weights).
        config: the :class:`RegressorConfig` it was built from (recorded in checkpoints).
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: IEFHead,
        input_kind: str,
        body=None,
        config: RegressorConfig | None = None,
    ):
        super().__init__()
        if input_kind not in ("image", "keypoints"):
            raise BadInputError(f"input kind must be 'image' or 'keypoints', got {input_kind!r}")
        self.encoder = encoder
        self.head = head
        self.input_kind = input_kind
        self.config = config
        # Not registered as a submodule: moving the regressor must not move the caller's body
        # model, and its buffers are no part of the regressor's weights. Keep the body model on
        # the regressor's device.
        object.__setattr__(self, "joints_model", body.fast if body is not None else None)
        self.body_files = body.files if body is not None else None
        self.body_num_betas = body.num_betas if body is not None else NUM_BETAS
        if body is not None:
            body.require_keypoint_regressor()

    def forward(self, inputs: torch.Tensor, iterations: int | None = None) -> RegressorOutput:
        """Crops or keypoints -> :class:`RegressorOutput` (see the class docstring for inputs)."""
        features = self.encoder(inputs)
        pose_6d, betas, cam = self.head(features, iterations)
        batch = pose_6d.shape[0]
        rotmat = rot6d_to_matrix(pose_6d.reshape(batch, NUM_SMPL_JOINTS, 6))
        transl = weak_perspective_to_translation(cam)
        output = RegressorOutput(
            rotmat=rotmat,
            pose=matrix_to_axis_angle(rotmat).reshape(batch, NUM_SMPL_JOINTS * 3),
            pose_6d=pose_6d,
            betas=betas,
            cam=cam,
            transl=transl,
            features=features,
        )
        if self.joints_model is not None:
            joints = self.joints_model(rotmat, betas[:, : self.body_num_betas]).joints
            output.joints = joints
            output.keypoints_2d = perspective_projection(joints, transl)
        return output


def build_regressor(
    config: RegressorConfig, body=None, mean_params: dict[str, torch.Tensor] | None = None
) -> Regressor:
    """A regressor with fresh weights from ``config``.

    The starting estimate comes from ``mean_params`` if given, else from ``body.mean_params``
    (the body model's ``smpl_mean_params.npz``); one of them is required.
    """
    if mean_params is None:
        if body is None or body.mean_params is None:
            where = f"next to {body.files.model}" if body is not None else "(no body model given)"
            raise MissingInputError(
                f"the regressor starts from smpl_mean_params.npz, which was not found {where}: "
                "pass --set body.mean_params=PATH"
            )
        mean_params = body.mean_params
    if config.input == "image":
        encoder = build_backbone(config.backbone, config.width)
    elif config.input == "keypoints":
        kp = config.keypoints
        encoder = KeypointEncoder(NUM_KEYPOINTS, kp.hidden, kp.blocks, kp.feature_dim, kp.joint_dropout)
    else:
        raise BadInputError(f"regressor input must be 'image' or 'keypoints', got {config.input!r}")
    head = IEFHead(
        encoder.feature_dim, mean_params, config.head.iterations, config.head.hidden, config.head.dropout
    )
    return Regressor(encoder, head, config.input, body=body, config=config)
