"""Fitting throughput: spin_diff's SMPLify against a reference on smplx's full forward.

Both run SPIN's recipe (camera stage then body stage, Adam lr 1e-2, the same weighted terms)
on the same synthetic batch from the same start. The reference is written here, the way
SPIN's smplify.py runs it: smplx's full forward (every vertex) each iteration, extra joints
regressed from the vertices, then the same losses. Reported: fits per second, final
losses, and the speed ratio. Large batches would take hours through the reference on a CPU,
so there it is timed over a few iterations and its rate extrapolated (marked so).

    python benchmarks/fit_throughput.py [--batches 64,512,4096] [--iterations 100] [--device cuda]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body import joints as J  # noqa: E402
from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.fitting.config import FittingConfig, spin_stages  # noqa: E402
from spin_diff.fitting.smplify import SMPLify, gmm_prior_for  # noqa: E402
from spin_diff.geometry.cameras import perspective_projection
from spin_diff.geometry.rotations import matrix_to_axis_angle  # noqa: E402
from spin_diff.priors.angle import angle_prior  # noqa: E402
from spin_diff.priors.pose_sampler import sample_poses  # noqa: E402


def synthetic_batch(model, batch: int, seed: int = 0):
    """Sampled people facing the camera, projected into SPIN's 224 crop (conf 1)."""
    rng = np.random.default_rng(seed)
    body_pose, _ = sample_poses(batch, rng)
    device = model.fast.joint_template.device
    pose = torch.zeros(batch, 72)
    pose[:, 0] = np.pi
    pose[:, 3:] = torch.tensor(body_pose, dtype=torch.float32)
    betas = torch.tensor(rng.normal(0, 0.7, (batch, 10)), dtype=torch.float32)
    transl = torch.tensor(np.c_[rng.normal(0, 0.1, (batch, 2)), rng.uniform(40, 55, batch)], dtype=torch.float32)
    pose, betas, transl = pose.to(device), betas.to(device), transl.to(device)
    with torch.no_grad():
        joints = model.joints(pose, betas).joints
    center = torch.full((batch, 2), 112.0, device=device)
    keypoints = torch.cat([perspective_projection(joints, transl, 5000.0, center), torch.ones(batch, 49, 1, device=device)], -1)
    init_pose = matrix_to_axis_angle(model.mean_pose_rotmat(batch)).reshape(batch, 72)
    init_transl = transl + torch.tensor([0.0, 0.0, 5.0], device=device)
    return keypoints, init_pose, torch.zeros(batch, 10, device=device), init_transl


def gmof(x, sigma):
    return sigma**2 * x**2 / (sigma**2 + x**2)


def reference_smplify(model, gmm, keypoints, init_pose, init_betas, init_transl, iterations, max_iterations=None):
    """SPIN's loop on smplx's full forward. Returns (final body loss per sample, seconds/iteration)."""
    smpl, extra, joint_map = model.smpl, model.extra_regressor, model.fast.joint_map
    batch = keypoints.shape[0]
    center = torch.full((batch, 2), 112.0, device=keypoints.device)
    kp, conf = keypoints[..., :2], keypoints[..., 2].clone()
    global_orient = init_pose[:, :3].clone().requires_grad_()
    body_pose = init_pose[:, 3:].clone()
    betas = init_betas.clone()
    transl = init_transl.clone().requires_grad_()
    torso_op = J.joint_indices(J.TORSO_OPENPOSE)

    def joints_of(go, bp, b):
        out = smpl(global_orient=go, body_pose=bp, betas=b)
        return torch.cat([out.joints, torch.einsum("kv,bvc->bkc", extra, out.vertices)], 1)[:, joint_map]

    steps = iterations if max_iterations is None else min(iterations, max_iterations)
    start = time.perf_counter()
    optimizer = torch.optim.Adam([global_orient, transl], lr=1e-2, betas=(0.9, 0.999))
    for _ in range(steps):
        projected = perspective_projection(joints_of(global_orient, body_pose, betas), transl, 5000.0, center)
        loss = ((projected[:, torso_op] - kp[:, torso_op]) ** 2).sum((1, 2))
        loss = loss + 100.0**2 * (transl[:, 2] - init_transl[:, 2]) ** 2
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    transl = transl.detach()
    conf[:, J.joint_indices(J.IGNORED_FOR_BODY_FIT)] = 0.0
    body_pose.requires_grad_()
    betas.requires_grad_()
    optimizer = torch.optim.Adam([body_pose, betas, global_orient], lr=1e-2, betas=(0.9, 0.999))

    def body_loss():
        projected = perspective_projection(joints_of(global_orient, body_pose, betas), transl, 5000.0, center)
        reprojection = (conf**2 * gmof(projected - kp, 100.0).sum(-1)).sum(-1)
        return reprojection + 4.78**2 * gmm(body_pose) + 15.2**2 * angle_prior(body_pose) + 5.0**2 * (betas**2).sum(-1)

    for _ in range(steps):
        optimizer.zero_grad()
        body_loss().sum().backward()
        optimizer.step()
    if keypoints.is_cuda:
        torch.cuda.synchronize()
    seconds_per_iteration = (time.perf_counter() - start) / (2 * steps)
    with torch.no_grad():
        return body_loss(), seconds_per_iteration


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor()
    return f"{name}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="64,512,4096")
    parser.add_argument("--iterations", type=int, default=100, help="per stage (SPIN: 100)")
    parser.add_argument("--reference-iterations", type=int, default=10,
                        help="iterations per stage the reference runs above batch 64 (rate extrapolated)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine more threads mostly wait)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_body_model(device=args.device)
    config = FittingConfig(stages=spin_stages(args.iterations))
    fitter = SMPLify(model, config)
    gmm = gmm_prior_for(config, model)
    print(f"machine: {machine(args.device)}; torch {torch.__version__}; body model: {model.num_vertices} vertices")
    print(f"SPIN recipe: 2 x {args.iterations} Adam iterations, lr 1e-2, same start, same terms")
    header = f"{'batch':>6} | {'spin_diff fits/s':>16} | {'reference fits/s':>16} | {'ratio':>6} | {'final loss (ours / ref)':>26}"
    print(header)
    print("-" * len(header))
    for batch in (int(b) for b in args.batches.split(",")):
        keypoints, init_pose, init_betas, init_transl = synthetic_batch(model, batch)
        fitter.fit(keypoints[:2], init_pose[:2], init_betas[:2], init_transl[:2])  # warm-up
        start = time.perf_counter()
        result = fitter.fit(keypoints, init_pose, init_betas, init_transl)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        ours = batch / (time.perf_counter() - start)
        full_reference = batch <= 64
        ref_loss, per_iteration = reference_smplify(
            model, gmm, keypoints, init_pose, init_betas, init_transl, args.iterations,
            None if full_reference else args.reference_iterations,
        )  # fmt: skip
        reference = batch / (per_iteration * 2 * args.iterations)
        ours_loss = result.stage_losses["body"].mean().item()
        if full_reference:
            losses = f"{ours_loss:10.2f} / {ref_loss.mean().item():10.2f} ({100 * (ours_loss / ref_loss.mean().item() - 1):+.2f}%)"
        else:
            losses = f"{ours_loss:10.2f} / (ref extrapolated)"
        print(f"{batch:>6} | {ours:>16.1f} | {reference:>15.1f}{'' if full_reference else '*'} | {ours / reference:>5.1f}x | {losses}")
    print("* reference timed over --reference-iterations per stage and its rate extrapolated")


if __name__ == "__main__":
    main()
