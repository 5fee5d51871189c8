"""Does the diffusion pose prior make fitting improve a regressor-like estimate? An ablation.

Sampled bodies are projected into SPIN's 224 crop and degraded like a detector (the
"detector" corruption: confidence-scaled jitter, misses, left/right swaps, outliers); a
noisy copy of the truth stands in for a regressor's estimate (per-joint rotation noise,
shape and depth error). From that start we run:

- SMPLify, GMM only (SPIN's recipe);
- SMPLify, GMM + diffusion term (the default config);
- SMPLify, diffusion term only (GMM weight 0);
- guided refinement (ScoreHMR: SMPLify's camera stage, then guided DDIM with the prior).

Reported: PA-MPJPE and MPJPE (mm, 14 LSP joints, pelvis-centred) of the start and of each
variant, the share of samples whose PA-MPJPE got worse than the start (by more than 1 mm)
and better, failures and seconds. ``--priors name=path,...`` repeats the diffusion-term
rows for other checkpoints (e.g. priors trained with another orientation mode).

    python benchmarks/prior_ablation.py [--n 96] [--iterations 100] [--weights 300]
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
from spin_diff.evaluation.metrics import joint_errors  # noqa: E402
from spin_diff.fitting.config import DIFFUSION_POSE_WEIGHT, FittingConfig, spin_stages  # noqa: E402
from spin_diff.fitting.smplify import SMPLify  # noqa: E402

WORSE_MM = 1.0  # a sample counts as worse (better) when its PA-MPJPE moved by more than this


def variant_configs(iterations: int, weight: float, guidance_scale: float | None, checkpoint: str | None,
                    only: str, term_t: tuple[int, int] | None = None,
                    inversion_iterations: int | None = None, guided_loops: tuple[int, ...] = (10,),
                    ) -> dict[str, FittingConfig]:  # fmt: skip
    """The fitting configs compared, by row name."""

    def config(stages, method="smplify") -> FittingConfig:
        cfg = FittingConfig(stages=stages, method=method)
        cfg.diffusion.checkpoint = checkpoint
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
    if only == "term":
        rows = {k: v for k, v in rows.items() if "term" in k}
    elif only == "guided":
        rows = {k: v for k, v in rows.items() if "guided" in k}
    return rows


def yaw_sensitivity(prior, pose: torch.Tensor, yaws: int = 8, t: int = 50) -> float:
    """How much the term's value depends on which way the camera looks: the same poses turned
    about the camera's vertical axis, the same noise; mean over poses of std/mean over yaws."""
    from spin_diff.diffusion.representation import yaw_matrix
    from spin_diff.diffusion.term import distillation_target
    from spin_diff.geometry.rotations import axis_angle_to_matrix

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=96, help="problems")
    parser.add_argument("--iterations", type=int, default=100, help="Adam iterations per SMPLify stage")
    parser.add_argument("--weights", default=str(DIFFUSION_POSE_WEIGHT), help="diffusion term weight(s), comma-separated")
    parser.add_argument("--guidance-scale", type=float, help="override fitting.diffusion.guided.guidance_scale")
    parser.add_argument("--prior", help="diffusion prior checkpoint (default: the bundled one)")
    parser.add_argument("--priors", help="name=path,... : repeat the diffusion rows for each checkpoint")
    parser.add_argument("--only", choices=["all", "term", "guided"], default="all")
    parser.add_argument("--term-t", help="t_max,t_min of the diffusion term (default: the config's)")
    parser.add_argument("--inversion-iterations", type=int, help="override fitting.diffusion.guided.inversion_iterations")
    parser.add_argument("--guided-loops", default="10", help="guided refinement loops, one row per value (e.g. 10,20)")
    parser.add_argument("--pose-sigma", type=float, default=0.15, help="per-joint rotation noise of the start (rad)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_body_model(device=args.device)
    problems = make_problems(model, args.n, seed=args.seed, corruption=CorruptionConfig.preset("detector"))
    pose0, betas0, transl0 = perturbed_start(problems, seed=args.seed + 1, pose_sigma=args.pose_sigma)
    start = joint_errors(model, pose0, betas0, problems.pose, problems.betas)

    priors = {"": args.prior}
    if args.priors:
        priors = dict(item.split("=", 1) for item in args.priors.split(","))
    weights = [float(w) for w in args.weights.split(",")]
    print(f"{args.n} problems, 'detector' corruption, perturbed-truth start (pose noise {args.pose_sigma:g} rad per "
          f"joint axis); {args.iterations} Adam iterations "
          f"per SMPLify stage; {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    header = f"| {'variant':<52} | {'PA-MPJPE':>8} | {'MPJPE':>7} | {'worse':>6} | {'better':>6} | {'failed':>6} | {'s':>6} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    print(f"| {'start (regressor stand-in)':<52} | {start['pa_mpjpe'].mean():8.1f} | {start['mpjpe'].mean():7.1f} | "
          f"{'':>6} | {'':>6} | {'':>6} | {'':>6} |")
    seen = set()
    for prior_name, checkpoint in priors.items():
        for weight in weights:
            term_t = tuple(int(v) for v in args.term_t.split(",")) if args.term_t else None
            rows = variant_configs(args.iterations, weight, args.guidance_scale, checkpoint, args.only, term_t,
                                   args.inversion_iterations, tuple(int(v) for v in args.guided_loops.split(",")))
            for name, config in rows.items():
                label = name
                if "term" in name and len(weights) > 1:
                    label += f" (w {weight:g})"
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
                print(f"| {label:<52} | {e['pa_mpjpe'].mean():8.1f} | {e['mpjpe'].mean():7.1f} | {worse:5.0f}% | "
                      f"{better:5.0f}% | {failed:>6} | {seconds:6.1f} |", flush=True)
    print(f"worse/better: share of samples whose PA-MPJPE moved by more than {WORSE_MM:g} mm from the start's.")
    if args.priors:
        from spin_diff.diffusion.model import load_diffusion_prior

        print("\nyaw sensitivity of the term (true poses turned to 8 yaws, same noise, t = 50): std/mean over yaws")
        for prior_name, checkpoint in priors.items():
            prior = load_diffusion_prior(checkpoint)
            print(f"  {prior_name:<12} orientation={prior.config.orientation:<10} {yaw_sensitivity(prior, problems.pose):.3f}")


if __name__ == "__main__":
    main()
