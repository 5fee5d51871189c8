"""Helpers of the training tests: tiny SPIN-format datasets and tiny run configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
CENTER = np.array([300.0, 260.0])
SCALE = 1.6  # box side 320 px


def people(body_model, num: int, seed: int):
    """Plausible bodies facing the camera: pose (N, 72), betas (N, 10), crop-camera transl (N, 3)."""
    from spin_diff.body.demo_poses import named_pose

    rng = np.random.default_rng(seed)
    names = ["walk", "apose", "arms_up", "tpose"]
    pose = np.stack([named_pose(names[i % len(names)]) for i in range(num)]).astype(np.float64)
    pose[:, 0] = np.pi
    pose[:, 3:] += rng.normal(0.0, 0.1, (num, 69))
    betas = rng.normal(0.0, 0.5, (num, 10))
    transl = np.c_[rng.normal(0, 0.05, (num, 2)), rng.uniform(45, 55, num)]
    return pose, betas, transl


def project_to_image(body_model, pose, betas, transl, center=CENTER, scale=SCALE):
    """The 49 joints in full-image pixels of a box (center, scale) whose crop camera is SPIN's."""
    from spin_diff.geometry.cameras import crop_keypoints_to_image, perspective_projection

    with torch.no_grad():
        joints = body_model.joints(torch.as_tensor(pose, dtype=torch.float32), torch.as_tensor(betas, dtype=torch.float32)).joints
        crop = perspective_projection(joints.double(), torch.as_tensor(transl), 5000.0)
        num = crop.shape[0]
        image = crop_keypoints_to_image(crop, torch.as_tensor(np.tile(center, (num, 1))), torch.full((num,), scale))
    return image.numpy(), joints.double().numpy()


def make_keypoint_dataset(body_model, path: Path, num: int, seed: int = 0, has_smpl: float = 0.0,
                          with_3d: bool = False) -> Path:  # fmt: skip
    """A SPIN npz of exact 2D keypoints (confidence 1) in a box that is not the crop itself."""
    from spin_diff.data.spin_npz import write_spin_npz

    pose, betas, transl = people(body_model, num, seed)
    image, joints = project_to_image(body_model, pose, betas, transl)
    keypoints = np.concatenate([image, np.ones((num, 49, 1))], -1)
    data = {
        "imgname": np.array([f"im{i:04d}.jpg" for i in range(num)]),
        "center": np.tile(CENTER, (num, 1)),
        "scale": np.full(num, SCALE),
        "openpose": keypoints[:, :25],
        "part": keypoints[:, 25:],
        "pose": pose,
        "shape": betas,
        "has_smpl": np.full(num, has_smpl),
    }
    if with_3d:
        data["S"] = np.concatenate([joints[:, 25:] + transl[:, None], np.ones((num, 24, 1))], -1)
    return write_spin_npz(path, data)


def tiny_overrides(steps: int | None = None, batch: int = 8, iterations: int = 5, **extra) -> list[str]:
    """--set values of a keypoint model and a fitting small enough for a test."""
    values = {
        "model.input": "keypoints",
        "model.keypoints.hidden": 64,
        "model.keypoints.feature_dim": 64,
        "model.keypoints.blocks": 1,
        "model.head.hidden": 64,
        "data.batch_size": batch,
        "fitting.stages.0.iterations": iterations,
        "fitting.stages.1.iterations": iterations,
        "summary_every": 1,
        "checkpoint_every": 1000,
        "optim.lr": 1e-3,
    }
    if steps is not None:
        values["max_steps"] = steps
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def tiny_config(**kwargs):
    from spin_diff.utils.configs import load_config
    from spin_diff.training.config import TrainConfig

    return load_config(TrainConfig, None, tiny_overrides(**kwargs))


def read_log(run_dir: Path) -> list[dict]:
    import csv

    with (Path(run_dir) / "log.csv").open() as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
