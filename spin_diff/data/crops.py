"""Person crops as SPIN's network sees them: a square box resized to 224 px, RGB, ImageNet-normalised.

The crop is the same map as :func:`spin_diff.geometry.cameras.image_keypoints_to_crop` (box of
side ``200 * scale`` centred at ``center``, resized to ``crop_size``), so keypoints and pixels
stay registered. Outside the image the crop is black, as in SPIN.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from spin_diff.constants import CROP_SIZE
from spin_diff.errors import BadInputError, MissingInputError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "crop_person", "crops_to_tensor", "load_crops", "read_image_rgb"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_image_rgb(path: str | Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB; a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInputError(f"cannot read image {path}: not an image file, or damaged")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def crop_person(image: np.ndarray, center, scale: float, crop_size: int = CROP_SIZE) -> np.ndarray:
    """Cut the box of side ``200 * scale`` centred at ``center`` out of ``image`` (H, W, 3)
    and resize it to ``(crop_size, crop_size, 3)`` (bilinear, black outside the image)."""
    zoom = crop_size / (200.0 * float(scale))
    cx, cy = (float(v) for v in center)
    affine = np.array([[zoom, 0.0, crop_size / 2 - zoom * cx], [0.0, zoom, crop_size / 2 - zoom * cy]])
    return cv2.warpAffine(
        image, affine, (crop_size, crop_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def crops_to_tensor(crops: np.ndarray) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 RGB -> ``(B, 3, H, W)`` float32, /255 then ImageNet mean/std."""
    tensor = torch.as_tensor(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (tensor - mean) / std


def load_crops(paths, centers, scales, crop_size: int = CROP_SIZE) -> torch.Tensor:
    """Read each image and crop its person: ``(B, 3, crop_size, crop_size)`` network input.
    An image used by several rows is read once."""
    cache: dict[str, np.ndarray] = {}
    crops = []
    for path, center, scale in zip(paths, centers, scales):
        key = str(path)
        if key not in cache:
            cache[key] = read_image_rgb(path)
        crops.append(crop_person(cache[key], center, scale, crop_size))
    return crops_to_tensor(np.stack(crops))
