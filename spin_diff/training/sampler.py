"""The training order: mixed datasets, per-sample augmentation draws, ranks, exact resume.

SPIN draws each sample's dataset by fixed ratios (30% H36M, 60% in-the-wild, 10% 3DHP) and
its augmentation from a global numpy RNG inside the DataLoader workers, so a resumed run (or a
run with another number of workers) sees different data. Here the whole epoch is drawn up
front from ``(seed, epoch)`` alone: the dataset of every slot, the example in it, and the
example's augmentation (flip, rotation, scale, colour). A run therefore replays exactly from
any batch, whatever the number of workers or when it was interrupted.

With ``world_size`` ranks, global batch ``g`` of the epoch is the slots
``[g * B * W, (g + 1) * B * W)``; rank ``r`` takes the ``r``-th block of ``B`` of them. The
augmentation belongs to the slot, so the same slot looks the same on 1 or 8 ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spin_diff.errors import BadInputError

__all__ = ["AugmentationConfig", "BatchRequest", "EpochBatchSampler", "draw_epoch"]


@dataclass
class AugmentationConfig:
    """SPIN's augmentation (docs/conventions.md#augmentation-and-the-canonical-frame). Angles in degrees."""

    enabled: bool = True
    flip_prob: float = 0.5
    rotation_std: float = 30.0
    rotation_clip: float = 60.0  # SPIN: 2 x rotation_std
    rotation_zero_prob: float = 0.6  # SPIN leaves this share unrotated
    scale_std: float = 0.25
    scale_range: tuple[float, float] = (0.75, 1.25)
    colour_noise: float = 0.4  # per-channel factor in U[1 - noise, 1 + noise]

    def validate(self) -> None:
        if not 0.0 <= self.flip_prob <= 1.0 or not 0.0 <= self.rotation_zero_prob <= 1.0:
            raise BadInputError("data.augmentation.flip_prob and rotation_zero_prob must lie in [0, 1]")
        low, high = self.scale_range
        if not 0.0 < low <= 1.0 <= high:
            raise BadInputError(f"data.augmentation.scale_range must be (low <= 1 <= high), got {self.scale_range}")
        if min(self.rotation_std, self.rotation_clip, self.scale_std, self.colour_noise) < 0:
            raise BadInputError("data.augmentation: std, clip and noise values must be >= 0")
        if self.colour_noise >= 1.0:
            raise BadInputError("data.augmentation.colour_noise must be below 1 (a factor of 1 - noise)")


@dataclass
class BatchRequest:
    """What one rank's batch is: per row the dataset, the example and its augmentation.

    Sent to the DataLoader workers as the "index" of a batch (see
    :meth:`spin_diff.training.datasets.TrainingData.__getitems__`).
    """

    epoch: int
    batch: int  # global batch number within the epoch
    dataset: np.ndarray  # (B,) int: which dataset of the mixture
    index: np.ndarray  # (B,) int: example index within that dataset
    flip: np.ndarray  # (B,) bool
    rotation: np.ndarray  # (B,) degrees, counter-clockwise on screen
    scale: np.ndarray  # (B,) box scale factor (> 1: the crop shows more around the person)
    colour: np.ndarray  # (B, 3) per-channel factor

    def __len__(self) -> int:
        return int(self.index.shape[0])


@dataclass
class _Epoch:
    dataset: np.ndarray
    index: np.ndarray
    flip: np.ndarray
    rotation: np.ndarray
    scale: np.ndarray
    colour: np.ndarray = field(repr=False)


def _normalised_ratios(sizes: list[int], ratios: list[float] | None) -> np.ndarray | None:
    if ratios is None or len(ratios) == 0:
        return None
    if len(ratios) != len(sizes):
        raise BadInputError(
            f"data.ratios has {len(ratios)} values for {len(sizes)} datasets: give one ratio per --dataset"
        )
    values = np.asarray(ratios, dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise BadInputError(f"data.ratios must be non-negative with a positive sum, got {list(ratios)}")
    return values / values.sum()


def draw_epoch(
    sizes: list[int],
    epoch: int,
    seed: int,
    ratios: list[float] | None = None,
    epoch_length: int | None = None,
    augmentation: AugmentationConfig | None = None,
) -> _Epoch:
    """The order and augmentation of every slot of one epoch, from ``(seed, epoch)`` only.

    Without ratios the datasets are one concatenated set, each example once per epoch in a
    random order. With ratios each slot draws its dataset by them (SPIN's mixing) and the
    examples of each dataset come in a random order, cycling when a dataset is drawn more
    often than it has examples; the epoch length is then ``epoch_length`` or the largest
    dataset's size (SPIN's convention).
    """
    if not sizes or min(sizes) < 1:
        raise BadInputError(f"every dataset needs at least one example, got sizes {sizes}")
    rng = np.random.default_rng([int(seed), int(epoch), 0x5B1D])
    probabilities = _normalised_ratios(sizes, ratios)
    if probabilities is None:
        total = int(sum(sizes)) if epoch_length is None else int(epoch_length)
        flat = np.concatenate([rng.permutation(sum(sizes)) for _ in range(-(-total // sum(sizes)))])[:total]
        offsets = np.cumsum([0] + list(sizes))
        dataset = np.searchsorted(offsets, flat, side="right") - 1
        index = flat - offsets[dataset]
    else:
        total = int(max(sizes) if epoch_length is None else epoch_length)
        dataset = rng.choice(len(sizes), size=total, p=probabilities)
        index = np.zeros(total, dtype=np.int64)
        for d, size in enumerate(sizes):  # a loop over datasets (a handful), not samples
            slots = np.flatnonzero(dataset == d)
            if slots.size:
                order = np.concatenate([rng.permutation(size) for _ in range(-(-slots.size // size))])
                index[slots] = order[: slots.size]
    aug = augmentation or AugmentationConfig(enabled=False)
    if aug.enabled:
        flip = rng.random(total) < aug.flip_prob
        rotation = np.clip(rng.standard_normal(total) * aug.rotation_std, -aug.rotation_clip, aug.rotation_clip)
        rotation = np.where(rng.random(total) < aug.rotation_zero_prob, 0.0, rotation)
        scale = np.clip(rng.standard_normal(total) * aug.scale_std + 1.0, *aug.scale_range)
        colour = rng.uniform(1.0 - aug.colour_noise, 1.0 + aug.colour_noise, (total, 3))
    else:
        flip = np.zeros(total, dtype=bool)
        rotation = np.zeros(total)
        scale = np.ones(total)
        colour = np.ones((total, 3))
    return _Epoch(dataset.astype(np.int64), index.astype(np.int64), flip, rotation, scale, colour)


class EpochBatchSampler:
    """Batches of :class:`BatchRequest` for one rank; resumable at any batch.

    Use it as a DataLoader's ``batch_sampler``. ``set_epoch(epoch, start_batch)`` chooses the
    epoch and the global batch to start from (the checkpoint's sampler position); iterating
    yields this rank's part of each later batch. Incomplete last batches are dropped (every
    rank must take the same number of steps).
    """

    def __init__(
        self,
        sizes: list[int],
        batch_size: int,
        seed: int = 0,
        ratios: list[float] | None = None,
        epoch_length: int | None = None,
        augmentation: AugmentationConfig | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise BadInputError(f"batch size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise BadInputError(f"rank {rank} is not in a world of {world_size}")
        if augmentation is not None:
            augmentation.validate()
        _normalised_ratios(sizes, ratios)  # validate now, not at the first epoch
        self.sizes = list(sizes)
        self.batch_size = batch_size
        self.seed = seed
        self.ratios = ratios
        self.epoch_length = epoch_length
        self.augmentation = augmentation
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0
        length = epoch_length if epoch_length is not None else (
            max(sizes) if _normalised_ratios(sizes, ratios) is not None else sum(sizes)
        )  # fmt: skip
        self.batches_per_epoch = length // (batch_size * world_size)
        if self.batches_per_epoch < 1:
            raise BadInputError(
                f"an epoch of {length} examples holds no full batch of {batch_size} x {world_size} ranks: "
                "use a smaller data.batch_size or more data"
            )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch <= self.batches_per_epoch:
            raise BadInputError(f"start batch {start_batch} outside an epoch of {self.batches_per_epoch} batches")
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def __iter__(self):
        drawn = draw_epoch(self.sizes, self.epoch, self.seed, self.ratios, self.epoch_length, self.augmentation)
        per_step = self.batch_size * self.world_size
        for batch in range(self.start_batch, self.batches_per_epoch):
            begin = batch * per_step + self.rank * self.batch_size
            rows = slice(begin, begin + self.batch_size)
            yield BatchRequest(
                epoch=self.epoch, batch=batch, dataset=drawn.dataset[rows], index=drawn.index[rows],
                flip=drawn.flip[rows], rotation=drawn.rotation[rows], scale=drawn.scale[rows],
                colour=drawn.colour[rows],
            )  # fmt: skip
