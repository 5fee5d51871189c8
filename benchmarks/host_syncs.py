"""How often a fit reads a tensor's value on the host: the GPU synchronisations of its loop.

On a GPU every read of a tensor's value by Python (``.item()``, ``float(t)``, ``bool(t)``,
``.tolist()``, ``.cpu()``) waits for the device to finish. This script counts those reads
during one fit and attributes each to the code that made it: ``torch.optim.LBFGS`` (its
line search and tolerance checks read the loss and gradients: device syncs on a GPU),
``torch.optim.Adam`` (its step counter, a host tensor by torch's design: no sync) and
spin_diff (the end of a fit copies the per-sample status to the host once; the reasons loop
then reads that host copy). The counts are the same on any device, so a CPU run counts the
syncs; what they cost on a GPU needs a GPU to measure.

    python benchmarks/host_syncs.py [--batch 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data.keypoint_sets import make_problems, perturbed_start  # noqa: E402
from spin_diff.fitting.config import FittingConfig, default_stages, spin_stages  # noqa: E402
from spin_diff.fitting.smplify import SMPLify  # noqa: E402

_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy")


def _caller() -> str:
    """Which code read the value: the innermost frame in torch.optim or spin_diff."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if "torch/optim/lbfgs" in name:
            return "torch.optim.LBFGS"
        if "torch/optim" in name:
            return "torch.optim (Adam's host step counter)"
        if "spin_diff" in name:
            return "spin_diff"
        frame = frame.f_back
    return "other"


@contextmanager
def counting_host_reads(counter: Counter):
    """Count calls of the tensor methods that read values on the host."""
    originals = {name: getattr(torch.Tensor, name) for name in _READS}

    def wrap(name, method):
        def counted(self, *args, **kwargs):
            counter[(_caller(), name)] += 1
            return method(self, *args, **kwargs)

        return counted

    try:
        for name, method in originals.items():
            setattr(torch.Tensor, name, wrap(name, method))
        yield counter
    finally:
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)


def count_objective_calls(fitter: SMPLify) -> Counter:
    calls = Counter()
    original = fitter._objective_of

    def counted(*args, **kwargs):
        calls["objective"] += 1
        return original(*args, **kwargs)

    fitter._objective_of = counted
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_body_model(device=args.device)
    problems = make_problems(model, args.batch, seed=0)
    pose0, betas0, transl0 = perturbed_start(problems)
    recipes = {
        "adam (default: 2 x 100 iterations)": FittingConfig(stages=default_stages(100)),
        "lbfgs (2 x 10 steps, up to 20 inner iterations)": FittingConfig(stages=default_stages(10), optimizer="lbfgs"),
        "lm (SPIN's objective, 2 x 10 iterations)": FittingConfig(stages=spin_stages(10), optimizer="lm"),
    }
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"device {args.device} ({device_name}), batch {args.batch}, torch {torch.__version__}")
    for label, config in recipes.items():
        fitter = SMPLify(model, config)
        fitter.fit(problems.keypoints, pose0, betas0, transl0)  # warm-up
        calls = count_objective_calls(fitter)
        reads = Counter()
        with counting_host_reads(reads):
            result = fitter.fit(problems.keypoints, pose0, betas0, transl0)
        evaluations = calls["objective"]
        by_caller = Counter()
        for (caller, _), count in reads.items():
            by_caller[caller] += count
        print(f"{label}: {evaluations} objective evaluations, {int(result.iterations.float().mean())} "
              "optimiser iterations per sample")  # fmt: skip
        for caller, count in by_caller.most_common():
            kinds = ", ".join(f"{name} {n}" for (c, name), n in reads.most_common() if c == caller)
            print(f"  {caller}: {count} host reads ({kinds}), {count / max(evaluations, 1):.2f} per evaluation")


if __name__ == "__main__":
    main()
