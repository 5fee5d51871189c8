"""The figures no one has measured on a GPU, in one command and one file.

Sections, in order:

1. device tests: every test that takes the ``device`` fixture (``pytest -m device --device D``);
   on a device other than the cpu each also runs on the cpu and compares within the bound it
   states;
2. fitting throughput: fits/s of SMPLify at batch 64, 512 and 4096 for SPIN's recipe and the
   default objective (the diffusion term beside the GMM), eager, with ``torch.compile`` of the
   per-iteration body forward, and with CUDA graphs (the same compile in
   ``mode="reduce-overhead"``); the peak memory of each and its final mean score (the compiled
   fits should match eager's);
3. one training step at batch 64 (AMP as bf16 autocast on cuda) of the ResNet-50 image model
   and the keypoint model, part by part (``benchmarks/train_step.py``), the fit-to-network
   ratio, and the training data loader's images/s with 8 workers;
4. ``spin-diff demo --device D`` end to end, its wall time.

Every attempt is guarded: a failure becomes the figure ``failed: <one line>`` and the suite
goes on; an attempt past the time budget becomes ``skipped: ...``. CUDA is synchronised around
timed regions only. ``--quick`` runs tiny sizes (a cpu finishes in well under 2 minutes;
``tests/test_gpu_suite.py`` runs it so). The output is markdown, headed by the device, torch,
CUDA and the date.

    python benchmarks/gpu_suite.py --device cuda [--out FILE] [--quick] [--budget-s 480]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import torch

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(HERE))

from fit_throughput import synthetic_batch  # noqa: E402  (benchmarks/fit_throughput.py)
from timing import cpu_model  # noqa: E402  (benchmarks/timing.py)
from train_step import PARTS, bench, ensure_data  # noqa: E402  (benchmarks/train_step.py)

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.fitting.config import FittingConfig, default_stages, spin_stages  # noqa: E402
from spin_diff.fitting.smplify import SMPLify  # noqa: E402
from spin_diff.training.config import TrainConfig  # noqa: E402
from spin_diff.training.datasets import SpinDataset, TrainingData
from spin_diff.training.run import _loader  # noqa: E402  (the loader training itself uses)
from spin_diff.training.sampler import EpochBatchSampler
from spin_diff.utils.configs import load_config


@dataclasses.dataclass(frozen=True)
class SuiteSize:
    """How much each section does; :data:`SIZES` holds the two presets."""

    fit_batches: tuple[int, ...]
    fit_iterations: int | None  # per stage; None: each recipe's own (SPIN: 100 + 100)
    train_batch: int
    train_images: int  # rendered synthetic people for the training step and the loader
    train_repeats: int  # timed steps after the warm-up step
    loader_workers: int
    loader_epochs: int
    train_priors: int  # how many of TRAIN_PRIORS
    train_fit_iterations: int | None  # per stage of the in-loop fit; None: the training recipe's
    demo_quick: bool


SIZES = {
    "full": SuiteSize(
        fit_batches=(64, 512, 4096), fit_iterations=None, train_batch=64, train_images=128, train_repeats=2,
        loader_workers=8, loader_epochs=4, train_priors=2, train_fit_iterations=None, demo_quick=False,
    ),
    "quick": SuiteSize(
        fit_batches=(3, 8), fit_iterations=2, train_batch=2, train_images=4, train_repeats=1,
        loader_workers=2, loader_epochs=2, train_priors=1, train_fit_iterations=5, demo_quick=True,
    ),
}
FIT_MODES = ("eager", "torch.compile", "CUDA graphs")
TRAIN_MODELS = ("resnet50", "keypoints")
TRAIN_PRIORS = ("gmm", "gmm+diffusion")  # SPIN's in-loop fit; with the diffusion term beside the GMM


class Skipped(Exception):
    """An attempt that does not apply here (its message says why)."""


def one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip().splitlines()
    return text[0][:200] if text else type(err).__name__


class Budget:
    """Wall-clock budget of the whole suite; sections ask before each attempt."""

    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} (RSS)"  # Linux: KiB


def child_env() -> dict[str, str]:
    """This environment with the repository importable: a machine may hold spin_diff uninstalled
    (a GPU image with the dependencies as wheels on PYTHONPATH and the checkout beside them)."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()


def header(device: torch.device, args) -> list[str]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain"):
        commit += " + local changes"
    return [
        f"# spin_diff GPU suite ({'quick' if args.quick else 'full'}) on {device}",
        "",
        f"- device: {name}",
        f"- torch {torch.__version__}; CUDA {torch.version.cuda or 'none'}; cuDNN "
        f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 'none'}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"commit {commit}; {os.cpu_count()} cpu cores, {torch.get_num_threads()} torch threads",
        f"- command: python benchmarks/gpu_suite.py {' '.join(sys.argv[1:])}",
        "",
    ]


# --- 1. device tests -------------------------------------------------------------------------


def device_tests(device: torch.device, budget: Budget) -> list[str]:
    lines = ["## 1. Device tests (pytest -m device --device " + str(device) + ")", ""]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "device",
                   "--device", str(device), f"--junitxml={report}", "tests"]  # fmt: skip
        start = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True,
                                  timeout=max(30.0, min(240.0, budget.left() - 240.0)))  # fmt: skip
        except subprocess.TimeoutExpired as err:
            return lines + [f"failed: pytest timed out after {err.timeout:.0f} s", ""]
        seconds = time.perf_counter() - start
        if not report.is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()
            last = tail[-1] if tail else "no output"
            return lines + [f"failed: pytest exited {done.returncode}: {last}", ""]
        lines += ["| test | outcome | seconds |", "| --- | --- | ---: |"]
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for case in ET.parse(report).getroot().iter("testcase"):
            problem = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
            if problem is None:
                outcome = "passed"
            elif problem.tag == "skipped":
                outcome = f"skipped: {(problem.get('message') or '').splitlines()[0][:120]}"
            else:
                outcome = f"failed: {(problem.get('message') or problem.tag).splitlines()[0][:160]}"
            counts[outcome.split(":")[0]] += 1
            name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
            lines.append(f"| {name} | {outcome.replace('|', '/')} | {float(case.get('time', 0)):.1f} |")
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    return lines + ["", f"{summary} in {seconds:.0f} s (pytest exit {done.returncode})", ""]


# --- 2. fitting throughput -------------------------------------------------------------------


def recipe(name: str, iterations: int | None) -> FittingConfig:
    """SPIN's recipe or the default objective (the diffusion term and the pose anchor beside the GMM)."""
    stages = spin_stages if name == "SPIN" else default_stages
    return FittingConfig(stages=stages() if iterations is None else stages(iterations))


def compiled_joints(mode: str, device: torch.device, quick: bool):
    """SMPLify's per-iteration body forward (axis-angle -> 49 joints), compiled once for every
    fitter (``fitter`` is an argument, so no fitter's identity is guarded); None: eager."""
    if mode == "eager":
        return None
    if mode == "CUDA graphs":
        if device.type != "cuda":
            raise Skipped("CUDA graphs need a CUDA device")
        return torch.compile(SMPLify._joints, mode="reduce-overhead", dynamic=True)
    # On a cpu --quick only checks that the function traces (inductor's C++ build can take
    # minutes on a small cpu).
    # Dynamic shapes: one compile serves every batch.
    backend = "eager" if quick and device.type == "cpu" else "inductor"
    return torch.compile(SMPLify._joints, backend=backend, dynamic=True)


def fit_throughput(device: torch.device, size: SuiteSize, quick: bool, budget: Budget, deadline: float):
    body = load_body_model(device=device)
    lines = [
        "## 2. Fitting throughput",
        "",
        f"SMPLify on synthetic people (benchmarks/fit_throughput.py), {size.fit_iterations or 100} Adam "
        "iterations per stage; warm-up: one 2-iteration fit at the same batch (it compiles and "
        "captures; the first of a mode holds the compile). torch.compile (dynamic shapes) wraps the "
        "per-iteration body forward; CUDA graphs: the same in mode reduce-overhead. Peak: "
        "torch.cuda.max_memory_allocated (MiB) of the timed fit; on a cpu the process's peak RSS so far.",
        "",
        "| recipe | batch | mode | fits/s | warm-up s | peak MiB | mean score |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    compiled = {}
    for recipe_name in ("SPIN", "default"):
        config = recipe(recipe_name, size.fit_iterations)
        warm_config = recipe(recipe_name, 2)
        for batch in size.fit_batches:
            keypoints, init_pose, init_betas, init_transl = synthetic_batch(body, batch)
            for mode in FIT_MODES:
                row = f"| {recipe_name} | {batch} | {mode} |"
                if budget.elapsed() > deadline:
                    lines.append(f"{row} skipped: past this section's share of --budget-s | | | |")
                    continue
                try:
                    fitter, warm = SMPLify(body, config), SMPLify(body, warm_config)
                    if mode not in compiled:
                        compiled[mode] = compiled_joints(mode, device, quick)
                    if compiled[mode] is not None:
                        fitter._joints = functools.partial(compiled[mode], fitter)
                        warm._joints = functools.partial(compiled[mode], warm)
                    sync(device)
                    start = time.perf_counter()
                    warm.fit(keypoints, init_pose, init_betas, init_transl)
                    sync(device)
                    warm_seconds = time.perf_counter() - start
                    reset_peak(device)
                    start = time.perf_counter()
                    result = fitter.fit(keypoints, init_pose, init_betas, init_transl)
                    sync(device)
                    seconds = time.perf_counter() - start
                    score = result.score[result.success].mean().item()
                    cells = f"{batch / seconds:.1f} | {warm_seconds:.1f} | {peak_mib(device)} | {score:.2f}"
                    lines.append(f"{row} {cells} |")
                except Skipped as why:
                    lines.append(f"{row} skipped: {why} | | | |")
                except Exception as err:  # noqa: BLE001 - a failed attempt is a figure, not a crash
                    lines.append(f"{row} failed: {one_line(err).replace('|', '/')} | | | |")
    torch._dynamo.reset()
    return lines + [""]


# --- 3. training step and data loader --------------------------------------------------------


def training_step(device: torch.device, size: SuiteSize, budget: Budget, deadline: float, workdir: Path):
    amp = "off (cpu)"
    if device.type == "cuda":
        # The loop's torch.autocast takes the device's default dtype (float16 unless set)
        if hasattr(torch, "set_autocast_dtype"):
            torch.set_autocast_dtype("cuda", torch.bfloat16)
            amp = "bf16 autocast"
        else:
            amp = f"float16 autocast (torch {torch.__version__} cannot set bf16 as the default)"
    body = load_body_model(device=device)
    data_dir = workdir / "train_data"
    npz = ensure_data(data_dir, size.train_images)
    iterations = size.train_fit_iterations
    shorter = [] if iterations is None else [f"fitting.stages.{i}.iterations={iterations}" for i in (0, 1)]
    args = SimpleNamespace(batch=size.train_batch, device=str(device), repeats=size.train_repeats,
                           overrides=shorter)  # fmt: skip
    lines = [
        "## 3. Training step",
        "",
        f"batch {size.train_batch}, AMP {amp}, "
        f"mean of {size.train_repeats} step(s) after a warm-up step (benchmarks/train_step.py: the store "
        f"holds a fit for every example), in-loop fits of {iterations or 100} Adam iterations per stage. "
        "Milliseconds; data: one batch read in this process; settle: the read-after-write check at its worst "
        "(every row re-read); store_io: supervision choice, canonical "
        "frame and the store write; backward: losses, backward and Adam; fit / network: "
        "fitting / (forward + backward).",
        "",
        "| model | in-loop fit | " + " | ".join(PARTS) + " | step | fit / network |",
        "| --- | --- |" + " ---: |" * (len(PARTS) + 2),
    ]
    for model_name in TRAIN_MODELS:
        for prior in TRAIN_PRIORS[: size.train_priors]:
            row = f"| {model_name} | {prior} |"
            if budget.elapsed() > deadline:
                lines.append(f"{row} skipped: past this section's share of --budget-s |")
                continue
            try:
                times = bench(model_name, prior, args, body, npz, data_dir, workdir)
                network = times["forward"] + times["backward"]
                cells = " | ".join(f"{times[p] * 1000:.0f}" for p in PARTS)
                ratio = times["fitting"] / network
                lines.append(f"{row} {cells} | {sum(times.values()) * 1000:.0f} | {ratio:.2f}x |")
            except Exception as err:  # noqa: BLE001
                lines.append(f"{row} failed: {one_line(err).replace('|', '/')} |")
    lines += ["", "The goal is fit / network <= 1x.", ""]
    return lines + data_loader(device, size, npz, data_dir, budget, deadline)


def data_loader(device, size: SuiteSize, npz: Path, images: Path, budget: Budget, deadline: float):
    """Images/s of the loader training uses (image crops, SPIN's augmentation, pinned memory on cuda)."""
    lines = [f"### Data loader, {size.loader_workers} workers, batch {size.train_batch}", ""]
    if budget.elapsed() > deadline:
        return lines + ["skipped: past this section's share of --budget-s", ""]
    try:
        config = load_config(TrainConfig, None, ["model.input=image"])
        data = TrainingData([SpinDataset(npz, images, need_images=True)], use_images=True)
        augmentation = config.data.augmentation
        sampler = EpochBatchSampler(data.sizes, size.train_batch, seed=0, augmentation=augmentation)
        count, first_batch, total = 0, 0.0, 0.0
        for epoch in range(size.loader_epochs):  # workers restart each epoch, as in training
            sampler.set_epoch(epoch)
            start = time.perf_counter()
            loader = _loader(data, sampler, size.loader_workers, config.data.prefetch_factor, device)
            for index, batch in enumerate(loader):
                if index == 0:
                    first_batch += time.perf_counter() - start
                count += batch["images"].shape[0]
            total += time.perf_counter() - start
        wait = first_batch / size.loader_epochs
        lines += [
            "| images | epochs | images/s (with worker start) | first batch, s |",
            "| ---: | ---: | ---: | ---: |",
            f"| {count} | {size.loader_epochs} | {count / total:.0f} | {wait:.2f} |",
        ]
    except Exception as err:  # noqa: BLE001
        lines.append(f"failed: {one_line(err)}")
    return lines + [""]


# --- 4. demo ---------------------------------------------------------------------------------


def demo(device: torch.device, size: SuiteSize, budget: Budget, workdir: Path) -> list[str]:
    flags = ["--quick"] if size.demo_quick else []
    command = [sys.executable, "-m", "spin_diff.cli.main", "demo", "--device", str(device), "--quiet",
               "--out", str(workdir / "demo")] + flags  # fmt: skip
    lines = [f"## 4. spin-diff demo {' '.join(flags + ['--device', str(device)])}", ""]
    timeout = budget.left() - 5.0
    if timeout < 30.0:
        return lines + [f"skipped: {budget.left():.0f} s of --budget-s left", ""]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=workdir, env=child_env(), capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return lines + [f"failed: timed out after {timeout:.0f} s", ""]
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()
        return lines + [f"failed: exit {done.returncode}: {tail[-1] if tail else 'no output'}", ""]
    return lines + [f"end to end: {seconds:.1f} s (exit 0)", ""]


# --- the command -----------------------------------------------------------------------------


def default_out(device: torch.device) -> Path:
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO_ROOT / "outputs"
    return folder / f"gpu_suite_{device.type}.md"


def run_suite(device: torch.device, quick: bool, budget_s: float) -> str:
    size = SIZES["quick" if quick else "full"]
    budget = Budget(budget_s)
    # Shares of the budget each section may start work within (the demo gets what is left)
    fit_deadline, train_deadline = 0.55 * budget_s, 0.75 * budget_s
    text: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sections = [
            ("1. Device tests", lambda: device_tests(device, budget)),
            ("2. Fitting throughput", lambda: fit_throughput(device, size, quick, budget, fit_deadline)),
            ("3. Training step", lambda: training_step(device, size, budget, train_deadline, workdir)),
            ("4. spin-diff demo", lambda: demo(device, size, budget, workdir)),
        ]
        for title, section in sections:
            start = time.perf_counter()
            try:
                lines = section()
            except Exception as err:  # noqa: BLE001 - one broken section must not hide the others
                traceback.print_exc()
                lines = [f"## {title}", "", f"failed: {one_line(err)}", ""]
            lines.append(f"(section: {time.perf_counter() - start:.0f} s)")
            lines.append("")
            print("\n".join(lines), flush=True)
            text += lines
    text.append(f"Total: {budget.elapsed():.0f} s of a {budget_s:.0f} s budget.")
    return "\n".join(text) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every section runs")
    parser.add_argument("--out", type=Path, help="markdown file to write; default $OUT/gpu_suite_<device>.md "
                        "(outputs/ without $OUT)")  # fmt: skip
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of the whole suite")
    parser.add_argument("--threads", type=int, help="torch cpu threads (default: torch's own)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or default_out(device)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = header(device, args)
    print("\n".join(head), flush=True)
    body = run_suite(device, args.quick, args.budget_s)
    out.write_text("\n".join(head) + "\n" + body)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
