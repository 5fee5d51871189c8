"""Small ASF/AMC and BVH files written from the bundled body model's rest skeleton, with
known joint angles, so that imports can be checked against the source's own kinematics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spin_diff.body import joints as J
from spin_diff.body.model import load_body_model

# ASF bone -> (start, end) among the model's rest points; parents follow the list order.
ASF_BONES = (
    ("lhipjoint", "root", "pelvis", "left_hip"), ("lfemur", "lhipjoint", "left_hip", "left_knee"),
    ("ltibia", "lfemur", "left_knee", "left_ankle"), ("lfoot", "ltibia", "left_ankle", "left_foot"),
    ("rhipjoint", "root", "pelvis", "right_hip"), ("rfemur", "rhipjoint", "right_hip", "right_knee"),
    ("rtibia", "rfemur", "right_knee", "right_ankle"), ("rfoot", "rtibia", "right_ankle", "right_foot"),
    ("lowerback", "root", "pelvis", "spine2"), ("thorax", "lowerback", "spine2", "spine3"),
    ("lowerneck", "thorax", "spine3", "neck"), ("upperneck", "lowerneck", "neck", "head"),
    ("head", "upperneck", "head", "Top of Head (LSP)"),
    ("lclavicle", "thorax", "spine3", "left_shoulder"), ("lhumerus", "lclavicle", "left_shoulder", "left_elbow"),
    ("lradius", "lhumerus", "left_elbow", "left_wrist"), ("lhand", "lradius", "left_wrist", "left_hand"),
    ("rclavicle", "thorax", "spine3", "right_shoulder"), ("rhumerus", "rclavicle", "right_shoulder", "right_elbow"),
    ("rradius", "rhumerus", "right_elbow", "right_wrist"), ("rhand", "rradius", "right_wrist", "right_hand"),
)  # fmt: skip
ASF_DOFS = {"lfemur": "rx ry rz", "rfemur": "rx ry rz", "ltibia": "rx", "rtibia": "rx", "lhumerus": "rx ry rz",
            "rhumerus": "rx ry rz", "lradius": "rx", "rradius": "rx", "lowerback": "rx ry rz",
            "upperneck": "rx ry rz", "lfoot": "rx rz", "rfoot": "rx rz"}  # fmt: skip
# A non-trivial local frame on one bone (CMU's femurs are tilted by 20 degrees about z).
ASF_AXES = {"lfemur": "0 0 20", "rfemur": "0 0 -20"}

# Frames of known angles, degrees: bone -> dof values (in ASF_DOFS order).
KNOWN_FRAMES = (
    {},
    {"ltibia": [60.0], "lfemur": [-40.0, 0.0, 0.0], "rhumerus": [0.0, 0.0, -50.0], "rradius": [70.0]},
    {"rtibia": [90.0], "rfemur": [-70.0, 10.0, 5.0], "lhumerus": [-60.0, 20.0, 30.0], "lradius": [45.0],
     "lowerback": [15.0, 10.0, 0.0]},
)  # fmt: skip
KNOWN_ROOT = ((0.0, 0.0, 0.0), (10.0, 30.0, -5.0), (-20.0, 120.0, 10.0))  # degrees, rx ry rz
UNITS_PER_METRE = 1 / 0.05644  # CMU's length unit (inches / 0.45), so scale handling is exercised


def model_rest_points(model) -> dict[str, np.ndarray]:
    eye = torch.eye(3).expand(1, 24, 3, 3)
    with torch.no_grad():
        out = model.fast(eye, torch.zeros(1, model.num_betas))
    points = {n: out.skeleton[0, k].double().numpy() for k, n in enumerate(J.SMPL_JOINT_NAMES)}
    for name in ("Top of Head (LSP)", "Left Eye", "Right Eye"):
        points[name] = out.joints[0, J.JOINT_NAMES.index(name)].double().numpy()
    return points


def write_asf(path: Path, points: dict[str, np.ndarray], unit: float = UNITS_PER_METRE) -> Path:
    lines = [":version 1.10", ":name test", ":units", "  mass 1.0", "  length 0.45", "  angle deg",
             ":root", "  order TX TY TZ RX RY RZ", "  axis XYZ", "  position 0 0 0", "  orientation 0 0 0",
             ":bonedata"]  # fmt: skip
    for k, (name, _, start, end) in enumerate(ASF_BONES, start=1):
        vector = (points[end] - points[start]) * unit
        length = float(np.linalg.norm(vector))
        direction = vector / length
        lines += ["  begin", f"    id {k}", f"    name {name}",
                  f"    direction {direction[0]:.9f} {direction[1]:.9f} {direction[2]:.9f}",
                  f"    length {length:.9f}", f"    axis {ASF_AXES.get(name, '0 0 0')} XYZ"]  # fmt: skip
        if name in ASF_DOFS:
            lines.append(f"    dof {ASF_DOFS[name]}")
        lines.append("  end")
    lines += [":hierarchy", "  begin"]
    children: dict[str, list[str]] = {}
    for name, parent, _, _ in ASF_BONES:
        children.setdefault(parent, []).append(name)
    lines += [f"    {parent} {' '.join(kids)}" for parent, kids in children.items()]
    lines += ["  end"]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_amc(path: Path, frames=KNOWN_FRAMES, roots=KNOWN_ROOT, unit: float = UNITS_PER_METRE) -> Path:
    lines = ["#!OML:ASF test.asf", ":FULLY-SPECIFIED", ":DEGREES"]
    for f, (frame, root) in enumerate(zip(frames, roots), start=1):
        lines.append(str(f))
        lines.append(f"root {0.1 * f * unit:.4f} {1.0 * unit:.4f} {0.0:.4f} {root[0]} {root[1]} {root[2]}")
        for name, dofs in ASF_DOFS.items():
            values = frame.get(name, [0.0] * len(dofs.split()))
            lines.append(f"{name} " + " ".join(f"{v:.4f}" for v in values))
    path.write_text("\n".join(lines) + "\n")
    return path


# BVH joints (CMU's BVH names), parent, model point; End Sites as (parent joint, model point).
BVH_JOINTS = (
    ("Hips", None, "pelvis"), ("LeftHip", "Hips", "left_hip"), ("LeftKnee", "LeftHip", "left_knee"),
    ("LeftAnkle", "LeftKnee", "left_ankle"), ("LeftToe", "LeftAnkle", "left_foot"),
    ("RightHip", "Hips", "right_hip"), ("RightKnee", "RightHip", "right_knee"),
    ("RightAnkle", "RightKnee", "right_ankle"), ("RightToe", "RightAnkle", "right_foot"),
    ("Chest", "Hips", "spine2"), ("Neck", "Chest", "neck"), ("Head", "Neck", "head"),
    ("LeftShoulder", "Chest", "left_shoulder"), ("LeftElbow", "LeftShoulder", "left_elbow"),
    ("LeftWrist", "LeftElbow", "left_wrist"), ("LFingers", "LeftWrist", "left_hand"),
    ("RightShoulder", "Chest", "right_shoulder"), ("RightElbow", "RightShoulder", "right_elbow"),
    ("RightWrist", "RightElbow", "right_wrist"), ("RFingers", "RightWrist", "right_hand"),
)  # fmt: skip
BVH_END_SITES = {"Head": "Top of Head (LSP)", "LeftToe": None, "RightToe": None, "LFingers": None, "RFingers": None}
# The same skeleton as Reallusion's CC_Base rig names it (IClone-CMU-Mocap's exports), with the
# eyes under the head and no point on top of it.
CC_NAMES = {
    "Hips": "CC_Base_Hip", "LeftHip": "CC_Base_L_Thigh", "LeftKnee": "CC_Base_L_Calf", "LeftAnkle": "CC_Base_L_Foot",
    "LeftToe": "CC_Base_L_ToeBase", "RightHip": "CC_Base_R_Thigh", "RightKnee": "CC_Base_R_Calf",
    "RightAnkle": "CC_Base_R_Foot", "RightToe": "CC_Base_R_ToeBase", "Chest": "CC_Base_Spine02",
    "Neck": "CC_Base_NeckTwist01", "Head": "CC_Base_Head", "LeftShoulder": "CC_Base_L_Upperarm",
    "LeftElbow": "CC_Base_L_Forearm", "LeftWrist": "CC_Base_L_Hand", "LFingers": "CC_Base_L_Mid1",
    "RightShoulder": "CC_Base_R_Upperarm", "RightElbow": "CC_Base_R_Forearm", "RightWrist": "CC_Base_R_Hand",
    "RFingers": "CC_Base_R_Mid1",
}  # fmt: skip
CC_JOINTS = tuple((CC_NAMES[n], CC_NAMES.get(p), point) for n, p, point in BVH_JOINTS) + (
    ("CC_Base_L_Eye", "CC_Base_Head", "Left Eye"), ("CC_Base_R_Eye", "CC_Base_Head", "Right Eye"))
CC_END_SITES = {CC_NAMES[n]: None for n in ("LeftToe", "RightToe", "LFingers", "RFingers")} | {
    "CC_Base_L_Eye": None, "CC_Base_R_Eye": None}
# Known frames: joint -> (Z, Y, X) degrees in channel order "Zrotation Yrotation Xrotation".
BVH_FRAMES = (
    {},
    {"LeftKnee": (0.0, 0.0, 70.0), "LeftHip": (0.0, 0.0, -45.0), "RightShoulder": (-60.0, 0.0, 0.0),
     "RightElbow": (0.0, -80.0, 0.0), "Hips": (0.0, 40.0, 0.0)},
    {"RightKnee": (0.0, 0.0, 100.0), "RightHip": (10.0, 15.0, -80.0), "LeftShoulder": (40.0, 20.0, -30.0),
     "LeftElbow": (0.0, 60.0, 0.0), "Chest": (0.0, 10.0, 20.0), "Hips": (5.0, -100.0, 10.0)},
)  # fmt: skip
CC_FRAMES = tuple({CC_NAMES[n]: v for n, v in frame.items()} for frame in BVH_FRAMES)


def write_bvh(path: Path, points: dict[str, np.ndarray], frames=BVH_FRAMES, unit: float = 100.0,
              joints=BVH_JOINTS, end_sites=BVH_END_SITES) -> Path:  # fmt: skip
    children: dict[str | None, list[tuple[str, str]]] = {}
    for name, parent, point in joints:
        children.setdefault(parent, []).append((name, point))
    lines = ["HIERARCHY"]

    def emit(name: str, point: str, parent_point: str | None, depth: int) -> None:
        pad = "\t" * depth
        offset = (points[point] - points[parent_point]) * unit if parent_point else np.zeros(3)
        lines.append(f"{pad}{'ROOT' if parent_point is None else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(f"{pad}\tOFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        channels = "Xposition Yposition Zposition " if parent_point is None else ""
        count = 6 if parent_point is None else 3
        lines.append(f"{pad}\tCHANNELS {count} {channels}Zrotation Yrotation Xrotation")
        for child, child_point in children.get(name, []):
            emit(child, child_point, point, depth + 1)
        if name in end_sites:
            end = end_sites[name]
            tip = (points[end] - points[point]) * unit if end else np.array([0.0, 0.0, 0.05 * unit])
            lines.extend([f"{pad}\tEnd Site", pad + "\t{", f"{pad}\t\tOFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}",
                          pad + "\t}"])
        lines.append(pad + "}")

    root, root_point = children[None][0]
    emit(root, root_point, None, 0)
    lines += ["MOTION", f"Frames: {len(frames)}", "Frame Time: 0.0333333"]
    for f, frame in enumerate(frames):
        values = []
        for name, parent, _ in _depth_first(children):
            if parent is None:
                values += [0.2 * f * unit, 0.9 * unit, 0.0]
            values += list(frame.get(name, (0.0, 0.0, 0.0)))
        lines.append(" ".join(f"{v:.5f}" for v in values))
    path.write_text("\n".join(lines) + "\n")
    return path


def _depth_first(children):
    order = []

    def visit(name, parent):
        order.append((name, parent, None))
        for child, _ in children.get(name, []):
            visit(child, name)

    visit(children[None][0][0], None)
    return order


@pytest.fixture(scope="session")
def body_model():
    return load_body_model()


@pytest.fixture(scope="session")
def rest_points(body_model):
    return model_rest_points(body_model)
