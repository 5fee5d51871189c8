"""How many joints, keypoints and shape coefficients, and SPIN's crop camera: one table for
the whole package.

No imports, so torch-free modules (configs, the cache's record layout) can use it.
``NUM_KEYPOINTS`` (SPIN's 49-keypoint layout) and ``NUM_SMPL_JOINTS`` (SMPL's 24-joint
skeleton, root included) are different things; the names say which.
"""

NUM_SMPL_JOINTS = 24  # SMPL's skeleton, global orientation (root) first
NUM_POSE = 3 * NUM_SMPL_JOINTS  # 72 axis-angle numbers per pose
NUM_POSE_6D = 6 * NUM_SMPL_JOINTS  # 144: SPIN's 6D rotation layout, per joint
NUM_OPENPOSE_JOINTS = 25  # OpenPose BODY_25, the first part of SPIN's layout
NUM_GT_JOINTS = 24  # SPIN's "GT" joints, the second part
NUM_KEYPOINTS = NUM_OPENPOSE_JOINTS + NUM_GT_JOINTS  # 49: SPIN's keypoint layout
NUM_BETAS = 10  # SPIN's shape coefficients (regressor output, mean params, cache records)
NUM_CAMERA = 3  # SPIN's weak-perspective camera [s, tx, ty]

FOCAL_LENGTH = 5000.0
"""Focal length of SPIN's crop camera, in crop pixels."""

CROP_SIZE = 224
"""Side of the square network input crop (SPIN's crop), in pixels."""
