"""Fixtures of the detector tests: the detector itself, and pictures of our own body model."""

import importlib.util

import numpy as np
import pytest
import torch

from spin_diff.detect.models import missing_models


@pytest.fixture(scope="session")
def blazepose():
    """The detector on one thread; skipped, saying why, without the detect extra or its files
    (``bash scripts/setup.sh`` installs both, so CI runs these tests)."""
    if importlib.util.find_spec("ai_edge_litert") is None or missing_models():
        pytest.skip("the detect extra (ai-edge-litert) or its model files are missing: bash scripts/setup.sh")
    from spin_diff.detect import BlazePose

    return BlazePose(threads=1)


def upright(name: str) -> np.ndarray:
    """A named pose turned so SMPL's y up is the image's y down, facing the camera."""
    from spin_diff.body.demo_poses import named_pose

    pose = np.asarray(named_pose(name), np.float32).copy()
    pose[:3] = [np.pi, 0, 0]
    return pose


@pytest.fixture(scope="session")
def render_people(body_model):
    """``render(pose names, size=(W, H))``: a picture (H, W, 3) of our body model in those poses,
    side by side 1 m apart, 4.5 m away (focal 600 px), and each one's 49 projected joints
    (P, 49, 2) in pixels (OpenPose's convention: pixel centres at integers)."""
    from spin_diff.render import render_mesh

    def render(names, size=(384, 288)):
        width, height = size
        focal = 600.0
        image = np.full((height, width, 3), (120, 140, 110), np.uint8)
        projected = []
        for k, name in enumerate(names):
            out = body_model(torch.as_tensor(upright(name))[None], torch.zeros(1, 10))
            offset = np.array([k - (len(names) - 1) / 2, 0.0, 4.5], np.float32)
            image = render_mesh(
                out.vertices[0].numpy(), body_model.faces, translation=offset, focal_length=focal, image=image,
                color=(0.85, 0.65, 0.55),
            ).image  # fmt: skip
            joints = out.joints[0].numpy() + offset
            projected.append(focal * joints[:, :2] / joints[:, 2:] + np.array([width, height]) / 2 - 0.5)
        return image, np.stack(projected)

    return render
