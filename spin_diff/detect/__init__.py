"""2D keypoints found in a photo, offline: BlazePose (MediaPipe's networks, Apache-2.0).

- :mod:`spin_diff.detect.blazepose`: the two-stage pipeline (:class:`BlazePose`).
- :mod:`spin_diff.detect.layout`: its 33 landmarks in the 49-joint layout.
- :mod:`spin_diff.detect.models`: the network files (fetched once from PyPI) and the runtime,
  ``ai_edge_litert``, the ``detect`` extra, imported only when a detector is made.
"""

from spin_diff.detect.blazepose import BlazePose, PoseDetection
from spin_diff.detect.layout import blazepose_to_keypoints49
from spin_diff.detect.models import fetch_models, missing_models, model_folder

__all__ = ["BlazePose", "PoseDetection", "blazepose_to_keypoints49", "fetch_models", "missing_models", "model_folder"]
