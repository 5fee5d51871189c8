"""Evaluating a regressor (or the mean pose) on an evaluation file, with refinement rows.

:func:`evaluate` runs batch by batch: the regressor's prediction from crops or keypoints (or
the mean pose), then each refinement row of :mod:`spin_diff.evaluation.refine`, then the
protocol's errors per sample (:mod:`spin_diff.evaluation.protocols`). :func:`write_results`
writes the per-sample CSV and the JSON summary; :func:`write_predictions` writes the
predictions themselves (SPIN's ``eval.py --result_file``); :func:`format_table` is the
printed table.

Saved predictions, per sample (row ``i`` of the arrays is row ``index[i]`` of the dataset):
``pose`` (72 axis-angle), ``betas``, ``camera`` (SPIN's weak-perspective ``[s, tx, ty]`` of the
224 px crop), ``transl`` (the same camera as a translation in the crop camera, metres),
``pred_joints`` (the evaluation joints the errors are computed from: 14 LSP joints, 17 on
MPI-INF-3DHP, pelvis-centred, metres; absent on LSP, which has no 3D ground truth) and
``spin_joints`` (SPIN's 49 joints in the body frame; add ``transl`` for the crop camera). The
mean pose has no camera: NaN there. A refinement row's arrays carry its name as a prefix
(``smplify_pose``, ...).
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spin_diff.constants import CROP_SIZE, FOCAL_LENGTH, NUM_CAMERA, NUM_POSE
from spin_diff.data.crops import load_crops
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.evaluation.protocols import (
    EvalSet,
    GroundTruthBodies,
    keypoint_errors_2d,
    mesh_joints,
    pose_errors,
)
from spin_diff.evaluation.refine import Refiner, change_shares
from spin_diff.fitting.initialisation import regressor_start
from spin_diff.geometry.cameras import perspective_projection, translation_to_weak_perspective
from spin_diff.geometry.rotations import matrix_to_axis_angle
from spin_diff.utils.jsonio import write_json
from spin_diff.utils.seeds import example_seeds

__all__ = [
    "ROW_LABELS",
    "EvalResult",
    "check_predictions_path",
    "evaluate",
    "format_table",
    "write_predictions",
    "write_results",
]

ROW_LABELS = {
    "none": "regressor",
    "smplify": "+ SMPLify (GMM)",
    "term": "+ SMPLify (GMM + diffusion term)",
    "guided": "+ guided refinement",
}


@dataclass
class EvalResult:
    """Per-sample errors of every row (arrays of length N, mm or crop pixels)."""

    evalset: EvalSet
    source: str  # the checkpoint, or "mean"
    rows: list[str]
    errors: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # row -> metric -> (N,)
    failed: dict[str, np.ndarray] = field(default_factory=dict)  # refinement row -> (N,) bool
    seconds: float = 0.0
    # row -> name -> (N, ...): filled when evaluate(keep_predictions=True)
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        return list(self.errors[self.rows[0]])

    def summary(self) -> dict:
        """The JSON summary: means per row and metric, worse/better shares, failures."""
        rows = {}
        base = self.errors["none"]
        key = "pa_mpjpe" if "pa_mpjpe" in base else "kp2d_px"
        for row in self.rows:
            entry = {metric: _mean(values) for metric, values in self.errors[row].items()}
            if row != "none":
                worse, better = change_shares(base[key], self.errors[row][key])
                entry.update({"worse_share": worse, "better_share": better, "compared_on": key})
                entry["failed_fits"] = int(self.failed[row].sum())
            rows[row] = entry
        return {
            "dataset": str(self.evalset.path),
            "protocol": self.evalset.protocol,
            "samples": self.evalset.size,
            "joints": self.evalset.joint_count,
            "start": self.source,
            "units": "mm (kp2d_px: crop pixels, 224 px crop)",
            "rows": rows,
            "notes": list(self.evalset.notes),
            "seconds": self.seconds,
        }


def _mean(values: np.ndarray) -> float:
    finite = np.asarray(values)[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _check_inputs(evalset: EvalSet, regressor, rows: list[str], images, keypoints) -> None:
    """Clear errors, before any work, for what this evaluation cannot do."""
    needs_keypoints = [r for r in rows if r != "none"]
    if keypoints is None and (
        needs_keypoints or (regressor is not None and regressor.input_kind == "keypoints")
    ):
        what = f"--refine {','.join(needs_keypoints)}" if needs_keypoints else "a keypoint regressor"
        raise BadInputError(
            f"{what} needs 2D keypoints, and {evalset.path} has none (no openpose/part keys; SPIN's H36M "
            "evaluation files hold only 3D joints). Use an image checkpoint with --images, without --refine"
        )
    if regressor is not None and regressor.input_kind == "image":
        if images is None:
            raise BadInputError(
                "the checkpoint is an image regressor: it reads the person crops, so pass --images DIR "
                f"(the folder {evalset.path.name}'s imgname paths are relative to), or use a keypoint "
                "checkpoint"
            )
        if "imgname" not in evalset.data:
            raise BadInputError(
                f"{evalset.path} has no 'imgname' key: the image regressor cannot find the crops"
            )
        missing = [str(n) for n in evalset.data["imgname"] if not (Path(images) / str(n)).is_file()]
        if missing:
            raise MissingInputError(
                f"{len(missing)} image(s) of {evalset.path.name} are not under --images {images} "
                f"(first: {missing[:3]})"
            )
    if evalset.protocol == "lsp" and regressor is None and not needs_keypoints:
        raise BadInputError(
            "LSP is evaluated in 2D: --init mean has no camera; add --refine smplify or use a checkpoint"
        )


def _predict(regressor, body, evalset, rows_idx, keypoints, images, crop_size, device):
    """The start of every row: ``(rotmat, betas, transl or None, features or None)``."""
    batch = rows_idx.size
    if regressor is None:
        rotmat = body.mean_pose_rotmat(batch).to(device).clone()
        return rotmat, torch.zeros(batch, body.num_betas, device=device), None, None

    if regressor.input_kind == "image":
        paths = [Path(images) / str(n) for n in evalset.data["imgname"][rows_idx]]
        inputs = load_crops(
            paths, evalset.data["center"][rows_idx], evalset.data["scale"][rows_idx], crop_size
        )
    else:
        inputs = torch.as_tensor(keypoints[rows_idx], dtype=torch.float32)
    start = regressor_start(regressor, inputs, body.num_betas)
    return start.rotmat.to(device), start.betas.to(device), start.transl.to(device), start.features


def evaluate(
    evalset: EvalSet,
    body,
    *,
    regressor=None,
    source: str = "mean",
    rows: list[str] = ("none",),
    fitting=None,
    gendered: tuple | None = None,
    images: str | Path | None = None,
    batch_size: int = 64,
    limit: int | None = None,
    progress: bool = True,
    keep_predictions: bool = False,
) -> EvalResult:
    """Evaluate the regressor (``None``: the mean pose) and the refinement ``rows`` on ``evalset``.

    Args:
        body: the body model predictions are made with (neutral).
        fitting: the :class:`~spin_diff.fitting.config.FittingConfig` refinements derive from.
        gendered: ``(male, female)`` body models for 3DPW's ground truth, or None.
        images: the folder ``imgname`` is relative to (image regressors).
        keep_predictions: also keep every row's predictions (``result.predictions``, for
            :func:`write_predictions`).
    """
    rows = list(rows)
    if rows[0] != "none":
        raise BadInputError("the first row must be 'none' (the regressor alone)")
    if batch_size < 1:
        raise BadInputError("--batch-size must be at least 1")
    start_time = time.perf_counter()
    crop_size = CROP_SIZE if fitting is None else fitting.crop_size
    focal_length = FOCAL_LENGTH if fitting is None else fitting.focal_length
    keypoints = evalset.keypoints_crop(crop_size)
    _check_inputs(evalset, regressor, rows, images, keypoints)
    device = body.fast.joint_template.device
    truth = GroundTruthBodies(evalset, body, *(gendered or (None, None)))
    refiner = Refiner(body, fitting, rows) if len(rows) > 1 else None
    if refiner is not None and regressor is not None:
        refiner.check_regressor(regressor)
    total = evalset.size if limit is None else min(limit, evalset.size)
    result = EvalResult(evalset=evalset, source=source, rows=rows)
    collected: dict[str, dict[str, list]] = {row: {} for row in rows}
    kept: dict[str, dict[str, list]] = {row: {} for row in rows}
    failed: dict[str, list] = {row: [] for row in rows[1:]}
    bar = tqdm(total=total, unit="sample", desc=f"evaluating {evalset.path.name}", disable=not progress)
    for begin in range(0, total, batch_size):
        idx = np.arange(begin, min(begin + batch_size, total))
        rotmat, betas, transl, features = _predict(regressor, body, evalset, idx, keypoints, images, crop_size, device)
        gt_joints, gt_vertices = truth.batch(idx, device)
        batch_kp = (
            None if keypoints is None else torch.as_tensor(keypoints[idx], dtype=torch.float32, device=device)
        )
        for row in rows:
            row_rot, row_betas, row_transl = rotmat, betas, transl
            if row != "none":
                row_rot, row_betas, row_transl, row_failed = refiner.refine(
                    row, batch_kp, rotmat, betas, transl, condition=features,
                    seeds=example_seeds(evalset.path.stem, idx, device=device),
                )  # fmt: skip
                failed[row].append(row_failed.cpu().numpy())
            errors = {}
            pred_joints = None
            with torch.no_grad():
                if evalset.has_3d:
                    pred_joints, pred_vertices = mesh_joints(body, row_rot, row_betas, evalset.joint_count)
                    errors = pose_errors(
                        pred_joints,
                        gt_joints,
                        pred_vertices if gt_vertices is not None else None,
                        gt_vertices,
                    )
                if evalset.protocol == "lsp":
                    if row_transl is None:
                        errors["kp2d_px"] = torch.full((idx.size,), float("nan"))
                    else:
                        projected = perspective_projection(body.joints(row_rot, row_betas).joints, row_transl)
                        errors["kp2d_px"] = keypoint_errors_2d(projected, batch_kp)
                if keep_predictions:
                    arrays = _prediction_arrays(
                        body, row_rot, row_betas, row_transl, pred_joints, focal_length, crop_size
                    )
                    for name, values in arrays.items():
                        kept[row].setdefault(name, []).append(values)
            for metric, values in errors.items():
                collected[row].setdefault(metric, []).append(values.detach().double().cpu().numpy())
        bar.update(idx.size)
    bar.close()
    result.errors = {
        row: {m: np.concatenate(v) for m, v in metrics.items()} for row, metrics in collected.items()
    }
    result.failed = {row: np.concatenate(v) for row, v in failed.items()}
    if keep_predictions:
        result.predictions = {
            row: {name: np.concatenate(v) for name, v in arrays.items()} for row, arrays in kept.items()
        }
    result.seconds = time.perf_counter() - start_time
    return result


def _prediction_arrays(
    body, rotmat, betas, transl, eval_joints, focal_length, crop_size
) -> dict[str, np.ndarray]:
    """One batch's saved predictions (see the module docstring); ``transl`` None: no camera."""
    batch = rotmat.shape[0]
    if transl is None:
        transl = rotmat.new_full((batch, NUM_CAMERA), float("nan"))
    arrays = {
        "pose": matrix_to_axis_angle(rotmat).reshape(batch, NUM_POSE),
        "betas": betas,
        "camera": translation_to_weak_perspective(transl, focal_length, crop_size),
        "transl": transl,
        "spin_joints": body.joints(rotmat, betas).joints,
    }
    if eval_joints is not None:
        arrays["pred_joints"] = eval_joints
    return {name: values.detach().float().cpu().numpy() for name, values in arrays.items()}


def check_predictions_path(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse, before any work, a predictions file that cannot or should not be written."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(
            f"--save-predictions {path} is a folder; give a file name such as {path / 'predictions.npz'}"
        )
    if path.exists() and not overwrite:
        raise BadInputError(
            f"--save-predictions {path} exists; pass --overwrite to replace it or choose another name"
        )
    # The nearest existing folder above decides; nothing is created before the run succeeds.
    existing = path.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(f"--save-predictions {path}: cannot create its folder ({existing} is a file)")
    if not os.access(existing, os.W_OK):
        raise BadInputError(f"--save-predictions {path}: the folder {existing} is not writable")
    return path


def write_predictions(result: EvalResult, path: str | Path) -> Path:
    """Write ``result.predictions`` as one npz (SPIN's ``--result_file`` keys ``pose``,
    ``betas``, ``camera``, ``pred_joints``, with ``index``/``imgname`` naming the dataset rows),
    atomically: a failed write leaves no file. Returns the path."""
    if not result.predictions:
        raise BadInputError("no predictions kept: evaluate with keep_predictions=True")
    path = Path(path)
    arrays = {}
    for row, row_arrays in result.predictions.items():
        prefix = "" if row == "none" else f"{row}_"
        arrays.update({prefix + name: values for name, values in row_arrays.items()})
    count = arrays["pose"].shape[0]
    arrays["index"] = np.arange(count)
    if "imgname" in result.evalset.data:
        arrays["imgname"] = np.asarray(result.evalset.data["imgname"][:count]).astype(str)
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as handle:  # a file object: np.savez would append .npz to a path
            np.savez(handle, **arrays)
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise BadInputError(f"cannot write --save-predictions {path}: {err.strerror or err}") from None
    return path


def write_results(result: EvalResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``per_sample.csv`` (one row per sample, columns per refinement row and metric) and
    ``summary.json``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = result.evalset.data
    count = len(next(iter(result.errors["none"].values())))
    names = data["imgname"][:count] if "imgname" in data else np.array([""] * count)
    columns = [(row, metric) for row in result.rows for metric in result.errors[row]]
    csv_path = out_dir / "per_sample.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["index", "imgname"] + [f"{row}_{metric}" for row, metric in columns]
        header += [f"{row}_failed" for row in result.rows[1:]]
        writer.writerow(header)
        for i in range(count):
            values = [f"{result.errors[row][metric][i]:.4f}" for row, metric in columns]
            flags = [int(result.failed[row][i]) for row in result.rows[1:]]
            writer.writerow([i, str(names[i]), *values, *flags])
    json_path = out_dir / "summary.json"
    write_json(json_path, result.summary())
    return csv_path, json_path


def format_table(result: EvalResult) -> str:
    """The printed table: one line per row, mean errors and worse/better shares."""
    summary = result.summary()
    metrics = result.metrics
    header = (
        f"{'row':34s}" + "".join(f"{m:>10s}" for m in metrics) + f"{'worse':>8s}{'better':>8s}{'failed':>8s}"
    )
    title = (
        f"{summary['dataset']} ({summary['protocol']}, {summary['samples']} samples, "
        f"{summary['joints']} joints), start: {summary['start']}"
    )
    lines = [
        title,
        header,
        "-" * len(header),
    ]
    for row in result.rows:
        entry = summary["rows"][row]
        cells = "".join(f"{entry[m]:10.1f}" for m in metrics)
        if row == "none":
            extra = f"{'':>8s}{'':>8s}{'':>8s}"
        else:
            shares = f"{100 * entry['worse_share']:7.0f}%{100 * entry['better_share']:7.0f}%"
            extra = f"{shares}{entry['failed_fits']:8d}"
        lines.append(f"{ROW_LABELS[row]:34s}{cells}{extra}")
    lines.append(
        "errors in mm (kp2d_px: crop pixels); worse/better: share of samples whose error moved by > 1 mm"
    )
    lines.extend(f"note: {n}" for n in summary["notes"])
    return "\n".join(lines)
