"""A training run: set-up, the epoch loop, checkpoints, resume, stopping, validation.

:func:`train` is what ``spin-diff train`` calls. ``RUN_DIR`` receives

* ``config.yaml``: the resolved training config;
* ``last.pt``: the latest checkpoint (every ``checkpoint_every`` steps, at the end, on
  SIGTERM/SIGINT and at ``--time-limit``), a regressor checkpoint ``spin-diff eval`` reads;
* ``log.csv`` (and ``tensorboard/`` when the package is installed), ``validation.csv``;
* ``fits/``: the LMDB fit store, unless ``--cache`` names another (a shared one).

The order of the data depends only on the seed and the epoch (:mod:`spin_diff.training.sampler`),
so ``--resume`` continues with exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from spin_diff.body.files import body_model_hash, body_model_label, find_beside_model
from spin_diff.body.model import load_body_from_config
from spin_diff.cache.builder import fit_config_hash
from spin_diff.cache.header import dataset_identity
from spin_diff.cache.records import Source
from spin_diff.cache.stats import cache_stats
from spin_diff.cache.store import FitStore
from spin_diff.diffusion.conditioning import ConditioningError
from spin_diff.diffusion.model import PRIOR_FILE_NAME
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.evaluation.protocols import load_eval_set
from spin_diff.fitting.conditioning import check_regressor
from spin_diff.fitting.config import FittingConfig
from spin_diff.fitting.keep import KeepRule
from spin_diff.fitting.smplify import SMPLify
from spin_diff.models.backbones import load_backbone_state_dict
from spin_diff.models.checkpoints import load_regressor
from spin_diff.utils.checkpoints import CheckpointError
from spin_diff.models.hmr import build_regressor
from spin_diff.render.mesh_renderer import save_png
from spin_diff.training import distributed as D
from spin_diff.training.checkpointing import (
    LAST_CHECKPOINT,
    StopSignal,
    load_training_state,
    restore_rng_state,
    save_training_checkpoint,
)
from spin_diff.training.config import (
    InLoopFittingConfig,
    TrainConfig,
    effective_fitting_config,
    names_conditional_prior,
    resolve_auto_prior,
    scoring_config,
)
from spin_diff.training.datasets import DatasetEntry, SpinDataset, TrainingData, collate_identity
from spin_diff.training.fit_updates import FitWriter
from spin_diff.training.logs import RunLog
from spin_diff.training.loop import train_step
from spin_diff.training.sampler import EpochBatchSampler
from spin_diff.training.pictures import example_request, example_sheet, plot_run
from spin_diff.training.replay import ReadAfterWrite, kill_point, resume_store, truncate_run_logs
from spin_diff.training.run_folder import BEST_CHECKPOINT, keep_step_checkpoint, prepare_run_folder
from spin_diff.training.validation import validate
from spin_diff.utils.configs import config_to_dict, save_config
from spin_diff.utils.hashing import file_sha256

log = logging.getLogger(__name__)

__all__ = ["Run", "TrainReport", "train"]

# Settings that may change between a run and its resumption (how long, how often to log).
_RESUMABLE_CHANGES = {"epochs", "max_steps", "checkpoint_every", "keep_last", "summary_every", "summary_images",
                      "validate_every", "log_indices"}


@dataclass
class TrainReport:
    """How a :func:`train` call ended."""

    step: int
    epoch: int
    stopped_by: str  # "finished", "max_steps", "time_limit", "SIGTERM", "SIGINT"
    checkpoint: Path
    last_summary: dict
    seconds: float
    model: torch.nn.Module | None = None  # the trained regressor (not the DDP wrapper)


@dataclass
class Run:
    """What :func:`~spin_diff.training.loop.train_step` needs."""

    config: TrainConfig
    device: torch.device
    body: object
    model: torch.nn.Module
    model_input: str
    fitter: SMPLify
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    scheduler: object
    amp: bool
    dataset_names: list[str] = dataclasses.field(default_factory=list)  # keys of the fits' seeds
    keep: KeepRule = dataclasses.field(default_factory=KeepRule)  # which of stored and new fit wins
    condition_network: torch.nn.Module | None = None  # frozen copy whose features condition the prior


def _prior_hashes(fitting: FittingConfig, body) -> dict[str, str | None]:
    """SHA-256 of the GMM and diffusion prior files the in-loop fitting reads (None if unused)."""
    def digest(explicit, name):
        path = explicit or find_beside_model(body.files.model, name)
        return file_sha256(path) if path and Path(path).is_file() else None

    terms = {name for stage in fitting.stages for name in stage.terms}
    uses_diffusion = "diffusion_pose" in terms or fitting.method == "guided"
    return {
        "body_model_sha256": body_model_hash(body),
        "gmm_sha256": digest(fitting.gmm_path, "gmm_08.pkl") if "gmm_pose" in terms else None,
        "diffusion_prior_sha256": digest(fitting.diffusion.checkpoint, PRIOR_FILE_NAME) if uses_diffusion else None,
    }


def _build_model(config: TrainConfig, body, pretrained: Path | None, device, resumed: bool = False):
    weights = config.model.backbone_weights
    if weights is not None and pretrained is not None and not resumed:
        raise BadInputError(
            f"--pretrained {pretrained} and model.backbone_weights {weights} both give the starting "
            "weights: pass one of them"
        )
    if pretrained is not None:
        model = load_regressor(pretrained, body, expect_input=config.model.input, device=device)
        if config_to_dict(model.config) != config_to_dict(config.model):
            log.warning("--pretrained %s defines the network; config.model is replaced by its config", pretrained)
            config.model = model.config
    else:
        model = build_regressor(config.model, body=None, mean_params=body.mean_params)
        if weights is not None:
            _load_backbone_weights(model, config.model)
    model.joints_model = None  # the loop runs the body model itself, in float32
    return model.to(device).train()


def _load_backbone_weights(model, config) -> None:
    """SPIN's ImageNet start: torchvision ResNet weights into the backbone, the head fresh."""
    weights = Path(config.backbone_weights)
    if config.input != "image":
        raise BadInputError(
            f"model.backbone_weights {weights} is for an image model's ResNet, but model.input is "
            f"{config.input!r}: drop it, or set model.input=image"
        )
    if not weights.is_file():
        raise MissingInputError(f"model.backbone_weights: no file {weights}; pass a torchvision ResNet state dict (.pth)")
    try:
        load_backbone_state_dict(model.encoder, weights)
    except CheckpointError as err:
        raise CheckpointError(
            f"{err} (the backbone is model.backbone={config.backbone}, model.width={config.width}: "
            "set them to the file's network)"
        ) from err
    log.info("backbone starts from %s (torchvision ResNet weights)", weights)


def _check_conditional_prior(fitter: SMPLify, model, pretrained: Path | None, resumed: bool = False) -> None:
    """A conditional diffusion prior in the loop reads the network's features: its feature
    size must match, and at the start of a run the network must be the regressor the prior was
    trained on (``fitting.diffusion.regressor_check``; a resumed run was checked when it started).
    As the network trains, its features drift from those; that is the design of the study's row (f)."""
    prior = fitter.context.extras.get("diffusion_prior")
    if prior is None or not prior.config.denoiser.cond_dim:
        return

    check = "size" if resumed else fitter.config.diffusion.regressor_check
    if pretrained is None and check == "hash":
        raise ConditioningError(
            f"the diffusion prior {prior.source} is conditioned on a trained regressor's features, but the network "
            "starts from fresh weights: start it from that regressor (--pretrained CKPT), or accept it with "
            "--set fitting.diffusion.regressor_check=size"
        )
    check_regressor(prior, model, pretrained, check)


def _condition_network(config: TrainConfig, fitter: SMPLify, model, state: dict | None):
    """The frozen copy of the network whose features condition the prior in the loop
    (``fitting.condition_features: frozen``), or None where the network's own features do.

    The copy runs in eval mode (no dropout) without gradients: the features the prior was
    trained on (``spin-diff prior train --features-from``) are the starting network's in eval
    mode, and the copy keeps them so; ``condition_refresh_every: N`` re-copies the trained
    network every N steps. A resumed run takes the copy saved in its checkpoint."""
    fitting = config.fitting
    if fitting.condition_refresh_every < 0:
        raise BadInputError(
            f"fitting.condition_refresh_every={fitting.condition_refresh_every}: give the steps between copies "
            "of the network, or 0 for the starting network throughout"
        )
    prior = fitter.context.extras.get("diffusion_prior")
    conditional = prior is not None and bool(prior.config.denoiser.cond_dim)
    if fitting.condition_features != "frozen" or not fitting.in_loop:
        return None
    if not conditional:
        raise BadInputError(
            "fitting.condition_features=frozen: the loop's diffusion prior is not conditioned on features; "
            "name a conditional one (fitting.diffusion.checkpoint) or leave condition_features at network"
        )
    copy_ = copy.deepcopy(model).eval().requires_grad_(False)
    if state is not None:
        saved = state.get("condition_network")
        if saved is None:
            raise CheckpointError(
                "--resume: the checkpoint holds no frozen conditioning network (it was written with "
                "fitting.condition_features=network); resume with that setting"
            )
        copy_.load_state_dict(saved)
    return copy_


def _cpu_state(module: torch.nn.Module) -> dict:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def refresh_due(fitting: InLoopFittingConfig, step: int) -> bool:
    """Whether the frozen conditioning network is re-copied after ``step`` steps."""
    return fitting.condition_refresh_every > 0 and step % fitting.condition_refresh_every == 0


def _check_resume_config(saved: dict, config: TrainConfig) -> None:
    current = config_to_dict(config)
    changed = sorted(k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k])
    if changed:
        log.warning(
            "resuming with a config that differs from the checkpoint's in %s: the run continues with the new values",
            changed,
        )


def _dataset_entries(config: TrainConfig, datasets) -> list[DatasetEntry]:
    """The run's datasets: ``datasets`` ((npz, images[, name]) tuples or entries) replace the
    config's ``data.datasets``, which then names them in the saved config."""
    if datasets is not None:
        entries = []
        for item in datasets:
            if not isinstance(item, DatasetEntry):
                path, images, *name = item
                item = DatasetEntry(str(path), name[0] if name else None, str(images) if images is not None else None)
            entries.append(item)
        config.data.datasets = entries
    if not config.data.datasets:
        raise BadInputError(
            "no training data: pass --dataset [NAME=]PATH (repeatable), or list data.datasets in the config"
        )
    for entry in config.data.datasets:
        if not entry.path:
            raise BadInputError("a data.datasets entry has no path: give each one 'path: FILE.npz'")
        if not Path(entry.path).is_file():
            raise MissingInputError(f"--dataset {entry.path}: no such file; pass a SPIN-format .npz")
    return config.data.datasets


def _check_validation_inputs(config: TrainConfig) -> None:
    """Validation's inputs, read now, so that a bad file fails before step 1, not after N steps."""
    if not config.validate_every:
        return
    if config.validation_data is None:
        raise BadInputError(
            f"validate_every is {config.validate_every} but no validation_data is set: "
            "--set validation_data=HELD_OUT.npz, or validate_every=0"
        )
    if not Path(config.validation_data).is_file():
        raise MissingInputError(f"validation_data {config.validation_data}: no such file; pass a held-out SPIN-format .npz")
    evalset = load_eval_set(Path(config.validation_data))
    if config.model.input == "image":
        images = config.validation_images
        if images is None or not Path(images).is_dir():
            raise MissingInputError(
                f"validation_data {config.validation_data} needs its image folder for an image model: "
                f"--set validation_images=DIR (now {images!r})"
            )
    log.info("validation every %d steps on %s (%d examples)", config.validate_every, config.validation_data, evalset.size)


def _log_coverage(store: FitStore, data: TrainingData) -> None:
    """One line per dataset: its store records by source; a warning where a dataset has none
    but the store holds static fits under a name no dataset of the run has."""
    stats = cache_stats(store).datasets
    for dataset in data.datasets:
        found = stats.get(dataset.name)
        sources = ", ".join(f"{n} {label}" for label, n in sorted(found.by_source.items())) if found else "none"
        log.info(
            "dataset %s (%s): %d examples, %d ground-truth SMPL (%s); store %s: %d records (%s)",
            dataset.name, dataset.path, len(dataset), int(dataset.has_smpl.sum()), dataset.ground_truth_rule,
            store.path, found.count if found else 0, sources,
        )  # fmt: skip
    others = sorted(name for name, st in stats.items() if name not in data.names and st.by_source.get(Source.STATIC.label))
    for dataset in data.datasets:
        if dataset.name not in stats and others:
            log.warning(
                "dataset %s has no records in %s, which holds static fits of %s: if they are this dataset's, "
                "name it so (--dataset %s=%s)", dataset.name, store.path, others, others[0], dataset.path,
            )  # fmt: skip


def _open_stores(cache: Path, body, context: D.DistributedContext) -> tuple[FitStore | None, FitStore]:
    """The node's writable store (its first process only) and a read-only handle for the data."""
    digest, label = body_model_hash(body), body_model_label(body)
    writer = FitStore.open_or_create(cache, digest, label) if context.writes_store else None
    D.barrier(context)  # the store exists before any reader opens it
    reader = FitStore(cache, readonly=True, body_model_hash=digest, body_model_label=label)
    reader.header  # noqa: B018 - a store of another body model fails here, before training
    return writer, reader


def _loader(data: TrainingData, sampler: EpochBatchSampler, workers: int, prefetch: int, device) -> torch.utils.data.DataLoader:
    extra = {"prefetch_factor": prefetch, "persistent_workers": False} if workers > 0 else {}
    # A generator of its own: a DataLoader draws its workers' base seed from the global RNG,
    # which would shift the network's dropout stream on resumption.
    generator = torch.Generator().manual_seed(sampler.seed * 100_003 + sampler.epoch)
    return torch.utils.data.DataLoader(
        data, batch_sampler=sampler, num_workers=workers, collate_fn=collate_identity,
        pin_memory=device.type == "cuda", generator=generator, **extra,
    )  # fmt: skip


_HOST_KEYS = ("epoch", "batch")  # bookkeeping the loop reads on the host: never a device sync


def _to_device(batch: dict, device) -> dict:
    return {k: v if k in _HOST_KEYS else v.to(device, non_blocking=True) for k, v in batch.items()}


def train(
    config: TrainConfig,
    datasets: list[tuple[Path, Path | None]],
    run_dir: Path,
    *,
    cache: Path | None = None,
    pretrained: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    time_limit: float | None = None,
    progress: bool = True,
) -> TrainReport:
    """Train a regressor the SPIN way (module docstring). ``datasets``: (npz, image folder[,
    name]) tuples or :class:`DatasetEntry`; None: the config's ``data.datasets``."""
    started = time.monotonic()
    run_dir = Path(run_dir)
    if time_limit is not None and not time_limit >= 0:
        raise BadInputError(f"--time-limit {time_limit}: give the seconds to train, 0 or more")
    entries = _dataset_entries(config, datasets)
    _check_validation_inputs(config)
    context = D.init_distributed(config.device)
    device = context.device
    config.device = str(device)
    checkpoint_path = run_dir / LAST_CHECKPOINT
    if context.is_main:
        prepare_run_folder(run_dir, resume=resume, overwrite=overwrite)
    state = None
    if resume:
        if not checkpoint_path.is_file():
            raise MissingInputError(f"--resume: no checkpoint {checkpoint_path}; start the run without --resume")
        state = load_training_state(checkpoint_path)
        pretrained = checkpoint_path
    torch.manual_seed(config.seed + context.rank)

    body = load_body_from_config(config)
    if config.fitting.in_loop and config.fitting.prior == "auto":
        chosen = resolve_auto_prior(config.fitting, names_conditional_prior(config.fitting, body))
        (log.info if config.fitting.prior != "gmm" else log.debug)("fitting.prior auto: in-loop fits with %s", chosen)
    if state is not None:
        _check_resume_config(state["train_config"], config)
    use_images = config.model.input == "image"
    datasets_read = [
        SpinDataset(e.path, e.images, name=e.name, keypoints=config.data.keypoints, need_images=use_images)
        for e in entries
    ]  # fmt: skip
    cache = Path(cache) if cache is not None else run_dir / "fits"
    writer_store, reader_store = _open_stores(cache, body, context)
    if writer_store is not None:  # refuses, before any write, a dataset of other content under a name it holds
        writer_store.claim_datasets({d.name: dataset_identity(d.fingerprint, d.path.resolve(), len(d)) for d in datasets_read})
    data = TrainingData(datasets_read, crop_size=config.fitting.crop_size, use_images=use_images, store=reader_store)
    if context.is_main:
        _log_coverage(reader_store, data)
    sampler = EpochBatchSampler(
        data.sizes, config.data.batch_size, seed=config.seed, ratios=config.data.ratios,
        epoch_length=config.data.epoch_length, augmentation=config.data.augmentation,
        rank=context.rank, world_size=context.world_size,
    )  # fmt: skip

    model = _build_model(config, body, pretrained, device, resumed=state is not None)
    fitting = effective_fitting_config(config.fitting)
    fitter = SMPLify(body, fitting if config.fitting.in_loop else scoring_config(fitting))
    _check_conditional_prior(fitter, model, pretrained, resumed=state is not None)
    condition_network = _condition_network(config, fitter, model, state)
    keep = KeepRule.of_stages(fitting, body, config.fitting.keep, config.fitting.plausibility_gate, fitter.context.gmm)
    if writer_store is not None:  # refuses, before any write, a store scored under another rule
        writer_store.claim_score_rule(keep.description())
    if context.enabled:
        ddp_device = [device] if device.type == "cuda" else None
        network = torch.nn.parallel.DistributedDataParallel(model, device_ids=ddp_device)
    else:
        network = model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    amp = config.optim.amp and device.type == "cuda"
    # The scaler also guards fp32 runs: a step with non-finite gradients is skipped.
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0**16 if amp else 1.0)
    total_steps = config.max_steps or config.epochs * sampler.batches_per_epoch
    scheduler = None
    if config.optim.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / max(total_steps, 1)))
        )
    step, epoch, batch_in_epoch = 0, 0, 0
    best = {"pa_mpjpe": math.inf, "step": -1}  # the best validation so far (best.pt)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        restore_rng_state(state["rng"])
        best = state.get("best_validation", best)
        if context.rank:  # every rank had its own stream; rank 0's state shifted per rank
            torch.manual_seed(int(torch.randint(0, 2**31, ())) + context.rank)
        log.info("resuming %s at step %d (epoch %d, batch %d)", checkpoint_path, step, epoch, batch_in_epoch)

    our_hash, description = fit_config_hash(fitter)
    fit_writer = None
    if writer_store is not None:
        if state is not None:  # the replayed steps meet the store the checkpoint saw
            resume_store(writer_store, step)
        writer_store.register_config(our_hash, description)
        fit_writer = FitWriter(writer_store, data.names, our_hash)
    if state is not None:
        truncate_run_logs(run_dir, step, _indices_name(context), logs=context.is_main)
    D.barrier(context)
    lookahead = config.data.workers * config.data.prefetch_factor
    read_after_write = ReadAfterWrite(data, fit_writer, lookahead)
    hashes = _prior_hashes(fitting, body) if config.fitting.in_loop else {"body_model_sha256": body_model_hash(body)}
    if context.is_main:
        save_config(config, run_dir / "config.yaml")
    run = Run(config, device, body, network, config.model.input, fitter, optimizer, scaler, scheduler, amp, data.names,
              keep, condition_network)  # fmt: skip
    runlog = RunLog(run_dir, config.summary_every, total_steps, step, context.is_main, progress,
                    reduce=lambda sums: D.all_reduce_sum(context, sums), world_size=context.world_size)  # fmt: skip
    indices_file = _open_indices(run_dir, context) if config.log_indices else None
    examples = example_request(data.sizes, config.summary_images) if runlog.tensorboard is not None else None

    def save(path: Path) -> Path:
        return save_training_checkpoint(
            path, model, body, optimizer=optimizer, scaler=scaler, scheduler=scheduler,
            step=step, epoch=epoch, batch_in_epoch=batch_in_epoch,
            train_config=config_to_dict(config), hashes=hashes, best_validation=best,
            condition_network=_cpu_state(condition_network) if condition_network is not None else None,
        )  # fmt: skip

    def checkpoint(periodic: bool = False) -> Path:
        if fit_writer is not None:
            fit_writer.flush()  # the store holds every fit of the steps the checkpoint covers
        if context.is_main:
            save(checkpoint_path)
            if periodic:
                keep_step_checkpoint(checkpoint_path, step, config.keep_last)
            plot = plot_run(run_dir, total_steps, config.loss)
            if plot is not None:
                save_png(run_dir / "training.png", plot)
        D.barrier(context)
        if fit_writer is not None:
            fit_writer.checkpointed()
        return checkpoint_path

    def validation() -> None:
        metrics = _validate(run, step, run_dir, runlog)
        if metrics.get("pa_mpjpe", math.inf) < best["pa_mpjpe"]:
            best.update(pa_mpjpe=metrics["pa_mpjpe"], step=step)
            save(run_dir / BEST_CHECKPOINT)
            log.info("best validation PA-MPJPE so far (%.2f mm at step %d): %s", best["pa_mpjpe"], step, run_dir / BEST_CHECKPOINT)

    stopped_by = "finished"
    try:
        with StopSignal() as stop:
            if config.max_steps is not None and step >= config.max_steps:
                stopped_by = "max_steps"
            while epoch < config.epochs and stopped_by == "finished":
                sampler.set_epoch(epoch, batch_in_epoch)
                for batch in _loader(data, sampler, config.data.workers, config.data.prefetch_factor, device):
                    batch = _to_device(read_after_write.settle(batch), device)
                    if indices_file is not None:
                        _write_indices(indices_file, step, batch)
                    parts = train_step(run, batch)
                    gathered = D.gather_rows(context, parts.updates)  # every rank joins the collective
                    if fit_writer is not None:
                        fit_writer.submit(gathered, step)
                    step += 1
                    if condition_network is not None and refresh_due(config.fitting, step):
                        condition_network.load_state_dict(model.state_dict())
                    batch_in_epoch = int(batch["batch"]) + 1
                    runlog.add(parts, fits=len(batch["index"]) * context.world_size)
                    runlog.advance()
                    if runlog.due(step):
                        runlog.summarise(step, epoch, optimizer.param_groups[0]["lr"])
                        if examples is not None:
                            runlog.image("examples", _example_sheet(run, model, data, examples), step)
                    if config.validate_every and step % config.validate_every == 0 and context.is_main:
                        validation()
                    if step % config.checkpoint_every == 0:
                        checkpoint(periodic=True)
                    kill_point(step)
                    if config.max_steps is not None and step >= config.max_steps:
                        stopped_by = "max_steps"
                    # ranks agree on stopping at summary steps only (a collective, and a sync)
                    if not context.enabled or runlog.due(step):
                        stopped_by = _should_stop(context, stop, started, time_limit) or stopped_by
                    if stopped_by != "finished":
                        break
                if batch_in_epoch >= sampler.batches_per_epoch:
                    epoch, batch_in_epoch = epoch + 1, 0
            runlog.summarise(step, epoch, optimizer.param_groups[0]["lr"])
            path = checkpoint()
    finally:
        runlog.close()
        if indices_file is not None:
            indices_file.close()
        if fit_writer is not None:
            fit_writer.close()
    report = TrainReport(step, epoch, stopped_by, path, runlog.last, time.monotonic() - started, model)
    D.shutdown(context)
    return report


def _should_stop(context: D.DistributedContext, stop: StopSignal, started: float, time_limit: float | None) -> str:
    """Why to stop after this step ("" to go on). Under torchrun every rank must agree, so the
    reasons are all-reduced (called at summary steps only there)."""
    reason = stop.reason if stop.requested else ""
    if not reason and time_limit is not None and time.monotonic() - started >= time_limit:
        reason = "time_limit"
    if context.enabled:
        codes = ("", "time_limit", "SIGTERM", "SIGINT")
        flag = torch.tensor([codes.index(reason) if reason in codes else 2], device=context.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        reason = codes[int(flag)]
    return reason


def _indices_name(context: D.DistributedContext) -> str:
    return f"indices_rank{context.rank}.csv" if context.enabled else "indices.csv"


def _open_indices(run_dir: Path, context: D.DistributedContext):
    path = run_dir / _indices_name(context)
    run_dir.mkdir(parents=True, exist_ok=True)
    return path.open("a")


def _write_indices(handle, step: int, batch: dict) -> None:
    """One line per step: step, epoch, batch, then dataset:index of every row (a debug log)."""
    rows = zip(batch["dataset"].tolist(), batch["index"].tolist())
    handle.write(f"{step},{int(batch['epoch'])},{int(batch['batch'])}," + " ".join(f"{d}:{i}" for d, i in rows) + "\n")
    handle.flush()


def _example_sheet(run: Run, model, data: TrainingData, examples):
    """The fixed examples' picture (:func:`~spin_diff.training.pictures.example_sheet`)."""
    batch = _to_device(data.__getitems__(examples), run.device)
    return example_sheet(model, run.body, run.fitter, batch)


def _validate(run: Run, step: int, run_dir: Path, runlog: RunLog) -> dict[str, float]:
    config = run.config
    model = run.model.module if hasattr(run.model, "module") else run.model
    metrics = validate(model, run.body, Path(config.validation_data), config, images=config.validation_images)
    runlog.validation(step, metrics)
    path = run_dir / "validation.csv"
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", *metrics])
        if new:
            writer.writeheader()
        writer.writerow({"step": step, **metrics})
    log.info("validation at step %d: %s", step, ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    return metrics
