"""Picture helpers built on :func:`render_mesh`: a body from several sides, image grids."""

from __future__ import annotations

import numpy as np

from spin_diff.constants import FOCAL_LENGTH
from spin_diff.render.mesh_renderer import look_at_translation, orbit_rotation, render_mesh


def render_views(
    vertices,
    faces,
    yaws: tuple[float, ...] = (0.0, 90.0),
    size: int = 400,
    vertex_colors=None,
    fill: float = 0.85,
    background=(255, 255, 255),
) -> np.ndarray:
    """A y-up, +z-facing mesh rendered upright from each yaw (0 front, 90 its right side).

    Args:
        vertices: (V, 3) mesh in body coordinates (metres).
        faces: (F, 3).
    Returns:
        (size, size * len(yaws), 3) uint8 RGB.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    tiles = []
    for yaw in yaws:
        rotation = orbit_rotation(yaw)
        translation = look_at_translation(vertices, rotation, FOCAL_LENGTH, (size, size), fill=fill)
        tiles.append(
            render_mesh(
                vertices,
                faces,
                rotation=rotation,
                translation=translation,
                image_size=(size, size),
                vertex_colors=vertex_colors,
                background=background,
            ).image
        )
    return np.concatenate(tiles, axis=1)


def image_grid(images: list[np.ndarray], columns: int, pad: int = 0) -> np.ndarray:
    """Tile equally sized (H, W, 3) images row by row; missing cells are white."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    height, width = images[0].shape[:2]
    rows = -(-len(images) // columns)
    grid = np.full(((height + pad) * rows, (width + pad) * columns, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (height + pad) : r * (height + pad) + height, c * (width + pad) : c * (width + pad) + width] = image
    return grid
