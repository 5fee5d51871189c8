"""Retargeting mocap to the body model's 24 SMPL joint rotations, skeleton-agnostically.

The source skeleton's forward kinematics gives 3D points; the body model (mean shape) is then
fitted to them, batched over frames: its joints' *bone directions* along the correspondences
(scale-free, so other proportions do not bend the pose) and, weakly, their positions after a
per-clip scale and a per-frame translation. A small penalty on joint angles settles what the
points leave open (twist about a bone that has no side marker). Every frame gets a residual
(mean bone-direction error in degrees, mean joint distance in mm) and frames fitted badly are
dropped by the caller.

The correspondence tables, one per source skeleton, live here and only here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spin_diff.body import joints as J
from spin_diff.data.mocap.skeleton import Motion, forward_kinematics
from spin_diff.errors import BadInputError
from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

# SMPL joint (or a model keypoint of the 49-joint layout, or ``hip_centre``, the midpoint of
# the two hip joints) -> source point name(s); several names are averaged. Mocap roots sit
# higher and further back than SMPL's pelvis, and pelvis joints differ between body models,
# so both sides use the midpoint of the hips instead. Limbs and the neck/head give positions; the torso between pelvis and
# neck is left to the direction pelvis -> neck.
CORRESPONDENCES: dict[str, dict[str, tuple[str, ...]]] = {
    # CMU ASF/AMC (Vicon BodyBuilder skeleton): a bone's name is its far end.
    "cmu_asf": {
        "hip_centre": ("lhipjoint", "rhipjoint"), "left_hip": ("lhipjoint",), "right_hip": ("rhipjoint",),
        "left_knee": ("lfemur",), "right_knee": ("rfemur",), "left_ankle": ("ltibia",),
        "right_ankle": ("rtibia",), "left_foot": ("lfoot",), "right_foot": ("rfoot",),
        "neck": ("lowerneck",), "head": ("upperneck",), "left_shoulder": ("lclavicle",),
        "right_shoulder": ("rclavicle",), "left_elbow": ("lhumerus",), "right_elbow": ("rhumerus",),
        "left_wrist": ("lradius",), "right_wrist": ("rradius",), "left_hand": ("lhand",),
        "right_hand": ("rhand",), "Top of Head (LSP)": ("head",),
    },
    # The CMU BVH conversion with CMU's own bone names (e.g. yuki-koyama/bvh11's subject 131).
    "cmu_bvh": {
        "hip_centre": ("LeftHip", "RightHip"), "left_hip": ("LeftHip",), "right_hip": ("RightHip",),
        "left_knee": ("LeftKnee",), "right_knee": ("RightKnee",), "left_ankle": ("LeftAnkle",),
        "right_ankle": ("RightAnkle",), "left_foot": ("LeftToe",), "right_foot": ("RightToe",),
        "neck": ("Neck",), "head": ("Head",), "left_shoulder": ("LeftShoulder",),
        "right_shoulder": ("RightShoulder",), "left_elbow": ("LeftElbow",), "right_elbow": ("RightElbow",),
        "left_wrist": ("LeftWrist",), "right_wrist": ("RightWrist",), "left_hand": ("LFingers",),
        "right_hand": ("RFingers",), "Top of Head (LSP)": ("Head_end",),
    },
    # B. Hahne's MotionBuilder-friendly CMU BVH release (and Mixamo-like rigs). Written from
    # its published bone names; not yet run on its files (none were available here).
    "motionbuilder_bvh": {
        "hip_centre": ("LeftUpLeg", "RightUpLeg"), "left_hip": ("LeftUpLeg",), "right_hip": ("RightUpLeg",),
        "left_knee": ("LeftLeg",), "right_knee": ("RightLeg",), "left_ankle": ("LeftFoot",),
        "right_ankle": ("RightFoot",), "left_foot": ("LeftToeBase",), "right_foot": ("RightToeBase",),
        "neck": ("Neck1",), "head": ("Head",), "left_shoulder": ("LeftArm",), "right_shoulder": ("RightArm",),
        "left_elbow": ("LeftForeArm",), "right_elbow": ("RightForeArm",), "left_wrist": ("LeftHand",),
        "right_wrist": ("RightHand",), "Top of Head (LSP)": ("Head_end",),
    },
    # Reallusion Character Creator's CC_Base rig: DragonForgedTheArtist/IClone-CMU-Mocap's BVH
    # exports of CMU's AMC clips (on iClone's motion dummy). A joint sits at its bone's near end;
    # twist and share bones, toes and fingers are not used. The rig has no point on top of the
    # head; its eyes (eyeball centres, about a centimetre behind the model's eye keypoints,
    # so the head may sit a few degrees pitched) give the head's pitch, roll and turn.
    "cc_base_bvh": {
        "hip_centre": ("CC_Base_L_Thigh", "CC_Base_R_Thigh"), "left_hip": ("CC_Base_L_Thigh",),
        "right_hip": ("CC_Base_R_Thigh",), "left_knee": ("CC_Base_L_Calf",), "right_knee": ("CC_Base_R_Calf",),
        "left_ankle": ("CC_Base_L_Foot",), "right_ankle": ("CC_Base_R_Foot",), "left_foot": ("CC_Base_L_ToeBase",),
        "right_foot": ("CC_Base_R_ToeBase",), "neck": ("CC_Base_NeckTwist01",), "head": ("CC_Base_Head",),
        "left_shoulder": ("CC_Base_L_Upperarm",), "right_shoulder": ("CC_Base_R_Upperarm",),
        "left_elbow": ("CC_Base_L_Forearm",), "right_elbow": ("CC_Base_R_Forearm",),
        "left_wrist": ("CC_Base_L_Hand",), "right_wrist": ("CC_Base_R_Hand",), "left_hand": ("CC_Base_L_Mid1",),
        "right_hand": ("CC_Base_R_Mid1",), "Left Eye": ("CC_Base_L_Eye",), "Right Eye": ("CC_Base_R_Eye",),
    },
}  # fmt: skip

# Direction pairs beyond the kinematic chain: across the hips and shoulders (pelvis and chest
# twist), and to the top of the head or the eyes (head pitch and roll), where a table has them.
_CROSS_SEGMENTS = (("left_hip", "right_hip"), ("left_shoulder", "right_shoulder"), ("head", "Top of Head (LSP)"),
                   ("head", "Left Eye"), ("head", "Right Eye"))  # fmt: skip


def detect_skeleton_kind(point_names: list[str]) -> str:
    """The correspondence table whose source points the skeleton has (all of them)."""
    present = set(point_names)
    for kind, table in CORRESPONDENCES.items():
        if all(set(names) <= present for names in table.values()):
            return kind
    best = max(CORRESPONDENCES, key=lambda k: sum(set(n) <= present for n in CORRESPONDENCES[k].values()))
    missing = sorted({n for names in CORRESPONDENCES[best].values() for n in names} - present)
    raise BadInputError(
        f"unknown source skeleton: no correspondence table matches its joints (closest {best!r} lacks "
        f"{missing}); add a table to spin_diff/data/mocap/retarget.py:CORRESPONDENCES"
    )


@dataclass
class RetargetConfig:
    iterations: int = 300
    lr: float = 0.05
    position_weight: float = 1.0  # per m^2, beside direction errors (1 - cos) of order 1e-2
    angle_weight: float = 1e-3  # on squared joint angles (rad^2), settles unobserved twist
    # Collars and spine joints have no marker of their own: without a firmer pull to rest, the
    # fit bends them to trade the (weak) position term against bone directions.
    stiff_joints: tuple[str, ...] = ("spine1", "spine2", "spine3", "left_collar", "right_collar")
    stiff_factor: float = 30.0
    # Knees and elbows are hinges: joint positions fix how far they bend but not whether the
    # bend is a rotation about the hinge axis with the hip/shoulder twisted, or about another
    # axis. Penalising rotation off the hinge (SMPL's local axes: knees flex about x, elbows
    # about y; z is off-hinge for both, the remaining axis is twist) picks the anatomical one.
    hinge_joints: tuple[str, ...] = ("left_knee", "right_knee", "left_elbow", "right_elbow")
    off_hinge_weight: float = 1.0  # on z, rad^2
    hinge_twist_weight: float = 0.1  # on the twist axis (y for knees, x for elbows), rad^2
    batch_size: int = 2048


@dataclass
class RetargetResult:
    """Shapes: F frames."""

    pose: np.ndarray  # (F, 72) axis-angle, the source's world frame (y up for CMU)
    transl: np.ndarray  # (F, 3) metres, model pelvis placement after scaling the source
    direction_error_deg: np.ndarray  # (F,) mean over correspondence segments
    position_error_mm: np.ndarray  # (F,) mean over corresponded joints
    scale: float  # source units -> metres of the body model


def _model_index(name: str) -> tuple[str, int]:
    if name == "hip_centre":
        return "hip_centre", -1
    if name in J.SMPL_JOINT_NAMES:
        return "skeleton", J.SMPL_JOINT_NAMES.index(name)
    return "joints", J.JOINT_NAMES.index(name)


def _segments(table: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """Pairs along SMPL's tree between corresponded joints (each to its nearest corresponded
    ancestor), plus the cross segments."""
    pairs = []
    mapped = lambda k: k == 0 or J.SMPL_JOINT_NAMES[k] in table  # noqa: E731  (the pelvis: hip_centre)
    for k, name in enumerate(J.SMPL_JOINT_NAMES):
        if name not in table or k == 0:
            continue
        parent = J.SMPL_PARENTS[k]
        while parent >= 0 and not mapped(parent):
            parent = J.SMPL_PARENTS[parent]
        if parent == 0 and name in ("left_hip", "right_hip"):
            continue  # the hip centre lies between the hips: the hip-to-hip segment says it all
        if parent >= 0:
            pairs.append(("hip_centre" if parent == 0 else J.SMPL_JOINT_NAMES[parent], name))
    pairs += [pair for pair in _CROSS_SEGMENTS if pair[0] in table and pair[1] in table]
    return pairs


def source_points(motion: Motion, table: dict[str, tuple[str, ...]]) -> tuple[np.ndarray, list[str]]:
    """(F, C, 3) source positions of the table's entries (averaging multi-point entries)."""
    points, _ = forward_kinematics(motion.skeleton, motion.rotations, motion.root_positions)
    names = list(table)
    columns = [np.mean([points[:, motion.skeleton.point_index(p)] for p in table[n]], axis=0) for n in names]
    return np.stack(columns, 1), names


def _model_points(model, rotmats: torch.Tensor, names: list[str]) -> torch.Tensor:
    out = model.fast(rotmats, torch.zeros(rotmats.shape[0], model.num_betas, dtype=rotmats.dtype, device=rotmats.device))
    columns = []
    for name in names:
        where, index = _model_index(name)
        if where == "hip_centre":
            columns.append(out.skeleton[:, 1:3].mean(1))
        else:
            columns.append((out.skeleton if where == "skeleton" else out.joints)[:, index])
    return torch.stack(columns, 1)


def _kabsch(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rotations R (B, 3, 3) minimising ||R source - target|| over centred point sets (B, N, 3)."""
    source = source - source.mean(1, keepdim=True)
    target = target - target.mean(1, keepdim=True)
    u, _, vh = torch.linalg.svd(target.transpose(1, 2) @ source)
    sign = torch.sign(torch.linalg.det(u @ vh))
    fix = torch.diag_embed(torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], -1))
    return u @ fix @ vh


def source_scale(motion: Motion, model, kind: str) -> float:
    """Source units -> body-model metres, one per clip: the source's rest pose against the
    model's, summed along the correspondence segments."""
    table = CORRESPONDENCES[kind]
    rest = Motion(motion.skeleton, np.broadcast_to(np.eye(3), (1,) + motion.rotations.shape[1:]).copy(),
                  np.zeros((1, 3)), motion.frame_time)  # fmt: skip
    rest_points, names = source_points(rest, table)
    with torch.no_grad():
        template = model.fast.joint_template
        eye = torch.eye(3, dtype=template.dtype, device=template.device).expand(1, 24, 3, 3)
        model_rest = _model_points(model, eye, names)[0].double().cpu().numpy()
    pairs = [(names.index(a), names.index(b)) for a, b in _segments(table)]
    source_length = sum(np.linalg.norm(rest_points[0, b] - rest_points[0, a]) for a, b in pairs)
    model_length = sum(np.linalg.norm(model_rest[b] - model_rest[a]) for a, b in pairs)
    if not source_length > 0:
        raise BadInputError(f"{motion.path}: the source skeleton has zero-length bones between its corresponded joints")
    return float(model_length / source_length)


def retarget(motion: Motion, model, config: RetargetConfig | None = None, kind: str | None = None) -> RetargetResult:
    """Fit the body model's 24 rotations to a clip (all its frames), batched over frames."""
    config = config or RetargetConfig()
    kind = kind or motion.skeleton_kind or detect_skeleton_kind(motion.skeleton.point_names)
    table = CORRESPONDENCES[kind]
    points, names = source_points(motion, table)
    segments = [(names.index(a), names.index(b)) for a, b in _segments(table)]
    dtype, device = model.fast.joint_template.dtype, model.fast.joint_template.device
    seg_a = torch.tensor([a for a, _ in segments], device=device)
    seg_b = torch.tensor([b for _, b in segments], device=device)
    stiffness = torch.full((24, 1), config.angle_weight, dtype=dtype, device=device)
    stiffness[[J.SMPL_JOINT_NAMES.index(n) for n in config.stiff_joints]] *= config.stiff_factor
    stiffness[0] = 0.0  # the global orientation is free
    stiffness = stiffness.expand(24, 3).clone()
    for name in config.hinge_joints:
        k = J.SMPL_JOINT_NAMES.index(name)
        twist = 1 if "knee" in name else 0
        stiffness[k, 2] = config.off_hinge_weight
        stiffness[k, twist] = config.hinge_twist_weight

    scale = source_scale(motion, model, kind)

    with torch.no_grad():
        model_rest_t = _model_points(model, torch.eye(3, dtype=dtype, device=device).expand(1, 24, 3, 3), names)[0]
    torso = [names.index(n) for n in ("hip_centre", "left_hip", "right_hip", "neck", "left_shoulder", "right_shoulder")]
    poses, transls, dir_err, pos_err = [], [], [], []
    for start in range(0, motion.num_frames, config.batch_size):
        target = torch.as_tensor(points[start : start + config.batch_size] * scale, dtype=dtype, device=device)
        batch = target.shape[0]
        orient0 = _kabsch(model_rest_t[torso].expand(batch, -1, -1), target[:, torso])
        aa = torch.zeros(batch, 24, 3, dtype=dtype, device=device)
        aa[:, 0] = matrix_to_axis_angle(orient0)
        aa.requires_grad_(True)
        centre = names.index("hip_centre")
        transl = (target[:, centre] - (orient0 @ model_rest_t[centre])).detach().clone().requires_grad_(True)
        target_dir = torch.nn.functional.normalize(target[:, seg_b] - target[:, seg_a], dim=-1)
        optimizer = torch.optim.Adam([aa, transl], lr=config.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.iterations, eta_min=config.lr / 20)

        def losses():
            joints = _model_points(model, axis_angle_to_matrix(aa), names) + transl[:, None]
            direction = torch.nn.functional.normalize(joints[:, seg_b] - joints[:, seg_a], dim=-1)
            cos = (direction * target_dir).sum(-1)
            position = ((joints - target) ** 2).sum(-1)
            return cos, position

        for _ in range(config.iterations):
            optimizer.zero_grad(set_to_none=True)
            cos, position = losses()
            loss = (1 - cos).sum(-1) + config.position_weight * position.mean(-1) + (stiffness * aa**2).sum((1, 2))
            loss.sum().backward()
            optimizer.step()
            schedule.step()
        with torch.no_grad():
            cos, position = losses()
            dir_err.append(torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).mean(-1).cpu().numpy())
            pos_err.append(1000 * position.sqrt().mean(-1).cpu().numpy())
            poses.append(matrix_to_axis_angle(axis_angle_to_matrix(aa)).reshape(batch, 72).double().cpu().numpy())
            transls.append(transl.double().cpu().numpy())
    return RetargetResult(np.concatenate(poses), np.concatenate(transls), np.concatenate(dir_err),
                          np.concatenate(pos_err), scale)  # fmt: skip
