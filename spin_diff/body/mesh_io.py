"""Writing meshes to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from spin_diff.errors import BadInputError


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Write a triangle mesh as Wavefront OBJ (1-based faces), creating parent folders.

    Args:
        vertices: (V, 3) float.
        faces: (F, 3) int, 0-based.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise BadInputError(f"vertices must be (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise BadInputError(f"faces must be (F, 3), got {faces.shape}")
    if not np.all(np.isfinite(vertices)):
        raise BadInputError("vertices contain NaN or inf; refusing to write a broken mesh")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# written by spin_diff"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")
    return path
