"""Canonical frame of stored fits, and the maps to and from an augmented view.

Fits are stored in the example's **canonical frame**: the un-augmented crop (SPIN's
``center``/``scale`` box, no rotation, no flip). Training sees **augmented views** of the
example, made as SPIN makes them, in this order:

1. rotate the crop by ``rotation_deg`` about its centre (positive: counter-clockwise on
   screen, as :func:`~spin_diff.geometry.cameras.image_keypoints_to_crop`);
2. then, if ``flip``, mirror the crop left-right.

With the principal point at the crop centre, step 1 is a rotation of the camera frame about
its z axis, ``R = R_z(-rotation_deg)`` (z forward, y down), and step 2 is the reflection
``M = diag(-1, 1, 1)``. A body seen in the view is the canonical body mapped by ``A = M R``
(or ``R`` without flip):

* pose: the global orientation becomes ``R @ G`` (SPIN's ``rot_aa``), then the whole pose is
  mirrored by :func:`~spin_diff.body.joints.flip_pose` (sides swapped, axis-angle y and z
  negated, which is ``M G M`` for the orientation);
* camera translation: ``t' = A (t + r) - r``, with ``r`` the body's rest root joint
  (the global orientation turns the body about ``r``, not about the origin). ``r`` depends
  on the shape: pass it (:func:`root_joint`) for exact translations; without it ``r = 0``.

:func:`to_view` goes canonical -> view (reading a stored fit to supervise a view);
:func:`to_canonical` goes view -> canonical (storing a fit made on a view). They are exact
inverses (the global orientation of a rotated view comes back as the same rotation, its
axis-angle possibly written with the angle in [0, pi]). Mirroring is exact for a left-right
symmetric body model; the bundled free model is symmetric up to small asymmetries of its mesh.

Inputs may be torch tensors or numpy arrays (the result has the same type); ``flip`` and
``rotation_deg`` are one value for the batch or one per row.
"""

from __future__ import annotations

import numpy as np
import torch

from spin_diff.body.joints import flip_pose
from spin_diff.constants import NUM_POSE
from spin_diff.errors import BadInputError
from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["view_rotation", "to_view", "to_canonical", "root_joint"]


def _as_tensor(value, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    dtype = like.dtype if like is not None else torch.float64
    return torch.as_tensor(np.asarray(value), dtype=dtype)


def _per_row(value, batch: int, like: torch.Tensor, dtype) -> torch.Tensor:
    tensor = torch.as_tensor(value, device=like.device)
    tensor = tensor.to(dtype) if dtype is not None else tensor
    if tensor.ndim == 0:
        return tensor.expand(batch)
    if tensor.shape != (batch,):
        raise BadInputError(
            f"flip / rotation_deg must be one value or ({batch},), got shape {tuple(tensor.shape)}"
        )
    return tensor


def view_rotation(rotation_deg, batch: int = 1, like: torch.Tensor | None = None) -> torch.Tensor:
    """``R_z(-rotation_deg)`` as ``(B, 3, 3)``: the camera-frame rotation of a crop turned by
    ``rotation_deg`` counter-clockwise on screen."""
    like = like if like is not None else torch.zeros(1, dtype=torch.float64)
    angle = torch.deg2rad(_per_row(rotation_deg, batch, like, like.dtype))
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    # R_z(-a) = [[cos a, sin a, 0], [-sin a, cos a, 0], [0, 0, 1]]
    return torch.stack([cos, sin, zero, -sin, cos, zero, zero, zero, one], -1).view(-1, 3, 3)


def _rotate_orientation(pose: torch.Tensor, rotation: torch.Tensor, turned: torch.Tensor) -> torch.Tensor:
    """``R @ G`` on the global orientation of the rows that are ``turned`` (others untouched,
    so an unrotated view keeps the stored axis-angle bit for bit)."""
    rotated = matrix_to_axis_angle(rotation @ axis_angle_to_matrix(pose[:, :3]))
    out = pose.clone()
    out[:, :3] = torch.where(turned[:, None], rotated, pose[:, :3])
    return out


def _mirror(values: torch.Tensor, flip: torch.Tensor, fn) -> torch.Tensor:
    return torch.where(flip[:, None], fn(values), values)


def _mirror_x(transl: torch.Tensor) -> torch.Tensor:
    return transl * transl.new_tensor([-1.0, 1.0, 1.0])


def _transform(pose, transl, flip, rotation_deg, root, inverse: bool):
    was_numpy = not isinstance(pose, torch.Tensor)
    pose_t = _as_tensor(pose)
    if pose_t.ndim != 2 or pose_t.shape[1] != NUM_POSE:
        raise BadInputError(f"pose must be (B, 72) axis-angle, got shape {tuple(pose_t.shape)}")
    batch = pose_t.shape[0]
    flip_t = _per_row(flip, batch, pose_t, torch.bool)
    rotation = view_rotation(rotation_deg, batch, pose_t)
    turned = _per_row(rotation_deg, batch, pose_t, pose_t.dtype) != 0
    transl_t = None
    if transl is not None:
        transl_t = _as_tensor(transl, pose_t).to(pose_t.dtype)
        if root is None:
            root_t = torch.zeros_like(transl_t)
        else:
            root_t = _as_tensor(root, pose_t).to(pose_t.dtype).expand_as(transl_t)
    if not inverse:  # canonical -> view: rotate, then mirror
        out_pose = _mirror(_rotate_orientation(pose_t, rotation, turned), flip_t, flip_pose)
        if transl_t is not None:
            moved = torch.einsum("bij,bj->bi", rotation, transl_t + root_t)
            transl_t = _mirror(moved, flip_t, _mirror_x) - root_t
    else:  # view -> canonical: un-mirror, then rotate back
        out_pose = _rotate_orientation(_mirror(pose_t, flip_t, flip_pose), rotation.transpose(1, 2), turned)
        if transl_t is not None:
            unmirrored = _mirror(transl_t + root_t, flip_t, _mirror_x)
            transl_t = torch.einsum("bji,bj->bi", rotation, unmirrored) - root_t
    if was_numpy:
        out_pose = out_pose.numpy()
        transl_t = transl_t.numpy() if transl_t is not None else None
    return out_pose if transl is None else (out_pose, transl_t)


def to_view(pose, flip=False, rotation_deg=0.0, transl=None, root=None):
    """Canonical -> augmented view.

    Args:
        pose: ``(B, 72)`` axis-angle in the canonical frame.
        flip: bool or ``(B,)``: the view is mirrored.
        rotation_deg: float or ``(B,)``: the view's crop rotation in degrees.
        transl: optional ``(B, 3)`` crop-camera translation in the canonical frame.
        root: optional ``(B, 3)`` rest root joint (:func:`root_joint`) for exact translations.

    Returns:
        the pose ``(B, 72)`` in the view, or ``(pose, transl)`` when ``transl`` is given.
    """
    return _transform(pose, transl, flip, rotation_deg, root, inverse=False)


def to_canonical(pose, flip=False, rotation_deg=0.0, transl=None, root=None):
    """Augmented view -> canonical: the exact inverse of :func:`to_view` (same arguments)."""
    return _transform(pose, transl, flip, rotation_deg, root, inverse=True)


def root_joint(body_model, betas) -> torch.Tensor:
    """The rest-pose root joint ``(B, 3)`` of a body model for the given betas: the point the
    global orientation turns the body about."""
    betas_t = _as_tensor(betas).to(body_model.fast.joint_template)
    fast = body_model.fast
    num = min(betas_t.shape[1], fast.joint_shapedirs.shape[-1])
    shape_offset = torch.einsum("cs,bs->bc", fast.joint_shapedirs[0, :, :num], betas_t[:, :num])
    return fast.joint_template[0] + shape_offset
