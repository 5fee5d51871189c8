"""Synthetic SPIN-format datasets: rendered people with exact ground truth.

:func:`generate_dataset` samples bodies with the one people generator (poses from
:mod:`spin_diff.priors.pose_sampler`, shapes, orientations: the ``"rendered"`` preset of
:mod:`spin_diff.data.people`, overridden by the config), places them in front of a pinhole camera, renders them over
procedural backgrounds and writes, under ``out_dir``::

    images/000000.jpg                 the rendered image
    masks/000000.png                  the person's silhouette (0 / 255), if save_masks
    keypoints/000000_keypoints.json   OpenPose JSON of the detector-like keypoints
    <name>.npz                        SPIN-format annotations (spin_diff.data.spin_npz)
    synth_config.yaml                 the configuration and body model that made the set

``imgname`` in the npz is relative to ``out_dir`` (``images/000000.jpg``).

Keypoints: ``part`` (24 GT joints) and ``openpose`` (25 BODY_25 joints) are the CLEAN
projections of the body model's joints, confidence 1 inside the image and 0 outside (the
position is kept). ``part_detected`` and ``openpose_detected`` are the same joints after
:func:`spin_diff.data.corruption.corrupt_keypoints` with ``config.corruption`` (independent
draws for the two blocks); they equal the clean keys when corruption is off. The JSON files
hold ``openpose_detected``. Fit from the detected keys, evaluate against the clean ones.

Camera (the project's convention, :mod:`spin_diff.geometry.cameras`): no rotation, the body
placed by ``transl``; ``S[..., :3] = joints + transl`` is in the camera frame and
``u = focal_length * X / Z + camera_center``. The body's own global orientation (``pose[:3]``)
turns it to the camera: 180 degrees about x, then a yaw about its vertical axis and a small
pitch and roll.

Focal length:

* ``focal="spin"`` (default): the crop camera is EXACTLY SPIN's. The person's square box
  (side ``b`` = ``box_padding`` x the projected mesh's larger side) is centred on the
  principal point, the image centre, and the full-image focal length is
  ``5000 * b / 224``. Cropping the box and resizing it to 224 pixels
  (:func:`~spin_diff.geometry.cameras.image_keypoints_to_crop` with ``center``/``scale``)
  then maps every projected point to exactly where SPIN's crop camera (focal 5000,
  principal point at the crop centre, the same translation) projects it, so fits made in
  the crop frame recover the ground truth and known-answer tests hold on images. The price:
  a telephoto camera (depth ~40-60 m) and people always centred in the image.
* ``focal="realistic"``: a fixed focal length (``realistic_focal``, default the image
  diagonal), people placed anywhere near the centre; the crop camera is then only the usual
  approximation (:func:`~spin_diff.geometry.cameras.full_to_crop_translation`).

``pose`` (72, global orientation first) and ``shape`` are parameters of the body model that
rendered the set: the bundled free model unless another is given (``synth_config.yaml``
names it); ``has_smpl`` is 1 everywhere and ``gender`` is not written.

Everything is drawn from generators seeded by ``config.seed`` (one stream per purpose, see
:func:`image_rng`): the same configuration gives identical files, byte for byte, under the
same torch thread settings (another thread count can change the float32 body forward in the
last bits, ~1e-7 m, and so the npz; images stay identical). The set is a function of the
whole configuration: a larger ``num_images`` is not an extension of a smaller one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import yaml
from tqdm import tqdm

from spin_diff.body.joints import KEYPOINT_FLIP_PERM
from spin_diff.body.model import load_body_model
from spin_diff.constants import CROP_SIZE, FOCAL_LENGTH, NUM_KEYPOINTS, NUM_OPENPOSE_JOINTS
from spin_diff.data.corruption import CorruptionConfig, corrupt_keypoints
from spin_diff.data.openpose import write_openpose_json
from spin_diff.data.people import PeoplePreset, draw_bodies, frame_person, preset
from spin_diff.data.spin_npz import write_spin_npz
from spin_diff.errors import BadInputError
from spin_diff.render import render_mesh
from spin_diff.utils.configs import config_to_dict

log = logging.getLogger(__name__)

__all__ = [
    "SynthConfig",
    "generate_dataset",
    "people_preset",
    "procedural_background",
    "image_rng",
    "clothing_colors",
]

# Independent random streams: changing how one purpose draws never shifts another (the
# bodies are drawn by spin_diff.data.people from its own keyed streams).
_STREAM_SCENE, _STREAM_IMAGE, _STREAM_CORRUPTION = 1, 2, 3
_FORWARD_CHUNK = 32  # bodies per forward pass; fixed, so equal configs give equal floats

OPENPOSE_FLIP_PERM = tuple(KEYPOINT_FLIP_PERM[:NUM_OPENPOSE_JOINTS])
GT_FLIP_PERM = tuple(p - NUM_OPENPOSE_JOINTS for p in KEYPOINT_FLIP_PERM[NUM_OPENPOSE_JOINTS:])


@dataclass
class SynthConfig:
    """What :func:`generate_dataset` makes. Angles in degrees, sizes in pixels."""

    num_images: int = 100
    seed: int = 0
    name: str = "synth"  # the npz is <out_dir>/<name>.npz
    image_size: tuple[int, int] = (320, 320)  # (width, height)
    focal: Literal["spin", "realistic"] = "spin"
    realistic_focal: float | None = None  # focal="realistic": pixels; None for the image diagonal
    box_fraction: tuple[float, float] = (0.6, 0.95)  # person box side / min(width, height); > 1 crops people
    box_padding: float = 1.2  # box side / projected mesh's larger side (SPIN's 1.2)
    placement: float = 0.6  # focal="realistic": how far boxes move off centre, fraction of the free room
    postures: tuple[str, ...] | None = None  # pose sampler postures; None for all
    yaw_range: tuple[float, float] = (-70.0, 70.0)  # about the body's vertical axis; 0 faces the camera
    back_view_prob: float = 0.1  # people turned away (yaw + 180)
    tilt_std: float = 6.0  # pitch and roll, each N(0, tilt_std), clipped at 3 std
    shape_std: float = 1.0  # betas ~ N(0, shape_std), clipped at shape_clip
    shape_clip: float = 3.0
    ambient: tuple[float, float] = (0.25, 0.55)
    supersample: int = 2  # anti-aliasing: render at this many times the size
    noise_std: float = 2.0  # sensor noise, grey levels
    jpeg_quality: int = 92
    save_masks: bool = True
    corruption: CorruptionConfig = field(default_factory=lambda: CorruptionConfig.preset("detector"))

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        width, height = self.image_size
        if self.num_images < 1:
            raise BadInputError(f"synth.num_images must be >= 1, got {self.num_images}")
        if self.seed < 0:
            raise BadInputError(f"synth.seed must be >= 0, got {self.seed}")
        if width < 16 or height < 16:
            raise BadInputError(f"synth.image_size must be at least 16x16 pixels, got {self.image_size}")
        low, high = self.box_fraction
        if not 0.05 <= low <= high <= 4.0:
            raise BadInputError(
                "synth.box_fraction must be (low, high) with 0.05 <= low <= high <= 4, "
                f"got {self.box_fraction}"
            )
        if self.box_padding < 1.0:
            raise BadInputError(f"synth.box_padding must be >= 1 (the box holds the person): {self.box_padding}")
        if self.focal not in ("spin", "realistic"):
            raise BadInputError(f"synth.focal must be 'spin' or 'realistic', got {self.focal!r}")
        if self.realistic_focal is not None and self.realistic_focal <= 0:
            raise BadInputError(f"synth.realistic_focal must be positive, got {self.realistic_focal}")
        if self.supersample < 1 or self.supersample > 4:
            raise BadInputError(f"synth.supersample must be 1..4, got {self.supersample}")
        if not 0 <= self.jpeg_quality <= 100:
            raise BadInputError(f"synth.jpeg_quality must be 0..100, got {self.jpeg_quality}")
        if not 0.0 <= self.back_view_prob <= 1.0 or not 0.0 <= self.placement <= 1.0:
            raise BadInputError("synth.back_view_prob and synth.placement must lie in [0, 1]")
        if min(self.tilt_std, self.shape_std, self.shape_clip, self.noise_std) < 0:
            raise BadInputError("synth.tilt_std, shape_std, shape_clip and noise_std must be >= 0")
        low, high = self.ambient
        if not 0.0 <= low <= high <= 1.0:
            raise BadInputError(f"synth.ambient must be (low, high) within [0, 1], got {self.ambient}")
        self.corruption.validate()


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``'s appearance: background first, then the person.

    ``procedural_background(image_rng(seed, i), width, height)`` rebuilds the background of
    image ``i`` of a set made with ``seed``.
    """
    return np.random.default_rng([seed, _STREAM_IMAGE, index])


# ----------------------------------------------------------------------------------------
# Bodies and cameras


def _project(points: np.ndarray, focal: np.ndarray, center: np.ndarray) -> np.ndarray:
    """``(N, J, 3)`` camera-frame points -> ``(N, J, 2)`` pixels (numpy float64)."""
    return focal[:, None, None] * points[..., :2] / points[..., 2:3] + center[:, None, :]


def _inside(pixels: np.ndarray, image_size: np.ndarray) -> np.ndarray:
    return (
        (pixels[..., 0] >= 0)
        & (pixels[..., 1] >= 0)
        & (pixels[..., 0] < image_size[:, None, 0])
        & (pixels[..., 1] < image_size[:, None, 1])
    )


# ----------------------------------------------------------------------------------------
# Appearance


def _random_color(rng: np.random.Generator, saturation=(0.15, 0.9), value=(0.2, 0.95)) -> np.ndarray:
    hsv = np.array([rng.uniform(0, 179), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255])
    return cv2.cvtColor(hsv.astype(np.uint8)[None, None], cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)


def procedural_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A varied background made from scratch: gradients, soft colour blobs, stripes, tiles,
    a floor/wall split, then shapes and fine texture. Returns ``(height, width, 3)`` uint8."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xs / max(width - 1, 1), ys / max(height - 1, 1)
    first, second = _random_color(rng), _random_color(rng)
    kind = int(rng.integers(0, 5))
    if kind == 0:  # linear gradient
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * u + np.sin(angle) * v
        t = (t - t.min()) / max(np.ptp(t), 1e-9)
        image = first + t[..., None] * (second - first)
    elif kind == 1:  # soft blobs: a coarse random colour grid, smoothly upsampled
        cells = int(rng.integers(2, 7))
        grid = np.stack([_random_color(rng) for _ in range(cells * cells)]).reshape(cells, cells, 3)
        image = cv2.resize(grid.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        image = image.astype(np.float64)
    elif kind == 2:  # stripes
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.04, 0.3)
        phase = (np.cos(angle) * u + np.sin(angle) * v) / period
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * phase)
        if rng.random() < 0.5:
            wave = (wave > 0.5).astype(np.float64)
        image = first + wave[..., None] * (second - first)
    elif kind == 3:  # tiles
        cells = rng.uniform(3, 12)
        tiles = (np.floor(u * cells) + np.floor(v * cells)) % 2
        image = first + tiles[..., None] * (second - first) * rng.uniform(0.3, 1.0)
    else:  # wall and floor, each with a gentle gradient
        horizon = rng.uniform(0.45, 0.85)
        floor = v > horizon
        shade = 1.0 - 0.35 * np.abs(v - horizon)
        image = np.where(floor[..., None], second, first) * shade[..., None]
    # Furniture-like shapes.
    for _ in range(int(rng.integers(0, 5))):
        color = tuple(float(c) for c in _random_color(rng))
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 10, width // 2)), int(rng.integers(height // 10, height // 2))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x0, y0), (x0 + w, y0 + h), color, thickness=-1)
        else:
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(image, (x0, y0), (w // 2, h // 2), angle, 0, 360, color, thickness=-1)
    # Fine texture: smoothed noise, a few grey levels.
    noise = rng.standard_normal((height, width)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), rng.uniform(0.5, 2.0))
    image = image + rng.uniform(3.0, 12.0) * texture[..., None].astype(np.float64)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


_SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 125], [198, 134, 96], [141, 85, 54], [90, 56, 37]],
    dtype=np.float64,
)
# SMPL part (lbs_weights argmax) -> clothing region. Parts 4/5 (shins) and 18/19 (forearms)
# are bare or covered depending on the outfit.
_REGION_TOP, _REGION_BOTTOM, _REGION_SHOES, _REGION_SKIN = 0, 1, 2, 3
_PART_REGION = np.array(
    [1, 1, 1, 0, 1, 1, 0, 2, 2, 0, 2, 2, 3, 0, 0, 3, 0, 0, 0, 0, 3, 3, 3, 3], dtype=np.int64
)


def clothing_colors(
    rng: np.random.Generator,
    part_labels: np.ndarray,
    hair: np.ndarray,
    avoid: np.ndarray | None = None,
) -> np.ndarray:
    """Per-vertex RGB in [0, 1]: a top, trousers or shorts, shoes, skin and hair.

    Args:
        rng: generator.
        part_labels: ``(V,)`` SMPL part of each vertex (``lbs_weights.argmax(1)``).
        hair: ``(V,)`` bool, the vertices that get hair (unless the person is bald).
        avoid: optional RGB (0-255) of the background behind the person: clothing colours
            closer than 60 levels to it are redrawn, so that people stand out.
    """
    def far_color(**kwargs) -> np.ndarray:
        color = _random_color(rng, **kwargs)
        for _ in range(10):
            if avoid is None or np.linalg.norm(color - avoid) > 60.0:
                break
            color = _random_color(rng, **kwargs)
        return color

    skin_index = rng.uniform(0, len(_SKIN_TONES) - 1)
    low = int(np.floor(skin_index))
    high = min(low + 1, len(_SKIN_TONES) - 1)
    skin = _SKIN_TONES[low] + (skin_index - low) * (_SKIN_TONES[high] - _SKIN_TONES[low])
    top, bottom = far_color(), far_color(value=(0.15, 0.8))
    shoes = _random_color(rng, saturation=(0.0, 0.5), value=(0.1, 0.9))
    if rng.random() < 0.8:  # natural: dark brown to black
        hair_color = _SKIN_TONES[-1] * rng.uniform(0.2, 1.0)
    else:
        hair_color = _random_color(rng, value=(0.6, 0.95))
    long_sleeves, long_trousers, bald = rng.random(3) < (0.5, 0.7, 0.1)

    region = _PART_REGION[part_labels].copy()
    if not long_sleeves:
        region[np.isin(part_labels, (18, 19))] = _REGION_SKIN
    if not long_trousers:
        region[np.isin(part_labels, (4, 5))] = _REGION_SKIN
    palette = np.stack([top, bottom, shoes, skin])
    colors = palette[region]
    if not bald:
        colors[hair] = hair_color
    # A little per-vertex variation reads as cloth texture and shading detail.
    colors = colors * (1.0 + 0.03 * rng.standard_normal((len(colors), 1)))
    return np.clip(colors / 255.0, 0.0, 1.0)


def _hair_vertices(model) -> np.ndarray:
    """Head vertices of the rest mesh above the ears and at the back: a simple hair cap."""
    template = model.smpl.v_template.detach().cpu().numpy().astype(np.float64)
    labels = model.smpl.lbs_weights.argmax(1).cpu().numpy()
    head = labels == 15
    if not head.any():
        return np.zeros(len(template), dtype=bool)
    y, z = template[:, 1], template[:, 2]
    y_low, y_high = y[head].min(), y[head].max()
    z_low, z_high = z[head].min(), z[head].max()
    height = (y - y_low) / max(y_high - y_low, 1e-9)
    depth = (z - z_low) / max(z_high - z_low, 1e-9)  # 0 back of the head, 1 nose tip
    return head & ((height > 0.78) | ((height > 0.4) & (depth < 0.35)))


def _render_person(
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    background: np.ndarray,
    focal: float,
    center: np.ndarray,
    light: np.ndarray,
    ambient: float,
    supersample: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite an anti-aliased render over ``background``; returns float image and coverage."""
    height, width = background.shape[:2]
    k = supersample
    result = render_mesh(
        vertices,
        faces,
        translation=None,
        focal_length=focal * k,
        camera_center=np.asarray(center) * k,
        image_size=(height * k, width * k),
        background=(0, 0, 0),
        vertex_colors=colors,
        light_direction=light,
        ambient=ambient,
    )
    color = result.image.astype(np.float64) * result.mask[..., None]
    color = color.reshape(height, k, width, k, 3).mean((1, 3))
    coverage = result.mask.astype(np.float64).reshape(height, k, width, k).mean((1, 3))
    image = color + (1.0 - coverage[..., None]) * background.astype(np.float64)
    return image, coverage


# ----------------------------------------------------------------------------------------
# The dataset


def people_preset(config: SynthConfig) -> PeoplePreset:
    """The ``"rendered"`` preset of :mod:`spin_diff.data.people` with this set's body draws."""
    return preset(
        "rendered", image_size=tuple(int(v) for v in config.image_size), yaw_range=tuple(config.yaw_range),
        back_view_prob=config.back_view_prob, tilt_std=config.tilt_std, shape_std=config.shape_std,
        shape_clip=config.shape_clip, fill_range=tuple(config.box_fraction), placement=config.placement,
        corruption="none",
    )  # fmt: skip


def generate_dataset(
    config: SynthConfig,
    out_dir: str | Path,
    body_model=None,
    progress: bool = True,
) -> Path:
    """Render ``config.num_images`` people and write a SPIN-format dataset (module docstring).

    Args:
        config: what to make.
        out_dir: output folder (created; existing files of the same names are replaced).
        body_model: a :class:`~spin_diff.body.model.BodyModel`; None loads the bundled one.
        progress: show a tqdm progress bar.

    Returns:
        Path of the written ``<out_dir>/<config.name>.npz``.
    """
    config.validate()
    if body_model is None:
        body_model = load_body_model()
    out_dir = Path(out_dir)
    num = config.num_images
    width, height = (int(s) for s in config.image_size)

    # Bodies: the one people generator (pose, orientation, shape); the scene frames their meshes.
    bodies = draw_bodies(people_preset(config), num, config.seed, body_model.num_betas, postures=config.postures)
    pose, betas, postures = bodies.pose, bodies.betas, bodies.postures
    scene = np.random.default_rng([config.seed, _STREAM_SCENE])
    box_fraction = scene.uniform(config.box_fraction[0], config.box_fraction[1], num)
    placement = scene.uniform(-1.0, 1.0, (num, 2)) * config.placement
    light = np.stack(
        [scene.uniform(-1.0, 1.0, num), scene.uniform(-1.0, 0.3, num), -scene.uniform(0.6, 1.5, num)], -1
    )
    ambient = scene.uniform(config.ambient[0], config.ambient[1], num)

    image_size = np.tile(np.array([width, height], dtype=np.float64), (num, 1))
    principal = image_size / 2.0
    box_side = box_fraction * min(width, height)
    transl = np.zeros((num, 3))
    focal = np.zeros(num)
    center = np.zeros((num, 2))
    bbox = np.zeros((num, 4))
    joints = np.zeros((num, NUM_KEYPOINTS, 3))

    labels = body_model.smpl.lbs_weights.argmax(1).cpu().numpy()
    hair = _hair_vertices(body_model)
    faces = body_model.faces
    for folder in ("images", "keypoints") + (("masks",) if config.save_masks else ()):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    imgnames = [f"images/{i:06d}.jpg" for i in range(num)]
    device = body_model.fast.joint_template.device
    bar = tqdm(total=num, desc="rendering", unit="image", disable=not progress)
    # Chunks of bodies: batched forwards, and the meshes of only one chunk in memory.
    for start in range(0, num, _FORWARD_CHUNK):
        stop = min(start + _FORWARD_CHUNK, num)
        with torch.no_grad():
            out = body_model(
                torch.as_tensor(pose[start:stop], dtype=torch.float32, device=device),
                torch.as_tensor(betas[start:stop], dtype=torch.float32, device=device),
            )
        vertices = out.vertices.double().cpu().numpy()
        joints[start:stop] = out.joints.double().cpu().numpy()
        for i in range(start, stop):
            points = vertices[i - start]
            # Camera and box.
            if config.focal == "spin":
                focal[i] = FOCAL_LENGTH * box_side[i] / CROP_SIZE
                target = principal[i]
            else:
                focal[i] = config.realistic_focal or float(np.hypot(width, height))
                room = np.maximum(image_size[i] - box_side[i], 0.0) / 2.0
                target = principal[i] + placement[i] * room
            person_size = box_side[i] / config.box_padding
            transl[i] = frame_person(points, focal[i], principal[i], target, person_size)
            points = points + transl[i]
            pixels = focal[i] * points[:, :2] / points[:, 2:3] + principal[i]
            bbox[i] = np.concatenate([pixels.min(0), pixels.max(0)])
            if config.focal == "spin":
                center[i] = target  # exactly the principal point: the crop camera is exact
            else:
                # The box around what was actually projected (the target to ~1e-6 px).
                center[i] = 0.5 * (bbox[i, :2] + bbox[i, 2:])
                box_side[i] = config.box_padding * (bbox[i, 2:] - bbox[i, :2]).max()

            # Image.
            rng = image_rng(config.seed, i)
            background = procedural_background(rng, width, height)
            x0, y0, x1, y1 = np.clip(np.round(bbox[i]).astype(int), 0, [width - 1, height - 1, width, height])
            region = background[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].reshape(-1, 3)
            colors = clothing_colors(rng, labels, hair, avoid=region.mean(0) if region.size else None)
            image, coverage = _render_person(
                points, faces, colors, background, focal[i], principal[i], light[i], ambient[i],
                config.supersample,
            )  # fmt: skip
            image = image + config.noise_std * rng.standard_normal(image.shape)
            image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            quality = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]
            if not cv2.imwrite(str(out_dir / imgnames[i]), bgr, quality):
                raise OSError(f"could not write {out_dir / imgnames[i]}: check the folder is writable")
            if config.save_masks:
                mask = ((coverage >= 0.5) * 255).astype(np.uint8)
                cv2.imwrite(str(out_dir / "masks" / f"{i:06d}.png"), mask)
            bar.update(1)
    bar.close()
    scale = box_side / 200.0

    # Keypoints: clean projections, then the detector-like ones.
    camera_joints = joints + transl[:, None, :]
    pixels = _project(camera_joints, focal, principal)
    visible = _inside(pixels, image_size).astype(np.float64)
    keypoints = np.concatenate([pixels, visible[..., None]], axis=-1)
    openpose, part = keypoints[:, :NUM_OPENPOSE_JOINTS], keypoints[:, NUM_OPENPOSE_JOINTS:]
    corruption_rng = np.random.default_rng([config.seed, _STREAM_CORRUPTION])
    openpose_detected = corrupt_keypoints(
        openpose, center, box_side, config.corruption, corruption_rng, OPENPOSE_FLIP_PERM, image_size
    ).keypoints
    part_detected = corrupt_keypoints(
        part, center, box_side, config.corruption, corruption_rng, GT_FLIP_PERM, image_size
    ).keypoints
    for i in range(num):
        write_openpose_json(out_dir / "keypoints" / f"{i:06d}_keypoints.json", openpose_detected[i])
    S = np.concatenate([camera_joints[:, NUM_OPENPOSE_JOINTS:], np.ones((num, 24, 1))], axis=-1)

    data = {
        "imgname": np.array(imgnames),
        "center": center,
        "scale": scale,
        "part": part,
        "openpose": openpose,
        "S": S,
        "pose": pose,
        "shape": betas,
        "has_smpl": np.ones(num),
        "openpose_detected": openpose_detected,
        "part_detected": part_detected,
        "transl": transl,
        "focal_length": focal,
        "camera_center": principal,
        "image_size": image_size,
        "bbox": bbox,
        "posture": np.array(postures),
    }
    path = write_spin_npz(out_dir / f"{config.name}.npz", data)
    _write_manifest(out_dir / "synth_config.yaml", config, body_model)
    log.info("wrote %d images and %s", num, path)
    return path


def _write_manifest(path: Path, config: SynthConfig, body_model) -> None:
    info = body_model.info() if hasattr(body_model, "info") else {}
    manifest = {
        "synth": config_to_dict(config),
        "body_model": str(info.get("source", "unknown")),
        "keys": {
            "clean": "part, openpose (projected joints; confidence 1 inside the image, 0 outside)",
            "detected": (
                "part_detected, openpose_detected (after corruption); keypoints/*.json hold openpose_detected"
            ),
            "camera": "transl, focal_length, camera_center, image_size; no rotation; S is camera frame",
        },
    }
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
