"""Headless CPU mesh rendering (pure numpy, no OpenGL) for visualising bodies over images."""

from spin_diff.render.mesh_renderer import (
    DEFAULT_PALETTE,
    RenderResult,
    look_at_translation,
    orbit_rotation,
    part_colors,
    render_mesh,
    save_png,
)
from spin_diff.render.rasterizer import rasterize

__all__ = [
    "DEFAULT_PALETTE",
    "RenderResult",
    "look_at_translation",
    "orbit_rotation",
    "part_colors",
    "rasterize",
    "render_mesh",
    "save_png",
]
