"""Linear blend skinning as stateless tensor functions.

These are the maths of an SMPL-type body model, kept apart from any loaded model so that
the full forward, the joints-only fast path and the bundled-model builder share one
implementation. Shapes use B for batch, V for vertices, J for joints, P for the pose-blend
basis size (207 for SMPL) and S for shape coefficients.

Conventions (those of SMPL): joint rotations are relative to the parent joint, expressed in
frames aligned with the rest pose's world axes; the root's rotation is the global
orientation; translation is added after skinning.
"""

from __future__ import annotations

from functools import lru_cache

import torch


def blend_shapes(coefficients: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Offsets from a linear basis.

    Args:
        coefficients: (B, S)
        basis: (V, 3, S)
    Returns:
        (B, V, 3)
    """
    return torch.einsum("bs,vcs->bvc", coefficients, basis)


def pose_feature(rotations: torch.Tensor) -> torch.Tensor:
    """SMPL's pose-blend-shape input: (R - I) of every non-root joint, flattened.

    Args:
        rotations: (B, J, 3, 3) local joint rotations, root first.
    Returns:
        (B, (J - 1) * 9)
    """
    identity = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    return (rotations[:, 1:] - identity).flatten(1)


@lru_cache(maxsize=16)
def _tree_levels(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Joints grouped by depth in the kinematic tree (root level first)."""
    depth = [0] * len(parents)
    for joint, parent in enumerate(parents):
        if parent >= joint and joint > 0:
            raise ValueError(
                f"kinematic tree must list parents before children; joint {joint} has parent {parent}"
            )
        depth[joint] = 0 if parent < 0 else depth[parent] + 1
    levels: list[list[int]] = [[] for _ in range(max(depth) + 1)]
    for joint, d in enumerate(depth):
        levels[d].append(joint)
    return tuple(tuple(level) for level in levels)


_INDEX_CACHE: dict[tuple, tuple] = {}


def _tree_indices(parents: tuple[int, ...], device: torch.device) -> tuple:
    """Per-level (joints, parents) index tensors on ``device``, made once per tree and device
    so the forward pass creates no tensors from Python lists (no host-to-device copies)."""
    key = (parents, str(device))
    if key not in _INDEX_CACHE:
        levels = [
            (
                torch.tensor(level, device=device),
                torch.tensor([max(parents[j], 0) for j in level], device=device),
            )
            for level in _tree_levels(parents)
        ]
        parent_index = torch.tensor([max(p, 0) for p in parents], device=device)
        has_parent = torch.tensor([p >= 0 for p in parents], device=device)
        _INDEX_CACHE[key] = (levels, parent_index, has_parent)
    return _INDEX_CACHE[key]


def batch_rigid_transform(
    rotations: torch.Tensor, rest_joints: torch.Tensor, parents: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics.

    Walks the tree one depth level at a time (9 levels for SMPL), so the number of tensor
    operations does not grow with the number of joints or samples.

    Args:
        rotations: (B, J, 3, 3) local rotations.
        rest_joints: (B, J, 3) joint locations in the rest pose.
        parents: length-J tuple, parent index of each joint, -1 for the root.
    Returns:
        posed_joints: (B, J, 3)
        skinning_transforms: (B, J, 3, 4) rigid transforms that move a rest-pose point
            attached to each joint to its posed location (the [R | t] part of SMPL's A).
    """
    batch, num_joints = rotations.shape[:2]
    levels, parent_index, has_parent = _tree_indices(tuple(int(p) for p in parents), rest_joints.device)
    offsets = rest_joints - rest_joints[:, parent_index] * has_parent.to(rest_joints.dtype)[None, :, None]

    world_rot = rotations.new_empty(batch, num_joints, 3, 3)
    world_pos = rest_joints.new_empty(batch, num_joints, 3)
    root = levels[0][0]
    world_rot[:, root] = rotations[:, root]
    world_pos[:, root] = rest_joints[:, root]
    for idx, par in levels[1:]:
        parent_rot = world_rot[:, par]
        world_rot[:, idx] = parent_rot @ rotations[:, idx]
        world_pos[:, idx] = world_pos[:, par] + (parent_rot @ offsets[:, idx, :, None])[..., 0]

    # A point p attached to joint j moves to R_j (p - J_j) + posed_J_j.
    translation = world_pos - (world_rot @ rest_joints[..., None])[..., 0]
    return world_pos, torch.cat([world_rot, translation[..., None]], dim=-1)


def skin_points(
    points: torch.Tensor, weights: torch.Tensor, skinning_transforms: torch.Tensor
) -> torch.Tensor:
    """Apply linear blend skinning to rest-pose points.

    Each point is moved by every joint's transform and the results are blended, which is two
    dense matmuls rather than one tiny 3x3 product per point (much faster for few points).

    Args:
        points: (B, N, 3) rest-pose points (already shaped and pose-corrected).
        weights: (N, J) skinning weights.
        skinning_transforms: (B, J, 3, 4) from :func:`batch_rigid_transform`.
    Returns:
        (B, N, 3) posed points.
    """
    rotation, translation = skinning_transforms[..., :3], skinning_transforms[..., 3]
    moved = torch.einsum("bjrc,bnc->bjnr", rotation, points) + translation[:, :, None, :]
    return torch.einsum("nj,bjnr->bnr", weights, moved)


def vertices_to_joints(regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Regress joints from vertices.

    Args:
        regressor: (K, V)
        vertices: (B, V, 3)
    Returns:
        (B, K, 3)
    """
    return torch.einsum("kv,bvc->bkc", regressor, vertices)
