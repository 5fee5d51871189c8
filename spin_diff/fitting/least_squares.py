"""SMPLify's terms as weighted least squares: normal equations in closed form, per sample.

For ``optimizer: lm`` (:mod:`spin_diff.fitting.lm`). A stage's free parameters are one flat
vector per sample, ``x`` (B, P), the stage's groups in the order of ``stage.optimize``. Each
term of the stage contributes to the per-sample normal equations

    g = d f / d x  (B, P)        and        H ~ d^2 f / d x^2  (B, P, P)

where ``f = sum_t weight_t * term_t``. Order of operations, once per iteration:

1. The joints and their Jacobian with respect to ``x``: the whole closed-form kinematic-chain
   Jacobian (:meth:`JointsModel.joints_with_jacobian`) when the body pose or shape is free;
   when only the global orientation and translation are (SPIN's camera stage) the body is
   rigid, and a change ``da`` of the orientation turns a point of coefficient sum ``s`` about
   the root by ``w x (X - s p_root)``, ``w = J_l(a) da``: one joints forward, no chain.
2. The camera: ``X = joints + transl``, ``u = f_x X / Z + c_x`` (the fit's
   :func:`perspective_projection`), so ``du/dX = f_x / Z [1, 0, -X / Z]``.
3. Each term's form (:data:`LEAST_SQUARES_FORMS`):
   - robust reprojection (GMoF): iteratively reweighted least squares. With the weight
     ``w = sigma^4 / (sigma^2 + e^2)^2`` frozen at the current residual ``e``, ``w e^2`` has the
     GMoF's exact gradient; its Gauss-Newton Hessian ``2 w J^T J`` is positive semi-definite;
   - the GMM's active component (the max-mixture's argmin), the shape, depth and pose-anchor
     terms: quadratics, so their gradient and Hessian are exact;
   - the angle prior ``sum exp(2 s theta)``: diagonal, exact (``4 exp(2 s theta)``);
   - the orientation and depth anchors: Gauss-Newton on their residuals (the rotation matrix's
     difference, by ``dR = [J_l(a) da]_x R``; the relative joint depths, linear in the joints).
4. Everything is accumulated in float64 (the normal equations), from float32 Jacobians.

A term with no form here (the diffusion term, whose gradient is a network's score, or a
user's registered term) has no least-squares form: :func:`has_least_squares_form` says so and
the solver falls back to exact per-sample Hessians by autograd for that stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from spin_diff.body import joints as J
from spin_diff.fitting.terms import FitState, TermContext
from spin_diff.geometry.rotations import axis_angle_to_matrix, skew_matrix, so3_left_jacobian
from spin_diff.priors.angle import ANGLE_PRIOR_INDICES, ANGLE_PRIOR_SIGNS

__all__ = [
    "LEAST_SQUARES_FORMS", "Linearisation", "camera_jacobian", "has_least_squares_form", "joints_and_jacobian",
    "normal_equations", "rigid_joints_jacobian",
]

# SMPL's pose: the global orientation's 3 numbers, then the body's 69.
_ORIENT = slice(0, 3)
_BODY = slice(3, 72)


@dataclass
class Linearisation:
    """A stage's state at ``x`` and the Jacobians its terms' forms read. B batch, P free numbers.

    ``columns`` maps each free group (``global_orient``, ``body_pose``, ``betas``, ``transl``)
    to its slice of ``x``."""

    state: FitState
    columns: dict[str, slice]
    projected_jacobian: torch.Tensor  # (B, 49, 2, P) d projected / d x
    size: int
    joints_jacobian: torch.Tensor | None = None  # (B, 49, 3, P) d (joints + transl) / d x

    def group(self, name: str) -> slice | None:
        return self.columns.get(name)


Form = Callable[[Linearisation, float, TermContext, torch.Tensor, torch.Tensor], None]
LEAST_SQUARES_FORMS: dict[str, Form] = {}


def _form(name: str):
    def register(function: Form) -> Form:
        LEAST_SQUARES_FORMS[name] = function
        return function

    return register


def has_least_squares_form(term_names) -> bool:
    return all(name in LEAST_SQUARES_FORMS for name in term_names)


# --------------------------------------------------------------------------- Jacobians
def rigid_joints_jacobian(joints: torch.Tensor, root: torch.Tensor, row_sums: torch.Tensor, global_orient: torch.Tensor):
    """d joints / d global_orient (B, N, 3, 3) of a rigid body turned about its root.

    joints (B, N, 3) posed; root (B, 3) the root joint; row_sums (N,) each joint's coefficient
    sum over the skinned points (1 for a skeleton joint or a vertex); global_orient (B, 3)."""
    axes = so3_left_jacobian(global_orient).transpose(-1, -2)  # (B, 3c, 3): column c's world axis
    lever = joints - row_sums[None, :, None] * root[:, None]  # (B, N, 3)
    return torch.linalg.cross(axes[:, None], lever[:, :, None, :]).transpose(-1, -2)  # (B, N, 3, 3c)


def camera_jacobian(points: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
    """d pixels / d camera-frame points (B, N, 2, 3) of a pinhole; points (B, N, 3), focal
    (B,) or (B, 2) as (f_x, f_y)."""
    if focal.ndim == 1:
        focal = focal[:, None].expand(-1, 2)
    inv_z = 1.0 / points[..., 2]
    fx, fy = focal[:, 0, None] * inv_z, focal[:, 1, None] * inv_z  # (B, N)
    zero = torch.zeros_like(fx)
    row_u = torch.stack([fx, zero, -fx * points[..., 0] * inv_z], -1)
    row_v = torch.stack([zero, fy, -fy * points[..., 1] * inv_z], -1)
    return torch.stack([row_u, row_v], -2)


# --------------------------------------------------------------------------- the normal equations
def normal_equations(lin: Linearisation, weighted_terms, context: TermContext):
    """(gradient (B, P), Gauss-Newton Hessian (B, P, P)) in float64 of ``sum weight * term``
    over ``weighted_terms`` [(name, weight)], each by its :data:`LEAST_SQUARES_FORMS` entry."""
    batch = lin.state.joints.shape[0]
    device = lin.state.joints.device
    grad = torch.zeros(batch, lin.size, dtype=torch.float64, device=device)
    hess = torch.zeros(batch, lin.size, lin.size, dtype=torch.float64, device=device)
    for name, weight in weighted_terms:
        LEAST_SQUARES_FORMS[name](lin, float(weight), context, grad, hess)
    return grad, hess


def _add_residuals(lin: Linearisation, weight: torch.Tensor, residual: torch.Tensor, grad, hess) -> None:
    """A weighted squared-pixel term ``sum_j weight_j |residual_j|^2`` (weights (B, 49) or
    (B, 49, 2), residuals (B, 49, 2)) through the projection's Jacobian. The products run in
    the Jacobian's dtype (one batched matmul); the sums land in the float64 equations."""
    if weight.ndim == 2:
        weight = weight[..., None].expand_as(residual)
    batch, size = residual.shape[0], lin.size
    jac = lin.projected_jacobian.reshape(batch, -1, size)  # (B, 98, P)
    root = weight.reshape(batch, -1, 1).clamp_min(0).sqrt()
    scaled = root * jac
    grad += 2.0 * torch.bmm(scaled.transpose(1, 2), root * residual.reshape(batch, -1, 1))[..., 0].double()
    hess += 2.0 * torch.bmm(scaled.transpose(1, 2), scaled).double()


def _gmof_weights(residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """The IRLS weight of the Geman-McClure robustifier, elementwise: sigma^4 / (sigma^2 + e^2)^2,
    so that ``w e^2`` has GMoF's gradient at ``e``."""
    return sigma**4 / (sigma**2 + residual**2) ** 2


def _reprojection_form(confidence_weight: Callable[[FitState, TermContext], torch.Tensor]) -> Form:
    def form(lin, weight, context, grad, hess) -> None:
        s = lin.state
        residual = s.projected - s.keypoints
        per_point = weight * confidence_weight(s, context)[..., None] * _gmof_weights(residual, context.sigma)
        _add_residuals(lin, per_point, residual, grad, hess)

    return form


_form("reprojection")(_reprojection_form(lambda s, c: s.confidence**2))
_form("reprojection_conf")(_reprojection_form(lambda s, c: s.confidence))
_form("reprojection_thresholded")(
    _reprojection_form(lambda s, c: (s.confidence > float(c.extras.get("confidence_threshold", 0.1))).to(s.confidence.dtype))
)

_TORSO_OP = J.joint_indices(J.TORSO_OPENPOSE)
_TORSO_GT = J.joint_indices(J.TORSO_GT)


@_form("torso_reprojection")
def _torso(lin, weight, context, grad, hess) -> None:
    s = lin.state
    use_op = (s.raw_confidence[:, _TORSO_OP] > 0).all(dim=1, keepdim=True).to(s.projected.dtype)
    mask = torch.zeros_like(s.raw_confidence)
    mask[:, _TORSO_OP] = use_op
    mask[:, _TORSO_GT] = (1.0 - use_op) * (s.raw_confidence[:, _TORSO_GT] > 0).to(mask.dtype)
    _add_residuals(lin, weight * mask, s.projected - s.keypoints, grad, hess)


def _add_quadratic(grad, hess, columns: slice | None, curvature, gradient) -> None:
    """Add a term's exact gradient (B, n) and Hessian ((B, n, n) or its diagonal (B, n)) on
    one group's columns (nothing when the group is not free in this stage)."""
    if columns is None:
        return
    grad[:, columns] += gradient.double()
    block = hess[:, columns, columns]
    if curvature.ndim == gradient.ndim:
        block.diagonal(dim1=1, dim2=2).add_(curvature.double())
    else:
        block.add_(curvature.double())


@_form("camera_depth")
def _camera_depth(lin, weight, context, grad, hess) -> None:
    s, columns = lin.state, lin.group("transl")
    if columns is None:
        return
    depth = slice(columns.start + 2, columns.start + 3)
    offset = (s.transl[:, 2:3] - s.init_transl[:, 2:3]).double()
    _add_quadratic(grad, hess, depth, torch.full_like(offset, 2.0 * weight), 2.0 * weight * offset)


@_form("shape")
def _shape(lin, weight, context, grad, hess) -> None:
    betas = lin.state.betas.double()
    _add_quadratic(grad, hess, lin.group("betas"), torch.full_like(betas, 2.0 * weight), 2.0 * weight * betas)


@_form("pose_anchor")
def _pose_anchor(lin, weight, context, grad, hess) -> None:
    s = lin.state
    scale = 4.0 * weight * (torch.ones_like(s.body_pose[:, :1]) if s.anchor_mask is None else s.anchor_mask[:, None])
    offset = (s.body_pose - s.init_body_pose).double()
    _add_quadratic(grad, hess, lin.group("body_pose"), scale.double().expand_as(offset), scale.double() * offset)


@_form("gmm_pose")
def _gmm(lin, weight, context, grad, hess) -> None:
    """The max-mixture's active component k: ``0.5 (theta - mu_k)^T P_k (theta - mu_k) + c_k``."""
    columns = lin.group("body_pose")
    if columns is None:
        return
    gmm, pose = context.gmm, lin.state.body_pose
    active = gmm.component_energies(pose).argmin(1)  # (B,)
    precision = gmm.precisions.to(pose.dtype)[active]  # (B, 69, 69)
    offset = pose - gmm.means.to(pose.dtype)[active]
    _add_quadratic(grad, hess, columns, weight * precision, weight * torch.einsum("bij,bj->bi", precision, offset))


@_form("angle")
def _angle(lin, weight, context, grad, hess) -> None:
    columns = lin.group("body_pose")
    if columns is None:
        return
    pose = lin.state.body_pose.double()
    gradient = torch.zeros_like(pose)
    curvature = torch.zeros_like(pose)
    for index, sign in zip(ANGLE_PRIOR_INDICES, ANGLE_PRIOR_SIGNS):
        value = torch.exp(2.0 * sign * pose[:, index])
        gradient[:, index] = 2.0 * sign * weight * value
        curvature[:, index] = 4.0 * weight * value
    _add_quadratic(grad, hess, columns, curvature, gradient)


def _anchor_scale(state: FitState, weight: float) -> torch.Tensor:
    """(B,) weight times the anchor mask (0 where the start carries no information)."""
    ones = torch.ones_like(state.global_orient[:, 0])
    return weight * (ones if state.anchor_mask is None else state.anchor_mask.to(ones))


@_form("orientation_anchor")
def _orientation_anchor(lin, weight, context, grad, hess) -> None:
    """``||R - R_start||_F^2``: residuals R - R_start (9), d R / d a_c = [J_l(a) e_c]_x R."""
    columns, s = lin.group("global_orient"), lin.state
    if columns is None:
        return
    rotation = axis_angle_to_matrix(s.global_orient)
    residual = (rotation - axis_angle_to_matrix(s.init_global_orient)).flatten(1)  # (B, 9)
    axes = so3_left_jacobian(s.global_orient).transpose(-1, -2)  # (B, 3c, 3)
    jac = (skew_matrix(axes) @ rotation[:, None]).flatten(2).transpose(1, 2)  # (B, 9, 3c)
    scale = _anchor_scale(s, weight).double()[:, None]
    jac, residual = jac.double(), residual.double()
    grad[:, columns] += 2.0 * scale * torch.einsum("brc,br->bc", jac, residual)
    hess[:, columns, columns] += 2.0 * scale[..., None] * torch.einsum("brc,brd->bcd", jac, jac)


_SMPL_JOINTS = slice(J.NUM_OPENPOSE_JOINTS, J.NUM_KEYPOINTS)


@_form("depth_anchor")
def _depth_anchor(lin, weight, context, grad, hess) -> None:
    """Each GT joint's depth relative to the body's mean depth, held near the start's: linear
    in the joints, so its residuals' Jacobian is the joints' depth rows minus their mean."""
    s = lin.state
    depth = s.joints[:, _SMPL_JOINTS, 2]
    start = s.init_joints[:, _SMPL_JOINTS, 2]
    residual = ((depth - depth.mean(1, keepdim=True)) - (start - start.mean(1, keepdim=True))).double()
    rows = lin.joints_jacobian[:, _SMPL_JOINTS, 2]  # (B, 24, P)
    jac = (rows - rows.mean(1, keepdim=True)).double()
    scale = _anchor_scale(s, weight).double()[:, None]
    grad += 2.0 * scale * torch.einsum("bkp,bk->bp", jac, residual)
    hess += 2.0 * scale[..., None] * torch.einsum("bkp,bkq->bpq", jac, jac)


# --------------------------------------------------------------------------- linearising a stage
def full_pose(global_orient: torch.Tensor, body_pose: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3) axis-angle from the two parts."""
    return torch.cat([global_orient, body_pose], 1).view(global_orient.shape[0], -1, 3)


def joints_and_jacobian(body, params: dict, columns: dict[str, slice], size: int):
    """The 49 joints (B, 49, 3) and d(joints + transl)/dx (B, 49, 3, P) at ``params`` (the
    stage's full parameter dict) for the free ``columns``."""
    go, bp, betas = params["global_orient"], params["body_pose"], params["betas"]
    batch = go.shape[0]
    jac = go.new_zeros(batch, J.NUM_KEYPOINTS, 3, size)
    if "body_pose" in columns or "betas" in columns:
        out = body.fast.joints_with_jacobian(full_pose(go, bp), betas)
        joints = out.joints
        pose_parts = {"global_orient": out.pose[..., _ORIENT], "body_pose": out.pose[..., _BODY], "betas": out.betas}
    else:
        rest = body.joints(axis_angle_to_matrix(full_pose(go, bp)), betas)
        joints = rest.joints
        pose_parts = {"global_orient": rigid_joints_jacobian(joints, rest.skeleton[:, 0], _row_sums(body), go)}
    for name, part in pose_parts.items():
        if name in columns:
            jac[..., columns[name]] = part
    if "transl" in columns:
        jac[..., columns["transl"]] = torch.eye(3, dtype=jac.dtype, device=jac.device)
    return joints, jac


def _row_sums(body) -> torch.Tensor:
    """Each of the 49 joints' coefficient sum over the points it is made of (1 for a skeleton
    joint or a picked vertex; the regressor row's sum for a regressed extra joint)."""
    fast = body.fast
    ones = torch.ones(len(fast.parents), dtype=fast.surface_row_sums.dtype, device=fast.surface_row_sums.device)
    return torch.cat([ones, fast.surface_row_sums])[fast.joint_map]
