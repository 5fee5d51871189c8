"""How `spin-diff fit` should fit a photo's people from the bundled regressor's start: which
recipe, how many starts per person, or a choice per person between two fits (no ground truth).

Problems: bodies of the real CMU ``--split`` (``val`` to choose, ``test`` to report) placed in a
1280x960 photo (:func:`spin_diff.data.keypoint_sets.make_photo_problems`: focal = the image
diagonal, turned up to 70 degrees, 10% seen from behind), detector-like keypoints
(``CorruptionConfig.preset("detector")``). Every person goes through what ``spin-diff fit``
runs (:func:`spin_diff.fitting.images.fit_people`: SPIN's padded box around the confident
keypoints, the crop keypoints read by the regressor, batches of ``--batch``, noise keyed by
the person's name):

- ``regressor's start``: the bundled regressor's prediction alone (``--no-optimise``);
- ``from_regressor``: that start + the ``from_regressor`` recipe (SPIN's crop camera, anchors,
  guided refinement) with the prior conditioned on the regressor's features (the default before);
- ``cold``: the mean pose + the ``cold_start`` recipe (``--init mean``);
- ``photo``: the regressor's start + the ``photo`` recipe (the cold start's stages from it, the
  conditioned prior in the term: the default now); ``--ablations``: the same with more starts
  per person (fitting.start_hypotheses: the regressor's start with bent knees / a crouch / arms
  up, the mean pose), the lowest final objective kept, batched together.

Then the choices per person between the from_regressor and cold fits, by what a user has
after both fits (no ground truth): the cold start where the regressor's fit leaves a mean residual on the
confident keypoints over T px (224 crop) and the cold start's is lower, for each T of
``--thresholds``; the lower residual; the lower residual + w x GMM energy. Printed per row:
PA-MPJPE / MPJPE (mm, 14 LSP joints), the mean confident residual (px), the share of people
whose residual is over 7 px, the share flagged by ``fitting.quality``, the share taking the
cold start, and seconds per person (both fits for a choice).

    python benchmarks/photo_starts.py --split val --n 256 --ablations --thresholds 7,10
    python benchmarks/photo_starts.py --split test --n 256 --ablations --thresholds 7,10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data.corruption import CorruptionConfig  # noqa: E402
from spin_diff.data.keypoint_sets import make_photo_problems  # noqa: E402
from spin_diff.data.real_poses import load_real_poses  # noqa: E402
from spin_diff.evaluation.metrics import joint_errors  # noqa: E402
from spin_diff.fitting.config import Config  # noqa: E402
from spin_diff.fitting.images import Person, StartOnly, fit_people, keypoint_box  # noqa: E402
from spin_diff.fitting.initialisation import prior_for_start, resolve_init  # noqa: E402
from spin_diff.fitting.quality import assess_fits, confident_residual  # noqa: E402
from spin_diff.fitting.smplify import SMPLify, gmm_prior_for  # noqa: E402
from spin_diff.recipes import recipe_path  # noqa: E402
from spin_diff.utils.configs import load_config  # noqa: E402

SEEDS = {"val": 31_000, "test": 31_001}  # problem seeds per split (never tuned on)
OVER_PX = 7.0  # the residual a fit of a photo should stay under
PRIOR_WEIGHTS = (0.003, 0.01, 0.03)
ABLATIONS = {  # the photo recipe with more starts: label -> start_hypotheses beside the regressor's
    "+ knees_bent, crouch, arms_up, mean_pose": ["knees_bent", "crouch", "arms_up", "mean_pose"],
    "+ knees_bent, crouch, arms_up": ["knees_bent", "crouch", "arms_up"],
    "+ mean_pose": ["mean_pose"],
}


def people_of(problems, split: str) -> list[Person]:
    """The problems as ``spin-diff fit`` reads a photo's people: SPIN's box around the
    confident keypoints, named so that each person's noise is keyed by its own name."""
    people = []
    for i, keypoints in enumerate(problems.keypoints.cpu().numpy()):
        center, size = keypoint_box(keypoints)
        people.append(Person(f"{split}/person_{i:04d}", keypoints, center, size, problems.image_size))
    return people


def run(model, recipe: str, people, batch: int, *, regressor=None, hypotheses=None, start_only=False,
        prior: str | None = None) -> dict:  # fmt: skip
    """Fit everyone with ``recipe`` (from ``regressor``'s start, or the mean pose; ``start_only``:
    the start itself, as ``--no-optimise``); per person: pose, betas, confident residual (px),
    GMM energy, success (fitting.quality), the start kept, and seconds. ``prior``: the
    diffusion prior's checkpoint (None: the conditional one for the bundled regressor, as
    ``spin-diff fit`` chooses, else the unconditional one)."""
    config = load_config(Config, recipe_path(f"fit_{recipe}")).fitting
    if hypotheses is not None:
        config.start_hypotheses = list(hypotheses)
    if start_only:
        config.start_hypotheses = []
    if prior is not None:
        config.diffusion.checkpoint = prior
    elif regressor is not None:
        prior_for_start(config, getattr(regressor, "checkpoint_path", "regressor"))
    fitter = StartOnly(SMPLify(model, config)) if start_only else SMPLify(model, config)
    gmm = fitter.context.gmm if fitter.context.gmm is not None else gmm_prior_for(config, model)
    parts: dict[str, list] = {k: [] for k in ("pose", "betas", "residual", "gmm", "success")}
    kept: list[str] = []
    tic = time.perf_counter()
    for first in range(0, len(people), batch):
        fit = fit_people(model, fitter, people[first : first + batch], regressor=regressor)
        result = fit.result
        confidence = fitter.body_stage_confidence(fit.crop_keypoints[..., 2])
        quality = assess_fits(result.joint_residuals, confidence, result.pose[:, 3:], result.success,
                              result.failure, config.quality, gmm)  # fmt: skip
        residual, _ = confident_residual(result.joint_residuals, confidence, config.quality.confident)
        with torch.no_grad():
            energy = gmm(result.pose[:, 3:])
        for key, value in zip(parts, (result.pose, result.betas, residual, energy, quality.success)):
            parts[key].append(value.detach().cpu())
        kept += result.hypothesis or ["given"] * len(residual)
    seconds = time.perf_counter() - tic
    out = {key: torch.cat(values) for key, values in parts.items()}
    out["seconds"] = seconds / len(people)
    out["kept"] = kept
    return out


def errors(model, problems, fits: dict) -> dict[str, torch.Tensor]:
    return joint_errors(model, fits["pose"].float(), fits["betas"].float(), problems.pose.float(),
                        problems.betas.float())  # fmt: skip


def row(label: str, model, problems, fits: dict, use_cold: torch.Tensor | None, seconds: float,
        start_pa: torch.Tensor) -> None:  # fmt: skip
    """One line of the table for per-person fits ``fits`` (or a choice between two);
    ``start_pa`` (N,): the regressor's start alone, for the share made worse by > 1 mm."""
    e = errors(model, problems, fits)
    residual = fits["residual"]
    cold = "" if use_cold is None else f"{100 * use_cold.float().mean():5.0f}%"
    worse = 100 * (e["pa_mpjpe"] > start_pa + 1.0).float().mean()
    print(f"{label:<40} | {e['pa_mpjpe'].mean():8.1f} {e['mpjpe'].mean():7.1f} {worse:5.0f}% | {residual.nanmean():8.2f} "
          f"{100 * (residual > OVER_PX).float().mean():6.0f}% | {100 * (~fits['success']).float().mean():7.0f}% | "
          f"{cold:>6} | {seconds:6.2f}")  # fmt: skip


def choose(a: dict, b: dict, take_b: torch.Tensor) -> dict:
    """Per person, ``b``'s fit where ``take_b``, else ``a``'s."""
    out = {}
    for key in ("pose", "betas", "residual", "gmm", "success"):
        mask = take_b.view(-1, *([1] * (a[key].dim() - 1)))
        out[key] = torch.where(mask, b[key], a[key])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="val", choices=sorted(SEEDS))
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32, help="people per fit batch (spin-diff fit's default)")
    parser.add_argument("--thresholds", default="5,6,7,8,10", help="T (px) of the threshold choice, comma-separated")
    parser.add_argument("--ablations", action="store_true",
                        help="also the photo recipe with more starts per person (what each start buys)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_body_model()
    problems = make_photo_problems(model, args.n, seed=SEEDS[args.split], corruption=CorruptionConfig.preset("detector"),
                                   poses=load_real_poses(args.split))  # fmt: skip
    people = people_of(problems, args.split)
    regressor = resolve_init("regressor", model, images_available=False)
    width, height = problems.image_size
    print(f"{args.n} people of the real CMU {args.split} split in a {width}x{height} photo, focal "
          f"{float(problems.focal_length[0]):.0f} px, detector keypoints, batch {args.batch}, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    header = (f"{'start / choice':<40} | {'PA-MPJPE':>8} {'MPJPE':>7} {'worse':>6} | {'resid px':>8} {'> 7 px':>7} | "
              f"{'flagged':>8} | {'cold':>6} | {'s/pers':>6}")
    print(header)
    print("-" * len(header))
    fits = {"regressor's start (no fit)": run(model, "from_regressor", people, args.batch, regressor=regressor,
                                              start_only=True),
            "regressor + from_regressor": run(model, "from_regressor", people, args.batch, regressor=regressor),
            "mean pose + cold_start": run(model, "cold_start", people, args.batch),
            "regressor + photo (the default)": run(model, "photo", people, args.batch, regressor=regressor)}  # fmt: skip
    if args.ablations:
        for label, hypotheses in ABLATIONS.items():
            fits[f"regressor + photo {label}"] = run(model, "photo", people, args.batch, regressor=regressor,
                                                     hypotheses=hypotheses)  # fmt: skip
    start_pa = errors(model, problems, fits["regressor's start (no fit)"])["pa_mpjpe"]
    for name, fit in fits.items():
        row(name, model, problems, fit, None, fit["seconds"], start_pa)
        names, counts = np.unique(fit["kept"], return_counts=True)
        if len(names) > 1:
            shares = ", ".join(f"{n} {100 * c / len(fit['kept']):.0f}%" for n, c in zip(names, counts))
            print(f"{'':<40} | kept: {shares}")
    a, b = fits["regressor + from_regressor"], fits["mean pose + cold_start"]
    both = a["seconds"] + b["seconds"]
    lower = torch.nan_to_num(b["residual"], nan=np.inf) < torch.nan_to_num(a["residual"], nan=np.inf)
    for threshold in (float(t) for t in args.thresholds.split(",")):
        take = (torch.nan_to_num(a["residual"], nan=np.inf) > threshold) & lower
        row(f"cold where regressor's > {threshold:g} px and lower", model, problems, choose(a, b, take), take, both,
            start_pa)
    row("the lower residual", model, problems, choose(a, b, lower), lower, both, start_pa)
    for weight in PRIOR_WEIGHTS:
        score_a = torch.nan_to_num(a["residual"], nan=np.inf) + weight * a["gmm"]
        score_b = torch.nan_to_num(b["residual"], nan=np.inf) + weight * b["gmm"]
        take = score_b < score_a
        row(f"lower residual + {weight:g} x GMM", model, problems, choose(a, b, take), take, both, start_pa)
    print("worse: share of people whose PA-MPJPE is over the regressor's start alone by > 1 mm; "
          f"resid: mean residual on the confident keypoints (224 crop px); > 7 px: share over {OVER_PX:g}; "
          "flagged: success false under fitting.quality; cold: share taking the cold start's fit; "
          "s/pers: seconds per person (a choice needs both fits)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
