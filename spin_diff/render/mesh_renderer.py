"""Headless CPU mesh rendering over images: projection, shading and compositing.

Camera convention (the project's one camera): OpenCV-style pinhole, x right, y down, z forward.
A vertex ``v`` (metres) is moved into the camera frame by ``p = R v + t`` and projected to
``u = fx * p_x / p_z + cx``, ``v = fy * p_y / p_z + cy``. Defaults: focal length 5000 px and the
principal point at the image centre ``(W / 2, H / 2)``. Pixel ``(i, j)`` covers
``[j, j + 1) x [i, i + 1)`` in ``(u, v)`` and is sampled at its centre ``(j + 0.5, i + 0.5)``.

A y-up mesh (such as an SMPL body in its canonical frame) is seen upright and from the front
with ``R = diag(1, -1, -1)``, a 180 degree rotation about x; :func:`orbit_rotation` adds a yaw.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from spin_diff.constants import CROP_SIZE, FOCAL_LENGTH
from spin_diff.render.rasterizer import rasterize

__all__ = [
    "RenderResult",
    "render_mesh",
    "part_colors",
    "orbit_rotation",
    "look_at_translation",
    "save_png",
    "DEFAULT_PALETTE",
]

# Vertices closer to the camera plane than this are not projected; their triangles are dropped.
_NEAR = 1e-3

# Direction towards the light in the camera frame: from in front of the subject (-z, towards the
# camera) and above it (-y, since y points down).
_DEFAULT_LIGHT = (0.0, -0.6, -1.0)


def _make_palette(n: int = 24) -> np.ndarray:
    """``n`` distinct RGB colours in [0, 1]: hues spread by the golden angle, alternating tones."""
    golden = 0.6180339887498949
    colors = []
    for k in range(n):
        hue = (k * golden) % 1.0
        saturation = (0.75, 0.55, 0.9)[k % 3]
        value = (0.95, 0.75, 0.85)[(k // 3) % 3]
        colors.append(colorsys.hsv_to_rgb(hue, saturation, value))
    return np.asarray(colors, dtype=np.float64)


#: Fixed 24-colour palette (``24x3`` RGB in [0, 1]) used by :func:`part_colors`, one per SMPL part.
DEFAULT_PALETTE = _make_palette(24)


@dataclass
class RenderResult:
    """Output of :func:`render_mesh`.

    Attributes:
        image: ``HxWx3`` uint8 RGB composite of the mesh over the background.
        mask: ``HxW`` bool, True where the mesh covers the pixel centre.
        depth: ``HxW`` float32 camera-frame depth of the visible surface, ``+inf`` where empty.
        face_index: ``HxW`` int32 index of the visible face, ``-1`` where empty.
    """

    image: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    face_index: np.ndarray


def _to_numpy(array, dtype=None) -> np.ndarray:
    """Numpy view of an array-like, detaching and moving torch tensors to the CPU first."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=dtype)


def _focal_pair(focal_length) -> tuple[float, float]:
    focal = _to_numpy(focal_length, np.float64).reshape(-1)
    if focal.size == 1:
        return float(focal[0]), float(focal[0])
    if focal.size == 2:
        return float(focal[0]), float(focal[1])
    raise ValueError(f"focal_length must be a number or a pair (fx, fy), got {focal_length!r}")


def _camera_center(camera_center, image_size: tuple[int, int]) -> tuple[float, float]:
    height, width = image_size
    if camera_center is None:
        return width / 2.0, height / 2.0
    center = _to_numpy(camera_center, np.float64).reshape(-1)
    if center.size != 2:
        raise ValueError(f"camera_center must be a pair (cx, cy), got {camera_center!r}")
    return float(center[0]), float(center[1])


def _rigid_transform(vertices, rotation, translation) -> np.ndarray:
    """``Vx3`` camera-frame points ``R v + t`` from ``Vx3`` vertices (float64)."""
    points = _to_numpy(vertices, np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {points.shape}")
    if rotation is not None:
        rotation = _to_numpy(rotation, np.float64)
        if rotation.shape != (3, 3):
            raise ValueError(f"rotation must have shape (3, 3), got {rotation.shape}")
        points = points @ rotation.T
    if translation is not None:
        translation = _to_numpy(translation, np.float64).reshape(-1)
        if translation.shape != (3,):
            raise ValueError(f"translation must have shape (3,), got {translation.shape}")
        points = points + translation
    return points


def _project(points: np.ndarray, focal: tuple[float, float], center: tuple[float, float]) -> np.ndarray:
    """``Vx3`` screen vertices ``(u, v, z)``; NaN ``u, v`` for points not in front of the camera."""
    z = points[:, 2]
    inverse_z = np.divide(1.0, z, out=np.full_like(z, np.nan), where=z > _NEAR)
    screen = np.empty_like(points)
    screen[:, 0] = focal[0] * points[:, 0] * inverse_z + center[0]
    screen[:, 1] = focal[1] * points[:, 1] * inverse_z + center[1]
    screen[:, 2] = z
    return screen


def _face_normals(points: np.ndarray, corners: list[np.ndarray]) -> list[np.ndarray]:
    """Unnormalised face normals (length = twice the area) as three ``F`` columns x, y, z.

    Column-wise: numpy is much slower on short trailing axes (``Fx3``) than on 1-D arrays.
    """
    x, y, z = (points[:, k].astype(np.float32) for k in range(3))  # ample for shading
    edge_1 = [c[corners[1]] - c[corners[0]] for c in (x, y, z)]
    edge_2 = [c[corners[2]] - c[corners[0]] for c in (x, y, z)]
    return [
        edge_1[1] * edge_2[2] - edge_1[2] * edge_2[1],
        edge_1[2] * edge_2[0] - edge_1[0] * edge_2[2],
        edge_1[0] * edge_2[1] - edge_1[1] * edge_2[0],
    ]


def _lambert(normal: list[np.ndarray], light: np.ndarray, ambient: float) -> np.ndarray:
    """Two-sided Lambertian intensity ``ambient + (1 - ambient) |n . l| / |n|`` of column normals."""
    length = np.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2)
    cosine = np.abs(normal[0] * light[0] + normal[1] * light[1] + normal[2] * light[2])
    cosine /= np.maximum(length, 1e-20)
    return ambient + (1.0 - ambient) * cosine


def render_mesh(
    vertices,
    faces,
    *,
    translation=(0.0, 0.0, 0.0),
    rotation=None,
    focal_length=FOCAL_LENGTH,
    camera_center=None,
    image: np.ndarray | None = None,
    image_size: tuple[int, int] | None = None,
    background: Sequence[int] = (255, 255, 255),
    color: Sequence[float] = (0.65, 0.74, 0.86),
    vertex_colors=None,
    light_direction=None,
    ambient: float = 0.35,
    alpha: float = 1.0,
    smooth: bool = True,
) -> RenderResult:
    """Render a shaded triangle mesh over an image (or a plain background) on the CPU.

    The camera is the project's OpenCV-style pinhole (see the module docstring): camera-frame
    points are ``p = rotation @ v + translation`` and pixel ``(i, j)`` is sampled at
    ``(u, v) = (j + 0.5, i + 0.5)``. Triangles with a vertex at depth <= 1e-3 are dropped.

    Shading is two-sided Lambertian plus ambient: ``ambient + (1 - ambient) * |n . l|``, so the
    winding of the faces does not matter (``ambient=1`` gives the flat, unlit colours). The mesh colour is blended over the background with
    ``alpha``; the input ``image`` is not modified.

    Args:
        vertices: ``Vx3`` vertices in metres (numpy array or torch tensor).
        faces: ``Fx3`` integer vertex indices.
        translation: ``(3,)`` camera-frame translation ``t``.
        rotation: optional ``3x3`` rotation ``R`` applied before the translation.
        focal_length: focal length in pixels, a number or ``(fx, fy)``.
        camera_center: principal point ``(cx, cy)`` in pixels; None for the image centre.
        image: ``HxWx3`` uint8 RGB background; its size sets the output size.
        image_size: ``(H, W)`` of the output when ``image`` is None.
        background: RGB uint8 fill colour used when ``image`` is None.
        color: base RGB colour in [0, 1] of the whole mesh.
        vertex_colors: optional ``Vx3`` RGB in [0, 1] (e.g. from :func:`part_colors`),
            interpolated over each face; overrides ``color``.
        light_direction: camera-frame direction towards the light; None for a frontal light
            from slightly above.
        ambient: ambient fraction of the intensity, in [0, 1].
        alpha: opacity of the mesh over the background, in [0, 1].
        smooth: Gouraud shading -- the intensity is computed at the vertices from area-weighted
            vertex normals and interpolated (True) -- or one intensity per face (False).

    Returns:
        A :class:`RenderResult` with the composite image, mask, depth and face index.
    """
    faces = _to_numpy(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {faces.dtype} {faces.shape}")
    if faces.dtype not in (np.int32, np.int64):
        faces = faces.astype(np.int64)
    if not 0.0 <= alpha <= 1.0 or not 0.0 <= ambient <= 1.0:
        raise ValueError(f"alpha and ambient must lie in [0, 1], got alpha={alpha}, ambient={ambient}")

    if image is not None:
        image = _to_numpy(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {image.dtype} {image.shape}")
        output = image.copy()
    elif image_size is not None:
        height, width = (int(s) for s in image_size)
        output = np.empty((height, width, 3), dtype=np.uint8)
        output[...] = np.asarray(background, dtype=np.uint8)
    else:
        raise ValueError("render_mesh needs the output size: pass image=(H, W, 3) uint8 array or image_size=(H, W)")
    height, width = output.shape[:2]

    points = _rigid_transform(vertices, rotation, translation)
    if faces.size and faces.max() >= points.shape[0]:
        raise ValueError(f"faces index vertex {faces.max()} but the mesh has only {points.shape[0]} vertices")
    if vertex_colors is not None:
        vertex_colors = _to_numpy(vertex_colors, np.float64)
        if vertex_colors.shape != points.shape:
            raise ValueError(
                f"vertex_colors must have shape {points.shape} (one RGB per vertex), got {vertex_colors.shape}"
            )
    screen = _project(points, _focal_pair(focal_length), _camera_center(camera_center, (height, width)))
    depth, face_index, barycentrics = rasterize(screen, faces, height, width, near=_NEAR)

    # Work on flat indices of the covered pixels: boolean-mask indexing is slower than take.
    covered = np.flatnonzero(face_index.reshape(-1) >= 0)
    if covered.size:
        visible_face = face_index.reshape(-1)[covered]
        weights = barycentrics.reshape(-1, 3)[covered]  # M x 3
        corners = [np.ascontiguousarray(faces[:, k]) for k in range(3)]
        light = np.asarray(_DEFAULT_LIGHT if light_direction is None else _to_numpy(light_direction), np.float64)
        light = light.reshape(3) / max(float(np.linalg.norm(light)), 1e-12)
        face_normals = _face_normals(points, corners)

        if smooth:
            # Gouraud: intensity at the vertices from area-weighted vertex normals, interpolated.
            flat_corners = faces.reshape(-1)
            vertex_normals = [
                np.bincount(flat_corners, weights=np.repeat(n, 3), minlength=points.shape[0]) for n in face_normals
            ]
            vertex_shade = _lambert(vertex_normals, light, ambient).astype(np.float32)
            pixel_vertex = [corners[k][visible_face] for k in range(3)]
            intensity = weights[:, 0] * vertex_shade[pixel_vertex[0]]
            for k in (1, 2):
                intensity += weights[:, k] * vertex_shade[pixel_vertex[k]]
        else:
            intensity = _lambert(face_normals, light, ambient).astype(np.float32)[visible_face]

        flat_output = output.reshape(-1, 3)
        if vertex_colors is None:
            # One colour: look the shaded colour up in a table of intensity levels, far cheaper
            # than per-pixel RGB arithmetic; 4096 levels round to within 0.03 of a grey level.
            levels = 4096
            ramp = np.linspace(0.0, 255.0, levels, dtype=np.float32)
            table = np.clip(np.multiply.outer(ramp, np.asarray(color, dtype=np.float32).reshape(3)), 0.0, 255.0)
            level = np.clip(intensity, 0.0, 1.0)
            level *= levels - 1
            level += 0.5
            level = level.astype(np.int32)
            if alpha == 1.0:
                flat_output[covered] = np.take((table + 0.5).astype(np.uint8), level, axis=0)
                shaded = None  # done: opaque, nothing to blend
            else:
                shaded = np.take(table, level, axis=0)
        else:
            pixel_vertex = [corners[k][visible_face] for k in range(3)]
            colors = vertex_colors.astype(np.float32)
            shaded = weights[:, 0, None] * colors[pixel_vertex[0]]
            for k in (1, 2):
                shaded += weights[:, k, None] * colors[pixel_vertex[k]]
            shaded *= (255.0 * intensity)[:, None]
            np.clip(shaded, 0.0, 255.0, out=shaded)
        if shaded is not None:
            if alpha < 1.0:
                shaded *= alpha
                shaded += (1.0 - alpha) * flat_output[covered]
            shaded += 0.5  # round half up: values are non-negative
            flat_output[covered] = shaded.astype(np.uint8)

    return RenderResult(image=output, mask=face_index >= 0, depth=depth, face_index=face_index)


def part_colors(labels, palette=None) -> np.ndarray:
    """Per-vertex RGB colours (``Vx3`` in [0, 1]) from integer part labels (``V``).

    Label ``k`` gets ``palette[k % len(palette)]``; the default is :data:`DEFAULT_PALETTE`, 24
    distinct colours (one per SMPL body part).
    """
    labels = _to_numpy(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    palette = DEFAULT_PALETTE if palette is None else np.asarray(palette, dtype=np.float64)
    if palette.ndim != 2 or palette.shape[1] != 3 or palette.shape[0] == 0:
        raise ValueError(f"palette must have shape (K, 3), got {palette.shape}")
    return palette[labels % palette.shape[0]]


def orbit_rotation(yaw_degrees: float) -> np.ndarray:
    """``3x3`` rotation showing a y-up mesh upright, turned by ``yaw_degrees`` about its y axis.

    Returns ``diag(1, -1, -1) @ R_y(yaw)``: the mesh is first yawed about its own vertical axis
    (right-handed about +y), then flipped 180 degrees about x into the y-down camera frame. For a
    mesh facing +z (SMPL), 0 shows the front and 90 the body's right side.
    """
    angle = np.deg2rad(float(yaw_degrees))
    c, s = np.cos(angle), np.sin(angle)
    yaw = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return np.diag([1.0, -1.0, -1.0]) @ yaw


def look_at_translation(
    vertices,
    rotation=None,
    focal_length=FOCAL_LENGTH,
    image_size: tuple[int, int] = (CROP_SIZE, CROP_SIZE),
    fill: float = 0.8,
    *,
    camera_center=None,
) -> np.ndarray:
    """Translation ``t`` (``(3,)``) that frames the rotated mesh in the image.

    The projected bounding box of ``rotation @ v + t`` is centred in the image and its larger
    side (relative to the image side) spans ``fill`` of the image.

    Args:
        vertices: ``Vx3`` vertices in metres.
        rotation: optional ``3x3`` rotation, as passed to :func:`render_mesh`.
        focal_length: focal length in pixels, a number or ``(fx, fy)``.
        image_size: ``(H, W)`` of the image.
        fill: fraction of the image the mesh should span, in (0, 1].
        camera_center: principal point ``(cx, cy)``; None for the image centre.
    """
    if not 0.0 < fill:
        raise ValueError(f"fill must be positive, got {fill}")
    height, width = (int(s) for s in image_size)
    fx, fy = _focal_pair(focal_length)
    cx, cy = _camera_center(camera_center, (height, width))
    points = _rigid_transform(vertices, rotation, None)
    lower, upper = points.min(axis=0), points.max(axis=0)
    middle = (lower + upper) / 2.0
    half = (upper - lower) / 2.0

    # Start where even the nearest points project within the target size, then refine: the
    # projected size scales with the inverse distance of the box centre, and the projected box
    # centre is re-aimed at the image centre (lateral offsets scale with the distance too).
    distance = max(fx * half[0] / (fill * width / 2.0), fy * half[1] / (fill * height / 2.0)) + half[2]
    closest = half[2] + 1e-2 * max(float(half.max()), _NEAR)  # keeps the mesh in front of the camera
    distance = max(distance, closest)
    offset = np.array([(width / 2.0 - cx) / fx, (height / 2.0 - cy) / fy]) * distance  # box centre, x/y
    for _ in range(10):
        camera = points - middle + np.array([offset[0], offset[1], distance])
        u = fx * camera[:, 0] / camera[:, 2] + cx
        v = fy * camera[:, 1] / camera[:, 2] + cy
        spread = max((u.max() - u.min()) / width, (v.max() - v.min()) / height)
        offset[0] -= ((u.max() + u.min()) / 2.0 - width / 2.0) * distance / fx
        offset[1] -= ((v.max() + v.min()) / 2.0 - height / 2.0) * distance / fy
        if spread <= 0.0 or abs(spread / fill - 1.0) < 1e-4:
            break
        new_distance = max(distance * spread / fill, closest)
        offset *= new_distance / distance
        distance = new_distance
    translation = np.array([offset[0], offset[1], distance]) - middle
    return translation


def save_png(path, image: np.ndarray) -> Path:
    """Write an ``HxWx3`` uint8 RGB image to ``path`` (PNG), creating parent folders."""
    image = _to_numpy(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"save_png expects an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image to {path}: check the folder is writable and the suffix is .png")
    return path
