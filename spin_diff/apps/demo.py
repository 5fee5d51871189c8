"""The whole mission in one run, small enough for a laptop: what ``spin-diff demo`` calls.

:func:`run_demo` chains the library's own steps, each as its command would run it:

1. synthesise people (:func:`spin_diff.data.synth.generate_dataset`): a training set whose
   ground truth is then hidden (a 2D-only copy, like SPIN's in-the-wild sets), a held-out
   set with ground truth, and a few photos to fit;
2. the regressor start: the bundled keypoint regressor (``--init regressor``), or, where its
   file is missing, a small keypoint regressor trained here for a short while on
   synthetic keypoints (:func:`spin_diff.training.train_keypoints.train_keypoint_regressor`);
3. the fit cache built offline from that regressor (:func:`spin_diff.cache.builder.build_fits`);
4. SPIN's loop for a short run (:func:`spin_diff.training.run.train`): in-loop fits, the
   store's scores only ever falling, validation on the held-out set;
5. ``spin-diff eval`` with the refinement rows on the held-out set
   (:func:`spin_diff.evaluation.run.evaluate`);
6. ``spin-diff fit`` on the photos from the trained regressor
   (:func:`spin_diff.apps.fit_photos.fit_images`);
7. pictures (training curves, overlays and side views) and ``summary.json``.

Every person is drawn by the project's own pose sampler, so the numbers show the mechanism
working, not accuracy on real people.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from spin_diff.apps.fit_photos import fit_images
from spin_diff.body.demo_poses import POSE_NAMES, named_pose
from spin_diff.body.files import body_model_hash, body_model_label
from spin_diff.body.mesh_io import write_obj
from spin_diff.body.model import load_body_from_config
from spin_diff.cache.builder import build_fits
from spin_diff.cache.store import FitStore
from spin_diff.data.spin_npz import read_spin_npz, write_spin_npz
from spin_diff.data.synth import SynthConfig, generate_dataset
from spin_diff.errors import MissingInputError
from spin_diff.evaluation.metrics import joint_errors
from spin_diff.evaluation.protocols import load_eval_set
from spin_diff.evaluation.refine import REFINEMENTS, refinement_config
from spin_diff.evaluation.run import evaluate, format_table, write_results
from spin_diff.fitting.initialisation import BUNDLED_KEYPOINT_REGRESSOR, resolve_init
from spin_diff.fitting.smplify import SMPLify
from spin_diff.models.checkpoints import load_regressor, save_regressor
from spin_diff.recipes import RECIPE_DIR
from spin_diff.render import part_colors, save_png
from spin_diff.render.views import image_grid, render_views
from spin_diff.training.config import effective_fitting_config
from spin_diff.training.pictures import read_csv_rows, training_plot
from spin_diff.training.run import train
from spin_diff.training.train_keypoints import KeypointTrainConfig, train_keypoint_regressor
from spin_diff.training.validation import validate
from spin_diff.utils.configs import save_config
from spin_diff.utils.jsonio import write_json
from spin_diff.utils.outputs import prepare_output

log = logging.getLogger(__name__)

__all__ = ["DEMO_CONFIG", "DEMO_SIZES", "DemoResult", "DemoSize", "demo_config_path", "run_demo"]

# The CPU training recipe the demo runs (shipped with the package; --config replaces it).
DEMO_CONFIG = RECIPE_DIR / "train_keypoints_cpu.yaml"

CAVEAT = (
    "All people here are synthetic, drawn by spin_diff's own pose sampler and rendered by its own "
    "renderer: the numbers show the mechanism working, not accuracy on real people."
)


@dataclass
class DemoSize:
    """How much the demo does (people, steps); :data:`DEMO_SIZES` holds the two presets."""

    train_people: int  # synthetic training people (their ground truth is hidden from training)
    heldout_people: int  # held-out people with ground truth (validation and eval)
    photos: int  # people rendered as photos and fitted at the end
    start_steps: int  # supervised steps of the start regressor (when none is bundled)
    start_batch: int
    loop_steps: int  # steps of the SPIN loop
    loop_batch: int
    validate_every: int  # loop steps between validations on the held-out set
    summary_every: int  # loop steps per log.csv row


DEMO_SIZES = {
    "full": DemoSize(train_people=192, heldout_people=48, photos=4, start_steps=400, start_batch=64,
                     loop_steps=48, loop_batch=32, validate_every=8, summary_every=4),
    "quick": DemoSize(train_people=24, heldout_people=8, photos=2, start_steps=20, start_batch=16,
                      loop_steps=6, loop_batch=8, validate_every=3, summary_every=2),
}  # fmt: skip


@dataclass
class DemoResult:
    """What :func:`run_demo` did; every path is under the output folder."""

    out: Path
    size: str
    start: str  # "bundled" or "trained here"
    start_seconds: float = 0.0
    cache: dict = field(default_factory=dict)  # build report figures
    store_before: np.ndarray | None = None  # (N,) store score per training example after the build
    store_after: np.ndarray | None = None  # ... after the loop
    training: dict = field(default_factory=dict)
    validation: list[dict] = field(default_factory=list)  # step 0 (the start) and the loop's
    eval_table: str = ""
    eval_summary: dict = field(default_factory=dict)
    photos: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


# What the demo writes under its output folder; a rerun replaces exactly these.
_MARKER = ".spin_diff_demo"
_OUTPUTS = ("data", "start", "run", "eval", "fits", "body_poses.png", "tpose.obj", "training.png", "fits.png",
            "summary.json", "config.yaml", "synth")  # fmt: skip (synth/: the demo of earlier versions)


def prepare_demo_output(out: Path) -> None:
    """Make ``out`` ready for a fresh demo: created if new; an earlier demo's outputs there
    are replaced (the training log and store would otherwise carry on from the old run); a
    non-empty folder that no demo wrote (no marker file, and names other than the demo's) is
    refused, so nothing of the user's is deleted."""
    prepare_output(
        out, _OUTPUTS, marker=_MARKER, what="demo's outputs",
        marker_text="written by spin-diff demo; a rerun replaces the demo's outputs here\n",
    )  # fmt: skip

def demo_config_path(path: Path | None = None) -> Path:
    """``path``, or the demo's recipe :data:`DEMO_CONFIG` when none is given."""
    if path is not None:
        return Path(path)
    if not DEMO_CONFIG.is_file():
        raise MissingInputError(
            f"the demo's training recipe {DEMO_CONFIG} is missing (a damaged install: reinstall spin_diff), "
            "or pass --config with a training YAML"
        )
    return DEMO_CONFIG


def render_pose_gallery(model, size: int = 300):
    """Front and side views of the mean body in each named pose; returns (grid image, names,
    vertices (P, V, 3))."""
    device = model.fast.joint_template.device
    poses = torch.tensor(np.stack([named_pose(n) for n in POSE_NAMES]), dtype=torch.float32, device=device)
    with torch.no_grad():
        vertices = model(poses, torch.zeros(len(poses), model.num_betas, device=device)).vertices.cpu().numpy()
    colors = part_colors(model.smpl.lbs_weights.argmax(1).cpu().numpy())
    tiles = [
        render_views(v, model.faces, (0.0, 90.0), size=size, vertex_colors=colors if i == 0 else None)
        for i, v in enumerate(vertices)
    ]
    return image_grid(tiles, columns=3), POSE_NAMES, vertices


def hide_ground_truth(npz: Path, out: Path) -> Path:
    """A copy of a SPIN-format dataset without its 3D ground truth (SMPL pose/shape, ``S``):
    what the regressor may learn from is then the 2D keypoints and the fits, as on SPIN's
    in-the-wild sets."""
    data = read_spin_npz(npz)
    hidden = {k: v for k, v in data.items() if k not in ("pose", "shape", "has_smpl", "S")}
    return write_spin_npz(out, hidden)


def store_scores(store_path: Path, body, name: str, count: int) -> np.ndarray:
    """(count,) stored score of examples 0..count-1 of dataset ``name`` (+inf where none)."""
    with FitStore(store_path, readonly=True, body_model_hash=body_model_hash(body),
                  body_model_label=body_model_label(body)) as store:  # fmt: skip
        stored = store.get_many(name, np.arange(count))
    return np.where(stored.found, stored.score.astype(np.float64), np.inf)


def start_regressor(body, config, size: DemoSize, out: Path, progress: bool):
    """The fits' start: the bundled keypoint regressor, else one trained here (saved to
    ``out/start/keypoint_regressor.pt``). Returns (checkpoint path, label, seconds, history)."""
    try:
        resolve_init("regressor", body, images_available=False, device=config.device)
        return BUNDLED_KEYPOINT_REGRESSOR, "bundled", 0.0, []
    except MissingInputError as err:  # the caller says that the start is trained here
        log.debug("%s", err)
    started = time.perf_counter()
    recipe = KeypointTrainConfig(
        steps=size.start_steps, batch_size=size.start_batch, seed=config.seed, pool_size=1024,
        log_every=max(1, size.start_steps // 4), model=config.model,
    )  # fmt: skip
    regressor, history = train_keypoint_regressor(body, recipe, progress=progress)
    path = save_regressor(regressor, out / "start" / "keypoint_regressor.pt", body)
    _write_csv(out / "start" / "history.csv", history)
    return path, "trained here", time.perf_counter() - started, history


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["step"])
        writer.writeheader()
        writer.writerows(rows)


def photo_sheet(fits_dir: Path, names: list[str], height: int = 256) -> np.ndarray | None:
    """Overlay and side view of each fitted photo, one row per person."""
    tiles = []
    for name in names:
        folder = fits_dir / name / "person_00"
        for picture in ("overlay.png", "side.png"):
            image = cv2.imread(str(folder / picture))
            if image is None:
                return None
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            tiles.append(cv2.resize(image, (height * image.shape[1] // image.shape[0], height)))
    if not tiles:
        return None
    width = max(t.shape[1] for t in tiles)
    padded = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles]
    return image_grid(padded, columns=4, pad=4)


def _photo_errors(model, fits_dir: Path, npz: Path, config) -> dict:
    """PA-MPJPE / MPJPE of the fitted photos against their known bodies."""
    data = read_spin_npz(npz, require=("imgname", "pose", "shape"))
    index, poses, betas, names = [], [], [], []
    for i, imgname in enumerate(data["imgname"]):
        params = fits_dir / Path(str(imgname)).stem / "person_00" / "params.npz"
        if params.is_file():
            with np.load(params) as p:
                index.append(i)
                poses.append(p["pose"])
                betas.append(p["betas"])
                names.append(Path(str(imgname)).stem)
    if not index:
        return {"fitted": 0, "names": []}
    as_tensor = lambda a: torch.tensor(np.stack(a), dtype=torch.float32, device=config.device)  # noqa: E731
    errors = joint_errors(model, as_tensor(poses), as_tensor(betas),
                          as_tensor(data["pose"][index]), as_tensor(data["shape"][index][:, : model.num_betas]))  # fmt: skip
    return {"fitted": len(index), "names": names,
            "pa_mpjpe": float(errors["pa_mpjpe"].mean()), "mpjpe": float(errors["mpjpe"].mean())}  # fmt: skip


def run_demo(out: Path, config, size: str = "full", progress: bool = True, say=print) -> DemoResult:
    """Run the demo into ``out`` (module docstring) with the training ``config``; ``say``
    prints each step's line. Returns what it did; ``out/summary.json`` holds the same."""
    started = time.perf_counter()
    sizes = DEMO_SIZES[size]
    out = Path(out)
    body = load_body_from_config(config)  # a bad --body-model stops here, before --out is touched
    prepare_demo_output(out)
    result = DemoResult(out=out, size=size, start="")
    say(f"spin_diff demo ({size} size). {CAVEAT}")
    say(f"body model: {body.info()['source']}, {body.num_vertices} vertices")
    gallery, names, vertices = render_pose_gallery(body)
    result.files["body_poses"] = str(save_png(out / "body_poses.png", gallery))
    result.files["tpose"] = str(write_obj(out / "tpose.obj", vertices[0], body.faces))

    # 1. people
    seed = config.seed
    made = {}
    for name, count, offset in (("train", sizes.train_people, 0), ("heldout", sizes.heldout_people, 1),
                                ("photos", sizes.photos, 2)):  # fmt: skip
        synth = SynthConfig(num_images=count, seed=seed + offset, name=name, back_view_prob=0.0 if name == "photos" else 0.1)
        made[name] = generate_dataset(synth, out / "data" / name, body, progress=progress and name == "train")
    train_npz = hide_ground_truth(made["train"], out / "data" / "train_2d_only" / "train.npz")
    say(f"1. synthesised {sizes.train_people} training people (3D ground truth hidden: 2D keypoints only, "
        f"{train_npz}), {sizes.heldout_people} held-out people with ground truth and {sizes.photos} photos "
        f"({out / 'data'})")  # fmt: skip

    # 2. the regressor start
    checkpoint, result.start, result.start_seconds, history = start_regressor(body, config, sizes, out, progress)
    if result.start == "bundled":
        say(f"2. start: the bundled keypoint regressor ({checkpoint})")
    else:
        say(f"2. start: the bundled keypoint regressor is missing, so the demo trained a small one "
            f"for {sizes.start_steps} steps on synthetic keypoints ({result.start_seconds:.0f} s, "
            f"loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}; {checkpoint})")  # fmt: skip

    # 3. the fit cache, built offline from the start
    run_dir = out / "run"
    store_path = run_dir / "fits"
    fitting = effective_fitting_config(config.fitting, body)
    fitter = SMPLify(body, fitting)
    store = FitStore.open_or_create(store_path, body_model_hash(body), body_model_label(body))
    with store:
        data = read_spin_npz(train_npz)
        report = build_fits(store, data, "train", fitter, init=str(checkpoint), batch_size=64, progress=progress)
    result.cache = {"examples": report.examples, "fitted": report.fitted, "failed": report.failed,
                    "mean_score": report.mean_score, "seconds": report.seconds}  # fmt: skip
    result.store_before = store_scores(store_path, body, "train", sizes.train_people)
    say(f"3. fit cache built offline from the start: {report.fitted} of {report.examples} fitted, "
        f"mean score {report.mean_score:.1f}, {report.seconds:.0f} s ({store_path})")

    # 4. SPIN's loop
    start_model = load_regressor(checkpoint, body, device=config.device)
    result.validation = [{"step": 0, **validate(start_model, body, made["heldout"], config)}]
    config.max_steps = sizes.loop_steps
    config.epochs = max(config.epochs, -(-sizes.loop_steps * sizes.loop_batch // sizes.train_people) + 1)
    config.data.batch_size = sizes.loop_batch
    config.summary_every = sizes.summary_every
    config.validate_every = sizes.validate_every
    config.validation_data = str(made["heldout"])
    config.checkpoint_every = max(config.checkpoint_every, sizes.loop_steps)
    trained = train(config, [(train_npz, None)], run_dir, cache=store_path, pretrained=checkpoint, progress=progress)
    result.store_after = store_scores(store_path, body, "train", sizes.train_people)
    log_rows = read_csv_rows(run_dir / "log.csv")
    result.validation += read_csv_rows(run_dir / "validation.csv")
    finite = np.isfinite(result.store_before) & np.isfinite(result.store_after)
    result.training = {
        "steps": trained.step, "seconds": trained.seconds, "checkpoint": str(trained.checkpoint),
        "store_mean_before": float(result.store_before[finite].mean()) if finite.any() else float("nan"),
        "store_mean_after": float(result.store_after[finite].mean()) if finite.any() else float("nan"),
        "store_improved": int((result.store_after < result.store_before).sum()),
        "store_worse": int((result.store_after > result.store_before).sum()),  # update_if_better: 0
        "store_filled": int(np.isfinite(result.store_after).sum()),
        # SPIN supervises an example by its fit when the fit scores under the threshold
        "store_supervised_before": float((result.store_before < config.fitting.threshold).mean()),
        "store_supervised_after": float((result.store_after < config.fitting.threshold).mean()),
        "supervised_share_first": log_rows[0]["supervised_share"] if log_rows else float("nan"),
        "supervised_share_last": log_rows[-1]["supervised_share"] if log_rows else float("nan"),
        "loss_first": log_rows[0]["loss"] if log_rows else float("nan"),
        "loss_last": log_rows[-1]["loss"] if log_rows else float("nan"),
    }  # fmt: skip
    t = result.training
    first_val, last_val = result.validation[0], result.validation[-1]
    say(f"4. SPIN loop: {trained.step} steps of {sizes.loop_batch} in {trained.seconds:.0f} s ({run_dir}); "
        f"loss {t['loss_first']:.3f} -> {t['loss_last']:.3f}; store mean score {t['store_mean_before']:.1f} -> "
        f"{t['store_mean_after']:.1f} ({t['store_improved']} of {t['store_filled']} records improved, {t['store_worse']} worse); "
        f"examples a fit supervises (score < {config.fitting.threshold:g}) {t['store_supervised_before']:.0%} -> "
        f"{t['store_supervised_after']:.0%} of the store ({t['supervised_share_first']:.0%} -> "
        f"{t['supervised_share_last']:.0%} of the first / last logged batches); held-out "
        f"PA-MPJPE {first_val.get('pa_mpjpe', float('nan')):.1f} -> {last_val.get('pa_mpjpe', float('nan')):.1f} mm")  # fmt: skip

    # 5. spin-diff eval with the refinement rows
    model = load_regressor(trained.checkpoint, body, device=config.device)
    evaluation = evaluate(load_eval_set(made["heldout"]), body, regressor=model, source=str(trained.checkpoint),
                          rows=list(REFINEMENTS), fitting=fitting, progress=progress)  # fmt: skip
    write_results(evaluation, out / "eval")
    result.eval_table = format_table(evaluation)
    (out / "eval" / "table.txt").write_text(result.eval_table + "\n")
    result.eval_summary = evaluation.summary()
    say(f"5. spin-diff eval of the trained regressor on the {sizes.heldout_people} held-out people "
        f"({out / 'eval'}):")
    say("   " + result.eval_table.replace("\n", "\n   "))

    # 6. spin-diff fit on photos, from the trained regressor
    photos = out / "data" / "photos"
    fits_dir = out / "fits"
    fit_report = fit_images(photos / "images", photos / "keypoints", fits_dir, body,
                            SMPLify(body, refinement_config(fitting, "term")), progress=False, regressor=model,
                            overwrite=True, run_info={"recipe": "from_regressor + diffusion term",
                                                      "init": str(trained.checkpoint)})  # fmt: skip
    result.photos = _photo_errors(body, fits_dir, made["photos"], config)
    result.photos["failed"] = [f"{name}: {reason}" for name, reason in fit_report.failed]
    if result.photos["fitted"]:
        say(f"6. fitted {result.photos['fitted']} photos from the trained regressor (SMPLify with the diffusion "
            f"term): PA-MPJPE {result.photos['pa_mpjpe']:.1f} mm, MPJPE {result.photos['mpjpe']:.1f} mm against "
            f"their known bodies ({fits_dir})")  # fmt: skip
    for line in result.photos["failed"]:  # spin-diff fit's honest quality check: written, flagged
        say(f"   not accepted (success: false): {line}")

    # 7. pictures and the summary
    plot = training_plot(log_rows, result.validation, t, trained.step, config.loss)
    result.files["training_plot"] = str(save_png(out / "training.png", plot))
    sheet = photo_sheet(fits_dir, result.photos["names"])
    if sheet is not None:
        result.files["photos_sheet"] = str(save_png(out / "fits.png", sheet))
    result.files["config"] = str(save_config(config, out / "config.yaml"))
    result.seconds = time.perf_counter() - started
    write_json(out / "summary.json", _summary(result))
    say(f"7. pictures: {out / 'training.png'} (loss, fit score, supervised share, validation against steps), "
        f"{out / 'fits.png'} (overlays and side views); summary {out / 'summary.json'}; "
        f"total {result.seconds:.0f} s")  # fmt: skip
    return result


def _summary(result: DemoResult) -> dict:
    values = {k: v for k, v in asdict(result).items() if k not in ("store_before", "store_after", "eval_table")}
    values["out"] = str(result.out)
    values["caveat"] = CAVEAT
    values["store_before"] = [None if not np.isfinite(s) else float(s) for s in result.store_before]
    values["store_after"] = [None if not np.isfinite(s) else float(s) for s in result.store_after]
    return values
