"""Fixtures for the fit-cache tests: small stores and tiny SPIN-format datasets."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from spin_diff.cache.records import FitBatch, Source

REPO_ROOT = Path(__file__).resolve().parents[2]


def fast_fitting_config(camera_iterations: int = 3, body_iterations: int = 4):
    """SPIN's SMPLify recipe (whatever the project's default adds to it), few iterations."""
    from spin_diff.fitting.config import FittingConfig, spin_stages

    stages = spin_stages(body_iterations)
    stages[0].iterations = camera_iterations
    return FittingConfig(stages=stages)


def write_fast_config(path: Path, camera_iterations: int = 3, body_iterations: int = 4) -> Path:
    """A YAML config for the CLI with :func:`fast_fitting_config`'s stages."""
    import yaml

    from spin_diff.utils.configs import config_to_dict

    stages = config_to_dict(fast_fitting_config(camera_iterations, body_iterations))["stages"]
    path.write_text(yaml.safe_dump({"fitting": {"stages": stages}}))
    return path


def fit_batch(dataset, index, score, source=Source.OFFLINE, value=None, **kwargs) -> FitBatch:
    """A batch whose parameters all equal ``value`` per row (default: the score)."""
    index = np.asarray(index, dtype=np.int64)
    score = np.broadcast_to(np.asarray(score, dtype=np.float64), index.shape).copy()
    fill = score if value is None else np.broadcast_to(np.asarray(value, dtype=np.float64), index.shape)
    fill = np.nan_to_num(fill, nan=0.0, posinf=0.0)
    return FitBatch(
        dataset=dataset,
        index=index,
        pose=np.repeat(fill[:, None], 72, 1),
        betas=np.repeat(fill[:, None], 10, 1),
        score=score,
        source=source,
        transl=np.repeat(fill[:, None], 3, 1),
        residuals=np.repeat(np.abs(fill[:, None]), 49, 1),
        **kwargs,
    )


def make_spin_dataset(
    body_model, path: Path, num: int, seed: int = 0, has_smpl: float = 1.0, noise_px: float = 0.0
) -> Path:
    """A SPIN-format npz of people projected into SPIN's crop camera.

    ``center`` = (112, 112) and ``scale`` = 224 / 200, so image pixels are crop pixels and the
    fits made in the canonical crop frame see exactly these keypoints (confidence 1), plus
    Gaussian noise of ``noise_px`` pixels.
    """
    import torch

    from spin_diff.body.demo_poses import named_pose
    from spin_diff.data.spin_npz import write_spin_npz
    from spin_diff.geometry.cameras import perspective_projection

    rng = np.random.default_rng(seed)
    names = ["walk", "apose", "arms_up", "tpose"]
    pose = np.stack([named_pose(names[i % len(names)]) for i in range(num)]).astype(np.float64)
    pose[:, 0] = np.pi  # facing the camera
    pose[:, 3:] += rng.normal(0.0, 0.1, (num, 69))
    shape = rng.normal(0.0, 0.5, (num, 10))
    transl = np.c_[rng.normal(0, 0.05, (num, 2)), rng.uniform(45, 55, num)]
    with torch.no_grad():
        as_float = {"dtype": torch.float32}
        output = body_model.joints(torch.as_tensor(pose, **as_float), torch.as_tensor(shape, **as_float))
        joints = output.joints
        pixels = perspective_projection(joints.double(), torch.as_tensor(transl), 5000.0).numpy()
    pixels = pixels + rng.normal(0.0, noise_px, pixels.shape) if noise_px else pixels
    keypoints = np.concatenate([pixels, np.ones((num, 49, 1))], -1)
    data = {
        "imgname": np.array([f"images/{i:06d}.jpg" for i in range(num)]),
        "center": np.full((num, 2), 112.0),
        "scale": np.full(num, 224.0 / 200.0),
        "openpose": keypoints[:, :25],
        "part": keypoints[:, 25:],
        "pose": pose,
        "shape": shape,
        "has_smpl": (rng.random(num) < has_smpl).astype(np.float64),
        "transl": transl,
    }
    return write_spin_npz(path, data)


@pytest.fixture(scope="session")
def tiny_dataset(body_model, tmp_path_factory) -> Path:
    """16 examples, every one with ground-truth SMPL."""
    return make_spin_dataset(body_model, tmp_path_factory.mktemp("data") / "tiny.npz", 16, seed=0)


@pytest.fixture(scope="session")
def fitcache():
    """The fit-cache tests' helpers: ``fast_fitting_config``, ``write_fast_config``,
    ``fit_batch``, ``make_spin_dataset`` and ``REPO_ROOT``."""
    return SimpleNamespace(fast_fitting_config=fast_fitting_config, write_fast_config=write_fast_config, fit_batch=fit_batch, make_spin_dataset=make_spin_dataset, REPO_ROOT=REPO_ROOT)
