"""Pictures of a training run: the plot of its logs and a sheet of fixed examples.

* :func:`training_plot`: loss, mean fit score, supervised share and validation against the
  steps (``RUN_DIR/training.png`` at every checkpoint, and the demo's picture).
* :func:`example_request` / :func:`example_sheet`: a few fixed examples of the run's data,
  in their canonical (un-augmented) crop, each drawn as three tiles: the network's current
  prediction over the crop, the fit the store holds for the example (the best in-loop fit,
  ground truth or a static fit) over the crop, and both from the side (prediction blue,
  fit orange). The crop is the image for an image model, the keypoints on grey for a
  keypoint model. TensorBoard receives the sheet every ``summary_every`` steps.

The prediction is made with the network in eval mode and without gradients (BatchNorm's
statistics are not touched), and the training mode is restored after.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import torch

from spin_diff.constants import FOCAL_LENGTH, NUM_POSE
from spin_diff.data.crops import IMAGENET_MEAN, IMAGENET_STD
from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.render.mesh_renderer import look_at_translation, render_mesh
from spin_diff.render.plots import Series, line_chart
from spin_diff.render.views import image_grid
from spin_diff.training.sampler import BatchRequest

__all__ = ["training_plot", "read_csv_rows", "plot_run", "example_request", "example_sheet"]

_PREDICTION = (0.45, 0.62, 0.92)
_FIT = (0.95, 0.60, 0.25)
_GREY = 96
_SIDE = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # 90 degrees about the vertical axis


def training_plot(log_rows: list[dict], validation: list[dict], store: dict | None, steps: int, loss_weights) -> np.ndarray:
    """Four panels against the loop's steps: loss (total and its two main weighted terms,
    ``loss_weights`` a :class:`~spin_diff.training.config.LossConfig`), mean fit score,
    supervised share, held-out PA-MPJPE / MPJPE. ``store`` (optional): the whole store before
    and after the loop (``store_mean_before``/``_after``, ``store_supervised_before``/``_after``),
    drawn at step 0 and ``steps``."""
    step = np.array([r["step"] for r in log_rows], dtype=np.float64)
    column = lambda name: np.array([r[name] for r in log_rows], dtype=np.float64)  # noqa: E731
    w = loss_weights
    xlim = (0.0, float(max(steps, 1)))
    ends = np.array([0.0, steps])
    loss = line_chart(
        [Series("total", step, column("loss"), markers=True),
         Series("2D keypoints term", step, w.scale * w.keypoints * column("loss_keypoints")),
         Series("pose term (fits' rotations)", step, w.scale * w.pose * column("loss_pose")),
         Series("shape term", step, w.scale * w.betas * column("loss_betas"))],
        title="training loss (SPIN's weighted sum)", xlabel="step", ylabel="loss", xlim=xlim,
    )  # fmt: skip
    score_series = [Series("in-loop batches (best of stored and new)", step, column("mean_fit_score"), markers=True)]
    share_series = [Series("in-loop batches", step, 100 * column("supervised_share"), markers=True)]
    if store is not None:
        score_series.append(Series("whole store (before / after the loop)", ends,
                                   np.array([store["store_mean_before"], store["store_mean_after"]]), line=False))  # fmt: skip
        share_series.append(Series("whole store: fits under the threshold", ends,
                                   100 * np.array([store["store_supervised_before"], store["store_supervised_after"]]),
                                   line=False))  # fmt: skip
    score = line_chart(score_series, title="mean fit score (lower is better)", xlabel="step",
                       ylabel="score (GMoF reprojection)", xlim=xlim)  # fmt: skip
    share = line_chart(share_series, title="share of examples supervised by a fit", xlabel="step",
                       ylabel="% of examples", legend="lower right", xlim=xlim)  # fmt: skip
    vstep = np.array([v["step"] for v in validation], dtype=np.float64)
    val = line_chart(
        [Series("PA-MPJPE", vstep, np.array([v.get("pa_mpjpe", np.nan) for v in validation]), markers=True),
         Series("MPJPE", vstep, np.array([v.get("mpjpe", np.nan) for v in validation]), markers=True)],
        title="held-out validation", xlabel="step", ylabel="error (mm)", xlim=xlim,
    )  # fmt: skip
    return image_grid([loss, score, share, val], columns=2, pad=4)


def read_csv_rows(path: Path) -> list[dict[str, float]]:
    """The rows of a run's CSV log as floats (empty cells NaN); [] for a missing file."""
    if not Path(path).is_file():
        return []
    with Path(path).open() as handle:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()} for row in csv.DictReader(handle)]


def plot_run(run_dir: Path, steps: int, loss_weights) -> np.ndarray | None:
    """:func:`training_plot` of a run folder's ``log.csv`` and ``validation.csv`` (None before
    the first logged step)."""
    rows = read_csv_rows(Path(run_dir) / "log.csv")
    if not rows:
        return None
    return training_plot(rows, read_csv_rows(Path(run_dir) / "validation.csv"), None, steps, loss_weights)


def example_request(sizes: list[int], count: int) -> BatchRequest | None:
    """``count`` fixed examples spread evenly over the run's datasets, un-augmented."""
    total = int(sum(sizes))
    if count <= 0 or total == 0:
        return None
    flat = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(np.int64))
    bounds = np.cumsum([0, *sizes])
    dataset = np.searchsorted(bounds, flat, side="right") - 1
    n = flat.size
    return BatchRequest(
        epoch=0, batch=0, dataset=dataset, index=flat - bounds[dataset], flip=np.zeros(n, dtype=bool),
        rotation=np.zeros(n), scale=np.ones(n), colour=np.ones((n, 3)),
    )  # fmt: skip


def _crop_background(batch: dict, crop_size: int) -> np.ndarray:
    """(B, S, S, 3) uint8: the crops (de-normalised), or grey for a keypoint model."""
    if "images" in batch:
        images = batch["images"].detach().cpu().float().numpy().transpose(0, 2, 3, 1)
        rgb = images * np.array(IMAGENET_STD, dtype=np.float32) + np.array(IMAGENET_MEAN, dtype=np.float32)
        return (np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.full((len(batch["keypoints"]), crop_size, crop_size, 3), _GREY, dtype=np.uint8)


def _draw_keypoints(tile: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The confident keypoints (49, 3) of the crop as white dots over ``tile`` (in place)."""
    for x, y, conf in keypoints:
        if conf > 0 and np.isfinite(x) and np.isfinite(y):
            cv2.circle(tile, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1, lineType=cv2.LINE_AA)
    return tile


@torch.no_grad()
def example_sheet(model, body, fitter, batch: dict) -> np.ndarray:
    """The sheet of one batch of fixed examples (module docstring): (rows * S, 3 * S, 3) uint8.

    ``model``: the regressor (not a DDP wrapper); ``fitter``: the run's SMPLify, whose crop
    camera (focal length, crop size) the pictures use and whose scoring gives a stored fit its
    least-squares camera, as SPIN scores it."""
    config = fitter.config
    size = int(config.crop_size)
    was_training = model.training
    model.eval()
    try:
        inputs = batch["images"] if "images" in batch else batch["keypoints"]
        out = model(inputs)
    finally:
        model.train(was_training)
    pred_rotmat, pred_betas, pred_transl = out.rotmat.float(), out.betas.float(), out.transl.float()
    found = batch["stored_found"].cpu().numpy() if "stored_found" in batch else np.zeros(len(inputs), dtype=bool)
    stored_pose = batch["stored_pose"] if "stored_pose" in batch else torch.zeros(len(inputs), NUM_POSE)
    stored_betas = batch["stored_betas"] if "stored_betas" in batch else torch.zeros(len(inputs), body.num_betas)
    _, _, stored_transl = fitter.score(stored_pose.float(), stored_betas.float(), batch["keypoints"])
    num_betas = body.num_betas
    prediction = body(pred_rotmat, pred_betas[:, :num_betas], check_finite=False).vertices
    stored_rotmat = axis_angle_to_matrix(stored_pose.float().reshape(len(inputs), -1, 3))
    fitted = body(stored_rotmat, stored_betas.float()[:, :num_betas], check_finite=False).vertices
    backgrounds = _crop_background(batch, size)
    keypoints = batch["keypoints"].detach().cpu().numpy()
    faces = body.faces
    tiles = []
    centre = (size / 2.0, size / 2.0)
    for i in range(len(inputs)):  # rendering is per picture by nature
        pred_v, pred_t = prediction[i].cpu().numpy(), pred_transl[i].cpu().numpy()
        tile = _over_crop(backgrounds[i], pred_v, faces, pred_t, config.focal_length, centre, _PREDICTION)
        tiles.append(_draw_keypoints(tile, keypoints[i]))
        if found[i] and np.isfinite(stored_transl[i].cpu().numpy()).all():
            fit_v = fitted[i].cpu().numpy()
            tile = _over_crop(backgrounds[i], fit_v, faces, stored_transl[i].cpu().numpy(), config.focal_length, centre, _FIT)
            tiles.append(_draw_keypoints(tile, keypoints[i]))
            tiles.append(_side_view([pred_v, fit_v], faces, size))
        else:
            empty = _draw_keypoints(backgrounds[i].copy(), keypoints[i])
            cv2.putText(empty, "no stored fit", (8, size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(empty)
            tiles.append(_side_view([pred_v], faces, size))
    return image_grid(tiles, columns=3, pad=2)


def _over_crop(background, vertices, faces, translation, focal, centre, colour) -> np.ndarray:
    if not (np.isfinite(vertices).all() and np.isfinite(translation).all()):
        return background.copy()
    return render_mesh(vertices, faces, translation=translation, focal_length=focal, camera_center=centre,
                       image=background, color=colour, alpha=0.75).image  # fmt: skip


def _side_view(meshes: list[np.ndarray], faces, size: int) -> np.ndarray:
    """The meshes (camera orientation, each centred on its own centroid) turned 90
    degrees about the vertical axis, overlaid: prediction blue, fit orange."""
    colours = [_PREDICTION, _FIT]
    finite = [m for m in meshes if np.isfinite(m).all()]
    if not finite:
        return np.full((size, size, 3), 255, dtype=np.uint8)
    centred = [m - m.mean(0) for m in finite]
    vertices = np.concatenate(centred)
    all_faces = np.concatenate([np.asarray(faces) + k * len(centred[0]) for k in range(len(centred))])
    vertex_colors = np.concatenate([np.tile(colours[k], (len(m), 1)) for k, m in enumerate(centred)])
    translation = look_at_translation(vertices, _SIDE, FOCAL_LENGTH, (size, size), fill=0.85)
    return render_mesh(vertices, all_faces, rotation=_SIDE, translation=translation, image_size=(size, size),
                       vertex_colors=vertex_colors).image  # fmt: skip
