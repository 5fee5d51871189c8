"""SPIN's evaluation protocols: which ground truth, which joints, which root, which metrics.

As SPIN's ``eval.py`` (docs/conventions.md#evaluation-protocols):

* predicted joints are the body model's H36M-regressed joints (``J_regressor_h36m``), 14 LSP
  joints (``H36M_TO_J14``; 17 for MPI-INF-3DHP, ``H36M_TO_J17``), centred on the H36M pelvis
  (regressed joint 0);
* ground truth from 3D joints (``S``, H36M and MPI-INF-3DHP files): the same joints of SPIN's
  24-joint layout (``J24_TO_J14`` / ``J24_TO_J17``), centred on its pelvis joint;
* ground truth from SMPL parameters (3DPW, the project's synthetic sets, any file with
  ``pose``/``shape``/``has_smpl``): the ground-truth mesh through the same regressor and root.
  3DPW's meshes are gendered: with male and female models given they are used per sample,
  otherwise the neutral model (flagged in the summary: not comparable to published numbers);
* MPJPE and PA-MPJPE (similarity Procrustes per sample) in millimetres; PVE (mean vertex
  error of the pelvis-centred meshes) where ground-truth SMPL exists;
* LSP (``lsp_dataset_test.npz``) has no 3D ground truth: SPIN evaluates masks and part
  segmentation there, which needs UP-3D's annotations; here only the 2D error of the 14 LSP
  keypoints in the crop is reported (the segmentation metrics are not implemented).

Files are read as SPIN wrote them (:func:`spin_diff.data.spin_npz.read_spin_npz`); the
protocol comes from the file name (``h36m_valid_protocol1``, ``h36m_valid_protocol2``,
``3dpw_test``, ``mpi_inf_3dhp_test``, ``lsp_dataset_test``) or from the keys (``smpl`` for
files with ground-truth SMPL, e.g. ``spin-diff synth`` sets).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spin_diff.body.joints import H36M_TO_J14, H36M_TO_J17
from spin_diff.body.model import pose_to_rotmat
from spin_diff.constants import CROP_SIZE
from spin_diff.data.spin_npz import SpinDataError, dataset_keypoints, read_spin_npz
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.geometry.alignment import mpjpe, pa_mpjpe

log = logging.getLogger(__name__)

__all__ = [
    "GT_PELVIS",
    "H36M_PELVIS",
    "J24_TO_J14",
    "J24_TO_J17",
    "PROTOCOLS",
    "EvalSet",
    "GroundTruthBodies",
    "detect_protocol",
    "keypoint_errors_2d",
    "load_eval_set",
    "mesh_joints",
    "pose_errors",
]

PROTOCOLS = ("h36m-p1", "h36m-p2", "3dpw", "mpi-inf-3dhp", "lsp", "smpl")
# The 14 (17) evaluation joints within SPIN's 24 GT joints: the 14 LSP joints lead the
# layout; then the MPII pelvis, the thorax and the H36M head.
J24_TO_J17 = tuple(range(14)) + (14, 15, 18)
J24_TO_J14 = J24_TO_J17[:14]
H36M_PELVIS = 0  # row of J_regressor_h36m
GT_PELVIS = 14  # "Pelvis (MPII)" in the 24 GT joints

_NEEDS = {
    "h36m-p1": ("S",),
    "h36m-p2": ("S",),
    "mpi-inf-3dhp": ("S",),
    "3dpw": ("pose", "shape"),
    "smpl": ("pose", "shape"),
    "lsp": ("part",),
}


@dataclass
class EvalSet:
    """An evaluation file and what its protocol needs."""

    path: Path
    protocol: str
    data: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(np.asarray(self.data["center"]).shape[0])

    @property
    def joint_count(self) -> int:
        return 17 if self.protocol == "mpi-inf-3dhp" else 14

    @property
    def has_3d(self) -> bool:
        return self.protocol != "lsp"

    @property
    def has_smpl_gt(self) -> bool:
        return self.protocol in ("3dpw", "smpl")

    def keypoints_crop(self, crop_size: int = CROP_SIZE) -> np.ndarray | None:
        """``(N, 49, 3)`` 2D keypoints in each sample's crop (pixels + confidence), or None
        when the file has none. Synthetic sets give their detector-like keypoints."""
        if not any(k in self.data for k in ("openpose", "part", "openpose_detected", "part_detected")):
            return None
        return dataset_keypoints(self.data, crop_size)


def detect_protocol(path: str | Path, data: dict) -> str:
    """The protocol of an evaluation file, from its name, else from its keys."""
    stem = Path(path).stem.lower().replace("-", "_")
    if "h36m" in stem:
        return "h36m-p2" if ("protocol2" in stem or stem.endswith("_p2")) else "h36m-p1"
    if "3dpw" in stem:
        return "3dpw"
    if "mpi_inf" in stem or "3dhp" in stem:
        return "mpi-inf-3dhp"
    if "lsp" in stem and "S" not in data and "pose" not in data:
        return "lsp"
    if "pose" in data and "shape" in data:
        return "smpl"
    if "S" in data:
        return "h36m-p1"
    if "part" in data:
        return "lsp"
    raise BadInputError(
        f"{path}: cannot tell its evaluation protocol: no ground truth (S, or pose and shape) and no "
        f"2D keypoints (part); keys: {sorted(data)}"
    )


def load_eval_set(path: str | Path, protocol: str | None = None) -> EvalSet:
    """Read an evaluation npz as it is and check it holds what its protocol needs."""
    path = Path(path)
    data = read_spin_npz(path, require=("center", "scale"))
    protocol = protocol or detect_protocol(path, data)
    if protocol not in PROTOCOLS:
        raise BadInputError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    missing = [k for k in _NEEDS[protocol] if k not in data]
    if missing:
        raise SpinDataError(
            f"{path}: the {protocol} protocol needs key(s) {missing}; present: {sorted(data)}. "
            "Pass --protocol to evaluate it another way"
        )
    if protocol == "smpl" and "has_smpl" in data:
        without = int((np.asarray(data["has_smpl"]) < 0.5).sum())
        if without:
            raise SpinDataError(
                f"{path}: {without} rows have has_smpl = 0, so no ground truth to evaluate against"
            )
    truth = [k for k in _NEEDS[protocol] if k in ("pose", "shape")]
    for key in truth:  # NaN ground truth would poison the metrics (or their Procrustes solve)
        values = np.asarray(data[key], dtype=np.float64).reshape(len(data[key]), -1)
        bad = np.flatnonzero(~np.isfinite(values).all(1))
        if bad.size:
            raise SpinDataError(
                f"{path}: ground truth {key!r} has NaN or inf in {bad.size} row(s) (first {bad[:5].tolist()}); "
                "drop those rows (or, for SMPL, set has_smpl to 0 and evaluate another way)"
            )
    if len(data["center"]) == 0:
        raise SpinDataError(f"{path} has no examples (0 rows): nothing to evaluate")
    notes = []
    if protocol == "h36m-p2":
        notes.append("H36M protocol 2: the file is taken as given (SPIN's holds camera 60457274 only)")
    if protocol == "lsp":
        notes.append("LSP: 2D keypoint error only; SPIN's mask/part segmentation metrics are not implemented")
    return EvalSet(path=path, protocol=protocol, data=data, notes=notes)


def mesh_joints(body, rotmat: torch.Tensor, betas: torch.Tensor, joint_count: int = 14):
    """Evaluation joints and vertices of meshes, both centred on the H36M pelvis.

    Returns ``(joints (B, joint_count, 3), vertices (B, V, 3))`` in metres.
    """
    if body.h36m_regressor is None:
        raise MissingInputError(
            f"no J_regressor_h36m.npy next to {body.files.model}: evaluation needs it "
            "(SPIN's data file; pass --set body.j_regressor_h36m=PATH)"
        )
    out = body(rotmat, betas, check_finite=False)
    pelvis = out.h36m_joints[:, H36M_PELVIS : H36M_PELVIS + 1]
    order = list(H36M_TO_J17 if joint_count == 17 else H36M_TO_J14)
    return out.h36m_joints[:, order] - pelvis, out.vertices - pelvis


class GroundTruthBodies:
    """Ground-truth joints (and meshes) of an :class:`EvalSet`, batch by batch.

    Args:
        evalset: the file.
        body: the neutral body model (predictions' model).
        male, female: gendered models for 3DPW (both or neither).
    """

    def __init__(self, evalset: EvalSet, body, male=None, female=None) -> None:
        self.evalset = evalset
        self.body = body
        self.male, self.female = male, female
        if (male is None) != (female is None):
            raise BadInputError("give both gendered models (male and female) or neither")
        if evalset.protocol == "3dpw":
            if male is None:
                evalset.notes.append(
                    "3DPW ground truth from the NEUTRAL model (no gendered models given): not "
                    "comparable to published 3DPW numbers; pass --gendered-models DIR"
                )
            elif "gender" not in evalset.data:
                raise BadInputError(f"{evalset.path}: 3DPW file without a 'gender' key; cannot pick the models")

    @torch.no_grad()
    def batch(self, rows: np.ndarray, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(joints (B, J, 3), vertices (B, V, 3) or None)`` for ``rows``, pelvis-centred."""
        data, count = self.evalset.data, self.evalset.joint_count
        if not self.evalset.has_3d:
            return None, None
        if not self.evalset.has_smpl_gt:
            S = torch.as_tensor(
                np.asarray(data["S"], dtype=np.float64)[rows], dtype=torch.float32, device=device
            )
            order = list(J24_TO_J17 if count == 17 else J24_TO_J14)
            return S[:, order, :3] - S[:, GT_PELVIS : GT_PELVIS + 1, :3], None
        pose = torch.as_tensor(
            np.asarray(data["pose"], dtype=np.float64)[rows], dtype=torch.float32, device=device
        )
        betas = torch.as_tensor(
            np.asarray(data["shape"], dtype=np.float64)[rows], dtype=torch.float32, device=device
        )

        rotmat = pose_to_rotmat(pose)
        if self.male is None or self.evalset.protocol != "3dpw":
            return mesh_joints(self.body, rotmat, betas[:, : self.body.num_betas], count)
        joints_m, vertices_m = mesh_joints(self.male, rotmat, betas[:, : self.male.num_betas], count)
        joints_f, vertices_f = mesh_joints(self.female, rotmat, betas[:, : self.female.num_betas], count)
        female = torch.as_tensor(
            np.char.lower(np.asarray(data["gender"])[rows].astype(str)) == "f", device=device
        )
        joints = torch.where(female[:, None, None], joints_f, joints_m)
        vertices = torch.where(female[:, None, None], vertices_f, vertices_m)
        return joints, vertices


def pose_errors(
    pred_joints: torch.Tensor,
    gt_joints: torch.Tensor,
    pred_vertices: torch.Tensor | None = None,
    gt_vertices: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-sample errors in mm: ``mpjpe``, ``pa_mpjpe`` and, with meshes, ``pve`` (each (B,)).

    Joints and vertices are pelvis-centred already (:func:`mesh_joints`).
    """
    pred, gt = pred_joints.double(), gt_joints.double()
    errors = {"mpjpe": 1000 * mpjpe(pred, gt), "pa_mpjpe": 1000 * pa_mpjpe(pred, gt)}
    if pred_vertices is not None and gt_vertices is not None:
        if pred_vertices.shape != gt_vertices.shape:
            raise BadInputError(
                f"PVE needs meshes of one topology: predicted {tuple(pred_vertices.shape)} vs ground truth "
                f"{tuple(gt_vertices.shape)}"
            )
        errors["pve"] = 1000 * torch.linalg.vector_norm(
            pred_vertices.double() - gt_vertices.double(), dim=-1
        ).mean(-1)
    return errors


def keypoint_errors_2d(pred_keypoints: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Mean 2D error (crop pixels) over the confident LSP joints (the first 14 GT joints of the
    49 layout): ``(B, 49, 2)`` predicted, ``(B, 49, 3)`` annotated -> ``(B,)`` (NaN where no
    joint is annotated)."""
    lsp = slice(25, 25 + 14)
    distance = torch.linalg.vector_norm(pred_keypoints[:, lsp] - keypoints[:, lsp, :2], dim=-1)
    visible = (keypoints[:, lsp, 2] > 0).to(distance.dtype)
    return (distance * visible).sum(-1) / visible.sum(-1)
