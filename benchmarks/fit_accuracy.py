"""Fitting accuracy under detector-like keypoint corruption: Adam vs L-BFGS, two starts;
and the recipes of ``spin-diff fit`` from the mean pose under a photo's camera.

For each corruption (clean, jitter, missed joints, left/right swaps, outliers, border
occlusion, and all of them together as a detector would), bodies from the held-out real test
split (CMU mocap clips no prior was trained on; ``--poses sampler`` for the pose sampler) are
projected into SPIN's 224 crop, corrupted, and fitted with the default objective
(``FittingConfig()``; ``--objective spin`` for SPIN's GMM-only recipe) from (a) the mean pose,
(b) a perturbed truth standing in for a regressor's estimate and (c) the bundled keypoint
regressor's prediction from the corrupted keypoints (``spin-diff fit``'s default start). Reported: PA-MPJPE and MPJPE
(mm, 14 LSP joints, pelvis-centred) of the start and of the fit, the share of problems the fit
made worse / better than the start (PA-MPJPE by more than 1 mm), the mean reprojection error
on the clean keypoints (px), and failures.

Photo section: people placed in a 1280x960 photo (focal = image diagonal, principal point
at the centre), OpenPose-like keypoints (only the 25 OpenPose joints, "detector"
corruption), fitted through ``spin_diff.fitting.images.fit_keypoints`` (SPIN's keypoint box)
from the mean pose by each shipped fitting recipe (``spin_diff/recipes/``) and variants. Reported: PA-MPJPE, MPJPE,
the angle between fitted and true torso (hips -> shoulders, camera frame, no alignment), the
mean residual on confident keypoints (224-crop px), how many fits ``spin-diff fit`` would
flag as failed (fitting.quality), the share of people whose PA-MPJPE is worse (by > 1 mm) than
under today's in-loop recipe, and seconds.

    python benchmarks/fit_accuracy.py [--poses test] [--n 48] [--iterations 100] [--threads 1] [--sections crop,photo]
    python benchmarks/fit_accuracy.py --sections crop --starts mean,regressor --optimizers adam
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data.corruption import CorruptionConfig  # noqa: E402
from spin_diff.data.keypoint_sets import make_problems, perturbed_start  # noqa: E402
from spin_diff.evaluation.metrics import joint_errors
from spin_diff.fitting.config import Config, FittingConfig, spin_stages  # noqa: E402
from spin_diff.fitting.smplify import SMPLify  # noqa: E402
from spin_diff.geometry.cameras import perspective_projection
from spin_diff.geometry.rotations import matrix_to_axis_angle  # noqa: E402
from spin_diff.recipes import recipe_path  # noqa: E402
from spin_diff.utils.configs import load_config

CORRUPTIONS = {
    "clean": (CorruptionConfig(), (0.0, 0.0)),
    "jitter": (CorruptionConfig(confidence_spread=0.5, jitter_std=0.03, jitter_floor=0.2), (0.0, 0.0)),
    "missed": (CorruptionConfig(miss_prob=0.15), (0.0, 0.0)),
    "swaps": (CorruptionConfig(swap_prob=0.1, full_swap_prob=0.05), (0.0, 0.0)),
    "outliers": (CorruptionConfig(outlier_prob=0.08), (0.0, 0.0)),
    "border": (CorruptionConfig(border_occlusion=True), (0.0, 70.0)),  # legs leave the crop
    "detector": (CorruptionConfig.preset("detector"), (0.0, 0.0)),
}


def fitting_config(optimizer: str, iterations: int, objective: str = "default", lm_iterations: int = 10) -> FittingConfig:
    """The objective's stages with ``iterations`` Adam steps each; L-BFGS gets a tenth as many
    steps (each runs up to 20 iterations), lm ``lm_iterations`` (the default body stage's
    diffusion term has no least-squares form, so only ``--objective spin`` runs lm throughout)."""
    steps = {"adam": iterations, "lbfgs": max(1, iterations // 10), "lm": lm_iterations}[optimizer]
    config = FittingConfig()
    if objective == "spin":
        config.stages = spin_stages(steps)
    for stage in config.stages:
        stage.iterations = steps
    if optimizer == "adam":
        return config
    if optimizer == "lm":
        return replace(config, optimizer="lm")
    return replace(config, optimizer="lbfgs", lbfgs_max_iter=20)


def _recipe(name: str, changes=None):
    """A shipped recipe (``fit_<name>.yaml``) with ``changes(fitting_config)`` applied."""
    config = load_config(Config, recipe_path(f"fit_{name}")).fitting
    if changes is not None:
        changes(config)
    return config


def _data_term(name: str):
    """Change: the body stages' data term becomes ``name``."""

    def change(config) -> None:
        for stage in config.stages:
            stage.terms = {(name if k.startswith("reprojection") else k): v for k, v in stage.terms.items()}

    return change


PHOTO_VARIANTS = {
    "in-loop recipe, crop camera (before)": ("from_regressor", None, "crop"),
    "in-loop recipe, photo camera": ("from_regressor", None, "full"),
    "cold start, crop camera": ("cold_start", None, "crop"),
    "cold start (default)": ("cold_start", None, "full"),
    "cold start, mean-pose start only": ("cold_start", lambda c: setattr(c, "start_hypotheses", []), "full"),
    "cold start, data term conf^2": ("cold_start", _data_term("reprojection"), "full"),
    "cold start, data term conf > 0.1": ("cold_start", _data_term("reprojection_thresholded"), "full"),
}


def photo_section(model, count: int, seed: int) -> None:
    """The recipes of ``spin-diff fit`` from the mean pose under a photo camera (docstring)."""
    from spin_diff.body.measures import torso_angle
    from spin_diff.data.keypoint_sets import make_photo_problems
    from spin_diff.fitting.images import fit_keypoints, keypoint_box
    from spin_diff.fitting.quality import assess_fits

    problems = make_photo_problems(model, count, seed=seed, corruption=CorruptionConfig.preset("detector"))
    boxes = [keypoint_box(k.cpu().numpy()) for k in problems.keypoints]
    centers = torch.tensor([center.tolist() for center, _ in boxes])
    sizes = torch.tensor([size for _, size in boxes])
    image_sizes = torch.tensor([problems.image_size] * count, dtype=torch.float32)
    width, height = problems.image_size
    print(f"\nphoto camera: {count} people in a {width}x{height} photo, focal "
          f"{problems.focal_length[0]:.0f} px, detector corruption, seed {seed}; from the mean pose")
    header = (f"{'recipe':<38} | {'PA-MPJPE':>8} {'MPJPE':>7} | {'torso mean':>10} {'median':>6} | "
              f"{'resid px':>8} | {'flagged':>7} | {'PA worse':>8} | {'s':>6}")
    print(header)
    print("-" * len(header))
    before = None
    for name, (recipe, changes, camera) in PHOTO_VARIANTS.items():
        config = _recipe(recipe, changes)
        fitter = SMPLify(model, config)
        tic = time.perf_counter()
        fit = fit_keypoints(model, fitter, problems.keypoints, centers, sizes, image_sizes, camera=camera)
        seconds = time.perf_counter() - tic
        result = fit.result
        e = joint_errors(model, result.pose, result.betas, problems.pose, problems.betas)
        angle = torso_angle(fit.joints_full.to(problems.joints), problems.joints)
        confidence = fitter.body_stage_confidence(fit.crop_keypoints[..., 2])
        gmm = fitter.context.gmm
        quality = assess_fits(result.joint_residuals, confidence, result.pose[:, 3:], result.success,
                              result.failure, config.quality, gmm)
        if before is None:
            before = e["pa_mpjpe"]
        worse = (e["pa_mpjpe"] > before + 1.0).float().mean() * 100
        print(f"{name:<38} | {e['pa_mpjpe'].mean():8.1f} {e['mpjpe'].mean():7.1f} | {angle.mean():10.1f} "
              f"{angle.median():6.1f} | {quality.residual_px.nanmean():8.2f} | "
              f"{int((~quality.success).sum()):>7} | "
              f"{worse:7.0f}% | {seconds:6.1f}")
    print("torso: degrees between fitted and true hips->shoulders; resid: confident keypoints, 224-crop px; "
          "flagged: success false under fitting.quality; PA worse: share worse than the first row by > 1 mm")


def _regressor_start(model, regressor, keypoints):
    """The bundled regressor's (pose, betas, crop translation) from the crop keypoints."""
    from spin_diff.fitting.initialisation import regressor_start

    start = regressor_start(regressor, keypoints, model.num_betas)
    return matrix_to_axis_angle(start.rotmat).reshape(-1, 72), start.betas, start.transl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=48, help="problems per corruption")
    parser.add_argument("--iterations", type=int, default=100, help="Adam iterations per stage")
    parser.add_argument("--poses", default="test", help="bodies from: test, val (real CMU splits) or sampler")
    parser.add_argument("--objective", choices=["default", "spin"], default="default")
    parser.add_argument("--pose-sigma", type=float, default=0.08, help="per-joint rotation noise of the perturbed start")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sections", default="crop,photo",
                        help="crop (SPIN's crop camera rows), photo, or both")
    parser.add_argument("--photo-n", type=int, default=24, help="people in the photo section")
    parser.add_argument("--starts", default="mean,perturbed,regressor",
                        help="comma-separated starts: mean, perturbed (truth + noise), regressor (the bundled one)")
    parser.add_argument("--optimizers", default="adam,lbfgs", help="comma-separated: adam, lbfgs, lm")
    parser.add_argument("--lm-iterations", type=int, default=10, help="lm iterations per stage")
    parser.add_argument("--photo-seed", type=int, default=101,
                        help="seed of the photo section (the recipe was tuned on 0-3)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_body_model(device=args.device)
    sections = set(args.sections.split(","))
    if "photo" in sections:
        photo_section(model, args.photo_n, args.photo_seed)
    if "crop" not in sections:
        return
    poses = None
    if args.poses != "sampler":
        from spin_diff.data.real_poses import load_real_poses

        poses = load_real_poses(args.poses)
    fitters = {name: SMPLify(model, fitting_config(name, args.iterations, args.objective, args.lm_iterations))
               for name in args.optimizers.split(",")}  # fmt: skip
    wanted = args.starts.split(",")
    regressor = None
    if "regressor" in wanted:
        from spin_diff.fitting.initialisation import resolve_init

        regressor = resolve_init("regressor", model, images_available=False, device=args.device)
    print(f"{args.n} bodies per row from {'the pose sampler' if poses is None else f'the real CMU {args.poses} split'} "
          f"(yaw within +-45 deg), SPIN crop camera; objective: {args.objective}; errors in mm, reprojection on the "
          f"clean keypoints in px; {torch.get_num_threads()} torch threads")
    header = (f"{'corruption':<10} {'start':<9} | {'start PA':>8} {'start MPJPE':>11} | "
              f"{'optimizer':<6} {'PA-MPJPE':>8} {'MPJPE':>7} {'worse':>6} {'better':>6} {'reproj':>7} {'failed':>6} {'s':>6}")
    print(header)
    print("-" * len(header))
    for index, (name, (corruption, shift)) in enumerate(CORRUPTIONS.items()):
        problems = make_problems(model, args.n, seed=100 + index, corruption=corruption, shift_px=shift, poses=poses)
        mean_pose = matrix_to_axis_angle(model.mean_pose_rotmat(args.n)).reshape(args.n, 72)
        starts = {
            "mean": lambda: (mean_pose, torch.zeros_like(problems.betas), None),
            "perturbed": lambda: perturbed_start(problems, seed=200 + index, pose_sigma=args.pose_sigma),
            "regressor": lambda: _regressor_start(model, regressor, problems.keypoints),
        }
        for start_name in wanted:
            pose0, betas0, transl0 = starts[start_name]()
            e0 = joint_errors(model, pose0, betas0, problems.pose, problems.betas)
            for optimizer, fitter in fitters.items():
                tic = time.perf_counter()
                result = fitter.fit(problems.keypoints, pose0, betas0, transl0)
                seconds = time.perf_counter() - tic
                e = joint_errors(model, result.pose, result.betas, problems.pose, problems.betas)
                with torch.no_grad():
                    joints = model.joints(result.pose, result.betas).joints
                    center = torch.full((args.n, 2), 112.0, device=joints.device)
                    projected = perspective_projection(joints, result.transl, 5000.0, center)
                reprojection = (projected - problems.clean_keypoints[..., :2]).norm(dim=-1).mean()
                failed = int((~result.success).sum())
                worse = (e["pa_mpjpe"] > e0["pa_mpjpe"] + 1.0).float().mean() * 100
                better = (e["pa_mpjpe"] < e0["pa_mpjpe"] - 1.0).float().mean() * 100
                print(f"{name:<10} {start_name:<9} | {e0['pa_mpjpe'].mean():8.1f} {e0['mpjpe'].mean():11.1f} | "
                      f"{optimizer:<6} {e['pa_mpjpe'].mean():8.1f} {e['mpjpe'].mean():7.1f} {worse:5.0f}% {better:5.0f}% "
                      f"{reprojection:7.2f} {failed:>6} {seconds:6.1f}", flush=True)
    print("start PA/MPJPE: the initial estimate's errors; PA-MPJPE/MPJPE: after fitting.")


if __name__ == "__main__":
    main()
