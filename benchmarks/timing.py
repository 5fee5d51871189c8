"""Timing helpers the benchmark scripts share (imported from beside them)."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import torch


def cpu_model() -> str:
    """The processor's name as the kernel reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_step(step, device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of ``step()`` in seconds (CUDA work synchronised around each call)."""
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
