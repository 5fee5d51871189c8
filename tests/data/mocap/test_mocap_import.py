"""Mocap import: ASF/AMC and BVH readers, their kinematics, retargeting round trips, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import BVH_FRAMES, CC_END_SITES, CC_FRAMES, CC_JOINTS, CC_NAMES, KNOWN_FRAMES, UNITS_PER_METRE, write_amc, write_asf, write_bvh

from spin_diff.body import joints as J
from spin_diff.data.mocap.asf_amc import read_amc, read_asf
from spin_diff.data.mocap.bvh import read_bvh
from spin_diff.data.mocap.importer import ImportConfig, import_mocap, keep_distinct_frames, split_pose_set
from spin_diff.data.mocap.retarget import CORRESPONDENCES, RetargetConfig, retarget, source_points
from spin_diff.data.mocap.skeleton import MocapFileError, euler_matrices, forward_kinematics
from spin_diff.geometry.rotations import axis_angle_to_matrix

# Joints a 14-joint evaluation sees: where a retargeted pose must put the model's joints.
LIMB_JOINTS = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_shoulder",
               "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "neck", "head")  # fmt: skip
ROUND_TRIP_TOLERANCE_MM = 15.0  # per joint, worst case; the skeletons share the model's proportions


def test_euler_matrices_compose_in_listed_order():
    angles = np.array([30.0, -50.0, 70.0])
    expected = euler_matrices(angles[:1], "Z") @ euler_matrices(angles[1:2], "Y") @ euler_matrices(angles[2:], "X")
    assert np.allclose(euler_matrices(angles, "ZYX"), expected)
    # an independent value: Rz(90) turns x into y
    assert np.allclose(euler_matrices(np.array([90.0]), "Z") @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])


def _one_bone_asf(tmp_path, axis: str):
    text = f""":version 1.10
:units
  length 1.0
  angle deg
:root
  order TX TY TZ RX RY RZ
  axis XYZ
  position 0 0 0
  orientation 0 0 0
:bonedata
  begin
    id 1
    name thigh
    direction 0 -1 0
    length 2
    axis 0 0 0 XYZ
  end
  begin
    id 2
    name shin
    direction 0 -1 0
    length 3
    axis {axis} XYZ
    dof rx
  end
:hierarchy
  begin
    root thigh
    thigh shin
  end
"""
    return write_text(tmp_path / "one.asf", text)


def write_text(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("axis, expected_end", [("0 0 0", [0.0, -2.0, -3.0]), ("0 0 90", [0.0, -5.0, 0.0])])
def test_asf_kinematics_known_answer(tmp_path, axis, expected_end):
    """A knee bent 90 degrees about x moves the shin's end backwards; with the bone's local frame
    turned 90 degrees about z its x axis is the world's y, the shin's own direction, so the same
    dof value leaves the end where it was."""
    asf = read_asf(_one_bone_asf(tmp_path, axis))
    amc = write_text(tmp_path / "one.amc", ":FULLY-SPECIFIED\n:DEGREES\n1\nroot 0 0 0 0 0 0\nthigh\nshin 90\n")
    motion = read_amc(amc, asf)
    points, _ = forward_kinematics(motion.skeleton, motion.rotations, motion.root_positions)
    assert np.allclose(points[0, motion.skeleton.point_index("thigh")], [0.0, -2.0, 0.0])
    assert np.allclose(points[0, motion.skeleton.point_index("shin")], expected_end, atol=1e-9)


def test_bvh_kinematics_known_answer(tmp_path):
    text = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Arm
  {
    OFFSET 1 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 2 0 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.01
0 0 0 0 0 0 0 0 0
5 0 0 0 0 0 90 0 0
"""
    motion = read_bvh(write_text(tmp_path / "arm.bvh", text))
    points, _ = forward_kinematics(motion.skeleton, motion.rotations, motion.root_positions)
    end = motion.skeleton.point_index("Arm_end")
    assert np.allclose(points[0, end], [3.0, 0.0, 0.0])
    assert np.allclose(points[1, end], [6.0, 2.0, 0.0], atol=1e-9)  # root moved 5 in x, arm turned +90 about z


def _pose_joints(model, pose: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = model.fast(axis_angle_to_matrix(torch.tensor(pose, dtype=torch.float32).view(-1, 24, 3)),
                         torch.zeros(len(pose), model.num_betas))  # fmt: skip
    return {n: out.skeleton[:, k].double().numpy() for k, n in enumerate(J.SMPL_JOINT_NAMES)}


def _check_round_trip(model, motion, kind: str):
    result = retarget(motion, model, RetargetConfig(iterations=400))
    points, names = source_points(motion, CORRESPONDENCES[kind])
    target = points * result.scale
    joints = _pose_joints(model, result.pose)
    errors = {n: 1000 * np.linalg.norm(joints[n] + result.transl - target[:, names.index(n)], axis=-1)
              for n in LIMB_JOINTS}  # fmt: skip
    worst = max(float(e.max()) for e in errors.values())
    assert worst < ROUND_TRIP_TOLERANCE_MM, {n: np.round(e, 1).tolist() for n, e in errors.items()}
    assert result.direction_error_deg.max() < 2.0
    return result


def test_asf_amc_round_trip_matches_the_source_joints(tmp_path, body_model, rest_points):
    asf = read_asf(write_asf(tmp_path / "07.asf", rest_points))
    motion = read_amc(write_amc(tmp_path / "07_01.amc"), asf)
    assert motion.num_frames == len(KNOWN_FRAMES)
    result = _check_round_trip(body_model, motion, "cmu_asf")
    assert result.scale == pytest.approx(1 / UNITS_PER_METRE, rel=0.02)
    # The hinge angles come back: the left knee bent 60 degrees in frame 1, the right 90 in frame 2.
    rotations = axis_angle_to_matrix(torch.tensor(result.pose).view(-1, 24, 3))
    knee_angle = lambda f, k: float(torch.rad2deg(torch.arccos((rotations[f, k].trace() - 1) / 2)))  # noqa: E731
    assert knee_angle(1, J.SMPL_JOINT_NAMES.index("left_knee")) == pytest.approx(60.0, abs=3.0)
    assert knee_angle(2, J.SMPL_JOINT_NAMES.index("right_knee")) == pytest.approx(90.0, abs=3.0)
    assert knee_angle(0, J.SMPL_JOINT_NAMES.index("left_knee")) == pytest.approx(0.0, abs=3.0)


def test_bvh_round_trip_matches_the_source_joints(tmp_path, body_model, rest_points):
    motion = read_bvh(write_bvh(tmp_path / "08_01.bvh", rest_points))
    assert motion.num_frames == 3 and motion.frame_time == pytest.approx(1 / 30, rel=1e-4)
    _check_round_trip(body_model, motion, "cmu_bvh")


def test_cc_base_rig_round_trip_matches_the_source_joints(tmp_path, body_model, rest_points):
    """Reallusion's CC_Base names (IClone-CMU-Mocap's BVH exports) are recognised and retarget
    as well as CMU's own names; the eyes set the head (a rig without them would leave it free)."""
    nod = {"Head": (20.0, 0.0, 35.0), "Neck": (0.0, 10.0, 0.0)}  # the head turned and pitched (Z, Y, X)
    frames = (*BVH_FRAMES, nod)
    cc_frames = (*CC_FRAMES, {CC_NAMES[n]: v for n, v in nod.items()})
    path = write_bvh(tmp_path / "005_01.bvh", rest_points, cc_frames, joints=CC_JOINTS, end_sites=CC_END_SITES)
    motion = read_bvh(path)
    result = _check_round_trip(body_model, motion, "cc_base_bvh")
    reference = _check_round_trip(body_model, read_bvh(write_bvh(tmp_path / "08_01.bvh", rest_points, frames)), "cmu_bvh")
    assert np.linalg.norm(reference.pose[-1, 45:48]) > 0.3  # the nod is in the reference
    # the eyes land on the source's eyes in every frame, the nod included: the head is set, not left free
    points, names = source_points(motion, CORRESPONDENCES["cc_base_bvh"])
    with torch.no_grad():
        out = body_model.fast(axis_angle_to_matrix(torch.tensor(result.pose, dtype=torch.float32).view(-1, 24, 3)),
                              torch.zeros(len(result.pose), body_model.num_betas))  # fmt: skip
    for eye in ("Left Eye", "Right Eye"):
        model_eye = out.joints[:, J.JOINT_NAMES.index(eye)].double().numpy() + result.transl
        error_mm = 1000 * np.linalg.norm(model_eye - points[:, names.index(eye)] * result.scale, axis=-1)
        assert error_mm.max() < ROUND_TRIP_TOLERANCE_MM, (eye, error_mm.round(1).tolist())
    head = J.SMPL_JOINT_NAMES.index("head")
    assert np.linalg.norm(result.pose[-1, 3 * head : 3 * head + 3]) > 0.3
    assert import_mocap([path], body_model, progress=False).files[0]["kind"] == "cc_base_bvh"
    assert import_mocap([path], body_model, progress=False).subject[0] == "05"  # CMU's subject, padding aside


def test_retargeting_ignores_source_units_and_placement(tmp_path, body_model, rest_points):
    """The same motion in other units gives the same poses (the scale is estimated per clip)."""
    a = read_bvh(write_bvh(tmp_path / "a.bvh", rest_points, unit=100.0))
    b = read_bvh(write_bvh(tmp_path / "b.bvh", rest_points, unit=3.0))
    pose_a = retarget(a, body_model).pose
    pose_b = retarget(b, body_model).pose
    joints_a, joints_b = _pose_joints(body_model, pose_a), _pose_joints(body_model, pose_b)
    assert max(np.abs(joints_a[n] - joints_b[n]).max() for n in LIMB_JOINTS) < 2e-3


def test_import_mocap_folder_subsamples_splits_and_records_provenance(tmp_path, body_model, rest_points):
    folder = tmp_path / "mocap"
    folder.mkdir()
    write_asf(folder / "07.asf", rest_points)
    still = [KNOWN_FRAMES[1]] * 5  # five identical frames: near-duplicates, one survives
    write_amc(folder / "07_01.amc", frames=still, roots=[(0.0, 0.0, 0.0)] * 5)
    write_amc(folder / "07_02.amc")
    write_bvh(folder / "08_01.bvh", rest_points)
    poses = import_mocap([folder], body_model, ImportConfig(retarget=RetargetConfig(iterations=200)), progress=False)
    by_clip = {c: int((poses.clip == c).sum()) for c in np.unique(poses.clip)}
    # 07_01's root moves 0.1 m per frame but its pose holds still: subsampling is root-relative
    assert by_clip == {"07_01": 1, "07_02": 3, "08_01": 3}
    assert set(poses.subject.tolist()) == {"07", "08"}
    assert all(len(entry["sha1"]) == 40 for entry in poses.files)
    assert {entry["clip"]: entry["frames"] for entry in poses.files} == {"07_01": 5, "07_02": 3, "08_01": 3}
    splits = split_pose_set(poses, "clip", val=["07_02"], test=["08_01"])
    assert {s: sorted(set(p.clip.tolist())) for s, p in splits.items()} == {
        "train": ["07_01"], "val": ["07_02"], "test": ["08_01"]}
    saved = np.load(splits["test"].save(tmp_path / "test.npz"))
    assert saved["pose"].shape == (3, 72) and set(saved["clip"].tolist()) == {"08_01"}


def test_keep_distinct_frames_on_a_slow_drift():
    points = np.zeros((100, 3, 3))
    points[:, 1, 0] = 0.011 * np.arange(100)  # one point drifts 1.1 cm per frame
    kept = keep_distinct_frames(points, 0.05)
    assert kept[0] == 0 and np.all(np.diff(kept) == 5)  # kept once it moved more than 5 cm
    points[:, :, 0] += 0.5 * np.arange(100)[:, None]  # the whole body travelling changes nothing
    assert np.array_equal(keep_distinct_frames(points, 0.05), kept)


# --- malformed files: the error names the file and the line
def _asf_text(tmp_path, rest_points):
    return write_asf(tmp_path / "09.asf", rest_points).read_text().splitlines()


def test_asf_bad_number_names_file_and_line(tmp_path, rest_points):
    lines = _asf_text(tmp_path, rest_points)
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("length") and i > 10)
    lines[index] = "    length seven"
    path = write_text(tmp_path / "bad.asf", "\n".join(lines))
    with pytest.raises(MocapFileError, match=rf"bad\.asf:{index + 1}: length"):
        read_asf(path)


def test_asf_unknown_bone_in_hierarchy(tmp_path, rest_points):
    lines = _asf_text(tmp_path, rest_points)
    lines.insert(len(lines) - 1, "    lfemur ltail")
    path = write_text(tmp_path / "bad.asf", "\n".join(lines))
    with pytest.raises(MocapFileError, match=rf"bad\.asf:{len(lines) - 1}: .*unknown bone 'ltail'"):
        read_asf(path)


def test_amc_wrong_dof_count_and_unknown_bone(tmp_path, rest_points):
    asf = read_asf(write_asf(tmp_path / "09.asf", rest_points))
    lines = write_amc(tmp_path / "09_01.amc").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("ltibia"))
    good = list(lines)
    lines[index] = "ltibia 10 20"
    with pytest.raises(MocapFileError, match=rf"09_02\.amc:{index + 1}: bone 'ltibia' has 1 dof"):
        read_amc(write_text(tmp_path / "09_02.amc", "\n".join(lines)), asf)
    good[index] = "ltail 10"
    with pytest.raises(MocapFileError, match=rf"09_03\.amc:{index + 1}: unknown bone 'ltail'"):
        read_amc(write_text(tmp_path / "09_03.amc", "\n".join(good)), asf)


def test_bvh_errors_name_file_and_line(tmp_path, rest_points):
    lines = write_bvh(tmp_path / "ok.bvh", rest_points).read_text().splitlines()
    frames_at = next(i for i, line in enumerate(lines) if line.startswith("Frames:"))
    bad = list(lines)
    bad[frames_at + 2] = bad[frames_at + 2].replace(bad[frames_at + 2].split()[3], "abc", 1)
    with pytest.raises(MocapFileError, match=rf"nan\.bvh:{frames_at + 3}: frame 0 .*not a number"):
        read_bvh(write_text(tmp_path / "nan.bvh", "\n".join(bad)))
    short = list(lines)
    short[frames_at + 3] = " ".join(short[frames_at + 3].split()[:-1])
    with pytest.raises(MocapFileError, match=rf"short\.bvh:{frames_at + 4}: frame 1 .*needs \d+ numbers"):
        read_bvh(write_text(tmp_path / "short.bvh", "\n".join(short)))
    count = list(lines)
    count[frames_at] = "Frames: 7"
    with pytest.raises(MocapFileError, match=r"count\.bvh:\d+: 'Frames: 7' but 3 frame lines"):
        read_bvh(write_text(tmp_path / "count.bvh", "\n".join(count)))
    channels = list(lines)
    at = next(i for i, line in enumerate(lines) if "CHANNELS 3" in line)
    channels[at] = channels[at].replace("CHANNELS 3", "CHANNELS 4")
    with pytest.raises(MocapFileError, match=rf"channels\.bvh:{at + 1}: CHANNELS says 4 but lists 3"):
        read_bvh(write_text(tmp_path / "channels.bvh", "\n".join(channels)))
    with pytest.raises(MocapFileError, match=r"empty\.bvh: no ROOT joint"):
        read_bvh(write_text(tmp_path / "empty.bvh", "HIERARCHY\n"))


def test_unknown_skeleton_and_missing_asf(tmp_path, body_model):
    text = "HIERARCHY\nROOT Pelvis\n{\n OFFSET 0 0 0\n CHANNELS 3 Zrotation Yrotation Xrotation\n}\nMOTION\nFrames: 1\nFrame Time: 0.1\n0 0 0\n"
    with pytest.raises(ValueError, match="unknown source skeleton.*CORRESPONDENCES"):
        retarget(read_bvh(write_text(tmp_path / "odd.bvh", text)), body_model)
    write_text(tmp_path / "10_01.amc", "1\nroot 0 0 0 0 0 0\n")
    with pytest.raises(FileNotFoundError, match=r"10_01\.amc: no ASF skeleton.*10\.asf"):
        import_mocap([tmp_path / "10_01.amc"], body_model, progress=False)


def test_cli_import_mocap_reports_a_malformed_file(tmp_path, rest_points, capsys):
    from spin_diff.cli.main import main

    lines = write_bvh(tmp_path / "ok.bvh", rest_points).read_text().splitlines()
    lines[3] = "\tOFFSET 0 zero 0"
    bad = write_text(tmp_path / "11_01.bvh", "\n".join(lines))
    assert main(["prior", "import-mocap", str(bad), "--out", str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert "11_01.bvh:4: OFFSET: not a number" in err and "Traceback" not in err


def test_amass_style_npz_is_turned_from_z_up_to_y_up(tmp_path, body_model):
    rng = np.random.default_rng(0)
    poses = np.concatenate([np.zeros((4, 3)), 0.2 * rng.normal(size=(4, 153))], axis=1)  # SMPL-H width
    poses[:, :3] = [np.pi / 2, 0.0, 0.0]  # standing upright in AMASS's z-up world
    np.savez(tmp_path / "walk_poses.npz", poses=poses, mocap_framerate=120.0)
    imported = import_mocap([tmp_path / "walk_poses.npz"], body_model, progress=False)
    assert imported.pose.shape == (4, 72)
    assert np.allclose(imported.pose[:, 3:], poses[:, 3:72])
    # upright in the y-up world: the identity orientation
    rotation = axis_angle_to_matrix(torch.tensor(imported.pose[:, :3]))
    assert torch.allclose(rotation, torch.eye(3, dtype=rotation.dtype).expand(4, 3, 3), atol=1e-9)
    assert imported.files[0]["kind"] == "amass_npz"


def test_cli_import_mocap_writes_poses_splits_and_report(tmp_path, rest_points, capsys):
    import json

    from spin_diff.cli.main import main

    folder = tmp_path / "mocap"
    folder.mkdir()
    write_asf(folder / "07.asf", rest_points)
    write_amc(folder / "07_01.amc")
    write_amc(folder / "07_02.amc")
    write_bvh(folder / "08_01.bvh", rest_points)
    out = tmp_path / "out" / "poses.npz"
    status = main(["prior", "import-mocap", str(folder), "--out", str(out), "--iterations", "50",
                   "--val-units", "07_02", "--test-units", "08_01"])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "test: 3 poses from 1 clips: 08_01" in printed
    with np.load(out) as data:
        assert data["pose"].shape == (9, 72) and len(data["direction_error_deg"]) == 9
    for split, clips in (("train", {"07_01"}), ("val", {"07_02"}), ("test", {"08_01"})):
        with np.load(out.with_name(f"poses_{split}.npz")) as data:
            assert set(data["clip"].tolist()) == clips
    report = json.loads(out.with_suffix(".json").read_text())
    assert {entry["clip"] for entry in report} == {"07_01", "07_02", "08_01"}
    assert all(entry["kept"] == 3 for entry in report)
