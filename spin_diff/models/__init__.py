"""Regressors: plain-torch ResNet backbones, SPIN's HMR head, the keypoint-input regressor,
and their checkpoints (SPIN's and ours).

- :mod:`spin_diff.models.backbones`: ResNet-18/34/50 with torchvision's names.
- :mod:`spin_diff.models.hmr`: the IEF head, the keypoint encoder, :class:`Regressor`.
- :mod:`spin_diff.models.checkpoints`: :func:`load_regressor`, :func:`save_regressor`.
- :mod:`spin_diff.models.config`: :class:`RegressorConfig`.
"""

from spin_diff.models.backbones import ResNet, build_backbone, load_backbone_state_dict
from spin_diff.utils.checkpoints import CheckpointError
from spin_diff.models.checkpoints import load_regressor, peek_checkpoint, save_regressor
from spin_diff.models.config import HeadConfig, KeypointEncoderConfig, RegressorConfig
from spin_diff.models.hmr import IEFHead, KeypointEncoder, Regressor, RegressorOutput, build_regressor

__all__ = [
    "CheckpointError",
    "HeadConfig",
    "IEFHead",
    "KeypointEncoder",
    "KeypointEncoderConfig",
    "Regressor",
    "RegressorConfig",
    "RegressorOutput",
    "ResNet",
    "build_backbone",
    "build_regressor",
    "load_backbone_state_dict",
    "load_regressor",
    "peek_checkpoint",
    "save_regressor",
]
