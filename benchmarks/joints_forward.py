"""Forward + backward time of SPIN's 49 joints: the joints-only fast path against the full mesh.

Run: /work/venv/bin/python benchmarks/joints_forward.py [--body-model PATH] [--device cuda]

(a) ``BodyModel.joints``: forward kinematics plus skinning of the few vertices the extra joints
    need (what the fitting loop calls);
(b) ``BodyModel.forward``: smplx's full forward over every vertex plus ``J_regressor_extra``,
    which is what SPIN computes for its keypoints.

Both get random poses (std 0.5 rad), betas (std 1) and translations, with gradients on all three,
and are timed on ``(weights * joints).sum().backward()``: median over repeats after warm-up, in
one process, with torch's default thread count (printed).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

try:
    import spin_diff  # noqa: F401
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from timing import cpu_model, time_step  # noqa: E402  (benchmarks/timing.py)
from spin_diff.body.model import BodyModel, load_body_model  # noqa: E402


def make_step(body: BodyModel, method: str, batch: int, device: torch.device, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    pose = (0.5 * torch.randn(batch, 72, generator=gen)).to(device).requires_grad_(True)
    betas = torch.randn(batch, body.num_betas, generator=gen).to(device).requires_grad_(True)
    transl = torch.randn(batch, 3, generator=gen).to(device).requires_grad_(True)
    weights = torch.randn(batch, 49, 3, generator=gen).to(device)
    run = body.joints if method == "joints" else body.forward

    def step() -> None:
        for tensor in (pose, betas, transl):
            tensor.grad = None
        # check_finite=False: the finiteness check is a host sync, not part of either computation.
        out = run(pose, betas, transl, check_finite=False)
        (weights * out.joints).sum().backward()

    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body-model", default=None, help="SMPL file or folder (default: the bundled free model)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine more threads mostly wait)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    body = load_body_model(args.body_model, device=device)
    info = body.info()

    print(f"machine: {cpu_model()} ({platform.machine()}), python {platform.python_version()}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}", end="")
    print(f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    print(f"body model: {info['source']}; {info['vertices']} vertices, pose blend shapes: {info['pose blend shapes']}")
    print(f"support vertices of the fast path: {body.fast.num_support_vertices}")
    print(f"forward + backward, median of {args.repeats} after {args.warmup} warm-up runs\n")

    header = f"{'batch':>6} | {'fast joints (ms)':>16} | {'full forward (ms)':>17} | {'speed-up':>8}"
    print(header)
    print("-" * len(header))
    for batch in args.batch:
        fast = time_step(make_step(body, "joints", batch, device), device, args.warmup, args.repeats)
        full = time_step(make_step(body, "forward", batch, device), device, args.warmup, args.repeats)
        print(f"{batch:>6} | {fast * 1e3:>16.2f} | {full * 1e3:>17.2f} | {full / fast:>7.1f}x")


if __name__ == "__main__":
    main()
