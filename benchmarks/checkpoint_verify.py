"""What checking a checkpoint's CRCs costs, beside loading it: a file of about 100 MB (a
ResNet-50 regressor with Adam's state is about 300 MB; SPIN's model_checkpoint.pt 316 MB).

    python benchmarks/checkpoint_verify.py [--megabytes 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.utils.checkpoints import verify_torch_file  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        tensors = {f"layer{i}.weight": torch.randn(args.megabytes * 2 ** 20 // 4 // 50) for i in range(50)}
        torch.save({"format": "benchmark", "version": 1, "model": tensors}, path)
        size = path.stat().st_size / 2 ** 20
        timings = {"verify (CRC-32 of every member)": [], "torch.load (weights_only)": []}
        for _ in range(args.repeats):  # the file is in the page cache after the first read
            tic = time.perf_counter()
            verify_torch_file(path)
            timings["verify (CRC-32 of every member)"].append(time.perf_counter() - tic)
            tic = time.perf_counter()
            torch.load(path, map_location="cpu", weights_only=True)
            timings["torch.load (weights_only)"].append(time.perf_counter() - tic)
    print(f"checkpoint of {size:.0f} MiB, {args.repeats} repeats, page cache warm; {args.threads} torch thread(s)")
    print("| step | median s | MiB/s |")
    print("| --- | --- | --- |")
    for name, values in timings.items():
        median = sorted(values)[len(values) // 2]
        print(f"| {name} | {median:.3f} | {size / median:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
