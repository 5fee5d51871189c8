"""Rotation representations and conversions between them.

Every function is a pure, differentiable function on torch tensors. Inputs may carry any
number of leading dimensions ``(...)``; the trailing dimensions hold the rotation. They work
in float32 and float64, on CPU and CUDA, without Python loops over samples and without
host synchronisation, so they can sit inside a training step or an optimisation loop.

Representations
---------------
- Axis-angle ``(..., 3)``: direction is the rotation axis, norm the angle in radians.
- Rotation matrix ``(..., 3, 3)``: acts on column vectors, ``x' = R @ x``.
- Quaternion ``(..., 4)``: scalar first, ``(w, x, y, z)``. Outputs are unit quaternions
  with ``w >= 0`` (``q`` and ``-q`` are the same rotation; the sign is fixed so that
  conversions are deterministic).
- 6D ``(..., 6)``: two columns of the rotation matrix, see below.

The SPIN 6D layout (the one convention of this project)
-------------------------------------------------------
A rotation matrix ``R`` is stored as its first two columns, read as a ``(3, 2)`` row-major
array and flattened::

    x = [R00, R01, R10, R11, R20, R21]

i.e. the two columns interleaved. This is what SPIN's regressor outputs (``view(-1, 3, 2)``)
and what ``smpl_mean_params.npz`` (key ``pose``, 24 x 6 = 144 numbers) holds. Encoding is
``R[..., :, :2].reshape(..., 6)``; decoding is Gram-Schmidt on the two columns
(:func:`rot6d_to_matrix`), so any 6 numbers with non-parallel columns decode to a proper
rotation.

ScoreHMR (and ProHMR, HMR 2.0) store the same two columns one after the other instead,
``[R00, R10, R20, R01, R11, R21]`` ("columns layout"). The numbers are the same, only
their order differs; use :func:`rot6d_columns_to_spin` when reading checkpoints or data
written in that layout, and :func:`rot6d_spin_to_columns` to write it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "yaw_matrix",
    "facing_yaw",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rot6d_to_matrix",
    "matrix_to_rot6d",
    "rot6d_spin_to_columns",
    "rot6d_columns_to_spin",
    "axis_angle_to_rot6d",
    "rot6d_to_axis_angle",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "quaternion_to_axis_angle",
    "geodesic_angle",
    "skew_matrix",
    "so3_left_jacobian",
]

# Below this squared angle the trigonometric ratios are evaluated by their Taylor series.
# At theta = 1e-2 the first omitted term is ~theta^6 / 5040 ~ 2e-16, below float64 precision,
# and the closed forms used above it have no cancellation, so both branches are exact to
# working precision in float32 and float64.
_SMALL_ANGLE_SQ = 1e-4


def skew_matrix(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix ``[v]_x`` with ``[v]_x @ u == cross(v, u)``.

    Args:
        v: ``(..., 3)``.

    Returns:
        ``(..., 3, 3)``.
    """
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).unflatten(-1, (3, 3))


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle vectors to rotation matrices.

    Uses ``R = cos(theta) I + sinc(theta) [a]_x + (1 - cos(theta)) / theta^2 a a^T`` written
    in terms of the unnormalised vector ``a``, so the axis is never divided by the angle.
    The ratios are taken from their Taylor series for small angles, which keeps the value
    exact and the gradient finite and correct at and near zero (no epsilon is added to
    the angle, so nothing is biased).

    Args:
        axis_angle: ``(..., 3)`` axis times angle in radians.

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    theta_sq = (axis_angle * axis_angle).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    # torch.where differentiates both branches; feeding the closed form a harmless value
    # where it is not used keeps sqrt(0) from putting NaN into the gradient.
    theta_sq_safe = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = torch.sqrt(theta_sq_safe)
    half_sin = torch.sin(0.5 * theta)
    # (1 - cos) written as 2 sin^2(theta/2) avoids cancellation for moderate angles.
    sinc_large = torch.sin(theta) / theta
    versine_large = 2.0 * half_sin * half_sin / theta_sq_safe
    cos_large = torch.cos(theta)

    t2 = theta_sq
    t4 = theta_sq * theta_sq
    sinc_small = 1.0 - t2 / 6.0 + t4 / 120.0
    versine_small = 0.5 - t2 / 24.0 + t4 / 720.0
    cos_small = 1.0 - t2 / 2.0 + t4 / 24.0

    sinc = torch.where(small, sinc_small, sinc_large)[..., None, None]
    versine = torch.where(small, versine_small, versine_large)[..., None, None]
    cos = torch.where(small, cos_small, cos_large)[..., None, None]

    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    outer = axis_angle[..., :, None] * axis_angle[..., None, :]
    return cos * eye + sinc * skew_matrix(axis_angle) + versine * outer


def so3_left_jacobian(axis_angle: torch.Tensor) -> torch.Tensor:
    """The left Jacobian of the exponential map: ``d exp(a) = [J_l(a) da]_x exp(a)``.

    ``J_l(a) = I + (1 - cos t) / t^2 [a]_x + (t - sin t) / t^3 [a]_x^2`` with ``t = |a|``: a
    change ``da`` of an axis-angle vector turns its rotation by the small rotation
    ``J_l(a) da`` on the left (in the frame the rotation maps into). Taylor series near zero,
    as in :func:`axis_angle_to_matrix`.

    Args:
        axis_angle: ``(..., 3)``.

    Returns:
        ``(..., 3, 3)``.
    """
    theta_sq = (axis_angle * axis_angle).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    theta_sq_safe = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = torch.sqrt(theta_sq_safe)
    half_sin = torch.sin(0.5 * theta)
    first_large = 2.0 * half_sin * half_sin / theta_sq_safe
    second_large = (theta - torch.sin(theta)) / (theta_sq_safe * theta)
    first = torch.where(small, 0.5 - theta_sq / 24.0 + theta_sq * theta_sq / 720.0, first_large)
    second = torch.where(small, 1.0 / 6.0 - theta_sq / 120.0 + theta_sq * theta_sq / 5040.0, second_large)
    skew = skew_matrix(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + first[..., None, None] * skew + second[..., None, None] * (skew @ skew)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(w, x, y, z)`` to rotation matrices.

    The input is normalised first, so any non-zero quaternion is accepted.

    Args:
        quaternion: ``(..., 4)`` scalar-first quaternions.

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    w, x, y, z = F.normalize(quaternion, dim=-1).unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    wx, wy, wz = w * x, w * y, w * z
    xy, xz, yz = x * y, x * z, y * z
    entries = [
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ]
    return torch.stack(entries, dim=-1).unflatten(-1, (3, 3))


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Each of the four components can be read from the diagonal (``4 q_i^2``) and the other
    three from the off-diagonal sums and differences divided by ``4 q_i``. Dividing by the
    largest ``|q_i|`` (at least 1/2 for a rotation) is well conditioned for every rotation,
    including angles near 0 and near pi (Shepperd's method).

    Args:
        matrix: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(..., 4)`` unit quaternions, scalar first, ``w >= 0``.
    """
    m = matrix.flatten(-2)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    four_q_sq = torch.stack(
        [
            1 + m00 + m11 + m22,
            1 + m00 - m11 - m22,
            1 - m00 + m11 - m22,
            1 - m00 - m11 + m22,
        ],
        dim=-1,
    )
    # Row i is 4 q_i * q, exact for a rotation matrix.
    numerators = torch.stack(
        [
            torch.stack([four_q_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, four_q_sq[..., 1], m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, four_q_sq[..., 2], m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, four_q_sq[..., 3]], dim=-1),
        ],
        dim=-2,
    )
    # The four 4 q_i^2 sum to 4, so the selected one is >= 1; the clamp only touches rows
    # that are discarded, keeping their (unused) gradients finite.
    four_abs_q = 2.0 * torch.sqrt(four_q_sq.clamp_min(0.1))
    candidates = numerators / four_abs_q[..., None]
    best = four_q_sq.argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, 4)
    quaternion = torch.gather(candidates, -2, index).squeeze(-2)
    quaternion = F.normalize(quaternion, dim=-1)
    return torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(w, x, y, z)`` to axis-angle with angle in ``[0, pi]``.

    Args:
        quaternion: ``(..., 4)`` scalar-first quaternions (need not be unit or have
            ``w >= 0``).

    Returns:
        ``(..., 3)`` axis-angle vectors.
    """
    quaternion = F.normalize(quaternion, dim=-1)
    # q and -q are the same rotation; w >= 0 picks the representative with angle <= pi.
    quaternion = torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)
    w = quaternion[..., 0]
    vector = quaternion[..., 1:]
    sin_half_sq = (vector * vector).sum(-1)
    small = sin_half_sq < 1e-6
    sin_half = torch.sqrt(torch.where(small, torch.ones_like(sin_half_sq), sin_half_sq))
    # atan2 stays accurate over the whole range, unlike acos(w) near 0 or asin near pi.
    angle_over_sin_large = 2.0 * torch.atan2(sin_half, w) / sin_half
    # Near zero angle w ~ 1: 2 atan(u)/sin_half = (2/w)(1 - u^2/3 + u^4/5), u = sin_half/w.
    u_sq = sin_half_sq / (w * w)
    angle_over_sin_small = (2.0 / w) * (1.0 - u_sq / 3.0 + u_sq * u_sq / 5.0)
    angle_over_sin = torch.where(small, angle_over_sin_small, angle_over_sin_large)
    return vector * angle_over_sin[..., None]


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to axis-angle vectors with angle in ``[0, pi]``.

    Goes through the quaternion, which is well conditioned everywhere; reading the angle
    from ``acos((trace - 1) / 2)`` would lose precision near 0 and near pi. At exactly pi
    the sign of the axis is arbitrary (both are the same rotation).

    Args:
        matrix: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(..., 3)`` axis-angle vectors.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def canonical_axis_angle(axis_angle: torch.Tensor, tolerance: float = 1e-3) -> torch.Tensor:
    """One axis-angle per rotation near a half turn, so equal rotations start equal fits.

    At an angle of pi, ``pi * n`` and ``-pi * n`` are the same rotation, and float round-off
    decides which one :func:`matrix_to_axis_angle` returns (SPIN's mean pose has a global
    orientation of exactly pi). A vector within ``tolerance`` of pi whose axis has a negative
    largest component is replaced by ``(angle - 2 pi) * axis``: the same rotation, written
    about the flipped axis (angle slightly above pi). Other vectors are unchanged.

    Args:
        axis_angle: ``(..., 3)``.

    Returns:
        ``(..., 3)``, the same rotations.
    """
    angle = axis_angle.norm(dim=-1, keepdim=True)
    largest = axis_angle.gather(-1, axis_angle.abs().argmax(-1, keepdim=True))
    flip = (angle > torch.pi - tolerance) & (largest < 0)
    scale = (angle - 2.0 * torch.pi) / angle.clamp_min(1.0)
    return torch.where(flip, axis_angle * scale, axis_angle)


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """Decode the SPIN 6D layout to rotation matrices by Gram-Schmidt.

    ``rot6d`` is read as a ``(3, 2)`` row-major array whose columns are ``a1, a2``;
    ``b1 = a1/|a1|``, ``b2 = normalize(a2 - <b1, a2> b1)``, ``b3 = b1 x b2`` and
    ``R = [b1 b2 b3]`` (as columns). The result is orthonormal with determinant +1 for any
    input whose two columns are not parallel.

    Args:
        rot6d: ``(..., 6)`` in the SPIN 6D layout ``[R00, R01, R10, R11, R20, R21]``.

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    columns = rot6d.unflatten(-1, (3, 2))
    a1 = columns[..., 0]
    a2 = columns[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """Encode rotation matrices in the SPIN 6D layout.

    Args:
        matrix: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(..., 6)`` as ``[R00, R01, R10, R11, R20, R21]``.
    """
    return matrix[..., :, :2].reshape(*matrix.shape[:-2], 6)


def rot6d_spin_to_columns(rot6d: torch.Tensor) -> torch.Tensor:
    """Reorder the SPIN 6D layout to the columns layout of ScoreHMR / ProHMR / HMR 2.0.

    Args:
        rot6d: ``(..., 6)`` as ``[R00, R01, R10, R11, R20, R21]``.

    Returns:
        ``(..., 6)`` as ``[R00, R10, R20, R01, R11, R21]``.
    """
    return rot6d.unflatten(-1, (3, 2)).transpose(-1, -2).flatten(-2)


def rot6d_columns_to_spin(rot6d: torch.Tensor) -> torch.Tensor:
    """Reorder the columns layout (ScoreHMR / ProHMR / HMR 2.0) to the SPIN 6D layout.

    Args:
        rot6d: ``(..., 6)`` as ``[R00, R10, R20, R01, R11, R21]``.

    Returns:
        ``(..., 6)`` as ``[R00, R01, R10, R11, R20, R21]``.
    """
    return rot6d.unflatten(-1, (2, 3)).transpose(-1, -2).flatten(-2)


def axis_angle_to_rot6d(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle to the SPIN 6D layout.

    Args:
        axis_angle: ``(..., 3)``.

    Returns:
        ``(..., 6)``.
    """
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(rot6d: torch.Tensor) -> torch.Tensor:
    """SPIN 6D layout to axis-angle (angle in ``[0, pi]``).

    Args:
        rot6d: ``(..., 6)``.

    Returns:
        ``(..., 3)``.
    """
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))


def geodesic_angle(matrix1: torch.Tensor, matrix2: torch.Tensor) -> torch.Tensor:
    """Angle in radians of the relative rotation ``R1^T R2``, in ``[0, pi]``.

    Computed as ``atan2(2 sin(theta), 2 cos(theta))`` from the skew part and the trace,
    which stays accurate near 0 and near pi where ``acos`` of the trace does not.

    Args:
        matrix1: ``(..., 3, 3)``.
        matrix2: ``(..., 3, 3)``, broadcastable with ``matrix1``.

    Returns:
        ``(...)`` angles in radians.
    """
    relative = matrix1.transpose(-1, -2) @ matrix2
    skew = torch.stack(
        [
            relative[..., 2, 1] - relative[..., 1, 2],
            relative[..., 0, 2] - relative[..., 2, 0],
            relative[..., 1, 0] - relative[..., 0, 1],
        ],
        dim=-1,
    )
    two_sin_sq = (skew * skew).sum(-1)
    nonzero = two_sin_sq > 0
    # Norm with a zero (sub)gradient at exactly the identity instead of NaN.
    two_sin = torch.where(
        nonzero, torch.sqrt(torch.where(nonzero, two_sin_sq, torch.ones_like(two_sin_sq))), 0.0
    )
    two_cos = relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0
    return torch.atan2(two_sin, two_cos)


def yaw_matrix(angle: torch.Tensor) -> torch.Tensor:
    """Rotations about the camera's y axis by ``angle`` (B,) radians -> (B, 3, 3)."""
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([c, zero, s, zero, one, zero, -s, zero, c], -1).unflatten(-1, (3, 3))


def facing_yaw(orient: torch.Tensor) -> torch.Tensor:
    """Azimuth about the camera y axis of the body's forward axis: (B, 3, 3) -> (B,) radians.

    ``R_yaw(-a) @ orient`` has its forward axis (third column) in the camera's y-z plane,
    pointing toward the camera (negative z). The azimuth is undefined only for a body whose
    forward axis is the camera's vertical (lying face up or down, seen from the side); there
    it is 0 and its gradient is zeroed.
    """
    forward = orient[..., :, 2]
    fx, fz = forward[..., 0], forward[..., 2]
    degenerate = fx * fx + fz * fz < 1e-12
    safe_fz = torch.where(degenerate, -torch.ones_like(fz), fz)
    return torch.atan2(-torch.where(degenerate, torch.zeros_like(fx), fx), -safe_fz)
