"""The bundled real pose splits: held-out clips, provenance for every clip, sane poses."""

import numpy as np
import pytest

from spin_diff.data.real_poses import POSES_DIR, REAL_SPLITS, load_real_poses, real_pose_path


def _split_rows(provenance: str) -> dict[str, dict]:
    """The provenance's split table: split -> poses, subjects, clips."""
    rows = {}
    for line in provenance.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[1].isdigit():
            rows[cells[0]] = {"poses": int(cells[1]), "subjects": set(cells[2].split(", ")),
                              "clips": set(cells[3].split(", "))}  # fmt: skip
    return rows


def test_bundled_splits_are_disjoint_and_match_their_provenance():
    """Held-out clips never train; whole held-out subjects share no subject with any other
    split; every bundled split's counts, subjects and clips are those its provenance lists,
    and every clip's source file is listed with its split."""
    provenance = (POSES_DIR / "PROVENANCE.md").read_text()
    assert "mocap.cs.cmu.edu" in provenance and "NSF EIA-0196217" in provenance
    table = _split_rows(provenance)
    assert set(table) == {"train", *REAL_SPLITS}
    clips, subjects = {"train": table["train"]["clips"]}, {"train": table["train"]["subjects"]}
    for split in REAL_SPLITS:
        with np.load(real_pose_path(split)) as data:
            clips[split] = set(data["clip"].tolist())
            subjects[split] = set(data["subject"].tolist())
            assert data["pose"].shape[1] == 72 and len(data["pose"]) > 500
            assert np.isfinite(data["pose"]).all()
            assert len(data["pose"]) == table[split]["poses"], split
        assert clips[split] == table[split]["clips"] and subjects[split] == table[split]["subjects"], split
        for clip in clips[split]:
            assert any(line.startswith(f"| {split} |") and f"/{clip}." in line for line in provenance.splitlines()), clip
    names = ["train", *REAL_SPLITS]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not clips[a] & clips[b], (a, b)
    for held_out in ("val_subjects", "test_subjects"):
        for other in names:
            if other != held_out:
                assert not subjects[held_out] & subjects[other], (held_out, other)


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
