"""Does fitting with the priors improve an estimate, on real poses it never saw? An ablation.

Bodies come from the held-out real test split (CMU mocap clips the priors were not trained
on, ``--poses test``; ``val`` for tuning, ``sampler`` for the pose sampler), projected into
SPIN's 224 crop and degraded like a detector (the "detector" corruption: confidence-scaled
jitter, misses, left/right swaps, outliers). Starts: a noisy copy of the truth standing in for
a regressor's estimate (per-joint rotation noise, shape and depth error; ``--start
regressor``) and the mean pose (``--start mean``). From each we run:

- SMPLify, GMM only (SPIN's recipe);
- SMPLify, GMM + diffusion term;
- SMPLify, diffusion term only (GMM weight 0);
- SMPLify with the pose anchor (CamSMPLify-style distance to the start), with GMM and term;
- guided refinement (ScoreHMR: SMPLify's camera stage, then guided DDIM with the prior);
- the default config (``FittingConfig()``, what ``spin-diff fit`` and training use).

Reported: PA-MPJPE and MPJPE (mm, 14 LSP joints, pelvis-centred) of the start and of each
variant, the share of samples whose PA-MPJPE got worse than the start (by more than 1 mm)
and better, failures and seconds. ``--priors name=path,...`` repeats the diffusion-term
rows for other checkpoints (e.g. priors trained with another orientation mode).

    python benchmarks/prior_ablation.py [--poses test] [--n 128] [--start regressor,mean] [--threads 1]
    python benchmarks/prior_ablation.py --poses val --anchor-weights 100,300,1000 --only anchor
    python benchmarks/prior_ablation.py --priors camera=a.pt,canonical=b.pt,none=c.pt --only term
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data.corruption import CorruptionConfig  # noqa: E402
from spin_diff.data.keypoint_sets import make_problems, perturbed_start  # noqa: E402
from spin_diff.evaluation.metrics import joint_errors
from spin_diff.fitting.config import DIFFUSION_POSE_WEIGHT, POSE_ANCHOR_WEIGHT, FittingConfig, spin_stages  # noqa: E402
from spin_diff.fitting.smplify import SMPLify  # noqa: E402
from spin_diff.geometry.rotations import matrix_to_axis_angle  # noqa: E402

WORSE_MM = 1.0  # a sample counts as worse (better) when its PA-MPJPE moved by more than this


def variant_configs(iterations: int, weight: float, guidance_scale: float | None, checkpoint: str | None,
                    only: str, term_t: tuple[int, int] | None = None,
                    inversion_iterations: int | None = None, guided_loops: tuple[int, ...] = (10,),
                    anchor_weights: tuple[float, ...] = (), gmm: str | None = None,
                    ) -> dict[str, FittingConfig]:  # fmt: skip
    """The fitting configs compared, by row name."""

    def config(stages, method="smplify") -> FittingConfig:
        cfg = FittingConfig(stages=stages, method=method)
        cfg.diffusion.checkpoint = checkpoint
        cfg.gmm_path = gmm
        if guidance_scale is not None:
            cfg.diffusion.guided.guidance_scale = guidance_scale
        if term_t is not None:
            cfg.diffusion.term_t_max, cfg.diffusion.term_t_min = term_t
        if inversion_iterations is not None:
            cfg.diffusion.guided.inversion_iterations = inversion_iterations
        return cfg

    gmm_only = spin_stages(iterations)
    with_term = copy.deepcopy(gmm_only)
    with_term[1].terms["diffusion_pose"] = weight
    term_only = copy.deepcopy(with_term)
    del term_only[1].terms["gmm_pose"]
    rows = {
        "SMPLify, GMM only": config(gmm_only),
        "SMPLify, GMM + diffusion term": config(with_term),
        "SMPLify, diffusion term only": config(term_only),
    }
    for loops in guided_loops:
        guided = config(gmm_only, method="guided")
        guided.diffusion.guided.loops = loops
        rows[f"guided refinement ({loops} loops)"] = guided
    for anchor in anchor_weights:
        anchored = copy.deepcopy(gmm_only)
        anchored[1].terms["pose_anchor"] = anchor
        rows[f"SMPLify, GMM + anchor (w {anchor:g})"] = config(anchored)
        anchored_term = copy.deepcopy(with_term)
        anchored_term[1].terms["pose_anchor"] = anchor
        rows[f"SMPLify, GMM + term + anchor (w {anchor:g})"] = config(anchored_term)
    default = FittingConfig()
    for stage in default.stages:
        stage.iterations = iterations
    default.diffusion.checkpoint = checkpoint or default.diffusion.checkpoint
    default.gmm_path = gmm or default.gmm_path
    rows["default (FittingConfig())"] = default
    if only == "gmm":
        rows = {k: v for k, v in rows.items() if "GMM only" in k}
    elif only != "all":  # rows whose name holds any of the comma-separated words
        rows = {k: v for k, v in rows.items() if any(word in k for word in only.split(","))}
    return rows


def yaw_sensitivity(prior, pose: torch.Tensor, yaws: int = 8, t: int = 50) -> float:
    """How much the term's value depends on which way the camera looks: the same poses turned
    about the camera's vertical axis, the same noise; mean over poses of std/mean over yaws."""
    from spin_diff.fitting.diffusion_term import distillation_target
    from spin_diff.geometry.rotations import axis_angle_to_matrix, yaw_matrix

    rotmats = axis_angle_to_matrix(pose.view(-1, 24, 3))
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(rotmats.shape[0], prior.data_dim, generator=generator)
    values = []
    for k in range(yaws):
        turned = rotmats.clone()
        turn = yaw_matrix(torch.full((rotmats.shape[0],), 2 * torch.pi * k / yaws))
        turned[:, 0] = turn @ rotmats[:, 0]
        x, _ = prior.encode(turned)
        values.append(((x - distillation_target(prior, x, t, noise)) ** 2).sum(-1))
    values = torch.stack(values, 1)
    return float((values.std(1) / values.mean(1)).mean())


def load_problems(model, source: str, n: int, seed: int):
    """Detector-corrupted problems whose bodies come from ``source``: a bundled real split or
    the pose sampler."""
    poses = None
    if source != "sampler":
        from spin_diff.data.real_poses import load_real_poses

        poses = load_real_poses(source)
    return make_problems(model, n, seed=seed, corruption=CorruptionConfig.preset("detector"), poses=poses)


def starts_for(model, problems, kinds: list[str], seed: int, pose_sigma: float) -> dict:
    """The starts compared: 'regressor' (perturbed truth) and 'mean' (mean pose, zero shape)."""
    starts = {}
    for kind in kinds:
        if kind == "regressor":
            starts[kind] = perturbed_start(problems, seed=seed + 1, pose_sigma=pose_sigma)
        elif kind == "mean":
            n = problems.pose.shape[0]
            mean_pose = matrix_to_axis_angle(model.mean_pose_rotmat(n)).reshape(n, 72)
            starts[kind] = (mean_pose, torch.zeros_like(problems.betas), None)
        else:
            raise ValueError(f"unknown start {kind!r}: regressor or mean")
    return starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--poses", default="test", help="where bodies come from: test, val, test_subjects, val_subjects (real CMU splits) or sampler")
    parser.add_argument("--start", default="regressor,mean", help="starts, comma-separated: regressor, mean")
    parser.add_argument("--n", type=int, default=128, help="problems")
    parser.add_argument("--iterations", type=int, default=100, help="Adam iterations per SMPLify stage")
    parser.add_argument("--weights", default=str(DIFFUSION_POSE_WEIGHT), help="diffusion term weight(s), comma-separated")
    parser.add_argument("--anchor-weights", default=str(POSE_ANCHOR_WEIGHT), help="pose anchor weight(s); '' for none")
    parser.add_argument("--guidance-scale", type=float, help="override fitting.diffusion.guided.guidance_scale")
    parser.add_argument("--prior", help="diffusion prior checkpoint (default: the bundled one)")
    parser.add_argument("--gmm", help="GMM pose prior file (default: the bundled one)")
    parser.add_argument("--priors", help="name=path,... : repeat the diffusion rows for each checkpoint")
    parser.add_argument("--only", default="all",
                        help="all, gmm (GMM only), or words a row's name must hold (e.g. 'GMM only,GMM + anchor')")
    parser.add_argument("--term-t", help="t_max,t_min of the diffusion term (default: the config's)")
    parser.add_argument("--inversion-iterations", type=int, help="override fitting.diffusion.guided.inversion_iterations")
    parser.add_argument("--guided-loops", default="10", help="guided refinement loops, one row per value (e.g. 10,20)")
    parser.add_argument("--pose-sigma", type=float, default=0.08, help="per-joint rotation noise of the regressor-like start (rad)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_body_model(device=args.device)
    problems = load_problems(model, args.poses, args.n, args.seed)
    starts = starts_for(model, problems, [s for s in args.start.split(",") if s], args.seed, args.pose_sigma)

    priors = {"": args.prior}
    if args.priors:
        priors = dict(item.split("=", 1) for item in args.priors.split(","))
    weights = [float(w) for w in args.weights.split(",")]
    anchors = tuple(float(w) for w in args.anchor_weights.split(",") if w)
    source = {"test": "real CMU test split (held out)", "val": "real CMU validation split",
              "sampler": "pose sampler"}.get(args.poses, args.poses)  # fmt: skip
    print(f"{args.n} problems from the {source}, 'detector' corruption, seed {args.seed}; regressor-like start: "
          f"truth with {args.pose_sigma:g} rad noise per joint axis; {args.iterations} Adam iterations per SMPLify "
          f"stage; {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    header = f"| {'start':<9} | {'variant':<52} | {'PA-MPJPE':>8} | {'MPJPE':>7} | {'worse':>6} | {'better':>6} | {'failed':>6} | {'s':>6} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for start_name, (pose0, betas0, transl0) in starts.items():
        start = joint_errors(model, pose0, betas0, problems.pose, problems.betas)
        print(f"| {start_name:<9} | {'start':<52} | {start['pa_mpjpe'].mean():8.1f} | {start['mpjpe'].mean():7.1f} | "
              f"{'':>6} | {'':>6} | {'':>6} | {'':>6} |")
        seen = set()
        for prior_name, checkpoint in priors.items():
            for weight in weights:
                term_t = tuple(int(v) for v in args.term_t.split(",")) if args.term_t else None
                rows = variant_configs(args.iterations, weight, args.guidance_scale, checkpoint, args.only, term_t,
                                       args.inversion_iterations, tuple(int(v) for v in args.guided_loops.split(",")),
                                       anchors, args.gmm)  # fmt: skip
                for name, config in rows.items():
                    label = name
                    if "term" in name and len(weights) > 1:
                        label += f" (term w {weight:g})"
                    if prior_name and "GMM only" not in name:
                        label += f" [{prior_name}]"
                    if label in seen:
                        continue
                    seen.add(label)
                    fitter = SMPLify(model, config)
                    tic = time.perf_counter()
                    result = fitter.fit(problems.keypoints, pose0, betas0, transl0)
                    seconds = time.perf_counter() - tic
                    e = joint_errors(model, result.pose, result.betas, problems.pose, problems.betas)
                    worse = (e["pa_mpjpe"] > start["pa_mpjpe"] + WORSE_MM).float().mean() * 100
                    better = (e["pa_mpjpe"] < start["pa_mpjpe"] - WORSE_MM).float().mean() * 100
                    failed = int((~result.success).sum())
                    print(f"| {start_name:<9} | {label:<52} | {e['pa_mpjpe'].mean():8.1f} | {e['mpjpe'].mean():7.1f} | "
                          f"{worse:5.0f}% | {better:5.0f}% | {failed:>6} | {seconds:6.1f} |", flush=True)
    print(f"worse/better: share of samples whose PA-MPJPE moved by more than {WORSE_MM:g} mm from the start's.")
    if args.priors:
        from spin_diff.diffusion.model import load_diffusion_prior

        print("\nyaw sensitivity of the term (true poses turned to 8 yaws, same noise, t = 50): std/mean over yaws")
        for prior_name, checkpoint in priors.items():
            prior = load_diffusion_prior(checkpoint)
            print(f"  {prior_name:<12} orientation={prior.config.orientation:<10} {yaw_sensitivity(prior, problems.pose):.3f}")


if __name__ == "__main__":
    main()
