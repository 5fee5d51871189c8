"""The skeleton and motion every mocap reader produces, and its forward kinematics.

A skeleton is a tree of nodes. Node ``k`` sits at ``offset[k]`` from its parent, expressed in
the parent's frame; its world rotation is ``G_k = G_parent @ L_k`` with ``L_k`` the frame's
local rotation of node k, and its position is ``p_k = p_parent + G_parent @ offset[k]`` (the
root's position is the frame's root position). *Points* are the named positions retargeting
uses: a node's own position, or a tip fixed in a node's frame (a bone's far end, a BVH End
Site): ``p = p_node + G_node @ tip``.

Both ASF/AMC and BVH map onto this: a BVH joint is a node; an ASF bone is a node at the bone's
start whose child bones are offset by its bone vector, and whose end point is a tip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spin_diff.errors import BadInputError


class MocapFileError(BadInputError):
    """A motion-capture file that cannot be read; the message names file and line."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


@dataclass
class Skeleton:
    """A joint tree. Shapes: J nodes, P points."""

    node_names: list[str]
    parents: list[int]  # parents[k] < k, -1 for the root
    offsets: np.ndarray  # (J, 3) in the parent's frame, source units
    point_names: list[str] = field(default_factory=list)
    point_nodes: list[int] = field(default_factory=list)
    point_tips: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (P, 3) in the node's frame

    def __post_init__(self) -> None:
        for k, parent in enumerate(self.parents):
            if parent >= k:
                raise ValueError(f"skeleton node {self.node_names[k]!r}: parent index {parent} must precede it")

    def point_index(self, name: str) -> int:
        return self.point_names.index(name)


@dataclass
class Motion:
    """A clip: skeleton, per-frame local rotations and root positions. F frames, J nodes."""

    skeleton: Skeleton
    rotations: np.ndarray  # (F, J, 3, 3) local rotations
    root_positions: np.ndarray  # (F, 3), source units
    frame_time: float  # seconds per frame
    path: str = ""
    skeleton_kind: str = ""  # which correspondence table fits it (see retarget.py); "" = detect

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    def select(self, frames: np.ndarray) -> "Motion":
        """The clip restricted to ``frames`` (indices)."""
        return Motion(self.skeleton, self.rotations[frames], self.root_positions[frames], self.frame_time,
                      self.path, self.skeleton_kind)  # fmt: skip


def forward_kinematics(
    skeleton: Skeleton, rotations: np.ndarray, root_positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World positions of the skeleton's points and nodes.

    Args:
        rotations: (F, J, 3, 3) local rotations; root_positions: (F, 3).
    Returns:
        points (F, P, 3) and node positions (F, J, 3), source units.
    """
    frames, count = rotations.shape[:2]
    world = np.empty_like(rotations)
    position = np.empty((frames, count, 3), dtype=rotations.dtype)
    for k, parent in enumerate(skeleton.parents):  # a loop over the tree, batched over frames
        if parent < 0:
            world[:, k] = rotations[:, k]
            position[:, k] = root_positions + skeleton.offsets[k]
        else:
            world[:, k] = world[:, parent] @ rotations[:, k]
            position[:, k] = position[:, parent] + world[:, parent] @ skeleton.offsets[k]
    nodes = np.asarray(skeleton.point_nodes, dtype=np.int64)
    tips = np.asarray(skeleton.point_tips, dtype=rotations.dtype).reshape(-1, 3)
    points = position[:, nodes] + np.einsum("fpij,pj->fpi", world[:, nodes], tips)
    return points, position


def euler_matrices(angles_degrees: np.ndarray, axes: str) -> np.ndarray:
    """Rotation matrices ``R = R_a1(t1) @ R_a2(t2) @ ...`` for ``axes`` like "ZYX" (the first
    axis outermost, as BVH channels and ASF axis orders are read).

    Args:
        angles_degrees: (..., len(axes)).
    Returns:
        (..., 3, 3).
    """
    angles = np.deg2rad(np.asarray(angles_degrees, dtype=np.float64))
    result = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for i, axis in enumerate(axes.upper()):
        c, s = np.cos(angles[..., i]), np.sin(angles[..., i])
        one, zero = np.ones_like(c), np.zeros_like(c)
        if axis == "X":
            m = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
        elif axis == "Y":
            m = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
        elif axis == "Z":
            m = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
        else:
            raise ValueError(f"unknown rotation axis {axis!r} in {axes!r}")
        result = result @ np.stack([np.stack(row, -1) for row in m], -2)
    return result
