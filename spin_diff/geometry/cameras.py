"""The camera convention of spin_diff, and the maps between its coordinate frames.

Convention
----------
- Camera frame as in OpenCV: x to the right, y down, z forward (into the scene), metres.
- A body is placed in the camera frame by ``X_cam = R X + t``. By default there is no
  rotation (``R = I``): the network predicts only a translation ``t``, and the body's own
  global orientation carries the rotation. Bodies therefore face the camera with their
  global orientation rotated 180 degrees about x (SMPL's canonical frame has y up and
  faces +z), as in SPIN.
- Pinhole projection to pixels: ``u = f_x X/Z + c_x``, ``v = f_y Y/Z + c_y``. Pixel
  coordinates have their origin at the top-left corner of the image, x to the right,
  y down. Points must be in front of the camera (``Z > 0``); nothing is clamped.
- Crop camera: the network sees a ``CROP_SIZE`` x ``CROP_SIZE`` crop with focal length
  ``FOCAL_LENGTH`` pixels and the principal point at the crop centre.
- Weak-perspective camera ``[s, tx, ty]``: the regressor's output. ``s`` is the scale of
  the body in normalised crop coordinates ([-1, 1] across the crop); it is turned into a
  translation with depth ``tz = 2 f / (crop_size * s)``, at which the perspective camera
  gives the body the same image size.
- Crops follow SPIN: a square box of side ``200 * scale`` pixels centred at ``center`` in
  the full image, resized to the crop, optionally rotated about the crop centre.
- Full-image camera (HMR 2.0 / ScoreHMR convention): principal point at the image centre;
  the crop camera's translation is shifted by the box's offset from the image centre and
  its depth rescaled by box size (:func:`crop_to_full_translation`).
"""

from __future__ import annotations

import torch

from spin_diff.constants import CROP_SIZE, FOCAL_LENGTH

__all__ = [
    "perspective_projection",
    "weak_perspective_to_translation",
    "translation_to_weak_perspective",
    "crop_to_full_translation",
    "full_to_crop_translation",
    "image_keypoints_to_crop",
    "crop_keypoints_to_image",
    "estimate_translation",
]

# SPIN's weak-perspective scale of the mean body (smpl_mean_params.npz, cam[0] ~ 0.9): the
# depth a camera falls back to when the keypoints cannot determine one.
_MEAN_WEAK_PERSPECTIVE_SCALE = 0.9

# Guards the weak-perspective depth against s = 0; kept at the value SPIN and HMR 2.0 use so
# translations agree with theirs bit for bit.
_SCALE_EPS = 1e-9

FocalLength = float | torch.Tensor


def default_depth(focal_length: FocalLength = FOCAL_LENGTH, crop_size: int = CROP_SIZE):
    """The camera depth of SPIN's mean body (weak-perspective scale 0.9) at this focal length:
    where a camera falls back to when keypoints cannot place it (about 49.6 m for the
    defaults). Float in, float out; a tensor in, a tensor out."""
    return 2.0 * focal_length / (crop_size * _MEAN_WEAK_PERSPECTIVE_SCALE)


def _focal_xy(focal_length: FocalLength, batch_size: int, like: torch.Tensor) -> torch.Tensor:
    """Focal length as a per-sample ``(f_x, f_y)`` pair.

    Args:
        focal_length: a float, a 0-d tensor, a ``(B,)`` tensor or a ``(B, 2)`` tensor.
        batch_size: ``B``.
        like: tensor whose dtype and device the result takes.

    Returns:
        ``(B, 2)``.
    """
    focal = torch.as_tensor(focal_length, dtype=like.dtype, device=like.device)
    if focal.ndim == 0:
        return focal.expand(batch_size, 2)
    if focal.ndim == 1:
        return focal[:, None].expand(batch_size, 2)
    if focal.ndim == 2 and focal.shape[-1] == 2:
        return focal.expand(batch_size, 2)
    raise ValueError(
        f"focal_length must be a float or a tensor of shape (B,) or (B, 2); got shape "
        f"{tuple(focal.shape)}"
    )


def _default_center(batch_size: int, like: torch.Tensor) -> torch.Tensor:
    """The crop centre ``(CROP_SIZE / 2, CROP_SIZE / 2)`` as ``(B, 2)``."""
    return like.new_full((batch_size, 2), CROP_SIZE / 2.0)


def perspective_projection(
    points: torch.Tensor,
    translation: torch.Tensor,
    focal_length: FocalLength = FOCAL_LENGTH,
    camera_center: torch.Tensor | None = None,
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Project body points to pixels with a pinhole camera.

    ``X_cam = rotation @ X + translation``; ``u = f_x X_cam/Z_cam + c_x``,
    ``v = f_y Y_cam/Z_cam + c_y``.

    Args:
        points: ``(B, N, 3)`` points in the body frame, metres.
        translation: ``(B, 3)`` camera translation, metres.
        focal_length: float, ``(B,)`` or ``(B, 2)`` as ``(f_x, f_y)``, pixels.
        camera_center: ``(B, 2)`` principal point in pixels; ``None`` for the crop centre
            ``(CROP_SIZE / 2, CROP_SIZE / 2)``.
        rotation: ``(B, 3, 3)`` camera rotation, or ``None`` for the identity.

    Returns:
        ``(B, N, 2)`` pixel coordinates.
    """
    batch_size = points.shape[0]
    if rotation is not None:
        points = torch.einsum("bij,bnj->bni", rotation, points)
    points = points + translation[:, None, :]
    focal = _focal_xy(focal_length, batch_size, points)
    if camera_center is None:
        camera_center = _default_center(batch_size, points)
    normalised = points[..., :2] / points[..., 2:3]
    return normalised * focal[:, None, :] + camera_center[:, None, :]


def weak_perspective_to_translation(
    cam: torch.Tensor,
    focal_length: FocalLength = FOCAL_LENGTH,
    crop_size: float = CROP_SIZE,
) -> torch.Tensor:
    """Weak-perspective crop camera ``[s, tx, ty]`` to a perspective translation.

    ``t = [tx, ty, 2 f / (crop_size * s + 1e-9)]``.

    Args:
        cam: ``(..., 3)`` as ``[s, tx, ty]``.
        focal_length: float or tensor broadcastable to ``(...)``, crop pixels.
        crop_size: side of the crop in pixels.

    Returns:
        ``(..., 3)`` translation in metres.
    """
    scale, tx, ty = cam.unbind(-1)
    tz = 2.0 * focal_length / (crop_size * scale + _SCALE_EPS)
    return torch.stack([tx, ty, tz], dim=-1)


def translation_to_weak_perspective(
    translation: torch.Tensor,
    focal_length: FocalLength = FOCAL_LENGTH,
    crop_size: float = CROP_SIZE,
) -> torch.Tensor:
    """Inverse of :func:`weak_perspective_to_translation`.

    Args:
        translation: ``(..., 3)`` translation in metres, ``tz > 0``.
        focal_length: float or tensor broadcastable to ``(...)``, crop pixels.
        crop_size: side of the crop in pixels.

    Returns:
        ``(..., 3)`` as ``[s, tx, ty]``.
    """
    tx, ty, tz = translation.unbind(-1)
    scale = (2.0 * focal_length / tz - _SCALE_EPS) / crop_size
    return torch.stack([scale, tx, ty], dim=-1)


def crop_to_full_translation(
    cam_crop: torch.Tensor,
    box_center: torch.Tensor,
    box_size: torch.Tensor,
    image_size: torch.Tensor,
    focal_length: FocalLength = FOCAL_LENGTH,
) -> torch.Tensor:
    """Weak-perspective crop camera to a translation for the full-image camera.

    The full-image camera has its principal point at the image centre and focal length
    ``focal_length`` (in full-image pixels). The depth is chosen so that the body has the
    same size in the full image as the box it was cropped from,
    ``tz = 2 f / (box_size * s)``, and the lateral translation is shifted so that the
    body's root lands on the box centre: ``tx += 2 (c_x - W/2) / (box_size * s)``
    (likewise for y). This is the HMR 2.0 / ScoreHMR convention.

    Exactness: mapping crop pixels to full-image pixels is a scale and a shift of the
    image, whereas the full-image camera shifts the body instead. The two agree exactly
    for points in the plane ``z = 0`` of the body frame (the root's depth). Off that plane,
    and when ``focal_length = crop focal * box_size / crop_size`` (the crop is a resampling
    of the full image), they differ by ``-(box_center - image_centre) * z / (z + tz)``
    pixels, about 0.6% of the box's offset from the image centre for a body 0.3 m deep at
    ``s = 0.9`` (``tz`` ~ 50 m).

    Args:
        cam_crop: ``(B, 3)`` weak-perspective crop camera ``[s, tx, ty]``.
        box_center: ``(B, 2)`` centre of the (square) box in full-image pixels.
        box_size: ``(B,)`` side of the box in full-image pixels (SPIN: ``200 * scale``).
        image_size: ``(B, 2)`` full image size as ``(width, height)``.
        focal_length: float or ``(B,)`` focal length of the full-image camera, pixels.

    Returns:
        ``(B, 3)`` translation in metres for the full-image camera.
    """
    scale, tx, ty = cam_crop.unbind(-1)
    scaled_box = box_size * scale + _SCALE_EPS
    offset = box_center - 0.5 * image_size
    tz = 2.0 * focal_length / scaled_box
    return torch.stack(
        [tx + 2.0 * offset[:, 0] / scaled_box, ty + 2.0 * offset[:, 1] / scaled_box, tz], dim=-1
    )


def full_to_crop_translation(
    translation: torch.Tensor,
    box_center: torch.Tensor,
    box_size: torch.Tensor,
    image_size: torch.Tensor,
    focal_length: FocalLength = FOCAL_LENGTH,
) -> torch.Tensor:
    """Inverse of :func:`crop_to_full_translation` for the same box, image and focal length.

    Args:
        translation: ``(B, 3)`` full-image camera translation in metres, ``tz > 0``.
        box_center: ``(B, 2)`` centre of the box in full-image pixels.
        box_size: ``(B,)`` side of the box in full-image pixels.
        image_size: ``(B, 2)`` full image size as ``(width, height)``.
        focal_length: float or ``(B,)`` focal length of the full-image camera, pixels.

    Returns:
        ``(B, 3)`` weak-perspective crop camera ``[s, tx, ty]``.
    """
    tx, ty, tz = translation.unbind(-1)
    scaled_box = 2.0 * focal_length / tz
    offset = box_center - 0.5 * image_size
    scale = (scaled_box - _SCALE_EPS) / box_size
    return torch.stack(
        [scale, tx - 2.0 * offset[:, 0] / scaled_box, ty - 2.0 * offset[:, 1] / scaled_box],
        dim=-1,
    )


def _in_plane_rotation(rotation_deg: float | torch.Tensor | None, like: torch.Tensor):
    """``(cos, sin)`` of the augmentation angle, each ``(B, 1)``, or ``None``."""
    if rotation_deg is None:
        return None
    angle = torch.as_tensor(rotation_deg, dtype=like.dtype, device=like.device)
    angle = torch.deg2rad(angle).reshape(-1, 1)
    return torch.cos(angle), torch.sin(angle)


def image_keypoints_to_crop(
    keypoints: torch.Tensor,
    center: torch.Tensor,
    scale: torch.Tensor,
    crop_size: float = CROP_SIZE,
    rotation_deg: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Full-image pixels to crop pixels, for SPIN's square crops.

    The box of side ``200 * scale`` centred at ``center`` is resized to ``crop_size`` and
    then rotated by ``rotation_deg`` about the crop centre, positive angles turning the
    content counter-clockwise on screen, as SPIN's rotation augmentation does. The map is
    continuous: SPIN's own keypoint transform also rounds to integer pixels, which is
    not reproduced.

    Args:
        keypoints: ``(B, N, 2)`` full-image pixels (any extra channels, such as a
            confidence, must be split off by the caller).
        center: ``(B, 2)`` box centre in full-image pixels.
        scale: ``(B,)`` box side / 200.
        crop_size: side of the crop in pixels.
        rotation_deg: ``None``, a float, or ``(B,)`` in-plane rotation in degrees.

    Returns:
        ``(B, N, 2)`` crop pixels.
    """
    pixels_per_image_pixel = crop_size / (200.0 * scale)
    relative = (keypoints - center[:, None, :]) * pixels_per_image_pixel[:, None, None]
    cos_sin = _in_plane_rotation(rotation_deg, keypoints)
    if cos_sin is not None:
        cos, sin = cos_sin
        u, v = relative.unbind(-1)
        # Counter-clockwise on screen with y pointing down.
        relative = torch.stack([cos * u + sin * v, -sin * u + cos * v], dim=-1)
    return relative + 0.5 * crop_size


def crop_keypoints_to_image(
    keypoints: torch.Tensor,
    center: torch.Tensor,
    scale: torch.Tensor,
    crop_size: float = CROP_SIZE,
    rotation_deg: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Crop pixels to full-image pixels; the exact inverse of :func:`image_keypoints_to_crop`.

    Args:
        keypoints: ``(B, N, 2)`` crop pixels.
        center: ``(B, 2)`` box centre in full-image pixels.
        scale: ``(B,)`` box side / 200.
        crop_size: side of the crop in pixels.
        rotation_deg: ``None``, a float, or ``(B,)`` in-plane rotation in degrees that
            was applied when cropping.

    Returns:
        ``(B, N, 2)`` full-image pixels.
    """
    relative = keypoints - 0.5 * crop_size
    cos_sin = _in_plane_rotation(rotation_deg, keypoints)
    if cos_sin is not None:
        cos, sin = cos_sin
        u, v = relative.unbind(-1)
        relative = torch.stack([cos * u - sin * v, sin * u + cos * v], dim=-1)
    image_pixels_per_pixel = (200.0 * scale) / crop_size
    return relative * image_pixels_per_pixel[:, None, None] + center[:, None, :]


_default_depth = default_depth  # the argument of estimate_translation shadows the function


def estimate_translation(
    joints3d: torch.Tensor,
    joints2d: torch.Tensor,
    weights: torch.Tensor,
    focal_length: FocalLength = FOCAL_LENGTH,
    camera_center: torch.Tensor | None = None,
    depth_prior_weight: float = 0.0,
    default_depth: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Closed-form camera translation that best projects 3D joints onto 2D keypoints.

    Multiplying ``u - c_x = f_x (X + t_x) / (Z + t_z)`` by the depth makes it linear in
    ``t``. Divided by the focal length, each joint gives two rows in metres::

        t_x - a t_z = a Z - X,    a = (u - c_x) / f_x
        t_y - b t_z = b Z - Y,    b = (v - c_y) / f_y

    whose squared residuals, weighted by ``weights``, are minimised (SPIN gives a stored
    fit its camera this way, with the keypoint confidences as weights). The 3x3 normal
    equations are solved for all samples at once.

    A sample needs at least two joints with positive weight; one with fewer, or whose
    joints make the system singular, gets ``[0, 0, default_depth]`` and does not affect
    the others. Joints with zero weight are ignored even if their values are NaN.

    Args:
        joints3d: ``(B, N, 3)`` joints in the body frame, metres.
        joints2d: ``(B, N, 2)`` keypoints in crop pixels.
        weights: ``(B, N)`` non-negative confidences.
        focal_length: float, ``(B,)`` or ``(B, 2)``, pixels.
        camera_center: ``(B, 2)`` principal point; ``None`` for the crop centre.
        depth_prior_weight: weight of ``(t_z - default_depth)^2`` added to the objective,
            in the units of the rows above (metres^2, summed over weighted joints); ``0``
            for the plain least-squares solution.
        default_depth: float or ``(B,)`` fallback and prior depth in metres; ``None`` for
            the depth of SPIN's mean weak-perspective camera (``s = 0.9``) at this focal
            length, about 49.6 m for the defaults.

    Returns:
        ``(B, 3)`` translation in metres.
    """
    batch_size = joints3d.shape[0]
    dtype = joints3d.dtype
    focal = _focal_xy(focal_length, batch_size, joints3d)
    if camera_center is None:
        camera_center = _default_center(batch_size, joints3d)
    if default_depth is None:
        default_depth = _default_depth(focal.mean(-1))
    default_depth = torch.as_tensor(default_depth, dtype=dtype, device=joints3d.device)
    default_depth = default_depth.expand(batch_size)

    # The normal matrix mixes O(1) and O(pixel/focal)^2 ~ 1e-4 entries; solving in float64
    # keeps float32 callers from losing centimetres of depth. A 3x3 system per sample costs
    # nothing either way.
    work = torch.float64
    weights = weights.clamp_min(0).to(work)
    used = weights > 0
    # Zero out ignored joints so that NaN placeholders cannot leak through 0 * NaN.
    joints3d = torch.where(used[..., None], joints3d.to(work), 0.0)
    joints2d = torch.where(used[..., None], joints2d.to(work), 0.0)
    focal = focal.to(work)
    camera_center = camera_center.to(work)

    a = (joints2d[..., 0] - camera_center[:, None, 0]) / focal[:, None, 0]
    b = (joints2d[..., 1] - camera_center[:, None, 1]) / focal[:, None, 1]
    x, y, z = joints3d.unbind(-1)
    rhs_x = a * z - x
    rhs_y = b * z - y

    weight_sum = weights.sum(-1)
    zeros = torch.zeros_like(weight_sum)
    n02 = -(weights * a).sum(-1)
    n12 = -(weights * b).sum(-1)
    n22 = (weights * (a * a + b * b)).sum(-1) + depth_prior_weight
    normal = torch.stack(
        [weight_sum, zeros, n02, zeros, weight_sum, n12, n02, n12, n22], dim=-1
    ).unflatten(-1, (3, 3))
    rhs = torch.stack(
        [
            (weights * rhs_x).sum(-1),
            (weights * rhs_y).sum(-1),
            -(weights * (a * rhs_x + b * rhs_y)).sum(-1)
            + depth_prior_weight * default_depth.to(work),
        ],
        dim=-1,
    )

    fallback = torch.stack(
        [torch.zeros_like(default_depth), torch.zeros_like(default_depth), default_depth], dim=-1
    ).to(work)
    valid = used.sum(-1) >= 2
    # Give invalid samples a trivially solvable system so one bad sample cannot fail or
    # poison the batched factorisation of the others.
    eye = torch.eye(3, dtype=work, device=joints3d.device)
    normal = torch.where(valid[:, None, None], normal, eye)
    rhs = torch.where(valid[:, None], rhs, fallback)
    # solve_ex reports singular systems per sample instead of raising (and syncing).
    solution, info = torch.linalg.solve_ex(normal, rhs)
    ok = valid & (info == 0) & torch.isfinite(solution).all(-1)
    solution = torch.where(ok[:, None], solution, fallback)
    return solution.to(dtype)

