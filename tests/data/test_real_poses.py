"""The bundled real pose splits: held-out clips, provenance for every clip, sane poses."""

import numpy as np
import pytest

from spin_diff.data.real_poses import POSES_DIR, load_real_poses, real_pose_path


def test_bundled_splits_are_disjoint_by_clip_and_documented():
    provenance = (POSES_DIR / "PROVENANCE.md").read_text()
    assert "mocap.cs.cmu.edu" in provenance and "NSF EIA-0196217" in provenance
    clips = {}
    for split in ("val", "test"):
        with np.load(real_pose_path(split)) as data:
            clips[split] = set(data["clip"].tolist())
            assert data["pose"].shape[1] == 72 and len(data["pose"]) > 1000
            assert np.isfinite(data["pose"]).all()
        for clip in clips[split]:  # every clip's source file is listed with its split
            assert any(line.startswith(f"| {split} |") and f"/{clip}." in line for line in provenance.splitlines()), clip
    assert not clips["val"] & clips["test"]
    train_row = next(line for line in provenance.splitlines() if line.startswith("| train |"))
    train_clips = {c.strip() for c in train_row.split("|")[3].split(",")}
    assert not train_clips & (clips["val"] | clips["test"])


def test_real_poses_load_and_unknown_split_is_an_error():
    poses = load_real_poses("test")
    assert poses.dtype == np.float64 and poses.shape[1] == 72
    with pytest.raises(ValueError, match="unknown real-pose split 'train'"):
        load_real_poses("train")


def test_real_knees_and_elbows_bend_about_their_hinges():
    """Retargeting puts knee and elbow flexion on the hinge axis (not a sideways bend with a
    twisted hip or shoulder): most real poses keep those joints within the pose sampler's
    anatomical limits."""
    from spin_diff.body.joints import SMPL_JOINT_NAMES
    from spin_diff.priors.joint_angles import JOINT_LIMITS, pose_to_local_angles

    angles = pose_to_local_angles(load_real_poses("val")[:, 3:])
    inside = (angles >= JOINT_LIMITS[..., 0] - 1e-6) & (angles <= JOINT_LIMITS[..., 1] + 1e-6)
    for name in ("left_knee", "right_knee", "left_elbow", "right_elbow"):
        share = inside[:, SMPL_JOINT_NAMES.index(name) - 1].all(-1).mean()
        assert share > 0.8, (name, share)
