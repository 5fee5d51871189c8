"""One SPIN training step, broken down: data, the read-after-write check, network forward,
backward + Adam, stored-fit scoring, in-loop fitting, store I/O.

The step is the one :func:`spin_diff.training.loop.train_step` runs, called part by part with
a timer around each (on CUDA each timer synchronises first). Data: a rendered synthetic set
(``spin-diff synth``, made once into --data-dir), SPIN's augmentation, read through
:class:`~spin_diff.training.datasets.TrainingData` in this process (no workers), the fit store's
records included. Fitting modes: ``off`` (supervision from the store only), ``gmm`` (SPIN's
in-loop SMPLify, 100 + 100 Adam iterations) and ``gmm+diffusion`` (the diffusion-prior term
beside the GMM). The store already holds a fit for every example (a first warm-up step
writes them), as in a run after its first epoch. ``settle`` is
:class:`~spin_diff.training.replay.ReadAfterWrite` in its worst case: every timed step repeats
the previous step's examples, so all its rows are re-read from the store; the writes keep the
replaced versions, as a training run's do.

    python benchmarks/train_step.py [--models keypoints,resnet50] [--modes off,gmm,gmm+diffusion]
                                    [--batch 64] [--threads 1] [--device cpu] [--repeats 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body.files import body_model_hash
from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.cache.store import FitStore  # noqa: E402
from spin_diff.fitting.smplify import SMPLify  # noqa: E402
from spin_diff.models.hmr import build_regressor  # noqa: E402
from spin_diff.training import loop  # noqa: E402
from spin_diff.training.config import TrainConfig, effective_fitting_config, scoring_config  # noqa: E402
from spin_diff.training.datasets import SpinDataset, TrainingData
from spin_diff.training.fit_updates import unpack_updates  # noqa: E402
from spin_diff.training.replay import ReadAfterWrite  # noqa: E402
from spin_diff.training.run import Run  # noqa: E402
from spin_diff.training.sampler import EpochBatchSampler
from spin_diff.utils.configs import load_config

MODELS = {
    "keypoints": ["model.input=keypoints"],
    "resnet50": ["model.input=image", "model.backbone=resnet50"],
}
PARTS = ("data", "settle", "scoring", "forward", "fitting", "store_io", "backward")


class Timer:
    def __init__(self, device: torch.device):
        self.device = device
        self.times: dict[str, float] = {}

    def __call__(self, name, fn, *args):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn(*args)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - start
        return out


def ensure_data(folder: Path, num: int) -> Path:
    npz = folder / "synth.npz"
    if not npz.is_file():
        from spin_diff.data.synth import SynthConfig, generate_dataset

        generate_dataset(SynthConfig(num_images=num, seed=123, save_masks=False), folder, progress=False)
    return npz


class _WrittenAlready:
    """The writer of :class:`ReadAfterWrite` here: this benchmark writes synchronously."""

    def flush(self) -> None:
        pass


def one_step(run: Run, data: TrainingData, request, store: FitStore, timer: Timer, step: int,
             read_after_write: ReadAfterWrite) -> None:  # fmt: skip
    """train_step's sequence, part by part (same functions, same order)."""
    host = timer("data", data.__getitems__, request)
    host = timer("settle", read_after_write.settle, host)
    batch = {k: v.to(run.device) for k, v in host.items()}
    stored_score = timer("scoring", loop.score_stored_fits, run.fitter, batch)
    prediction = timer("forward", loop.regress, run, batch)
    fit = timer("fitting", loop.fit_from_prediction, run.fitter, prediction, batch, data.names) if run.config.fitting.in_loop else None

    def supervise_and_store():
        targets = loop.supervise(batch, stored_score, prediction, fit, run.config.fitting)
        packed = loop.canonical_updates(run.fitter, batch, fit, targets)
        update = unpack_updates(packed.cpu().numpy(), data.names, step, 1)
        if update is not None:
            store.update_if_better(update, keep_previous=True)
        return targets

    targets = timer("store_io", supervise_and_store)

    def backward():
        losses = loop.spin_losses(prediction, batch, targets, run.config)
        loop.optimizer_step(run, losses.total)

    timer("backward", backward)


def bench(model_name: str, mode: str, args, body, npz: Path, images: Path, workdir: Path) -> dict[str, float]:
    overrides = MODELS[model_name] + [f"data.batch_size={args.batch}", f"device={args.device}"]
    overrides += getattr(args, "overrides", [])  # e.g. shorter fits (benchmarks/gpu_suite.py --quick)
    if mode == "off":
        overrides.append("fitting.in_loop=false")
    else:
        overrides.append(f"fitting.prior={mode}")
    config = load_config(TrainConfig, None, overrides)
    device = torch.device(args.device)
    use_images = config.model.input == "image"
    store_path = workdir / f"fits_{model_name}_{mode}"
    store = FitStore.open_or_create(store_path, body_model_hash(body))
    data = TrainingData([SpinDataset(npz, images, need_images=use_images)], use_images=use_images,
                        store=FitStore(store_path, readonly=True))  # fmt: skip
    model = build_regressor(config.model, mean_params=body.mean_params).to(device).train()
    fitting = effective_fitting_config(config.fitting, body)
    fitter = SMPLify(body, fitting if config.fitting.in_loop else scoring_config(fitting))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    amp = config.optim.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0**16 if amp else 1.0)
    run = Run(config, device, body, model, config.model.input, fitter, optimizer, scaler, None, amp)
    sampler = EpochBatchSampler(data.sizes, args.batch, seed=0, augmentation=config.data.augmentation)
    # Warm-up step with a short GMM fit: the store then holds a fit for every example of the
    # batch (what the timed steps read and score), and the network has run once.
    quick = load_config(TrainConfig, None, overrides[:2] + ["fitting.stages.0.iterations=20", "fitting.stages.1.iterations=20"])
    warm_run = dataclasses.replace(run, config=quick, fitter=SMPLify(body, effective_fitting_config(quick.fitting)))
    read_after_write = ReadAfterWrite(data, _WrittenAlready(), lookahead=0)
    one_step(warm_run, data, first_batch(sampler), store, Timer(device), 0, read_after_write)
    timer = Timer(device)
    for repeat in range(args.repeats):
        one_step(run, data, first_batch(sampler), store, timer, repeat + 1, read_after_write)
    store.close()
    return {name: timer.times.get(name, 0.0) / args.repeats for name in PARTS}


def first_batch(sampler: EpochBatchSampler):
    """The epoch's first batch (the same examples each repeat: their fits are in the store)."""
    sampler.set_epoch(0)
    return next(iter(sampler))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="keypoints,resnet50")
    parser.add_argument("--modes", default="off,gmm,gmm+diffusion")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=Path("outputs/bench_train_step"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    body = load_body_model(device=args.device)
    npz = ensure_data(args.data_dir, max(args.batch, 64))
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
          f"device {args.device}, batch {args.batch}, mean of {args.repeats} steps after one warm-up")  # fmt: skip
    print("| model | in-loop fitting | " + " | ".join(PARTS) + " | step | fitting / network |")
    print("|" + " --- |" * (len(PARTS) + 4))
    with tempfile.TemporaryDirectory() as workdir:
        for model_name in args.models.split(","):
            for mode in args.modes.split(","):
                times = bench(model_name, mode, args, body, npz, args.data_dir, Path(workdir))
                network = times["forward"] + times["backward"]
                total = sum(times.values())
                cells = " | ".join(f"{times[p] * 1000:.0f}" for p in PARTS)
                print(f"| {model_name} | {mode} | {cells} | {total * 1000:.0f} | {times['fitting'] / network:.2f}x |",
                      flush=True)  # fmt: skip
    print("(milliseconds per step; store_io includes choosing the supervision and mapping fits to the canonical frame)")


if __name__ == "__main__":
    main()
