"""Geometry: rotation representations, the project's camera convention, alignment.

- :mod:`spin_diff.geometry.rotations`: axis-angle, matrices, quaternions and the SPIN 6D
  layout, and converters from the columns 6D layout used by ScoreHMR.
- :mod:`spin_diff.geometry.cameras`: the one camera convention (OpenCV axes, focal length
  5000 px on a 224 px crop), weak-perspective and full-image cameras, crop maps, and the
  closed-form camera translation.
- :mod:`spin_diff.geometry.alignment`: similarity Procrustes, MPJPE and PA-MPJPE.
"""

from spin_diff.geometry.alignment import mpjpe, pa_mpjpe, similarity_procrustes
from spin_diff.geometry.cameras import crop_keypoints_to_image, crop_to_full_translation, estimate_translation, full_to_crop_translation, image_keypoints_to_crop, perspective_projection, translation_to_weak_perspective, weak_perspective_to_translation
from spin_diff.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_rot6d,
    geodesic_angle,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rot6d_columns_to_spin,
    rot6d_spin_to_columns,
    rot6d_to_axis_angle,
    rot6d_to_matrix,
)

__all__ = [
    # rotations
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
    # cameras
    "perspective_projection",
    "weak_perspective_to_translation",
    "translation_to_weak_perspective",
    "crop_to_full_translation",
    "full_to_crop_translation",
    "image_keypoints_to_crop",
    "crop_keypoints_to_image",
    "estimate_translation",
    # alignment
    "similarity_procrustes",
    "mpjpe",
    "pa_mpjpe",
]
