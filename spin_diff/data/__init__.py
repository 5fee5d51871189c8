"""Data in and out: SPIN's npz format, OpenPose JSON, motion capture, synthetic people.

* :mod:`spin_diff.data.spin_npz`: read/write/validate SPIN's dataset files.
* :mod:`spin_diff.data.openpose`: OpenPose BODY_25 JSON files and the 49-joint layout.
* :mod:`spin_diff.data.corruption`: degrade clean keypoints the way 2D detectors do.
* :mod:`spin_diff.data.people`: the one generator of synthetic people (named presets: the
  regressor's training stream, the fitting problems, the photo camera, rendered sets).
* :mod:`spin_diff.data.keypoint_sets`: fitting problems and keypoint-only SPIN datasets drawn by it.
* :mod:`spin_diff.data.real_poses`: the bundled CMU validation and test pose sets.
* :mod:`spin_diff.data.mocap`: ASF/AMC and BVH motion capture, retargeted to the body model.
* :mod:`spin_diff.data.synth`: render synthetic SPIN-format datasets with exact ground truth.
* :mod:`spin_diff.data.crops`: SPIN's 224 px person crops, ImageNet-normalised, for image regressors.
"""

from spin_diff.data.corruption import (
    CORRUPTION_PRESETS,
    CorruptionConfig,
    CorruptionResult,
    corrupt_keypoints,
)
from spin_diff.data.openpose import (
    OpenPoseFileError,
    keypoints49_to_openpose,
    load_openpose_keypoints,
    openpose_to_keypoints49,
    read_openpose_json,
    write_openpose_json,
)
from spin_diff.data.spin_npz import (
    SPIN_KEYS,
    SYNTH_KEYS,
    SpinDataError,
    keypoints_49,
    read_spin_npz,
    write_spin_npz,
)

__all__ = [
    "CORRUPTION_PRESETS",
    "CorruptionConfig",
    "CorruptionResult",
    "corrupt_keypoints",
    "OpenPoseFileError",
    "keypoints49_to_openpose",
    "load_openpose_keypoints",
    "openpose_to_keypoints49",
    "read_openpose_json",
    "write_openpose_json",
    "SPIN_KEYS",
    "SYNTH_KEYS",
    "SpinDataError",
    "keypoints_49",
    "read_spin_npz",
    "write_spin_npz",
]
