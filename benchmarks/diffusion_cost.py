"""What the diffusion prior costs inside fitting: time per SMPLify iteration with and without it.

For each batch size, the same synthetic problems are fitted with SPIN's body stage (robust
reprojection, GMM, angle and shape priors; Adam) with and without the ``diffusion_pose``
term, and with the whole default fit (camera stage then body stage). Reported: milliseconds
per iteration and the ratio (target: the term at most doubles the time), the denoiser's
forward pass alone, and one guided-refinement DDIM step (denoiser + keypoint gradient).

    python benchmarks/diffusion_cost.py [--batches 64,1024] [--iterations 30] [--device cuda]
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
from spin_diff.data.keypoint_sets import make_problems, perturbed_start  # noqa: E402
from spin_diff.fitting.config import DIFFUSION_POSE_WEIGHT, FittingConfig, StageConfig, spin_stages  # noqa: E402
from spin_diff.fitting.smplify import SMPLify  # noqa: E402


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def per_iteration_ms(fitter: SMPLify, problems, start, iterations: int, device: str, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of a fit divided by its total iterations."""
    pose0, betas0, transl0 = start
    fitter.fit(problems.keypoints, pose0, betas0, transl0)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        tic = time.perf_counter()
        fitter.fit(problems.keypoints, pose0, betas0, transl0)
        synchronize(device)
        best = min(best, time.perf_counter() - tic)
    total = sum(s.iterations for s in fitter.config.stages)
    return 1000 * best / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="64,1024")
    parser.add_argument("--iterations", type=int, default=30, help="iterations per stage timed")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prior", help="diffusion prior checkpoint (default: the bundled one)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_body_model(device=args.device)
    body = spin_stages(args.iterations)[1]
    with_term = copy.deepcopy(body)
    with_term.terms["diffusion_pose"] = DIFFUSION_POSE_WEIGHT
    configs = {
        "body stage, GMM only": FittingConfig(stages=[body]),
        "body stage, GMM + diffusion": FittingConfig(stages=[with_term]),
        "default fit, GMM only": FittingConfig(stages=spin_stages(args.iterations)),
        "default fit, GMM + diffusion": FittingConfig(stages=spin_stages(args.iterations)),
    }
    configs["default fit, GMM + diffusion"].stages[1] = with_term
    for config in configs.values():
        config.diffusion.checkpoint = args.prior
    if args.device.startswith("cuda"):
        name = torch.cuda.get_device_name()
    else:
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"device: {args.device} ({name}); {args.iterations} Adam iterations per stage; ms per iteration")
    header = f"| {'batch':>5} | {'what':<30} | {'ms/iter':>8} | {'ratio':>5} |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for batch in [int(b) for b in args.batches.split(",")]:
        problems = make_problems(model, batch, seed=3)
        start = perturbed_start(problems, seed=4)
        fitters = {name: SMPLify(model, config) for name, config in configs.items()}
        times = {name: per_iteration_ms(f, problems, start, args.iterations, args.device) for name, f in fitters.items()}
        for name, ms in times.items():
            base = times[name.replace("GMM + diffusion", "GMM only")]
            print(f"| {batch:>5} | {name:<30} | {ms:8.2f} | {ms / base:5.2f} |")
        prior = fitters["body stage, GMM + diffusion"].context.extras["diffusion_prior"]
        x = torch.randn(batch, prior.data_dim, device=args.device, dtype=prior.alpha_bars.dtype)
        with torch.no_grad():
            prior.predict_noise(x, 50)
            synchronize(args.device)
            tic = time.perf_counter()
            for _ in range(10):
                prior.predict_noise(x, 50)
            synchronize(args.device)
        print(f"| {batch:>5} | {'denoiser forward alone':<30} | {100 * (time.perf_counter() - tic):8.2f} | {'':>5} |")
        guided = FittingConfig(stages=[StageConfig(name="camera", iterations=0, optimize=["transl"], terms={})], method="guided")
        guided.diffusion.checkpoint = args.prior
        guided.diffusion.guided.loops = 1
        guided.diffusion.guided.early_stop_tol = 0.0
        fitter = SMPLify(model, guided)
        pose0, betas0, transl0 = start
        fitter.fit(problems.keypoints, pose0, betas0, transl0)
        synchronize(args.device)
        tic = time.perf_counter()
        fitter.fit(problems.keypoints, pose0, betas0, transl0)
        synchronize(args.device)
        steps = len(range(0, guided.diffusion.guided.t_start, guided.diffusion.guided.step))
        ms = 1000 * (time.perf_counter() - tic) / steps
        print(f"| {batch:>5} | {'guided: inversion + DDIM step':<30} | {ms:8.2f} | {'':>5} |", flush=True)


if __name__ == "__main__":
    main()
