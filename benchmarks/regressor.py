"""Throughput of the regressors: ResNet-50 HMR on 224 px crops and the keypoint-input regressor.

Run: .venv/bin/python benchmarks/regressor.py [--batch 64] [--threads 1] [--device cuda --amp]

For each network, images (people) per second at the given batch:

* forward: eval mode, no gradients, the whole public forward (network, 6D decoding, axis-angle,
  camera, the 49 keypoints through the body model's joints-only path and their projection);
* forward + backward: train mode (dropout, BatchNorm statistics), a scalar of every output
  backpropagated to the weights; no optimizer step.

Median over ``--repeats`` after ``--warmup`` runs, random inputs. On CUDA, ``--amp`` runs both
under ``torch.autocast`` (bfloat16 by default). Networks: ResNet-50 HMR (SPIN's: 2048 features,
3 IEF iterations, hidden 1024) and the keypoint regressor at its default size (MLP 1024 wide,
2 residual blocks, 1024 features, the same head).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

try:
    import spin_diff  # noqa: F401
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spin_diff.body.model import load_body_model
from spin_diff.models.config import RegressorConfig
from spin_diff.models.hmr import build_regressor

CONFIGS = {
    "resnet50-hmr": RegressorConfig(input="image", backbone="resnet50"),
    "keypoints": RegressorConfig(input="keypoints"),
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def median_seconds(step, device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_inputs(kind: str, batch: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if kind == "image":
        return torch.randn(batch, 3, 224, 224, generator=gen).to(device)
    xy = 30 + 164 * torch.rand(batch, 49, 2, generator=gen)
    return torch.cat([xy, torch.rand(batch, 49, 1, generator=gen)], -1).to(device)


def measure(name: str, body, args, device: torch.device) -> tuple[float, float]:
    torch.manual_seed(0)
    model = build_regressor(CONFIGS[name], body=body).to(device)
    inputs = make_inputs(CONFIGS[name].input, args.batch, device)
    autocast = (
        torch.autocast("cuda", dtype=getattr(torch, args.amp_dtype))
        if args.amp and device.type == "cuda"
        else nullcontext()
    )

    def forward() -> None:
        with torch.no_grad(), autocast:
            model(inputs)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        with autocast:
            out = model(inputs)
            loss = out.rotmat.float().square().mean() + out.betas.float().square().mean()
            loss = loss + out.cam.float().square().mean() + (out.keypoints_2d.float() / 224).square().mean()
        loss.backward()

    model.eval()
    fwd = median_seconds(forward, device, args.warmup, args.repeats)
    model.train()
    fwd_bwd = median_seconds(forward_backward, device, args.warmup, args.repeats)
    return args.batch / fwd, args.batch / fwd_bwd


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="CUDA only: torch.autocast")
    parser.add_argument("--amp-dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--models", default="resnet50-hmr,keypoints", help=f"comma-separated: {', '.join(CONFIGS)}"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.amp and device.type != "cuda":
        parser.error("--amp is for CUDA devices")
    body = load_body_model(device=device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_model()}, {args.threads} torch thread(s)"
    )
    precision = f"autocast {args.amp_dtype}" if args.amp else "float32"
    print(
        f"device: {where}; batch {args.batch}; {precision}; "
        f"median of {args.repeats} after {args.warmup} warm-up"
    )
    print(f"{'network':16s}{'parameters':>12s}{'forward img/s':>16s}{'fwd+bwd img/s':>16s}")
    for name in args.models.split(","):
        name = name.strip()
        if name not in CONFIGS:
            parser.error(f"unknown network {name!r}; choose from {', '.join(CONFIGS)}")
        parameters = sum(p.numel() for p in build_regressor(CONFIGS[name], body=body).parameters())
        forward, both = measure(name, body, args, device)
        print(f"{name:16s}{parameters / 1e6:11.1f}M{forward:16.1f}{both:16.1f}")
    if device.type != "cuda":
        print("GPU (CUDA, AMP): not measured here; run with --device cuda --amp on a GPU machine")


if __name__ == "__main__":
    main()
